//! `[tenant]` and the `CXGUARD_*` environment: which tenant, with which credentials
//! (secrets from the environment or from files, never from the config itself).

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

use super::*;
use crate::exit::CliError;

/// What commands that talk to a tenant will talk to.
#[derive(Debug)]
pub enum Target {
    /// A real tenant (or any server of the spec) with validated settings.
    Tenant(Box<cxone::Settings>),
    /// Nothing configured: the embedded emulator.
    Embedded,
}

fn read_secret_file(field: &str, path: &Path) -> Result<SecretString, CliError> {
    warn_if_broad(path);
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::config(format!(
            "tenant.{field}: cannot read {}: {e}",
            path.display()
        ))
    })?;
    let value = text.trim_end_matches(['\n', '\r']).to_string();
    if value.is_empty() {
        return Err(CliError::config(format!(
            "tenant.{field}: {} is empty",
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

/// Resolves the target from the file and the environment.
pub fn target(loaded: &Loaded, env: &dyn Fn(&str) -> Option<String>) -> Result<Target, CliError> {
    let empty = TenantFile::default();
    let t = loaded.file.tenant.as_ref().unwrap_or(&empty);
    let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    if api_of(t, t.issuer.as_deref()) == ApiKind::Cxone {
        let issuer = t.issuer.as_deref().unwrap_or(cxone::DEFAULT_ISSUER);
        let mut settings = super::cxone_api::settings(t, &get, issuer)?;
        tune(&mut settings, t);
        settings
            .validate()
            .map_err(|e| CliError::config(format!("tenant: {e}")))?;
        return Ok(Target::Tenant(Box::new(settings)));
    }
    let Some(base_url) = get(ENV_BASE_URL).or_else(|| t.base_url.clone()) else {
        return Ok(Target::Embedded);
    };
    let grant = grant(t, &get, &base_url)?;
    let base_field = if get(ENV_BASE_URL).is_some() {
        ENV_BASE_URL
    } else {
        "tenant.base_url"
    };
    let mut settings = cxone::Settings::new(&base_url, grant)
        .map_err(|e| CliError::config(e.to_string().replacen("base_url", base_field, 1)))?;
    settings = token_endpoint(settings, t, &get)?;
    tune(&mut settings, t);
    settings
        .validate()
        .map_err(|e| CliError::config(format!("tenant: {e}")))?;
    Ok(Target::Tenant(Box::new(settings)))
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
            return read_secret_file(field, path).map(Some);
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
            let (id, secret) = super::cxone_api::read_access_key_file(path)?;
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
    let mut missing = Vec::new();
    if client_id.is_none() {
        missing.push(ENV_CLIENT_ID);
    }
    if client_secret.is_none() {
        missing.push(t.client_secret_env.as_deref().unwrap_or(ENV_CLIENT_SECRET));
    }
    if kind == GrantKind::AccessKey {
        if access_key_id.is_none() {
            missing.push(ENV_ACCESS_KEY_ID);
        }
        if access_key_secret.is_none() {
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

/// Where tokens come from: `token_url` as written, or the issuer's discovery document
/// (not both).
fn token_endpoint(
    mut settings: cxone::Settings,
    t: &TenantFile,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<cxone::Settings, CliError> {
    if let Some(tu) = get(ENV_TOKEN_URL).or_else(|| t.token_url.clone()) {
        let field = if get(ENV_TOKEN_URL).is_some() {
            ENV_TOKEN_URL
        } else {
            "tenant.token_url"
        };
        settings = settings
            .token_url(&tu)
            .map_err(|e| CliError::config(e.to_string().replacen("token_url", field, 1)))?;
    }
    if let Some(issuer) = &t.issuer {
        if t.token_url.is_some() || get(ENV_TOKEN_URL).is_some() {
            return Err(CliError::config(
                "tenant.issuer: set issuer or token_url, not both (the issuer's discovery document names the token endpoint)",
            ));
        }
        settings = settings
            .issuer(issuer)
            .map_err(|e| CliError::config(format!("tenant.{e}")))?;
    }
    Ok(settings)
}

/// Limits, timeouts, pacing and retries from `[tenant]`.
fn tune(settings: &mut cxone::Settings, t: &TenantFile) {
    settings.allow_insecure_http = t.allow_insecure_http;
    if let Some(n) = t.max_body_bytes {
        settings.max_body = n;
    }
    if let Some(n) = t.max_page_bytes {
        settings.max_page_body = n;
    }
    settings.scopes = t.scopes.clone();
    if let Some(s) = t.timeout_secs {
        settings.request_timeout = Duration::from_secs(s);
    }
    if let Some(s) = t.connect_timeout_secs {
        settings.connect_timeout = Duration::from_secs(s);
    }
    settings.max_rate = t.max_rate;
    if let Some(r) = &t.retry {
        if let Some(v) = r.max_attempts {
            settings.retry.max_attempts = v;
        }
        if let Some(v) = r.base_delay_ms {
            settings.retry.base_delay = Duration::from_millis(v);
        }
        if let Some(v) = r.max_delay_ms {
            settings.retry.max_delay = Duration::from_millis(v);
        }
        if let Some(v) = r.deadline_secs {
            settings.retry.deadline = Duration::from_secs(v);
        }
    }
}
