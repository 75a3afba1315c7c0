//! Integration secrets and Data Actions (spec §3): compare-and-swap rotation on value
//! hashes, stale actions after an immediate rotation, recompile and test.

use axum::http::StatusCode;
use base64::Engine as _;
use serde_json::{Value, json};

use super::{Ctx, json_body};
use crate::data::sha256_hex;
use crate::problem::{FieldError, Reply};
use crate::state::{SimState, lock};

pub(crate) const MAX_SECRET_LEN: usize = 4096;

pub(crate) fn list_secrets(s: &SimState) -> Reply {
    let i = lock(&s.integration);
    Reply::ok(json!({"items": i.secrets.values().map(|s| s.to_json()).collect::<Vec<_>>()}))
}

pub(crate) fn get_secret(s: &SimState, id: &str) -> Reply {
    match lock(&s.integration).secrets.get(id) {
        Some(sec) => Reply::ok(sec.to_json()),
        None => Reply::not_found(format!("no secret {id}")),
    }
}

pub(crate) fn references(s: &SimState, id: &str) -> Reply {
    let i = lock(&s.integration);
    if !i.secrets.contains_key(id) {
        return Reply::not_found(format!("no secret {id}"));
    }
    let items: Vec<Value> = i
        .actions
        .values()
        .filter(|a| a.secret_ids.iter().any(|x| x == id))
        .map(|a| json!({"dataActionId": a.id, "name": a.name}))
        .collect();
    Reply::ok(json!({"items": items}))
}

/// Why `value` is not well-formed for `format` (spec §3), if it is not.
pub(crate) fn format_problem(format: &str, value: &str) -> Option<String> {
    match format {
        "raw" => None,
        "jwt" => {
            let parts: Vec<&str> = value.split('.').collect();
            if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
                return Some(
                    "a jwt is three non-empty base64url segments separated by dots".into(),
                );
            }
            let b64url = |p: &str| {
                p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            };
            if !parts.iter().all(|p| b64url(p)) {
                return Some("a jwt segment holds a character outside base64url".into());
            }
            let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(parts[0].as_bytes())
                .ok()
                .and_then(|h| serde_json::from_slice::<Value>(&h).ok());
            match header {
                Some(Value::Object(_)) => None,
                _ => Some("the jwt header segment does not decode to a JSON object".into()),
            }
        }
        "base64" => {
            if value.is_empty() || !value.len().is_multiple_of(4) {
                return Some(
                    "base64 (RFC 4648, padded) has a length that is a multiple of 4".into(),
                );
            }
            match base64::engine::general_purpose::STANDARD.decode(value.as_bytes()) {
                Ok(_) => None,
                Err(e) => Some(format!("not RFC 4648 base64 with padding: {e}")),
            }
        }
        _ => Some("format must be one of raw, jwt, base64".into()),
    }
}

/// A rotation request that passed validation.
struct Rotation<'a> {
    value: &'a str,
    format: &'a str,
    prev: &'a str,
    description: Option<&'a str>,
    immediate: bool,
}

/// Every field of a rotation request, each problem named.
fn rotation(body: &Value) -> Result<Rotation<'_>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let value = body.get("value").and_then(Value::as_str);
    let format = body.get("format").and_then(Value::as_str);
    match value {
        None => errors.push(FieldError::new("value", "required, a string")),
        Some("") => errors.push(FieldError::new("value", "must not be empty")),
        Some(v) if v.chars().count() > MAX_SECRET_LEN => errors.push(FieldError::new(
            "value",
            format!(
                "{} characters, more than the {MAX_SECRET_LEN} allowed",
                v.chars().count()
            ),
        )),
        _ => {}
    }
    match format {
        None => errors.push(FieldError::new("format", "required: raw, jwt or base64")),
        Some(f) if !matches!(f, "raw" | "jwt" | "base64") => errors.push(FieldError::new(
            "format",
            format!("{f:?} is not one of raw, jwt, base64"),
        )),
        Some(f) => {
            if let Some(v) = value.filter(|v| !v.is_empty())
                && let Some(why) = format_problem(f, v)
            {
                errors.push(FieldError::new("value", why));
            }
        }
    }
    if let Some(d) = body.get("description")
        && !d.is_string()
        && !d.is_null()
    {
        errors.push(FieldError::new("description", "must be a string"));
    }
    let directive = body
        .get("referenceUpdateDirective")
        .and_then(Value::as_str)
        .unwrap_or("immediate");
    if !matches!(directive, "immediate" | "deferred") {
        errors.push(FieldError::new(
            "referenceUpdateDirective",
            "must be immediate or deferred",
        ));
    }
    let prev = verification_matrix(body.get("verificationMatrix"), value, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Rotation {
        value: value.unwrap_or_default(),
        format: format.unwrap_or_default(),
        prev: prev.unwrap_or_default(),
        description: body.get("description").and_then(Value::as_str),
        immediate: directive == "immediate",
    })
}

/// `verificationMatrix`: the previous value's digest (returned) and the new value's.
fn verification_matrix<'a>(
    matrix: Option<&'a Value>,
    value: Option<&str>,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    let prev = matrix
        .and_then(|m| m.get("previous_sha256"))
        .and_then(Value::as_str);
    let proposed = matrix
        .and_then(|m| m.get("proposed_sha256"))
        .and_then(Value::as_str);
    let is_hex64 = |h: &str| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
    match prev {
        Some(h) if is_hex64(h) => {}
        _ => errors.push(FieldError::new(
            "verificationMatrix.previous_sha256",
            "required, 64 hex characters",
        )),
    }
    match (proposed, value) {
        (Some(h), Some(v)) if is_hex64(h) => {
            if !h.eq_ignore_ascii_case(&sha256_hex(v.as_bytes())) {
                errors.push(FieldError::new(
                    "verificationMatrix.proposed_sha256",
                    "does not equal the SHA-256 of value",
                ));
            }
        }
        (Some(h), _) if is_hex64(h) => {}
        _ => errors.push(FieldError::new(
            "verificationMatrix.proposed_sha256",
            "required, 64 hex characters",
        )),
    }
    prev
}

pub(crate) fn rotate_secret(s: &SimState, id: &str, ctx: &Ctx<'_>) -> Reply {
    if !lock(&s.integration).secrets.contains_key(id) {
        return Reply::not_found(format!("no secret {id}"));
    }
    let body = match json_body(ctx) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let r = match rotation(&body) {
        Ok(r) => r,
        Err(errors) => {
            return Reply::invalid(StatusCode::BAD_REQUEST, "Invalid secret rotation", errors);
        }
    };
    let mut i = lock(&s.integration);
    let Some(secret) = i.secrets.get_mut(id) else {
        return Reply::not_found(format!("no secret {id}"));
    };
    if !secret.value_sha256.eq_ignore_ascii_case(r.prev) {
        return Reply::problem(
            StatusCode::CONFLICT,
            "Secret changed",
            "verificationMatrix.previous_sha256 does not match the stored value: someone else rotated this secret; nothing was changed",
        );
    }
    secret.version += 1;
    secret.value_sha256 = sha256_hex(r.value.as_bytes());
    secret.format = r.format.to_string();
    if let Some(d) = r.description {
        secret.description = d.to_string();
    }
    secret.updated_at = time::OffsetDateTime::now_utc().unix_timestamp();
    let out = secret.to_json();
    let mut stale = Vec::new();
    if r.immediate {
        for a in i.actions.values_mut() {
            if a.secret_ids.iter().any(|x| x == id) && a.status != "failed" {
                a.status = "stale";
                stale.push(a.id.clone());
            }
        }
    }
    drop(i);
    for a in stale {
        s.mutated("dataaction", &a);
    }
    s.mutated("secret", id);
    Reply::ok(out)
}

pub(crate) fn get_action(s: &SimState, id: &str) -> Reply {
    match lock(&s.integration).actions.get(id) {
        Some(a) => Reply::ok(a.to_json()),
        None => Reply::not_found(format!("no data action {id}")),
    }
}

pub(crate) fn recompile(s: &SimState, id: &str) -> Reply {
    let mut guard = lock(&s.integration);
    let i = &mut *guard;
    let Some(action) = i.actions.get(id).cloned() else {
        return Reply::not_found(format!("no data action {id}"));
    };
    let mut compiled = std::collections::BTreeMap::new();
    let mut rejected = None;
    for sid in &action.secret_ids {
        if let Some(sec) = i.secrets.get(sid) {
            if i.rejects(id, &sec.value_sha256) {
                rejected = Some(sid.clone());
            }
            compiled.insert(sid.clone(), (sec.version, sec.value_sha256.clone()));
        }
    }
    let before = (action.status, action.compiled.clone());
    let a = i.actions.get_mut(id).expect("checked above");
    a.compiled = compiled;
    a.status = if rejected.is_some() {
        "failed"
    } else {
        "compiled"
    };
    let changed = before != (a.status, a.compiled.clone());
    let out = a.to_json();
    drop(guard);
    if changed {
        s.mutated("dataaction", id);
    }
    match rejected {
        None => Reply::ok(out),
        Some(sid) => {
            let mut r = Reply::problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Data action test failed",
                format!("the action's test call rejected the current value of secret {sid}"),
            );
            r.body["dataActionStatus"] = json!("failed");
            r.body["dataAction"] = out;
            r
        }
    }
}

pub(crate) fn test_action(s: &SimState, id: &str) -> Reply {
    let i = lock(&s.integration);
    let Some(a) = i.actions.get(id) else {
        return Reply::not_found(format!("no data action {id}"));
    };
    let fail = |detail: String| {
        Reply::json(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"ok": false, "detail": detail}),
        )
    };
    if a.status == "failed" {
        return fail(
            "the action failed its last compilation; recompile it against a value it accepts"
                .into(),
        );
    }
    for (sid, (version, sha)) in &a.compiled {
        if i.rejects(id, sha) {
            return fail(format!(
                "the remote service rejected secret {sid} version {version}"
            ));
        }
        if let Some(sec) = i.secrets.get(sid)
            && sec.version != *version
        {
            return fail(format!(
                "compiled against secret {sid} version {version}, which is no longer current (now {}); recompile",
                sec.version
            ));
        }
    }
    Reply::ok(json!({"ok": true}))
}
