//! Web-messaging guests and their attributes (spec §6): validated all-or-nothing batches
//! of upserts and deletes; an identical upsert changes nothing.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{Ctx, json_body};
use crate::problem::{FieldError, Reply};
use crate::state::{Attribute, SimState, lock};

const MAX_OPERATIONS: usize = 50;
const MAX_VALUE: usize = 1024;

fn valid_attribute_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub(crate) fn create(s: &SimState) -> Reply {
    let mut g = lock(&s.guests);
    g.created += 1;
    let id = format!(
        "g-new-{:016x}",
        crate::data::mix(s.seed ^ g.created.rotate_left(17))
    );
    g.guests.insert(id.clone(), Vec::new());
    drop(g);
    s.mutated("guest", &id);
    Reply::json(StatusCode::CREATED, json!({"id": id}))
}

pub(crate) fn get_attributes(s: &SimState, guest: &str) -> Reply {
    match lock(&s.guests).guests.get(guest) {
        Some(attrs) => Reply::ok(json!(attrs)),
        None => Reply::not_found(format!("no guest {guest}")),
    }
}

enum Op {
    Upsert(String, String),
    Delete(String),
}

fn validate(body: &Value) -> Result<Vec<Op>, Vec<FieldError>> {
    let Some(items) = body.as_array() else {
        return Err(vec![FieldError::new(
            "body",
            "an array of {id, value, operation}",
        )]);
    };
    if items.is_empty() {
        return Err(vec![FieldError::new("body", "at least one operation")]);
    }
    if items.len() > MAX_OPERATIONS {
        return Err(vec![FieldError::new(
            "body",
            format!(
                "{} operations, more than the {MAX_OPERATIONS} allowed",
                items.len()
            ),
        )]);
    }
    let mut ops = Vec::new();
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let f = |x: &str| format!("[{i}].{x}");
        let id = item.get("id").and_then(Value::as_str).unwrap_or_default();
        if !valid_attribute_id(id) {
            errors.push(FieldError::new(f("id"), "must match ^[A-Za-z0-9_-]{1,64}$"));
        }
        let value = item.get("value");
        match item.get("operation").and_then(Value::as_str) {
            Some("upsert") => match value.and_then(Value::as_str) {
                Some(v) if v.chars().count() > MAX_VALUE => errors.push(FieldError::new(
                    f("value"),
                    format!(
                        "{} characters, more than the {MAX_VALUE} allowed",
                        v.chars().count()
                    ),
                )),
                Some(v) => ops.push(Op::Upsert(id.to_string(), v.to_string())),
                None => errors.push(FieldError::new(f("value"), "required for upsert, a string")),
            },
            Some("delete") => ops.push(Op::Delete(id.to_string())),
            Some(other) => errors.push(FieldError::new(
                f("operation"),
                format!("{other:?} is not upsert or delete"),
            )),
            None => errors.push(FieldError::new(
                f("operation"),
                "required: upsert or delete",
            )),
        }
    }
    if errors.is_empty() {
        Ok(ops)
    } else {
        Err(errors)
    }
}

pub(crate) fn patch_attributes(s: &SimState, guest: &str, ctx: &Ctx<'_>) -> Reply {
    if !lock(&s.guests).guests.contains_key(guest) {
        return Reply::not_found(format!("no guest {guest}"));
    }
    let body = match json_body(ctx) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ops = match validate(&body) {
        Ok(ops) => ops,
        Err(errors) => {
            return Reply::invalid(
                StatusCode::BAD_REQUEST,
                "Invalid attribute operations",
                errors,
            );
        }
    };
    let now = time::OffsetDateTime::now_utc();
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let mut g = lock(&s.guests);
    let Some(attrs) = g.guests.get_mut(guest) else {
        return Reply::not_found(format!("no guest {guest}"));
    };
    let mut changed = false;
    for op in ops {
        match op {
            Op::Upsert(id, value) => match attrs.iter_mut().find(|a| a.id == id) {
                Some(a) if a.value == value => {}
                Some(a) => {
                    a.value = value;
                    a.updated_timestamp = now_ms;
                    changed = true;
                }
                None => {
                    attrs.push(Attribute {
                        id,
                        value,
                        kind: "string",
                        created_timestamp: now_ms,
                        updated_timestamp: now_ms,
                    });
                    changed = true;
                }
            },
            Op::Delete(id) => {
                let before = attrs.len();
                attrs.retain(|a| a.id != id);
                changed |= attrs.len() != before;
            }
        }
    }
    let out = json!(attrs);
    drop(g);
    if changed {
        s.mutated("guest", guest);
    }
    Reply::ok(out)
}
