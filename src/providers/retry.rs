//! How long to wait between attempts of a provider call.
//!
//! Invariants:
//! - waits grow exponentially from `base_delay` up to `max_delay`, with jitter
//!   (half of the wait fixed, half random), and never overflow;
//! - a server's `Retry-After` of N seconds replaces the computed wait, capped at
//!   `retry_after_cap`; HTTP-date and malformed values are ignored.

use std::time::Duration;

/// How often and how patiently a call is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Wait before the first retry (before jitter).
    pub base_delay: Duration,
    /// Longest computed wait.
    pub max_delay: Duration,
    /// Longest wait a server may ask for with `Retry-After`.
    pub retry_after_cap: Duration,
}

impl Default for RetryPolicy {
    /// 3 retries, 250 ms doubling up to 10 s, `Retry-After` honoured up to 30 s.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
            retry_after_cap: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Wait before retry number `retry` (1-based): `d = min(max, base·2^(retry-1))`,
    /// then `d/2 + d/2·unit` for a random `unit` in `[0, 1]`.
    pub fn backoff(&self, retry: u32, unit: f64) -> Duration {
        let exp = retry.saturating_sub(1).min(30);
        let full = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let half = full / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// Wait before retry `retry`: the server's `Retry-After` (capped) when given,
    /// else [`RetryPolicy::backoff`].
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        match retry_after {
            Some(d) => d.min(self.retry_after_cap),
            None => self.backoff(retry, unit),
        }
    }
}

/// A `Retry-After` value in delta-seconds (`"3"`, `"1.5"`); HTTP dates and junk
/// give `None` (the computed backoff applies).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(secs).ok()
}

/// The `Retry-After` header of a response, parsed (delta-seconds; see [`parse_retry_after`]).
pub fn retry_after_header(resp: &reqwest::blocking::Response) -> Option<Duration> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}

/// A small policy for unit tests (5 retries, 100 ms doubling to 1 s, `Retry-After` capped at 5 s).
#[cfg(test)]
pub(crate) fn test_policy() -> RetryPolicy {
    RetryPolicy {
        max_retries: 5,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(1000),
        retry_after_cap: Duration::from_secs(5),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        test_policy()
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        let p = policy();
        let lo: Vec<u128> = (1..=6).map(|r| p.backoff(r, 0.0).as_millis()).collect();
        let hi: Vec<u128> = (1..=6).map(|r| p.backoff(r, 1.0).as_millis()).collect();
        assert_eq!(lo, vec![50, 100, 200, 400, 500, 500]);
        assert_eq!(hi, vec![100, 200, 400, 800, 1000, 1000]);
        let mid = p.backoff(3, 0.5).as_millis();
        assert!((200..=400).contains(&mid));
        assert_eq!(p.backoff(1, 7.0), p.backoff(1, 1.0), "unit is clamped");
        assert_eq!(p.backoff(200, 1.0).as_millis(), 1000, "no overflow");
    }

    #[test]
    fn retry_after_replaces_the_backoff_and_is_capped() {
        let p = policy();
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(2)), 0.3),
            Duration::from_secs(2)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(60)), 0.3),
            Duration::from_secs(5)
        );
        assert_eq!(p.delay(2, None, 1.0), p.backoff(2, 1.0));
    }

    #[test]
    fn retry_after_parses_delta_seconds_only() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after(" 1.5 "),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after("0"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("NaN"), None);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after(""), None);
    }
}
