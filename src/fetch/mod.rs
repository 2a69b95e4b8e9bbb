//! TEMPORARY stand-in for the origin fetcher (replaced by the real one before commit).
#![allow(missing_docs, clippy::unused_async)]

mod cache;
mod reader;

pub use reader::{AssetReader, ReaderStats, Sample};

use std::{ops::Range, time::Duration};

use bytes::Bytes;
use tokio::time::Instant;

use crate::mosaic::RemoteUrl;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validator {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Bytes,
    pub size: u64,
    pub validator: Validator,
    pub requests: u32,
    pub network_time: Duration,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("denied: {0}")]
    Denied(String),
    #[error("changed: {0}")]
    Changed(String),
    #[error("out of range: {0}")]
    OutOfRange(String),
    #[error("deadline exceeded")]
    DeadlineExceeded,
    #[error("failed: {message}")]
    Failed { status: Option<u16>, message: String },
}

#[derive(Debug, Default)]
pub struct OriginCounters;

#[derive(Debug)]
pub struct Origin;

impl Origin {
    pub fn samples(&self) -> Vec<Sample> {
        Vec::new()
    }

    pub async fn get_range(
        &self,
        _url: &RemoteUrl,
        _range: Range<u64>,
        _validator: Option<&Validator>,
        _deadline: Instant,
    ) -> Result<Fetched, FetchError> {
        Err(FetchError::Failed { status: None, message: "no origin yet".into() })
    }
}

/// TEMPORARY.
pub fn build_origin(_allow: &[String], _env: &[(String, String)]) -> Result<Origin, String> {
    Ok(Origin)
}
