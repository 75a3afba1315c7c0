//! Data Store tables and column encryption (spec §5): all or nothing, index rules,
//! mandatory idempotency key, and the KMS callback (SYNC before answering, ASYNC after).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{Ctx, IDEMPOTENCY_KEY, json_body};
use crate::problem::{FieldError, Reply};
use crate::state::{SimState, lock};

fn locate(s: &SimState, ds: &str, t: &str) -> Result<(), Reply> {
    let d = lock(&s.datastore);
    if d.table["datastoreId"].as_str() != Some(ds) {
        return Err(Reply::not_found(format!("no datastore {ds}")));
    }
    if d.table["id"].as_str() != Some(t) {
        return Err(Reply::not_found(format!("no table {t} in datastore {ds}")));
    }
    Ok(())
}

pub(crate) fn get_table(s: &SimState, ds: &str, t: &str) -> Reply {
    if let Err(r) = locate(s, ds, t) {
        return r;
    }
    Reply::ok(lock(&s.datastore).table.clone())
}

pub(crate) fn indexes(s: &SimState, ds: &str, t: &str) -> Reply {
    if let Err(r) = locate(s, ds, t) {
        return r;
    }
    Reply::ok(lock(&s.datastore).indexes.clone())
}

struct Target {
    name: String,
    config: Value,
    masking: bool,
}

struct KmsSync {
    url: String,
    sync: bool,
    attempts: u32,
    backoff: Duration,
}

fn validate(
    body: &Value,
    table: &Value,
    t: &str,
) -> Result<(Vec<Target>, Option<KmsSync>), Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(obj) = body.as_object() else {
        return Err(vec![FieldError::new("body", "must be a JSON object")]);
    };
    match obj.get("tableId").and_then(Value::as_str) {
        Some(id) if id == t => {}
        Some(_) => errors.push(FieldError::new(
            "tableId",
            format!("must equal the table in the path ({t})"),
        )),
        None => errors.push(FieldError::new("tableId", "required")),
    }
    let targets = matrix(obj.get("columnTargetMatrix"), table, t, &mut errors);
    let kms = obj
        .get("externalKmsSync")
        .filter(|v| !v.is_null())
        .map(|sync| kms_sync(sync, &mut errors));
    if errors.is_empty() {
        Ok((targets, kms))
    } else {
        Err(errors)
    }
}

/// `columnTargetMatrix`: each entry names a column of the table once, with a valid
/// encryption configuration.
fn matrix(
    matrix: Option<&Value>,
    table: &Value,
    t: &str,
    errors: &mut Vec<FieldError>,
) -> Vec<Target> {
    let columns = table["columns"].as_array().cloned().unwrap_or_default();
    let mut targets = Vec::new();
    let m = match matrix.and_then(Value::as_array) {
        None => {
            errors.push(FieldError::new(
                "columnTargetMatrix",
                "required, a non-empty array",
            ));
            return targets;
        }
        Some(m) if m.is_empty() => {
            errors.push(FieldError::new("columnTargetMatrix", "must not be empty"));
            return targets;
        }
        Some(m) => m,
    };
    let mut seen = std::collections::HashSet::new();
    for (i, entry) in m.iter().enumerate() {
        let f = |x: &str| format!("columnTargetMatrix[{i}].{x}");
        let name = entry
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(col) = columns.iter().find(|c| c["name"].as_str() == Some(name)) else {
            errors.push(FieldError::new(
                f("name"),
                format!("no column {name:?} in table {t}"),
            ));
            continue;
        };
        if !seen.insert(name.to_string()) {
            errors.push(FieldError::new(
                f("name"),
                format!("column {name} is listed twice"),
            ));
        }
        if let Some(ty) = entry.get("type").and_then(Value::as_str)
            && col["type"].as_str() != Some(ty)
        {
            errors.push(FieldError::new(
                f("type"),
                format!("column {name} is of type {}", col["type"]),
            ));
        }
        let cfg = entry
            .get("encryptionConfiguration")
            .cloned()
            .unwrap_or(Value::Null);
        if !cfg.is_object() {
            errors.push(FieldError::new(
                f("encryptionConfiguration"),
                "required, an object",
            ));
            continue;
        }
        encryption_config(
            &cfg,
            &|x| f(&format!("encryptionConfiguration.{x}")),
            errors,
        );
        let masking = cfg.get("indexMaskingTrigger") == Some(&json!(true));
        targets.push(Target {
            name: name.to_string(),
            config: cfg,
            masking,
        });
    }
    targets
}

/// One column's `encryptionConfiguration`; `f` names a field of it.
fn encryption_config(cfg: &Value, f: &dyn Fn(&str) -> String, errors: &mut Vec<FieldError>) {
    if cfg.get("enabled") != Some(&json!(true)) {
        errors.push(FieldError::new(f("enabled"), "must be true"));
    }
    match cfg.get("algorithm").and_then(Value::as_str) {
        Some("AES-256-GCM") => {}
        other => errors.push(FieldError::new(
            f("algorithm"),
            format!(
                "{} is not supported: only AES-256-GCM",
                other
                    .map(|a| format!("{a:?}"))
                    .unwrap_or("(missing)".into())
            ),
        )),
    }
    if !matches!(
        cfg.get("complianceMode").and_then(Value::as_str),
        Some("GDPR" | "HIPAA" | "PCI")
    ) {
        errors.push(FieldError::new(
            f("complianceMode"),
            "must be GDPR, HIPAA or PCI",
        ));
    }
    if let Some(krd) = cfg.get("keyRotationDirective") {
        if !matches!(
            krd.get("strategy").and_then(Value::as_str),
            Some("AUTOMATIC" | "MANUAL")
        ) {
            errors.push(FieldError::new(
                f("keyRotationDirective.strategy"),
                "must be AUTOMATIC or MANUAL",
            ));
        }
        match krd.get("intervalDays").and_then(Value::as_i64) {
            Some(1..=365) => {}
            _ => errors.push(FieldError::new(
                f("keyRotationDirective.intervalDays"),
                "must be an integer from 1 to 365",
            )),
        }
        if let Some(e) = krd.get("nextRotationEpoch")
            && !e.is_i64()
            && !e.is_null()
        {
            errors.push(FieldError::new(
                f("keyRotationDirective.nextRotationEpoch"),
                "must be a Unix time in seconds",
            ));
        }
    }
    for flag in ["indexMaskingTrigger", "decryptionPermissionVerification"] {
        if let Some(v) = cfg.get(flag)
            && !v.is_boolean()
        {
            errors.push(FieldError::new(f(flag), "must be true or false"));
        }
    }
}

/// `externalKmsSync`: where and how the KMS callback is sent.
fn kms_sync(sync: &Value, errors: &mut Vec<FieldError>) -> KmsSync {
    let url = sync
        .get("callbackUrl")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        _ => errors.push(FieldError::new(
            "externalKmsSync.callbackUrl",
            "must be an absolute http(s) URL",
        )),
    }
    let mode = sync
        .get("syncMode")
        .and_then(Value::as_str)
        .unwrap_or("ASYNC");
    if !matches!(mode, "ASYNC" | "SYNC") {
        errors.push(FieldError::new(
            "externalKmsSync.syncMode",
            "must be ASYNC or SYNC",
        ));
    }
    let rp = sync.get("retryPolicy");
    let attempts = rp.and_then(|r| r.get("maxAttempts")).map(|v| v.as_u64());
    let backoff = rp.and_then(|r| r.get("backoffMs")).map(|v| v.as_u64());
    if let Some(a) = attempts
        && !matches!(a, Some(1..=10))
    {
        errors.push(FieldError::new(
            "externalKmsSync.retryPolicy.maxAttempts",
            "must be an integer from 1 to 10",
        ));
    }
    if let Some(b) = backoff
        && !matches!(b, Some(0..=60_000))
    {
        errors.push(FieldError::new(
            "externalKmsSync.retryPolicy.backoffMs",
            "must be an integer from 0 to 60000",
        ));
    }
    KmsSync {
        url: url.to_string(),
        sync: mode == "SYNC",
        attempts: attempts.flatten().unwrap_or(3).clamp(1, 10) as u32,
        backoff: Duration::from_millis(backoff.flatten().unwrap_or(200).min(60_000)),
    }
}

/// The 409 conflicts: encrypted-field budget, read-only indexes, writable indexes without
/// masking.
fn conflicts(targets: &[Target], table: &Value, indexes: &Value) -> Option<Reply> {
    let columns = table["columns"].as_array().cloned().unwrap_or_default();
    let max = table["metadata"]["maxEncryptedFields"]
        .as_u64()
        .unwrap_or(12) as usize;
    let already = columns
        .iter()
        .filter(|c| c["encrypted"] == json!(true))
        .count();
    let new = targets
        .iter()
        .filter(|t| {
            !columns
                .iter()
                .any(|c| c["name"].as_str() == Some(&t.name) && c["encrypted"] == json!(true))
        })
        .count();
    if already + new > max {
        return Some(Reply::problem_with(
            StatusCode::CONFLICT,
            "Too many encrypted fields",
            format!(
                "{already} columns are encrypted and {new} more would exceed maxEncryptedFields ({max}); nothing was changed"
            ),
            vec![FieldError::new(
                "columnTargetMatrix",
                format!(
                    "at most {} more columns can be encrypted",
                    max.saturating_sub(already)
                ),
            )],
        ));
    }
    for (i, t) in targets.iter().enumerate() {
        for idx in indexes.as_array().into_iter().flatten() {
            let in_index = idx["columns"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c.as_str() == Some(&t.name));
            if !in_index {
                continue;
            }
            let name = idx["name"].as_str().unwrap_or_default();
            if idx["readOnly"] == json!(true) {
                return Some(Reply::problem_with(
                    StatusCode::CONFLICT,
                    "Column in a read-only index",
                    format!(
                        "column {} is in the read-only index {name}; nothing was changed",
                        t.name
                    ),
                    vec![FieldError::new(
                        format!("columnTargetMatrix[{i}].name"),
                        format!("in read-only index {name}"),
                    )],
                ));
            }
            if !t.masking {
                return Some(Reply::problem_with(
                    StatusCode::CONFLICT,
                    "Column in an index",
                    format!(
                        "column {} is in the index {name}; set indexMaskingTrigger:true to mask the index; nothing was changed",
                        t.name
                    ),
                    vec![FieldError::new(
                        format!(
                            "columnTargetMatrix[{i}].encryptionConfiguration.indexMaskingTrigger"
                        ),
                        format!("required for a column in index {name}"),
                    )],
                ));
            }
        }
    }
    None
}

async fn post_callback(
    http: &reqwest::Client,
    log: &Arc<Mutex<Vec<Value>>>,
    kms: &KmsSync,
    payload: &Value,
) -> bool {
    // One key per change, the same on every attempt, so a receiver can tell a retry
    // from a new change.
    let key = format!(
        "kms-{}-{}",
        payload["tableId"].as_str().unwrap_or_default(),
        payload["keyVersion"]
    );
    for attempt in 1..=kms.attempts {
        let outcome = http
            .post(&kms.url)
            .header(IDEMPOTENCY_KEY, &key)
            .json(payload)
            .send()
            .await;
        let (ok, status) = match &outcome {
            Ok(r) => (r.status().is_success(), json!(r.status().as_u16())),
            Err(e) => (false, json!(e.to_string())),
        };
        lock(log).push(json!({"url": kms.url, "attempt": attempt, "ok": ok, "status": status, "payload": payload}));
        if ok {
            return true;
        }
        if attempt < kms.attempts {
            tokio::time::sleep(kms.backoff * attempt).await;
        }
    }
    false
}

/// The table with the targets encrypted and the indexes they mask.
fn encrypted(table: &Value, indexes: &Value, targets: &[Target]) -> (Value, Value) {
    let mut new_table = table.clone();
    let mut new_indexes = indexes.clone();
    if let Some(cols) = new_table["columns"].as_array_mut() {
        for c in cols.iter_mut() {
            if let Some(t) = targets.iter().find(|t| c["name"].as_str() == Some(&t.name)) {
                c["encrypted"] = json!(true);
                c["encryptionConfiguration"] = t.config.clone();
            }
        }
    }
    if let Some(idxs) = new_indexes.as_array_mut() {
        for idx in idxs.iter_mut() {
            let touched = idx["columns"].as_array().into_iter().flatten().any(|c| {
                targets
                    .iter()
                    .any(|t| c.as_str() == Some(&t.name) && t.masking)
            });
            if touched {
                idx["masked"] = json!(true);
            }
        }
    }
    (new_table, new_indexes)
}

pub(crate) async fn encrypt_columns(s: &SimState, ds: &str, t: &str, ctx: &Ctx<'_>) -> Reply {
    if let Err(r) = locate(s, ds, t) {
        return r;
    }
    if ctx.headers.get(IDEMPOTENCY_KEY).is_none() {
        return Reply::problem(
            StatusCode::PRECONDITION_REQUIRED,
            "Idempotency key required",
            "column encryption requires an X-Idempotency-Key header",
        );
    }
    let body = match json_body(ctx) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (table, index_list, version) = {
        let d = lock(&s.datastore);
        (d.table.clone(), d.indexes.clone(), d.key_version)
    };
    let (targets, kms) = match validate(&body, &table, t) {
        Ok(v) => v,
        Err(errors) => {
            return Reply::invalid(
                StatusCode::BAD_REQUEST,
                "Invalid encryption request",
                errors,
            );
        }
    };
    if let Some(r) = conflicts(&targets, &table, &index_list) {
        return r;
    }

    // Compute the new table and indexes; nothing is stored until the callback (if SYNC)
    // has succeeded.
    let (new_table, new_indexes) = encrypted(&table, &index_list, &targets);
    let key_version = version + 1;
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    let payload = json!({
        "tableId": t,
        "columns": names,
        "keyVersion": key_version,
        "complianceCheck": {"algorithm": "AES-256-GCM"},
    });
    if let Some(k) = kms.as_ref().filter(|k| k.sync)
        && !post_callback(&s.http, &s.kms_callbacks, k, &payload).await
    {
        return Reply::problem(
            StatusCode::BAD_GATEWAY,
            "KMS callback failed",
            format!(
                "the SYNC callback to {} did not succeed; the change was rolled back",
                k.url
            ),
        );
    }
    {
        let mut d = lock(&s.datastore);
        if d.key_version != version {
            return Reply::problem(
                StatusCode::CONFLICT,
                "Table changed",
                "the table changed while this request was processed; nothing was changed",
            );
        }
        d.table = new_table.clone();
        d.indexes = new_indexes;
        d.key_version = key_version;
    }
    s.mutated("table", t);
    if let Some(k) = kms.filter(|k| !k.sync) {
        let http = s.http.clone();
        let log = s.kms_callbacks.clone();
        let payload = payload.clone();
        tokio::spawn(async move {
            post_callback(&http, &log, &k, &payload).await;
        });
    }
    Reply::ok(json!({"table": new_table, "keyVersion": key_version, "externalKmsPayload": payload}))
}
