//! The jobs beside tile reads, as rio-tiler runs them: the pixel under a point
//! ([`point`]), statistics of an asset or a box ([`statistics`], with the arithmetic in
//! [`summary`]), a preview of a whole asset ([`preview`]); the pixel-grid arithmetic they
//! share ([`grid`]) and their masked, decimated reads ([`masked_read`]); a whole tile
//! read, selected and encoded in one job ([`whole_tile`]). Tile reads are `super::read`.

pub(super) mod grid;
pub(super) mod masked_read;
pub(super) mod point;
pub(super) mod preview;
pub(super) mod statistics;
pub(super) mod summary;
pub(super) mod whole_tile;
