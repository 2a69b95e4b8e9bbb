//! The bytes of remote blocks a worker was sent, kept across its jobs.
//!
//! A remote read first asks the front about the blocks it plans to read (see
//! [`super::ffi::remote_io`]). The answer is a round trip through the front's runtime,
//! and on a busy machine each one waits for both processes to be scheduled: measured on
//! the 150 six-asset tiles of BENCHMARKS.md (f), 0.6-0.8 ms a question, with every
//! remote read asking one. A read of a region the worker read before plans the same
//! ranges, so the worker keeps the bytes of the ranges it was sent, by the asset's
//! versioned path (`/vsitessera/<generation>/<url>`: a changed object has other keys,
//! and its old bytes are never served) and the exact range, and such a read asks
//! nothing. Bounded in bytes, least recently used first out (the `lru` crate's order,
//! with the byte count kept here, since the crate bounds entries, not bytes).

use std::{num::NonZeroUsize, rc::Rc};

use lru::LruCache;

use crate::pb::worker::ByteRange;

/// Bytes a worker keeps: the blocks of the regions it read lately. A JPEG block of a
/// NAIP COG is 20-100 KiB, so a few hundred.
pub const HELD_BYTES: usize = 32 * 1024 * 1024;

/// Ranges a worker keeps at most, whatever their bytes (an entry costs its key too).
const HELD_RANGES: usize = 65_536;

/// Kept ranges, by versioned path and exact range.
pub struct HeldBlocks {
    ranges: LruCache<(Rc<str>, u64, u64), Rc<[u8]>>,
    bytes: usize,
    budget: usize,
}

impl HeldBlocks {
    /// An empty store of at most `budget` bytes.
    #[must_use]
    pub fn new(budget: usize) -> Self {
        Self {
            ranges: LruCache::new(NonZeroUsize::new(HELD_RANGES).expect("a non-zero constant")),
            bytes: 0,
            budget,
        }
    }

    /// The bytes of every one of `ranges` of `path`, in order, if all are kept (each
    /// then counts as used now); `None` if any is not.
    pub fn get_all(&mut self, path: &str, ranges: &[ByteRange]) -> Option<Vec<Rc<[u8]>>> {
        let path: Rc<str> = Rc::from(path);
        ranges
            .iter()
            .map(|r| self.ranges.get(&(Rc::clone(&path), r.offset, r.length)).map(Rc::clone))
            .collect()
    }

    /// Keeps `data` as the bytes of `ranges` of `path` (pairwise; a range whose bytes
    /// are short, cut at the end of the asset, is kept as they came), dropping the least
    /// recently used ranges to stay within the budget. A range larger than the whole
    /// budget is not kept.
    pub fn put_all(&mut self, path: &str, ranges: &[ByteRange], data: &[Rc<[u8]>]) {
        let path: Rc<str> = Rc::from(path);
        for (r, bytes) in ranges.iter().zip(data) {
            if bytes.len() > self.budget {
                continue;
            }
            // The entry replaced, or the one dropped at the count bound.
            if let Some((_, old)) = self.ranges.push((Rc::clone(&path), r.offset, r.length), Rc::clone(bytes))
            {
                self.bytes -= old.len();
            }
            self.bytes += bytes.len();
        }
        while self.bytes > self.budget {
            let Some((_, old)) = self.ranges.pop_lru() else { break };
            self.bytes -= old.len();
        }
    }

    /// Bytes kept.
    #[cfg(test)]
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(offset: u64, length: u64) -> ByteRange {
        ByteRange { offset, length }
    }

    fn bytes(n: usize, fill: u8) -> Rc<[u8]> {
        Rc::from(vec![fill; n])
    }

    #[test]
    fn a_read_is_held_only_when_every_range_is_and_only_under_its_own_path() {
        let mut held = HeldBlocks::new(1000);
        held.put_all(
            "/vsitessera/1/http://h/a.tif",
            &[range(0, 10), range(100, 20)],
            &[bytes(10, 1), bytes(20, 2)],
        );
        let got = held.get_all("/vsitessera/1/http://h/a.tif", &[range(100, 20), range(0, 10)]).unwrap();
        assert_eq!((got[0].len(), got[0][0], got[1].len(), got[1][0]), (20, 2, 10, 1));
        // Another range, another generation of the object, another object: not held.
        assert!(held.get_all("/vsitessera/1/http://h/a.tif", &[range(0, 10), range(200, 5)]).is_none());
        assert!(held.get_all("/vsitessera/1/http://h/a.tif", &[range(0, 11)]).is_none());
        assert!(held.get_all("/vsitessera/2/http://h/a.tif", &[range(0, 10)]).is_none());
        assert!(held.get_all("/vsitessera/1/http://h/b.tif", &[range(0, 10)]).is_none());
        assert_eq!(held.bytes(), 30);
    }

    #[test]
    fn the_least_recently_used_ranges_go_first_to_stay_within_the_budget() {
        let mut held = HeldBlocks::new(100);
        let a = "/vsitessera/1/http://h/a.tif";
        held.put_all(a, &[range(0, 40), range(40, 40)], &[bytes(40, 1), bytes(40, 2)]);
        assert!(held.get_all(a, &[range(0, 40)]).is_some()); // now the most recently used
        held.put_all(a, &[range(80, 40)], &[bytes(40, 3)]);
        assert_eq!(held.bytes(), 80);
        assert!(held.get_all(a, &[range(40, 40)]).is_none(), "the least recently used went");
        assert!(held.get_all(a, &[range(0, 40), range(80, 40)]).is_some());
        // Kept again: counted once.
        held.put_all(a, &[range(80, 40)], &[bytes(40, 4)]);
        assert_eq!((held.bytes(), held.get_all(a, &[range(80, 40)]).unwrap()[0][0]), (80, 4));
        // Larger than the whole budget: not kept, nothing dropped for it.
        held.put_all(a, &[range(200, 101)], &[bytes(101, 5)]);
        assert!(held.get_all(a, &[range(200, 101)]).is_none());
        assert_eq!(held.bytes(), 80);
    }
}
