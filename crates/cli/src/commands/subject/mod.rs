//! `cxguard subject find`: one person's data across the tenant — the contacts that hold
//! their email or phone (raw, or as the keyed pseudonym) and the guests linked to them —
//! for one identifier or a file of requests, in one pass over the contacts. Outputs name
//! subjects by reference (the file's `ref` or its line), never by identifier.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use guard::identity::IdentifierKind;
use guard::subject::{self, Matcher, Request, Subject};
use secrecy::SecretString;

mod export;
mod files;
mod real;
mod verify;

use files::{check_receipts_dir, print_receipt, write_receipts};

use crate::commands::contacts::actor;
use crate::config;
use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::{Output, print_json, say};
use crate::progress::thousands as n;
use crate::store::{self, Access};
use crate::tenant;

/// Searching needs to read contacts and guests.
const SEARCHING: tenant::Needs<'static> =
    tenant::Needs::reading(&["contact:read", "interaction:guest:read"]);

#[derive(Debug, Args)]
pub struct SubjectArgs {
    #[command(subcommand)]
    pub command: SubjectCommand,
}

/// Who: one email, one phone, or a file of requests.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Who {
    /// The person's email address; `-` reads it from stdin (keeps it out of shell history
    /// and the process list).
    #[arg(long, value_name = "EMAIL")]
    pub email: Option<String>,
    /// The person's phone number (read in [identity] default_region without a country
    /// code); `-` reads it from stdin.
    #[arg(long, value_name = "PHONE")]
    pub phone: Option<String>,
    /// A CSV of requests: a header naming `identifier` and optionally `kind`
    /// (email, phone, auto) and `ref`, then one request per line.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// The person's ids on social and messaging channels, beside their email or phone.
#[derive(Debug, Args)]
pub struct Channels {
    /// On api = "cxone": the person's id on a social or messaging channel (a DFO
    /// identity's idOnExternalPlatform), matched exactly; repeatable; with --email or
    /// --phone (a --file gives them in an external_id column).
    #[arg(long = "external-id", value_name = "ID")]
    pub external_id: Vec<String>,
}

impl Channels {
    /// The external ids, each checked and trimmed (the error never quotes one).
    pub fn checked(&self) -> Result<Vec<SecretString>, CliError> {
        self.external_id
            .iter()
            .map(|e| {
                guard::subject::check_external_id(e)
                    .map(|()| SecretString::from(e.trim().to_string()))
                    .map_err(|why| {
                        CliError::new(
                            Exit::Input,
                            format!("--external-id: {}", why.trim_start_matches("external id: ")),
                        )
                    })
            })
            .collect()
    }
}

/// `subject erase`'s flags.
#[derive(Debug, Args)]
pub struct EraseArgs {
    #[command(flatten)]
    pub who: Who,
    #[command(flatten)]
    pub channels: Channels,
    /// The masking policy the contacts are anonymized with (as for contacts anonymize).
    #[arg(long, value_name = "POLICY")]
    pub policy: PathBuf,
    /// Do not file CXone's platform erasure (spec §9): the operator files it apart. The
    /// receipt says so.
    #[arg(long)]
    pub skip_platform_erasure: bool,
    /// Find and show what would be erased; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also write each receipt as DIR/<ref>.json (mode 0600, never overwriting).
    #[arg(long, value_name = "DIR")]
    pub receipts: Option<PathBuf>,
    /// Contacts per listing page of the search.
    #[arg(long, default_value_t = 1000)]
    pub page_size: u32,
    /// PATCHes in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// On api = "cxone": search completed contacts since DATE (default: two years ago).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
}

/// `subject verify`'s flags.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A receipt `subject erase` wrote (its --receipts file, or its JSON output holding
    /// one receipt).
    #[arg(value_name = "RECEIPT")]
    pub receipt: PathBuf,
    /// Read the person's identifier from FILE (its first line) instead of stdin: the
    /// receipt never holds it.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Search again until nothing remains or DURATION has passed (30s, 10m, 2h).
    #[arg(long, value_name = "DURATION")]
    pub wait: Option<String>,
    /// On api = "cxone": search completed contacts since DATE (default: two years ago).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Contacts per listing page (tutorials' routes).
    #[arg(long, default_value_t = 1000)]
    pub page_size: u32,
    #[command(flatten)]
    pub channels: Channels,
}

#[derive(Debug, Subcommand)]
pub enum SubjectCommand {
    /// The access request: write one person's (or each listed person's) contact records
    /// and guest attributes, as they are now, to DIR/<ref>.json (mode 0600, never
    /// overwriting) with DIR/<ref>.manifest.json holding its SHA-256. Audited as
    /// subject.export (pseudonym, counts, digest; never the data).
    Export {
        #[command(flatten)]
        who: Who,
        #[command(flatten)]
        channels: Channels,
        /// The directory to write into (created, mode 0700, if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Also match pseudonyms a masking policy's own keys made (its [keys]).
        #[arg(long, value_name = "POLICY")]
        policy: Option<PathBuf>,
        /// Contacts per listing page.
        #[arg(long, default_value_t = 1000)]
        page_size: u32,
    },
    /// Erase one person (or each listed person), in a fixed order, as one journaled job a
    /// rerun resumes: find them; anonymize their contacts with --policy; delete their
    /// guests' identity attribute; file CXone's platform erasure; print a receipt each.
    Erase(EraseArgs),
    /// Find one person's (or each listed person's) contacts and guests, read-only, in one
    /// pass over the contacts. Audited as subject.find (pseudonym and counts).
    /// After an erasure: search again for the receipt's person (the identifier asked
    /// again, on stdin or --file) and list what still holds them. Exit 0 when nothing
    /// does, 2 when something does. Audited as subject.verified (counts).
    Verify(VerifyArgs),
    Find {
        #[command(flatten)]
        who: Who,
        #[command(flatten)]
        channels: Channels,
        /// Also match pseudonyms a masking policy's own keys made (its [keys]).
        #[arg(long, value_name = "POLICY")]
        policy: Option<PathBuf>,
        /// Contacts per listing page.
        #[arg(long, default_value_t = 1000)]
        page_size: u32,
        /// On api = "cxone": search completed contacts since DATE (default: two years
        /// ago).
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
    },
}

fn read_stdin(what: &str) -> Result<String, CliError> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| CliError::new(Exit::Input, format!("{what}: cannot read stdin: {e}")))?;
    Ok(line.trim().to_string())
}

/// The requests `who` names, checked whole before anything is read.
pub fn requests(who: &Who, channels: &Channels) -> Result<Vec<Request>, CliError> {
    if who.file.is_some() && !channels.external_id.is_empty() {
        return Err(CliError::usage(
            "--external-id goes with --email or --phone; a --file gives external ids in an external_id column",
        ));
    }
    let external_ids = channels.checked()?;
    let one = |flag: &str, v: &str, kind| -> Result<Vec<Request>, CliError> {
        let v = if v == "-" {
            read_stdin(flag)?
        } else {
            v.to_string()
        };
        Ok(vec![Request {
            reference: flag.trim_start_matches('-').to_string(),
            identifier: SecretString::from(v),
            kind,
            external_ids: external_ids.clone(),
        }])
    };
    if let Some(e) = &who.email {
        return one("--email", e, IdentifierKind::Email);
    }
    if let Some(p) = &who.phone {
        return one("--phone", p, IdentifierKind::Phone);
    }
    let Some(file) = &who.file else {
        return Err(CliError::usage("give --email, --phone or --file"));
    };
    let shown = file.display().to_string();
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::new(Exit::Input, format!("--file: cannot read {shown}: {e}")))?;
    subject::parse_requests(&text, &shown).map_err(|errs| bad_input(&shown, errs))
}

fn bad_input(what: &str, errs: Vec<String>) -> CliError {
    CliError::new(
        Exit::Input,
        format!(
            "{} problem(s) in {what}; nothing was read or changed:\n  {}",
            errs.len(),
            errs.join("\n  ")
        ),
    )
}

/// The subjects of `who`, normalized and pseudonymized with the [identity] key.
pub fn subjects(
    ctx: &Context,
    who: &Who,
    channels: &Channels,
) -> Result<(guard::identity::Identity, Vec<Subject>), CliError> {
    let env = ctx.env();
    let identity = config::identity(&ctx.config, env)?;
    let what = who
        .file
        .as_ref()
        .map_or("the request".to_string(), |f| f.display().to_string());
    let subjects =
        subject::prepare(requests(who, channels)?, &identity).map_err(|e| bad_input(&what, e))?;
    Ok((identity, subjects))
}

/// One pass over the tenant for `subjects`, matched by `matcher`.
pub(super) async fn search(
    target: &tenant::Connected,
    ledger: &ledger::Ledger,
    identity: &guard::identity::Identity,
    subjects: &[Subject],
    matcher: &Matcher,
    page_size: cxone::PageSize,
) -> Result<subject::Found, CliError> {
    subject::find(
        &target.client,
        ledger,
        subjects,
        matcher,
        identity.attribute(),
        page_size,
    )
    .await
    .map_err(crate::exit::without_tenant_words)
}

/// The erasure's policy for the surface the tenant speaks: a masking policy (`[fields]`)
/// on the tutorials' routes, its `[digital]` section on CXone's published API.
pub fn read_erase_policy(
    ctx: &Context,
    path: &std::path::Path,
    cxone: bool,
) -> Result<guard::subject::erase::ErasePolicy, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::new(
            Exit::Input,
            format!("cannot read the policy {}: {e}", path.display()),
        )
    })?;
    Ok(guard::subject::erase::ErasePolicy::load(
        path,
        &text,
        ctx.env(),
        cxone,
    )?)
}

pub async fn run(ctx: &Context, args: SubjectArgs) -> Result<Exit, CliError> {
    match args.command {
        SubjectCommand::Export {
            who,
            channels,
            out,
            policy,
            page_size,
        } => export::export(ctx, &who, &channels, &out, policy.as_ref(), page_size).await,
        SubjectCommand::Erase(a) => erase_cmd(ctx, a).await,
        SubjectCommand::Verify(a) => verify::verify(ctx, a).await,
        SubjectCommand::Find {
            who,
            channels,
            policy,
            page_size,
            since,
        } => {
            find_cmd(
                ctx,
                &who,
                &channels,
                policy.as_ref(),
                page_size,
                since.as_deref(),
            )
            .await
        }
    }
}

/// `subject erase`: everything checked first, then one `guard::subject::erase`.
async fn erase_cmd(ctx: &Context, a: EraseArgs) -> Result<Exit, CliError> {
    let page_size = cxone::PageSize::new(a.page_size)
        .map_err(|e| CliError::usage(format!("--page-size: {e}")))?;
    let (identity, subjects) = subjects(ctx, &a.who, &a.channels)?;
    let cxone = crate::surface::speaks_cxone(ctx);
    let policy = read_erase_policy(ctx, &a.policy, cxone)?;
    let since = real::since(a.since.as_deref())?;
    if let Some(dir) = &a.receipts {
        check_receipts_dir(dir, &subjects)?;
    }
    let matcher = Matcher::new(
        &subjects,
        identity.normalizer(),
        &policy.pseudonymize_keys(),
    );
    let needs = if a.dry_run {
        SEARCHING
    } else if a.skip_platform_erasure {
        tenant::Needs::writing(guard::subject::erase::SCOPES_WITHOUT_PLATFORM)
    } else {
        tenant::Needs::writing(guard::subject::erase::SCOPES)
    };
    let target = tenant::connect(ctx, needs).await?;
    let ledger = store::open(ctx, Access::Write).await?;
    if a.dry_run && cxone {
        let found = real::search(&target, &subjects, &matcher, since).await?;
        real::print_dry_run(ctx, &found, a.skip_platform_erasure);
        return Ok(Exit::Ok);
    }
    if a.dry_run {
        let found = search(&target, &ledger, &identity, &subjects, &matcher, page_size).await?;
        print_erase_dry_run(ctx, &found, a.skip_platform_erasure);
        return Ok(Exit::Ok);
    }
    let deliverer = store::start_delivery(ctx, &ledger)?;
    let result = guard::subject::erase(
        &target.client,
        &ledger,
        &policy,
        &subjects,
        &matcher,
        &guard::subject::erase::Options {
            actor: actor(),
            platform: !a.skip_platform_erasure,
            page_size,
            concurrency: a.concurrency.into(),
            attribute: identity.attribute().to_string(),
            since: Some(since),
        },
    )
    .await;
    deliverer.stop().await;
    let receipts_out = result.map_err(crate::exit::without_tenant_words)?;
    if let Some(dir) = &a.receipts {
        write_receipts(dir, &receipts_out)?;
    }
    match ctx.output {
        Output::Json => print_json(&serde_json::json!({"receipts": receipts_out})),
        Output::Text => {
            for r in &receipts_out {
                print_receipt(r);
            }
        }
    }
    Ok(Exit::Ok)
}

/// What an erasure would change.
fn print_erase_dry_run(ctx: &Context, found: &subject::Found, skip_platform_erasure: bool) {
    match ctx.output {
        Output::Json => print_json(&serde_json::json!({"dryRun": true, "found": found})),
        Output::Text => {
            for s in &found.subjects {
                say(format!(
                    "{}: would anonymize {} contact(s), clear {} guest(s), {}",
                    s.reference,
                    n(s.contacts.len() as u64),
                    n(s.guests.len() as u64),
                    if skip_platform_erasure {
                        "no platform erasure (--skip-platform-erasure)"
                    } else {
                        "file the platform erasure"
                    }
                ));
            }
            say("dry run: nothing was changed");
        }
    }
}

/// `subject find`: one pass over the contacts, recorded.
async fn find_cmd(
    ctx: &Context,
    who: &Who,
    channels: &Channels,
    policy: Option<&PathBuf>,
    page_size: u32,
    since: Option<&str>,
) -> Result<Exit, CliError> {
    let page_size = cxone::PageSize::new(page_size)
        .map_err(|e| CliError::usage(format!("--page-size: {e}")))?;
    let (identity, subjects) = subjects(ctx, who, channels)?;
    let since = real::since(since)?;
    let policy = match policy {
        Some(p) => Some(read_erase_policy(
            ctx,
            p,
            crate::surface::speaks_cxone(ctx),
        )?),
        None => None,
    };
    let keys = policy
        .as_ref()
        .map(|p| p.pseudonymize_keys())
        .unwrap_or_default();
    let matcher = Matcher::new(&subjects, identity.normalizer(), &keys);
    let target = tenant::connect(ctx, SEARCHING).await?;
    let ledger = store::open(ctx, Access::Write).await?;
    if target.client.settings().is_cxone() {
        return real::find(ctx, &target, &ledger, &subjects, &matcher, since).await;
    }
    let found = search(&target, &ledger, &identity, &subjects, &matcher, page_size).await?;
    found
        .record(&ledger, &actor(), &subjects)
        .await
        .map_err(CliError::from)?;
    match ctx.output {
        Output::Json => print_json(&found),
        Output::Text => print_found(&found),
    }
    Ok(Exit::Ok)
}

/// What a search found, per subject, and the totals.
fn print_found(found: &subject::Found) {
    for s in &found.subjects {
        if s.contacts.is_empty() && s.guests.is_empty() {
            say(format!("{}: no records found", s.reference));
            continue;
        }
        say(format!(
            "{}: {} contact(s), {} guest(s)",
            s.reference,
            n(s.contacts.len() as u64),
            n(s.guests.len() as u64)
        ));
        for c in &s.contacts {
            let fields: Vec<String> = c
                .fields
                .iter()
                .map(|(f, how)| {
                    format!(
                        "{f} ({})",
                        match how {
                            guard::subject::How::Raw => "raw",
                            guard::subject::How::Pseudonym => "pseudonym",
                        }
                    )
                })
                .collect();
            say(format!("  contact {}: {}", c.id, fields.join(", ")));
        }
        for g in &s.guests {
            say(format!("  guest {g}"));
        }
    }
    let with = found
        .subjects
        .iter()
        .filter(|s| !s.contacts.is_empty() || !s.guests.is_empty())
        .count() as u64;
    say(format!(
        "{} subject(s) = {} with records + {} without",
        n(found.subjects.len() as u64),
        n(with),
        n(found.subjects.len() as u64 - with),
    ));
    say(format!(
        "read {} contacts in {} page(s) and the {} guest(s) this ledger linked",
        n(found.contacts_scanned),
        n(found.pages),
        n(found.guests_checked)
    ));
}
