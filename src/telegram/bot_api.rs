//! A small blocking Bot API client: getMe, setWebhook, getWebhookInfo,
//! deleteWebhook, getFile and file downloads.
//!
//! Invariants:
//! - every attempt has a timeout; a call makes at most `1 + max_retries`
//!   attempts, retrying only 408, 429, 5xx, timeouts and connection errors;
//!   a 429's `parameters.retry_after` (or `Retry-After`) is honoured, and one
//!   asking for longer than `max_retry_after_ms` ends the call at once (the
//!   caller, e.g. Telegram re-delivering an update, retries later);
//! - the bot token lives only in the request path; it is never part of an error
//!   message (reqwest errors are stripped of their URL and redacted) nor of the
//!   client's `Debug` output;
//! - a download never buffers more than `max_bytes + 1` bytes: a larger file
//!   is reported as [`TooLarge`], not stored;
//! - TLS and proxy handling are those of the provider HTTP client
//!   (`providers::http`): rustls with the ring provider, loopback bypasses proxies.
//!
//! Blocking: call from plain threads, never inside a database transaction.

use std::io::Read;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::settings::TelegramApiConfig;
use crate::error::{Error, ProviderError, ProviderErrorKind, ProviderResult, Result};
use crate::providers::classify::is_retryable_status;
use crate::providers::http::{
    build_client, chain, is_loopback, path_segment, retry_after_header, RetryPolicy,
};

/// Longest bot token accepted.
const MAX_TOKEN_LEN: usize = 256;
/// Longest error description quoted from an answer.
const MAX_QUOTED: usize = 300;

/// Longest error body read from a failed download.
const MAX_ERROR_BODY: u64 = 64 * 1024;

/// A Bot API error body's `parameters.retry_after` (seconds).
fn body_retry_after(body: Option<&Value>) -> Option<Duration> {
    body?
        .pointer("/parameters/retry_after")
        .and_then(Value::as_f64)
        .filter(|s| s.is_finite() && *s >= 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
}

/// The bot, as `getMe` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotUser {
    /// Telegram user id of the bot (its bot identity, as a string elsewhere).
    pub id: i64,
    /// Always true for a bot.
    #[serde(default)]
    pub is_bot: bool,
    /// Display name.
    #[serde(default)]
    pub first_name: String,
    /// `@username` without the `@`.
    #[serde(default)]
    pub username: Option<String>,
}

/// `getWebhookInfo`'s answer (the fields agent-factory reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookInfo {
    /// Current webhook URL, empty when none is set.
    #[serde(default)]
    pub url: String,
    /// Updates waiting for delivery.
    #[serde(default)]
    pub pending_update_count: i64,
    /// Unix time (seconds) of the last delivery error.
    #[serde(default)]
    pub last_error_date: Option<i64>,
    /// The last delivery error.
    #[serde(default)]
    pub last_error_message: Option<String>,
    /// Maximum simultaneous connections.
    #[serde(default)]
    pub max_connections: Option<i64>,
    /// Update kinds the bot receives (absent: all but a few).
    #[serde(default)]
    pub allowed_updates: Option<Vec<String>>,
}

/// `getFile`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelegramFile {
    /// File id.
    pub file_id: String,
    /// Stable id across bots.
    #[serde(default)]
    pub file_unique_id: Option<String>,
    /// Size, when known.
    #[serde(default)]
    pub file_size: Option<i64>,
    /// Path to download from (absent when the file cannot be downloaded).
    #[serde(default)]
    pub file_path: Option<String>,
}

/// A downloaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// The answer's `Content-Type`, if any.
    pub content_type: Option<String>,
}

/// A file larger than the download cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    /// The size, when Telegram or the answer said it.
    pub size: Option<u64>,
    /// The cap.
    pub limit: u64,
}

/// What one attempt concluded.
enum Outcome<T> {
    Done(T),
    Retry {
        error: ProviderError,
        after: Option<Duration>,
    },
    Fail(ProviderError),
}

/// Check a bot token's shape (`<bot id>:<secret>`) without echoing it.
pub fn validate_token(token: &str) -> Result<()> {
    if token.trim().is_empty() {
        return Err(Error::validation("Telegram token is required"));
    }
    let ok = token.len() <= MAX_TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b':' || b == b'_' || b == b'-')
        && token.split_once(':').is_some_and(|(id, rest)| {
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty()
        });
    if ok {
        Ok(())
    } else {
        Err(Error::validation(
            "Telegram token is malformed: expected '<bot id>:<secret>' of letters, digits, '_' and '-' (at most 256 characters)",
        ))
    }
}

/// A Bot API client bound to one bot token.
pub struct BotApi {
    client: Client,
    base: String,
    token: String,
    timeout: Duration,
    retry: RetryPolicy,
}

impl std::fmt::Debug for BotApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotApi")
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn encode(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

fn cut(text: &str) -> String {
    let t = text.trim();
    match t.char_indices().nth(MAX_QUOTED) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t.to_string(),
    }
}

impl BotApi {
    /// A client for `config.base_url` using bot `token` (shape-checked).
    pub fn new(config: &TelegramApiConfig, token: &str) -> Result<BotApi> {
        let token = token.trim();
        validate_token(token)?;
        let config = config.clone().normalised()?;
        let url = Url::parse(&config.base_url)
            .map_err(|e| Error::validation(format!("baseUrl is not a valid URL: {e}")))?;
        let timeout = Duration::from_millis(config.timeout_ms as u64);
        let client = build_client(timeout, url.scheme() == "https", is_loopback(&url))?;
        Ok(BotApi {
            client,
            base: config.base_url.clone(),
            token: token.to_string(),
            timeout,
            retry: config.retry_policy(),
        })
    }

    /// `text` with the token replaced by `[redacted]`.
    fn redact(&self, text: &str) -> String {
        text.replace(&self.token, "[redacted]")
    }

    fn transport<T>(&self, what: &str, e: reqwest::Error) -> Outcome<T> {
        Outcome::Retry {
            error: self.transport_error(what, e),
            after: None,
        }
    }

    fn transport_error(&self, what: &str, e: reqwest::Error) -> ProviderError {
        let timed_out = e.is_timeout();
        let detail = self.redact(&chain(&e.without_url()));
        let message = if timed_out {
            format!(
                "Telegram {what} failed: timed out after {} ms",
                self.timeout.as_millis()
            )
        } else {
            format!("Telegram {what} failed: request error: {detail}")
        };
        ProviderError {
            kind: ProviderErrorKind::Transport,
            message,
            status: None,
            retryable: true,
        }
    }

    /// Run attempts until one is final or the retries are spent.
    fn with_retries<T>(&self, mut attempt: impl FnMut() -> Outcome<T>) -> ProviderResult<T> {
        let mut attempts: u32 = 0;
        loop {
            attempts += 1;
            let (mut error, after) = match attempt() {
                Outcome::Done(v) => return Ok(v),
                Outcome::Fail(mut e) => {
                    if attempts > 1 {
                        e.message.push_str(&format!(" (after {attempts} attempts)"));
                    }
                    return Err(e);
                }
                Outcome::Retry { error, after } => (error, after),
            };
            let too_long = after.is_some_and(|d| d > self.retry.retry_after_cap);
            if attempts > self.retry.max_retries || too_long {
                if attempts > 1 {
                    error
                        .message
                        .push_str(&format!(" (after {attempts} attempts)"));
                }
                return Err(error);
            }
            std::thread::sleep(self.retry.delay(attempts, after, rand::random::<f64>()));
        }
    }

    /// Send one request; a transport failure comes back as the retryable error.
    fn send(
        &self,
        what: &str,
        req: RequestBuilder,
    ) -> std::result::Result<Response, ProviderError> {
        req.send().map_err(|e| self.transport_error(what, e))
    }

    /// Call Bot API `method`: GET with `query`, or POST with a JSON `body`.
    /// Returns the answer's `result`.
    pub fn call(
        &self,
        method: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> ProviderResult<Value> {
        let mut url = format!("{}/bot{}/{}", self.base, self.token, method);
        if !query.is_empty() {
            let q: Vec<String> = query
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect();
            url.push('?');
            url.push_str(&q.join("&"));
        }
        let payload = body.map(Value::to_string);
        self.with_retries(|| {
            let req = match &payload {
                Some(b) => self
                    .client
                    .post(&url)
                    .header(CONTENT_TYPE, "application/json")
                    .body(b.clone()),
                None => self.client.get(&url),
            };
            let resp = match self.send(method, req) {
                Ok(r) => r,
                Err(error) => return Outcome::Retry { error, after: None },
            };
            self.answer(method, resp)
        })
    }

    fn answer(&self, method: &str, resp: Response) -> Outcome<Value> {
        let status = resp.status().as_u16();
        let header_after = retry_after_header(&resp);
        let text = match resp.text() {
            Ok(t) => t,
            Err(e) => return self.transport(method, e),
        };
        let parsed: Option<Value> = serde_json::from_str(text.trim()).ok();
        let ok = parsed
            .as_ref()
            .and_then(|v| v.get("ok"))
            .and_then(Value::as_bool);
        if (200..300).contains(&status) && ok == Some(true) {
            let result = parsed
                .and_then(|mut v| v.get_mut("result").map(Value::take))
                .unwrap_or(Value::Null);
            return Outcome::Done(result);
        }
        if (200..300).contains(&status) && ok.is_none() {
            return Outcome::Fail(ProviderError::protocol(format!(
                "Telegram {method} failed: the answer is not a Bot API response"
            )));
        }
        let code = parsed
            .as_ref()
            .and_then(|v| v.get("error_code"))
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .filter(|_| (200..300).contains(&status))
            .unwrap_or(status);
        let description = parsed
            .as_ref()
            .and_then(|v| v.get("description"))
            .and_then(Value::as_str)
            .map(|d| self.redact(&cut(d)))
            .unwrap_or_else(|| {
                let body = self.redact(&cut(&text));
                if body.is_empty() {
                    format!("HTTP {code}")
                } else {
                    format!("HTTP {code} {body}")
                }
            });
        let after = body_retry_after(parsed.as_ref()).or(header_after);
        let retryable = is_retryable_status(code);
        let error = ProviderError {
            kind: ProviderErrorKind::Http,
            message: format!("Telegram {method} failed: {description}"),
            status: Some(code),
            retryable,
        };
        if retryable {
            Outcome::Retry { error, after }
        } else {
            Outcome::Fail(error)
        }
    }

    /// `getMe`: the bot behind the token.
    pub fn get_me(&self) -> Result<BotUser> {
        let v = self.call("getMe", &[], None)?;
        let user: BotUser = serde_json::from_value(v)
            .map_err(|_| Error::Provider("Telegram getMe did not return a bot id".into()))?;
        Ok(user)
    }

    /// `setWebhook {url, secret_token, allowed_updates}`.
    pub fn set_webhook(
        &self,
        url: &str,
        secret_token: &str,
        allowed_updates: &[&str],
    ) -> Result<()> {
        let body = serde_json::json!({
            "url": url,
            "secret_token": secret_token,
            "allowed_updates": allowed_updates,
        });
        self.call("setWebhook", &[], Some(&body))?;
        Ok(())
    }

    /// `getWebhookInfo`.
    pub fn get_webhook_info(&self) -> Result<WebhookInfo> {
        let v = self.call("getWebhookInfo", &[], None)?;
        serde_json::from_value(v).map_err(|e| {
            Error::Provider(format!(
                "Telegram getWebhookInfo failed: unexpected answer: {e}"
            ))
        })
    }

    /// `deleteWebhook {drop_pending_updates}`.
    pub fn delete_webhook(&self, drop_pending_updates: bool) -> Result<()> {
        let body = serde_json::json!({ "drop_pending_updates": drop_pending_updates });
        self.call("deleteWebhook", &[], Some(&body))?;
        Ok(())
    }

    /// `getFile {file_id}`: where to download a file from. The raw provider
    /// error is kept so a caller can tell "file is too big" apart.
    pub fn get_file(&self, file_id: &str) -> ProviderResult<TelegramFile> {
        let v = self.call("getFile", &[("file_id", file_id)], None)?;
        serde_json::from_value(v).map_err(|e| {
            ProviderError::protocol(format!("Telegram getFile failed: unexpected answer: {e}"))
        })
    }

    /// Download `file_path` (from `getFile`), refusing more than `max_bytes`.
    pub fn download(
        &self,
        file_path: &str,
        max_bytes: u64,
    ) -> ProviderResult<std::result::Result<Downloaded, TooLarge>> {
        let path = file_path.trim();
        if path.is_empty() || path.len() > 1024 || path.starts_with('/') {
            return Err(ProviderError::protocol(
                "Telegram getFile returned an unusable file_path",
            ));
        }
        let encoded = path
            .split('/')
            .map(|seg| path_segment("file_path segment", seg))
            .collect::<ProviderResult<Vec<_>>>()
            .map_err(|_| {
                ProviderError::protocol("Telegram getFile returned an unusable file_path")
            })?
            .join("/");
        let url = format!("{}/file/bot{}/{}", self.base, self.token, encoded);
        let what = "file download";
        self.with_retries(|| {
            let resp = match self.send(what, self.client.get(&url)) {
                Ok(r) => r,
                Err(error) => return Outcome::Retry { error, after: None },
            };
            let status = resp.status().as_u16();
            if !(200..300).contains(&status) {
                let header_after = retry_after_header(&resp);
                let mut text = String::new();
                let _ = resp.take(MAX_ERROR_BODY).read_to_string(&mut text);
                let parsed: Option<Value> = serde_json::from_str(text.trim()).ok();
                let after = body_retry_after(parsed.as_ref()).or(header_after);
                let error = ProviderError {
                    kind: ProviderErrorKind::Http,
                    message: format!("Telegram file download failed with status {status}"),
                    status: Some(status),
                    retryable: is_retryable_status(status),
                };
                return if error.retryable {
                    Outcome::Retry { error, after }
                } else {
                    Outcome::Fail(error)
                };
            }
            let declared = resp
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if declared.is_some_and(|n| n > max_bytes) {
                return Outcome::Done(Err(TooLarge {
                    size: declared,
                    limit: max_bytes,
                }));
            }
            let content_type = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let mut bytes = Vec::new();
            if let Err(e) = resp
                .take(max_bytes.saturating_add(1))
                .read_to_end(&mut bytes)
            {
                return Outcome::Retry {
                    error: ProviderError {
                        kind: ProviderErrorKind::Transport,
                        message: format!(
                            "Telegram file download failed: reading the body: {}",
                            self.redact(&e.to_string())
                        ),
                        status: None,
                        retryable: true,
                    },
                    after: None,
                };
            }
            if bytes.len() as u64 > max_bytes {
                return Outcome::Done(Err(TooLarge {
                    size: None,
                    limit: max_bytes,
                }));
            }
            Outcome::Done(Ok(Downloaded {
                bytes,
                content_type,
            }))
        })
    }
}
