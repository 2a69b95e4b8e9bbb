//! The limits a worker runs under, as the front passes them on the worker's command
//! line ([`WorkerLimits::args`]) and `tessera worker` parses them (the same struct, a
//! clap `Args`). What the worker does with them is `crate::worker`'s hardening.

use std::time::Duration;

/// Default of `--worker-max-open-files`.
pub const DEFAULT_MAX_OPEN_FILES: u64 = 1024;
/// Default of `--max-asset-pixels`: 2^34 pixels per band (e.g. 131 072 x 131 072).
pub const DEFAULT_MAX_ASSET_PIXELS: u64 = 1 << 34;
/// Default of `--max-asset-bands`.
pub const DEFAULT_MAX_ASSET_BANDS: u32 = 64;
/// Default of `--max-block-bytes`: 64 MiB, twice the largest block of a usual COG
/// (1024 x 1024 pixels x 4 bands x 8 bytes = 32 MiB).
pub const DEFAULT_MAX_BLOCK_BYTES: u64 = 64 << 20;
/// Default of `--worker-cpu-per-job`.
pub const DEFAULT_CPU_PER_JOB: Duration = Duration::from_secs(60);

/// Limits of one worker process.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct WorkerLimits {
    /// Address-space limit in bytes (RLIMIT_AS); none when absent.
    #[arg(long)]
    pub memory_limit: Option<u64>,
    /// CPU seconds one job may use before the worker dies of SIGXCPU; 0 = no limit.
    #[arg(long, default_value_t = DEFAULT_CPU_PER_JOB.as_secs())]
    pub cpu_seconds_per_job: u64,
    /// Open files (RLIMIT_NOFILE).
    #[arg(long, default_value_t = DEFAULT_MAX_OPEN_FILES)]
    pub max_open_files: u64,
    /// Largest asset the worker opens: width x height.
    #[arg(long, default_value_t = DEFAULT_MAX_ASSET_PIXELS)]
    pub max_asset_pixels: u64,
    /// Largest asset the worker opens: bands.
    #[arg(long, default_value_t = DEFAULT_MAX_ASSET_BANDS)]
    pub max_asset_bands: u32,
    /// A directory (canonical) local assets may be opened under: the data directory and
    /// each `--allow-local` directory (repeated). With none, no local file is opened.
    #[arg(long = "local-root")]
    pub local_roots: Vec<std::path::PathBuf>,
    /// Largest block (tile or strip, as GDAL decodes it) of an asset the worker opens,
    /// in bytes once decompressed.
    #[arg(long, default_value_t = DEFAULT_MAX_BLOCK_BYTES)]
    pub max_block_bytes: u64,
}

impl Default for WorkerLimits {
    fn default() -> Self {
        Self {
            memory_limit: None,
            cpu_seconds_per_job: DEFAULT_CPU_PER_JOB.as_secs(),
            max_open_files: DEFAULT_MAX_OPEN_FILES,
            max_asset_pixels: DEFAULT_MAX_ASSET_PIXELS,
            max_asset_bands: DEFAULT_MAX_ASSET_BANDS,
            local_roots: Vec::new(),
            max_block_bytes: DEFAULT_MAX_BLOCK_BYTES,
        }
    }
}

impl WorkerLimits {
    /// The `tessera worker` arguments that carry these limits.
    #[must_use]
    pub fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(bytes) = self.memory_limit {
            args.extend(["--memory-limit".to_owned(), bytes.to_string()]);
        }
        args.extend([
            "--cpu-seconds-per-job".to_owned(),
            self.cpu_seconds_per_job.to_string(),
            "--max-open-files".to_owned(),
            self.max_open_files.to_string(),
            "--max-asset-pixels".to_owned(),
            self.max_asset_pixels.to_string(),
            "--max-asset-bands".to_owned(),
            self.max_asset_bands.to_string(),
            "--max-block-bytes".to_owned(),
            self.max_block_bytes.to_string(),
        ]);
        for root in &self.local_roots {
            // A root that is not UTF-8 arrives mangled and matches no path: fails closed.
            args.extend(["--local-root".to_owned(), root.to_string_lossy().into_owned()]);
        }
        args
    }
}
