//! `cxguard`: raw arguments → validated settings → one command → an exit code.

mod commands;
mod config;
mod context;
mod exit;
mod output;
mod progress;
mod store;
mod surface;
mod tenant;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::Output;

/// Data-protection automation for NICE CXone tenants.
///
/// Commands that change a tenant need one configured (or --sim for the embedded CXone
/// emulator); read-only commands fall back to the emulator with a notice.
#[derive(Debug, Parser)]
#[command(
    name = "cxguard",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    /// Config file (default: $CXGUARD_CONFIG, else ./cxguard.toml if present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Output format for results on stdout; notes and progress go to stderr.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,

    /// More logging on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,

    /// Only errors on stderr: no notes, no progress.
    #[arg(short, long, global = true)]
    quiet: bool,

    /// Run against the embedded CXone emulator, even when a tenant is configured.
    /// Commands that change things refuse to run without a tenant unless this is given.
    /// A rehearsal is isolated: it records into a ledger of its own (`sim/` under the data
    /// directory), never the configured store, and sends no webhook.
    #[arg(long, global = true)]
    sim: bool,

    /// With --sim: send the rehearsal's webhooks to the configured endpoints after all
    /// (their receivers should know the events come from the emulator).
    #[arg(long, global = true, requires = "sim")]
    sim_webhooks: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Walk through cxguard against the embedded emulator (nothing leaves this machine).
    Demo(commands::demo::DemoArgs),
    /// Run the CXone emulator stand-alone, for your own tests and pipelines.
    Sim(commands::sim::SimArgs),
    /// CXone access keys (api = "cxone"): list with findings, rotate to a file, OpenBao/Vault
    /// or a command, finish rotations whose grace has passed.
    #[command(name = "accesskeys")]
    AccessKeys(commands::accesskeys::AccessKeysArgs),
    /// Digital conversations on CXone (DFO, api = "cxone"): remove messages' content and
    /// author names by the policy's [digital] section, resumable.
    Digital(commands::digital::DigitalArgs),
    /// CXone data policies (api = "cxone"): their runs with findings, followed to the
    /// end; a run's evidence report, downloaded and recorded in the audit log.
    Policies(commands::policies::PoliciesArgs),
    /// List what the target tenant holds: contacts, secrets, data actions, tables, widgets.
    Inventory(commands::inventory::InventoryArgs),
    /// Anonymize contacts with a masking policy; reveal an encrypted field.
    Contacts(commands::contacts::ContactsArgs),
    /// Integration secrets: list, rotate (dependents tested, rolled back on rejection), due.
    Secrets(commands::secrets::SecretsArgs),
    /// Data Store tables: encrypt columns, report encryption coverage.
    Datastore(commands::datastore::DatastoreArgs),
    /// Posture as code: show what would change to make the tenant match posture.toml.
    Plan(commands::posture::PlanArgs),
    /// Posture as code: apply a saved plan exactly (or plan and apply).
    Apply(commands::posture::ApplyArgs),
    /// Posture as code: write the live tenant as a posture file.
    Export(commands::posture::ExportArgs),
    /// A self-contained HTML (or JSON) compliance report for auditors.
    Report(commands::report::ReportArgs),
    /// One screen for an operator: last applies, drift, findings, outbox and audit health.
    Status(commands::posture::StatusArgs),
    /// Webchat security policies as a file: plan, apply, export, drift.
    Webchat(commands::webchat::WebchatArgs),
    /// New key material: new (a policy's [keys], [identity]), api (serve's API keys, --kms tokens).
    Keys(commands::keys::KeysArgs),
    /// The tamper-evident audit log: verify, show, export, public-key.
    Audit(commands::audit::AuditArgs),
    /// The job journal: list jobs, show one.
    Jobs(commands::jobs::JobsArgs),
    /// The webhook outbox: status, list, deliver, retry, purge, new-secret.
    Outbox(commands::outbox::OutboxArgs),
    /// Web-messaging guests: link one to a person's keyed pseudonym, or many from a file.
    Guests(commands::guests::GuestsArgs),
    /// One person's data (GDPR access and erasure requests): find their contacts and
    /// guests by email or phone, or a file of requests.
    Subject(commands::subject::SubjectArgs),
    /// Serve the guest-identity API and the KMS callback receiver (with /healthz, /readyz,
    /// /metrics, /openapi.json).
    Serve(commands::serve::ServeArgs),
    /// Check, read-only, that everything is in place: config, tenant, token, scopes,
    /// ledger, audit key, webhooks, serve's keys (each ✗ with its fix).
    Doctor(commands::doctor::DoctorArgs),
    /// Print a shell completion script: bash, zsh, fish, powershell or elvish.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write a man page per command (cxguard.1, cxguard-contacts.1, …) into a directory.
    Man {
        /// Where to write them.
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
    },
}

/// The command as typed, for the surface table.
fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Inventory(_) => "inventory",
        Command::AccessKeys(_) => "accesskeys",
        Command::Digital(_) => "digital",
        Command::Policies(_) => "policies",
        Command::Contacts(_) => "contacts",
        Command::Secrets(_) => "secrets",
        Command::Datastore(_) => "datastore",
        Command::Plan(_) => "plan",
        Command::Apply(_) => "apply",
        Command::Export(_) => "export",
        Command::Report(_) => "report",
        Command::Status(_) => "status",
        Command::Webchat(_) => "webchat",
        Command::Guests(_) => "guests",
        Command::Subject(_) => "subject",
        Command::Serve(_) => "serve",
        Command::Doctor(_) => "doctor",
        _ => "",
    }
}

/// Logs go to stderr: text for people, JSON lines for a service (`serve`, or
/// `CXGUARD_LOG_FORMAT=json`), which logs requests at info.
fn init_logging(verbose: u8, quiet: bool, service: bool) {
    let json = service
        || std::env::var("CXGUARD_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) if service => "info",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CXGUARD_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{level},hyper=warn,reqwest=warn"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.with_target(false).try_init()
    };
}

/// glibc gives each thread that allocates an arena of its own (up to eight per core), and
/// memory freed in one arena is not reused by another: a million-contact anonymize
/// peaked at 56.8 MiB of RSS with glibc's default and at 49.0 MiB with two arenas, at
/// the same speed (`serve`: 18,491 req/s against 18,283). glibc reads the limit from the
/// environment when a process starts; setting it from inside takes `mallopt`, unsafe
/// code, which this workspace forbids. So cxguard starts itself once more, in place
/// (same pid, arguments and environment), with `MALLOC_ARENA_MAX=2` — unless the
/// variable is set already, to any value: the operator's choice wins, and the second
/// start sees it set. If that exec fails, cxguard runs on as it is.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn few_malloc_arenas() {
    use std::os::unix::process::CommandExt as _;
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    // Returns only if the exec failed.
    let _ = std::process::Command::new(&exe)
        .arg0(arg0)
        .args(args)
        .env("MALLOC_ARENA_MAX", "2")
        .exec();
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn few_malloc_arenas() {}

fn main() -> ExitCode {
    few_malloc_arenas();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => Exit::Ok,
                _ => Exit::Usage,
            };
            let _ = e.print();
            return ExitCode::from(code as u8);
        }
    };
    let service = matches!(cli.command, Command::Serve(_));
    init_logging(cli.verbose, cli.quiet, service);
    // Commands that serve connections (the service, the stand-alone emulator) get a
    // worker thread per core. A command that runs one job drives it from this thread
    // (`block_on`) whatever the runtime; with worker threads beside it, each API call's
    // connection task ran on a worker and every request and response crossed threads.
    // On one thread, a 20,000-contact anonymize took a quarter less CPU and ran a fifth
    // faster (BENCHMARKS.md). SQLite keeps its own thread, blocking work its pool.
    let serves = service || matches!(cli.command, Command::Sim(_));
    let mut builder = if serves {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(Exit::Failed as u8);
        }
    };
    let result = runtime.block_on(async {
        if service {
            // The service handles its own signals: they drain, not cut.
            let r = run(cli).await;
            store::close_all().await;
            return r;
        }
        let r = tokio::select! {
            r = run(cli) => r,
            _ = tokio::signal::ctrl_c() => Err(CliError::new(Exit::Interrupted, "interrupted")),
        };
        store::close_all().await;
        r
    });
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit as u8)
        }
    }
}

async fn run(cli: Cli) -> Result<Exit, CliError> {
    let sim = cli.sim;
    // A rehearsal never reaches the configured store, not even through the environment.
    let env = move |k: &str| {
        if sim && k == config::ENV_STORE {
            return None;
        }
        std::env::var(k).ok()
    };
    let mut loaded = config::load(cli.config.as_deref(), &env)?;
    if sim {
        config::isolate_rehearsal(&mut loaded, &env, cli.sim_webhooks);
    }
    let ctx = Context::new(cli.output, cli.quiet, cli.sim, loaded, Box::new(env));
    surface::check(&ctx, command_name(&cli.command))?;
    match cli.command {
        Command::Demo(args) => commands::demo::run(&ctx, args).await,
        Command::Sim(args) => commands::sim::run(&ctx, args).await,
        Command::Inventory(args) => commands::inventory::run(&ctx, args).await,
        Command::AccessKeys(args) => commands::accesskeys::run(&ctx, args).await,
        Command::Digital(args) => commands::digital::run(&ctx, args).await,
        Command::Policies(args) => commands::policies::run(&ctx, args).await,
        Command::Contacts(args) => commands::contacts::run(&ctx, args).await,
        Command::Secrets(args) => commands::secrets::run(&ctx, args).await,
        Command::Datastore(args) => commands::datastore::run(&ctx, args).await,
        Command::Plan(args) => commands::posture::plan_cmd(&ctx, args).await,
        Command::Apply(args) => commands::posture::apply_cmd(&ctx, args).await,
        Command::Export(args) => commands::posture::export_cmd(&ctx, args).await,
        Command::Report(args) => commands::report::run(&ctx, args).await,
        Command::Status(args) => commands::posture::status_cmd(&ctx, args).await,
        Command::Webchat(args) => commands::webchat::run(&ctx, args).await,
        Command::Keys(args) => commands::keys::run(&ctx, args),
        Command::Audit(args) => commands::audit::run(&ctx, args).await,
        Command::Jobs(args) => commands::jobs::run(&ctx, args).await,
        Command::Outbox(args) => commands::outbox::run(&ctx, args).await,
        Command::Guests(args) => commands::guests::run(&ctx, args).await,
        Command::Subject(args) => commands::subject::run(&ctx, args).await,
        Command::Serve(args) => commands::serve::run(&ctx, args).await,
        Command::Doctor(args) => commands::doctor::run(&ctx, args).await,
        Command::Completions { shell } => {
            // Into a buffer first: a closed pipe (`| head`) is not a panic.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "cxguard", &mut script);
            use std::io::Write as _;
            let _ = std::io::stdout().write_all(&script);
            Ok(Exit::Ok)
        }
        Command::Man { out } => {
            std::fs::create_dir_all(&out).map_err(|e| {
                CliError::new(
                    Exit::Failed,
                    format!("cannot create {}: {e}", out.display()),
                )
            })?;
            clap_mangen::generate_to(Cli::command(), &out).map_err(|e| {
                CliError::new(
                    Exit::Failed,
                    format!("cannot write the man pages to {}: {e}", out.display()),
                )
            })?;
            ctx.note(format!("wrote the man pages to {}", out.display()));
            Ok(Exit::Ok)
        }
    }
}
