//! Integration secrets: the checks a rotation makes before any call (a value well-formed
//! for its format, spec §3), and the age policy behind `cxguard secrets due`.
//! The rotation itself is the rest of [`crate::rotate`].

use std::time::Duration;

use base64::Engine as _;
use cxone::models::{Secret, SecretFormat};
use serde::Serialize;

/// The longest value the API accepts (spec §3).
pub const MAX_VALUE_CHARS: usize = 4096;

/// `template` with `{id}` replaced by `id`, when `id` can name a file: one path segment
/// of `A-Z a-z 0-9 . _ -`, not `.` or `..`. The id comes from the tenant; substituted
/// unchecked, `../../x` would read and write outside the directory the posture names.
pub fn path_for_id(template: &str, id: &str) -> Result<std::path::PathBuf, String> {
    let ok = !id.is_empty()
        && id.len() <= 200
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        return Err(format!(
            "secret id {:?} cannot name a file (write_to's {{id}}): an id put into a path must be one segment of A-Z a-z 0-9 . _ - and not . or ..",
            id.escape_debug().to_string()
        ));
    }
    Ok(std::path::PathBuf::from(template.replace("{id}", id)))
}

/// Why `value` cannot be a secret of `format`, naming the problem but never the value.
pub fn check_value(format: SecretFormat, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("the value is empty".into());
    }
    let n = value.chars().count();
    if n > MAX_VALUE_CHARS {
        return Err(format!(
            "the value has {n} characters; at most {MAX_VALUE_CHARS} are allowed"
        ));
    }
    match format {
        SecretFormat::Raw => Ok(()),
        SecretFormat::Jwt => {
            let parts: Vec<&str> = value.split('.').collect();
            if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
                return Err("a jwt is three non-empty base64url segments separated by dots".into());
            }
            if !parts.iter().all(|p| {
                p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            }) {
                return Err("a jwt segment holds a character outside base64url".into());
            }
            let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(parts[0])
                .ok()
                .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok());
            match header {
                Some(serde_json::Value::Object(_)) => Ok(()),
                _ => Err("the jwt's first segment does not decode to a JSON object".into()),
            }
        }
        SecretFormat::Base64 => {
            if !value.len().is_multiple_of(4) {
                return Err(
                    "base64 (RFC 4648, padded) has a length that is a multiple of 4".into(),
                );
            }
            base64::engine::general_purpose::STANDARD
                .decode(value)
                .map(|_| ())
                .map_err(|e| format!("not RFC 4648 base64 with padding: {e}"))
        }
    }
}

/// Parses an age such as `90d`, `12h`, `2w` or `3600s`.
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not an age such as 90d, 12h, 2w or 3600s"))?;
    let unit_secs: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" | "" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h, d or w")),
    };
    // Ages past a century mean nothing for a secret, and would overflow date arithmetic.
    const MAX_AGE_SECS: u64 = 100 * 366 * 86_400;
    let secs = n
        .checked_mul(unit_secs)
        .filter(|s| *s <= MAX_AGE_SECS)
        .ok_or_else(|| format!("{text:?}: more than 100 years"))?;
    if secs == 0 {
        return Err(format!("{text:?}: the age must be more than 0"));
    }
    Ok(Duration::from_secs(secs))
}

/// A secret older than the policy allows.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Due {
    /// The secret.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: u64,
    /// When it last changed.
    pub updated_at: String,
    /// Days since then.
    pub age_days: i64,
}

/// The secrets last updated more than `max_age` before `now`, oldest first. A secret
/// whose `updatedAt` does not parse is reported as due: an unknown age is not a safe one.
pub fn due(secrets: &[Secret], max_age: Duration, now: time::OffsetDateTime) -> Vec<Due> {
    let mut out: Vec<Due> = secrets
        .iter()
        .filter_map(|s| {
            let updated = time::OffsetDateTime::parse(
                &s.updated_at,
                &time::format_description::well_known::Rfc3339,
            )
            .ok();
            let age = updated.map(|u| now - u);
            let is_due = age.is_none_or(|a| {
                a > time::Duration::try_from(max_age).unwrap_or(time::Duration::MAX)
            });
            is_due.then(|| Due {
                id: s.id.clone(),
                name: s.name.clone(),
                version: s.version,
                updated_at: s.updated_at.clone(),
                age_days: age.map_or(i64::MAX, |a| a.whole_days()),
            })
        })
        .collect();
    out.sort_by_key(|d| std::cmp::Reverse(d.age_days));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (trust review, item 11): posture put the tenant's secret id into
    /// `write_to` unchecked, so `../../x` read and wrote outside the directory.
    #[test]
    fn an_id_that_is_not_one_path_segment_cannot_name_a_file() {
        for bad in ["../../x", "..", ".", "a/b", "a\\b", "", "x\0y", "ä"] {
            let why = path_for_id("/vault/{id}.value", bad).unwrap_err();
            assert!(why.contains("cannot name a file"), "{bad:?}: {why}");
        }
        assert_eq!(
            path_for_id("/vault/{id}.value", "sec-crm.v2_a").unwrap(),
            std::path::PathBuf::from("/vault/sec-crm.v2_a.value")
        );
    }

    #[test]
    fn values_must_fit_their_format() {
        use SecretFormat::*;
        let ok = [
            (Raw, "key_abc"),
            (Jwt, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"),
            (Base64, "YWJjZA=="),
        ];
        for (f, v) in ok {
            assert_eq!(check_value(f, v), Ok(()), "{f:?} {v}");
        }
        let bad = [
            (Raw, "", "empty"),
            (Raw, &*"x".repeat(4097), "4097 characters"),
            (Jwt, "a.b", "three non-empty"),
            (Jwt, "a..c", "three non-empty"),
            (Jwt, "eyJhbGciOiJIUzI1NiJ9.e30.s!g", "outside base64url"),
            (Jwt, "bm90anNvbg.e30.c2ln", "JSON object"),
            (Base64, "abc", "multiple of 4"),
            (Base64, "ab$=", "RFC 4648"),
        ];
        for (f, v, why) in bad {
            let e = check_value(f, v).unwrap_err();
            assert!(e.contains(why), "{f:?}: {e}");
            if v.len() > 3 && v.len() < 100 {
                assert!(!e.contains(v), "errors never repeat the value");
            }
        }
        assert_eq!(check_value(Raw, &"x".repeat(4096)), Ok(()));
    }

    #[test]
    fn ages_parse() {
        assert_eq!(parse_age("90d").unwrap(), Duration::from_secs(90 * 86_400));
        assert_eq!(parse_age("2w").unwrap(), Duration::from_secs(14 * 86_400));
        assert_eq!(parse_age("12h").unwrap(), Duration::from_secs(12 * 3600));
        // Regression: the last two overflowed `n * 86_400` and panicked.
        for bad in [
            "",
            "d",
            "90 days",
            "0d",
            "-5d",
            "1y",
            "18446744073709551615w",
            "999999999999999d",
        ] {
            assert!(parse_age(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn due_lists_the_old_and_the_unknown_oldest_first() {
        let now = time::macros::datetime!(2026-11-22 0:00 UTC);
        let s = |id: &str, at: &str| Secret {
            id: id.into(),
            name: id.into(),
            format: SecretFormat::Raw,
            description: None,
            version: 1,
            value_sha256: "0".repeat(64),
            updated_at: at.into(),
        };
        let list = [
            s("new", "2026-11-01T00:00:00Z"),
            s("old", "2026-01-01T00:00:00Z"),
            s("odd", "yesterday"),
            s("mid", "2026-06-01T00:00:00Z"),
        ];
        let d = due(&list, parse_age("90d").unwrap(), now);
        let ids: Vec<&str> = d.iter().map(|x| x.id.as_str()).collect();
        assert_eq!(ids, vec!["odd", "old", "mid"]);
    }
}
