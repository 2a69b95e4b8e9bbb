//! Where the worker meets GDAL's C API: the warp call ([`warp`]) and the virtual file
//! system through which remote assets are read from the front ([`remote_io`], with its
//! channel [`io`]) — the only `unsafe` code, each block with its SAFETY note — and the
//! error handler that collects GDAL's messages ([`gdal_errors`]).

pub(super) mod gdal_errors;
pub(super) mod io;
pub(super) mod remote_io;
pub(super) mod warp;
