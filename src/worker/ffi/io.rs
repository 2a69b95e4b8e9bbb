//! What a job cost in I/O: bytes the process read (local files; remote reads are counted
//! by [`crate::worker::remote_io`]).

/// Bytes this process has read so far through read-like system calls (`rchar` in
/// `/proc/self/io`); 0 where the kernel does not say.
#[must_use]
pub fn read_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
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
