//! What a job cost in I/O: bytes the process read (local files; remote reads are counted
//! by [`crate::worker::remote_io`]).

use std::{fs::File, os::unix::fs::FileExt, sync::OnceLock};

/// `/proc/self/io`, opened once: every job reads it twice, and a read at offset 0 of
/// the open file gives the current figures without an open and a close each time.
static PROC_IO: OnceLock<Option<File>> = OnceLock::new();

/// Bytes this process has read so far through read-like system calls (`rchar` in
/// `/proc/self/io`); 0 where the kernel does not say.
#[must_use]
pub fn read_bytes() -> u64 {
    let Some(file) = PROC_IO.get_or_init(|| File::open("/proc/self/io").ok()) else { return 0 };
    let mut buf = [0u8; 512];
    let Ok(n) = file.read_at(&mut buf, 0) else { return 0 };
    std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| l.strip_prefix("rchar:").and_then(|v| v.trim().parse().ok()))
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_a_file_moves_the_counter() {
        let before = read_bytes();
        let text = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(read_bytes() >= before + text.len() as u64);
    }
}
