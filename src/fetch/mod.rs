//! Origins: byte ranges of remote assets (`http://`, `https://`, `s3://`), read by the
//! async front, so GDAL workers never open a socket.
//!
//! Theory of operation. [`Origin::get_range`] asks for one range of one object and
//! returns exactly those bytes (clipped at the object's end), the object's size and its
//! validators, or a [`FetchError`] that says what the caller should do with the failure.
//! It runs one retry loop for every kind of origin:
//!
//! 1. The URL is checked against the allowed prefixes once more (the caller checked it
//!    already; this module does not trust that).
//! 2. An *attempt* is one GET ([`http`] for HTTP(S) with a `Range` header, [`s3`] through
//!    object_store's signing and credential chain, its own retries off). An attempt ends
//!    with all the bytes, verified: the `Content-Range` answers the request, the body is
//!    as long as the range (a short body is a fault, never a result), no longer than asked
//!    (memory is bounded by the range), and the validators match what the caller knew.
//! 3. A slow attempt is *hedged* ([`hedge`]): when it has not finished within the hedge
//!    delay (the larger of a floor and a high percentile of recent latencies), a second
//!    identical request races it and the first complete answer wins; the loser is
//!    dropped, which cancels it. A token bucket keeps hedges to a small share of requests.
//! 4. A transient failure (connection error, reset, attempt timeout, truncated body, 429,
//!    500, 502, 503, 504) is retried after a jittered exponential backoff (`backon`), or
//!    after the origin's `Retry-After`; never past the caller's deadline, at most
//!    [`OriginConfig::max_retries`] times. Other failures end the loop at once.
//!
//! The HTTP client ([`client`]) follows at most five redirects and only to URLs the
//! allowed prefixes admit (a refused redirect is [`FetchError::Denied`] and its target
//! sees no request); its resolver drops link-local addresses, so no allowed name can be
//! pointed at cloud metadata. S3 uses the same client without redirects.
//!
//! Everything lives in the future `get_range` returns: dropping it cancels every request
//! in flight; nothing is spawned.

mod cache;
mod client;
mod counters;
mod hedge;
mod http;
mod reader;
mod s3;
#[cfg(test)]
mod tests;

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

pub use counters::{OriginCounters, OriginCountersSnapshot};
pub use hedge::HedgeConfig;
pub use reader::{AssetReader, ReaderStats};
pub use s3::S3Settings;

use crate::{
    mosaic::{RemotePrefix, RemoteUrl, Scheme},
    telemetry::metrics::Sample,
};

/// Retries after the first attempt, by default.
pub const DEFAULT_MAX_RETRIES: u32 = 4;
/// How long a connection may take to set up (TCP and TLS), by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one attempt may take, headers and body, before it counts as a timeout and is
/// retried, by default (the caller's deadline bounds it too).
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The first backoff before a retry; each next one is twice as long, with jitter.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// The longest backoff before a retry.
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Redirects followed for one request.
const MAX_REDIRECTS: usize = 5;

/// What the origin client may reach and how it behaves.
#[derive(Debug, Clone)]
pub struct OriginConfig {
    /// The `--allow-remote` prefixes: URLs and redirect targets must lie under one.
    pub allow: Vec<RemotePrefix>,
    /// Where and how `s3://` URLs are read.
    pub s3: S3Settings,
    /// PEM certificates trusted in addition to the system's roots (from `SSL_CERT_FILE`
    /// or `CURL_CA_BUNDLE` when the operator set one).
    pub extra_ca_file: Option<PathBuf>,
    /// The limit for setting up one connection.
    pub connect_timeout: Duration,
    /// The limit for one attempt (headers and body).
    pub attempt_timeout: Duration,
    /// Retries after the first attempt of a range.
    pub max_retries: u32,
    /// When slow requests are hedged.
    pub hedge: HedgeConfig,
}

impl OriginConfig {
    /// A configuration with the defaults, reading under `allow`.
    #[must_use]
    pub fn new(allow: Vec<RemotePrefix>, s3: S3Settings) -> Self {
        Self {
            allow,
            s3,
            extra_ca_file: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            hedge: HedgeConfig::default(),
        }
    }
}

/// What identifies one version of an object: compared between reads so that ranges of
/// two versions are never mixed. For S3, `last_modified` is object_store's RFC 3339 form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validator {
    /// The `ETag`, quotes and `W/` included, as the origin sent it.
    pub etag: Option<String>,
    /// The `Last-Modified` date, as the origin sent it.
    pub last_modified: Option<String>,
}

impl Validator {
    /// Whether `other` names another version than `self`: the ETags differ when both are
    /// known, else the modification dates differ when both are known.
    fn differs_from(&self, other: &Validator) -> bool {
        match (&self.etag, &other.etag) {
            (Some(a), Some(b)) => a != b,
            _ => matches!((&self.last_modified, &other.last_modified), (Some(a), Some(b)) if a != b),
        }
    }
}

/// A range read from an origin.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The bytes of the range, clipped at the object's end.
    pub bytes: Bytes,
    /// The object's total size.
    pub size: u64,
    /// The object's validators, as the answer gave them.
    pub validator: Validator,
    /// HTTP requests made for this range: retries and hedges included.
    pub requests: u32,
    /// Time from the first request to the answer, backoff included.
    pub network_time: Duration,
}

/// Why a range could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The object does not exist (404, S3 `NoSuchKey`).
    #[error("not found: {0}")]
    NotFound(String),
    /// Access refused: 401/403, a URL or redirect outside the allowed prefixes, or a
    /// host that resolves only to refused addresses.
    #[error("denied: {0}")]
    Denied(String),
    /// The object is not the version the caller's validator names.
    #[error("changed: {0}")]
    Changed(String),
    /// The range starts at or beyond the object's end (416).
    #[error("out of range: {0}")]
    OutOfRange(String),
    /// The deadline passed, or the next retry could not start before it.
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// Any other failure, after the retries it deserved.
    #[error("failed{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Failed {
        /// The last HTTP status, when there was an answer.
        status: Option<u16>,
        /// What went wrong.
        message: String,
    },
}

/// How one attempt failed: retried or final.
#[derive(Debug)]
enum AttemptError {
    /// Worth another attempt after a backoff.
    Transient {
        /// The counter label: a status code or "reset", "truncated", "timeout", "connect".
        label: String,
        /// The HTTP status, when there was an answer.
        status: Option<u16>,
        /// How long the origin asked to wait (`Retry-After`).
        retry_after: Option<Duration>,
        /// What went wrong.
        message: String,
    },
    /// Not worth retrying; `label` is counted.
    Final { label: String, error: FetchError },
}

impl AttemptError {
    fn label(&self) -> &str {
        match self {
            Self::Transient { label, .. } | Self::Final { label, .. } => label,
        }
    }
}

/// A verified answer of one attempt.
#[derive(Debug)]
struct Answer {
    bytes: Bytes,
    size: u64,
    validator: Validator,
}

/// The origin client: HTTP(S) and S3 range reads under the allowed prefixes.
#[derive(Debug, Clone)]
pub struct Origin {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    allow: Vec<RemotePrefix>,
    max_retries: u32,
    attempt_timeout: Duration,
    http: reqwest::Client,
    s3: s3::S3Stores,
    hedge: hedge::Hedger,
    counters: OriginCounters,
}

impl Origin {
    /// Builds the clients (TLS roots are read here); the error says what is wrong.
    pub fn new(config: OriginConfig) -> Result<Self, String> {
        let tls = client::tls_config(config.extra_ca_file.as_deref())?;
        let http = client::build(&tls, config.connect_timeout, Some(config.allow.clone()))?;
        let s3_client = client::build(&tls, config.connect_timeout, None)?;
        Ok(Self {
            inner: Arc::new(Inner {
                allow: config.allow,
                max_retries: config.max_retries,
                attempt_timeout: config.attempt_timeout,
                http,
                s3: s3::S3Stores::new(config.s3, s3_client),
                hedge: hedge::Hedger::new(config.hedge),
                counters: OriginCounters::default(),
            }),
        })
    }

    /// The counters of every request so far.
    #[must_use]
    pub fn counters(&self) -> &OriginCounters {
        &self.inner.counters
    }

    /// Bytes `range` (end exclusive) of `url`, clipped to the object's end, with the
    /// object's size and validators. Transient faults are retried with jittered backoff
    /// until `deadline`, slow requests hedged. With a `validator`, an object that is no
    /// longer that version is [`FetchError::Changed`] (HTTP sends `If-Match` for a strong
    /// ETag, S3 sends it always; the answer's validators are compared in any case).
    pub async fn get_range(
        &self,
        url: &RemoteUrl,
        range: Range<u64>,
        validator: Option<&Validator>,
        deadline: Instant,
    ) -> Result<Fetched, FetchError> {
        let inner = &*self.inner;
        if !inner.allow.iter().any(|p| p.allows(url)) {
            return Err(FetchError::Denied(format!(
                "{} is under none of the allowed prefixes",
                url_text(url)
            )));
        }
        if range.start >= range.end {
            return Err(FetchError::OutOfRange(format!("empty range {}..{}", range.start, range.end)));
        }
        let started = Instant::now();
        let mut requests = 0;
        let mut backoff = crate::backoff::delays_for(BACKOFF_MIN, BACKOFF_MAX, inner.max_retries as usize);
        loop {
            let attempt = inner.hedge.run(&inner.counters, || self.attempt(url, range.clone(), validator));
            let outcome = tokio::time::timeout_at(deadline, attempt).await;
            let Ok((result, sent)) = outcome else {
                inner.counters.error("deadline");
                return Err(FetchError::DeadlineExceeded);
            };
            requests += sent;
            let error = match result {
                Ok(answer) => {
                    if let Some(expected) = validator
                        && expected.differs_from(&answer.validator)
                    {
                        inner.counters.error("changed");
                        return Err(changed(url, expected, &answer.validator));
                    }
                    return Ok(Fetched {
                        bytes: answer.bytes,
                        size: answer.size,
                        validator: answer.validator,
                        requests,
                        network_time: started.elapsed(),
                    });
                }
                Err(error) => error,
            };
            inner.counters.error(error.label());
            let (status, retry_after, message) = match error {
                AttemptError::Final { error, .. } => return Err(error),
                AttemptError::Transient { status, retry_after, message, .. } => {
                    (status, retry_after, message)
                }
            };
            let Some(delay) = backoff.next() else {
                return Err(FetchError::Failed {
                    status,
                    message: format!("{message} (after {} retries)", inner.max_retries),
                });
            };
            let delay = retry_after.map_or(delay, |asked| asked.max(delay));
            if Instant::now() + delay >= deadline {
                tracing::debug!(url = %url_text(url), %message, "no time left to retry before the deadline");
                return Err(FetchError::DeadlineExceeded);
            }
            tracing::debug!(url = %url_text(url), %message, ?delay, "retrying a remote range");
            inner.counters.retry();
            tokio::time::sleep(delay).await;
        }
    }

    /// One request for the range, bounded by the attempt timeout.
    async fn attempt(
        &self,
        url: &RemoteUrl,
        range: Range<u64>,
        validator: Option<&Validator>,
    ) -> Result<Answer, AttemptError> {
        let inner = &*self.inner;
        // Past the caller's deadline, get_range's own timeout ends the attempt first.
        let until = Instant::now() + inner.attempt_timeout;
        let request = async {
            match url.scheme() {
                Scheme::Http | Scheme::Https => {
                    http::get(&inner.http, &url_text(url), range, validator, &inner.counters).await
                }
                Scheme::S3 => inner.s3.get(url, range, validator, &inner.counters).await,
            }
        };
        tokio::time::timeout_at(until, request).await.unwrap_or_else(|_| {
            Err(AttemptError::Transient {
                label: "timeout".to_owned(),
                status: None,
                retry_after: None,
                message: format!("no complete answer within {:?}", inner.attempt_timeout),
            })
        })
    }
}

/// The URL as it is requested (`s3://bucket/key` for S3).
fn url_text(url: &RemoteUrl) -> String {
    let scheme = match url.scheme() {
        Scheme::Http => "http",
        Scheme::Https => "https",
        Scheme::S3 => "s3",
    };
    format!("{scheme}://{}{}", url.authority(), url.path())
}

fn changed(url: &RemoteUrl, expected: &Validator, found: &Validator) -> FetchError {
    let show = |v: &Validator| {
        v.etag.clone().or_else(|| v.last_modified.clone()).unwrap_or_else(|| "no validator".to_owned())
    };
    FetchError::Changed(format!("{} is now {}, was {}", url_text(url), show(found), show(expected)))
}

/// The origin client the server reads `allow_remote` with: S3 set up from `env` (the
/// front's `AWS_*` variables and the S3 flags, as GDAL named them), and the extra roots
/// of `SSL_CERT_FILE` or `CURL_CA_BUNDLE` trusted when the operator set one.
pub fn build_origin(allow_remote: &[String], env: &[(String, String)]) -> Result<Origin, String> {
    let allow = allow_remote.iter().map(|p| RemotePrefix::parse(p)).collect::<Result<Vec<_>, _>>()?;
    let mut config = OriginConfig::new(allow, S3Settings::from_env(env));
    config.extra_ca_file = ["SSL_CERT_FILE", "CURL_CA_BUNDLE"]
        .iter()
        .find_map(std::env::var_os)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    Origin::new(config)
}

/// Failed origin requests, by status: a sample only once one has failed.
pub const ORIGIN_ERRORS: (&str, &str, &str) = (
    "tessera_origin_errors_total",
    "Failed origin requests by HTTP status or kind (reset, truncated, timeout...).",
    "counter",
);

impl Origin {
    /// The origin's counters, for `/metrics`.
    #[must_use]
    pub fn samples(&self) -> Vec<Sample> {
        let c = self.counters().snapshot();
        let sample = |name, help, value| Sample { name, help, kind: "counter", label: None, value };
        let mut out = vec![
            sample("tessera_origin_requests_total", "Requests to origins (attempts and hedges).", c.requests),
            sample("tessera_origin_bytes_total", "Body bytes received from origins.", c.bytes),
            sample(
                "tessera_origin_retries_total",
                "Origin requests retried after a transient failure.",
                c.retries,
            ),
            sample("tessera_origin_hedges_total", "Hedge requests sent for slow origin requests.", c.hedges),
            sample("tessera_origin_hedge_wins_total", "Hedge requests whose answer was used.", c.hedge_wins),
        ];
        out.extend(c.errors.into_iter().map(|(label, value)| Sample {
            name: ORIGIN_ERRORS.0,
            help: ORIGIN_ERRORS.1,
            kind: ORIGIN_ERRORS.2,
            label: Some(("status", label)),
            value,
        }));
        out
    }
}
