//! What a job cost in I/O: bytes the process read (local files) and GDAL's own network
//! statistics (remote files).

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

/// HTTP requests and downloaded bytes in GDAL's network statistics
/// (`VSINetworkStatsGetAsSerializedJSON`): the totals over every method in its top-level
/// `methods` object, e.g. `{"methods":{"GET":{"count":2,"downloaded_bytes":16384},
/// "HEAD":{"count":1}}, "handlers":{...}}`.
#[must_use]
pub fn network_totals(json: &str) -> (u64, u64) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(json) else { return (0, 0) };
    let Some(methods) = value.get("methods").and_then(serde_json::Value::as_object) else { return (0, 0) };
    methods.values().fold((0, 0), |(requests, bytes), m| {
        let get = |k: &str| m.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        (requests + get("count"), bytes + get("downloaded_bytes"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_totals_sum_every_method() {
        let json = r#"{"methods":{"GET":{"count":2,"downloaded_bytes":16384},"HEAD":{"count":1}},
            "handlers":{"vsicurl":{"methods":{"GET":{"count":2,"downloaded_bytes":16384}}}}}"#;
        assert_eq!(network_totals(json), (3, 16384));
        assert_eq!(network_totals("{}"), (0, 0));
        assert_eq!(network_totals("not json"), (0, 0));
    }

    #[test]
    fn reading_a_file_moves_the_counter() {
        let before = read_bytes();
        let text = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(read_bytes() >= before + text.len() as u64);
    }
}
