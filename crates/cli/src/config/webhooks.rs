//! `[webhooks.*]` and `[outbox]`: endpoints, signing secrets and schedule for the
//! webhook deliverer.

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::exit::CliError;

fn webhook_secret(
    section: &str,
    field: &str,
    env_name: &Option<String>,
    file: &Option<PathBuf>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ledger::webhooks::WebhookSecret>, CliError> {
    let text = match (env_name, file) {
        (Some(_), Some(_)) => {
            return Err(CliError::config(format!(
                "webhooks.{section}: set {field}_env or {field}_file, not both"
            )));
        }
        (Some(var), None) => Some(env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
            CliError::config(format!(
                "webhooks.{section}.{field}_env: the environment variable {var} is not set"
            ))
        })?),
        (None, Some(path)) => {
            warn_if_broad(path);
            Some(std::fs::read_to_string(path).map_err(|e| {
                CliError::config(format!(
                    "webhooks.{section}.{field}_file: cannot read {}: {e}",
                    path.display()
                ))
            })?)
        }
        (None, None) => None,
    };
    text.map(|t| {
        ledger::webhooks::WebhookSecret::parse(t.trim())
            .map_err(|e| CliError::config(format!("webhooks.{section}.{field}: {e}")))
    })
    .transpose()
}

/// Endpoints, schedule and timeout for the webhook deliverer.
pub fn delivery(
    loaded: &Loaded,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ledger::deliver::DeliveryConfig, CliError> {
    use ledger::EventKind;
    let mut cfg = ledger::deliver::DeliveryConfig::default();
    if let Some(o) = &loaded.file.outbox {
        if let Some(s) = &o.schedule_secs {
            if s.is_empty() {
                return Err(CliError::config(
                    "outbox.schedule_secs: at least one attempt",
                ));
            }
            cfg.schedule = s.iter().map(|x| Duration::from_secs(*x)).collect();
        }
        if let Some(t) = o.timeout_secs {
            if t == 0 {
                return Err(CliError::config("outbox.timeout_secs: more than 0"));
            }
            cfg.timeout = Duration::from_secs(t);
        }
    }
    let empty = WebhooksFile::default();
    let w = loaded.file.webhooks.as_ref().unwrap_or(&empty);
    for (kind, section) in [
        (EventKind::Vault, &w.vault),
        (EventKind::Consent, &w.consent),
        (EventKind::Kms, &w.kms),
        (EventKind::Waf, &w.waf),
        (EventKind::Witness, &w.witness),
    ] {
        let Some(s) = section else { continue };
        let name = kind.as_str();
        let field = format!("webhooks.{name}.url");
        let url = cxone::parse_http_url(&field, &s.url)
            .and_then(|u| {
                cxone::check_transport_security(&field, &u, s.allow_insecure_http).map(|()| u)
            })
            .map_err(|e| CliError::config(e.to_string()))?;
        let mut secrets = Vec::new();
        match webhook_secret(name, "secret", &s.secret_env, &s.secret_file, env)? {
            Some(sec) => secrets.push(sec),
            None => {
                return Err(CliError::config(format!(
                    "webhooks.{name}: a signing secret is required: secret_env or secret_file (whsec_…; `cxguard outbox new-secret` makes one)"
                )));
            }
        }
        if let Some(prev) = webhook_secret(
            name,
            "previous_secret",
            &s.previous_secret_env,
            &s.previous_secret_file,
            env,
        )? {
            secrets.push(prev);
        }
        cfg.endpoints
            .insert(kind, ledger::deliver::Endpoint { url, secrets });
    }
    Ok(cfg)
}
