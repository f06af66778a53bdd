//! Input checks shared by every area. Messages name the field and the value.

use crate::error::{Error, Result};

/// An explicit timestamp must not be negative.
pub fn timestamp(field: &str, value: Option<i64>) -> Result<()> {
    match value {
        Some(v) if v < 0 => Err(Error::validation(format!("{field} must be >= 0, got {v}"))),
        _ => Ok(()),
    }
}

/// An id made of letters, digits and `._:-` (plus `/` when `slash`), 1..=`max` bytes.
pub fn identifier(field: &str, value: &str, max: usize, slash: bool) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b) || (slash && b == b'/'));
    if ok {
        Ok(())
    } else {
        let extra = if slash { " / " } else { " " };
        Err(Error::validation(format!(
            "{field} {value:?} must be 1-{max} characters of letters, digits and . _ : -{extra}"
        )))
    }
}

/// Free text that must not be blank and has at most `max_chars` characters.
pub fn text(field: &str, value: &str, max_chars: usize) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::validation(format!("{field} must not be blank")));
    }
    optional_text(field, value, max_chars)
}

/// Text of at most `max_chars` characters (may be empty).
pub fn optional_text(field: &str, value: &str, max_chars: usize) -> Result<()> {
    let n = value.chars().count();
    if n > max_chars {
        return Err(Error::validation(format!(
            "{field} has {n} characters; the limit is {max_chars}"
        )));
    }
    Ok(())
}

/// A workspace id: non-blank, at most 200 characters.
pub fn workspace_id(value: &str) -> Result<()> {
    text("workspaceId", value, 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_field() {
        assert!(timestamp("nowMs", Some(-1))
            .unwrap_err()
            .to_string()
            .starts_with("nowMs"));
        assert!(identifier("workerId", "bad id", 128, false)
            .unwrap_err()
            .to_string()
            .contains("workerId"));
        assert!(identifier("secretRef", "a/b", 200, true).is_ok());
        assert!(text("workspaceId", "  ", 200).is_err());
        assert!(optional_text("x", &"é".repeat(10), 10).is_ok());
    }
}
