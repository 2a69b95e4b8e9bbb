//! The front's allocator: memory a tile frees is kept for the next tile instead of being
//! handed back to the kernel after every tile.
//!
//! Why. glibc's malloc gives the free top of a thread's arena back to the kernel once it
//! is larger than the trim threshold, and serves a block larger than the mmap threshold
//! with a mapping of its own. Both start at 128 KiB and rise only as such blocks are
//! freed. A tile's buffers (each asset's answer copied out of the reply region, the
//! selection's planes, the encoder's) are a few hundred KiB each, allocated and freed on
//! tokio's threads, and their arenas were trimmed after nearly every tile: the next tile
//! paid for fresh pages, one page fault each. Measured with one worker, one tile at a
//! time, over the 150 tiles of BENCHMARKS.md (i): 46 minor faults a tile in the front,
//! none in the worker, and none in the floor (one thread, glibc's main arena, which the
//! dynamic thresholds suit). With the thresholds pinned where glibc's own adjustment
//! tops out (mmap 32 MiB, trim twice that) the front took 0.02 faults a tile, and its CPU
//! a tile fell by a quarter (1.35 to 1.03 ms, lower in each of 6 paired rounds).
//!
//! What it costs. Memory freed stays in the process, up to 64 MiB at the top of each
//! arena, so the front's resident size stays near its high-water mark instead of
//! falling back between bursts; what renders hold at once is bounded by
//! `--max-in-flight-memory` as before. Blocks over 32 MiB still get mappings of their
//! own, returned when freed.
//!
//! Only the front: a worker's buffers are GDAL's and the reply region, and it took no
//! faults a tile to begin with.

/// Blocks up to this size come from the arenas (glibc's `DEFAULT_MMAP_THRESHOLD_MAX` on
/// 64-bit, the highest its dynamic threshold goes).
const MMAP_THRESHOLD: i32 = 32 << 20;

/// An arena's free top is given back only beyond this (twice the mmap threshold, as
/// glibc's dynamic rule sets it).
const TRIM_THRESHOLD: i32 = 64 << 20;

/// Pins the thresholds (see the module doc); call before the runtime's threads start.
/// Returns whether glibc took both.
#[must_use]
pub fn keep_freed_memory() -> bool {
    // SAFETY: mallopt only sets malloc's parameters; it is called before other threads
    // exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    }
}
