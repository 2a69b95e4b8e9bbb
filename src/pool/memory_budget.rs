//! Whether the workers' memory limits fit the pod. Each worker runs under an
//! address-space limit (`--worker-memory-limit`, RLIMIT_AS) so that a runaway read kills
//! that worker, not the pod; that only holds if all the workers together cannot use more
//! than the pod has. At start the front compares workers x limit with the pod's memory
//! (the smallest of its cgroup's limit, v2 `memory.max` or v1 `memory.limit_in_bytes`,
//! and the machine's `MemTotal`) and logs the figures, with a warning when they do not
//! fit.
//!
//! It warns rather than refuses: RLIMIT_AS counts address space (mappings, reserved
//! heaps, thread stacks), which is usually well above what a worker keeps resident, so
//! an oversubscribed pool often runs fine; the operator is told the numbers and what to
//! change, and the per-worker limit still bounds each read.

use std::path::Path;

/// The memory the server's processes may use together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodMemory {
    /// Bytes.
    pub bytes: u64,
    /// Where the figure comes from.
    pub source: &'static str,
}

/// The pod's memory, read from this machine's `/proc` and `/sys/fs/cgroup`.
#[must_use]
pub fn pod_memory() -> Option<PodMemory> {
    pod_memory_under(Path::new("/"))
}

/// The pod's memory as the files under `root` tell it: the smallest of the cgroup's limit
/// and `MemTotal`.
fn pod_memory_under(root: &Path) -> Option<PodMemory> {
    let cgroups = std::fs::read_to_string(root.join("proc/self/cgroup")).unwrap_or_default();
    let mut found = Vec::new();
    for line in cgroups.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        let path = path.trim_start_matches('/');
        // Our own cgroup's directory, or the mount's root when the mount is the
        // container's own cgroup (a cgroup namespace, or a private mount).
        let (dir, file, source) = if id == "0" && controllers.is_empty() {
            (root.join("sys/fs/cgroup"), "memory.max", "cgroup v2 memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            (root.join("sys/fs/cgroup/memory"), "memory.limit_in_bytes", "cgroup v1 memory.limit_in_bytes")
        } else {
            continue;
        };
        let limit = [dir.join(path).join(file), dir.join(file)]
            .iter()
            .find_map(|f| std::fs::read_to_string(f).ok()?.trim().parse::<u64>().ok());
        if let Some(bytes) = limit {
            found.push(PodMemory { bytes, source });
        }
    }
    let meminfo = std::fs::read_to_string(root.join("proc/meminfo")).unwrap_or_default();
    let total = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok());
    if let Some(kib) = total {
        found.push(PodMemory { bytes: kib.saturating_mul(1024), source: "MemTotal in /proc/meminfo" });
    }
    // An unlimited cgroup reads "max" (v2, not a number) or a huge number (v1).
    found.into_iter().min_by_key(|m| m.bytes)
}

/// `bytes` in GiB, for people.
fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

/// The warning when `workers` workers of `limit` bytes each can use more than `pod`.
#[must_use]
pub fn over_budget(workers: usize, limit: u64, pod: &PodMemory) -> Option<String> {
    let total = limit.saturating_mul(workers as u64);
    (total > pod.bytes).then(|| {
        format!(
            "the workers may use more memory than the pod has: {workers} workers x {} \
             (--worker-memory-limit) = {}, above the pod's {} ({}); lower --workers or \
             --worker-memory-limit until workers x limit is at most {} (the limit is address \
             space, which is usually well above what a worker keeps resident)",
            gib(limit),
            gib(total),
            gib(pod.bytes),
            pod.source,
            gib(pod.bytes)
        )
    })
}

/// Logs the workers' memory budget at start: the figures, and a warning when workers x
/// limit does not fit the pod.
pub fn log_budget(workers: usize, limit: Option<u64>) {
    let pod = pod_memory();
    let pod_bytes = pod.as_ref().map(|p| p.bytes);
    let source = pod.as_ref().map_or("unknown", |p| p.source);
    let Some(limit) = limit else {
        tracing::info!(workers, pod_memory = pod_bytes, source, "workers run without an address-space limit");
        return;
    };
    let total = limit.saturating_mul(workers as u64);
    if let Some(warning) = pod.as_ref().and_then(|p| over_budget(workers, limit, p)) {
        tracing::warn!(
            workers,
            worker_memory_limit = limit,
            total,
            pod_memory = pod_bytes,
            source,
            "{warning}"
        );
    } else {
        tracing::info!(
            workers,
            worker_memory_limit = limit,
            total,
            pod_memory = pod_bytes,
            source,
            "worker memory budget"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, text: &str) {
        let file = root.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }

    #[test]
    fn the_pod_memory_is_the_smallest_of_the_cgroup_limit_and_memtotal() {
        let v2 = tempfile::tempdir().unwrap();
        write(v2.path(), "proc/self/cgroup", "0::/\n");
        write(v2.path(), "sys/fs/cgroup/memory.max", "2147483648\n");
        write(v2.path(), "proc/meminfo", "MemTotal:       16384000 kB\nMemFree: 1 kB\n");
        assert_eq!(
            pod_memory_under(v2.path()),
            Some(PodMemory { bytes: 2 << 30, source: "cgroup v2 memory.max" })
        );
        // No limit ("max"): the machine's memory.
        write(v2.path(), "sys/fs/cgroup/memory.max", "max\n");
        assert_eq!(
            pod_memory_under(v2.path()),
            Some(PodMemory { bytes: 16_384_000 * 1024, source: "MemTotal in /proc/meminfo" })
        );

        let v1 = tempfile::tempdir().unwrap();
        write(v1.path(), "proc/self/cgroup", "5:cpu,cpuacct:/\n4:memory:/kubepods/pod1\n");
        write(v1.path(), "sys/fs/cgroup/memory/kubepods/pod1/memory.limit_in_bytes", "1073741824\n");
        write(v1.path(), "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
        write(v1.path(), "proc/meminfo", "MemTotal:       16384000 kB\n");
        assert_eq!(
            pod_memory_under(v1.path()),
            Some(PodMemory { bytes: 1 << 30, source: "cgroup v1 memory.limit_in_bytes" })
        );
        assert_eq!(pod_memory_under(tempfile::tempdir().unwrap().path()), None);
    }

    #[test]
    fn workers_times_limit_over_the_pod_is_a_warning_with_the_numbers() {
        let pod = PodMemory { bytes: 8 << 30, source: "cgroup v2 memory.max" };
        assert_eq!(over_budget(2, 4 << 30, &pod), None, "exactly the pod fits");
        assert_eq!(
            over_budget(4, 4 << 30, &pod).unwrap(),
            "the workers may use more memory than the pod has: 4 workers x 4.0 GiB \
             (--worker-memory-limit) = 16.0 GiB, above the pod's 8.0 GiB (cgroup v2 memory.max); \
             lower --workers or --worker-memory-limit until workers x limit is at most 8.0 GiB \
             (the limit is address space, which is usually well above what a worker keeps resident)"
        );
        assert!(over_budget(usize::MAX, u64::MAX, &pod).is_some(), "saturates");
    }
}
