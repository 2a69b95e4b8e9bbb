//! The service's error type and its one mapping to gRPC statuses. Every layer's error
//! becomes a [`ServiceError`] with a message that says what was wrong and what is
//! allowed; `From<ServiceError> for Status` is the only place gRPC codes are chosen.

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::echo::{cap_message, quote};

/// Why a request failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// A request field is malformed or out of range.
    #[error("{message}")]
    InvalidArgument {
        /// The offending field, as named in the proto.
        field: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// An asset does not exist, or the tile is outside every asset.
    #[error("{0}")]
    NotFound(String),
    /// An asset is outside what this server may read.
    #[error("{0}")]
    PermissionDenied(String),
    /// A requested point or area lies outside the asset.
    #[error("{0}")]
    OutOfRange(String),
    /// An asset exists but is not a readable GeoTIFF.
    #[error("asset {} cannot be read: {reason}", quote(asset))]
    AssetUnreadable {
        /// The asset as the caller named it.
        asset: String,
        /// Why.
        reason: String,
    },
    /// A limit was hit; the caller may retry after the hint (zero: retrying does not help).
    #[error("{message}")]
    ResourceExhausted {
        /// Which limit, and why.
        message: String,
        /// When a retry is likely to succeed.
        retry_after: Duration,
    },
    /// The deadline passed.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// No worker can serve the request right now.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or a broken worker; details are logged, the caller gets a terse message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    /// An INVALID_ARGUMENT for `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidArgument { field, message: message.into() }
    }
}

impl ServiceError {
    /// The gRPC code this error is answered with.
    #[must_use]
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::NotFound(_) => Code::NotFound,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::OutOfRange(_) => Code::OutOfRange,
            Self::AssetUnreadable { .. } => Code::FailedPrecondition,
            Self::ResourceExhausted { .. } => Code::ResourceExhausted,
            Self::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Self::Unavailable(_) => Code::Unavailable,
            Self::Internal(_) => Code::Internal,
        }
    }
}

/// Every message is capped and escaped here ([`cap_message`]), whatever the layer
/// that wrote it quoted: a status travels in HTTP/2 trailers, which clients limit (8-16
/// KiB), and callers log it.
impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Status {
        let code = e.code();
        let message = cap_message(&e.to_string()).into_owned();
        match e {
            ServiceError::InvalidArgument { field, .. } => Status::with_error_details(
                code,
                message.clone(),
                ErrorDetails::with_bad_request_violation(field, message),
            ),
            // A limit that retrying cannot get under carries no retry hint.
            ServiceError::ResourceExhausted { retry_after, .. } if retry_after.is_zero() => {
                Status::new(code, message)
            }
            ServiceError::ResourceExhausted { retry_after, .. } => {
                Status::with_error_details(code, message, ErrorDetails::with_retry_info(Some(retry_after)))
            }
            ServiceError::Internal(detail) => {
                tracing::error!(detail = %cap_message(&detail), "internal error");
                Status::internal("internal error; see the server log")
            }
            _ => Status::new(code, message),
        }
    }
}

/// A status as the `google.rpc.Status` message carried in batch results.
#[must_use]
pub fn status_message(status: &Status) -> tonic_types::pb::Status {
    use prost::Message;
    if !status.details().is_empty() {
        if let Ok(full) = tonic_types::pb::Status::decode(status.details()) {
            return full;
        }
    }
    tonic_types::pb::Status {
        code: status.code() as i32,
        message: status.message().to_owned(),
        details: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::StatusExt as _;

    use super::*;
    use crate::echo::{MAX_MESSAGE_BYTES, wire_len};

    #[test]
    fn every_status_message_is_capped_and_escaped_whatever_the_layer_wrote() {
        // As a worker might relay a GDAL message: long, on several lines.
        let gdal = format!("read failed: {}\nsecond line", "TIFFReadEncodedTile() failed. ".repeat(40_000));
        let status =
            Status::from(ServiceError::AssetUnreadable { asset: "a.tif".into(), reason: gdal.clone() });
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert!(wire_len(status.message()) <= MAX_MESSAGE_BYTES, "{} bytes", wire_len(status.message()));
        assert!(
            status.message().starts_with("asset 'a.tif' cannot be read: read failed: TIFFReadEncodedTile()")
        );
        let whole = format!("asset 'a.tif' cannot be read: {gdal}").len();
        assert!(status.message().ends_with(&format!("… (message truncated from {whole} bytes)")));

        let status = Status::from(ServiceError::invalid("bands", "one\r\ntwo".repeat(100_000)));
        assert!(wire_len(status.message()) <= MAX_MESSAGE_BYTES, "{} bytes", wire_len(status.message()));
        assert!(status.message().starts_with(r"one\r\ntwoone\r\ntwo"), "{}", &status.message()[..40]);
        let violation = &status.get_details_bad_request().unwrap().field_violations[0];
        assert_eq!((violation.field.as_str(), violation.description.as_str()), ("bands", status.message()));

        // Short messages pass unchanged.
        let status = Status::from(ServiceError::NotFound("asset 'a.tif' does not exist".into()));
        assert_eq!(status.message(), "asset 'a.tif' does not exist");
    }
}
