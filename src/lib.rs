//! Tessera renders map tiles on the fly from Cloud-Optimized GeoTIFFs, over gRPC.
//!
//! The front process (this library's [`server`]) never calls GDAL: it validates
//! requests ([`api`]), resolves assets ([`mosaic`]), fans reads out to a supervised pool
//! of single-threaded GDAL worker processes ([`pool`], [`worker`]) over a framed
//! protobuf channel ([`ipc`]), composites and encodes the result ([`render`]). Workers
//! reach remote assets only through the front's allow-listing forward proxy
//! ([`egress`]). Traces, metrics and logs are set up in [`telemetry`].

pub mod admin;
pub mod api;
pub mod client;
pub mod config;
pub mod demo;
pub mod echo;
pub mod egress;
pub mod error;
pub mod fetch;
pub mod ipc;
pub mod layers;
pub mod mosaic;
pub mod pb;
pub mod pool;
pub mod render;
pub mod server;
pub mod shutdown;
pub mod telemetry;
pub mod tms;
pub mod worker;
