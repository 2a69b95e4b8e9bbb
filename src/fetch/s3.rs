//! One S3 attempt through object_store: its request signing and credential chain (keys
//! from the environment, web identity, container and instance credentials) on our HTTP
//! client, with its own retries off so that the one retry loop is [`super::Origin`]'s.
//!
//! object_store folds HTTP statuses it has no variant for (416, 503) into a generic
//! error; the transport below notes the status of each answer in a task-local cell that
//! the attempt reads back, so an S3 failure is classified like an HTTP one.

use std::cell::Cell;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::client::{
    ClientOptions, HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService,
};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};

use super::counters::OriginCounters;
use super::{Answer, AttemptError, FetchError, Validator, client};
use crate::mosaic::RemoteUrl;

/// The region when neither the settings nor the environment name one.
const DEFAULT_REGION: &str = "us-east-1";

/// Where and how `s3://` URLs are read: the variables GDAL reads for `/vsis3/`.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    /// `host[:port]` of an S3-compatible endpoint (`AWS_S3_ENDPOINT`); `None` is AWS.
    pub endpoint: Option<String>,
    /// Buckets in the path (`AWS_VIRTUAL_HOSTING=FALSE`), not in the host name.
    pub path_style: bool,
    /// HTTPS to the endpoint (`AWS_HTTPS`, on unless set to NO).
    pub https: bool,
    /// The region (`AWS_REGION`, else `AWS_DEFAULT_REGION`, else us-east-1).
    pub region: Option<String>,
    /// The `AWS_*` variables of the effective environment: credentials, profile, web
    /// identity, container credentials; `AWS_NO_SIGN_REQUEST=YES` reads anonymously.
    pub env: Vec<(String, String)>,
}

impl S3Settings {
    /// The settings from an environment (later entries win), read as GDAL reads them.
    #[must_use]
    pub fn from_env(env: &[(String, String)]) -> Self {
        let get = |key: &str| env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        Self {
            endpoint: get("AWS_S3_ENDPOINT").filter(|e| !e.is_empty()).map(str::to_owned),
            path_style: get("AWS_VIRTUAL_HOSTING").is_some_and(is_false),
            https: !get("AWS_HTTPS").is_some_and(is_false),
            region: get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")).map(str::to_owned),
            env: env.iter().filter(|(k, _)| k.starts_with("AWS_")).cloned().collect(),
        }
    }

    fn unsigned(&self) -> bool {
        self.env.iter().rev().find(|(k, _)| k == "AWS_NO_SIGN_REQUEST").is_some_and(|(_, v)| is_true(v))
    }
}

fn is_false(v: &str) -> bool {
    ["NO", "FALSE", "OFF", "0"].iter().any(|f| v.eq_ignore_ascii_case(f))
}

fn is_true(v: &str) -> bool {
    ["YES", "TRUE", "ON", "1"].iter().any(|t| v.eq_ignore_ascii_case(t))
}

/// One object_store client per bucket, made on first use.
#[derive(Debug)]
pub(super) struct S3Stores {
    settings: S3Settings,
    client: reqwest::Client,
    stores: Mutex<HashMap<String, Arc<AmazonS3>>>,
}

impl S3Stores {
    pub(super) fn new(settings: S3Settings, client: reqwest::Client) -> Self {
        Self { settings, client, stores: Mutex::new(HashMap::new()) }
    }

    fn store(&self, bucket: &str) -> Result<Arc<AmazonS3>, AttemptError> {
        let mut stores = self.stores.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(store) = stores.get(bucket) {
            return Ok(store.clone());
        }
        let s = &self.settings;
        let mut builder = AmazonS3Builder::new();
        for (key, value) in &s.env {
            if let Ok(key) = key.to_ascii_lowercase().parse() {
                builder = builder.with_config(key, value);
            }
        }
        builder = builder
            .with_bucket_name(bucket)
            .with_region(s.region.as_deref().unwrap_or(DEFAULT_REGION))
            .with_virtual_hosted_style_request(!s.path_style)
            .with_skip_signature(s.unsigned())
            .with_retry(object_store::RetryConfig { max_retries: 0, ..Default::default() })
            .with_http_connector(Connector(self.client.clone()));
        if let Some(endpoint) = &s.endpoint {
            let scheme = if s.https { "https" } else { "http" };
            // Virtual hosting puts the bucket in front of the endpoint's host.
            let host = if s.path_style { endpoint.clone() } else { format!("{bucket}.{endpoint}") };
            builder = builder.with_endpoint(format!("{scheme}://{host}")).with_allow_http(!s.https);
        }
        let store = Arc::new(builder.build().map_err(|e| AttemptError::Final {
            label: "config".to_owned(),
            error: FetchError::Failed {
                status: None,
                message: format!("S3 set-up for bucket {bucket}: {e}"),
            },
        })?);
        stores.insert(bucket.to_owned(), store.clone());
        Ok(store)
    }

    /// Reads `range` of `s3://bucket/key`.
    pub(super) async fn get(
        &self,
        url: &RemoteUrl,
        range: Range<u64>,
        validator: Option<&Validator>,
        counters: &OriginCounters,
    ) -> Result<Answer, AttemptError> {
        let bucket = url.authority();
        let name = format!("s3://{bucket}{}", url.path());
        let key = url.path().trim_start_matches('/');
        let path = Path::parse(key).map_err(|e| AttemptError::Final {
            label: "bad-key".to_owned(),
            error: FetchError::Failed { status: None, message: format!("{name}: {e}") },
        })?;
        let store = self.store(bucket)?;
        let options = GetOptions {
            range: Some(GetRange::Bounded(range.clone())),
            if_match: validator.and_then(|v| v.etag.clone()),
            ..GetOptions::default()
        };
        LAST_ANSWER
            .scope(Cell::new(None), async {
                let result = match store.get_opts(&path, options).await {
                    Ok(result) => result,
                    Err(e) => return Err(classify(&name, &range, &e, LAST_ANSWER.with(Cell::get))),
                };
                let expected = result.range.end - result.range.start;
                let size = result.meta.size;
                let validator = Validator {
                    etag: result.meta.e_tag.clone(),
                    last_modified: Some(result.meta.last_modified.to_rfc3339()),
                };
                if result.range.start != range.start {
                    return Err(AttemptError::Final {
                        label: "bad-range".to_owned(),
                        error: FetchError::Failed {
                            status: Some(206),
                            message: format!("{name}: answered bytes {:?} for {range:?}", result.range),
                        },
                    });
                }
                let mut body = BytesMut::with_capacity(usize::try_from(expected).unwrap_or(0).min(64 << 20));
                let mut stream = result.into_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| classify(&name, &range, &e, None))?;
                    counters.received(chunk.len() as u64);
                    if (body.len() + chunk.len()) as u64 > expected {
                        return Err(AttemptError::Final {
                            label: "bad-range".to_owned(),
                            error: FetchError::Failed {
                                status: Some(206),
                                message: format!("{name} sent more than the {expected} bytes asked for"),
                            },
                        });
                    }
                    body.extend_from_slice(&chunk);
                }
                if (body.len() as u64) < expected {
                    return Err(AttemptError::Transient {
                        label: "truncated".to_owned(),
                        status: Some(206),
                        retry_after: None,
                        message: format!("{name}: body of {} bytes, {expected} expected", body.len()),
                    });
                }
                Ok(Answer { bytes: body.freeze(), size, validator })
            })
            .await
    }
}

/// An object_store error as an attempt's outcome; `answer` is the status of the last
/// response the transport saw, and its `Retry-After`.
fn classify(
    name: &str,
    range: &Range<u64>,
    error: &object_store::Error,
    answer: Option<(u16, Option<Duration>)>,
) -> AttemptError {
    use object_store::Error as E;
    let final_error = |label: &str, error: FetchError| AttemptError::Final { label: label.to_owned(), error };
    match error {
        E::NotFound { .. } => return final_error("404", FetchError::NotFound(name.to_owned())),
        E::Precondition { .. } => {
            return final_error(
                "412",
                FetchError::Changed(format!("{name} no longer has the ETag asked for")),
            );
        }
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
            return final_error("403", FetchError::Denied(format!("{name}: {error}")));
        }
        _ => {}
    }
    match answer {
        Some((416, _)) => final_error(
            "416",
            FetchError::OutOfRange(format!("{name}: bytes {}.. lie beyond the end", range.start)),
        ),
        Some((status @ (429 | 500 | 502 | 503 | 504), retry_after)) => AttemptError::Transient {
            label: status.to_string(),
            status: Some(status),
            retry_after,
            message: format!("{name}: {error}"),
        },
        Some((status, _)) if status >= 300 => final_error(
            &status.to_string(),
            FetchError::Failed { status: Some(status), message: format!("{name}: {error}") },
        ),
        // No error status: the connection or the body failed.
        _ => {
            if let Some(why) = client::refusal(error) {
                return final_error("denied", FetchError::Denied(why));
            }
            AttemptError::Transient {
                label: client::transport_label(error).to_owned(),
                status: None,
                retry_after: None,
                message: format!("{name}: {error}"),
            }
        }
    }
}

tokio::task_local! {
    /// The status and `Retry-After` of the last S3 answer of the current attempt.
    static LAST_ANSWER: Cell<Option<(u16, Option<Duration>)>>;
}

/// Hands object_store our client (its resolver, TLS roots, no redirects).
#[derive(Debug)]
struct Connector(reqwest::Client);

impl HttpConnector for Connector {
    fn connect(&self, _: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(Transport(self.0.clone())))
    }
}

/// Our client, noting each answer's status for [`classify`].
#[derive(Debug)]
struct Transport(reqwest::Client);

#[async_trait::async_trait]
impl HttpService for Transport {
    async fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let response = self.0.call(request).await?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .map(Duration::from_secs);
        // Outside an attempt (never, today) there is no cell to fill.
        let _ = LAST_ANSWER.try_with(|cell| cell.set(Some((status, retry_after))));
        Ok(response)
    }
}
