//! Webchat widgets and their security policies (spec §7): `If-Match` on PUT, and
//! server-side validation that refuses script vectors rather than rewriting them.

use axum::http::{StatusCode, header};
use serde_json::{Value, json};

use super::{Ctx, json_body, require_if_match};
use crate::problem::{FieldError, Reply};
use crate::state::{SimState, lock};

const MAX_RULES: usize = 50;

fn etag(widget: &Value) -> String {
    format!(
        "\"{}\"",
        widget["settings"]["version"].as_str().unwrap_or("0")
    )
}

pub(crate) fn list(s: &SimState) -> Reply {
    let w = lock(&s.widgets);
    Reply::ok(json!({"items": w.values().cloned().collect::<Vec<_>>()}))
}

pub(crate) fn get(s: &SimState, id: &str) -> Reply {
    match lock(&s.widgets).get(id) {
        Some(w) => Reply::ok(w.clone()).with_header(header::ETAG, etag(w)),
        None => Reply::not_found(format!("no widget {id}")),
    }
}

/// Why `origin` is not `scheme://host[:port]` as the spec allows, if it is not.
pub(crate) fn origin_problem(origin: &str) -> Option<String> {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return Some("an origin is scheme://host[:port]".into());
    };
    if rest.is_empty() {
        return Some("the host is missing".into());
    }
    if rest.contains('*') {
        return Some("wildcards are not allowed".into());
    }
    if rest.contains('@') {
        return Some("userinfo is not allowed".into());
    }
    if rest.contains('/') || rest.contains('?') || rest.contains('#') {
        return Some("an origin has no path, query or fragment".into());
    }
    let url = match url::Url::parse(origin) {
        Ok(u) => u,
        Err(e) => return Some(format!("not a URL: {e}")),
    };
    let host = url.host_str().unwrap_or_default().to_string();
    match scheme {
        "https" => None,
        "http" if host == "localhost" || host == "127.0.0.1" => None,
        "http" => Some("http is allowed only for localhost and 127.0.0.1; use https".into()),
        other => Some(format!("scheme {other} is not allowed; use https")),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn entity_decode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let end = after.find(';').filter(|e| *e <= 10);
        let decoded = end.and_then(|e| {
            let name = &after[..e];
            let ch = if let Some(num) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X"))
            {
                u32::from_str_radix(num, 16).ok().and_then(char::from_u32)
            } else if let Some(num) = name.strip_prefix('#') {
                num.parse::<u32>().ok().and_then(char::from_u32)
            } else {
                match name.to_ascii_lowercase().as_str() {
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    "amp" => Some('&'),
                    "colon" => Some(':'),
                    "lpar" => Some('('),
                    "rpar" => Some(')'),
                    "equals" => Some('='),
                    _ => None,
                }
            };
            ch.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &after[e + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The script vector a pattern carries, if any: checked after repeated percent and entity
/// decoding, case-insensitively and ignoring whitespace and NULs inside the keywords.
pub(crate) fn script_vector(pattern: &str) -> Option<&'static str> {
    let mut s = pattern.to_string();
    for _ in 0..4 {
        let next = entity_decode(&percent_decode(&s));
        if next == s {
            break;
        }
        s = next;
    }
    let lowered = s.to_lowercase();
    let squeezed: String = lowered
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '\0')
        .collect();
    for (needle, name) in [
        ("<script", "<script"),
        ("javascript:", "javascript:"),
        ("vbscript:", "vbscript:"),
        ("<iframe", "<iframe"),
        ("<object", "<object"),
        ("<embed", "<embed"),
        ("eval(", "eval("),
        ("expression(", "expression("),
    ] {
        if squeezed.contains(needle) {
            return Some(name);
        }
    }
    // Event-handler attributes: on<letters>= with optional spaces before '='.
    let bytes = lowered.as_bytes();
    let mut i = 0;
    while i + 2 < bytes.len() {
        let boundary = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        if boundary && bytes[i] == b'o' && bytes[i + 1] == b'n' {
            let mut j = i + 2;
            while j < bytes.len() && bytes[j].is_ascii_alphabetic() {
                j += 1;
            }
            let letters = j - (i + 2);
            while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            if letters >= 3 && j < bytes.len() && bytes[j] == b'=' {
                return Some("an event-handler attribute (on…=)");
            }
        }
        i += 1;
    }
    None
}

fn validate(id: &str, body: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let Some(obj) = body.as_object() else {
        return vec![FieldError::new("body", "a widget is a JSON object")];
    };
    if let Some(bid) = obj.get("id")
        && bid.as_str() != Some(id)
    {
        errors.push(FieldError::new(
            "id",
            format!("must equal the widget id in the path ({id})"),
        ));
    }
    match obj.get("name").and_then(Value::as_str) {
        Some(n) if !n.trim().is_empty() && n.chars().count() <= 255 => {}
        _ => errors.push(FieldError::new("name", "required, 1 to 255 characters")),
    }
    let policies = &body["settings"]["securityPolicies"];
    if !policies.is_object() {
        errors.push(FieldError::new(
            "settings.securityPolicies",
            "required, an object",
        ));
        return errors;
    }
    cors_origins(&policies["corsOrigins"], &mut errors);
    let auth = &policies["authentication"];
    if !auth["requireToken"].is_boolean() {
        errors.push(FieldError::new(
            "settings.securityPolicies.authentication.requireToken",
            "required, true or false",
        ));
    }
    match auth["tokenExpiryMinutes"].as_i64() {
        Some(5..=1440) => {}
        _ => errors.push(FieldError::new(
            "settings.securityPolicies.authentication.tokenExpiryMinutes",
            "must be an integer from 5 to 1440",
        )),
    }
    rules(&policies["rules"], &mut errors);
    errors
}

fn cors_origins(v: &Value, errors: &mut Vec<FieldError>) {
    match v.as_array() {
        None => errors.push(FieldError::new(
            "settings.securityPolicies.corsOrigins",
            "required, an array of origins",
        )),
        Some(origins) => {
            for (i, o) in origins.iter().enumerate() {
                let field = format!("settings.securityPolicies.corsOrigins[{i}]");
                match o.as_str() {
                    Some(s) => {
                        if let Some(why) = origin_problem(s) {
                            errors.push(FieldError::new(field, format!("{s:?}: {why}")));
                        }
                    }
                    None => errors.push(FieldError::new(field, "must be a string")),
                }
            }
        }
    }
}

fn rules(v: &Value, errors: &mut Vec<FieldError>) {
    match v.as_array() {
        None => errors.push(FieldError::new(
            "settings.securityPolicies.rules",
            "required, an array",
        )),
        Some(rules) => {
            if rules.len() > MAX_RULES {
                errors.push(FieldError::new(
                    "settings.securityPolicies.rules",
                    format!("{} rules, more than the {MAX_RULES} allowed", rules.len()),
                ));
            }
            let mut ids = std::collections::HashSet::new();
            for (i, r) in rules.iter().enumerate() {
                let f = |x: &str| format!("settings.securityPolicies.rules[{i}].{x}");
                match r["id"].as_str() {
                    Some(rid) if !rid.is_empty() => {
                        if !ids.insert(rid.to_string()) {
                            errors.push(FieldError::new(
                                f("id"),
                                format!("duplicate rule id {rid:?}"),
                            ));
                        }
                    }
                    _ => errors.push(FieldError::new(f("id"), "required, a non-empty string")),
                }
                if !matches!(
                    r["action"].as_str(),
                    Some("block" | "allow" | "redirect" | "log")
                ) {
                    errors.push(FieldError::new(
                        f("action"),
                        "must be block, allow, redirect or log",
                    ));
                }
                match r["pattern"].as_str() {
                    Some(p) => {
                        if let Some(v) = script_vector(p) {
                            errors.push(FieldError::new(
                                f("pattern"),
                                format!("contains a script vector ({v})"),
                            ));
                        }
                    }
                    None => errors.push(FieldError::new(f("pattern"), "required, a string")),
                }
            }
        }
    }
}

pub(crate) fn put(s: &SimState, id: &str, ctx: &Ctx<'_>) -> Reply {
    // A race armed by the control API: another user's edit lands just before this PUT is
    // checked, so it meets a changed ETag.
    let race = lock(&s.race_edits).remove(&format!("widget:{id}"));
    if let Some(patch) = race
        && let Err(e) = crate::state::widgets::edit(s, id, &patch)
    {
        tracing::warn!("race edit of widget {id} failed: {e}");
    }
    let current = match lock(&s.widgets).get(id) {
        Some(w) => w.clone(),
        None => return Reply::not_found(format!("no widget {id}")),
    };
    let tag = etag(&current);
    if let Some(r) = require_if_match(ctx.headers, &tag) {
        return r;
    }
    let body = match json_body(ctx) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let errors = validate(id, &body);
    if !errors.is_empty() {
        return Reply::invalid(StatusCode::UNPROCESSABLE_ENTITY, "Invalid widget", errors);
    }
    let mut w = lock(&s.widgets);
    let Some(stored) = w.get_mut(id) else {
        return Reply::not_found(format!("no widget {id}"));
    };
    if etag(stored) != tag {
        return Reply::problem(
            StatusCode::PRECONDITION_FAILED,
            "Precondition failed",
            "the widget changed meanwhile",
        );
    }
    // Everything the caller sent is kept (settings this emulator does not know included);
    // only the id and the version are the server's.
    let mut next = body.clone();
    next["id"] = json!(id);
    next["settings"]["version"] = stored["settings"]["version"].clone();
    if next == *stored {
        let out = stored.clone();
        return Reply::ok(out).with_header(header::ETAG, tag);
    }
    let version = stored["settings"]["version"]
        .as_str()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    next["settings"]["version"] = json!(version.to_string());
    *stored = next.clone();
    drop(w);
    s.mutated("widget", id);
    let tag = etag(&next);
    Reply::ok(next).with_header(header::ETAG, tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_vectors_in_any_encoding() {
        for p in [
            "<script>alert(1)</script>",
            "<ScRiPt src=x>",
            "%3Cscript%3E",
            "&lt;script&gt;",
            "&#60;script",
            "&#x3C;iframe src=x>",
            "JaVaScRiPt:alert(1)",
            "java\tscript:alert(1)",
            "<img src=x onerror=alert(1)>",
            "<body onload = go()>",
            "eval(atob('x'))",
            "width: expression(alert(1))",
            "%253Cscript%253E",
            "<object data=x>",
        ] {
            assert!(script_vector(p).is_some(), "{p} should be refused");
        }
        for p in [
            "^/shop/",
            "(?i)bot|crawler",
            ".*",
            "/online/help",
            "button=on",
        ] {
            assert_eq!(script_vector(p), None, "{p} should pass");
        }
    }

    #[test]
    fn origins() {
        assert_eq!(origin_problem("https://a.example.com"), None);
        assert_eq!(origin_problem("https://a.example.com:8443"), None);
        assert_eq!(origin_problem("http://localhost:3000"), None);
        assert_eq!(origin_problem("http://127.0.0.1"), None);
        for bad in [
            "http://example.com",
            "https://example.com/",
            "https://example.com/path",
            "https://*.example.com",
            "https://user@example.com",
            "https://example.com?q=1",
            "ftp://example.com",
            "example.com",
        ] {
            assert!(origin_problem(bad).is_some(), "{bad} should be refused");
        }
    }
}
