//! Widgets as another user edits them (the control API's edits and races).

use serde_json::{Value, json};

use super::{SimState, lock};

/// Another user's edit (a JSON merge patch of the widget, `settings.version` bumped), as
/// the control API makes it.
pub(crate) fn edit(s: &SimState, id: &str, patch: &Value) -> Result<Value, String> {
    let mut w = lock(&s.widgets);
    let stored = w.get_mut(id).ok_or_else(|| format!("no widget {id}"))?;
    merge(stored, patch);
    let version = stored["settings"]["version"]
        .as_str()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    stored["settings"]["version"] = json!(version.to_string());
    let out = stored.clone();
    drop(w);
    s.mutated("widget", id);
    Ok(out)
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch.as_object() {
        Some(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            if let Some(t) = target.as_object_mut() {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        None => *target = patch.clone(),
    }
}
