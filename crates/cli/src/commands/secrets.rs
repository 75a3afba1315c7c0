//! `cxguard secrets list | rotate | due`: Integration secrets, their age and their
//! dependents, and their rotation.

use clap::{Args, Subcommand};
use futures_util::{StreamExt, TryStreamExt};
use serde_json::json;

use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::{Output, print_json, table};
use crate::store::{self, Access};
use crate::tenant;

#[derive(Debug, Args)]
pub struct SecretsArgs {
    #[command(subcommand)]
    pub command: SecretsCommand,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Every secret: id, name, format, version, last update, age and dependent Data Actions.
    List,
    /// Rotate a secret: set the new value, recompile and test every dependent Data Action,
    /// and roll back automatically if one rejects it.
    Rotate(RotateArgs),
    /// Secrets older than the policy, for cron and CI: exit code 2 when there are any.
    Due {
        /// The oldest a secret may be: 90d, 12h, 2w, 3600s.
        #[arg(long, value_name = "AGE")]
        max_age: String,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("new_value").required(true).args(["value_file", "value_env", "generate"])))]
pub struct RotateArgs {
    /// The secret's id.
    pub id: String,
    /// Read the new value from FILE (it should be mode 0600).
    #[arg(long, value_name = "FILE")]
    pub value_file: Option<std::path::PathBuf>,
    /// Read the new value from the environment variable VAR.
    #[arg(long, value_name = "VAR")]
    pub value_env: Option<String>,
    /// Generate the new value from the OS CSPRNG (needs --write-value-to).
    #[arg(long, requires = "write_value_to")]
    pub generate: bool,
    /// Length of a generated value.
    #[arg(long, default_value_t = 48)]
    pub length: usize,
    /// Where to write a generated value (mode 0600), before it is sent.
    #[arg(long, value_name = "FILE")]
    pub write_value_to: Option<std::path::PathBuf>,
    /// The new value's format (default: the secret's current format).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// The current value, for the rollback.
    #[arg(long, value_name = "FILE", conflicts_with = "previous_value_env")]
    pub previous_value_file: Option<std::path::PathBuf>,
    /// The current value, for the rollback, from the environment variable VAR.
    #[arg(long, value_name = "VAR")]
    pub previous_value_env: Option<String>,
    /// Rotate without a way back.
    #[arg(long, conflicts_with_all = ["previous_value_file", "previous_value_env"])]
    pub no_rollback: bool,
    /// Show the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Finish or roll back an interrupted rotation (give the same values again).
    #[arg(long, value_name = "JOB", conflicts_with = "generate")]
    pub resume: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FormatArg {
    Raw,
    Jwt,
    Base64,
}

pub(crate) fn read_value(
    what: &str,
    file: Option<&std::path::Path>,
    var: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<secrecy::SecretString>, CliError> {
    Ok(guard::values::read(what, file, var, env)?)
}

pub(crate) fn write_new_value(
    what: &str,
    path: &std::path::Path,
    value: &secrecy::SecretString,
) -> Result<(), CliError> {
    Ok(guard::values::write_new(what, path, value)?)
}

/// The new value given (none with `--generate`) and the current one, read and checked
/// before any request.
fn rotate_inputs(ctx: &Context, a: &RotateArgs) -> Result<RotateInputs, CliError> {
    let env = ctx.env();
    let format = a.format.map(|f| match f {
        FormatArg::Raw => cxone::models::SecretFormat::Raw,
        FormatArg::Jwt => cxone::models::SecretFormat::Jwt,
        FormatArg::Base64 => cxone::models::SecretFormat::Base64,
    });
    let previous = read_value(
        "--previous-value",
        a.previous_value_file.as_deref(),
        a.previous_value_env.as_deref(),
        env,
    )?;
    let given = if a.generate {
        None
    } else {
        let v = read_value(
            "--value",
            a.value_file.as_deref(),
            a.value_env.as_deref(),
            env,
        )?
        .ok_or_else(|| CliError::usage("give --value-file, --value-env or --generate"))?;
        if let Some(f) = format {
            use secrecy::ExposeSecret;
            guard::rotate::secrets::check_value(f, v.expose_secret())
                .map_err(|e| CliError::new(Exit::Input, format!("--value: {e}")))?;
        }
        Some(v)
    };
    Ok((format, previous, given))
}

type RotateInputs = (
    Option<cxone::models::SecretFormat>,
    Option<secrecy::SecretString>,
    Option<secrecy::SecretString>,
);

async fn rotate_cmd(ctx: &Context, a: RotateArgs) -> Result<Exit, CliError> {
    use guard::rotate::{self, Request};
    // Everything local is read and checked before any request.
    let (format, previous, given) = rotate_inputs(ctx, &a)?;
    let target = tenant::connect(ctx, tenant::Needs::writing(guard::rotate::SCOPES)).await?;
    // With --generate the secret is read once: for its format, and as the plan's start.
    let (value, fetched) = match given {
        Some(v) => (v, None),
        None => {
            let secret = rotate::fetch(&target.client, &a.id)
                .await
                .map_err(CliError::from)?;
            let fmt = format.unwrap_or(secret.format);
            (
                rotate::generate(fmt, a.length).map_err(CliError::from)?,
                Some(secret),
            )
        }
    };
    let req = Request {
        secret_id: a.id.clone(),
        value,
        format,
        previous,
        no_rollback: a.no_rollback,
        actor: crate::commands::contacts::actor(),
    };
    let (report, sent, l) = if let Some(job) = &a.resume {
        let l = store::open(ctx, Access::Write).await?;
        let deliverer = store::start_delivery(ctx, &l)?;
        let r = rotate::resume(&target.client, &l, job, &req).await;
        let sent = deliverer.stop().await;
        (r.map_err(CliError::from)?, sent, l)
    } else {
        let plan = match &fetched {
            Some(secret) => rotate::plan_for(&target.client, secret, &req).await,
            None => rotate::plan(&target.client, &req).await,
        }
        .map_err(CliError::from)?;
        if a.dry_run {
            print_rotation_plan(ctx, &plan);
            return Ok(Exit::Ok);
        }
        let l = store::open(ctx, Access::Write).await?;
        if let Some(path) = &a.write_value_to {
            write_new_value("--write-value-to", path, &req.value)?;
            ctx.note(format!(
                "the new value is in {} (mode 0600)",
                path.display()
            ));
        }
        let deliverer = store::start_delivery(ctx, &l)?;
        let r = rotate::apply(&target.client, &l, &plan, &req).await;
        let sent = deliverer.stop().await;
        (r.map_err(CliError::from)?, sent, l)
    };
    print_rotation(ctx, &report, &sent, &l).await;
    rotation_exit(&report)
}

/// What a dry run would do.
fn print_rotation_plan(ctx: &Context, plan: &guard::rotate::Plan) {
    match ctx.output {
        Output::Json => print_json(&json!({"plan": plan})),
        Output::Text => {
            println!(
                "plan: rotate {} ({}), version {} → {}",
                plan.secret_id,
                plan.name,
                plan.version,
                plan.version + 1
            );
            println!(
                "  format {}, new value SHA-256 {}…",
                plan.format,
                &plan.proposed_sha256[..12]
            );
            let deps: Vec<&str> = plan
                .dependents
                .iter()
                .map(|d| d.data_action_id.as_str())
                .collect();
            println!(
                "  recompile and test: {}",
                if deps.is_empty() {
                    "(no dependents)".to_string()
                } else {
                    deps.join(", ")
                }
            );
            println!(
                "  on rejection: {}",
                if plan.rollback {
                    "roll back to the current value"
                } else {
                    "NO ROLLBACK (--no-rollback)"
                }
            );
        }
    }
}

/// A rotation's report, and the events this run sent.
async fn print_rotation(
    ctx: &Context,
    report: &guard::rotate::Report,
    sent: &ledger::deliver::Delivered,
    l: &ledger::Ledger,
) {
    use guard::rotate::Ended;
    match ctx.output {
        Output::Json => {
            // The report's own fields, as before, and the events this run sent.
            let mut v = serde_json::to_value(report).unwrap_or_default();
            v["webhooks"] = json!(sent);
            print_json(&v)
        }
        Output::Text => {
            use crate::progress::thousands as n;
            // Short lines (≤ 100 columns) whose counts add up.
            println!(
                "job {}{}",
                report.job_id,
                if report.resumed { " (resumed)" } else { "" }
            );
            let rejected = match &report.ended {
                Ended::Rotated { version } => {
                    println!("  rotated {} to version {version}", report.secret_id);
                    0
                }
                Ended::RolledBack { version, rejected } => {
                    println!(
                        "  rolled back {} to its previous value (now version {version})",
                        report.secret_id
                    );
                    rejected.len() as u64
                }
                Ended::Broken { rejected } => {
                    println!(
                        "  {} holds the new value, which dependents reject; no rollback",
                        report.secret_id
                    );
                    rejected.len() as u64
                }
            };
            println!(
                "  {} data action(s) tested = {} passed + {} rejected",
                n(report.dependents),
                n(report.dependents.saturating_sub(rejected)),
                n(rejected)
            );
            let pending = l.outbox_status().await.map(|o| o.pending).unwrap_or(0);
            for line in crate::output::events_lines(sent, pending) {
                println!("{line}");
            }
        }
    }
}

/// A rotation's exit: 0 when rotated, 1 naming the data actions that rejected the value.
fn rotation_exit(report: &guard::rotate::Report) -> Result<Exit, CliError> {
    use guard::rotate::Ended;
    match &report.ended {
        Ended::Rotated { .. } => Ok(Exit::Ok),
        Ended::RolledBack { rejected, .. } | Ended::Broken { rejected } => {
            let list: Vec<String> = rejected
                .iter()
                .map(|(a, why)| format!("{a}: {why}"))
                .collect();
            Err(CliError::new(
                Exit::Failed,
                format!(
                    "data action(s) rejected the new value of {}:\n  {}",
                    report.secret_id,
                    list.join("\n  ")
                ),
            ))
        }
    }
}

pub async fn run(ctx: &Context, args: SecretsArgs) -> Result<Exit, CliError> {
    match args.command {
        SecretsCommand::Rotate(a) => rotate_cmd(ctx, a).await,
        SecretsCommand::List => list_cmd(ctx).await,
        SecretsCommand::Due { max_age } => due_cmd(ctx, &max_age).await,
    }
}

/// `secrets list`: every secret with its age and dependents.
async fn list_cmd(ctx: &Context) -> Result<Exit, CliError> {
    let target = tenant::connect(
        ctx,
        tenant::Needs::reading(&["integration:secret:read", "integration:dataaction:read"]),
    )
    .await?;
    let client = &target.client;
    let secrets = client.secrets().list().await?;
    let refs =
        futures_util::stream::iter(secrets.iter().map(|s| client.secrets().references(&s.id)))
            .buffered(8)
            .try_collect::<Vec<_>>()
            .await?;
    let now = time::OffsetDateTime::now_utc();
    let rows: Vec<serde_json::Value> = secrets
        .iter()
        .zip(&refs)
        .map(|(s, r)| {
            let age = time::OffsetDateTime::parse(
                &s.updated_at,
                &time::format_description::well_known::Rfc3339,
            )
            .ok()
            .map(|u| (now - u).whole_days());
            json!({
                "id": s.id, "name": s.name, "format": s.format, "version": s.version,
                "updatedAt": s.updated_at, "ageDays": age,
                "dependents": r.iter().map(|d| d.data_action_id.clone()).collect::<Vec<_>>(),
            })
        })
        .collect();
    match ctx.output {
        Output::Json => print_json(&rows),
        Output::Text => {
            let mut t = table(&[
                "id",
                "name",
                "format",
                "version",
                "last update",
                "age (days)",
                "dependents",
            ]);
            for r in &rows {
                let deps: Vec<&str> = r["dependents"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|d| d.as_str())
                    .collect();
                t.add_row(vec![
                    r["id"].as_str().unwrap_or_default().to_string(),
                    r["name"].as_str().unwrap_or_default().to_string(),
                    r["format"].as_str().unwrap_or_default().to_string(),
                    r["version"].to_string(),
                    r["updatedAt"].as_str().unwrap_or_default().to_string(),
                    r["ageDays"].as_i64().map_or("?".into(), |d| d.to_string()),
                    if deps.is_empty() {
                        "-".into()
                    } else {
                        deps.join(", ")
                    },
                ]);
            }
            println!("{t}");
        }
    }
    Ok(Exit::Ok)
}

/// `secrets due --max-age`: the secrets older than the maximum (exit 2 when any).
async fn due_cmd(ctx: &Context, max_age: &str) -> Result<Exit, CliError> {
    let age = guard::rotate::secrets::parse_age(max_age)
        .map_err(|e| CliError::usage(format!("--max-age: {e}")))?;
    let target = tenant::connect(ctx, tenant::Needs::reading(&["integration:secret:read"])).await?;
    let secrets = target.client.secrets().list().await?;
    let due = guard::rotate::secrets::due(&secrets, age, time::OffsetDateTime::now_utc());
    match ctx.output {
        Output::Json => print_json(&json!({"maxAge": max_age, "due": due})),
        Output::Text => {
            if due.is_empty() {
                println!("no secret is older than {max_age}");
            } else {
                let mut t = table(&["id", "name", "version", "last update", "age (days)"]);
                for d in &due {
                    t.add_row(vec![
                        d.id.clone(),
                        d.name.clone(),
                        d.version.to_string(),
                        d.updated_at.clone(),
                        if d.age_days == i64::MAX {
                            "unknown".into()
                        } else {
                            d.age_days.to_string()
                        },
                    ]);
                }
                println!("{t}");
                println!("{} secret(s) older than {max_age}", due.len());
            }
        }
    }
    Ok(if due.is_empty() {
        Exit::Ok
    } else {
        Exit::Findings
    })
}
