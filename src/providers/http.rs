//! Retrying JSON-over-HTTPS client for provider REST APIs (blocking reqwest).
//!
//! Invariants:
//! - every request carries a timeout; one call makes at most `1 + max_retries`
//!   attempts, retrying only 408, 429, 5xx, connect errors and timeouts, waiting
//!   as [`RetryPolicy`] says between attempts;
//! - when an attempt may have been applied by the server (a timeout or a 5xx)
//!   and the caller supplied a `recover` probe, the probe runs before any
//!   retry: a non-idempotent create whose answer was lost is found, not
//!   repeated;
//! - the bearer token travels only in a sensitive header; it never appears in
//!   an error message (an answer body that echoes it is redacted);
//! - TLS is rustls with the *ring* provider passed explicitly (no process-wide
//!   provider is installed), certificates checked by the platform verifier
//!   (system roots are loaded only for https base URLs); loopback base URLs
//!   bypass proxies;
//! - a forked child builds its own reqwest client on first use (the parent's
//!   runtime thread does not survive `fork`).
//!
//! Blocking: call from plain threads, never from inside an async task.

use std::sync::Mutex;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::blocking::Client;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use crate::error::{ProviderError, ProviderErrorKind, ProviderResult};
use crate::metrics;
use crate::providers::classify::{classify, is_retryable_status, Class};
pub use crate::providers::retry::{parse_retry_after, retry_after_header, RetryPolicy};

/// Characters kept as-is in a path segment: RFC 3986 unreserved.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `User-Agent` of every request unless the client is given another.
pub const DEFAULT_USER_AGENT: &str = concat!("agent-factory/", env!("CARGO_PKG_VERSION"));

/// Longest `User-Agent` accepted.
const MAX_USER_AGENT: usize = 512;

/// Longest answer body quoted in an error message.
const MAX_QUOTED_BODY: usize = 500;

/// Tokens shorter than this are not searched for in bodies (they would garble
/// ordinary words and cannot be meaningful secrets).
const MIN_REDACTED_TOKEN: usize = 4;

/// A path segment (app name, machine or volume id), validated and percent-encoded.
///
/// Empty values, `.` and `..` (which URL normalisation would turn into a walk
/// up the path — `DELETE /apps/x/machines/..` must never become `DELETE /apps/x`)
/// and control characters are refused.
pub fn path_segment(what: &str, value: &str) -> ProviderResult<String> {
    if value.trim().is_empty() {
        return Err(ProviderError::invalid_input(format!(
            "{what} is required and must not be blank"
        )));
    }
    if value == "." || value == ".." || value.chars().any(char::is_control) {
        return Err(ProviderError::invalid_input(format!(
            "{what} {value:?} is not a valid path segment"
        )));
    }
    if value.len() > 256 {
        return Err(ProviderError::invalid_input(format!(
            "{what} is longer than 256 bytes"
        )));
    }
    Ok(utf8_percent_encode(value, SEGMENT).to_string())
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Label in error messages, e.g. `Fly API`.
    pub service: &'static str,
    /// Base URL without a trailing slash, e.g. `https://api.machines.dev/v1`.
    pub base_url: String,
    /// Whole-request timeout (connect, send, read).
    pub timeout: Duration,
    /// Retries and backoff.
    pub retry: RetryPolicy,
}

/// A final failure of one call.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The error to report (message already formatted and redacted).
    pub error: ProviderError,
    /// The answer body (redacted), empty for transport failures.
    pub body: String,
}

/// One attempt's result.
enum Attempt {
    Ok(Value),
    Status {
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    Transport {
        detail: String,
        timed_out: bool,
        maybe_sent: bool,
    },
}

/// A blocking JSON client bound to one base URL and bearer token.
pub struct HttpClient {
    /// The reqwest client and the pid that built it: reqwest's blocking client
    /// owns a runtime thread, which a forked child does not inherit.
    client: Mutex<(u32, Client)>,
    options: HttpOptions,
    https: bool,
    bypass_proxy: bool,
    auth: HeaderValue,
    token: String,
    user_agent: Option<HeaderValue>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("base_url", &self.options.base_url)
            .field("timeout", &self.options.timeout)
            .field("retry", &self.options.retry)
            .finish_non_exhaustive()
    }
}

/// The rustls config: the platform's roots for an https base URL; for plain
/// http (loopback fakes, Fly's private API over WireGuard) no roots are loaded,
/// so such clients work on machines without system CA certificates.
fn tls_config(https: bool) -> ProviderResult<rustls::ClientConfig> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls_error = |e: rustls::Error| {
        ProviderError {
        kind: ProviderErrorKind::Transport,
        message: format!(
            "cannot set up TLS: {e} (are the system CA certificates installed, e.g. the ca-certificates package?)"
        ),
        status: None,
        retryable: false,
    }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?;
    let mut config = if https {
        builder
            .with_platform_verifier()
            .map_err(tls_error)?
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

pub(crate) fn build_client(
    timeout: Duration,
    https: bool,
    bypass_proxy: bool,
) -> ProviderResult<Client> {
    let mut builder = Client::builder()
        .tls_backend_preconfigured(tls_config(https)?)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(DEFAULT_USER_AGENT)
        .redirect(reqwest::redirect::Policy::none());
    if bypass_proxy {
        builder = builder.no_proxy();
    }
    builder.build().map_err(|e| ProviderError {
        kind: ProviderErrorKind::Transport,
        message: format!("cannot build the HTTP client: {}", chain(&e)),
        status: None,
        retryable: false,
    })
}

pub(crate) fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The error chain of a transport failure as one line.
pub(crate) fn chain(err: &reqwest::Error) -> String {
    let mut out = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

impl HttpClient {
    /// A client for `options.base_url` authenticating with `token`.
    pub fn new(options: HttpOptions, token: &str) -> ProviderResult<Self> {
        let token = token.trim();
        if token.is_empty() {
            return Err(ProviderError::invalid_input(format!(
                "{} token is required and must not be blank",
                options.service
            )));
        }
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            ProviderError::invalid_input(format!(
                "{} token contains characters not allowed in an HTTP header",
                options.service
            ))
        })?;
        auth.set_sensitive(true);
        let base = options.base_url.trim().trim_end_matches('/').to_string();
        let url = Url::parse(&base).map_err(|e| {
            ProviderError::invalid_input(format!("base_url {base:?} is not a valid URL: {e}"))
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
            return Err(ProviderError::invalid_input(format!(
                "base_url {base:?} must be an http(s) URL without a query"
            )));
        }
        if options.timeout.is_zero() {
            return Err(ProviderError::invalid_input(
                "timeout must be positive".to_string(),
            ));
        }
        let bypass_proxy = is_loopback(&url);
        let https = url.scheme() == "https";
        let client = build_client(options.timeout, https, bypass_proxy)?;
        Ok(HttpClient {
            client: Mutex::new((std::process::id(), client)),
            options: HttpOptions {
                base_url: base,
                ..options
            },
            https,
            bypass_proxy,
            auth,
            token: token.to_string(),
            user_agent: None,
        })
    }

    /// Send `user_agent` as the `User-Agent` of every request (instead of
    /// [`DEFAULT_USER_AGENT`]), e.g. to tell which control loop made a call.
    pub fn with_user_agent(mut self, user_agent: &str) -> ProviderResult<Self> {
        let value = user_agent.trim();
        let printable = value.chars().all(|c| (' '..='~').contains(&c));
        if value.is_empty() || value.len() > MAX_USER_AGENT || !printable {
            return Err(ProviderError::invalid_input(format!(
                "user_agent must be 1-{MAX_USER_AGENT} printable ASCII characters, got {user_agent:?}"
            )));
        }
        let header = HeaderValue::from_str(value).map_err(|_| {
            ProviderError::invalid_input(format!(
                "user_agent {user_agent:?} is not a valid HTTP header value"
            ))
        })?;
        self.user_agent = Some(header);
        Ok(self)
    }

    /// The reqwest client of this process (rebuilt in a forked child).
    fn client(&self) -> ProviderResult<Client> {
        let mut slot = self.client.lock().unwrap_or_else(|e| e.into_inner());
        let pid = std::process::id();
        if slot.0 != pid {
            let fresh = build_client(self.options.timeout, self.https, self.bypass_proxy)?;
            let inherited = std::mem::replace(&mut *slot, (pid, fresh));
            // Its runtime thread does not exist here; dropping would join it.
            std::mem::forget(inherited);
        }
        Ok(slot.1.clone())
    }

    /// The base URL (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.options.base_url
    }

    /// `text` with the token replaced by `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        if self.token.len() < MIN_REDACTED_TOKEN {
            return text.to_string();
        }
        text.replace(&self.token, "[redacted]")
    }

    fn attempt(&self, method: &Method, path: &str, body: Option<&[u8]>) -> Attempt {
        let url = format!("{}{}", self.options.base_url, path);
        let client = match self.client() {
            Ok(c) => c,
            Err(e) => {
                return Attempt::Transport {
                    detail: e.message,
                    timed_out: false,
                    maybe_sent: false,
                }
            }
        };
        let mut req = client
            .request(method.clone(), url)
            .header(AUTHORIZATION, self.auth.clone())
            .header(ACCEPT, "application/json");
        if let Some(ua) = &self.user_agent {
            req = req.header(USER_AGENT, ua.clone());
        }
        if let Some(b) = body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(b.to_vec());
        }
        let transport = |e: reqwest::Error| Attempt::Transport {
            timed_out: e.is_timeout(),
            maybe_sent: !e.is_connect(),
            detail: self.redact(&chain(&e)),
        };
        let resp = match req.send() {
            Ok(r) => r,
            Err(e) => return transport(e),
        };
        let status = resp.status().as_u16();
        let retry_after = retry_after_header(&resp);
        let text = match resp.text() {
            Ok(t) => t,
            Err(e) => return transport(e),
        };
        if (200..300).contains(&status) {
            let trimmed = text.trim();
            let value = if trimmed.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(trimmed).unwrap_or_else(|_| Value::String(text.clone()))
            };
            return Attempt::Ok(value);
        }
        Attempt::Status {
            status,
            body: self.redact(&text),
            retry_after,
        }
    }

    fn quoted(status: u16, body: &str) -> String {
        let body = body.trim();
        if body.is_empty() {
            return StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("no body")
                .to_string();
        }
        match body.char_indices().nth(MAX_QUOTED_BODY) {
            Some((cut, _)) => format!("{}…", &body[..cut]),
            None => body.to_string(),
        }
    }

    /// Send one call with retries. `path` starts with `/` and is already encoded.
    ///
    /// `recover` is asked, after an attempt that the server may have applied
    /// (timeout, 5xx), whether the effect is already visible; `Some(value)`
    /// ends the call successfully with that value.
    ///
    /// Every call is counted in [`crate::metrics`] under the service's provider
    /// label; a retry is logged as a warning and a final failure as an error
    /// (target `agent_factory.providers`; messages are redacted, never the
    /// token). An answer that only says the resource is gone (404/410) or not
    /// ready (409/412) is an outcome callers read, not an error: it is
    /// neither counted as a failure nor logged above debug.
    pub fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        recover: Option<&dyn Fn() -> Option<Value>>,
    ) -> Result<Value, Failure> {
        let out = self.send_with_retries(method, path, body, recover);
        let failed = match &out {
            Ok(_) => false,
            Err(f) => match f.error.status.map(|s| classify(s, &f.body)) {
                Some(Class::Gone | Class::Deferred) => {
                    log::debug!(target: metrics::target::PROVIDERS, "{}", f.error.message);
                    false
                }
                _ => {
                    log::error!(target: metrics::target::PROVIDERS, "{}", f.error.message);
                    true
                }
            },
        };
        metrics::provider_call(&metrics::provider_label(self.options.service), failed);
        out
    }

    fn send_with_retries(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        recover: Option<&dyn Fn() -> Option<Value>>,
    ) -> Result<Value, Failure> {
        let bytes = body.map(|b| b.to_string().into_bytes());
        let retry = self.options.retry;
        let mut attempts: u32 = 0;
        loop {
            attempts += 1;
            let (failure, ambiguous, retry_after) =
                match self.attempt(&method, path, bytes.as_deref()) {
                    Attempt::Ok(v) => return Ok(v),
                    Attempt::Status {
                        status,
                        body,
                        retry_after,
                    } => {
                        let retryable = is_retryable_status(status);
                        let failure = self.status_failure(&method, path, status, body, attempts);
                        if !retryable {
                            return Err(failure);
                        }
                        (failure, status != 429, retry_after)
                    }
                    Attempt::Transport {
                        detail,
                        timed_out,
                        maybe_sent,
                    } => (
                        self.transport_failure(&method, path, &detail, timed_out, attempts),
                        maybe_sent,
                        None,
                    ),
                };
            if ambiguous {
                if let Some(found) = recover.and_then(|probe| probe()) {
                    return Ok(found);
                }
            }
            if attempts > retry.max_retries {
                return Err(failure);
            }
            let wait = retry.delay(attempts, retry_after, rand::random::<f64>());
            log::warn!(
                target: metrics::target::PROVIDERS,
                "{}; retry {attempts} of {} in {} ms",
                failure.error.message,
                retry.max_retries,
                wait.as_millis()
            );
            std::thread::sleep(wait);
        }
    }

    fn suffix(attempts: u32) -> String {
        if attempts > 1 {
            format!(" (after {attempts} attempts)")
        } else {
            String::new()
        }
    }

    fn status_failure(
        &self,
        method: &Method,
        path: &str,
        status: u16,
        body: String,
        attempts: u32,
    ) -> Failure {
        let message = format!(
            "{} {method} {path} failed: {status} {}{}",
            self.options.service,
            Self::quoted(status, &body),
            Self::suffix(attempts)
        );
        Failure {
            error: ProviderError {
                kind: ProviderErrorKind::Http,
                message,
                status: Some(status),
                retryable: is_retryable_status(status),
            },
            body,
        }
    }

    fn transport_failure(
        &self,
        method: &Method,
        path: &str,
        detail: &str,
        timed_out: bool,
        attempts: u32,
    ) -> Failure {
        let what = if timed_out {
            format!("timed out after {} ms", self.options.timeout.as_millis())
        } else {
            format!("request error: {detail}")
        };
        Failure {
            error: ProviderError {
                kind: ProviderErrorKind::Transport,
                message: format!(
                    "{} {method} {path} failed: {what}{}",
                    self.options.service,
                    Self::suffix(attempts)
                ),
                status: None,
                retryable: true,
            },
            body: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        crate::providers::retry::test_policy()
    }

    #[test]
    fn path_segments_are_encoded_and_dot_segments_refused() {
        assert_eq!(path_segment("app", "my-app_1.x~").unwrap(), "my-app_1.x~");
        assert_eq!(
            path_segment("app", "a b/c?d#e").unwrap(),
            "a%20b%2Fc%3Fd%23e"
        );
        assert_eq!(path_segment("id", "é").unwrap(), "%C3%A9");
        for bad in ["", "  ", ".", "..", "a\nb"] {
            let err = path_segment("machine id", bad).unwrap_err();
            assert_eq!(err.kind, ProviderErrorKind::InvalidInput, "{bad:?}");
        }
        assert!(path_segment("id", &"x".repeat(257)).is_err());
    }

    fn client(token: &str) -> ProviderResult<HttpClient> {
        HttpClient::new(
            HttpOptions {
                service: "Fly API",
                base_url: "http://127.0.0.1:9/v1/".into(),
                timeout: Duration::from_millis(200),
                retry: RetryPolicy {
                    max_retries: 1,
                    base_delay: Duration::from_millis(1),
                    ..policy()
                },
            },
            token,
        )
    }

    #[test]
    fn bad_settings_are_refused_without_echoing_the_token() {
        let err = client("  ").unwrap_err();
        assert!(err.message.contains("token is required"));
        let err = client("secret\nvalue").unwrap_err();
        assert!(!err.message.contains("secret"));
        let err = HttpClient::new(
            HttpOptions {
                service: "Fly API",
                base_url: "ftp://example.com".into(),
                timeout: Duration::from_secs(1),
                retry: policy(),
            },
            "tok-123",
        )
        .unwrap_err();
        assert!(err.message.contains("http(s)"));
    }

    #[test]
    fn both_schemes_build_a_client() {
        assert!(tls_config(false).is_ok());
        let https = HttpClient::new(
            HttpOptions {
                service: "Fly API",
                base_url: "https://api.machines.dev/v1".into(),
                timeout: Duration::from_secs(1),
                retry: policy(),
            },
            "tok-123",
        );
        match https {
            Ok(c) => assert!(c.https && !c.bypass_proxy),
            // A machine without system CA certificates says so.
            Err(e) => assert!(e.message.contains("CA certificates"), "{}", e.message),
        }
    }

    #[test]
    fn base_url_loses_its_trailing_slash_and_debug_hides_the_token() {
        let c = client("very-secret-token").unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:9/v1");
        assert!(!format!("{c:?}").contains("very-secret-token"));
        assert_eq!(c.redact("x very-secret-token y"), "x [redacted] y");
    }

    #[test]
    fn connect_errors_are_retryable_transport_failures_that_name_the_call() {
        let c = client("very-secret-token").unwrap();
        let err = c
            .send(Method::GET, "/apps/a/machines", None, None)
            .unwrap_err()
            .error;
        assert_eq!(err.kind, ProviderErrorKind::Transport);
        assert!(err.retryable);
        assert!(
            err.message
                .starts_with("Fly API GET /apps/a/machines failed: "),
            "{}",
            err.message
        );
        assert!(
            err.message.ends_with("(after 2 attempts)"),
            "{}",
            err.message
        );
        assert!(!err.message.contains("very-secret-token"));
    }

    #[test]
    fn long_bodies_are_cut_and_empty_ones_use_the_reason() {
        assert_eq!(HttpClient::quoted(503, " "), "Service Unavailable");
        let long = "é".repeat(MAX_QUOTED_BODY + 10);
        let q = HttpClient::quoted(500, &long);
        assert_eq!(q.chars().count(), MAX_QUOTED_BODY + 1);
        assert!(q.ends_with('…'));
    }
}
