//! `[vault]`: where `accesskeys rotate --deliver vault:…` writes, and with which token
//! (from the environment or a file, never the config itself).

use secrecy::SecretString;

use super::*;
use crate::exit::CliError;

/// The configured OpenBao/Vault server, if any.
pub fn vault(
    loaded: &Loaded,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<guard::accesskeys::VaultConfig>, CliError> {
    let Some(v) = &loaded.file.vault else {
        return Ok(None);
    };
    let address = cxone::parse_http_url("vault.address", &v.address)
        .map_err(|e| CliError::config(e.to_string()))?;
    cxone::check_transport_security("vault.address", &address, v.allow_insecure_http)
        .map_err(|e| CliError::config(e.to_string()))?;
    let token = match (&v.token_env, &v.token_file) {
        (Some(var), None) => env(var)
            .filter(|t| !t.is_empty())
            .map(SecretString::from)
            .ok_or_else(|| CliError::config(format!("vault.token_env: {var} is not set")))?,
        (None, Some(path)) => super::credentials::read_secret_file("vault.token_file", path)?,
        _ => {
            return Err(CliError::config(
                "vault: give token_env or token_file (one of them)",
            ));
        }
    };
    let ca_pem = match &v.ca_file {
        None => None,
        Some(p) => Some(std::fs::read(p).map_err(|e| {
            CliError::config(format!("vault.ca_file: cannot read {}: {e}", p.display()))
        })?),
    };
    let config = guard::accesskeys::VaultConfig {
        address,
        token,
        namespace: v.namespace.clone(),
        ca_pem,
    };
    config
        .check()
        .map_err(|e| CliError::config(e.to_string()))?;
    Ok(Some(config))
}
