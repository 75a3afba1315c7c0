//! The pure half of `encrypt`: a [`Request`] checked against the table and its indexes,
//! every problem reported at once (each naming its column or index), and the [`Plan`] —
//! columns to encrypt, indexes to mask, coverage before → after, and the risk to queries.

use std::collections::BTreeSet;

use cxone::models::{Column, Index, Table};
use serde::Serialize;
use serde_json::{Value, json};

use super::{ALGORITHM, Classifier, Coverage, Request, Rotation};

/// What applying a request would do.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The table, `DS/TABLE`.
    pub table: String,
    /// Columns to encrypt, in the table's order.
    pub columns: Vec<String>,
    /// Requested columns already encrypted with the same configuration: left alone.
    pub skipped: Vec<String>,
    /// Writable indexes that will be masked.
    pub masked_indexes: Vec<String>,
    /// Compliance regime.
    pub compliance: &'static str,
    /// `AUTOMATIC` or `MANUAL`.
    pub rotation: &'static str,
    /// Rotation interval, days.
    pub rotation_days: u16,
    /// Coverage now.
    pub before: Coverage,
    /// Coverage after.
    pub after: Coverage,
    /// The risk to queries: `none`, `medium` (most columns encrypted) or `high` (indexes
    /// masked).
    pub risk: &'static str,
    /// Why.
    pub risk_reasons: Vec<String>,
    /// The callback's host (the URL itself holds a capability token and is not shown).
    pub kms_callback_host: Option<String>,
}

impl Plan {
    /// Whether there is nothing to do.
    pub fn is_noop(&self) -> bool {
        self.columns.is_empty()
    }
}

/// The first rotation date for a key made `now`: `None` for a manual key.
pub fn next_rotation(req: &Request, now: time::OffsetDateTime) -> Option<i64> {
    match req.rotation {
        Rotation::Automatic { days } => {
            Some((now + time::Duration::days(i64::from(days))).unix_timestamp())
        }
        Rotation::Manual => None,
    }
}

/// The PATCH body (spec §5): `columns` as (name, type), `next` the first rotation date.
/// The same inputs give the same body, so a resumed job sends exactly what it journaled.
pub fn body(req: &Request, columns: &[(String, String)], next: Option<i64>) -> Value {
    let matrix: Vec<Value> = columns
        .iter()
        .map(|(name, kind)| {
            json!({
                "name": name,
                "type": kind,
                "encryptionConfiguration": {
                    "enabled": true,
                    "algorithm": ALGORITHM,
                    "complianceMode": req.compliance.as_str(),
                    "keyRotationDirective": {
                        "strategy": req.rotation.strategy(),
                        "intervalDays": req.rotation.interval_days(),
                        "nextRotationEpoch": next,
                    },
                    "indexMaskingTrigger": req.mask_indexes,
                    "decryptionPermissionVerification": true,
                }
            })
        })
        .collect();
    let mut body = json!({"tableId": req.table.table, "columnTargetMatrix": matrix});
    if let Some(k) = &req.kms {
        body["externalKmsSync"] = json!({
            "callbackUrl": k.url.as_str(),
            "syncMode": k.sync.as_str(),
            "retryPolicy": {"maxAttempts": 3, "backoffMs": 500},
        });
    }
    body
}

/// Whether `col` is encrypted the way `req` asks.
pub fn same_configuration(col: &Column, req: &Request) -> bool {
    let Some(cfg) = col
        .encryption_configuration
        .as_ref()
        .filter(|_| col.encrypted)
    else {
        return false;
    };
    let s = |v: &Value| v.as_str().map(str::to_string);
    let krd = &cfg["keyRotationDirective"];
    s(&cfg["algorithm"]).as_deref() == Some(ALGORITHM)
        && s(&cfg["complianceMode"]).as_deref() == Some(req.compliance.as_str())
        && s(&krd["strategy"]).as_deref() == Some(req.rotation.strategy())
        && match req.rotation {
            Rotation::Automatic { days } => krd["intervalDays"].as_u64() == Some(u64::from(days)),
            Rotation::Manual => true,
        }
}

/// Checks `req` against `table` and `indexes`: every problem at once, or the plan.
pub fn plan(
    table: &Table,
    indexes: &[Index],
    req: &Request,
    classifier: &Classifier,
) -> Result<Plan, Vec<String>> {
    let mut problems = Vec::new();
    let (wanted, skipped) = wanted_columns(table, req, &mut problems);
    let current = table.columns.iter().filter(|c| c.encrypted).count();
    if let Some(max) = table.metadata.max_encrypted_fields
        && current + wanted.len() > max as usize
    {
        problems.push(format!(
            "maxEncryptedFields: {current} column(s) are encrypted now and {} more are requested, {} in all, over the table's limit of {max}",
            wanted.len(),
            current + wanted.len()
        ));
    }
    let masked = indexes_to_mask(indexes, &wanted, req, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    let before = Coverage::of(&table.columns, &BTreeSet::new(), classifier);
    let after = Coverage::of(&table.columns, &wanted, classifier);
    let (risk, reasons) = risk(&masked, &after);
    Ok(Plan {
        table: req.table.to_string(),
        columns: table
            .columns
            .iter()
            .filter(|c| wanted.contains(c.name.as_str()))
            .map(|c| c.name.clone())
            .collect(),
        skipped,
        masked_indexes: masked,
        compliance: req.compliance.as_str(),
        rotation: req.rotation.strategy(),
        rotation_days: req.rotation.interval_days(),
        before,
        after,
        risk,
        risk_reasons: reasons,
        kms_callback_host: req
            .kms
            .as_ref()
            .map(|k| k.url.host_str().unwrap_or_default().to_string()),
    })
}

/// The columns to encrypt (named once, present, not encrypted yet) and those already
/// encrypted as asked.
fn wanted_columns<'a>(
    table: &Table,
    req: &'a Request,
    problems: &mut Vec<String>,
) -> (BTreeSet<&'a str>, Vec<String>) {
    let mut seen = BTreeSet::new();
    let mut wanted = BTreeSet::new();
    let mut skipped = Vec::new();
    for name in &req.columns {
        if !seen.insert(name.as_str()) {
            problems.push(format!("column {name}: named twice in --columns"));
            continue;
        }
        match table.columns.iter().find(|c| &c.name == name) {
            None => problems.push(format!(
                "column {name}: {} has no such column (it has {})",
                req.table,
                table
                    .columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(c) if same_configuration(c, req) => skipped.push(name.clone()),
            Some(c) if c.encrypted => problems.push(format!(
                "column {name}: already encrypted with another configuration; cxguard does not change an existing encryption"
            )),
            Some(_) => {
                wanted.insert(name.as_str());
            }
        }
    }
    (wanted, skipped)
}

/// The indexes the new columns make masked; a read-only one, or one without
/// `--mask-indexes`, is a problem.
fn indexes_to_mask(
    indexes: &[Index],
    wanted: &BTreeSet<&str>,
    req: &Request,
    problems: &mut Vec<String>,
) -> Vec<String> {
    let mut masked = Vec::new();
    for idx in indexes {
        let hit: Vec<&str> = idx
            .columns
            .iter()
            .map(String::as_str)
            .filter(|c| wanted.contains(c))
            .collect();
        if hit.is_empty() || idx.masked {
            continue;
        }
        if idx.read_only {
            problems.push(format!(
                "index {}: read-only, and it covers {}; a column in a read-only index cannot be encrypted",
                idx.name,
                hit.join(", ")
            ));
        } else if !req.mask_indexes {
            problems.push(format!(
                "index {}: covers {}; pass --mask-indexes to mask it (exact-match queries on it stop working)",
                idx.name,
                hit.join(", ")
            ));
        } else {
            masked.push(idx.name.clone());
        }
    }
    masked
}

/// How risky the change is for queries, and why.
fn risk(masked: &[String], after: &Coverage) -> (&'static str, Vec<String>) {
    let mut reasons = Vec::new();
    if !masked.is_empty() {
        reasons.push(format!(
            "masked index(es) {}: lookups through them become scans",
            masked.join(", ")
        ));
    }
    if after.total > 0 && after.encrypted * 100 > after.total * 80 {
        reasons.push(format!(
            "{} of {} columns encrypted (over 80%): most queries decrypt",
            after.encrypted, after.total
        ));
    }
    let risk = if reasons.is_empty() {
        "none"
    } else if masked.is_empty() {
        "medium"
    } else {
        "high"
    };
    (risk, reasons)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encrypt::{Compliance, TableRef};

    fn table(max: u32) -> Table {
        serde_json::from_value(json!({
            "id": "t", "datastoreId": "ds", "name": "t",
            "columns": [
                {"name": "id", "type": "string", "encrypted": false},
                {"name": "email", "type": "string", "encrypted": false},
                {"name": "phone", "type": "string", "encrypted": false},
                {"name": "ssn", "type": "string", "encrypted": false},
                {"name": "card", "type": "string", "encrypted": true, "encryptionConfiguration": {
                    "enabled": true, "algorithm": "AES-256-GCM", "complianceMode": "GDPR",
                    "keyRotationDirective": {"strategy": "AUTOMATIC", "intervalDays": 90}}},
                {"name": "notes", "type": "string", "encrypted": false}
            ],
            "metadata": {"maxEncryptedFields": max}
        }))
        .unwrap()
    }

    fn indexes() -> Vec<Index> {
        serde_json::from_value(json!([
            {"name": "pk", "columns": ["id"], "readOnly": true},
            {"name": "idx_email", "columns": ["email"], "readOnly": false}
        ]))
        .unwrap()
    }

    fn req(cols: &[&str], mask: bool) -> Request {
        Request {
            table: TableRef::parse("ds/t").unwrap(),
            columns: cols.iter().map(|c| c.to_string()).collect(),
            compliance: Compliance::Gdpr,
            rotation: Rotation::automatic(90).unwrap(),
            mask_indexes: mask,
            kms: None,
        }
    }

    #[test]
    fn every_problem_is_reported_at_once_naming_its_column_or_index() {
        let errs = plan(
            &table(3),
            &indexes(),
            &req(&["id", "email", "nope", "ssn", "ssn", "phone"], false),
            &Classifier::default(),
        )
        .unwrap_err();
        let all = errs.join("\n");
        assert!(
            all.contains("column nope: ds/t has no such column"),
            "{all}"
        );
        assert!(all.contains("column ssn: named twice"), "{all}");
        assert!(all.contains("1 column(s) are encrypted now and 4 more are requested, 5 in all, over the table's limit of 3"), "{all}");
        assert!(all.contains("index pk: read-only"), "{all}");
        assert!(
            all.contains("index idx_email: covers email; pass --mask-indexes"),
            "{all}"
        );
        assert_eq!(errs.len(), 5, "{all}");
    }

    #[test]
    fn a_plan_names_columns_masked_indexes_coverage_and_risk() {
        let p = plan(
            &table(12),
            &indexes(),
            &req(&["email", "card", "ssn"], true),
            &Classifier::default(),
        )
        .unwrap();
        assert_eq!(p.columns, ["email", "ssn"]);
        assert_eq!(p.skipped, ["card"]);
        assert_eq!(p.masked_indexes, ["idx_email"]);
        assert_eq!((p.before.encrypted, p.before.total), (1, 6));
        assert_eq!((p.after.encrypted, p.after.total), (3, 6));
        assert_eq!(p.before.sensitive_in_clear, ["email", "phone", "ssn"]);
        assert_eq!(p.after.sensitive_in_clear, ["phone"]);
        assert_eq!(p.risk, "high");
        let noop = plan(
            &table(12),
            &indexes(),
            &req(&["card"], false),
            &Classifier::default(),
        )
        .unwrap();
        assert!(noop.is_noop());
        assert_eq!(noop.risk, "none");
    }

    #[test]
    fn the_body_is_the_same_for_the_same_inputs() {
        let r = req(&["ssn"], false);
        let cols = [("ssn".to_string(), "string".to_string())];
        let a = body(&r, &cols, Some(1_800_000_000));
        assert_eq!(a, body(&r, &cols, Some(1_800_000_000)));
        let cfg = &a["columnTargetMatrix"][0]["encryptionConfiguration"];
        assert_eq!(cfg["algorithm"], "AES-256-GCM");
        assert_eq!(cfg["keyRotationDirective"]["intervalDays"], 90);
        assert!(a.get("externalKmsSync").is_none());
    }
}
