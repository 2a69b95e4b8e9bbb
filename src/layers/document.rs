//! Where a layer's document (a MosaicJSON file, a STAC ItemCollection or stac-geoparquet
//! file) lives, which version of it a layer was built from, and reading it: local files
//! here, `http(s)://` and `s3://` URLs through a [`DocumentSource`] the integrator
//! provides (the front's origin client, under `--allow-remote`; this module does no
//! network I/O of its own).
//!
//! A version is what the reload loop compares: a file's modification time and size, an
//! object's size and validators (`ETag`, else `Last-Modified`). A reload asks for the
//! version first and reads the document only when it changed.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{LayerError, footprint::FileStamp};

/// Where a document is: a file (absolute) or a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local file.
    File(PathBuf),
    /// An `http(s)://` or `s3://` URL.
    Url(String),
}

impl Location {
    /// A document as configured: a URL (anything with `://`) as written, a path joined
    /// to `data_dir` when relative.
    #[must_use]
    pub fn configured(text: &Path, data_dir: &Path) -> Self {
        match text.to_str() {
            Some(url) if url.contains("://") => Self::Url(url.to_owned()),
            _ => Self::File(data_dir.join(text)),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(p) => write!(f, "{}", p.display()),
            Self::Url(u) => f.write_str(u),
        }
    }
}

/// One version of a remote object: what its origin answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteVersion {
    /// The object's size in bytes.
    pub size: u64,
    /// The `ETag`, as the origin sent it.
    pub etag: Option<String>,
    /// The `Last-Modified` date, as the origin sent it.
    pub last_modified: Option<String>,
}

/// One version of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// A file's modification time and size.
    File(FileStamp),
    /// An object's size and validators.
    Remote(RemoteVersion),
}

/// Reads remote documents: implemented by the integrator over the front's origin client,
/// which applies the `--allow-remote` policy, retries and size limits. Errors are
/// messages that say what went wrong (refused URL, not found, too large...).
pub trait DocumentSource: Send + Sync {
    /// The object's current version, without its bytes.
    fn version<'a>(&'a self, url: &'a str) -> futures::future::BoxFuture<'a, Result<RemoteVersion, String>>;

    /// The whole object and the version its bytes are of (all of one version).
    fn read<'a>(
        &'a self,
        url: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<(Vec<u8>, RemoteVersion), String>>;
}

/// Reads documents: files directly, URLs through the remote source when there is one.
#[derive(Clone, Default)]
pub struct Documents {
    remote: Option<Arc<dyn DocumentSource>>,
}

impl std::fmt::Debug for Documents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Documents").field("remote", &self.remote.is_some()).finish()
    }
}

impl Documents {
    /// Files only: a URL is refused with a message saying remote documents need
    /// `--allow-remote`.
    #[must_use]
    pub fn local() -> Self {
        Self { remote: None }
    }

    /// Files, and URLs through `remote`.
    #[must_use]
    pub fn with_remote(remote: Arc<dyn DocumentSource>) -> Self {
        Self { remote: Some(remote) }
    }

    fn remote(&self, url: &str) -> Result<&dyn DocumentSource, LayerError> {
        self.remote.as_deref().ok_or_else(|| {
            read_error(
                url,
                "this server reads no remote data (no --allow-remote prefix is configured); \
                 add a prefix that holds the document"
                    .to_owned(),
            )
        })
    }

    /// The document's current version.
    pub async fn version(&self, location: &Location) -> Result<Version, LayerError> {
        match location {
            Location::File(path) => stat(path).await.map(Version::File),
            Location::Url(url) => self
                .remote(url)?
                .version(url)
                .await
                .map(Version::Remote)
                .map_err(|problem| read_error(url, problem)),
        }
    }

    /// The document's bytes and the version they are of (for a file, the stamp taken
    /// just before reading: a write racing the read shows up as a newer stamp on the
    /// next pass).
    pub async fn read(&self, location: &Location) -> Result<(Vec<u8>, Version), LayerError> {
        match location {
            Location::File(path) => {
                let stamp = stat(path).await?;
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|source| LayerError::Read { document: path.display().to_string(), source })?;
                Ok((bytes, Version::File(stamp)))
            }
            Location::Url(url) => {
                let (bytes, version) =
                    self.remote(url)?.read(url).await.map_err(|problem| read_error(url, problem))?;
                Ok((bytes, Version::Remote(version)))
            }
        }
    }
}

fn read_error(url: &str, problem: String) -> LayerError {
    LayerError::Read { document: url.to_owned(), source: std::io::Error::other(problem) }
}

async fn stat(path: &Path) -> Result<FileStamp, LayerError> {
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|source| LayerError::Read { document: path.display().to_string(), source })?;
    Ok(FileStamp::of(&meta))
}
