//! The demo's encryption step: the plan for the demo table's sensitive columns, the
//! change applied with a SYNC KMS callback to the in-process service (which checks it
//! against the journal before the tenant commits it), then the coverage.

use guard::encrypt::{
    self, Classifier, Compliance, Coverage, KeyRotation, KmsCallback, Plan, Request, Rotation,
    SyncMode, TableRef,
};

use super::service::Service;
use crate::exit::{CliError, Exit};

/// The emulator's demo table.
pub(super) const TABLE: &str = "ds-customer/tbl-customer-profiles";

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct EncryptDemo {
    pub(super) plan: Plan,
    pub(super) report: encrypt::Report,
    /// Whether the tenant's callback reached the service and was verified.
    pub(super) callback_verified: bool,
    pub(super) coverage: Coverage,
    pub(super) key_rotation: Vec<KeyRotation>,
}

pub(super) async fn encrypt_step(
    client: &cxone::Client,
    ledger: &ledger::Ledger,
    service: &Service,
) -> Result<EncryptDemo, CliError> {
    let failed = |m: String| CliError::new(Exit::Failed, m);
    let table = TableRef::parse(TABLE)?;
    let classifier = Classifier::default();
    let (before, indexes) = table.read(client).await?;
    // Every sensitive column in clear, as `datastore coverage` names them.
    let columns =
        Coverage::of(&before.columns, &Default::default(), &classifier).sensitive_in_clear;
    let url = url::Url::parse(&service.kms_callback())
        .map_err(|e| failed(format!("the demo callback URL: {e}")))?;
    let req = Request {
        table,
        columns,
        compliance: Compliance::Gdpr,
        rotation: Rotation::Automatic { days: 90 },
        mask_indexes: true,
        kms: Some(KmsCallback {
            url,
            sync: SyncMode::Sync,
        }),
    };
    let plan = encrypt::plan(&before, &indexes, &req, &classifier)
        .map_err(|problems| failed(format!("the demo plan: {}", problems.join("; "))))?;
    let report = encrypt::apply(client, ledger, &req, &plan, &before, &classifier, "demo").await?;
    // What the service recorded when the tenant called it back.
    let callback_verified = ledger
        .entries(&ledger::Filter {
            operation: Some(encrypt::callback::AUDIT_OPERATION.into()),
            target: Some(req.table.table.clone()),
            ..Default::default()
        })
        .await?
        .iter()
        .any(|e| e.details["key_version"] == report.key_version);
    let after = client
        .datastores()
        .table(&req.table.datastore, &req.table.table)
        .await?;
    Ok(EncryptDemo {
        plan,
        report,
        callback_verified,
        coverage: Coverage::of(&after.columns, &Default::default(), &classifier),
        key_rotation: KeyRotation::of(&after.columns),
    })
}
