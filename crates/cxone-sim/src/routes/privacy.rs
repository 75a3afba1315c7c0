//! CXone's GDPR erasure requests (spec §9): validated, recorded (listed under the
//! control API), answered 202 with a new `requestId` — a repeat is harmless and gets
//! another. Errors come in the real tenants' shape `{"code","details","errors"}`, not as
//! a problem document, so clients are exercised on both.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{Ctx, json_body};
use crate::problem::Reply;
use crate::state::{SimState, lock};

const MAX_IDENTIFIER: usize = 320;

/// A 400 in the §9 error shape, naming `field`.
fn refused(field: &str, message: impl Into<String>) -> Reply {
    let message = message.into();
    Reply::json(
        StatusCode::BAD_REQUEST,
        json!({
            "code": "InvalidRequest",
            "details": format!("{field}: {message}"),
            "errors": [{"field": field, "message": message}],
        }),
    )
}

fn valid_email(s: &str) -> bool {
    let mut parts = s.split('@');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(local), Some(domain), None) if !local.is_empty() && !domain.is_empty()
    )
}

fn valid_phone(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

pub(crate) fn erasure(s: &SimState, ctx: &Ctx<'_>) -> Reply {
    let body: Value = match json_body(ctx) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(obj) = body.as_object() else {
        return refused(
            "body",
            "a JSON object {subjectIdentifier, subjectIdentifierType}",
        );
    };
    let Some(identifier) = obj.get("subjectIdentifier").and_then(Value::as_str) else {
        return refused("subjectIdentifier", "required, a string");
    };
    if identifier.is_empty() || identifier.chars().count() > MAX_IDENTIFIER {
        return refused(
            "subjectIdentifier",
            format!("1 to {MAX_IDENTIFIER} characters"),
        );
    }
    let kind = obj.get("subjectIdentifierType").and_then(Value::as_str);
    let ok = match kind {
        Some("EMAIL") => valid_email(identifier),
        Some("PHONENO") => valid_phone(identifier),
        Some("USER") => true,
        _ => {
            return refused("subjectIdentifierType", "one of EMAIL, PHONENO, USER");
        }
    };
    if !ok {
        return refused(
            "subjectIdentifier",
            match kind {
                Some("EMAIL") => "an email address: one @ with text on both sides",
                _ => "an E.164 phone number: + and 8 to 15 digits",
            },
        );
    }
    let mut log = lock(&s.erasures);
    let request_id = format!(
        "er-{:016x}",
        crate::data::mix(s.seed ^ (log.len() as u64 + 1).rotate_left(29))
    );
    log.push(json!({
        "requestId": request_id,
        "subjectIdentifier": identifier,
        "subjectIdentifierType": kind,
        "receivedAt": time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    }));
    drop(log);
    s.mutated("erasure", &request_id);
    Reply::json(StatusCode::ACCEPTED, json!({"requestId": request_id}))
}

#[cfg(test)]
mod tests {
    use super::{valid_email, valid_phone};

    #[test]
    fn identifiers_are_checked_as_the_spec_says() {
        assert!(valid_email("ann@example.com"));
        for bad in ["ann", "@example.com", "ann@", "a@b@c"] {
            assert!(!valid_email(bad), "{bad}");
        }
        assert!(valid_phone("+14155550100"));
        for bad in [
            "14155550100",
            "+1234567",
            "+1234567890123456",
            "+1415555010a",
        ] {
            assert!(!valid_phone(bad), "{bad}");
        }
    }
}
