//! End-to-end tests: the real `tessera` binary, real worker processes, real GDAL, gRPC
//! over loopback. One test binary with a module per concern.

// Tiles are z/x/y and pixels p of band b: single-letter names are the domain's own.
#![allow(clippy::many_single_char_names)]
// Pixel comparisons index several parallel buffers by the same pixel number.
#![allow(clippy::needless_range_loop, clippy::naive_bytecount)]

#[cfg(not(all(feature = "test-hooks", feature = "tools")))]
compile_error!(
    "the integration tests need the fault-injection hooks and the tools: run them with --features test-hooks,tools (make test does)"
);

mod amplification;
mod antimeridian;
mod backpressure;
mod bad_input;
mod batch;
mod bombs;
mod chaos;
mod cli;
mod connection_limits;
mod connections;
mod corpus;
mod docs;
mod echo;
mod faults;
mod file_swaps;
mod grpcurl;
mod harness;
mod health;
mod hostile;
mod http_range;
mod layers;
mod otlp;
mod overview;
mod parity;
mod pipelining;
mod pixels;
mod python_client;
mod reads;
mod remote;
mod remote_faults;
mod remote_layers;
mod security;
mod supervision;
mod telemetry;
mod whole_tiles;
