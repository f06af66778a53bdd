//! Names the pool gives to things: spawned worker ids and dedicated volumes.
//!
//! Invariants:
//! - [`dedicated_volume_name`] is exactly the seed's `buildDedicatedVolumeName`
//!   (sanitised prefix, `_`, base-36 FNV-1a-32 of the sanitised worker id), at
//!   most 30 characters of `[a-z0-9_]`, so it is a valid Fly and local volume name;
//! - spawned worker ids keep the seed's `afw-<nowMs>-<i>` shape; uniqueness is
//!   enforced where they are registered (see `rows::preregister`), which skips
//!   every index already taken by a row or a live machine name.

/// Longest volume name Fly accepts.
pub const MAX_VOLUME_NAME: usize = 30;

/// Lowercase, every character outside `[a-z0-9_]` → `_`, runs of `_` collapsed, `_` trimmed.
pub fn sanitize(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.to_lowercase().chars() {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
            c
        } else {
            '_'
        };
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    out.trim_matches('_').to_string()
}

/// `n` in base 36 with lowercase digits (JavaScript's `n.toString(36)`).
pub fn base36(mut n: u32) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    if n == 0 {
        return "0".into();
    }
    let mut out = Vec::new();
    while n > 0 {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

/// The volume name dedicated to `worker_id` under `prefix` (the seed's rule).
pub fn dedicated_volume_name(prefix: &str, worker_id: &str) -> String {
    let prefix = Some(sanitize(prefix))
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "openclaw".into());
    let worker = Some(sanitize(worker_id))
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "worker".into());
    let hash: String = base36(crate::ids::fnv1a32_utf16(&worker))
        .chars()
        .take(8)
        .collect();
    let keep = MAX_VOLUME_NAME
        .saturating_sub(1 + hash.len())
        .max(1)
        .min(prefix.len());
    format!("{}_{hash}", &prefix[..keep])
}

/// The seed's spawned worker id `afw-<nowMs>-<index>`.
pub fn spawned_worker_id(now_ms: i64, index: usize) -> String {
    format!("afw-{now_ms}-{index}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_matches_the_seed() {
        assert_eq!(sanitize("openclaw_data_test"), "openclaw_data_test");
        assert_eq!(sanitize("  Open--Claw..Data  "), "open_claw_data");
        assert_eq!(sanitize("__x__"), "x");
        assert_eq!(sanitize("---"), "");
        assert_eq!(sanitize("Größe"), "gr_e");
    }

    #[test]
    fn hashes_match_javascript() {
        // Values computed with the seed's stableHashBase36 in node.
        assert_eq!(crate::ids::fnv1a32_utf16(""), 2_166_136_261);
        assert_eq!(crate::ids::fnv1a32_utf16("a"), 0xe40c_292c);
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
        assert_eq!(base36(u32::MAX), "1z141z3");
    }

    #[test]
    fn dedicated_names_follow_the_rule() {
        let name = dedicated_volume_name("openclaw_data_test", "worker-cleanup-1");
        let hash = base36(crate::ids::fnv1a32_utf16("worker_cleanup_1"));
        assert_eq!(name, format!("openclaw_data_test_{hash}"));
        assert!(name.len() <= MAX_VOLUME_NAME);
        // Blank parts fall back; long prefixes are cut to fit 30 characters.
        assert!(dedicated_volume_name("", "").starts_with("openclaw_"));
        let long = dedicated_volume_name(&"p".repeat(64), "afw-1767225600000-0");
        assert_eq!(long.len(), MAX_VOLUME_NAME.min(long.len()));
        assert!(long.len() <= MAX_VOLUME_NAME);
        assert!(long
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        // Distinct workers get distinct names (hash of the sanitised id).
        assert_ne!(
            dedicated_volume_name("data", "afw-1-0"),
            dedicated_volume_name("data", "afw-1-1")
        );
    }

    #[test]
    fn spawned_ids_keep_the_seed_shape() {
        assert_eq!(
            spawned_worker_id(1_767_225_600_000, 0),
            "afw-1767225600000-0"
        );
    }
}
