//! `subject find` and `subject erase --dry-run` on CXone's published API: the DFO
//! customers, cases and messages and the completed contacts that hold each person
//! (`guard::subject::real`), printed by reference, never by identifier.

use guard::subject::real::{DEFAULT_SINCE_DAYS, Found};
use guard::subject::{Matcher, Subject};

use crate::commands::contacts::actor;
use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::{Output, print_json, say};
use crate::progress::thousands as n;
use crate::tenant;

/// `--since`: a past date, or two years ago.
pub(super) fn since(text: Option<&str>) -> Result<time::OffsetDateTime, CliError> {
    let now = time::OffsetDateTime::now_utc();
    match text {
        None => Ok(now - time::Duration::days(DEFAULT_SINCE_DAYS)),
        Some(t) => {
            let at = guard::parsing::date_or_time("--since", t)?;
            if at > now {
                return Err(CliError::new(
                    Exit::Input,
                    format!("--since: {t} is in the future; give a date in the past"),
                ));
            }
            Ok(at)
        }
    }
}

/// One search of the tenant.
pub(super) async fn search(
    target: &tenant::Connected,
    subjects: &[Subject],
    matcher: &Matcher,
    since: time::OffsetDateTime,
) -> Result<Found, CliError> {
    guard::subject::real::find(&target.client, subjects, matcher, since)
        .await
        .map_err(crate::exit::without_tenant_words)
}

/// `subject find`: one search, audited as subject.find per subject, printed.
pub(super) async fn find(
    ctx: &Context,
    target: &tenant::Connected,
    ledger: &ledger::Ledger,
    subjects: &[Subject],
    matcher: &Matcher,
    since: time::OffsetDateTime,
) -> Result<Exit, CliError> {
    let found = search(target, subjects, matcher, since).await?;
    found.record(ledger, &actor(), subjects).await?;
    match ctx.output {
        Output::Json => print_json(&found),
        Output::Text => {
            for s in &found.subjects {
                if !s.any() {
                    say(format!("{}: no records found", s.reference));
                    continue;
                }
                say(format!(
                    "{}: {} DFO customer(s), {} case(s), {} message(s), {} completed contact(s)",
                    s.reference,
                    n(s.customers.len() as u64),
                    n(s.cases.len() as u64),
                    n(s.messages.len() as u64),
                    n(s.voice.len() as u64)
                ));
                for c in &s.customers {
                    let holds: Vec<&str> = c.holds.keys().map(String::as_str).collect();
                    say(format!("  customer {}: {}", c.id, holds.join(", ")));
                }
                if !s.cases.is_empty() {
                    say(format!("  cases: {}", s.cases.join(", ")));
                }
                for v in &s.voice {
                    say(format!(
                        "  completed contact {}: {}",
                        v.id,
                        v.fields.join(", ")
                    ));
                }
            }
            say(format!(
                "read {} DFO customers, {} cases and {} completed contacts since {}",
                n(found.customers_scanned),
                n(found.cases_scanned),
                n(found.completed_scanned),
                found.since
            ));
        }
    }
    Ok(Exit::Ok)
}

/// What an erasure would change on CXone's published API.
pub(super) fn print_dry_run(ctx: &Context, found: &Found, skip_platform_erasure: bool) {
    match ctx.output {
        Output::Json => print_json(&serde_json::json!({"dryRun": true, "found": found})),
        Output::Text => {
            for s in &found.subjects {
                say(format!(
                    "{}: would remove {} message(s) of {} case(s) (reason GDPR), apply [digital] to {} customer(s), {} for {} completed contact(s)",
                    s.reference,
                    n(s.messages.iter().filter(|m| m.remains()).count() as u64),
                    n(s.cases.len() as u64),
                    n(s.customers.len() as u64),
                    if skip_platform_erasure {
                        "no platform erasure (--skip-platform-erasure)"
                    } else {
                        "file the platform erasure"
                    },
                    n(s.voice.len() as u64)
                ));
            }
            say("dry run: nothing was changed");
        }
    }
}
