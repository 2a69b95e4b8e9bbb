//! Tessera renders map tiles on the fly from Cloud-Optimized GeoTIFFs, over gRPC.
//!
//! The front process (this library's [`server`]) never calls GDAL: it validates
//! requests ([`api`]), resolves assets ([`mosaic`]), fans reads out to a supervised pool
//! of single-threaded GDAL worker processes ([`pool`], [`worker`]) over a framed
//! protobuf channel ([`ipc`]), composites and encodes the result ([`render`]). Remote
//! assets are fetched by the front alone ([`fetch`]), into one cache that workers read
//! through their channel; workers have no network of their own. Traces, metrics and
//! logs are set up in [`telemetry`].

pub mod admin;
pub mod api;
pub mod backoff;
pub mod client;
pub mod config;
pub mod demo;
pub mod echo;
pub mod engine;
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
