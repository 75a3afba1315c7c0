//! Where cxguard keeps its data: the data directory, the ledger store, the audit key
//! and its anchor, and how often the chain is checkpointed.

use std::path::{Path, PathBuf};

use super::*;
use crate::exit::CliError;

/// The data directory: `$CXGUARD_HOME`, else `$XDG_DATA_HOME/cxguard`, else
/// `~/.local/share/cxguard`.
pub fn home(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(h) = env(ENV_HOME).filter(|v| !v.is_empty()) {
        return PathBuf::from(h);
    }
    if let Some(x) = env("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("cxguard");
    }
    PathBuf::from(env("HOME").unwrap_or_else(|| ".".into())).join(".local/share/cxguard")
}

/// A `--sim` rehearsal's own data: the ledger, audit key and anchor under `sim/` in the
/// data directory, whatever `[store]`, `[audit]` or `$CXGUARD_STORE` say, and no webhook
/// endpoint unless `keep_webhooks` (`--sim-webhooks`). A rehearsal with a production
/// configuration must not write the production ledger nor announce emulator contacts
/// to the real consent endpoint.
pub fn isolate_rehearsal(
    loaded: &mut Loaded,
    env: &dyn Fn(&str) -> Option<String>,
    keep_webhooks: bool,
) {
    let dir = home(env).join("sim");
    loaded.file.store = Some(file::StoreFile {
        url: Some(format!("sqlite://{}", dir.join("ledger.sqlite").display())),
    });
    let audit = loaded.file.audit.get_or_insert_with(Default::default);
    audit.key_file = Some(dir.join("audit-signing.key"));
    audit.anchor_file = Some(dir.join("audit-anchor.json"));
    if !keep_webhooks {
        loaded.file.webhooks = None;
    }
}

/// The store URL: `$CXGUARD_STORE`, else `[store] url`, else SQLite in the data directory.
pub fn store_url(loaded: &Loaded, env: &dyn Fn(&str) -> Option<String>) -> String {
    env(ENV_STORE)
        .filter(|v| !v.is_empty())
        .or_else(|| loaded.file.store.as_ref().and_then(|s| s.url.clone()))
        .unwrap_or_else(|| format!("sqlite://{}", home(env).join("ledger.sqlite").display()))
}

pub fn audit_key_path(loaded: &Loaded, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    loaded
        .file
        .audit
        .as_ref()
        .and_then(|a| a.key_file.clone())
        .unwrap_or_else(|| home(env).join("audit-signing.key"))
}

/// The audit anchor: `[audit] anchor_file`, else audit-anchor.json beside the signing key.
pub fn anchor_path(loaded: &Loaded, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    loaded
        .file
        .audit
        .as_ref()
        .and_then(|a| a.anchor_file.clone())
        .unwrap_or_else(|| {
            let key = audit_key_path(loaded, env);
            key.parent()
                .unwrap_or(Path::new("."))
                .join("audit-anchor.json")
        })
}

pub fn checkpoint_every(loaded: &Loaded) -> Result<i64, CliError> {
    match loaded.file.audit.as_ref().and_then(|a| a.checkpoint_every) {
        None => Ok(ledger::DEFAULT_CHECKPOINT_EVERY),
        Some(n) if n >= 1 => Ok(n),
        Some(n) => Err(CliError::config(format!(
            "audit.checkpoint_every: {n} must be at least 1"
        ))),
    }
}
