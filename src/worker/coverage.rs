//! What the reads of one first-wins tile have covered in this worker, so that a read of
//! the same tile that can no longer change a pixel is answered `COVERED` without being
//! run (`ReadRequest.tile`).
//!
//! Why. With fewer idle workers than a tile has reads, the front queues the next read
//! in the pipe of the worker reading the one before it (`pool/pipeline.rs`). The worker
//! starts it as soon as it has answered, before the front has seen the answer; when
//! that answer had completed the tile, the queued read was work for nothing, and the
//! next tile's first read waited behind it. Measured on the 150 mosaic tiles of
//! BENCHMARKS.md (i), one worker: 2.37 reads ran a tile for 2.27 used.
//!
//! The rule. Under first-wins selection a pixel that an asset earlier in the tile's
//! order made valid is never changed by a later one. So a read of rank `r` can change
//! nothing when the reads of its tile this worker ran, all of rank below `r`, together
//! left every pixel valid. Reads of other ranks, failed reads and reads of another tile
//! add nothing; a read of a new tile starts afresh. The masks are the ones the answers
//! carry, which the front composites as they are (it does not ask for this without
//! first-wins selection, or with an expression, whose result can mask pixels anew).

/// The coverage of the last tile whose reads ran here.
#[derive(Debug, Default)]
pub(super) struct Coverage {
    /// The tile (0: none yet).
    tile: u64,
    /// The highest rank of its reads that ran.
    highest_rank: u32,
    /// Pixels in each of its answers.
    pixels: usize,
    /// Whether those reads left no pixel invalid.
    complete: bool,
    /// The union of their masks while not complete.
    union: Vec<u8>,
}

impl Coverage {
    /// Whether a read of `tile` (non-zero) at `rank` can change no pixel.
    pub(super) fn covers(&self, tile: u64, rank: u32) -> bool {
        tile != 0 && self.tile == tile && self.complete && self.highest_rank < rank
    }

    /// Notes the mask (0 = invalid) of a read of `tile` at `rank` that ran.
    pub(super) fn note(&mut self, tile: u64, rank: u32, mask: &[u8]) {
        if tile == 0 || mask.is_empty() {
            return;
        }
        if self.tile == tile && self.pixels != mask.len() {
            // Answers of one tile in two sizes, which the front would not composite:
            // forgotten rather than trusted.
            *self = Self::default();
            return;
        }
        if self.tile != tile {
            let complete = !mask.contains(&0);
            let union = if complete { Vec::new() } else { mask.to_vec() };
            *self = Self { tile, highest_rank: rank, pixels: mask.len(), complete, union };
            return;
        }
        self.highest_rank = self.highest_rank.max(rank);
        if self.complete {
            return;
        }
        for (u, m) in self.union.iter_mut().zip(mask) {
            *u |= *m;
        }
        self.complete = !self.union.contains(&0);
        if self.complete {
            self.union = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Coverage;

    #[test]
    fn a_read_is_covered_only_by_earlier_reads_of_its_tile_that_left_no_pixel_invalid() {
        let mut c = Coverage::default();
        assert!(!c.covers(7, 1), "nothing ran yet");
        c.note(7, 0, &[255, 0, 255, 0]);
        assert!(!c.covers(7, 1), "half the pixels are still invalid");
        c.note(7, 1, &[0, 255, 0, 0]);
        assert!(!c.covers(7, 2), "one pixel is still invalid");
        c.note(7, 2, &[0, 0, 0, 255]);
        assert!(c.covers(7, 3), "ranks 0-2 left every pixel valid");
        assert!(!c.covers(7, 2), "a rank that ran is not covered by itself");
        assert!(!c.covers(7, 0), "an earlier rank wins over later ones");
        assert!(!c.covers(8, 3), "another tile");
        assert!(!c.covers(0, 3), "a read of no tile");
    }

    #[test]
    fn a_read_that_ran_out_of_order_raises_the_rank_a_read_must_exceed() {
        let mut c = Coverage::default();
        c.note(3, 4, &[255, 255]);
        assert!(c.covers(3, 5));
        assert!(!c.covers(3, 2), "rank 2 comes before the rank 4 that covered the tile");
        c.note(3, 2, &[0, 0]);
        assert!(!c.covers(3, 4) && c.covers(3, 5));
    }

    #[test]
    fn a_new_tile_an_empty_mask_or_a_mask_of_another_size_starts_afresh() {
        let mut c = Coverage::default();
        c.note(1, 0, &[255, 255]);
        c.note(2, 0, &[255, 0]);
        assert!(!c.covers(2, 1) && !c.covers(1, 1), "tile 2 replaced tile 1");
        c.note(2, 1, &[255, 255, 255]);
        assert!(!c.covers(2, 2), "a mask of another size is not trusted");
        c.note(5, 0, &[]);
        assert!(!c.covers(5, 1), "an empty mask covers nothing");
        c.note(0, 0, &[255]);
        assert!(!c.covers(0, 1), "reads of no tile are not noted");
    }
}
