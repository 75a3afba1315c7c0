//! Posture as code: `cxguard plan | apply | export` over the protections. One declared
//! posture for the tenant (`posture.toml`), a plan of everything that would change, an
//! apply that does exactly a saved plan, and an export of the live tenant. It composes
//! the protections' own plans and applies; it decides nothing they decide.

mod export;
mod status;

use guard::posture::{apply, load, plan};

use std::io::IsTerminal as _;
use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::{Output, print_json};
use crate::store::{self, Access};
use crate::tenant;

pub use export::ExportArgs;
pub use guard::posture::PosturePlan;
pub use status::{StatusArgs, status_cmd};

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The posture file.
    #[arg(long, value_name = "FILE", default_value = "posture.toml")]
    pub posture: PathBuf,
    /// Save the plan (with the tenant versions it was made against) for `apply`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 2 when there are changes (0 when none), for CI.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Contacts to examine at most for the retention count (beyond: an estimate).
    #[arg(long, default_value_t = 10_000)]
    pub max_contacts: u64,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved by `cxguard plan --out`: apply exactly it, or refuse if the tenant
    /// changed since. Without one, plan and apply.
    pub plan: Option<PathBuf>,
    /// The posture file.
    #[arg(long, value_name = "FILE", default_value = "posture.toml")]
    pub posture: PathBuf,
    /// Apply without asking (required when stdin is not a terminal and no plan is given).
    #[arg(long)]
    pub auto_approve: bool,
    /// Finish the interrupted run RUN (its id was printed when it started; `cxguard
    /// jobs list` shows it): the protections it had not finished, with its plan.
    #[arg(long, value_name = "RUN", conflicts_with = "plan")]
    pub resume: Option<String>,
    /// Contacts to examine at most for the retention count.
    #[arg(long, default_value_t = 10_000)]
    pub max_contacts: u64,
}

/// The posture's plan, for a read-only report: `None` when there is no posture.
pub async fn plan_if_declared(
    ctx: &Context,
    client: &cxone::Client,
    path: &std::path::Path,
) -> Result<Option<PosturePlan>, CliError> {
    if !path.is_file() && ctx.config.file.posture.is_none() {
        return Ok(None);
    }
    let (posture, problems) = load_for(ctx, path)?;
    Ok(Some(
        plan_now(ctx, client, &posture, 10_000, problems).await?,
    ))
}

/// The plan now (the retention cut-off of today), with the configured identity key.
pub(super) async fn plan_now(
    ctx: &Context,
    client: &cxone::Client,
    posture: &load::Posture,
    max_contacts: u64,
    problems: Vec<String>,
) -> Result<PosturePlan, CliError> {
    let key = identity_key_id(ctx);
    // Access-key ages and rotations under way are in the ledger.
    let history = match &posture.access_keys {
        Some(_) => {
            let ledger = store::open(ctx, Access::Read).await?;
            Some(guard::accesskeys::history(&ledger).await?)
        }
        None => None,
    };
    let known = plan::Known {
        env: ctx.env(),
        cutoff_at: None,
        identity_configured: key.as_deref(),
        access_keys: history.as_ref(),
    };
    Ok(plan::plan(client, posture, max_contacts, &known, problems).await?)
}

/// The scopes the posture's sections need: to read, and also to write. CXone's
/// published API grants by role, not by scope: none are asked there.
fn scopes(ctx: &Context, p: &load::Posture, write: bool) -> Vec<&'static str> {
    let mut out = Vec::new();
    if crate::surface::speaks_cxone(ctx) {
        return out;
    }
    if p.webchat.is_some() {
        out.push("webchat:widgets:read");
        if write {
            out.push("webchat:widgets:write");
        }
    }
    if !p.tables.is_empty() {
        out.extend(if write {
            guard::encrypt::SCOPES
        } else {
            &["data_management:read"][..]
        });
    }
    if p.secrets.is_some() {
        out.push("integration:secret:read");
        if write {
            out.extend(guard::rotate::SCOPES);
        }
    }
    if p.contacts.is_some() {
        out.push("contact:read");
        if write {
            out.push("contact:write");
        }
    }
    out.sort();
    out.dedup();
    out
}

fn identity_key_id(ctx: &Context) -> Option<String> {
    ctx.config
        .file
        .identity
        .as_ref()
        .and_then(|i| i.key.as_ref())
        .map(|k| k.id.clone())
}

fn show(p: &plan::PosturePlan) {
    for w in &p.webchat {
        crate::output::say(format!("~ webchat {}: {}", w.widget, w.summary));
    }
    for t in &p.datastore {
        crate::output::say(format!(
            "~ datastore {}: encrypt {}{}",
            t.table,
            t.columns.join(", "),
            if t.masked_indexes.is_empty() {
                String::new()
            } else {
                format!("; mask {}", t.masked_indexes.join(", "))
            }
        ));
    }
    for s in &p.secrets {
        crate::output::say(format!(
            "~ secret {}: rotate ({} days old, max {}); recompile and test {}",
            s.secret,
            s.age_days,
            s.max_age_days,
            if s.dependents.is_empty() {
                "nothing".to_string()
            } else {
                s.dependents.join(", ")
            }
        ));
    }
    for k in &p.access_keys {
        crate::output::say(format!(
            "~ access key {}{}: {} ({}){}",
            k.key,
            k.user
                .as_deref()
                .map_or(String::new(), |u| format!(" (user {u})")),
            k.action,
            k.reason,
            k.deliver.as_deref().map_or(String::new(), |d| format!(
                "; deliver to {}",
                shown_target(d)
            ))
        ));
    }
    show_data_policies(p);
    if let Some(c) = &p.contacts
        && c.pending > 0
    {
        crate::output::say(format!(
            "~ contacts: anonymize {}{} updated before {}",
            if c.estimated { "at least " } else { "" },
            c.pending,
            c.cutoff
        ));
    }
    show_findings(p);
}

/// The data policies to create, and each drifted field.
fn show_data_policies(p: &plan::PosturePlan) {
    for c in &p.data_policies {
        let d = &c.policy;
        crate::output::say(format!(
            "+ data policy {:?}: create ({}, {}{}{})",
            d.name,
            d.policy_type,
            d.entity_type,
            d.retention_days
                .map_or(String::new(), |r| format!(", {r} days")),
            d.frequency
                .as_deref()
                .map_or(String::new(), |f| format!(", {f}"))
        ));
    }
    for d in &p.data_policy_drift {
        for f in &d.fields {
            crate::output::say(format!(
                "! data policy {:?}: {} differs (declared {}, live {}): cannot be changed through CXone's API",
                d.name, f.field, f.declared, f.live
            ));
        }
    }
}

/// The findings, and the plan's totals.
fn show_findings(p: &plan::PosturePlan) {
    if !p.findings.is_empty() {
        crate::output::say("findings (need a person; not changes):");
        for f in &p.findings {
            crate::output::say(format!("  ! {f}"));
        }
    }
    crate::output::say(format!(
        "{} to change, {} unchanged, {} finding(s)",
        p.changes(),
        p.unchanged.len(),
        p.findings.len()
    ));
}

/// A delivery target as printed: a command is named only as `exec`.
fn shown_target(label: &str) -> &str {
    if label.starts_with("exec:") {
        "exec"
    } else {
        label
    }
}

pub async fn plan_cmd(ctx: &Context, a: PlanArgs) -> Result<Exit, CliError> {
    let (posture, problems) = load_for(ctx, &a.posture)?;
    let reading = scopes(ctx, &posture, false);
    let target = tenant::connect(ctx, tenant::Needs::reading(&reading)).await?;
    let p = plan_now(ctx, &target.client, &posture, a.max_contacts, problems).await?;
    if let Some(out) = &a.out {
        // Signed with the ledger's audit key: whoever can write the file (a CI
        // artifact) cannot make `apply` do anything the posture does not yield.
        let ledger = store::open(ctx, Access::Write).await?;
        let saved = p.signed(&ledger)?;
        let text = serde_json::to_string_pretty(&saved).unwrap_or_default();
        std::fs::write(out, text + "\n").map_err(|e| {
            CliError::new(Exit::Failed, format!("cannot write {}: {e}", out.display()))
        })?;
        ctx.note(format!(
            "saved the plan to {} (digest {}, signed with audit key {}); apply it with `cxguard apply {}`",
            out.display(),
            &p.digest[..16],
            saved.signature.as_ref().map_or("", |s| s.key_id.as_str()),
            out.display()
        ));
    }
    match ctx.output {
        Output::Json => print_json(&p),
        Output::Text => show(&p),
    }
    Ok(if a.detailed_exitcode && p.differs() {
        Exit::Findings
    } else {
        Exit::Ok
    })
}

pub async fn apply_cmd(ctx: &Context, a: ApplyArgs) -> Result<Exit, CliError> {
    // A saved plan's signature is checked before anything else is read or sent.
    let saved = match &a.plan {
        None => None,
        Some(path) => Some(read_signed_plan(ctx, path)?),
    };
    let (posture, problems) = load_for(ctx, &a.posture)?;
    if let (Some(p), Some(path)) = (&saved, &a.plan) {
        guard::posture::check_posture(p, &posture, path, &a.posture)?;
    }
    if let Some(run) = &a.resume {
        return resume_run(ctx, &posture, problems, run, &a.posture).await;
    }
    if saved.is_none() && !a.auto_approve && !std::io::stdin().is_terminal() {
        return Err(CliError::usage(
            "without a saved plan, apply asks first: pass --auto-approve when stdin is not a terminal, or apply a plan saved with `cxguard plan --out`",
        ));
    }
    let writing = scopes(ctx, &posture, true);
    let target = tenant::connect(ctx, tenant::Needs::writing(&writing)).await?;
    let client = &target.client;
    let plan = match saved {
        Some(p) => {
            if !problems.is_empty() {
                return Err(CliError::new(
                    Exit::Input,
                    format!(
                        "{} does not validate; nothing was changed:\n  {}",
                        a.posture.display(),
                        problems.join("\n  ")
                    ),
                ));
            }
            // The plan confirms; the posture and the tenant as they are now decide.
            let max = p
                .contacts
                .as_ref()
                .map_or(a.max_contacts, |c| c.max_contacts.max(1));
            let now = plan_now(ctx, client, &posture, max, Vec::new()).await?;
            p.confirm(now)?
        }
        None => planned_and_approved(ctx, client, &posture, problems, &a).await?,
    };
    if plan.changes() == 0 {
        match ctx.output {
            Output::Json => print_json(&json!({"plan": plan.digest, "result": "no changes"})),
            Output::Text => println!("no changes: the tenant matches {}", a.posture.display()),
        }
        return Ok(Exit::Ok);
    }
    let ledger = store::open(ctx, Access::Write).await?;
    run_plan(ctx, client, &ledger, &posture, &plan, None).await
}

/// `apply --resume RUN`: the plan the run recorded, with the same posture file.
async fn resume_run(
    ctx: &Context,
    posture: &load::Posture,
    problems: Vec<String>,
    run: &str,
    posture_path: &std::path::Path,
) -> Result<Exit, CliError> {
    let ledger = store::open(ctx, Access::Write).await?;
    let plan = apply::recorded_plan(&ledger, run).await?;
    if plan.posture_sha256 != posture.digest {
        return Err(CliError::new(
            Exit::Input,
            format!(
                "run {run} was made from another version of {}; resume it with the same posture file",
                posture_path.display()
            ),
        ));
    }
    if !problems.is_empty() {
        return Err(CliError::new(Exit::Input, problems.join("\n  ")));
    }
    let writing = scopes(ctx, posture, true);
    let target = tenant::connect(ctx, tenant::Needs::writing(&writing)).await?;
    run_plan(ctx, &target.client, &ledger, posture, &plan, Some(run)).await
}

/// Without a saved plan: plan now, show it, and ask (unless `--auto-approve`).
async fn planned_and_approved(
    ctx: &Context,
    client: &cxone::Client,
    posture: &load::Posture,
    problems: Vec<String>,
    a: &ApplyArgs,
) -> Result<plan::PosturePlan, CliError> {
    let p = plan_now(ctx, client, posture, a.max_contacts, problems).await?;
    if ctx.output == Output::Text {
        show(&p);
    }
    if p.changes() > 0 && !a.auto_approve {
        eprint!(
            "apply these {} change(s)? only 'yes' is accepted: ",
            p.changes()
        );
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if answer.trim() != "yes" {
            return Err(CliError::new(
                Exit::Failed,
                "not applied: the answer was not 'yes'",
            ));
        }
    }
    Ok(p)
}

/// A saved plan, its signature verified with the configured audit key's public half
/// before anything else (see [`plan::read_signed`]).
fn read_signed_plan(ctx: &Context, path: &std::path::Path) -> Result<plan::PosturePlan, CliError> {
    let key = store::verifying_key(ctx, None)?;
    Ok(guard::posture::read_signed(path, &key)?)
}

/// Applies `plan` (or resumes `resume`) and reports each protection's result.
async fn run_plan(
    ctx: &Context,
    client: &cxone::Client,
    ledger: &ledger::Ledger,
    posture: &load::Posture,
    plan: &plan::PosturePlan,
    resume: Option<&str>,
) -> Result<Exit, CliError> {
    let env = ctx.env();
    let vault = crate::config::vault(&ctx.config, env)?;
    let deliverer = store::start_delivery(ctx, ledger)?;
    let actor = crate::commands::contacts::actor();
    let started = |run: &str| {
        ctx.note(format!(
            "run {run}: if it is interrupted, finish it with `cxguard apply --resume {run}`"
        ))
    };
    let with = apply::With {
        client,
        ledger,
        actor: &actor,
        env,
        vault: vault.as_ref(),
    };
    let r = apply::apply(&with, posture, plan, resume, &started).await;
    deliverer.stop().await;
    let (run, results) = r?;
    match ctx.output {
        Output::Json => print_json(&json!({"run": run, "plan": plan.digest, "results": results})),
        Output::Text => {
            for r in &results {
                crate::output::say(format!(
                    "{}: {}{}",
                    r.protection,
                    r.status,
                    if r.detail.is_empty() {
                        String::new()
                    } else {
                        format!(" — {}", r.detail)
                    }
                ));
            }
        }
    }
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| r.status == "failed")
        .map(|r| r.protection)
        .collect();
    if !failed.is_empty() {
        return Err(CliError::new(
            Exit::Failed,
            format!(
                "failed: {} (the others' results are above; run {run})",
                failed.join(", ")
            ),
        ));
    }
    Ok(Exit::Ok)
}

pub use export::export_cmd;

/// What the demo shows of posture as code: the changes planned, each protection's
/// result, and the changes a second plan finds (none).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cycle {
    pub planned: usize,
    pub findings: usize,
    pub results: Vec<apply::PartResult>,
    pub after: usize,
}

/// plan → apply → plan for the posture at `path`, in-process (the demo's last step).
pub async fn cycle(
    client: &cxone::Client,
    ledger: &ledger::Ledger,
    path: &std::path::Path,
    actor: &str,
) -> Result<Cycle, CliError> {
    let env = |_: &str| None;
    let (posture, problems) = load::load(path, &env)?;
    let known = plan::Known {
        env: &env,
        cutoff_at: None,
        identity_configured: None,
        access_keys: None,
    };
    let first = plan::plan(client, &posture, 10_000, &known, problems).await?;
    let with = apply::With {
        client,
        ledger,
        actor,
        env: &env,
        vault: None,
    };
    let (_, results) = apply::apply(&with, &posture, &first, None, &|_| {}).await?;
    let second = plan::plan(client, &posture, 10_000, &known, Vec::new()).await?;
    Ok(Cycle {
        planned: first.changes(),
        findings: first.findings.len(),
        results,
        after: second.changes(),
    })
}

/// The posture at `path`, or, when that file does not exist and `path` is the default,
/// the `[posture]` section of the configuration file.
pub fn load_for(
    ctx: &Context,
    path: &std::path::Path,
) -> Result<(load::Posture, Vec<String>), CliError> {
    let env = ctx.env();
    if !path.exists()
        && path == std::path::Path::new("posture.toml")
        && let (Some(section), Some(config)) = (&ctx.config.file.posture, &ctx.config.path)
    {
        return Ok(load::load_section(section, config, env)?);
    }
    Ok(load::load(path, env)?)
}
