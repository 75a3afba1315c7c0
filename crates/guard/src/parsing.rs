//! How a file that does not parse is reported: where (file, line, column), which key,
//! and what is wrong, never the value. A secret put in the wrong place of a config or
//! posture file (`client_secret = "…"` under the wrong table) must not reach stderr or a
//! CI log through the parser's error, which quotes the source line and the value.
//!
//! One function for every TOML file cxguard reads (config, masking policy, posture,
//! webchat policy).

/// `shown:LINE:COLUMN: key `KEY`: what is wrong`, with any value the parser quoted
/// taken out.
pub fn toml_problem(shown: &str, text: &str, e: &toml::de::Error) -> String {
    let message = without_values(e.message());
    let Some(span) = e.span() else {
        return format!("{shown}: {message}");
    };
    let (line, column) = line_column(text, span.start);
    match key_on_line(text, span.start) {
        Some(key) if !message.contains(&format!("`{key}`")) => {
            format!("{shown}:{line}:{column}: key `{key}`: {message}")
        }
        _ => format!("{shown}:{line}:{column}: {message}"),
    }
}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[start..].chars().count() + 1;
    (line, column)
}

/// The key of the `key = value` line holding `offset`, or the `[table]` it opens; `None`
/// when the line is not one (a line inside a multi-line value) or the text before `=`
/// does not look like a key.
fn key_on_line(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = text[start..end].trim();
    let key = if let Some(header) = line.strip_prefix('[') {
        header.trim_start_matches('[').split(']').next()?.trim()
    } else {
        line.split_once('=')?.0.trim()
    };
    let looks_like_key = !key.is_empty()
        && key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | '"'));
    looks_like_key.then(|| key.to_string())
}

/// The parser's message with the values it quotes taken out: `invalid type: string
/// "s3cr3t", expected a boolean` becomes `invalid type: string, expected a boolean`;
/// `unknown variant `x`, expected …` keeps only what was expected. Key names, which
/// serde quotes in backticks (`unknown field `x``), stay.
fn without_values(message: &str) -> String {
    let message = message.trim_end();
    for prefix in ["invalid type: ", "invalid value: ", "unknown variant "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let expected = rest.find(", expected").map_or("", |i| &rest[i..]);
            let kind = if prefix == "unknown variant " {
                ""
            } else {
                rest.split([' ', ',']).next().unwrap_or("")
            };
            let head = prefix.trim_end_matches(' ').trim_end_matches(':');
            return match kind {
                "" => format!("{head}{expected}"),
                k => format!("{head}: {k}{expected}"),
            };
        }
    }
    // Anything else in double quotes may be a value.
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        match (c, quoted) {
            ('"', false) => {
                quoted = true;
                out.push_str("\"…");
            }
            ('"', true) => {
                quoted = false;
                out.push('"');
            }
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct File {
        tenant: Option<Tenant>,
        flag: Option<bool>,
        mode: Option<Mode>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Tenant {
        base_url: Option<String>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Fast,
    }

    fn problem(text: &str) -> String {
        let e = toml::from_str::<File>(text).unwrap_err();
        toml_problem("cxguard.toml", text, &e)
    }

    /// Regression (trust review, item 7): the parser's error quoted the line, so a
    /// secret under the wrong key went to stderr.
    #[test]
    fn no_problem_quotes_the_value() {
        let secret = "s3cr3t-V4lue";
        for (text, key, line) in [
            (
                format!("[tenant]\nclient_secret = \"{secret}\"\n"),
                "client_secret",
                2,
            ),
            (format!("flag = \"{secret}\"\n"), "flag", 1),
            (format!("mode = \"{secret}\"\n"), "mode", 1),
            (format!("\n\nflag = {secret}\n"), "flag", 3),
            (format!("[tenant]\nbase_url = \"{secret}\nx = 1\n"), "", 2),
        ] {
            let p = problem(&text);
            assert!(!p.contains(secret) && !p.contains("s3cr3t"), "{p}");
            assert!(p.starts_with(&format!("cxguard.toml:{line}:")), "{p}");
            assert!(p.contains(key), "{p}");
        }
    }

    #[test]
    fn messages_keep_what_was_expected() {
        assert_eq!(
            without_values("invalid type: string \"x\", expected a boolean"),
            "invalid type: string, expected a boolean"
        );
        assert_eq!(
            without_values("unknown variant `slow`, expected `fast`"),
            "unknown variant, expected `fast`"
        );
        assert_eq!(
            without_values("unknown field `client_secret`, expected `base_url`"),
            "unknown field `client_secret`, expected `base_url`"
        );
        assert_eq!(without_values("bad \"thing\" here"), "bad \"…\" here");
    }

    #[test]
    fn lines_and_columns_count_characters() {
        assert_eq!(line_column("ab\ncdé\nf", 7), (2, 4));
        assert_eq!(line_column("x", 99), (1, 2));
    }
}

/// A date (`2024-12-31`, midnight UTC) or an RFC 3339 time; the error names `flag`.
pub fn date_or_time(flag: &str, text: &str) -> crate::Result<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .or_else(|_| {
            time::Date::parse(
                text,
                time::macros::format_description!("[year]-[month]-[day]"),
            )
            .map(|d| d.midnight().assume_utc())
        })
        .map_err(|_| {
            crate::Error::Invalid(format!(
                "{flag}: {text:?} is not a date (2024-12-31) or an RFC 3339 time"
            ))
        })
}

/// A duration as the command line and the posture write it: `90` or `90s`, `30m`, `24h`,
/// `7d`. The error names `field` and says what is accepted.
pub fn duration(field: &str, text: &str) -> crate::Result<std::time::Duration> {
    let t = text.trim();
    let (n, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = n.parse().map_err(|_| {
        crate::Error::Invalid(format!(
            "{field}: {text:?} is not a duration such as 30m, 24h or 7d"
        ))
    })?;
    let unit_secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(crate::Error::Invalid(format!(
                "{field}: {text:?}: the unit is s, m, h or d"
            )));
        }
    };
    n.checked_mul(unit_secs)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| crate::Error::Invalid(format!("{field}: {text:?} is too long")))
}

#[cfg(test)]
mod duration_tests {
    use super::duration;

    #[test]
    fn durations_take_each_unit_and_refuse_others_naming_the_field() {
        assert_eq!(duration("f", "90").unwrap().as_secs(), 90);
        assert_eq!(duration("f", "30m").unwrap().as_secs(), 1800);
        assert_eq!(duration("f", "24h").unwrap().as_secs(), 86_400);
        assert_eq!(duration("f", "7d").unwrap().as_secs(), 604_800);
        let e = duration("--grace", "3w").unwrap_err().to_string();
        assert!(e.contains("--grace") && e.contains("s, m, h or d"), "{e}");
        assert!(duration("--grace", "soon").is_err());
        assert!(duration("--grace", "99999999999999999999d").is_err());
    }
}
