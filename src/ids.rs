//! Identifier formats.
//!
//! Lease ids are unguessable (128 random bits inside a UUID v7), so fencing
//! cannot be defeated by guessing. Message ids are the decimal form of the
//! message row key: opaque strings that sort by age. Message rows are never
//! deleted (a future retention must keep the newest row), so ids are never reused.

use crate::error::{Error, Result};

/// A fresh lease id: time-ordered and unguessable.
pub fn new_lease_id() -> String {
    format!("lease-{}", uuid::Uuid::now_v7().simple())
}

/// A fresh snapshot id: time-ordered (UUID v7) and unique.
pub fn new_snapshot_id() -> String {
    format!("snap-{}", uuid::Uuid::now_v7().simple())
}

/// FNV-1a (32 bit) over UTF-16 code units, as the original computed its
/// hashes (`stableHashBase36` for volume names, history fingerprints).
pub fn fnv1a32_utf16(text: &str) -> u32 {
    let mut hash: u32 = 2_166_136_261;
    for unit in text.encode_utf16() {
        hash ^= u32::from(unit);
        hash = hash.wrapping_mul(16_777_619);
    }
    hash
}

/// Public message id for a row key.
pub fn message_id(row: i64) -> String {
    row.to_string()
}

/// Parse a public message id back to its row key.
pub fn parse_message_id(id: &str) -> Result<i64> {
    id.parse::<i64>()
        .ok()
        .filter(|v| *v > 0 && id.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| Error::validation(format!("messageId {id:?} is not a valid message id")))
}

/// Pre-assignment lease id used by the scheduler for spawned workers.
pub fn spawn_lease_id(worker_id: &str) -> String {
    format!("spawn:{worker_id}")
}

/// The stable conversation id of a user's agent.
pub fn user_agent_conversation_id(agent_key: &str, consumer_user_id: &str) -> String {
    format!("user-agent:{agent_key}:{consumer_user_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_round_trip_and_reject_garbage() {
        assert_eq!(parse_message_id(&message_id(42)).unwrap(), 42);
        for bad in ["", "0", "-1", "abc", "1.5", " 1", "+1"] {
            assert!(parse_message_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn fnv_matches_the_reference_values() {
        assert_eq!(fnv1a32_utf16(""), 2_166_136_261);
        assert_eq!(fnv1a32_utf16("a"), 0xe40c_292c);
    }

    #[test]
    fn lease_ids_are_unique() {
        let a = new_lease_id();
        let b = new_lease_id();
        assert_ne!(a, b);
        assert!(a.starts_with("lease-"));
    }
}
