//! `[tenant]` and the `CXGUARD_*` environment: which tenant, with which credentials
//! (secrets from the environment or from files, never from the config itself).

use std::time::Duration;

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
    let grant = super::credentials::grant(t, &get, &base_url)?;
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
