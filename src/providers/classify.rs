//! What an HTTP error answer from a provider API means to the caller.
//!
//! Invariants:
//! - a 5xx, 429 or 408 is `Retryable`: the resource may well exist, so it is
//!   never read as "gone" even when the body says "not found" (the original
//!   took `internal server error` for a vanished machine and leaked billing);
//! - "gone" needs a 404/410, or another 4xx whose body says the resource does
//!   not exist — but never "app not found" or a router's "404 page not found",
//!   which are configuration errors: a wrong app name or base URL must not make
//!   every machine look deleted;
//! - 409, 412 and 4xx bodies saying `failed_precondition` are `Deferred`.

/// Meaning of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 2xx.
    Success,
    /// The resource does not exist.
    Gone,
    /// A precondition failed; the same call may work later.
    Deferred,
    /// Transient server-side trouble; retry with backoff.
    Retryable,
    /// Anything else: the call is wrong or forbidden.
    Fatal,
}

/// Statuses worth retrying with backoff: 408, 429 and every 5xx.
pub fn is_retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

/// Whether the body says the resource does not exist.
pub fn says_not_found(body: &str) -> bool {
    let b = body.to_ascii_lowercase();
    b.contains("not found") || b.contains("unknown machine") || b.contains("does not exist")
}

/// Whether the body says the app or the route (not the machine or volume) is missing.
fn says_wrong_target(body: &str) -> bool {
    let b = body.to_ascii_lowercase();
    b.contains("app not found")
        || b.contains("could not find app")
        || b.contains("unknown app")
        || b.contains("page not found")
}

/// Whether the body reports a failed precondition.
pub fn says_precondition(body: &str) -> bool {
    let b = body.to_ascii_lowercase();
    b.contains("failed_precondition") || b.contains("precondition failed")
}

/// Classify an answer by status and body.
pub fn classify(status: u16, body: &str) -> Class {
    if (200..300).contains(&status) {
        return Class::Success;
    }
    if is_retryable_status(status) {
        return Class::Retryable;
    }
    if !(400..500).contains(&status) {
        return Class::Fatal;
    }
    if says_wrong_target(body) || status == 401 || status == 403 {
        return Class::Fatal;
    }
    if status == 404 || status == 410 {
        return Class::Gone;
    }
    if status == 409 || status == 412 || says_precondition(body) {
        return Class::Deferred;
    }
    if says_not_found(body) {
        return Class::Gone;
    }
    Class::Fatal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_are_never_gone() {
        for (status, body) in [
            (500, r#"{"error":"internal server error"}"#),
            (500, r#"{"error":"machine not found in cache"}"#),
            (502, "bad gateway"),
            (503, "unknown machine"),
            (504, "does not exist"),
        ] {
            assert_eq!(classify(status, body), Class::Retryable, "{status} {body}");
        }
        assert_eq!(classify(429, "slow down"), Class::Retryable);
        assert_eq!(classify(408, ""), Class::Retryable);
    }

    #[test]
    fn not_found_answers_are_gone() {
        assert_eq!(classify(404, ""), Class::Gone);
        assert_eq!(
            classify(404, r#"{"error":"machine not found"}"#),
            Class::Gone
        );
        assert_eq!(classify(410, ""), Class::Gone);
        assert_eq!(
            classify(400, r#"{"error":"Unknown machine abc"}"#),
            Class::Gone
        );
        assert_eq!(classify(422, "volume does not exist"), Class::Gone);
    }

    #[test]
    fn a_missing_app_or_forbidden_call_is_fatal() {
        assert_eq!(classify(404, r#"{"error":"App not found"}"#), Class::Fatal);
        assert_eq!(classify(400, "could not find app x"), Class::Fatal);
        assert_eq!(classify(404, "404 page not found\n"), Class::Fatal);
        assert_eq!(classify(401, "not found"), Class::Fatal);
        assert_eq!(classify(403, "unauthorized"), Class::Fatal);
        assert_eq!(classify(400, "bad json"), Class::Fatal);
        assert_eq!(classify(301, ""), Class::Fatal);
    }

    #[test]
    fn precondition_failures_are_deferred() {
        assert_eq!(classify(412, ""), Class::Deferred);
        assert_eq!(classify(409, "lease held"), Class::Deferred);
        assert_eq!(
            classify(
                400,
                r#"{"error":"failed_precondition: unable to destroy machine, not currently stopped"}"#
            ),
            Class::Deferred
        );
        assert_eq!(classify(422, "Precondition Failed"), Class::Deferred);
    }

    #[test]
    fn success_is_success() {
        assert_eq!(classify(200, ""), Class::Success);
        assert_eq!(classify(204, ""), Class::Success);
    }
}
