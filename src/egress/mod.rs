//! The egress proxy: every HTTP request a worker makes goes through a forward proxy in
//! the front that enforces the `--allow-remote` list, request by request.
//!
//! Theory of operation. The front checks asset URLs before a worker sees them
//! ([`crate::mosaic`]), but GDAL reads them with libcurl, which follows redirects, and
//! GDAL 3.6 cannot turn that off: an allowed host could send a worker to cloud metadata
//! (`http://169.254.169.254/`) or any internal host. So the front runs [`EgressProxy`]
//! on 127.0.0.1 and gives each worker `GDAL_HTTP_PROXY`/`GDAL_HTTPS_PROXY` pointing at
//! it; curl then sends every request, redirects included, to the proxy: plain HTTP in
//! absolute form (checked down to the path), HTTPS as `CONNECT host:port` (checked by
//! host). The proxy resolves host names itself and refuses link-local addresses that
//! the configuration does not name literally, so DNS cannot point an allowed name at
//! metadata either. A refusal is a `403` that GDAL reports as an unreadable asset.

mod policy;
mod proxy;

pub use policy::{EgressPolicy, HTTP_PORT, HTTPS_PORT, HostPort, S3Access};
pub use proxy::{DEFAULT_CONNECT_TIMEOUT, EgressCounters, EgressProxy};

use crate::mosaic::RemotePrefix;

/// GDAL's proxy for all its HTTP (curl's `CURLOPT_PROXY`).
pub const GDAL_HTTP_PROXY: &str = "GDAL_HTTP_PROXY";
/// GDAL's proxy for `https://` URLs only; it wins over [`GDAL_HTTP_PROXY`] for those.
pub const GDAL_HTTPS_PROXY: &str = "GDAL_HTTPS_PROXY";
/// curl reads the host list that bypasses a proxy from these, even when the proxy is set
/// explicitly; workers get them empty.
const NO_PROXY_VARIABLES: [&str; 2] = ["no_proxy", "NO_PROXY"];

impl S3Access {
    /// The S3 settings workers get through `worker_env` (`AWS_S3_ENDPOINT`,
    /// `AWS_VIRTUAL_HOSTING`, `AWS_HTTPS`, read as GDAL reads them).
    #[must_use]
    pub fn from_worker_env(worker_env: &[(String, String)]) -> Self {
        let get = |key: &str| worker_env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let is_false = |v: &str| ["NO", "FALSE", "OFF", "0"].iter().any(|f| v.eq_ignore_ascii_case(f));
        Self {
            endpoint: get("AWS_S3_ENDPOINT").filter(|e| !e.is_empty()).map(str::to_owned),
            path_style: get("AWS_VIRTUAL_HOSTING").is_some_and(is_false),
            https: !get("AWS_HTTPS").is_some_and(is_false),
        }
    }
}

/// Starts the proxy for workers configured with `worker_env` and reading under
/// `allow_remote`, and adds to `worker_env` what routes them through it. Returns `None`
/// (and warns that egress is not enforced) when the operator set a GDAL proxy already.
pub async fn start_for_workers(
    allow_remote: &[String],
    extra_hosts: &[String],
    worker_env: &mut Vec<(String, String)>,
) -> Result<Option<EgressProxy>, String> {
    // The environment as workers will see it: what they inherit from the front,
    // overridden by the options from Tessera's flags and --gdal-config.
    let effective: Vec<(String, String)> = crate::pool::worker_environment(std::env::vars())
        .into_iter()
        .chain(worker_env.iter().cloned())
        .collect();
    // A proxy the operator chose wins, with a warning.
    if let Some((key, value)) = effective.iter().find(|(k, _)| k == GDAL_HTTP_PROXY || k == GDAL_HTTPS_PROXY)
    {
        tracing::warn!(
            option = %key,
            proxy = %value,
            "{key} is set by the operator: workers use that proxy, and redirects of remote assets are NOT checked \
             against --allow-remote"
        );
        return Ok(None);
    }
    let prefixes = allow_remote.iter().map(|p| RemotePrefix::parse(p)).collect::<Result<Vec<_>, _>>()?;
    let policy = EgressPolicy::new(&prefixes, &S3Access::from_worker_env(&effective), extra_hosts)?;
    let proxy = EgressProxy::start(policy).await.map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
    let value = proxy.gdal_proxy_value();
    tracing::info!(address = %value, "egress proxy for workers started at {value}");
    worker_env.push((GDAL_HTTP_PROXY.to_owned(), value.clone()));
    worker_env.push((GDAL_HTTPS_PROXY.to_owned(), value));
    worker_env.extend(NO_PROXY_VARIABLES.iter().map(|k| ((*k).to_owned(), String::new())));
    Ok(Some(proxy))
}
