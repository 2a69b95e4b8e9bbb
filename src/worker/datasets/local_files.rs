//! Local assets, opened by the worker itself by the rules the front checked them with, so
//! that nothing done to a directory between the front's check and the read (a file
//! renamed over with a symlink out, a FIFO, a device) makes the worker read anything else.
//!
//! Theory of operation:
//! - The front sends the canonical path of an asset it allowed. The worker knows the same
//!   roots (the data directory and each `--allow-local` directory, canonical, passed on its
//!   command line as `--local-root`), finds the one the path lies under, and opens the rest
//!   of the path from that root with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`:
//!   a `..`, an absolute symlink or a relative one that climbs out of the root fails
//!   (`EXDEV`) instead of being followed. Symlinks that stay inside are followed, as the
//!   front follows them. A path under no root is refused: the worker trusts no name.
//! - The open is `O_PATH`: it has no effect on what it names (a FIFO is not opened for
//!   reading, so it cannot block the worker; a device is not opened), and `fstat` on it
//!   must say a regular file.
//! - GDAL reads that inode through `/proc/self/fd/N`, whatever the name means by then. It
//!   opens it as `STAGE/K/name.tif`, a symlink to `/proc/self/fd/N` in a private staging
//!   directory (mode 0700 under `TMPDIR`, one subdirectory `K` per open). GDAL looks for
//!   sidecar files (`.ovr`, `.msk`, `.aux.xml`) beside the path it opens, so each sidecar
//!   that exists beside the asset is opened by the same rules and staged beside it as
//!   `name.tif.ovr -> /proc/self/fd/M`; one that leads out or is not a regular file is
//!   left out, and so is an `.ovr` or `.msk` that is not a TIFF (GDAL would open it
//!   with any driver: a VRT there could read other files). GDAL looks for sidecars only
//!   when directory listing on open is on: the worker turns it on for a local file's
//!   open when it is off by Tessera's default (`GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR`,
//!   which stays in force for remote assets: no request is spent probing for them).
//! - A [`Staged`] asset owns its descriptors and its subdirectory; the dataset cache drops
//!   the dataset first, then the [`Staged`] (which removes the subdirectory, then closes
//!   the descriptors), so a staged link never outlives its descriptor and can never point
//!   at a reused descriptor number.
//! - The dataset cache keys on the asset's path and compares the [`FileId`] (device,
//!   inode, size, modification time) of a fresh open with the one it opened: a file
//!   replaced or rewritten is reopened; the fresh descriptor is closed on a hit.
//! - A worker killed by a signal cannot remove its staging directory; the next worker to
//!   start removes those of workers that are gone.
//!
//! Remote assets (`/vsitessera/`, read through the front) do not pass through here.

use std::{
    os::{
        fd::{AsRawFd, OwnedFd},
        unix::fs::{DirBuilderExt, MetadataExt},
    },
    path::{Component, Path, PathBuf},
};

use nix::{
    errno::Errno,
    fcntl::{OFlag, OpenHow, ResolveFlag, openat2},
    sys::stat::{Mode, SFlag, fstat},
};

/// Sidecar files GDAL may read beside a GeoTIFF (when directory listing is on).
pub const SIDECARS: &[&str] = &[".ovr", ".msk", ".aux.xml"];

/// The prefix of a worker's staging directory name (then its pid, `-`, random).
const STAGE_PREFIX: &str = "tessera-worker-";

/// `openat2` may answer `EAGAIN` when a rename raced its `..` check; tries before giving up.
const EAGAIN_TRIES: usize = 3;

/// Why a local asset could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// Nothing by that name (any more).
    #[error("no such file")]
    NotFound,
    /// The path leads out of its root, or lies under no root.
    #[error("it leads outside the directories this server reads")]
    Denied,
    /// Something other than a regular file (a FIFO, a directory, a device, a socket).
    #[error("it is not a regular file")]
    NotRegular,
    /// The open failed otherwise (descriptors exhausted, I/O error).
    #[error("{0}")]
    Io(String),
}

/// Which version of a file a descriptor refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
    len: i64,
    mtime: (i64, i64),
}

/// A local asset opened beneath its root: an `O_PATH` descriptor of a regular file.
#[derive(Debug)]
pub struct Opened {
    fd: OwnedFd,
    id: FileId,
    root: PathBuf,
    relative: PathBuf,
}

impl Opened {
    /// The file's identity, for the dataset cache.
    #[must_use]
    pub fn id(&self) -> &FileId {
        &self.id
    }
}

/// An opened asset staged for GDAL: its symlink (and its sidecars') in a private
/// subdirectory. Dropping it removes the subdirectory, then closes the descriptors.
#[derive(Debug)]
pub struct Staged {
    dir: PathBuf,
    gdal_path: String,
    /// The asset's and its sidecars' descriptors, which the links name.
    fds: Vec<OwnedFd>,
}

impl Staged {
    /// The path GDAL opens.
    #[must_use]
    pub fn gdal_path(&self) -> &str {
        &self.gdal_path
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        // Links first, descriptors after: no link outlives the descriptor it names.
        let _ = std::fs::remove_dir_all(&self.dir);
        self.fds.clear();
    }
}

/// The roots a worker may open local assets under, and its staging directory.
#[derive(Debug)]
pub struct LocalFiles {
    roots: Vec<PathBuf>,
    stage: PathBuf,
    next: u64,
}

impl LocalFiles {
    /// For `roots` (canonical directories), with a new staging directory under `tmp`
    /// (and the staging directories of workers that are gone removed).
    pub fn new(roots: &[PathBuf], tmp: &Path) -> Result<Self, String> {
        if !Path::new("/proc/self/fd").is_dir() {
            return Err("/proc is not mounted: workers read local assets through /proc/self/fd".into());
        }
        remove_stale_stages(tmp);
        // mkdir fails on an existing name, so a name planted in a shared TMPDIR is never
        // used; 0700 keeps other users out of the links.
        let stage = tmp.join(format!("{STAGE_PREFIX}{}-{:016x}", std::process::id(), rand::random::<u64>()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&stage)
            .map_err(|e| format!("cannot make a staging directory in {}: {e}", tmp.display()))?;
        // The roots are probed so that an old kernel says so at start.
        for root in roots {
            open_root(root).map_err(|e| match e {
                Errno::ENOSYS => "openat2 is not available: workers need Linux 5.6 or later".to_owned(),
                e => format!("local root {}: {e}", root.display()),
            })?;
        }
        Ok(Self { roots: roots.to_vec(), stage, next: 0 })
    }

    /// The staging directory.
    #[cfg(test)]
    #[must_use]
    pub fn stage_dir(&self) -> &Path {
        &self.stage
    }

    /// Opens `path` beneath the root it lies under.
    pub fn open(&self, path: &str) -> Result<Opened, LocalError> {
        // Path's components drop a trailing '/', which the file system would honour.
        if path.ends_with('/') {
            return Err(LocalError::NotFound);
        }
        let path = Path::new(path);
        let (root, relative) = self
            .roots
            .iter()
            .filter_map(|r| path.strip_prefix(r).ok().map(|rel| (r, rel)))
            // The longest root wins (an --allow-local directory inside the data directory).
            .max_by_key(|(r, _)| r.as_os_str().len())
            .ok_or(LocalError::Denied)?;
        if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(LocalError::Denied);
        }
        let root_fd = open_root(root).map_err(|e| LocalError::Io(format!("cannot open its root: {e}")))?;
        let (fd, id) = open_beneath(&root_fd, relative)?;
        Ok(Opened { fd, id, root: root.clone(), relative: relative.to_path_buf() })
    }

    /// Stages `opened` (and the sidecars beside it that the same rules allow) for GDAL.
    pub fn stage(&mut self, opened: Opened) -> Result<Staged, LocalError> {
        let io =
            |what: &str, e: std::io::Error| LocalError::Io(format!("cannot stage the asset ({what}): {e}"));
        let file_name = opened.relative.file_name().map_or_else(|| "asset".into(), ToOwned::to_owned);
        self.next += 1;
        let dir = self.stage.join(self.next.to_string());
        std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(|e| io("directory", e))?;
        // From here on the Staged owns the directory, so an error below removes it.
        let mut staged = Staged { dir, gdal_path: String::new(), fds: Vec::new() };
        let link = staged.dir.join(&file_name);
        std::os::unix::fs::symlink(fd_path(&opened.fd), &link).map_err(|e| io("link", e))?;
        staged.gdal_path = link.to_string_lossy().into_owned();
        staged.fds.push(opened.fd);
        if let Ok(root_fd) = open_root(&opened.root) {
            for suffix in SIDECARS {
                let mut name = file_name.clone();
                name.push(suffix);
                let Ok((fd, _)) = open_beneath(&root_fd, &opened.relative.with_file_name(&name)) else {
                    continue;
                };
                // GDAL opens an overview or mask file with any driver: only a TIFF is
                // staged, so a VRT under such a name cannot make GDAL read other files.
                if *suffix != ".aux.xml" && !is_tiff(&fd) {
                    continue;
                }
                std::os::unix::fs::symlink(fd_path(&fd), staged.dir.join(&name))
                    .map_err(|e| io("sidecar", e))?;
                staged.fds.push(fd);
            }
        }
        Ok(staged)
    }
}

impl Drop for LocalFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.stage);
    }
}

/// Whether the regular file `fd` names starts as a TIFF or BigTIFF does.
fn is_tiff(fd: &OwnedFd) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(fd_path(fd)).and_then(|mut f| f.read_exact(&mut magic)).is_ok()
        && matches!(&magic, b"II*\0" | b"MM\0*" | b"II+\0" | b"MM\0+")
}

fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn open_root(root: &Path) -> nix::Result<OwnedFd> {
    let how = OpenHow::new().flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC);
    openat2(nix::fcntl::AT_FDCWD, root, how)
}

/// `relative` opened from `root_fd` without leaving it; must be a regular file.
fn open_beneath(root_fd: &OwnedFd, relative: &Path) -> Result<(OwnedFd, FileId), LocalError> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .mode(Mode::empty())
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let mut tries = 0;
    let fd = loop {
        tries += 1;
        match openat2(root_fd, relative, how) {
            Ok(fd) => break fd,
            Err(Errno::EAGAIN) if tries < EAGAIN_TRIES => {}
            Err(e) => return Err(classify(e)),
        }
    };
    let stat = fstat(&fd).map_err(|e| LocalError::Io(format!("cannot stat it: {e}")))?;
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(LocalError::NotRegular);
    }
    let id = FileId {
        dev: stat.st_dev,
        ino: stat.st_ino,
        len: stat.st_size,
        mtime: (stat.st_mtime, stat.st_mtime_nsec),
    };
    Ok((fd, id))
}

fn classify(e: Errno) -> LocalError {
    match e {
        Errno::ENOENT | Errno::ENOTDIR | Errno::ENAMETOOLONG => LocalError::NotFound,
        // EXDEV: the walk left the root; ELOOP: a magic link, or a loop of symlinks.
        Errno::EXDEV | Errno::ELOOP | Errno::EACCES | Errno::EPERM | Errno::EAGAIN => LocalError::Denied,
        Errno::EMFILE | Errno::ENFILE => {
            LocalError::Io("the worker has too many open files (raise --worker-max-open-files)".to_owned())
        }
        e => LocalError::Io(format!("cannot open it: {}", e.desc())),
    }
}

/// Removes the staging directories (ours by owner) of workers whose process is gone.
fn remove_stale_stages(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else { return };
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(STAGE_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let gone = !Path::new(&format!("/proc/{pid}")).exists();
        let ours = std::fs::symlink_metadata(entry.path()).is_ok_and(|m| m.is_dir() && m.uid() == uid);
        if gone && ours {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// A root with a file, a sidecar, links inside and out, a FIFO and a directory; the
    /// files, and the canonical root.
    fn setup() -> (tempfile::TempDir, PathBuf, LocalFiles) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        let root = root.canonicalize().unwrap();
        std::fs::write(root.join("a.tif"), b"inside").unwrap();
        std::fs::write(root.join("a.tif.ovr"), b"II*\0overview").unwrap();
        // Not a TIFF: never staged.
        std::fs::write(root.join("a.tif.msk"), b"<VRTDataset/>").unwrap();
        std::fs::write(dir.path().join("secret.tif"), b"secret").unwrap();
        symlink("a.tif", root.join("sub_link.tif")).unwrap();
        symlink("../a.tif", root.join("sub/up.tif")).unwrap();
        symlink(dir.path().join("secret.tif"), root.join("abs_out.tif")).unwrap();
        symlink("../secret.tif", root.join("rel_out.tif")).unwrap();
        symlink("/proc/self/fd/0", root.join("magic.tif")).unwrap();
        symlink(dir.path().join("secret.tif"), root.join("b.tif.ovr")).unwrap();
        std::fs::write(root.join("b.tif"), b"b").unwrap();
        nix::unistd::mkfifo(&root.join("fifo.tif"), Mode::S_IRWXU).unwrap();
        let files = LocalFiles::new(std::slice::from_ref(&root), dir.path()).unwrap();
        (dir, root, files)
    }

    fn at(root: &Path, name: &str) -> String {
        root.join(name).to_string_lossy().into_owned()
    }

    #[test]
    fn files_and_links_that_stay_inside_open_and_read_the_right_file() {
        let (_d, root, mut files) = setup();
        for name in ["a.tif", "sub_link.tif", "sub/up.tif"] {
            let staged = files.stage(files.open(&at(&root, name)).unwrap()).unwrap();
            assert_eq!(std::fs::read(staged.gdal_path()).unwrap(), b"inside", "{name}");
        }
    }

    #[test]
    fn escapes_fifos_and_directories_are_refused_without_opening_them() {
        let (d, root, files) = setup();
        for name in ["abs_out.tif", "rel_out.tif", "magic.tif"] {
            assert_eq!(files.open(&at(&root, name)).unwrap_err(), LocalError::Denied, "{name}");
        }
        // Under no root, or climbing out textually.
        let secret = d.path().join("secret.tif").to_string_lossy().into_owned();
        assert_eq!(files.open(&secret).unwrap_err(), LocalError::Denied);
        assert_eq!(files.open(&at(&root, "sub/../../secret.tif")).unwrap_err(), LocalError::Denied);
        // A FIFO returns at once (O_PATH does not wait for a writer).
        assert_eq!(files.open(&at(&root, "fifo.tif")).unwrap_err(), LocalError::NotRegular);
        assert_eq!(files.open(&at(&root, "sub")).unwrap_err(), LocalError::NotRegular);
        assert_eq!(files.open(&at(&root, "nope.tif")).unwrap_err(), LocalError::NotFound);
        assert_eq!(files.open(&at(&root, "a.tif/")).unwrap_err(), LocalError::NotFound);
    }

    #[test]
    fn the_identity_changes_when_the_file_is_replaced_or_rewritten() {
        let (_d, root, files) = setup();
        let first = files.open(&at(&root, "a.tif")).unwrap().id().clone();
        assert_eq!(files.open(&at(&root, "sub_link.tif")).unwrap().id(), &first);
        std::fs::write(root.join("new.tif"), b"inside").unwrap();
        std::fs::rename(root.join("new.tif"), root.join("a.tif")).unwrap();
        assert_ne!(files.open(&at(&root, "a.tif")).unwrap().id(), &first);
    }

    #[test]
    fn sidecars_are_staged_by_the_same_rules_and_staging_is_removed_on_drop() {
        let (_d, root, mut files) = setup();
        let staged = files.stage(files.open(&at(&root, "a.tif")).unwrap()).unwrap();
        let ovr = format!("{}.ovr", staged.gdal_path());
        assert_eq!(std::fs::read(&ovr).unwrap(), b"II*\0overview");
        assert!(!Path::new(&format!("{}.msk", staged.gdal_path())).exists());
        // b.tif's .ovr leads out of the root: it is not staged.
        let b = files.stage(files.open(&at(&root, "b.tif")).unwrap()).unwrap();
        assert!(!Path::new(&format!("{}.ovr", b.gdal_path())).exists());
        let dir = Path::new(staged.gdal_path()).parent().unwrap().to_path_buf();
        drop(staged);
        assert!(!dir.exists());
        let stage = files.stage_dir().to_path_buf();
        drop((b, files));
        assert!(!stage.exists());
    }

    #[test]
    fn stale_staging_directories_of_gone_workers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // No process has pid 4194305 (above the kernel's largest pid).
        let stale = dir.path().join(format!("{STAGE_PREFIX}4194305-abcdef"));
        let live = dir.path().join(format!("{STAGE_PREFIX}{}-abcdef", std::process::id()));
        std::fs::create_dir_all(stale.join("1")).unwrap();
        std::fs::create_dir(&live).unwrap();
        let files = LocalFiles::new(&[], dir.path()).unwrap();
        assert!(!stale.exists());
        assert!(live.exists());
        assert!(files.stage_dir().starts_with(dir.path()));
    }
}
