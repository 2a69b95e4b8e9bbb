//! The HTTP client under every origin request: rustls with ring and the system's roots
//! (plus the operator's extra CA file), a resolver that refuses link-local addresses,
//! and a redirect policy that admits only targets under the allowed prefixes.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::MAX_REDIRECTS;
use crate::mosaic::{AddressRange, RemotePrefix, RemoteUrl, address_range};

/// The TLS configuration of both clients: ring, TLS 1.2 and 1.3, HTTP/2 or 1.1 by ALPN.
pub(super) fn tls_config(extra_ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!(%error, "a system certificate could not be loaded");
    }
    let (_, unparsable) = roots.add_parsable_certificates(native.certs);
    if unparsable > 0 {
        tracing::warn!(unparsable, "system certificates that are not valid trust anchors are skipped");
    }
    if let Some(file) = extra_ca_file {
        let certs = CertificateDer::pem_file_iter(file)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| format!("cannot read CA certificates from {}: {e}", file.display()))?;
        if certs.is_empty() {
            return Err(format!("{} holds no PEM certificate", file.display()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("a certificate of {} is not a trust anchor: {e}", file.display()))?;
        }
    }
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A client on `tls`. With `allow`, redirects are followed under those prefixes;
/// without, never (S3, where a redirect means a wrong region or endpoint).
pub(super) fn build(
    tls: &rustls::ClientConfig,
    connect_timeout: Duration,
    allow: Option<Vec<RemotePrefix>>,
) -> Result<reqwest::Client, String> {
    let redirects = match allow {
        Some(allow) => reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                let error = RefusedRedirect {
                    target: attempt.url().to_string(),
                    why: format!("more than {MAX_REDIRECTS} redirects"),
                };
                return attempt.error(error);
            }
            match redirect_allowed(&allow, attempt.url().as_str()) {
                Ok(()) => attempt.follow(),
                Err(why) => {
                    let target = attempt.url().to_string();
                    attempt.error(RefusedRedirect { target, why })
                }
            }
        }),
        None => reqwest::redirect::Policy::none(),
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls.clone())
        .dns_resolver(Arc::new(NoLinkLocal))
        .redirect(redirects)
        .referer(false)
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Whether a redirect may go to `target`: the same rules as an asset URL.
fn redirect_allowed(allow: &[RemotePrefix], target: &str) -> Result<(), String> {
    let url = RemoteUrl::parse(target)?;
    if allow.iter().any(|p| p.allows(&url)) {
        Ok(())
    } else {
        Err("it is under none of the allowed prefixes".to_owned())
    }
}

/// A redirect the policy refused; found again in the error chain of the request.
#[derive(Debug, thiserror::Error)]
#[error("redirect to {target} refused: {why}")]
pub(super) struct RefusedRedirect {
    /// The redirect's target URL.
    pub target: String,
    /// Why it was refused.
    pub why: String,
}

/// The system resolver, without link-local addresses: an allowed host name must not lead
/// to cloud metadata. IP literals in URLs do not come here; the prefixes judge them.
#[derive(Debug)]
pub(super) struct NoLinkLocal;

impl Resolve for NoLinkLocal {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| address_range(a.ip()) != Some(AddressRange::LinkLocal))
                .collect();
            if kept.is_empty() && !found.is_empty() {
                return Err(Box::new(RefusedAddress { host }) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

/// A host that resolves to link-local addresses only.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to {} addresses, which are refused", AddressRange::LinkLocal)]
pub(super) struct RefusedAddress {
    /// The host name.
    pub host: String,
}

/// The refusal in `error`'s chain, if a redirect or an address was refused.
pub(super) fn refusal(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(r) = e.downcast_ref::<RefusedRedirect>() {
            return Some(r.to_string());
        }
        if let Some(r) = e.downcast_ref::<RefusedAddress>() {
            return Some(r.to_string());
        }
        next = e.source();
    }
    None
}

/// The counter label of a transport error: "reset", "truncated", "connect" or "transport".
pub(super) fn transport_label(error: &(dyn std::error::Error + 'static)) -> &'static str {
    let mut next = Some(error);
    let mut label = "transport";
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind;
            return match io.kind() {
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => "reset",
                ErrorKind::UnexpectedEof => "truncated",
                ErrorKind::ConnectionRefused => "connect",
                _ => label,
            };
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() {
                label = "truncated";
            }
        }
        if let Some(r) = e.downcast_ref::<reqwest::Error>()
            && r.is_connect()
        {
            label = "connect";
        }
        next = e.source();
    }
    label
}
