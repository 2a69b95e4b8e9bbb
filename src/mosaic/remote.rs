//! Remote assets: `http://`, `https://` and `s3://` URLs, read only under the prefixes
//! the operator allows (`--allow-remote`), and named for workers `/vsitessera/<url>`:
//! a worker reads them through the front ([`crate::fetch`]), which fetches only URLs
//! checked here.
//!
//! The URL check is strict on purpose: no user information (`user@host`), no `.` or
//! `..` segments (raw or percent-encoded), no percent-encoded `/` or `\`, no fragment,
//! no whitespace or control characters. A prefix matches on scheme, host (case
//! insensitive) and a path prefix that ends at a `/`, so `https://data.example.com/cogs`
//! does not allow `https://data.example.com/cogs-private/` or
//! `https://data.example.com.evil.org/`.

use crate::echo::quote;

/// A URL scheme Tessera reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `http://`.
    Http,
    /// `https://`.
    Https,
    /// `s3://bucket/key`.
    S3,
}

/// A parsed remote URL (or prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    scheme: Scheme,
    /// Host[:port], lower case; the bucket for S3.
    authority: String,
    /// From the first `/` on (query included); "/" when empty.
    path: String,
}

/// An `--allow-remote` prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePrefix(RemoteUrl);

/// The prefix of the paths workers know remote assets by (the contract's, in `ipc`).
pub const WORKER_PREFIX: &str = crate::ipc::REMOTE_PREFIX;

/// Whether `path` is one [`RemoteUrl::gdal_path`] makes (read over the network).
#[must_use]
pub fn is_remote_path(path: &std::path::Path) -> bool {
    path.as_os_str().as_encoded_bytes().starts_with(WORKER_PREFIX.as_bytes())
}

/// Whether `name` is meant as a URL (any scheme).
#[must_use]
pub fn looks_remote(name: &str) -> bool {
    name.contains("://")
}

impl RemoteUrl {
    /// Parses and checks a URL; the error says what is wrong with it.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("{} is not a URL", quote(url)))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "s3" => Scheme::S3,
            other => {
                return Err(format!(
                    "scheme '{other}' is not served; remote assets are http, https or s3 URLs"
                ));
            }
        };
        if let Some(c) = url.chars().find(|c| c.is_whitespace() || c.is_control() || matches!(c, '#' | '\\'))
        {
            return Err(format!("URLs may not contain {c:?}"));
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty() {
            return Err(format!(
                "{} names no {}",
                quote(url),
                if scheme == Scheme::S3 { "bucket" } else { "host" }
            ));
        }
        if authority.contains('@') {
            return Err("user information (user@host) in URLs is refused".to_owned());
        }
        let authority = authority.to_ascii_lowercase();
        if scheme == Scheme::S3 {
            check_bucket(&authority)?;
        } else {
            check_host(&authority)?;
        }
        let path = if path.is_empty() { "/".to_owned() } else { path.to_owned() };
        let lower = path.to_ascii_lowercase();
        if ["%2e", "%2f", "%5c"].iter().any(|e| lower.contains(e)) {
            return Err("percent-encoded '.', '/' or '\\' in URL paths are refused".to_owned());
        }
        // An S3 key has no query: a '?' is part of the key, and the segments after it
        // count too (the HTTP layer under /vsis3/ would collapse them).
        let segments = if scheme == Scheme::S3 { &path } else { path.split('?').next().unwrap_or("") };
        if segments.split('/').any(|s| s == "." || s == "..") {
            return Err("'.' and '..' segments in URL paths are refused".to_owned());
        }
        Ok(Self { scheme, authority, path })
    }

    /// The host's address when the URL names an IP literal (`http://10.0.0.5/`,
    /// `http://[::1]:8080/`), not a name.
    #[must_use]
    pub fn ip_literal(&self) -> Option<std::net::IpAddr> {
        if self.scheme == Scheme::S3 {
            return None;
        }
        let (host, _) = split_port(&self.authority);
        host.trim_start_matches('[').trim_end_matches(']').parse().ok()
    }

    /// The path a worker's GDAL opens: `/vsitessera/` and the URL (canonical: scheme and
    /// host in lower case).
    #[must_use]
    pub fn gdal_path(&self) -> String {
        format!("{WORKER_PREFIX}{self}")
    }

    /// The URL a worker path names (the reverse of [`Self::gdal_path`], checked again).
    pub fn from_gdal_path(path: &str) -> Result<Self, String> {
        let url = path
            .strip_prefix(WORKER_PREFIX)
            .ok_or_else(|| format!("{} is not a remote asset", quote(path)))?;
        Self::parse(url)
    }
}

/// `host[:port]` → (host, port); an IPv6 literal keeps its brackets.
fn split_port(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) if end + 1 == authority.len() => (authority, None),
            Some(end) if authority[end + 1..].starts_with(':') => {
                (&authority[..=end], Some(&authority[end + 2..]))
            }
            // Anything else after the ']' stays in the host, which then fails the check.
            _ => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    }
}

/// Whether a host label is a number in any of the forms URL parsers and curl accept for
/// IPv4 parts (decimal, `0x` hex, leading-zero octal).
fn is_numeric_label(label: &str) -> bool {
    let hex = label.strip_prefix("0x");
    match hex {
        Some(h) => h.chars().all(|c| c.is_ascii_hexdigit()),
        None => !label.is_empty() && label.chars().all(|c| c.is_ascii_digit()),
    }
}

/// A host is a DNS name (letters, digits, `-`, `_`, `.`), a dotted-quad IPv4 address, or a
/// bracketed IPv6 address, with an optional decimal port. IPv4 addresses in other forms
/// (`2130706433`, `0x7f.1`, `127.1`, `0177.0.0.1`) are refused: they are how allow-lists
/// are fooled, and no one names a data host that way.
fn check_host(authority: &str) -> Result<(), String> {
    let (host, port) = split_port(authority);
    if let Some(port) = port {
        if port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) || port.parse::<u16>().is_err() {
            return Err(format!("port {} is not a number in 0..=65535", quote(port)));
        }
    }
    if let Some(inner) = host.strip_prefix('[') {
        let Some(inner) = inner.strip_suffix(']') else {
            return Err(format!("{} is not an IPv6 address (no closing ']')", quote(host)));
        };
        return inner
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| format!("{} is not an IPv6 address", quote(host)));
    }
    if host.is_empty()
        || !host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || host.starts_with('.')
        || host.contains("..")
    {
        return Err(format!("host {} is not a valid host name", quote(host)));
    }
    let last = host.trim_end_matches('.').rsplit('.').next().unwrap_or("");
    if is_numeric_label(last) && host.parse::<std::net::Ipv4Addr>().is_err() {
        return Err(format!(
            "host {} is an IPv4 address in a non-canonical form; IP addresses are written as four decimal parts (a.b.c.d)",
            quote(host)
        ));
    }
    Ok(())
}

/// An S3 bucket name: lower-case letters, digits, `.` and `-`, 3 to 63 characters.
fn check_bucket(bucket: &str) -> Result<(), String> {
    let valid = (3..=63).contains(&bucket.len())
        && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-'));
    if valid {
        Ok(())
    } else {
        Err(format!("{} is not an S3 bucket name (3-63 of a-z, 0-9, '.', '-')", quote(bucket)))
    }
}

/// The kind of a special IP address: what the allow-list messages name, and what the
/// fetcher refuses to connect to (link-local, where clouds serve instance metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressRange {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 169.254.0.0/16, fe80::/10, and AWS's IPv6 metadata address fd00:ec2::254.
    LinkLocal,
    /// RFC 1918, carrier-grade NAT (100.64.0.0/10), fc00::/7.
    Private,
    /// Unspecified, broadcast, multicast, 0.0.0.0/8.
    Reserved,
}

impl std::fmt::Display for AddressRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Loopback => "loopback",
            Self::LinkLocal => "link-local (cloud metadata)",
            Self::Private => "private",
            Self::Reserved => "reserved",
        })
    }
}

/// The special range `ip` lies in (an IPv4-mapped IPv6 address counts as its IPv4
/// address), or `None` for a public address.
#[must_use]
pub fn address_range(ip: std::net::IpAddr) -> Option<AddressRange> {
    use std::net::{IpAddr, Ipv6Addr};
    const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some(AddressRange::Loopback)
            } else if v4.is_link_local() {
                Some(AddressRange::LinkLocal)
            } else if v4.is_private() || (a == 100 && (64..128).contains(&b)) {
                Some(AddressRange::Private)
            } else if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() || a == 0 {
                Some(AddressRange::Reserved)
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return address_range(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some(AddressRange::Loopback)
            } else if first & 0xffc0 == 0xfe80 || v6 == AWS_METADATA_V6 {
                Some(AddressRange::LinkLocal)
            } else if first & 0xfe00 == 0xfc00 {
                Some(AddressRange::Private)
            } else if v6.is_unspecified() || v6.is_multicast() {
                Some(AddressRange::Reserved)
            } else {
                None
            }
        }
    }
}

impl RemotePrefix {
    /// Parses an `--allow-remote` value.
    pub fn parse(prefix: &str) -> Result<Self, String> {
        let url = RemoteUrl::parse(prefix).map_err(|e| format!("'{prefix}': {e}"))?;
        if url.path.contains('?') {
            return Err(format!("'{prefix}': a prefix cannot contain a query"));
        }
        Ok(Self(url))
    }

    /// Whether `url` names this prefix's host and port (whatever its scheme and path).
    #[must_use]
    pub fn same_host(&self, url: &RemoteUrl) -> bool {
        self.0.authority == url.authority
    }

    /// Whether `url` lies under this prefix.
    #[must_use]
    pub fn allows(&self, url: &RemoteUrl) -> bool {
        let p = &self.0;
        if p.scheme != url.scheme || p.authority != url.authority || !url.path.starts_with(&p.path) {
            return false;
        }
        // The prefix ends at a path boundary.
        p.path.ends_with('/')
            || url.path.len() == p.path.len()
            || url.path[p.path.len()..].starts_with('/')
            || (p.scheme != Scheme::S3 && url.path[p.path.len()..].starts_with('?'))
    }
}

impl std::fmt::Display for RemotePrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::S3 => "s3",
        };
        write!(f, "{scheme}://{}{}", self.authority, self.path)
    }
}

/// Read access to the parts, for the fetcher ([`crate::fetch`]).
impl RemoteUrl {
    /// The scheme.
    #[must_use]
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Host[:port] in lower case (as written, the port is not normalised); the bucket for S3.
    #[must_use]
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// From the first `/` on, query included; "/" when empty.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl RemotePrefix {
    /// The prefix as a URL.
    #[must_use]
    pub fn url(&self) -> &RemoteUrl {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(prefix: &str, url: &str) -> bool {
        RemotePrefix::parse(prefix).unwrap().allows(&RemoteUrl::parse(url).unwrap())
    }

    #[test]
    fn urls_become_gdal_paths() {
        let u = RemoteUrl::parse("HTTPS://Data.Example.com/cogs/a.tif").unwrap();
        assert_eq!(u.gdal_path(), "/vsitessera/https://data.example.com/cogs/a.tif");
        let s = RemoteUrl::parse("s3://naip-bucket/pa/2021/a.tif").unwrap();
        assert_eq!(s.gdal_path(), "/vsitessera/s3://naip-bucket/pa/2021/a.tif");
        let q = RemoteUrl::parse("http://127.0.0.1:8080/a.tif?sig=x").unwrap();
        assert_eq!(q.gdal_path(), "/vsitessera/http://127.0.0.1:8080/a.tif?sig=x");
        for url in [u, s, q] {
            assert_eq!(RemoteUrl::from_gdal_path(&url.gdal_path()), Ok(url.clone()));
            assert!(is_remote_path(std::path::Path::new(&url.gdal_path())));
        }
        assert!(RemoteUrl::from_gdal_path("/data/a.tif").is_err());
    }

    #[test]
    fn prefixes_match_scheme_host_and_whole_path_segments() {
        assert!(allowed("https://data.example.com/cogs/", "https://data.example.com/cogs/a.tif"));
        assert!(allowed("https://data.example.com/cogs", "https://data.example.com/cogs/x/a.tif"));
        assert!(allowed("s3://naip-bucket/", "s3://naip-bucket/a.tif"));
        assert!(allowed("s3://naip-bucket", "s3://naip-bucket/a.tif"));
        assert!(!allowed("https://data.example.com/cogs", "https://data.example.com/cogs-private/a.tif"));
        assert!(!allowed("https://data.example.com/cogs/", "http://data.example.com/cogs/a.tif"));
        assert!(!allowed("https://data.example.com", "https://data.example.com.evil.org/a.tif"));
        assert!(!allowed("https://data.example.com", "https://data.example.com:8443/a.tif"));
        assert!(!allowed("s3://naip-bucket/", "s3://naip-bucket-2/a.tif"));
        // An S3 key has no query: `pa?x` is a sibling of `pa/`, not under it.
        assert!(allowed("https://data.example.com/cogs", "https://data.example.com/cogs?x=1"));
        assert!(!allowed("s3://naip-bucket/pa", "s3://naip-bucket/pa?x.tif"));
    }

    #[test]
    fn tricky_urls_are_refused() {
        for (url, why) in [
            ("ftp://host/a.tif", "scheme 'ftp'"),
            ("https://user:pw@data.example.com/cogs/a.tif", "user information"),
            ("https://data.example.com/cogs/../secret.tif", "'..'"),
            ("https://data.example.com/cogs/%2e%2e/secret.tif", "percent-encoded"),
            ("https://data.example.com/cogs%2F..%2Fsecret.tif", "percent-encoded"),
            ("https://data.example.com/cogs/a.tif#frag", "'#'"),
            ("https://data.example.com/co gs/a.tif", "' '"),
            ("https:///a.tif", "names no host"),
            ("s3:///key.tif", "names no bucket"),
            // Found by the asset_policy fuzz target: in an S3 key '?' is no query.
            ("s3://naip-bucket/pa/?/../../secret.tif", "'..'"),
        ] {
            let e = RemoteUrl::parse(url).unwrap_err();
            assert!(e.contains(why), "{url}: {e}");
        }
        assert!(RemotePrefix::parse("https://h/a?x=1").unwrap_err().contains("query"));
    }

    #[test]
    fn hosts_are_names_or_canonical_addresses() {
        for (url, why) in [
            ("http://2130706433/a.tif", "non-canonical"),
            ("http://0x7f.0.0.1/a.tif", "non-canonical"),
            ("http://127.1/a.tif", "non-canonical"),
            ("http://0177.0.0.1/a.tif", "non-canonical"),
            ("http://169.254.169.254.:80/a.tif", "non-canonical"),
            ("http://[::1/a.tif", "not an IPv6 address"),
            ("http://[::1]x/a.tif", "not an IPv6 address"),
            ("http://host:99999/a.tif", "port '99999'"),
            ("http://host:/a.tif", "port ''"),
            ("http://ho%73t/a.tif", "not a valid host name"),
            ("http://a..b/a.tif", "not a valid host name"),
            ("s3://Bad_Bucket/a.tif", "not an S3 bucket name"),
        ] {
            let e = RemoteUrl::parse(url).unwrap_err();
            assert!(e.contains(why), "{url}: {e}");
        }
        let v4 = RemoteUrl::parse("http://169.254.169.254/latest/").unwrap();
        assert_eq!(v4.ip_literal(), Some("169.254.169.254".parse().unwrap()));
        let v6 = RemoteUrl::parse("http://[::ffff:127.0.0.1]:8080/a.tif").unwrap();
        assert_eq!(address_range(v6.ip_literal().unwrap()), Some(AddressRange::Loopback));
        assert_eq!(RemoteUrl::parse("https://123.example.com/a.tif").unwrap().ip_literal(), None);
        let range = |ip: &str| address_range(ip.parse().unwrap());
        assert_eq!(range("169.254.169.254"), Some(AddressRange::LinkLocal));
        assert_eq!(AddressRange::LinkLocal.to_string(), "link-local (cloud metadata)");
        assert_eq!(range("fe80::1"), Some(AddressRange::LinkLocal));
        assert_eq!(range("fd00:ec2::254"), Some(AddressRange::LinkLocal));
        assert_eq!(range("::ffff:169.254.169.254"), Some(AddressRange::LinkLocal));
        assert_eq!(range("10.1.2.3"), Some(AddressRange::Private));
        assert_eq!(range("100.64.0.1"), Some(AddressRange::Private));
        assert_eq!(range("fd00::1"), Some(AddressRange::Private));
        assert_eq!(range("8.8.8.8"), None);
    }
}
