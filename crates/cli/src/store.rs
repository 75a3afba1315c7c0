//! Opening the ledger that the configuration names, for reading or for writing.

use ledger::{KeySource, Ledger};

use crate::config;
use crate::context::Context;
use crate::exit::CliError;

/// Whether a command appends to the audit log (and so needs the signing key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    /// Read a ledger that must exist: verifying creates nothing.
    Verify,
    Write,
}

pub async fn open(ctx: &Context, access: Access) -> Result<Ledger, CliError> {
    let env = ctx.env();
    let url = config::store_url(&ctx.config, env);
    let ledger = match access {
        Access::Read => Ledger::open(&url, KeySource::None).await?,
        Access::Verify => Ledger::open_existing(&url, KeySource::None).await?,
        Access::Write => {
            let key = KeySource::File(config::audit_key_path(&ctx.config, env));
            let witness = ctx
                .config
                .file
                .webhooks
                .as_ref()
                .is_some_and(|w| w.witness.is_some());
            Ledger::open(&url, key)
                .await?
                .with_anchor(ledger::anchor::AnchorFile::new(config::anchor_path(
                    &ctx.config,
                    env,
                )))
                .with_witness(witness)
        }
    };
    let mut ledger = ledger.with_checkpoint_every(config::checkpoint_every(&ctx.config)?);
    if ctx.sim {
        // Every entry of a rehearsal names the emulator as the tenant it was done to.
        ledger = ledger.with_tenant_label("emulator");
    }
    OPENED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(ledger.clone());
    tracing::debug!(store = ledger.location(), "opened the ledger");
    Ok(ledger)
}

/// Every ledger a command opened, closed by [`close_all`] when the command ends.
static OPENED: std::sync::Mutex<Vec<Ledger>> = std::sync::Mutex::new(Vec::new());

/// Starts delivering webhook events in the background while a command works, so each
/// event goes out soon after it is recorded. `stop()` on the handle delivers what is due
/// and says what happened; what is not delivered stays in the outbox for the next run.
pub fn start_delivery(
    ctx: &Context,
    ledger: &Ledger,
) -> Result<ledger::deliver::DelivererHandle, CliError> {
    let env = ctx.env();
    let config = config::delivery(&ctx.config, env)?;
    Ok(ledger::deliver::Deliverer::new(ledger.clone(), config)?.spawn(DELIVERY_POLL))
}

/// How often a command's background deliverer looks for due events.
const DELIVERY_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Closes the ledgers the command opened: on SQLite this folds the write-ahead log into
/// `ledger.sqlite`, so the file alone holds the whole ledger once cxguard has exited.
pub async fn close_all() {
    let opened: Vec<Ledger> =
        std::mem::take(&mut *OPENED.lock().unwrap_or_else(|e| e.into_inner()));
    for l in opened {
        l.close().await;
    }
}

/// The public key to verify with: `--public-key FILE`, else the configured signing key's.
pub fn verifying_key(
    ctx: &Context,
    explicit: Option<&std::path::Path>,
) -> Result<ledger::PublicKey, CliError> {
    let env = ctx.env();
    if let Some(p) = explicit {
        return Ok(ledger::PublicKey::read_file(p)?);
    }
    let path = config::audit_key_path(&ctx.config, env);
    if !path.exists() {
        return Err(CliError::config(format!(
            "no key to verify with: pass --public-key FILE (from `cxguard audit public-key`), or configure [audit] key_file (looked for {})",
            path.display()
        )));
    }
    Ok(ledger::AuditKey::load(&path)?.public())
}

/// The chain's health as every command states it (`audit verify`, `report`, `status`,
/// `doctor`): the chain, its signatures, and the anchor kept outside the database, by
/// one function, so no command calls intact a ledger that `audit verify` calls broken.
pub async fn verify_chain(
    ctx: &Context,
    ledger: &Ledger,
    key: &ledger::PublicKey,
    expected: Option<&ledger::anchor::ExpectedHead>,
) -> Result<ledger::Verdict, CliError> {
    let env = ctx.env();
    let path = config::anchor_path(&ctx.config, env);
    let anchor = ledger::anchor::AnchorFile::new(&path);
    let (v, anchored) = ledger.verify_anchored(key, Some(&anchor), expected).await?;
    if anchored == ledger::Anchored::Missing && v.broken.is_none() && v.entries > 0 {
        tracing::info!(
            anchor = %path.display(),
            "no audit anchor: a ledger restored from an older copy cannot be told from this one"
        );
    }
    Ok(v)
}
