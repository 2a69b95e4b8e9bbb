//! One HTTP(S) attempt: `GET` with `Range: bytes=a-b`, the answer verified.
//!
//! A `206` must carry a `Content-Range` that starts where the request did, ends where
//! the request or the object does, and names the object's size; its body must be exactly
//! that long. A `200` (an origin that ignores `Range`) is the whole object: it is taken
//! only when it is no longer than the range asked for (a small object read from 0), so
//! memory stays bounded by the request; a longer one is refused, not buffered.

use std::ops::Range;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, ETAG, HeaderMap, IF_MATCH, LAST_MODIFIED, RANGE, RETRY_AFTER};

use super::counters::OriginCounters;
use super::{Answer, AttemptError, FetchError, Validator, client};

/// Reads `range` of `url` (end exclusive, not empty).
pub(super) async fn get(
    client: &reqwest::Client,
    url: &str,
    range: Range<u64>,
    validator: Option<&Validator>,
    counters: &OriginCounters,
) -> Result<Answer, AttemptError> {
    let mut request = client.get(url).header(RANGE, format!("bytes={}-{}", range.start, range.end - 1));
    // A weak ETag never matches If-Match; those are compared after the answer instead.
    if let Some(etag) = validator.and_then(|v| v.etag.as_deref()).filter(|e| !e.starts_with("W/")) {
        request = request.header(IF_MATCH, etag);
    }
    let mut response = request.send().await.map_err(|e| transport(&e, "request"))?;
    let status = response.status();
    let headers = response.headers().clone();
    let found = Validator { etag: header(&headers, &ETAG), last_modified: header(&headers, &LAST_MODIFIED) };
    let wanted = range.end - range.start;
    let (start, size) = match status {
        StatusCode::PARTIAL_CONTENT => {
            let value = header(&headers, &CONTENT_RANGE).unwrap_or_default();
            let (start, end, size) =
                parse_content_range(&value).ok_or_else(|| bad_range(url, &value, &range))?;
            if start != range.start || end > size || end != range.end.min(size) {
                return Err(bad_range(url, &value, &range));
            }
            (start, size)
        }
        StatusCode::OK => (0, u64::MAX),
        StatusCode::NOT_FOUND | StatusCode::GONE => {
            return Err(final_error(status, FetchError::NotFound(format!("{url}: HTTP {status}"))));
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            return Err(final_error(status, FetchError::Denied(format!("{url}: HTTP {status}"))));
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            return Err(final_error(
                status,
                FetchError::OutOfRange(format!("{url}: bytes {}.. lie beyond the end", range.start)),
            ));
        }
        StatusCode::PRECONDITION_FAILED => {
            let was = validator.and_then(|v| v.etag.clone()).unwrap_or_default();
            return Err(final_error(status, FetchError::Changed(format!("{url} no longer has ETag {was}"))));
        }
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::INTERNAL_SERVER_ERROR
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => {
            return Err(AttemptError::Transient {
                label: status.as_str().to_owned(),
                status: Some(status.as_u16()),
                retry_after: retry_after(&headers),
                message: format!("{url}: HTTP {status}"),
            });
        }
        other => {
            return Err(final_error(
                other,
                FetchError::Failed {
                    status: Some(other.as_u16()),
                    message: format!("{url}: unexpected HTTP {other}"),
                },
            ));
        }
    };
    // The body: exactly the range of a 206; for a 200 at most `wanted` bytes (one more
    // byte read proves it too long).
    let expected = if status == StatusCode::OK { wanted } else { range.end.min(size) - start };
    let mut body = BytesMut::with_capacity(usize::try_from(expected).unwrap_or(0).min(64 << 20));
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                counters.received(chunk.len() as u64);
                if (body.len() + chunk.len()) as u64 > expected {
                    let message = if status == StatusCode::OK {
                        format!(
                            "{url} ignores Range and answers the whole object, which is larger than the {wanted} bytes asked for"
                        )
                    } else {
                        format!("{url} sent more than the {expected} bytes of its Content-Range")
                    };
                    return Err(final_error(
                        status,
                        FetchError::Failed { status: Some(status.as_u16()), message },
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err(transport(&e, "body")),
        }
    }
    let body = body.freeze();
    if status == StatusCode::OK {
        return whole_object(url, body, range, found);
    }
    if (body.len() as u64) < expected {
        return Err(AttemptError::Transient {
            label: "truncated".to_owned(),
            status: Some(status.as_u16()),
            retry_after: None,
            message: format!("{url}: body of {} bytes, {expected} expected", body.len()),
        });
    }
    Ok(Answer { bytes: body, size, validator: found })
}

/// The answer from a `200`: the whole object, `range` cut out of it.
fn whole_object(
    url: &str,
    body: Bytes,
    range: Range<u64>,
    validator: Validator,
) -> Result<Answer, AttemptError> {
    let size = body.len() as u64;
    if range.start >= size {
        return Err(final_error(
            StatusCode::OK,
            FetchError::OutOfRange(format!(
                "{url}: bytes {}.. lie beyond the end ({size} bytes)",
                range.start
            )),
        ));
    }
    let bytes = body.slice(range.start as usize..range.end.min(size) as usize);
    Ok(Answer { bytes, size, validator })
}

/// A final error counted under the status code.
fn final_error(status: StatusCode, error: FetchError) -> AttemptError {
    AttemptError::Final { label: status.as_str().to_owned(), error }
}

fn bad_range(url: &str, value: &str, range: &Range<u64>) -> AttemptError {
    AttemptError::Final {
        label: "bad-range".to_owned(),
        error: FetchError::Failed {
            status: Some(206),
            message: format!(
                "{url}: Content-Range '{value}' does not answer bytes={}-{}",
                range.start,
                range.end - 1
            ),
        },
    }
}

/// A transport error: a refusal (redirect, address) or a TLS failure (an untrusted or
/// wrong certificate: asking again gets the same certificate) is final, anything else
/// transient.
fn transport(error: &reqwest::Error, during: &str) -> AttemptError {
    if let Some(why) = client::refusal(error) {
        return AttemptError::Final { label: "denied".to_owned(), error: FetchError::Denied(why) };
    }
    if is_tls_failure(error) {
        return AttemptError::Final {
            label: "tls".to_owned(),
            error: FetchError::Failed { status: None, message: format!("{during}: {}", chain(error)) },
        };
    }
    let label = if error.is_timeout() { "timeout" } else { client::transport_label(error) };
    AttemptError::Transient {
        label: label.to_owned(),
        status: None,
        retry_after: None,
        message: format!("{during}: {}", chain(error)),
    }
}

/// Whether `error` is a certificate the roots do not trust (or that names another
/// host): a rustls error among its causes, or, where a layer between keeps only its
/// words, rustls's own words for it.
fn is_tls_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = next {
        let io_inner = e.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref);
        if e.is::<rustls::Error>()
            || io_inner.is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            return true;
        }
        next = e.source();
    }
    chain(error).contains("invalid peer certificate")
}

/// An error with its causes, `: `-separated.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        text.push_str(": ");
        text.push_str(&e.to_string());
        next = e.source();
    }
    text
}

fn header(headers: &HeaderMap, name: &reqwest::header::HeaderName) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// `Retry-After` in seconds (the date form is not honoured; the backoff applies).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    header(headers, &RETRY_AFTER)?.trim().parse().ok().map(Duration::from_secs)
}

/// `bytes a-b/size` → (a, b + 1, size); `None` for any other form (`*` as the size too).
fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (span, size) = rest.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    let (first, last, size): (u64, u64, u64) = (first.parse().ok()?, last.parse().ok()?, size.parse().ok()?);
    (first <= last).then_some((first, last.checked_add(1)?, size))
}

#[cfg(test)]
mod tests {
    use super::parse_content_range;

    #[test]
    fn content_ranges_parse_only_in_the_complete_form() {
        assert_eq!(parse_content_range("bytes 0-99/1000"), Some((0, 100, 1000)));
        assert_eq!(parse_content_range("bytes 5-5/6"), Some((5, 6, 6)));
        assert_eq!(parse_content_range("bytes 0-99/*"), None);
        assert_eq!(parse_content_range("bytes 9-1/10"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }
}
