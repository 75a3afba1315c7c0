//! `cxguard audit verify | show | export | public-key`: the tamper-evident audit log.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::{Output, print_json, table};
use crate::store::{self, Access};

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain, every signed checkpoint and the signed head; name the first bad entry.
    ///
    /// Also checks that the ledger still reaches the anchor (the last signed checkpoint,
    /// kept outside the database) and, with --expect-head, a head an auditor saved: a
    /// ledger restored from an older copy, or with entries removed, fails. A missing
    /// ledger is an error; verify never creates one.
    Verify {
        /// Verify with this public key (from `cxguard audit public-key`) instead of the configured key.
        #[arg(long, value_name = "FILE")]
        public_key: Option<PathBuf>,
        /// A head saved earlier, as `audit verify` prints it: the ledger must still hold
        /// this entry with this hash.
        #[arg(long, value_name = "SEQ:HASH")]
        expect_head: Option<ledger::anchor::ExpectedHead>,
    },
    /// Show entries as a table (or JSON with --output json).
    Show(FilterArgs),
    /// Export entries, one JSON document per line, for an auditor or a SIEM.
    Export {
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Print the public key that verifies this ledger's signatures.
    PublicKey,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
}

#[derive(Debug, Args)]
pub struct FilterArgs {
    /// An operation, or a prefix ending in * (e.g. 'secret.rotate.*').
    #[arg(long)]
    pub operation: Option<String>,
    /// A target (resource id).
    #[arg(long)]
    pub target: Option<String>,
    /// Entries at or after this RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Entries before this RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// At most this many entries.
    #[arg(long)]
    pub limit: Option<i64>,
}

impl FilterArgs {
    fn to_filter(&self) -> Result<ledger::Filter, CliError> {
        if let Some(l) = self.limit
            && l < 1
        {
            return Err(CliError::usage(format!("--limit: {l} must be at least 1")));
        }
        Ok(ledger::Filter {
            operation: self.operation.clone(),
            target: self.target.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
            after_seq: None,
            limit: self.limit,
        }
        .validate()?)
    }
}

pub async fn run(ctx: &Context, args: AuditArgs) -> Result<Exit, CliError> {
    match args.command {
        AuditCommand::Verify {
            public_key,
            expect_head,
        } => verify(ctx, public_key.as_deref(), expect_head.as_ref()).await,
        AuditCommand::Show(f) => show(ctx, &f).await,
        AuditCommand::Export {
            format: ExportFormat::Jsonl,
            filter,
        } => export(ctx, &filter).await,
        AuditCommand::PublicKey => {
            let ledger = store::open(ctx, Access::Write).await?;
            let key = ledger
                .public_key()
                .ok_or_else(|| CliError::config("no signing key is configured"))?;
            match ctx.output {
                Output::Json => print_json(
                    &serde_json::json!({"publicKey": key.to_text(), "keyId": key.key_id()}),
                ),
                Output::Text => println!("{}", key.to_text()),
            }
            Ok(Exit::Ok)
        }
    }
}

/// `audit verify`: the chain, its signatures and the anchor, by the one check.
async fn verify(
    ctx: &Context,
    public_key: Option<&std::path::Path>,
    expect_head: Option<&ledger::anchor::ExpectedHead>,
) -> Result<Exit, CliError> {
    let key = store::verifying_key(ctx, public_key)?;
    let ledger = store::open(ctx, Access::Verify).await?;
    let v = store::verify_chain(ctx, &ledger, &key, expect_head).await?;
    let anchor = crate::config::anchor_path(&ctx.config, ctx.env());
    if v.broken.is_none() && v.entries > 0 && !anchor.exists() {
        ctx.note(format!(
            "note: no audit anchor at {}; a ledger restored from an older copy cannot be told from this one (the anchor is written at each signed checkpoint)",
            anchor.display()
        ));
    }
    match ctx.output {
        Output::Json => print_json(&v),
        Output::Text => match &v.broken {
            None => println!(
                "audit log intact: {} entries, {} signed checkpoints, head at entry {}, verified with key {}\nhead: {}:{}",
                v.entries,
                v.checkpoints,
                v.last_seq,
                v.key_id,
                v.last_seq,
                v.last_hash.as_deref().unwrap_or("-")
            ),
            Some(b) => println!("audit log BROKEN at entry {}: {}", b.seq, b.reason),
        },
    }
    if let Some(b) = v.broken {
        return Err(CliError::new(
            Exit::Failed,
            format!(
                "audit verification failed at entry {} ({} entries checked before it)",
                b.seq, v.entries
            ),
        ));
    }
    Ok(Exit::Ok)
}

/// `audit show`: the entries a filter selects, as a table.
async fn show(ctx: &Context, f: &FilterArgs) -> Result<Exit, CliError> {
    let filter = f.to_filter()?;
    let ledger = store::open(ctx, Access::Read).await?;
    let entries = ledger.entries(&filter).await?;
    match ctx.output {
        Output::Json => print_json(&entries),
        Output::Text => {
            let mut t = table(&[
                "seq",
                "at",
                "actor",
                "operation",
                "target",
                "outcome",
                "details",
            ]);
            for e in &entries {
                t.add_row(vec![
                    e.seq.to_string(),
                    e.at.clone(),
                    e.actor.clone(),
                    e.operation.clone(),
                    e.target.clone(),
                    e.outcome.clone(),
                    e.details.to_string(),
                ]);
            }
            println!("{t}");
            ctx.note(format!("{} entries", entries.len()));
        }
    }
    Ok(Exit::Ok)
}

/// `audit export`: the entries a filter selects, one JSON line each, page by page.
async fn export(ctx: &Context, filter: &FilterArgs) -> Result<Exit, CliError> {
    use std::io::Write;
    let filter = filter.to_filter()?;
    let ledger = store::open(ctx, Access::Read).await?;
    let mut after = filter.after_seq.unwrap_or(0);
    let mut left = filter.limit.unwrap_or(i64::MAX);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let failed = |e: std::io::Error| CliError::new(Exit::Failed, format!("cannot write: {e}"));
    while left > 0 {
        let page = ledger
            .entries(&ledger::Filter {
                after_seq: Some(after),
                limit: Some(left.min(5000)),
                ..filter.clone()
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        left -= page.len() as i64;
        for e in &page {
            let line =
                serde_json::to_string(e).map_err(|e| CliError::new(Exit::Failed, e.to_string()))?;
            writeln!(out, "{line}").map_err(failed)?;
        }
    }
    out.flush().map_err(failed)?;
    Ok(Exit::Ok)
}
