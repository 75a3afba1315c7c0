//! `[identity]`: the guest-linking protection as configured, with its key loaded.

use std::path::Path;

use super::*;
use crate::exit::CliError;

/// The identity protection as configured: `[identity]` with its key loaded.
pub fn identity(
    loaded: &Loaded,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<guard::identity::Identity, CliError> {
    let empty = IdentityFile::default();
    let f = loaded.file.identity.as_ref().unwrap_or(&empty);
    let spec = f.key.as_ref().ok_or_else(|| {
        CliError::config(
            "identity.key: not configured; add to cxguard.toml:\n  [identity]\n  key = { id = \"guest-id-2026\", env = \"CXGUARD_IDENTITY_KEY\" }\nand set CXGUARD_IDENTITY_KEY to the output of `cxguard keys new`",
        )
    })?;
    let base = loaded
        .path
        .as_deref()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    let key = guard::keys::Key::load(spec, env, base)
        .map_err(|e| CliError::config(format!("identity.key: {e}")))?;
    let region = f
        .default_region
        .as_deref()
        .map(guard::pseudonym::parse_region)
        .transpose()
        .map_err(|e| CliError::config(format!("identity.default_region: {e}")))?;
    let normalizer = guard::pseudonym::Normalizer {
        region,
        gmail_folding: f.gmail_folding,
    };
    guard::identity::Identity::new(
        std::sync::Arc::new(key),
        normalizer,
        f.attribute
            .as_deref()
            .unwrap_or(guard::identity::DEFAULT_ATTRIBUTE),
    )
    .map_err(|e| CliError::config(format!("identity.attribute: {e}")))
}
