//! The hardening a worker applies to itself before it touches GDAL, and the size checks
//! of what it opens, under the limits the front passed on its command line
//! ([`WorkerLimits`], part of the front/worker contract in `crate::ipc`).
//!
//! What a worker does to itself, in order:
//! - no new privileges (`PR_SET_NO_NEW_PRIVS`): nothing it executes can gain any;
//! - no core dumps (`RLIMIT_CORE` 0): the front logs the crash, and a GDAL core is large;
//! - an address-space limit (`RLIMIT_AS`): a runaway read fails its allocation in this
//!   worker long before the pod's memory limit brings the kernel's OOM killer;
//! - an open-file limit (`RLIMIT_NOFILE`);
//! - a CPU-time backstop per job: before each job the soft `RLIMIT_CPU` is moved to the
//!   CPU time used so far plus the budget, so a job that spins past it dies of `SIGXCPU`
//!   even if nobody is watching the clock (the front's read timeout normally acts first).
//!
//! Its own process group and the minimal environment are set by the front when it
//! spawns the worker (`pool::process`). The directories local assets may be opened
//! under travel with the limits (`--local-root`, see `local_files`).

use crate::ipc::limits::WorkerLimits;
use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage, setrlimit};

/// The soft `RLIMIT_CPU` a worker moves before each job. The hard limit is read once;
/// the soft one is set only when it changes: it counts whole seconds, so most jobs
/// leave it where the last one put it (one system call a job instead of three).
#[derive(Debug)]
pub struct CpuBackstop {
    per_job: u64,
    hard: u64,
    /// The soft limit last set.
    armed: Option<u64>,
}

impl CpuBackstop {
    /// Moves the backstop to "now plus one job's budget" (a no-op when the budget is 0).
    pub fn arm(&mut self) {
        if self.per_job == 0 {
            return;
        }
        let Ok(usage) = getrusage(UsageWho::RUSAGE_SELF) else { return };
        let used = usage.user_time().tv_sec() + usage.system_time().tv_sec();
        let soft = (u64::try_from(used).unwrap_or(0) + self.per_job).min(self.hard);
        if self.armed != Some(soft) && setrlimit(Resource::RLIMIT_CPU, soft, self.hard).is_ok() {
            self.armed = Some(soft);
        }
    }
}

impl WorkerLimits {
    /// Hardens the calling process: see the module documentation.
    pub fn apply(&self) -> Result<(), String> {
        nix::sys::prctl::set_no_new_privs().map_err(|e| format!("cannot set no_new_privs: {e}"))?;
        let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
        if let Some(bytes) = self.memory_limit {
            setrlimit(Resource::RLIMIT_AS, bytes, bytes)
                .map_err(|e| format!("cannot set the address-space limit: {e}"))?;
        }
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| e.to_string())?;
        let files = self.max_open_files.min(hard);
        setrlimit(Resource::RLIMIT_NOFILE, files, files)
            .map_err(|e| format!("cannot set the open-file limit: {e}"))?;
        Ok(())
    }

    /// The per-job CPU-time backstop, armed before each job with [`CpuBackstop::arm`].
    #[must_use]
    pub fn cpu_backstop(&self) -> CpuBackstop {
        let hard = getrlimit(Resource::RLIMIT_CPU).map_or(nix::sys::resource::RLIM_INFINITY, |(_, h)| h);
        CpuBackstop { per_job: self.cpu_seconds_per_job, hard, armed: None }
    }

    /// Why an asset of `width` x `height` pixels and `bands` bands is too large to open,
    /// or `None` when it is within the limits.
    #[must_use]
    pub fn asset_too_large(&self, width: usize, height: usize, bands: usize) -> Option<String> {
        let pixels = (width as u64).saturating_mul(height as u64);
        if pixels > self.max_asset_pixels {
            return Some(format!(
                "the asset is {width} x {height} pixels, more than the {} pixels per band this server opens (--max-asset-pixels)",
                self.max_asset_pixels
            ));
        }
        if bands as u64 > u64::from(self.max_asset_bands) {
            return Some(format!(
                "the asset has {bands} bands, more than the {} this server opens (--max-asset-bands)",
                self.max_asset_bands
            ));
        }
        None
    }

    /// Why `block`, the largest block of an asset, is too large to decode, or `None`
    /// when it is within `--max-block-bytes`.
    #[must_use]
    pub fn block_too_large(&self, block: &Block) -> Option<String> {
        let bytes = block.bytes();
        (bytes > self.max_block_bytes).then(|| {
            let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
            format!(
                "its {} has blocks of {} x {} pixels x {} x {} = {bytes} bytes decompressed, \
                 more than the {} bytes per block this server decodes (--max-block-bytes)",
                block.level,
                block.width,
                block.height,
                plural(block.bands, "band"),
                plural(block.sample_bytes, "byte"),
                self.max_block_bytes
            )
        })
    }
}

/// One block as GDAL decodes it: a tile, or a strip of rows, with every band of a
/// pixel-interleaved image (one band of a band-interleaved one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Where it is: "full resolution", "overview 2", "mask"...
    pub level: String,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels (rows of a strip).
    pub height: usize,
    /// Bands decoded together.
    pub bands: usize,
    /// Bytes per sample.
    pub sample_bytes: usize,
}

impl Block {
    /// Its size once decompressed (saturating: a hostile header can claim anything).
    #[must_use]
    pub fn bytes(&self) -> u64 {
        [self.width, self.height, self.bands, self.sample_bytes]
            .into_iter()
            .fold(1u64, |acc, n| acc.saturating_mul(n as u64))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        limits: WorkerLimits,
    }

    #[test]
    fn limits_round_trip_through_the_command_line() {
        let limits = WorkerLimits {
            memory_limit: Some(1 << 30),
            cpu_seconds_per_job: 7,
            max_open_files: 99,
            max_asset_pixels: 1000,
            max_asset_bands: 3,
            local_roots: vec!["/data".into(), "/mnt/dem".into()],
            max_block_bytes: 5000,
        };
        let mut argv = vec!["worker".to_owned()];
        argv.extend(limits.args());
        assert_eq!(Cli::parse_from(argv).limits, limits);
        assert_eq!(Cli::parse_from(["worker"]).limits, WorkerLimits::default());
    }

    #[test]
    fn the_cpu_backstop_is_set_to_the_time_used_plus_one_budget() {
        let mut backstop =
            WorkerLimits { cpu_seconds_per_job: 1000, ..WorkerLimits::default() }.cpu_backstop();
        backstop.arm();
        let (soft, hard) = getrlimit(Resource::RLIMIT_CPU).unwrap();
        let usage = getrusage(UsageWho::RUSAGE_SELF).unwrap();
        let used = (usage.user_time().tv_sec() + usage.system_time().tv_sec()) as u64;
        assert!((used + 999..=used + 1000).contains(&soft), "soft {soft}, used {used}");
        assert_eq!(backstop.armed, Some(soft));
        assert_eq!(hard, backstop.hard, "the hard limit is kept");
        // Unchanged within the same second: not set again.
        backstop.arm();
        assert_eq!(getrlimit(Resource::RLIMIT_CPU).unwrap().0, soft);
        let off = WorkerLimits { cpu_seconds_per_job: 0, ..WorkerLimits::default() }.cpu_backstop();
        assert_eq!(off.armed, None);
        // Back to no soft limit for the rest of this test process.
        setrlimit(Resource::RLIMIT_CPU, hard, hard).unwrap();
    }

    #[test]
    fn oversized_assets_are_named_with_the_limit() {
        let limits = WorkerLimits::default();
        assert_eq!(limits.asset_too_large(100_000, 100_000, 3), None);
        let why = limits.asset_too_large(100_000, 100_000, 1000).unwrap();
        assert!(why.contains("1000 bands") && why.contains("--max-asset-bands"), "{why}");
        let why = limits.asset_too_large(1 << 20, 1 << 20, 1).unwrap();
        assert!(why.contains("1048576 x 1048576") && why.contains("--max-asset-pixels"), "{why}");
    }

    #[test]
    fn a_block_over_the_limit_is_named_with_its_size_and_the_flag() {
        let limits = WorkerLimits::default();
        let cog =
            Block { level: "full resolution".into(), width: 1024, height: 1024, bands: 4, sample_bytes: 8 };
        assert_eq!(cog.bytes(), 32 << 20);
        assert_eq!(limits.block_too_large(&cog), None, "a usual COG block passes");
        let bomb =
            Block { level: "full resolution".into(), width: 46000, height: 46000, bands: 1, sample_bytes: 1 };
        assert_eq!(
            limits.block_too_large(&bomb).unwrap(),
            "its full resolution has blocks of 46000 x 46000 pixels x 1 band x 1 byte = 2116000000 bytes \
             decompressed, more than the 67108864 bytes per block this server decodes (--max-block-bytes)"
        );
        let absurd =
            Block { level: "overview 3".into(), width: usize::MAX, height: 2, bands: 3, sample_bytes: 8 };
        assert_eq!(absurd.bytes(), u64::MAX, "saturates instead of wrapping");
        assert!(limits.block_too_large(&absurd).unwrap().contains("overview 3 has blocks of"));
    }
}
