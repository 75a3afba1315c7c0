//! Opening the ledger that the configuration names, for reading or for writing.

use ledger::{KeySource, Ledger};

use crate::Context;
use crate::config;
use crate::exit::CliError;

/// Whether a command appends to the audit log (and so needs the signing key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    /// Read a ledger that must exist: verifying creates nothing.
    Verify,
    Write,
}

pub async fn open(
    ctx: &Context,
    env: &dyn Fn(&str) -> Option<String>,
    access: Access,
) -> Result<Ledger, CliError> {
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
    let ledger = ledger.with_checkpoint_every(config::checkpoint_every(&ctx.config)?);
    tracing::debug!(store = ledger.location(), "opened the ledger");
    Ok(ledger)
}

/// The public key to verify with: `--public-key FILE`, else the configured signing key's.
pub fn verifying_key(
    ctx: &Context,
    env: &dyn Fn(&str) -> Option<String>,
    explicit: Option<&std::path::Path>,
) -> Result<ledger::PublicKey, CliError> {
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
