//! What the fuzz targets share: a small data directory with the kinds of entries
//! asset resolution must tell apart, built once per process.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The data directory (`<tmp>/tessera-fuzz/data`), created on first use:
///
/// ```text
/// <tmp>/tessera-fuzz/secret.tif        outside the data directory
/// data/a.tif                           a file
/// data/sub/b.tif                       a file in a subdirectory
/// data/inner.tif   -> a.tif            a symlink that stays inside
/// data/passwd.tif  -> /etc/passwd      symlinks that lead out
/// data/secret.tif  -> ../secret.tif
/// data/dangling.tif -> /nonexistent/x.tif
/// ```
///
/// The path is the same for every process (and every libFuzzer job) and each step
/// tolerates what an earlier or concurrent run already made, so runs leave one
/// directory behind, not one per process.
pub fn data_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::temp_dir().join("tessera-fuzz");
        let data = base.join("data");
        std::fs::create_dir_all(data.join("sub")).expect("create the fuzz data directory");
        for (file, content) in
            [(base.join("secret.tif"), "secret"), (data.join("a.tif"), "a"), (data.join("sub/b.tif"), "b")]
        {
            std::fs::write(file, content).expect("write a fuzz data file");
        }
        for (target, link) in [
            ("a.tif", "inner.tif"),
            ("/etc/passwd", "passwd.tif"),
            ("../secret.tif", "secret.tif"),
            ("/nonexistent/x.tif", "dangling.tif"),
        ] {
            match std::os::unix::fs::symlink(target, data.join(link)) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    panic!("symlink {link} -> {target}: {e}")
                }
                _ => {}
            }
        }
        data
    })
}
