//! `cxguard demo`: a walk-through against the embedded emulator. It starts the emulator
//! in-process, authenticates as a real client would, and shows the tenant's inventory.
//! Later protections add their steps here.

mod encrypt;
mod render;
mod service;
mod subject;
mod webchat;

use clap::Args;
use serde_json::json;

use super::inventory::{self, Inventory};
use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::{Output, print_json};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Seed of the demo tenant.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Contacts in the demo tenant.
    #[arg(long, default_value_t = 1000)]
    pub contacts: u32,
}

pub async fn run(ctx: &Context, args: DemoArgs) -> Result<Exit, CliError> {
    let config = cxone_sim::SimConfig {
        seed: args.seed,
        contacts: args.contacts,
        ..Default::default()
    };
    let sim = cxone_sim::Sim::start(config).await?;
    ctx.note(format!(
        "cxguard demo: running against the embedded CXone emulator at {} (nothing leaves this machine)",
        sim.base_url()
    ));
    let creds = sim.credentials();
    let grant = cxone::Grant::ClientCredentials {
        client_id: creds.client_id.clone(),
        client_secret: creds.client_secret.clone().into(),
    };
    let settings = cxone::Settings::new(&sim.base_url(), grant)?;
    let client = cxone::Client::new(settings)?;

    ctx.note("step 1/12: `cxguard doctor` against the emulator: reachable, token, scopes");
    doctor_step(ctx, &client).await?;
    ctx.note("step 2/12: take an inventory of the tenant");
    let inv = inventory_step(&client, &sim, args.contacts).await?;
    ctx.note("step 3/12: CXone's published API on the same emulator (api = \"cxone\"): the access-key grant, discovery of the tenant from its token, then its inventory");
    let cxone = cxone_step(ctx, &sim).await?;
    let (dir, ledger) = demo_ledger().await?;
    let mut ran = steps(ctx, &client, &ledger, &sim, args.seed, &dir, inv).await?;
    ran.cxone = Some(cxone);
    ledger.close().await;
    ctx.note(format!(
        "the compliance report for this run is {} (open it in a browser; the ledger is beside it)",
        ran.report.display()
    ));
    match ctx.output {
        Output::Json => print_json(&json!({
            "demo": {"seed": args.seed},
            "inventory": ran.inv,
            "cxone": ran.cxone,
            "client": client.stats(),
            "anonymize": ran.anonymized,
            "rotate": [ran.rotated, ran.rolled_back],
            "identity": ran.identity,
            "encrypt": ran.encrypted,
            "webchat": ran.webchat,
            "posture": ran.posture,
            "subject": ran.erased,
            "audit": ran.verdict,
            "report": ran.report,
        })),
        Output::Text => render::text(&client, &ran),
    }
    sim.stop().await;
    Ok(Exit::Ok)
}

/// What the demo's steps did, for the summary.
struct Ran {
    inv: Inventory,
    cxone: Option<guard::inventory::real::CxoneInventory>,
    anonymized: guard::anonymize::Report,
    rotated: guard::rotate::Report,
    rolled_back: guard::rotate::Report,
    identity: service::IdentityDemo,
    encrypted: encrypt::EncryptDemo,
    webchat: webchat::WebchatDemo,
    posture: super::posture::Cycle,
    erased: guard::subject::Receipt,
    verdict: ledger::Verdict,
    report: std::path::PathBuf,
}

/// `cxguard doctor`'s client checks, each printed; the demo stops at the first failure.
async fn doctor_step(ctx: &Context, client: &cxone::Client) -> Result<(), CliError> {
    let mut checks = Vec::new();
    super::doctor::client_checks(client, &mut checks).await;
    for c in &checks {
        ctx.note(format!(
            "  {} {}: {}",
            if c.ok { "✓" } else { "✗" },
            c.name,
            c.detail
        ));
    }
    match checks.iter().find(|c| !c.ok) {
        Some(bad) => Err(CliError::new(
            Exit::Failed,
            format!(
                "the demo's own tenant failed a check: {}: {}",
                bad.name, bad.detail
            ),
        )),
        None => Ok(()),
    }
}

/// The tenant's inventory; the guest count from the emulator's control API, as the
/// CXone API cannot list guests.
async fn inventory_step(
    client: &cxone::Client,
    sim: &cxone_sim::SimHandle,
    contacts: u32,
) -> Result<Inventory, CliError> {
    let tables = vec![(
        "ds-customer".to_string(),
        "tbl-customer-profiles".to_string(),
    )];
    let mut inv: Inventory = inventory::gather(
        client,
        &tables,
        &guard::encrypt::Classifier::default(),
        u64::from(contacts),
    )
    .await?;
    inv.guests = sim.control().state()["counts"]["guests"].as_u64();
    inv.target = inventory::TargetInfo {
        kind: "embedded-emulator",
        base_url: sim.base_url(),
    };
    Ok(inv)
}

/// The real surface of the emulator: a client with the access-key grant, discovery,
/// then the inventory CXone's published API gives.
async fn cxone_step(
    ctx: &Context,
    sim: &cxone_sim::SimHandle,
) -> Result<guard::inventory::real::CxoneInventory, CliError> {
    let c = sim.credentials();
    let grant = cxone::Grant::AccessKey {
        access_key_id: c.cxone_access_key_id.clone(),
        access_key_secret: c.cxone_access_key_secret.clone().into(),
        client_id: c.cxone_client_id.clone(),
        client_secret: c.cxone_client_secret.clone().into(),
    };
    let settings =
        cxone::Settings::cxone(&sim.cxone_issuer(), grant, cxone::CxoneEndpoints::default())?;
    let client = cxone::Client::new(settings)?;
    let inv = guard::inventory::real::gather(&client).await?;
    let t = &inv.tenant;
    ctx.note(format!(
        "  tenant {} (area {}, cluster {}) discovered at {}",
        t.tenant_id,
        t.area.as_deref().unwrap_or("?"),
        t.cluster.as_deref().unwrap_or("?"),
        t.discovered_from
    ));
    ctx.note(format!(
        "  {} access keys ({} inactive, {} never used, {} unused for 90 days); {} DFO customers, {} cases; {} data policies; {} contacts completed in 30 days",
        inv.access_keys.total,
        inv.access_keys.inactive,
        inv.access_keys.never_used,
        inv.access_keys.unused_90_days,
        inv.customers,
        inv.cases_by_status.values().sum::<u64>(),
        inv.policies.len(),
        inv.completed_contacts_30_days
    ));
    Ok(inv)
}

/// A directory kept after the demo, with its ledger (and later its report.html) to look
/// at.
async fn demo_ledger() -> Result<(std::path::PathBuf, ledger::Ledger), CliError> {
    let dir = tempfile::Builder::new()
        .prefix("cxguard-demo-")
        .tempdir()
        .map_err(|e| {
            CliError::new(
                Exit::Failed,
                format!("cannot make a temporary directory: {e}"),
            )
        })?
        .keep();
    let url = format!("sqlite://{}", dir.join("demo-ledger.sqlite").display());
    let ledger =
        ledger::Ledger::open(&url, ledger::KeySource::File(dir.join("demo-audit.key"))).await?;
    Ok((dir, ledger))
}

/// Steps 3 to 11, in order.
async fn steps(
    ctx: &Context,
    client: &cxone::Client,
    ledger: &ledger::Ledger,
    sim: &cxone_sim::SimHandle,
    seed: u64,
    dir: &std::path::Path,
    inv: Inventory,
) -> Result<Ran, CliError> {
    ctx.note("step 4/12: anonymize contacts last updated before 2024-01-01 (retention), with a demo policy");
    let anonymized = anonymize_step(client, ledger).await?;

    ctx.note("step 5/12: rotate the CRM API key; its three dependent data actions are recompiled and tested");
    let (rotated, previous) = rotate_step(client, ledger, seed, None).await?;
    ctx.note("step 6/12: rotate it again to a value one data action rejects: the rotation rolls back by itself");
    let (rolled_back, _) = rotate_step(client, ledger, seed, Some((sim, previous))).await?;

    ctx.note("step 7/12: start `cxguard serve` in-process and link demo guests over HTTP");
    let service = service::Service::start(client, ledger).await?;
    // The service is stopped (drained) whatever the steps did.
    let served = async {
        let identity = service::identity_step(&service, sim).await?;
        ctx.note(format!(
            "step 8/12: encrypt the sensitive columns of {} (AES-256-GCM, indexes masked), the tenant calling the service back before it commits",
            encrypt::TABLE
        ));
        let encrypted = encrypt::encrypt_step(client, ledger, &service).await?;
        Ok::<_, CliError>((identity, encrypted))
    }
    .await;
    service.stop().await?;
    let (identity, encrypted) = served?;

    ctx.note("step 9/12: export the webchat security policies, edit one origin and add one rule, plan and apply them (with the widget's ETag); an encoded <ScRiPt pattern is refused");
    let webchat = webchat::webchat_step(client, ledger).await?;

    ctx.note("step 10/12: posture as code: plan the declared posture (a webchat setting, a secret past its age), apply it, plan again");
    let posture = posture_step(client, ledger, seed, dir).await?;

    ctx.note("step 11/12: a person asks to be erased: find them by email across contacts and guests, anonymize their contacts, delete their guest's identity attribute, file CXone's platform erasure, and print the receipt");
    let erased = subject::subject_step(
        client,
        ledger,
        sim,
        &guard::subject::erase::ErasePolicy::Contacts(demo_policy()?),
    )
    .await?;

    ctx.note("step 12/12: record the run in the tamper-evident audit log and verify the chain");
    let verdict = record(ledger, &inv).await?;
    let report = super::report::demo(client, ledger, verdict.clone(), dir).await?;
    Ok(Ran {
        inv,
        cxone: None,
        anonymized,
        rotated,
        rolled_back,
        identity,
        encrypted,
        webchat,
        posture,
        erased,
        verdict,
        report,
    })
}

/// Rotates the demo's CRM key. With `reject`, the emulator is told to make one data
/// action refuse the new value first. Returns the report and the value now current.
async fn rotate_step(
    client: &cxone::Client,
    ledger: &ledger::Ledger,
    seed: u64,
    reject: Option<(&cxone_sim::SimHandle, secrecy::SecretString)>,
) -> Result<(guard::rotate::Report, secrecy::SecretString), CliError> {
    use guard::rotate::{self, Request};
    use secrecy::ExposeSecret;
    let id = "sec-crm-api-key";
    let fail = |e: guard::Error| CliError::new(Exit::Failed, e.to_string());
    let previous = match &reject {
        Some((_, current)) => current.clone(),
        None => secrecy::SecretString::from(
            cxone_sim::seeded_secret_value(seed, id)
                .ok_or_else(|| CliError::new(Exit::Failed, "no demo secret"))?,
        ),
    };
    let value = rotate::generate(cxone::models::SecretFormat::Raw, 40).map_err(fail)?;
    if let Some((sim, _)) = &reject {
        sim.control().reject_secret(
            Some("da-crm-case"),
            &guard::sha256_hex(value.expose_secret()),
        );
    }
    let req = Request {
        secret_id: id.into(),
        value: value.clone(),
        format: None,
        previous: Some(previous.clone()),
        no_rollback: false,
        actor: "cxguard-demo".into(),
    };
    let plan = rotate::plan(client, &req).await.map_err(fail)?;
    let report = rotate::apply(client, ledger, &plan, &req)
        .await
        .map_err(fail)?;
    let current = match report.ended {
        guard::rotate::Ended::Rotated { .. } => value,
        _ => previous,
    };
    Ok((report, current))
}

/// The demo's posture: the sales widget requires a visitor token, and the ERP secret
/// (200 days old) may be 180 at most, its next value generated into `{dir}`.
const DEMO_POSTURE: &str = r#"[secrets]
max_age_days = 180
unmanaged = ["sec-unused-token", "sec-payments-jwt", "sec-crm-api-key"]
generate = { length = 32, charset = "base64", write_to = "{dir}/{id}.key" }

[webchat.widgets.wgt-sales]
require_token = true
token_expiry_minutes = 30
"#;

/// plan → apply → plan over the demo posture. The ERP secret's current value is put
/// where the posture keeps generated values, as the last rotation would have left it.
async fn posture_step(
    client: &cxone::Client,
    ledger: &ledger::Ledger,
    seed: u64,
    dir: &std::path::Path,
) -> Result<super::posture::Cycle, CliError> {
    let failed = |m: String| CliError::new(Exit::Failed, m);
    let current = cxone_sim::seeded_secret_value(seed, "sec-erp-basic")
        .ok_or_else(|| failed("no demo ERP secret".into()))?;
    let key_file = dir.join("sec-erp-basic.key");
    super::secrets::write_new_value(
        "the demo's ERP key file",
        &key_file,
        &secrecy::SecretString::from(current),
    )?;
    let path = dir.join("posture.toml");
    std::fs::write(
        &path,
        DEMO_POSTURE.replace("{dir}", &dir.display().to_string()),
    )
    .map_err(|e| failed(format!("cannot write the demo posture: {e}")))?;
    super::posture::cycle(client, ledger, &path, "cxguard-demo").await
}

/// The demo's masking policy; its key is made fresh for each run.
const DEMO_POLICY: &str = r#"default_region = "US"
[keys]
demo = { id = "demo-key", env = "CXGUARD_DEMO_KEY" }
[fields]
firstName = { op = "erase" }
lastName = { op = "mask", keep_first = 1 }
email = { op = "pseudonymize", key = "demo" }
phone = { op = "mask", keep_last = 4, ignore = "+-() " }
"customFields.notes" = { op = "replace", value = "[redacted]" }
"customFields.loyaltyTier" = { op = "keep" }
"#;

/// The demo's masking policy, with a fresh random key.
fn demo_policy() -> Result<guard::anonymize::Policy, CliError> {
    let key = guard::keys::generate_base64().map_err(|e| CliError::new(Exit::Failed, e))?;
    let lookup = move |k: &str| (k == "CXGUARD_DEMO_KEY").then(|| key.clone());
    guard::anonymize::Policy::parse(
        DEMO_POLICY,
        std::path::Path::new("demo-policy.toml"),
        &lookup,
    )
    .map_err(|e| CliError::new(Exit::Failed, e.join("; ")))
}

async fn anonymize_step(
    client: &cxone::Client,
    ledger: &ledger::Ledger,
) -> Result<guard::anonymize::Report, CliError> {
    use guard::anonymize::{self, Options, Progress, Selection};
    let policy = demo_policy()?;
    let cutoff = time::macros::datetime!(2024-01-01 0:00 UTC);
    let opts = Options {
        actor: "cxguard-demo".into(),
        ..Default::default()
    };
    anonymize::run(
        client,
        ledger,
        &policy,
        &Selection::UpdatedBefore(cutoff),
        &opts,
        std::sync::Arc::new(Progress::default()),
    )
    .await
    .map_err(|e| CliError::new(Exit::Failed, e.to_string()))
}

/// Records the inventory as a job in the demo's throw-away ledger (a temporary
/// directory: the demo never touches your own ledger), then verifies the chain.
async fn record(ledger: &ledger::Ledger, inv: &Inventory) -> Result<ledger::Verdict, CliError> {
    guard::inventory::record(ledger, inv, "cxguard-demo", "embedded-emulator").await?;
    let key = ledger
        .public_key()
        .ok_or_else(|| CliError::config("the demo ledger has no key"))?;
    let verdict = ledger.verify(&key).await?;
    Ok(verdict)
}
