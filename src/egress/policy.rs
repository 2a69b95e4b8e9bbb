//! Which requests the egress proxy lets through: pure decisions over strings, so every
//! rule is unit-tested without a socket.
//!
//! A plain-HTTP request is seen whole (absolute form), so it is checked down to the
//! path: it must lie under an `http://` prefix, or be S3 traffic for an allowed bucket
//! and key. A `CONNECT` (HTTPS) tunnel is checked by host and port only, since what
//! flows through it is encrypted: the authority of an `https://` prefix, or the S3 and
//! STS hosts the allowed buckets need.

use std::net::IpAddr;

use crate::mosaic::{AddressRange, RemotePrefix, RemoteUrl, Scheme, address_range};

/// The port of `http://` URLs without one.
pub const HTTP_PORT: u16 = 80;
/// The port of `https://` URLs (and `CONNECT` targets) without one.
pub const HTTPS_PORT: u16 = 443;

/// A host (lower case; an IPv6 literal without its brackets) and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// The host name or IP literal.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl HostPort {
    /// Parses `host`, `host:port`, `[v6]` or `[v6]:port`; user information is refused.
    pub fn parse(authority: &str, default_port: u16) -> Result<Self, String> {
        if authority.contains('@') {
            return Err("user information (user@host) is refused".to_owned());
        }
        let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
            let (host, after) =
                rest.split_once(']').ok_or_else(|| format!("'{authority}' has an unclosed '['"))?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(after.strip_prefix(':').ok_or_else(|| format!("'{authority}' is malformed"))?),
                ),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) if !host.contains(':') => (host, Some(port)),
                Some(_) => return Err(format!("'{authority}': IPv6 literals need brackets")),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("'{authority}' names no host"));
        }
        let port = match port {
            None => default_port,
            Some(p) => p.parse::<u16>().map_err(|_| format!("'{authority}' has an invalid port"))?,
        };
        Ok(Self { host: host.to_ascii_lowercase(), port })
    }

    /// The host as an IP address, if it is a literal.
    #[must_use]
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// `host`, or `host:port` when the port is not `default_port` (brackets for IPv6).
    #[must_use]
    pub fn authority(&self, default_port: u16) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == default_port { host } else { format!("{host}:{}", self.port) }
    }
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.authority(0))
    }
}

/// Where `s3://` assets are read from (the workers' `AWS_S3_ENDPOINT`, `AWS_VIRTUAL_HOSTING`
/// and `AWS_HTTPS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Access {
    /// The S3-compatible endpoint (`host[:port]`); `None` is AWS.
    pub endpoint: Option<String>,
    /// Buckets are addressed in the path (`endpoint/bucket/key`), not the host name.
    pub path_style: bool,
    /// S3 is spoken over https (tunnelled with `CONNECT`), not plain http.
    pub https: bool,
}

impl Default for S3Access {
    /// AWS, virtual hosting, https: GDAL's defaults.
    fn default() -> Self {
        Self { endpoint: None, path_style: false, https: true }
    }
}

/// The egress allow-list, built once from the server's configuration.
#[derive(Debug, Clone)]
pub struct EgressPolicy {
    /// `http://` prefixes, their port written only when it is not 80.
    http: Vec<RemotePrefix>,
    /// Authorities of the `https://` prefixes.
    https: Vec<HostPort>,
    /// `s3://` prefixes.
    s3: Vec<RemotePrefix>,
    /// The S3 endpoint (default port per `s3_https`); `None` is AWS.
    s3_endpoint: Option<HostPort>,
    s3_path_style: bool,
    s3_https: bool,
    /// Hosts the operator allows besides (an STS endpoint, say): any path, any tunnel.
    extra_hosts: Vec<HostPort>,
    /// IP literals named by the configuration: the only link-local addresses reachable.
    literals: Vec<IpAddr>,
}

impl EgressPolicy {
    /// The policy for `prefixes` (`--allow-remote`), S3 settings and extra `host[:port]`s
    /// (port 443 when none is given).
    pub fn new(prefixes: &[RemotePrefix], s3: &S3Access, extra_hosts: &[String]) -> Result<Self, String> {
        let mut policy = Self {
            http: Vec::new(),
            https: Vec::new(),
            s3: Vec::new(),
            s3_endpoint: None,
            s3_path_style: s3.path_style,
            s3_https: s3.https,
            extra_hosts: Vec::new(),
            literals: Vec::new(),
        };
        for prefix in prefixes {
            let url = prefix.url();
            match url.scheme() {
                Scheme::Http => {
                    let host = HostPort::parse(url.authority(), HTTP_PORT)?;
                    policy.literals.extend(host.ip());
                    let canonical = format!("http://{}{}", host.authority(HTTP_PORT), url.path());
                    policy.http.push(RemotePrefix::parse(&canonical)?);
                }
                Scheme::Https => {
                    let host = HostPort::parse(url.authority(), HTTPS_PORT)?;
                    policy.literals.extend(host.ip());
                    policy.https.push(host);
                }
                Scheme::S3 => policy.s3.push(prefix.clone()),
            }
        }
        if let Some(endpoint) = &s3.endpoint {
            let default_port = if s3.https { HTTPS_PORT } else { HTTP_PORT };
            let host = HostPort::parse(endpoint, default_port).map_err(|e| format!("S3 endpoint {e}"))?;
            policy.literals.extend(host.ip());
            policy.s3_endpoint = Some(host);
        }
        for extra in extra_hosts {
            let host = HostPort::parse(extra, HTTPS_PORT).map_err(|e| format!("extra egress host {e}"))?;
            policy.literals.extend(host.ip());
            policy.extra_hosts.push(host);
        }
        Ok(policy)
    }

    /// Checks a plain-HTTP proxy request for `url` (absolute form); the host to connect to.
    pub fn check_request(&self, url: &str) -> Result<HostPort, String> {
        let (scheme, rest) = url.split_once("://").ok_or("not an absolute URL")?;
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(format!("only http:// is proxied ({scheme}:// goes through CONNECT)"));
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let host = HostPort::parse(authority, HTTP_PORT)?;
        let path = if path.is_empty() { "/" } else { path };
        // S3 listings percent-encode '/' in their query, which URL checks refuse: S3
        // requests are checked by bucket and key instead.
        let parsed = RemoteUrl::parse(&format!("http://{}{path}", host.authority(HTTP_PORT)));
        if parsed.as_ref().is_ok_and(|url| self.http.iter().any(|p| p.allows(url)))
            || self.extra_hosts.contains(&host)
            || self.s3_http_allows(&host, path)?
        {
            Ok(host)
        } else {
            Err(parsed.err().unwrap_or_else(|| "under none of the allowed prefixes".to_owned()))
        }
    }

    /// Checks a `CONNECT` target (`host:port`); the host to connect to.
    pub fn check_connect(&self, authority: &str) -> Result<HostPort, String> {
        let host = HostPort::parse(authority, HTTPS_PORT)?;
        if self.https.contains(&host) || self.extra_hosts.contains(&host) || self.s3_tunnel_allows(&host) {
            Ok(host)
        } else {
            Err("not a host of an allowed https:// or s3:// prefix".to_owned())
        }
    }

    /// Whether the proxy may connect to `ip`, which `host` resolved to: link-local
    /// addresses (cloud metadata) only when the configuration names that very literal.
    #[must_use]
    pub fn may_connect(&self, host: &HostPort, ip: IpAddr) -> bool {
        address_range(ip) != Some(AddressRange::LinkLocal)
            || (host.ip() == Some(ip) && self.literals.contains(&ip))
    }

    /// Plain-HTTP S3: the bucket and key of `path` (or the key prefix a listing asks
    /// for) must lie under an `s3://` prefix.
    fn s3_http_allows(&self, host: &HostPort, path: &str) -> Result<bool, String> {
        if self.s3.is_empty() || self.s3_https || (self.s3_endpoint.is_none() && host.port != HTTP_PORT) {
            return Ok(false);
        }
        let (bucket, key) = if let Some(bucket) = self.virtual_host_bucket(host) {
            (bucket.to_owned(), path)
        } else if self.is_path_style_host(host) {
            let rest = path.strip_prefix('/').unwrap_or(path);
            let split = rest.find(['/', '?']).unwrap_or(rest.len());
            (rest[..split].to_owned(), &rest[split..])
        } else {
            return Ok(false);
        };
        if bucket.is_empty() {
            return Ok(false);
        }
        let (key_path, query) = key.split_once('?').unwrap_or((key, ""));
        let object = if key_path.is_empty() || key_path == "/" {
            // A bucket listing (GDAL lists the directory of a file it opens): the key
            // prefix it asks for must be allowed.
            let Some(prefix) = query.split('&').find_map(|kv| kv.strip_prefix("prefix=")) else {
                return Ok(false);
            };
            format!("s3://{bucket}/{}", percent_decode(prefix)?)
        } else {
            format!("s3://{bucket}{key}")
        };
        let object = RemoteUrl::parse(&object)?;
        Ok(self.s3.iter().any(|p| p.allows(&object)))
    }

    /// Hosts an `https` S3 client tunnels to.
    fn s3_tunnel_allows(&self, host: &HostPort) -> bool {
        if self.s3.is_empty() {
            return false;
        }
        let on_https_port = host.port == HTTPS_PORT;
        // Credentials from web identity come from STS, wherever the buckets are.
        if on_https_port && aws_host(&host.host, "sts").is_some_and(str::is_empty) {
            return true;
        }
        if !self.s3_https || (self.s3_endpoint.is_none() && !on_https_port) {
            return false;
        }
        self.virtual_host_bucket(host).is_some() || self.is_path_style_host(host)
    }

    /// The allowed bucket `host` names (`bucket.endpoint`, `bucket.s3[.region].amazonaws.com`).
    fn virtual_host_bucket(&self, host: &HostPort) -> Option<&str> {
        let bucket = match &self.s3_endpoint {
            Some(_) if self.s3_path_style => return None,
            Some(endpoint) => {
                if host.port != endpoint.port {
                    return None;
                }
                host.host.strip_suffix(&endpoint.host)?.strip_suffix('.')?
            }
            None => aws_host(&host.host, "s3")?.strip_suffix('.')?,
        };
        self.s3.iter().map(|p| p.url().authority()).find(|b| *b == bucket)
    }

    /// Whether `host` is the S3 endpoint addressed path style (`s3[.region].amazonaws.com`
    /// on AWS, whose buckets with dots in their names need it).
    fn is_path_style_host(&self, host: &HostPort) -> bool {
        match &self.s3_endpoint {
            Some(endpoint) => self.s3_path_style && endpoint == host,
            None => aws_host(&host.host, "s3").is_some_and(str::is_empty),
        }
    }
}

/// For `[label.]service[.region].amazonaws.com`: `Some("label.")` or `Some("")`.
fn aws_host<'h>(host: &'h str, service: &str) -> Option<&'h str> {
    let rest = host.strip_suffix(".amazonaws.com")?;
    let is_region = |r: &str| {
        !r.is_empty() && r.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    // "label.service.region" or "label.service", the label possibly empty.
    let with_region = rest.rsplit_once('.').filter(|(_, r)| is_region(r)).and_then(|(head, _)| {
        let before = head.strip_suffix(service)?;
        (before.is_empty() || before.ends_with('.')).then_some(before)
    });
    with_region.or_else(|| {
        let before = rest.strip_suffix(service)?;
        (before.is_empty() || before.ends_with('.')).then_some(before)
    })
}

/// Decodes `%XX` and `+` in a query value.
fn percent_decode(value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = value.get(i + 1..i + 3).ok_or("truncated percent escape in the query")?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| "invalid percent escape in the query")?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "the query is not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(prefixes: &[&str], s3: &S3Access, extra: &[&str]) -> EgressPolicy {
        let prefixes: Vec<RemotePrefix> = prefixes.iter().map(|p| RemotePrefix::parse(p).unwrap()).collect();
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        EgressPolicy::new(&prefixes, s3, &extra).unwrap()
    }

    fn minio() -> S3Access {
        S3Access { endpoint: Some("127.0.0.1:9000".into()), path_style: true, https: false }
    }

    #[test]
    fn http_requests_must_lie_under_an_http_prefix() {
        let p = policy(
            &["http://127.0.0.1:8080/cogs/", "http://data.example.com/open"],
            &S3Access::default(),
            &[],
        );
        let allowed = |url: &str| p.check_request(url).is_ok();
        assert_eq!(
            p.check_request("http://127.0.0.1:8080/cogs/a.tif"),
            Ok(HostPort { host: "127.0.0.1".into(), port: 8080 })
        );
        assert!(allowed("http://127.0.0.1:8080/cogs/"));
        assert!(allowed("http://DATA.example.com/open/a.tif?x=1"));
        assert!(allowed("http://data.example.com:80/open/a.tif"), "the default port, written");
        // A redirect to another host, another port, or out of the prefix.
        assert!(!allowed("http://169.254.169.254/latest/meta-data/"));
        assert!(!allowed("http://127.0.0.1:8081/cogs/a.tif"));
        assert!(!allowed("http://127.0.0.1:8080/private/a.tif"));
        assert!(!allowed("http://127.0.0.1:8080/cogs-private/a.tif"));
        assert!(!allowed("http://data.example.com.evil.org/open/a.tif"));
        assert!(!allowed("http://data.example.com/openx"));
        for (url, why) in [
            ("http://user@127.0.0.1:8080/cogs/a.tif", "user information"),
            ("http://127.0.0.1:8080/cogs/../secret", "'..'"),
            ("http://127.0.0.1:8080/cogs/%2e%2e/secret", "percent-encoded"),
            ("https://data.example.com/open/a.tif", "CONNECT"),
            ("/cogs/a.tif", "absolute"),
            ("http://127.0.0.1:99999/cogs/a.tif", "port"),
            ("http://169.254.169.254/", "under none of the allowed prefixes"),
        ] {
            let e = p.check_request(url).unwrap_err();
            assert!(e.contains(why), "{url}: {e}");
        }
        // An https prefix allows no plain http to its host.
        let s = policy(&["https://data.example.com/"], &S3Access::default(), &[]);
        assert!(s.check_request("http://data.example.com/a.tif").is_err());
    }

    #[test]
    fn tunnels_go_to_https_prefix_hosts_only() {
        let p = policy(
            &["https://data.example.com/cogs/", "https://tiles.example.org:8443/"],
            &S3Access::default(),
            &[],
        );
        assert_eq!(
            p.check_connect("data.example.com:443"),
            Ok(HostPort { host: "data.example.com".into(), port: 443 })
        );
        assert!(p.check_connect("Data.Example.com").is_ok(), "443 by default");
        assert!(p.check_connect("tiles.example.org:8443").is_ok());
        assert!(p.check_connect("tiles.example.org:443").is_err());
        assert!(p.check_connect("data.example.com:8443").is_err());
        assert!(p.check_connect("169.254.169.254:443").is_err());
        assert!(p.check_connect("evil.org:443").is_err());
        assert!(p.check_connect("data.example.com.evil.org:443").is_err());
        assert!(p.check_connect("user@data.example.com:443").unwrap_err().contains("user information"));
        // No S3 prefix: no S3 or STS host.
        assert!(p.check_connect("s3.amazonaws.com:443").is_err());
        assert!(p.check_connect("sts.amazonaws.com:443").is_err());
    }

    #[test]
    fn aws_s3_tunnels_reach_the_allowed_buckets_and_sts() {
        let p = policy(&["s3://naip-bucket/pa/"], &S3Access::default(), &[]);
        for ok in [
            "naip-bucket.s3.amazonaws.com:443",
            "naip-bucket.s3.us-west-2.amazonaws.com:443",
            "s3.amazonaws.com:443",
            "s3.eu-central-1.amazonaws.com:443",
            "sts.amazonaws.com:443",
            "sts.us-east-1.amazonaws.com:443",
        ] {
            assert!(p.check_connect(ok).is_ok(), "{ok}");
        }
        for refused in [
            "other-bucket.s3.amazonaws.com:443",
            "naip-bucket.s3.amazonaws.com:80",
            "naip-bucket.s3.amazonaws.com.evil.org:443",
            "x.naip-bucket.s3.amazonaws.com:443",
            "ec2.amazonaws.com:443",
            "iam.amazonaws.com:443",
            "evil-sts.amazonaws.com:443",
            "sts.amazonaws.com:8443",
        ] {
            assert!(p.check_connect(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn path_style_s3_over_http_is_checked_by_bucket_and_key() {
        let p = policy(&["s3://tessera-test/cogs/"], &minio(), &[]);
        assert!(p.check_request("http://127.0.0.1:9000/tessera-test/cogs/a.tif").is_ok());
        // GDAL lists the directory of the file it opens.
        assert!(p.check_request("http://127.0.0.1:9000/tessera-test/?delimiter=%2F&prefix=cogs%2F").is_ok());
        assert!(p.check_request("http://127.0.0.1:9000/tessera-test?prefix=cogs/a").is_ok());
        for refused in [
            "http://127.0.0.1:9000/tessera-test/private/a.tif",
            "http://127.0.0.1:9000/tessera-test/cogs-private/a.tif",
            "http://127.0.0.1:9000/other-bucket/cogs/a.tif",
            "http://127.0.0.1:9000/tessera-test/?delimiter=%2F&prefix=private%2F",
            "http://127.0.0.1:9000/tessera-test/?delimiter=%2F",
            "http://127.0.0.1:9000/tessera-test/?prefix=cogs%2F..%2Fsecret",
            "http://127.0.0.1:9000/",
            "http://127.0.0.1:9001/tessera-test/cogs/a.tif",
            "http://tessera-test.127.0.0.1:9000/cogs/a.tif",
        ] {
            assert!(p.check_request(refused).is_err(), "{refused}");
        }
        // Plain http only; no tunnel to the endpoint when S3 is not https.
        assert!(p.check_connect("127.0.0.1:9000").is_err());
    }

    #[test]
    fn virtual_host_s3_is_checked_by_host_and_key() {
        let http = S3Access { endpoint: Some("minio.internal:9000".into()), path_style: false, https: false };
        let p = policy(&["s3://tessera-test/cogs"], &http, &[]);
        assert!(p.check_request("http://tessera-test.minio.internal:9000/cogs/a.tif").is_ok());
        assert!(p.check_request("http://tessera-test.minio.internal:9000/?prefix=cogs%2F").is_ok());
        assert!(p.check_request("http://tessera-test.minio.internal:9000/private/a.tif").is_err());
        assert!(p.check_request("http://other.minio.internal:9000/cogs/a.tif").is_err());
        assert!(
            p.check_request("http://minio.internal:9000/tessera-test/cogs/a.tif").is_err(),
            "not path style"
        );
        let https = S3Access { endpoint: Some("minio.internal".into()), path_style: false, https: true };
        let p = policy(&["s3://tessera-test/cogs"], &https, &[]);
        assert!(p.check_connect("tessera-test.minio.internal:443").is_ok());
        assert!(p.check_connect("minio.internal:443").is_err());
        assert!(p.check_connect("other.minio.internal:443").is_err());
        assert!(p.check_request("http://tessera-test.minio.internal/cogs/a.tif").is_err(), "https only");
        // AWS over plain http.
        let aws = S3Access { endpoint: None, path_style: false, https: false };
        let p = policy(&["s3://naip-bucket/"], &aws, &[]);
        assert!(p.check_request("http://naip-bucket.s3.us-west-2.amazonaws.com/a.tif").is_ok());
        assert!(p.check_request("http://s3.amazonaws.com/naip-bucket/a.tif").is_ok());
        assert!(p.check_request("http://s3.amazonaws.com/other/a.tif").is_err());
    }

    #[test]
    fn extra_hosts_are_allowed_whole() {
        let p = policy(&[], &S3Access::default(), &["sts.internal:8443", "proxy-cache.internal:8080"]);
        assert!(p.check_connect("sts.internal:8443").is_ok());
        assert!(p.check_connect("sts.internal:443").is_err());
        assert!(p.check_request("http://proxy-cache.internal:8080/anything").is_ok());
        assert!(p.check_request("http://proxy-cache.internal/anything").is_err());
    }

    #[test]
    fn link_local_addresses_are_reachable_only_as_configured_literals() {
        let p = policy(&["http://data.example.com/"], &S3Access::default(), &["169.254.10.10:80"]);
        let named = HostPort::parse("data.example.com", 80).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(p.may_connect(&named, ip("93.184.216.34")));
        assert!(p.may_connect(&named, ip("127.0.0.1")));
        for metadata in ["169.254.169.254", "fe80::1", "fd00:ec2::254", "::ffff:169.254.169.254"] {
            assert!(!p.may_connect(&named, ip(metadata)), "{metadata}");
        }
        let literal = HostPort::parse("169.254.10.10", 80).unwrap();
        assert!(p.may_connect(&literal, ip("169.254.10.10")));
        assert!(!p.may_connect(&literal, ip("169.254.169.254")));
        assert!(!p.may_connect(&HostPort::parse("169.254.169.254", 80).unwrap(), ip("169.254.169.254")));
    }

    #[test]
    fn authorities_parse_with_default_ports_and_ipv6_brackets() {
        assert_eq!(
            HostPort::parse("Example.com", 443),
            Ok(HostPort { host: "example.com".into(), port: 443 })
        );
        assert_eq!(HostPort::parse("[::1]:8080", 80), Ok(HostPort { host: "::1".into(), port: 8080 }));
        assert_eq!(HostPort::parse("[::1]", 80).unwrap().authority(80), "[::1]");
        assert_eq!(HostPort::parse("h:8080", 80).unwrap().authority(80), "h:8080");
        assert!(HostPort::parse("::1", 80).is_err());
        assert!(HostPort::parse(":80", 80).is_err());
        assert!(HostPort::parse("h:", 80).is_err());
    }
}
