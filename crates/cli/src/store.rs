//! Opening the ledger that the configuration names, for reading or for writing.

use ledger::{KeySource, Ledger};

use crate::Context;
use crate::config;
use crate::exit::CliError;

/// Whether a command appends to the audit log (and so needs the signing key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

pub async fn open(
    ctx: &Context,
    env: &dyn Fn(&str) -> Option<String>,
    access: Access,
) -> Result<Ledger, CliError> {
    let url = config::store_url(&ctx.config, env);
    let key = match access {
        Access::Read => KeySource::None,
        Access::Write => KeySource::File(config::audit_key_path(&ctx.config, env)),
    };
    let ledger = Ledger::open(&url, key)
        .await?
        .with_checkpoint_every(config::checkpoint_every(&ctx.config)?);
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
