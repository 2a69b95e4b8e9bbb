//! End-to-end tests: the real `tessera` binary, real worker processes, real GDAL, gRPC
//! over loopback. One test binary with a module per concern.

mod bad_input;
mod batch;
mod faults;
mod grpcurl;
mod harness;
mod health;
mod pixels;
