//! `cxguard subject find`: one person's data across the tenant — the contacts that hold
//! their email or phone (raw, or as the keyed pseudonym) and the guests linked to them —
//! for one identifier or a file of requests, in one pass over the contacts. Outputs name
//! subjects by reference (the file's `ref` or its line), never by identifier.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use guard::identity::IdentifierKind;
use guard::subject::{self, Matcher, Request, Subject};
use secrecy::SecretString;

use crate::Context;
use crate::commands::contacts::actor;
use crate::config;
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

#[derive(Debug, Subcommand)]
pub enum SubjectCommand {
    /// The access request: write one person's (or each listed person's) contact records
    /// and guest attributes, as they are now, to DIR/<ref>.json (mode 0600, never
    /// overwriting) with DIR/<ref>.manifest.json holding its SHA-256. Audited as
    /// subject.export (pseudonym, counts, digest; never the data).
    Export {
        #[command(flatten)]
        who: Who,
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
    Erase {
        #[command(flatten)]
        who: Who,
        /// The masking policy the contacts are anonymized with (as for contacts anonymize).
        #[arg(long, value_name = "POLICY")]
        policy: PathBuf,
        /// Do not file CXone's platform erasure (spec §9): the operator files it apart. The
        /// receipt says so.
        #[arg(long)]
        skip_platform_erasure: bool,
        /// Find and show what would be erased; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also write each receipt as DIR/<ref>.json (mode 0600, never overwriting).
        #[arg(long, value_name = "DIR")]
        receipts: Option<PathBuf>,
        /// Contacts per listing page of the search.
        #[arg(long, default_value_t = 1000)]
        page_size: u32,
        /// PATCHes in flight at once.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
        concurrency: u16,
    },
    /// Find one person's (or each listed person's) contacts and guests, read-only, in one
    /// pass over the contacts. Audited as subject.find (pseudonym and counts).
    Find {
        #[command(flatten)]
        who: Who,
        /// Also match pseudonyms a masking policy's own keys made (its [keys]).
        #[arg(long, value_name = "POLICY")]
        policy: Option<PathBuf>,
        /// Contacts per listing page.
        #[arg(long, default_value_t = 1000)]
        page_size: u32,
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
pub fn requests(who: &Who) -> Result<Vec<Request>, CliError> {
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
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(guard::identity::Identity, Vec<Subject>), CliError> {
    let identity = config::identity(&ctx.config, env)?;
    let what = who
        .file
        .as_ref()
        .map_or("the request".to_string(), |f| f.display().to_string());
    let subjects = subject::prepare(requests(who)?, &identity).map_err(|e| bad_input(&what, e))?;
    Ok((identity, subjects))
}

/// A masking policy, read and validated, when one is given.
pub fn read_policy(
    path: Option<&PathBuf>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<guard::anonymize::Policy>, CliError> {
    path.map(|p| crate::commands::contacts::read_policy(p, env))
        .transpose()
}

pub async fn run(
    ctx: &Context,
    args: SubjectArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Exit, CliError> {
    match args.command {
        SubjectCommand::Export {
            who,
            out,
            policy,
            page_size,
        } => export(ctx, env, &who, &out, policy.as_ref(), page_size).await,
        SubjectCommand::Erase {
            who,
            policy,
            skip_platform_erasure,
            dry_run,
            receipts,
            page_size,
            concurrency,
        } => {
            let page_size = cxone::PageSize::new(page_size)
                .map_err(|e| CliError::usage(format!("--page-size: {e}")))?;
            let (identity, subjects) = subjects(ctx, &who, env)?;
            let policy = crate::commands::contacts::read_policy(&policy, env)?;
            if let Some(dir) = &receipts {
                check_receipts_dir(dir, &subjects)?;
            }
            let matcher = Matcher::new(
                &subjects,
                identity.normalizer(),
                &policy.pseudonymize_keys(),
            );
            let needs = if dry_run {
                SEARCHING
            } else if skip_platform_erasure {
                tenant::Needs::writing(&guard::subject::erase::SCOPES[..4])
            } else {
                tenant::Needs::writing(guard::subject::erase::SCOPES)
            };
            let target = tenant::connect(ctx, env, needs).await?;
            let ledger = store::open(ctx, env, Access::Write).await?;
            if dry_run {
                let found = subject::find(
                    &target.client,
                    &ledger,
                    &subjects,
                    &matcher,
                    identity.attribute(),
                    page_size,
                )
                .await
                .map_err(CliError::from)?;
                match ctx.output {
                    Output::Json => {
                        print_json(&serde_json::json!({"dryRun": true, "found": found}))
                    }
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
                return Ok(Exit::Ok);
            }
            let deliverer = store::start_delivery(ctx, env, &ledger)?;
            let result = guard::subject::erase(
                &target.client,
                &ledger,
                &policy,
                &subjects,
                &matcher,
                &guard::subject::erase::Options {
                    actor: actor(),
                    platform: !skip_platform_erasure,
                    page_size,
                    concurrency: concurrency.into(),
                    attribute: identity.attribute().to_string(),
                },
            )
            .await;
            deliverer.stop().await;
            let receipts_out = result.map_err(CliError::from)?;
            if let Some(dir) = &receipts {
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
        SubjectCommand::Find {
            who,
            policy,
            page_size,
        } => {
            let page_size = cxone::PageSize::new(page_size)
                .map_err(|e| CliError::usage(format!("--page-size: {e}")))?;
            let (identity, subjects) = subjects(ctx, &who, env)?;
            let policy = read_policy(policy.as_ref(), env)?;
            let extra = policy
                .as_ref()
                .map(|p| p.pseudonymize_keys())
                .unwrap_or_default();
            let matcher = Matcher::new(&subjects, identity.normalizer(), &extra);
            let target = tenant::connect(ctx, env, SEARCHING).await?;
            let ledger = store::open(ctx, env, Access::Write).await?;
            let found = subject::find(
                &target.client,
                &ledger,
                &subjects,
                &matcher,
                identity.attribute(),
                page_size,
            )
            .await
            .map_err(CliError::from)?;
            ledger
                .commit(ledger::Batch {
                    audit: found
                        .audit_entries(&actor(), &subjects)
                        .map_err(CliError::from)?,
                    ..Default::default()
                })
                .await?;
            match ctx.output {
                Output::Json => print_json(&found),
                Output::Text => {
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
            }
            Ok(Exit::Ok)
        }
    }
}

/// A receipt as text: what was found and changed, the platform request, the audit
/// entries of each step and the head they verify to. No identifier.
fn print_receipt(r: &guard::subject::Receipt) {
    say(format!("receipt for {} (job {})", r.reference, r.job_id));
    say(format!("  pseudonym {} (key {})", r.pseudonym, r.key_id));
    if !r.records_found {
        say("  no records found: no contact or linked guest held this person");
    }
    if !r.contacts.is_empty() {
        let list: Vec<String> = r
            .contacts
            .iter()
            .map(|c| {
                let f: Vec<&str> = c.fields.keys().copied().collect();
                format!("{} ({})", c.id, f.join(", "))
            })
            .collect();
        say(format!(
            "  contacts anonymized: {} by job {}: {}",
            r.contacts.len(),
            r.anonymize_job.as_deref().unwrap_or("-"),
            list.join(", ")
        ));
    }
    if !r.guests.is_empty() {
        say(format!(
            "  guests whose identity attribute was deleted: {}",
            r.guests.join(", ")
        ));
    }
    match r.platform.request_id.as_deref() {
        Some(id) => say(format!("  platform erasure: submitted, request {id}")),
        None => say("  platform erasure: skipped (--skip-platform-erasure: filed separately)"),
    }
    // In the order the steps ran.
    let steps: Vec<String> = ["find", "contacts", "guest", "platform"]
        .iter()
        .filter_map(|step| {
            let seqs = r.audit.get(*step)?;
            let s: Vec<String> = seqs.iter().map(i64::to_string).collect();
            Some(format!("{step} {}", s.join(" ")))
        })
        .collect();
    say(format!("  audit entries: {}", steps.join("; ")));
    say(format!("  audit head at the end: {}", r.audit_head));
}

/// The file name of a reference's receipt: its characters that are safe in a file name.
fn receipt_name(reference: &str) -> String {
    let safe: String = reference
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}.json", safe.trim_start_matches('.'))
}

/// Checked before anything is done: the directory exists and no receipt would be
/// overwritten.
fn check_receipts_dir(dir: &std::path::Path, subjects: &[Subject]) -> Result<(), CliError> {
    if !dir.is_dir() {
        return Err(CliError::new(
            Exit::Input,
            format!("--receipts: {} is not a directory", dir.display()),
        ));
    }
    for s in subjects {
        let f = dir.join(receipt_name(&s.reference));
        if f.exists() {
            return Err(CliError::new(
                Exit::Input,
                format!(
                    "--receipts: {} exists; receipts are never overwritten (move it, or choose another directory); nothing was done",
                    f.display()
                ),
            ));
        }
    }
    Ok(())
}

fn write_receipts(
    dir: &std::path::Path,
    receipts: &[guard::subject::Receipt],
) -> Result<(), CliError> {
    for r in receipts {
        let text = serde_json::to_vec_pretty(r).unwrap_or_default();
        write_new(&dir.join(receipt_name(&r.reference)), &text).map_err(|e| {
            CliError::new(
                Exit::Failed,
                format!("{} (the erasure is done; `cxguard audit show --operation 'subject.erase.*'` has it)", e.message),
            )
        })?;
    }
    Ok(())
}

/// `subject export`: find, gather, write each file and its manifest, audit.
async fn export(
    ctx: &Context,
    env: &dyn Fn(&str) -> Option<String>,
    who: &Who,
    out: &std::path::Path,
    policy: Option<&PathBuf>,
    page_size: u32,
) -> Result<Exit, CliError> {
    let page_size = cxone::PageSize::new(page_size)
        .map_err(|e| CliError::usage(format!("--page-size: {e}")))?;
    let (identity, subjects) = subjects(ctx, who, env)?;
    let policy = read_policy(policy, env)?;
    let extra = policy
        .as_ref()
        .map(|p| p.pseudonymize_keys())
        .unwrap_or_default();
    if !out.exists() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(out).map_err(|e| {
            CliError::new(
                Exit::Input,
                format!("--out: cannot create {}: {e}", out.display()),
            )
        })?;
    }
    for s in &subjects {
        for f in [receipt_name(&s.reference), manifest_name(&s.reference)] {
            if out.join(&f).exists() {
                return Err(CliError::new(
                    Exit::Input,
                    format!(
                        "--out: {} exists; exports are never overwritten; nothing was read",
                        out.join(f).display()
                    ),
                ));
            }
        }
    }
    let matcher = Matcher::new(&subjects, identity.normalizer(), &extra);
    let target = tenant::connect(ctx, env, SEARCHING).await?;
    let ledger = store::open(ctx, env, Access::Write).await?;
    let found = subject::find(
        &target.client,
        &ledger,
        &subjects,
        &matcher,
        identity.attribute(),
        page_size,
    )
    .await
    .map_err(CliError::from)?;
    let mut audit = Vec::new();
    let mut written = Vec::new();
    for (s, f) in subjects.iter().zip(&found.subjects) {
        let doc = guard::subject::export::gather(&target.client, f)
            .await
            .map_err(CliError::from)?;
        let bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
        let name = receipt_name(&s.reference);
        write_new(&out.join(&name), &bytes)?;
        let sha = guard::sha256_hex_bytes(&bytes);
        let manifest = serde_json::json!({
            "reference": s.reference,
            "generatedAt": doc.generated_at,
            "files": [{"name": name, "bytes": bytes.len(), "sha256": sha}],
        });
        write_new(
            &out.join(manifest_name(&s.reference)),
            &serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
        )?;
        audit.push(doc.audit_entry(&actor(), s, &sha).map_err(CliError::from)?);
        written.push(serde_json::json!({
            "reference": s.reference,
            "file": out.join(&name).display().to_string(),
            "manifest": out.join(manifest_name(&s.reference)).display().to_string(),
            "sha256": sha,
            "contacts": doc.contacts.len(),
            "guests": doc.guests.len(),
        }));
    }
    ledger
        .commit(ledger::Batch {
            audit,
            ..Default::default()
        })
        .await?;
    match ctx.output {
        Output::Json => print_json(&serde_json::json!({"exports": written})),
        Output::Text => {
            for w in &written {
                say(format!(
                    "{}: wrote {} ({} contact(s), {} guest(s)), SHA-256 {}",
                    w["reference"].as_str().unwrap_or_default(),
                    w["file"].as_str().unwrap_or_default(),
                    w["contacts"],
                    w["guests"],
                    w["sha256"].as_str().unwrap_or_default()
                ));
                say(format!(
                    "  manifest {}",
                    w["manifest"].as_str().unwrap_or_default()
                ));
            }
        }
    }
    Ok(Exit::Ok)
}

fn manifest_name(reference: &str) -> String {
    receipt_name(reference).replace(".json", ".manifest.json")
}

/// Writes a new file, readable by its owner only; an existing one is never replaced.
fn write_new(path: &std::path::Path, bytes: &[u8]) -> Result<(), CliError> {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| {
            CliError::new(
                Exit::Failed,
                format!("cannot write {}: {e}", path.display()),
            )
        })
}
