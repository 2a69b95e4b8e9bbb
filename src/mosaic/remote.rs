//! Remote assets: `http://`, `https://` and `s3://` URLs, read only under the prefixes
//! the operator allows (`--allow-remote`), and turned into GDAL's `/vsicurl/` and
//! `/vsis3/` paths here, in the front, so a worker never sees a URL it was not meant to
//! fetch.
//!
//! The URL check is strict on purpose: no user information (`user@host`), no `.` or
//! `..` segments (raw or percent-encoded), no percent-encoded `/` or `\`, no fragment,
//! no whitespace or control characters. A prefix matches on scheme, host (case
//! insensitive) and a path prefix that ends at a `/`, so `https://data.example.com/cogs`
//! does not allow `https://data.example.com/cogs-private/` or
//! `https://data.example.com.evil.org/`.

/// A URL scheme Tessera reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `http://` through `/vsicurl/`.
    Http,
    /// `https://` through `/vsicurl/`.
    Https,
    /// `s3://bucket/key` through `/vsis3/`.
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

/// Whether `path` is one [`RemoteUrl::gdal_path`] makes (read over the network).
#[must_use]
pub fn is_remote_path(path: &std::path::Path) -> bool {
    path.starts_with("/vsicurl") || path.starts_with("/vsis3")
}

/// Whether `name` is meant as a URL (any scheme).
#[must_use]
pub fn looks_remote(name: &str) -> bool {
    name.contains("://")
}

impl RemoteUrl {
    /// Parses and checks a URL; the error says what is wrong with it.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("'{url}' is not a URL"))?;
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
            return Err(format!("'{url}' names no {}", if scheme == Scheme::S3 { "bucket" } else { "host" }));
        }
        if authority.contains('@') {
            return Err("user information (user@host) in URLs is refused".to_owned());
        }
        let path = if path.is_empty() { "/".to_owned() } else { path.to_owned() };
        let lower = path.to_ascii_lowercase();
        if ["%2e", "%2f", "%5c"].iter().any(|e| lower.contains(e)) {
            return Err("percent-encoded '.', '/' or '\\' in URL paths are refused".to_owned());
        }
        let segments = path.split('?').next().unwrap_or("");
        if segments.split('/').any(|s| s == "." || s == "..") {
            return Err("'.' and '..' segments in URL paths are refused".to_owned());
        }
        Ok(Self { scheme, authority: authority.to_ascii_lowercase(), path })
    }

    /// The path GDAL opens: `/vsicurl/https://host/path` or `/vsis3/bucket/key`.
    #[must_use]
    pub fn gdal_path(&self) -> String {
        match self.scheme {
            Scheme::Http => format!("/vsicurl/http://{}{}", self.authority, self.path),
            Scheme::Https => format!("/vsicurl/https://{}{}", self.authority, self.path),
            Scheme::S3 => format!("/vsis3/{}{}", self.authority, self.path),
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
            || url.path[p.path.len()..].starts_with(['/', '?'])
    }
}

impl std::fmt::Display for RemotePrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.0.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::S3 => "s3",
        };
        write!(f, "{scheme}://{}{}", self.0.authority, self.0.path)
    }
}

/// Read access to the parts, for the egress proxy ([`crate::egress`]), which checks the
/// requests GDAL makes against the same prefixes.
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
        assert_eq!(u.gdal_path(), "/vsicurl/https://data.example.com/cogs/a.tif");
        let s = RemoteUrl::parse("s3://naip-bucket/pa/2021/a.tif").unwrap();
        assert_eq!(s.gdal_path(), "/vsis3/naip-bucket/pa/2021/a.tif");
        let q = RemoteUrl::parse("http://127.0.0.1:8080/a.tif?sig=x").unwrap();
        assert_eq!(q.gdal_path(), "/vsicurl/http://127.0.0.1:8080/a.tif?sig=x");
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
        ] {
            let e = RemoteUrl::parse(url).unwrap_err();
            assert!(e.contains(why), "{url}: {e}");
        }
        assert!(RemotePrefix::parse("https://h/a?x=1").unwrap_err().contains("query"));
    }
}
