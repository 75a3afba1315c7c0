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
