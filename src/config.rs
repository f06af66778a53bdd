//! Tunables with the seed's defaults, overridable per factory.
//!
//! Invariants: every duration is positive, `max_priority >= default_priority >= 0`,
//! `max_attempts >= 1`, `jitter_ratio` in `[0, 1]`. [`Config::validate`] checks them
//! so a bad override fails when the factory opens, not mid-operation.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Queue behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Priority given to messages enqueued without one.
    pub default_priority: i64,
    /// Highest accepted priority (values are clamped into `0..=max_priority`).
    pub max_priority: i64,
    /// Conversation history entries kept per conversation (oldest dropped first).
    pub history_limit: i64,
    /// Largest accepted serialized payload, in bytes.
    pub max_payload_bytes: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            default_priority: 50,
            max_priority: 100,
            history_limit: 1000,
            max_payload_bytes: 1 << 20,
        }
    }
}

/// Retry with exponential backoff and deterministic jitter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts before a message is dead-lettered.
    pub max_attempts: i64,
    /// Delay after the first failure.
    pub base_delay_ms: i64,
    /// Upper bound of the exponential part.
    pub max_delay_ms: i64,
    /// Growth per attempt.
    pub backoff_factor: f64,
    /// Extra delay of up to this fraction of the bounded delay.
    pub jitter_ratio: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay_ms: 1_000,
            max_delay_ms: 120_000,
            backoff_factor: 2.0,
            jitter_ratio: 0.1,
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `attempts` (1-based), the seed's formula:
    /// `bounded = min(max, max(base, base * factor^(attempts-1)))` plus a jitter of
    /// `floor(bounded * ratio * (seed mod 10000) / 10000)` where the seed mixes `now_ms`
    /// and `attempts` exactly as the original's 32-bit arithmetic did.
    pub fn retry_delay_ms(&self, attempts: i64, now_ms: i64) -> i64 {
        let exp = (attempts - 1).max(0) as i32;
        let raw = self.base_delay_ms as f64 * self.backoff_factor.powi(exp);
        let bounded = (self.max_delay_ms as f64).min((self.base_delay_ms as f64).max(raw));
        let mixed = (attempts.wrapping_mul(2_654_435_761)) as i32;
        let seed = ((now_ms as i32) ^ mixed) as u32;
        let jitter = (bounded * self.jitter_ratio * f64::from(seed % 10_000) / 10_000.0).floor();
        (bounded + jitter) as i64
    }
}

/// Leases on claimed messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeaseConfig {
    /// Lease length granted by claim and heartbeat.
    pub lease_ms: i64,
    /// Suggested heartbeat period for workers.
    pub heartbeat_interval_ms: i64,
    /// A worker whose heartbeat is older than this is stale.
    pub stale_after_ms: i64,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            lease_ms: 360_000,
            heartbeat_interval_ms: 15_000,
            stale_after_ms: 420_000,
        }
    }
}

/// Worker-pool scaling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScalingPolicy {
    /// Upper bound on live workers.
    pub max_workers: i64,
    /// Target queued messages per worker (advisory).
    pub queue_per_worker_target: i64,
    /// Workers spawned per reconcile at most.
    pub spawn_step: i64,
    /// Idle time after the last claim before a worker is drained.
    pub idle_timeout_ms: i64,
    /// Period of the reconcile loop.
    pub reconcile_interval_ms: i64,
}

impl Default for ScalingPolicy {
    fn default() -> Self {
        ScalingPolicy {
            max_workers: 1,
            queue_per_worker_target: 5,
            spawn_step: 1,
            idle_timeout_ms: 1_800_000,
            reconcile_interval_ms: 15_000,
        }
    }
}

/// Workspace snapshots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotConfig {
    /// How long a snapshot is kept after its upload was prepared (the seed's
    /// `DATA_SNAPSHOT_RETENTION_MS`, 7 days).
    pub retention_ms: i64,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            retention_ms: crate::snapshots::DATA_SNAPSHOT_RETENTION_MS,
        }
    }
}

/// All tunables of a factory.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Queue behaviour.
    pub queue: QueueConfig,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Lease policy.
    pub lease: LeaseConfig,
    /// Scaling policy.
    pub scaling: ScalingPolicy,
    /// Snapshot retention.
    pub snapshots: SnapshotConfig,
}

fn positive(name: &str, v: i64) -> Result<()> {
    if v > 0 {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "{name} must be positive, got {v}"
        )))
    }
}

impl Config {
    /// Reject values no operation could work with.
    pub fn validate(&self) -> Result<()> {
        let q = &self.queue;
        if q.max_priority < 0 || q.default_priority < 0 || q.default_priority > q.max_priority {
            return Err(Error::validation(format!(
                "queue.default_priority must be within 0..={} (got {})",
                q.max_priority, q.default_priority
            )));
        }
        positive("queue.history_limit", q.history_limit)?;
        positive("queue.max_payload_bytes", q.max_payload_bytes as i64)?;
        let r = &self.retry;
        positive("retry.max_attempts", r.max_attempts)?;
        positive("retry.base_delay_ms", r.base_delay_ms)?;
        positive("retry.max_delay_ms", r.max_delay_ms)?;
        if !(r.backoff_factor.is_finite() && r.backoff_factor >= 1.0) {
            return Err(Error::validation(format!(
                "retry.backoff_factor must be >= 1, got {}",
                r.backoff_factor
            )));
        }
        if !(0.0..=1.0).contains(&r.jitter_ratio) {
            return Err(Error::validation(format!(
                "retry.jitter_ratio must be within 0..=1, got {}",
                r.jitter_ratio
            )));
        }
        positive("lease.lease_ms", self.lease.lease_ms)?;
        positive(
            "lease.heartbeat_interval_ms",
            self.lease.heartbeat_interval_ms,
        )?;
        positive("lease.stale_after_ms", self.lease.stale_after_ms)?;
        let s = &self.scaling;
        if s.max_workers < 0 {
            return Err(Error::validation(format!(
                "scaling.max_workers must be >= 0, got {}",
                s.max_workers
            )));
        }
        positive("scaling.queue_per_worker_target", s.queue_per_worker_target)?;
        positive("scaling.spawn_step", s.spawn_step)?;
        positive("scaling.idle_timeout_ms", s.idle_timeout_ms)?;
        positive("scaling.reconcile_interval_ms", s.reconcile_interval_ms)?;
        positive("snapshots.retention_ms", self.snapshots.retention_ms)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_with_bounded_jitter() {
        let p = RetryPolicy::default();
        for (attempt, base) in [(1, 1_000), (2, 2_000), (3, 4_000), (4, 8_000)] {
            for now in [0_i64, 1_767_225_600_000, 123_456_789] {
                let d = p.retry_delay_ms(attempt, now);
                assert!(d >= base && d <= base + base / 10, "attempt {attempt}: {d}");
            }
        }
        assert!(p.retry_delay_ms(30, 7) <= 132_000);
        assert!(p.retry_delay_ms(30, 7) >= 120_000);
    }

    #[test]
    fn jitter_matches_the_original_32_bit_mixing() {
        // seed = uint32(int32(now) ^ int32(attempts * 2654435761)); for now=0, attempts=1:
        // int32(2654435761) = -1640531535 -> uint32 2654435761 -> mod 10000 = 5761.
        let p = RetryPolicy::default();
        assert_eq!(
            p.retry_delay_ms(1, 0),
            1_000 + (1_000.0_f64 * 0.1 * 0.5761).floor() as i64
        );
    }

    #[test]
    fn defaults_validate_and_bad_values_are_named() {
        Config::default().validate().unwrap();
        let mut c = Config::default();
        c.lease.lease_ms = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("lease.lease_ms"));
    }
}
