//! Credentials from `[tenant]` and the environment: the API client's (or registered
//! app's) id and secret, and a user's access key — secrets from the environment or from
//! files, never from the config itself.

use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::*;
use crate::exit::CliError;

pub(super) fn read_secret_file(field: &str, path: &Path) -> Result<SecretString, CliError> {
    warn_if_broad(path);
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::config(format!("{field}: cannot read {}: {e}", path.display())))?;
    let value = text.trim_end_matches(['\n', '\r']).to_string();
    if value.is_empty() {
        return Err(CliError::config(format!(
            "{field}: {} is empty",
            path.display()
        )));
    }
    Ok(SecretString::from(value))
}

/// Warns when a file holding a secret can be read by others than its owner.
pub fn warn_if_broad(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                eprintln!(
                    "warning: {} holds a secret but has mode {mode:04o}; restrict it with chmod 600",
                    path.display()
                );
            }
        }
    }
}

/// The grant from the environment and `[tenant]`: client credentials, or the access-key
/// grant when an access key is given; every missing credential named at once.
pub(super) fn grant(
    t: &TenantFile,
    get: &dyn Fn(&str) -> Option<String>,
    base_url: &str,
) -> Result<cxone::Grant, CliError> {
    let secret = |field: &str,
                  env_default: &str,
                  env_field: &Option<String>,
                  file_field: &Option<PathBuf>| {
        if let Some(path) = file_field {
            return read_secret_file(&format!("tenant.{field}"), path).map(Some);
        }
        let var = env_field.as_deref().unwrap_or(env_default);
        Ok(get(var).map(SecretString::from))
    };
    let client_id = get(ENV_CLIENT_ID).or_else(|| t.client_id.clone());
    let client_secret = secret(
        "client_secret_file",
        ENV_CLIENT_SECRET,
        &t.client_secret_env,
        &t.client_secret_file,
    )?;
    let (access_key_id, access_key_secret) = match &t.access_key_file {
        Some(path) => {
            if t.access_key_id.is_some() || t.access_key_secret_file.is_some() {
                return Err(CliError::config(
                    "tenant.access_key_file: give access_key_file or access_key_id with its secret, not both",
                ));
            }
            let (id, secret) = read_access_key_file(path)?;
            (Some(id), Some(secret))
        }
        None => (
            get(ENV_ACCESS_KEY_ID).or_else(|| t.access_key_id.clone()),
            secret(
                "access_key_secret_file",
                ENV_ACCESS_KEY_SECRET,
                &t.access_key_secret_env,
                &t.access_key_secret_file,
            )?,
        ),
    };
    let kind = t.grant.unwrap_or(if access_key_id.is_some() {
        GrantKind::AccessKey
    } else {
        GrantKind::ClientCredentials
    });
    check_complete(
        t,
        base_url,
        kind,
        [
            client_id.is_some(),
            client_secret.is_some(),
            access_key_id.is_some(),
            access_key_secret.is_some(),
        ],
    )?;
    let client_id = client_id.unwrap_or_default();
    let client_secret = client_secret.unwrap_or_else(|| SecretString::from(String::new()));
    Ok(match kind {
        GrantKind::ClientCredentials => cxone::Grant::ClientCredentials {
            client_id,
            client_secret,
        },
        GrantKind::AccessKey => cxone::Grant::AccessKey {
            access_key_id: access_key_id.unwrap_or_default(),
            access_key_secret: access_key_secret
                .unwrap_or_else(|| SecretString::from(String::new())),
            client_id,
            client_secret,
        },
    })
}

/// Every credential the grant `kind` needs is present; else each missing one named.
fn check_complete(
    t: &TenantFile,
    base_url: &str,
    kind: GrantKind,
    [client_id, client_secret, access_key_id, access_key_secret]: [bool; 4],
) -> Result<(), CliError> {
    let mut missing = Vec::new();
    if !client_id {
        missing.push(ENV_CLIENT_ID);
    }
    if !client_secret {
        missing.push(t.client_secret_env.as_deref().unwrap_or(ENV_CLIENT_SECRET));
    }
    if kind == GrantKind::AccessKey {
        if !access_key_id {
            missing.push(ENV_ACCESS_KEY_ID);
        }
        if !access_key_secret {
            missing.push(
                t.access_key_secret_env
                    .as_deref()
                    .unwrap_or(ENV_ACCESS_KEY_SECRET),
            );
        }
    }
    if !missing.is_empty() {
        let what = if kind == GrantKind::AccessKey {
            "the access-key grant needs the app's client id and secret and the user's access key id and secret"
        } else {
            "the client-credentials grant needs a client id and secret"
        };
        return Err(CliError::config(format!(
            "missing credentials for {base_url}: {what}; set {} (or client_id / client_secret_file in [tenant] of cxguard.toml)",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// The access key in `access_key_file`: JSON `{"accessKeyId", "accessKeySecret"}`,
/// readable by its owner only.
pub fn read_access_key_file(path: &Path) -> Result<(String, SecretString), CliError> {
    let bad = |why: String| CliError::config(format!("tenant.access_key_file: {why}"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(bad(format!(
                "{} has mode {mode:04o}: others can read the access key; chmod 600 it",
                path.display()
            )));
        }
    }
    use secrecy::ExposeSecret as _;
    let text = SecretString::from(
        std::fs::read_to_string(path)
            .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?,
    );
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct KeyFile {
        access_key_id: String,
        access_key_secret: SecretString,
    }
    // The parser's message may quote the file: it is not shown.
    let k: KeyFile = serde_json::from_str(text.expose_secret()).map_err(|e| {
        bad(format!(
            "{} is not {{\"accessKeyId\": \"…\", \"accessKeySecret\": \"…\"}} (line {}, column {})",
            path.display(),
            e.line(),
            e.column()
        ))
    })?;
    if k.access_key_id.trim().is_empty() || k.access_key_secret.expose_secret().is_empty() {
        return Err(bad(format!(
            "{}: accessKeyId and accessKeySecret must not be empty",
            path.display()
        )));
    }
    Ok((k.access_key_id, k.access_key_secret))
}
