//! Asset names → files inside the data directory, or URLs under an `--allow-remote`
//! prefix ([`super::remote`]). Everything else that could reach outside is refused here,
//! before any worker sees the name: other URLs, GDAL's `/vsi…` and `DRIVER:` syntaxes,
//! `..`, absolute paths elsewhere, and symlinks that lead out.
//!
//! This check answers the caller early and clearly; it is not what keeps a worker inside
//! the roots. The directory may change between this check and the read (a file renamed
//! over with a symlink out, a FIFO swapped in), so the worker opens the canonical path
//! itself beneath the same roots ([`Self::local_roots`], passed to it at spawn) and reads
//! the descriptor it checked (`worker::local_files`).
//!
//! Errors never carry the OS's words or the server's paths: a name the file system cannot
//! hold is `INVALID_ARGUMENT` naming the limit, a path through a file (`a.tif/`) is
//! `NOT_FOUND` like any other missing asset.
//!
//! A local name's canonical path is remembered for [`RESOLVED_TTL`] (moka): resolving
//! walks every component of the path (a `readlink` each, then a `statx`: 5 system calls
//! an asset in the benchmark's data directory). For a six-asset tile, parsing the request
//! took 43 to 48 us before its first read could start, 15 to 19 us with the names
//! remembered (timestamps in a temporary build, BENCHMARKS.md (i)). Only what resolved is
//! remembered, never a refusal. Within the TTL a remembered path is used without looking
//! again: a file removed, or replaced by a FIFO, a directory or a link out of the roots,
//! is then refused by the worker, which opens the path itself beneath the roots, with the
//! same codes (NOT_FOUND, PERMISSION_DENIED) and its own words; a symlink inside the roots
//! pointed at another file is read from its old target until the TTL has passed.

use std::{
    path::{Component, Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use super::remote::{RemotePrefix, RemoteUrl, looks_remote};
use crate::error::ServiceError;

/// Longest asset name (a path or URL) accepted: Linux's `PATH_MAX`.
pub const MAX_ASSET_NAME_LEN: usize = 4096;
/// Longest path the file system resolves, in bytes (`PATH_MAX` less its NUL).
const MAX_PATH_LEN: usize = 4095;
/// Longest file or directory name, in bytes (`NAME_MAX`).
const MAX_COMPONENT_LEN: usize = 255;

/// An asset the caller named, resolved to what GDAL opens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Asset {
    /// The name as given in the request (used in messages and reports).
    pub name: String,
    /// The canonical path inside the data directory, or the `/vsitessera/` path of an
    /// allowed URL (see [`super::remote::RemoteUrl::gdal_path`]).
    pub path: PathBuf,
}

/// How long a local name's canonical path is remembered (see the module doc).
pub const RESOLVED_TTL: Duration = Duration::from_secs(1);

/// Most bytes of names and paths remembered: names and paths are at most 4 KiB each,
/// so at least 512 names, and about 40,000 of 100-byte names.
const RESOLVED_BYTES: u64 = 4 << 20;

/// Resolves asset names against the data directory (relative names), other local roots
/// (absolute names) and the remote allow-list.
#[derive(Debug, Clone)]
pub struct AssetResolver {
    root: PathBuf,
    /// Canonical local roots absolute names may lie under: the data directory first.
    roots: Vec<PathBuf>,
    remote: Vec<RemotePrefix>,
    /// Local names resolved lately, by name (shared by the clones).
    resolved: moka::sync::Cache<Arc<str>, Arc<Path>>,
}

fn resolved_cache() -> moka::sync::Cache<Arc<str>, Arc<Path>> {
    moka::sync::Cache::builder()
        .max_capacity(RESOLVED_BYTES)
        .weigher(|name: &Arc<str>, path: &Arc<Path>| {
            u32::try_from(name.len() + path.as_os_str().len()).unwrap_or(u32::MAX)
        })
        .time_to_live(RESOLVED_TTL)
        .build()
}

impl AssetResolver {
    /// A resolver for `data_dir`, which must exist; no remote assets.
    pub fn new(data_dir: &Path) -> std::io::Result<Self> {
        let root = data_dir.canonicalize()?;
        Ok(Self { roots: vec![root.clone()], root, remote: Vec::new(), resolved: resolved_cache() })
    }

    /// Also allows absolute paths under `dirs` (`--allow-local`), which must exist.
    pub fn with_local_roots(mut self, dirs: &[PathBuf]) -> Result<Self, String> {
        for dir in dirs {
            let root = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
            self.roots.push(root);
        }
        Ok(self)
    }

    /// The canonical local roots (the data directory first, then each `--allow-local`
    /// directory): what workers may open files beneath.
    #[must_use]
    pub fn local_roots(&self) -> &[PathBuf] {
        &self.roots
    }

    fn inside(&self, path: &Path) -> bool {
        self.roots.iter().any(|r| path.starts_with(r))
    }

    /// Also allows URLs under `prefixes` (`--allow-remote`).
    pub fn with_remote(mut self, prefixes: &[String]) -> Result<Self, String> {
        self.remote = prefixes.iter().map(|p| RemotePrefix::parse(p)).collect::<Result<_, _>>()?;
        Ok(self)
    }

    /// A URL under an allowed prefix, or why it may not be read. Nothing is fetched.
    fn resolve_remote(&self, name: &str) -> Result<Asset, ServiceError> {
        let denied =
            |why: String| ServiceError::PermissionDenied(format!("asset '{name}' is not allowed: {why}"));
        let url = RemoteUrl::parse(name).map_err(denied)?;
        if !self.remote.iter().any(|p| p.allows(&url)) {
            // An address is only ever served when a prefix names it; say so, and what
            // kind of address it is.
            if let Some(ip) = url.ip_literal().filter(|_| !self.remote.iter().any(|p| p.same_host(&url))) {
                let kind = super::remote::address_range(ip).map_or(String::new(), |k| format!(" ({k})"));
                return Err(denied(format!(
                    "{ip}{kind} is an IP-literal host, served only under an --allow-remote prefix that names that address"
                )));
            }
            let allowed = if self.remote.is_empty() {
                "this server reads no remote assets (no --allow-remote prefix is configured)".to_owned()
            } else {
                let list: Vec<String> = self.remote.iter().map(ToString::to_string).collect();
                format!("it is under none of the allowed prefixes: {}", list.join(", "))
            };
            return Err(denied(allowed));
        }
        Ok(Asset { name: name.to_owned(), path: PathBuf::from(url.gdal_path()) })
    }

    /// The canonical data directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolves `name`, or says why it may not be read.
    pub fn resolve(&self, name: &str) -> Result<Asset, ServiceError> {
        let denied = |why: &str| self.denied(name, why);
        if name.is_empty() {
            return Err(ServiceError::invalid("assets", "an asset path is empty"));
        }
        if name.len() > MAX_ASSET_NAME_LEN {
            return Err(ServiceError::invalid(
                "assets",
                format!(
                    "an asset name of {} bytes exceeds the limit of {MAX_ASSET_NAME_LEN} bytes",
                    name.len()
                ),
            ));
        }
        if name.contains('\0') {
            return Err(ServiceError::invalid("assets", format!("asset {name:?} contains a NUL byte")));
        }
        if name.starts_with("/vsi") {
            return Err(denied("GDAL virtual file system paths are not served"));
        }
        if looks_remote(name) {
            return self.resolve_remote(name);
        }
        if name.contains("/vsi") {
            return Err(denied("GDAL virtual file system paths are not served"));
        }
        if let Some((prefix, _)) = name.split_once(':') {
            if !prefix.contains('/') {
                return Err(denied("GDAL driver prefixes are not served"));
            }
        }
        match self.resolved.get(name) {
            Some(canonical) => Ok(Asset { name: name.to_owned(), path: canonical.to_path_buf() }),
            None => self.resolve_local(name),
        }
    }

    /// The PERMISSION_DENIED of a local name, and why.
    fn denied(&self, name: &str, why: &str) -> ServiceError {
        ServiceError::PermissionDenied(format!(
            "asset '{name}' is not allowed: {why}; assets are paths inside the server's data directory{}",
            if self.roots.len() > 1 { " or absolute paths under an --allow-local directory" } else { "" }
        ))
    }

    /// [`resolve`](Self::resolve) for a local name, from the file system.
    fn resolve_local(&self, name: &str) -> Result<Asset, ServiceError> {
        let denied = |why: &str| self.denied(name, why);
        let path = Path::new(name);
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(denied("'..' is not allowed"));
        }
        let joined = if path.is_absolute() { path.to_path_buf() } else { self.root.join(path) };
        if path.is_absolute() && !self.inside(&joined) {
            return Err(denied("absolute paths outside the data directory are refused"));
        }
        too_long(name, &joined)?;
        let canonical = match joined.canonicalize() {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A dangling symlink says nothing about the data directory's contents;
                // one that points outside is refused like any other escape.
                if let Ok(target) = std::fs::read_link(&joined) {
                    let target = joined.parent().map_or(target.clone(), |p| p.join(&target));
                    if !self.inside(&target) || target.components().any(|c| c == Component::ParentDir) {
                        return Err(denied("it is a symlink that leads outside the data directory"));
                    }
                }
                return Err(missing(name));
            }
            // A file used as a directory (`a.tif/`, `a.tif/b`), or a loop of symlinks:
            // nothing by that name.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP)) => {
                return Err(missing(name));
            }
            // Long symlink targets can make a short name too long to resolve.
            Err(e) if e.raw_os_error() == Some(libc::ENAMETOOLONG) => {
                return Err(ServiceError::invalid(
                    "assets",
                    format!(
                        "asset names resolve to paths of at most {MAX_PATH_LEN} bytes; this one does not"
                    ),
                ));
            }
            Err(e) => {
                // The OS's words stay in the log: they can name the server's paths.
                tracing::warn!(asset = name, error = %e, "an asset path could not be resolved");
                return Err(denied("it cannot be resolved"));
            }
        };
        if !self.inside(&canonical) {
            return Err(denied("it resolves (through a symlink) outside the data directory"));
        }
        if !canonical.is_file() {
            return Err(ServiceError::NotFound(format!("asset '{name}' is not a regular file")));
        }
        if canonical.to_str().is_none() {
            return Err(ServiceError::invalid("assets", format!("asset {name:?} is not valid UTF-8")));
        }
        self.resolved.insert(Arc::from(name), Arc::from(canonical.as_path()));
        Ok(Asset { name: name.to_owned(), path: canonical })
    }
}

/// The NOT_FOUND of a name that resolves to nothing.
fn missing(name: &str) -> ServiceError {
    let where_ =
        if Path::new(name).is_absolute() { "under an allowed directory" } else { "in the data directory" };
    ServiceError::NotFound(format!("asset '{name}' does not exist {where_}"))
}

/// Refuses a name the file system cannot hold, naming the limit it exceeds (checked
/// before resolving, so the OS's own `ENAMETOOLONG` never reaches the caller).
fn too_long(name: &str, joined: &Path) -> Result<(), ServiceError> {
    if let Some(long) =
        Path::new(name).components().map(|c| c.as_os_str().len()).find(|l| *l > MAX_COMPONENT_LEN)
    {
        return Err(ServiceError::invalid(
            "assets",
            format!(
                "a file or directory name of {long} bytes in the asset name exceeds the limit of {MAX_COMPONENT_LEN} bytes"
            ),
        ));
    }
    let len = joined.as_os_str().len();
    if len > MAX_PATH_LEN {
        return Err(ServiceError::invalid(
            "assets",
            format!(
                "the asset name makes a path of {len} bytes inside the server's directory, which exceeds the limit of {MAX_PATH_LEN} bytes"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, AssetResolver) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/a.tif"), b"x").unwrap();
        std::fs::write(dir.path().join("secret.tif"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.tif"), dir.path().join("data/link.tif")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/secret.tif", dir.path().join("data/dangling.tif")).unwrap();
        std::os::unix::fs::symlink("gone.tif", dir.path().join("data/dangling_inside.tif")).unwrap();
        let r = AssetResolver::new(&dir.path().join("data")).unwrap();
        (dir, r)
    }

    #[test]
    fn relative_and_absolute_paths_inside_resolve() {
        let (_d, r) = setup();
        let a = r.resolve("a.tif").unwrap();
        assert_eq!(a.path, r.root().join("a.tif"));
        let abs = r.root().join("a.tif");
        assert_eq!(r.resolve(abs.to_str().unwrap()).unwrap().path, a.path);
    }

    #[test]
    fn escapes_are_permission_denied() {
        let (_d, r) = setup();
        for name in [
            "../secret.tif",
            "link.tif",
            "dangling.tif",
            "/etc/passwd",
            "/vsitessera/http://x/a.tif",
            "https://x/a.tif",
            "GTIFF_DIR:1:a.tif",
        ] {
            assert!(
                matches!(r.resolve(name), Err(ServiceError::PermissionDenied(_))),
                "{name} was not refused"
            );
        }
    }

    #[test]
    fn other_local_roots_serve_absolute_paths_only() {
        let (d, r) = setup();
        std::fs::create_dir(d.path().join("dem")).unwrap();
        std::fs::write(d.path().join("dem/h.tif"), b"x").unwrap();
        let abs = d.path().join("dem/h.tif").canonicalize().unwrap();
        let e = r.resolve(abs.to_str().unwrap()).unwrap_err();
        assert!(matches!(e, ServiceError::PermissionDenied(_)));
        let r = r.with_local_roots(&[d.path().join("dem")]).unwrap();
        assert_eq!(r.resolve(abs.to_str().unwrap()).unwrap().path, abs);
        // Still refused: the secret beside both roots, and relative names outside the data dir.
        assert!(matches!(
            r.resolve(d.path().join("secret.tif").to_str().unwrap()),
            Err(ServiceError::PermissionDenied(_))
        ));
        assert!(matches!(r.resolve("../dem/h.tif"), Err(ServiceError::PermissionDenied(_))));
        assert!(r.with_local_roots(&[d.path().join("nope")]).unwrap_err().contains("nope"));
    }

    #[test]
    fn missing_files_are_not_found() {
        let (_d, r) = setup();
        assert!(matches!(r.resolve("dangling_inside.tif"), Err(ServiceError::NotFound(_))));
        let e = r.resolve("nope.tif").unwrap_err();
        assert_eq!(e.to_string(), "asset 'nope.tif' does not exist in the data directory");
    }

    #[test]
    fn names_the_file_system_cannot_hold_name_the_limit_and_no_os_error() {
        let (_d, r) = setup();
        let long_component = "a".repeat(MAX_ASSET_NAME_LEN);
        let long_path = format!("{}xy.tif", "d/".repeat(2045));
        assert_eq!(long_path.len(), MAX_ASSET_NAME_LEN);
        for (name, limit) in [(long_component.as_str(), "255 bytes"), (long_path.as_str(), "4095 bytes")] {
            let e = r.resolve(name).unwrap_err();
            assert!(matches!(e, ServiceError::InvalidArgument { field: "assets", .. }), "{e:?}");
            assert!(e.to_string().contains(&format!("exceeds the limit of {limit}")), "{e}");
            assert!(!e.to_string().contains("os error"), "{e}");
        }
    }

    #[test]
    fn a_file_used_as_a_directory_does_not_exist() {
        let (_d, r) = setup();
        for name in ["a.tif/", "a.tif/b.tif"] {
            let e = r.resolve(name).unwrap_err();
            assert_eq!(e.to_string(), format!("asset '{name}' does not exist in the data directory"));
        }
        let abs = format!("{}/", r.root().join("a.tif").display());
        let e = r.resolve(&abs).unwrap_err();
        assert_eq!(e.to_string(), format!("asset '{abs}' does not exist under an allowed directory"));
    }

    #[test]
    fn directories_and_fifos_are_not_regular_files() {
        let (d, r) = setup();
        std::fs::create_dir(d.path().join("data/dir.tif")).unwrap();
        nix::unistd::mkfifo(&d.path().join("data/fifo.tif"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        for name in ["dir.tif", "fifo.tif"] {
            let e = r.resolve(name).unwrap_err();
            assert_eq!(e.to_string(), format!("asset '{name}' is not a regular file"));
            assert!(matches!(e, ServiceError::NotFound(_)));
        }
    }

    #[test]
    fn a_resolved_name_is_remembered_for_the_ttl_and_a_refused_one_is_not() {
        let (d, r) = setup();
        let data = d.path().join("data");
        let first = r.resolve("a.tif").unwrap();
        // Swapped for a link out of the root: within the TTL the remembered path goes to
        // the worker, whose own open beneath the root refuses it; a clone shares the
        // memory.
        std::fs::remove_file(data.join("a.tif")).unwrap();
        std::os::unix::fs::symlink(d.path().join("secret.tif"), data.join("a.tif")).unwrap();
        assert_eq!(r.clone().resolve("a.tif").unwrap(), first);
        // A refusal is not remembered: the name made a regular file is served at once.
        assert!(matches!(r.resolve("link.tif"), Err(ServiceError::PermissionDenied(_))));
        std::fs::remove_file(data.join("link.tif")).unwrap();
        std::fs::write(data.join("link.tif"), b"x").unwrap();
        assert_eq!(r.resolve("link.tif").unwrap().path, r.root().join("link.tif"));
        // After the TTL the file system is asked again.
        std::thread::sleep(RESOLVED_TTL + Duration::from_millis(200));
        let e = r.resolve("a.tif").unwrap_err();
        assert!(e.to_string().contains("outside the data directory"), "{e}");
    }
}
