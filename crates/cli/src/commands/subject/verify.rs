//! `cxguard subject verify RECEIPT`: what still holds the receipt's person. The receipt
//! holds the person's pseudonym, never the identifier: it is asked again (stdin or
//! --file) and must make the receipt's pseudonym with the receipt's key, so the search
//! is for the person the erasure was for.

use std::time::Duration;

use guard::identity::IdentifierKind;
use guard::subject::verify::{Options, Verified};
use guard::subject::{Matcher, Request};
use secrecy::SecretString;

use super::VerifyArgs;
use crate::commands::contacts::actor;
use crate::config;
use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::{Output, print_json, say};
use crate::progress::thousands as n;
use crate::store::{self, Access};
use crate::tenant;

/// Between two searches under --wait.
const POLL: Duration = Duration::from_secs(2);
/// The largest receipt file read.
const MAX_RECEIPT: u64 = 16 * 1024 * 1024;

/// The receipt's reference, pseudonym and key, from a receipt file or an erase's JSON
/// output holding one receipt.
fn receipt(path: &std::path::Path) -> Result<(String, String, String), CliError> {
    let shown = path.display().to_string();
    let bad = |why: String| CliError::new(Exit::Input, format!("{shown}: {why}"));
    let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    if meta.len() > MAX_RECEIPT {
        return Err(bad(format!(
            "larger than {MAX_RECEIPT} bytes: not a receipt"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let r = match v.get("receipts").and_then(|r| r.as_array()) {
        Some(list) if list.len() == 1 => list[0].clone(),
        Some(list) => {
            return Err(bad(format!(
                "holds {} receipts; verify one at a time (`subject erase --receipts DIR` writes one file each)",
                list.len()
            )));
        }
        None => v,
    };
    let field = |k: &str| {
        r[k].as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| bad(format!("no {k}: not a receipt of `subject erase`")))
    };
    Ok((field("reference")?, field("pseudonym")?, field("keyId")?))
}

/// The identifier, from --file's first line or stdin.
fn identifier(file: Option<&std::path::Path>) -> Result<SecretString, CliError> {
    let line = match file {
        Some(f) => std::fs::read_to_string(f)
            .map_err(|e| {
                CliError::new(
                    Exit::Input,
                    format!("--file: cannot read {}: {e}", f.display()),
                )
            })?
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string(),
        None => {
            let mut l = String::new();
            std::io::stdin()
                .read_line(&mut l)
                .map_err(|e| CliError::new(Exit::Input, format!("stdin: {e}")))?;
            l.trim().to_string()
        }
    };
    if line.is_empty() {
        return Err(CliError::new(
            Exit::Input,
            "the identifier is empty: give the person's email or phone on stdin or in --file (the receipt never holds it)",
        ));
    }
    Ok(SecretString::from(line))
}

pub(super) async fn verify(ctx: &Context, a: VerifyArgs) -> Result<Exit, CliError> {
    let (reference, pseudonym, key_id) = receipt(&a.receipt)?;
    let wait = a
        .wait
        .as_deref()
        .map(|w| guard::parsing::duration("--wait", w))
        .transpose()?;
    let since = super::real::since(a.since.as_deref())?;
    let page_size = cxone::PageSize::new(a.page_size)
        .map_err(|e| CliError::usage(format!("--page-size: {e}")))?;
    let identity = config::identity(&ctx.config, ctx.env())?;
    if identity.key_id() != key_id {
        return Err(CliError::config(format!(
            "identity.key: the receipt's pseudonym was made with key {key_id}, this configuration's key is {}; verify with the key the erasure used",
            identity.key_id()
        )));
    }
    let request = Request {
        reference: reference.clone(),
        identifier: identifier(a.file.as_deref())?,
        kind: IdentifierKind::Auto,
        external_ids: a.channels.checked()?,
    };
    let subjects = guard::subject::prepare(vec![request], &identity)
        .map_err(|e| CliError::new(Exit::Input, format!("the identifier: {}", e.join("; "))))?;
    if subjects[0].pseudonym != pseudonym {
        return Err(CliError::new(
            Exit::Input,
            format!(
                "the identifier given is not the person of receipt {reference} (its pseudonym differs); nothing was searched"
            ),
        ));
    }
    let matcher = Matcher::new(&subjects, identity.normalizer(), &[]);
    let target = tenant::connect(ctx, super::SEARCHING).await?;
    let ledger = store::open(ctx, Access::Write).await?;
    let v = guard::subject::verify::verify(
        &target.client,
        &ledger,
        &subjects,
        &matcher,
        &Options {
            actor: actor(),
            attribute: identity.attribute().to_string(),
            page_size,
            since,
            wait,
            poll: POLL,
        },
    )
    .await
    .map_err(crate::exit::without_tenant_words)?;
    print(ctx, &v);
    Ok(if v.remaining == 0 {
        Exit::Ok
    } else {
        Exit::Findings
    })
}

fn print(ctx: &Context, v: &Verified) {
    if let Output::Json = ctx.output {
        return print_json(v);
    }
    for r in &v.subjects {
        if r.count() == 0 {
            say(format!(
                "{}: nothing holds this person any more",
                r.reference
            ));
        } else {
            say(format!(
                "{}: {} record(s) still hold this person",
                r.reference,
                n(r.count())
            ));
        }
        for c in &r.voice {
            say(format!(
                "  completed contact {}: {} not yet anonymized (the platform erasure is asynchronous)",
                c.id,
                c.fields.join(", ")
            ));
        }
        for m in &r.messages {
            let parts: Vec<&str> = [("content", m.content), ("author name", m.author_name)]
                .iter()
                .filter(|(_, left)| *left)
                .map(|(p, _)| *p)
                .collect();
            say(format!(
                "  message {} of case {}: {} not removed",
                m.id,
                m.case,
                parts.join(" and ")
            ));
        }
        for f in &r.fields {
            say(format!("  field {f}: still holds the identifier"));
        }
        for c in &r.contacts {
            say(format!("  contact {c}: still holds the identifier"));
        }
        for g in &r.guests {
            say(format!("  guest {g}: still linked"));
        }
        if !r.identities.is_empty() {
            say(format!(
                "  DFO customer(s) {} keep the identity: CXone's API cannot change identities (remove them with the DFO automation job in the UI)",
                r.identities.join(", ")
            ));
        }
    }
    say(format!(
        "{} search(es) in {:.1} s; {} record(s) remain",
        v.searches,
        v.seconds,
        n(v.remaining)
    ));
}
