//! `cxguard doctor`: read-only checks that everything is in place before a command
//! touches a real tenant — configuration, where each setting came from (secrets shown as
//! set or missing, never their values), the tenant (reachable, latency, clock skew), the
//! token and its scopes per protection, the ledger and its audit chain, the audit key's
//! mode, the webhook endpoints, and `serve`'s keys. Each ✗ comes with its fix.

use std::time::{Duration, Instant};

use clap::Args;

use super::checks::{Check, fail, pass};
use crate::config::{self, Target};
use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::{Output, print_json};
use crate::store::{self, Access};
use crate::tenant;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Also POST a signed `cxguard.test` event to each configured webhook endpoint
    /// (nothing is sent without it).
    #[arg(long)]
    pub send_test_event: bool,
}

/// What each protection needs of the token.
const NEEDS: &[(&str, &[&str])] = &[
    ("contacts anonymize", &["contact:read", "contact:write"]),
    ("secrets rotate", guard::rotate::SCOPES),
    ("datastore encrypt", guard::encrypt::SCOPES),
    ("webchat apply", guard::webchat::SCOPES),
    ("guests link / serve", guard::identity::SCOPES),
    ("subject erase", guard::subject::erase::SCOPES),
];

/// Where a setting came from: the environment, the file, or nowhere.
fn source(env_set: bool, in_file: bool) -> &'static str {
    match (env_set, in_file) {
        (true, _) => "environment",
        (false, true) => "config file",
        _ => "default",
    }
}

pub async fn run(ctx: &Context, a: DoctorArgs) -> Result<Exit, CliError> {
    let mut checks = Vec::new();
    settings_checks(ctx, &mut checks);
    tenant_check(ctx, &mut checks).await;
    ledger_checks(ctx, &mut checks).await;
    audit_key_check(ctx, &mut checks);
    webhook_checks(ctx, a.send_test_event, &mut checks).await;
    serve_keys_check(ctx, &mut checks);
    let all_ok = checks.iter().all(|c| c.ok);
    match ctx.output {
        Output::Json => print_json(&serde_json::json!({"ok": all_ok, "checks": checks})),
        Output::Text => {
            for c in &checks {
                println!("{} {}: {}", if c.ok { "✓" } else { "✗" }, c.name, c.detail);
                if let Some(f) = &c.fix {
                    println!("    fix: {f}");
                }
            }
        }
    }
    Ok(if all_ok { Exit::Ok } else { Exit::Failed })
}

/// The configuration parses; where each setting comes from.
fn settings_checks(ctx: &Context, checks: &mut Vec<Check>) {
    let env = ctx.env();
    checks.push(pass(
        "configuration",
        match &ctx.config.path {
            Some(p) => format!("{} parses", p.display()),
            None => "no config file; defaults and the environment".into(),
        },
    ));
    let file = ctx.config.file.tenant.as_ref();
    let set = |k: &str| env(k).is_some_and(|v| !v.is_empty());
    let secret_set = set(config::ENV_CLIENT_SECRET)
        || set(config::ENV_ACCESS_KEY_SECRET)
        || file.is_some_and(|t| {
            t.client_secret_env.as_deref().is_some_and(&set) || t.client_secret_file.is_some()
        });
    checks.push(pass(
        "settings",
        format!(
            "base_url from {}, client id from {}, client secret {}, store from {}",
            source(
                set(config::ENV_BASE_URL),
                file.is_some_and(|t| t.base_url.is_some())
            ),
            source(
                set(config::ENV_CLIENT_ID),
                file.is_some_and(|t| t.client_id.is_some())
            ),
            if secret_set { "set" } else { "missing" },
            source(set(config::ENV_STORE), ctx.config.file.store.is_some()),
        ),
    ));
}

/// The tenant: configured, reachable, the token and its scopes.
async fn tenant_check(ctx: &Context, checks: &mut Vec<Check>) {
    let env = ctx.env();
    // The tenant.
    let target = if ctx.sim {
        Ok(Target::Embedded)
    } else {
        config::target(&ctx.config, env)
    };
    match target {
        Err(e) => checks.push(fail("tenant", e.message, "fix the setting named above")),
        Ok(Target::Embedded) if !ctx.sim => checks.push(fail(
            "tenant",
            "no tenant configured",
            format!("set {} (or [tenant] base_url in cxguard.toml), and the credentials; or pass --sim to check against the embedded emulator", config::ENV_BASE_URL),
        )),
        Ok(_) => tenant_checks(ctx, checks).await,
    }
}

/// The ledger and its audit chain.
async fn ledger_checks(ctx: &Context, checks: &mut Vec<Check>) {
    let env = ctx.env();
    // The ledger and its audit chain.
    let url = config::store_url(&ctx.config, env);
    let missing_sqlite = url
        .strip_prefix("sqlite://")
        .is_some_and(|p| !std::path::Path::new(p).exists());
    if missing_sqlite {
        checks.push(pass(
            "ledger",
            "none yet: the first command that records something creates it",
        ));
    } else {
        match store::open(ctx, Access::Verify).await {
        Err(e) => checks.push(fail(
            "ledger",
            e.message,
            "nothing recorded yet is fine (the first command creates it); otherwise check [store] url",
        )),
        Ok(ledger) => match store::verifying_key(ctx, None) {
            Err(e) => checks.push(fail("audit chain", e.message, "configure [audit] key_file, or pass the public key to `cxguard audit verify --public-key`")),
            Ok(key) => match store::verify_chain(ctx, &ledger, &key, None).await {
                Ok(v) if v.is_intact() => checks.push(pass(
                    "audit chain",
                    format!("{} entries verify up to the head {}", v.entries, v.last_seq),
                )),
                Ok(v) => checks.push(fail(
                    "audit chain",
                    v.broken.map(|b| format!("broken at entry {}: {}", b.seq, b.reason)).unwrap_or_default(),
                    "the log was altered: keep this ledger as evidence and see `cxguard audit verify`",
                )),
                Err(e) => checks.push(fail("audit chain", e.to_string(), "see `cxguard audit verify`")),
            },
        },
    }
    }
}

/// The audit signing key is readable by its owner only.
fn audit_key_check(ctx: &Context, checks: &mut Vec<Check>) {
    let env = ctx.env();
    let key = config::audit_key_path(&ctx.config, env);
    #[cfg(unix)]
    if let Ok(m) = std::fs::metadata(&key) {
        use std::os::unix::fs::PermissionsExt;
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 == 0 {
            checks.push(pass(
                "audit key",
                format!("{} is mode {mode:o}", key.display()),
            ));
        } else {
            checks.push(fail(
                "audit key",
                format!(
                    "{} is mode {mode:o}: others can read the signing key",
                    key.display()
                ),
                format!("chmod 600 {}", key.display()),
            ));
        }
    }
}

/// Webhook endpoints: resolved and connected to, nothing sent (unless a test event is asked for).
async fn webhook_checks(ctx: &Context, send_test_event: bool, checks: &mut Vec<Check>) {
    let env = ctx.env();
    // Webhook endpoints: resolved and connected to, nothing sent.
    match config::delivery(&ctx.config, env) {
        Err(e) => checks.push(fail(
            "webhooks",
            e.message,
            "fix the [webhooks.*] setting named",
        )),
        Ok(d) if d.endpoints.is_empty() => checks.push(pass(
            "webhooks",
            "no endpoint configured (events wait in the outbox)",
        )),
        Ok(d) => {
            for (kind, ep) in &d.endpoints {
                checks.push(webhook_check(*kind, ep, send_test_event).await);
            }
        }
    }
}

/// serve's API keys and KMS callback tokens load.
fn serve_keys_check(ctx: &Context, checks: &mut Vec<Check>) {
    // serve's keys.
    if ctx.config.file.server.is_some() || ctx.config.file.kms.is_some() {
        match config::server_settings(&ctx.config) {
            Ok(s) => checks.push(pass(
                "serve keys",
                format!(
                    "{} API key(s), {} KMS callback token(s)",
                    s.api_keys.len(),
                    s.kms_tokens.len()
                ),
            )),
            Err(e) => checks.push(fail("serve keys", e.message, "see `cxguard keys api`")),
        }
    }
}

/// One webhook endpoint: its host resolves, accepts a connection and, for `https`, a TLS
/// handshake with a certificate this machine trusts; with `send_test` a signed
/// `cxguard.test` event is POSTed and must be accepted.
/// Resolves `host` and connects to it, within `within` each.
async fn connect(
    name: &str,
    host: &str,
    port: u16,
    setting: &str,
    within: Duration,
) -> Result<tokio::net::TcpStream, Check> {
    let name = name.to_string();
    let addrs: Vec<std::net::SocketAddr> =
        match tokio::time::timeout(within, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(a)) => a.collect(),
            Ok(Err(e)) => {
                return Err(fail(
                    name.clone(),
                    format!("{host} does not resolve: {e}"),
                    format!("check {setting} and DNS"),
                ));
            }
            Err(_) => {
                return Err(fail(
                    name.clone(),
                    format!("{host} did not resolve within 5 s"),
                    format!("check {setting} and DNS"),
                ));
            }
        };
    let Some(addr) = addrs.first().copied() else {
        return Err(fail(
            name.clone(),
            format!("{host} resolves to no address"),
            format!("check {setting} and DNS"),
        ));
    };
    match tokio::time::timeout(within, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(fail(
            name,
            format!("cannot connect to {host}:{port} ({addr}): {e}"),
            format!("check {setting} and the firewall; events wait in the outbox meanwhile"),
        )),
        Err(_) => Err(fail(
            name,
            format!("no connection to {host}:{port} within 5 s"),
            format!("check {setting} and the firewall"),
        )),
    }
}

async fn webhook_check(
    kind: ledger::EventKind,
    ep: &ledger::deliver::Endpoint,
    send_test: bool,
) -> Check {
    let name = format!("webhook {}", kind.as_str());
    let setting = format!("[webhooks.{}] url", kind.as_str());
    let host = ep.url.host_str().unwrap_or_default().to_string();
    let port = ep.url.port_or_known_default().unwrap_or(443);
    let within = Duration::from_secs(5);
    let t0 = Instant::now();
    let tcp = match connect(&name, &host, port, &setting, within).await {
        Ok(tcp) => tcp,
        Err(check) => return check,
    };
    let mut detail = format!("{host}:{port} resolves and accepts connections");
    if ep.url.scheme() == "https" {
        match tls_handshake(tcp, &host, within).await {
            Ok(()) => detail.push_str(", TLS verified"),
            Err(e) => {
                return fail(
                    name,
                    format!("TLS with {host}:{port} failed: {e}"),
                    format!(
                        "check that {setting} serves HTTPS with a certificate this machine trusts"
                    ),
                );
            }
        }
    }
    detail.push_str(&format!(" ({} ms)", t0.elapsed().as_millis()));
    if send_test {
        match send_test_event(kind, ep).await {
            Ok(status) => {
                detail.push_str(&format!("; test event accepted (HTTP {})", status.as_u16()))
            }
            Err(e) => {
                return fail(
                    name,
                    format!("test event not accepted: {e}"),
                    format!("check the receiver behind {setting} and its signing secret"),
                );
            }
        }
    }
    pass(name, detail)
}

/// A TLS handshake over `tcp` for `host`, verified with this machine's trust store.
async fn tls_handshake(
    tcp: tokio::net::TcpStream,
    host: &str,
    within: Duration,
) -> Result<(), String> {
    use rustls_platform_verifier::ConfigVerifierExt as _;
    use tokio_rustls::rustls;
    let config = rustls::ClientConfig::with_platform_verifier().map_err(|e| e.to_string())?;
    let server =
        rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    match tokio::time::timeout(within, connector.connect(server, tcp)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no handshake within 5 s".into()),
    }
}

/// POSTs a signed `cxguard.test` event to `ep`, as the deliverer would post any event.
async fn send_test_event(
    kind: ledger::EventKind,
    ep: &ledger::deliver::Endpoint,
) -> Result<reqwest::StatusCode, String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("cxguard-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())?;
    let mut raw = [0u8; 12];
    getrandom::fill(&mut raw).map_err(|e| e.to_string())?;
    let id = format!("msg_test_{}", ledger::hex(&raw));
    let event = ledger::NewEvent::new(
        kind,
        "cxguard.test",
        ledger::Details::new().label("sent_by", "cxguard doctor --send-test-event"),
    );
    let body = event.payload(&ledger::timestamp(time::OffsetDateTime::now_utc()));
    ledger::deliver::post_signed(&http, ep, &id, body.as_bytes(), Duration::from_secs(10)).await
}

/// The tenant's checks, after connecting to it.
async fn tenant_checks(ctx: &Context, checks: &mut Vec<Check>) {
    match tenant::connect(ctx, tenant::Needs::reading(&[])).await {
        Ok(c) => {
            client_checks(&c.client, checks).await;
            if c.client.settings().is_cxone() && ctx.config.file.identity.is_some() {
                identity_field(ctx, &c.client, checks).await;
            }
        }
        Err(e) => checks.push(fail("tenant", e.message, "fix the setting named above")),
    }
}

/// On CXone's published API with `[identity]`: whether the DFO customer field that
/// holds the pseudonym is defined (links are refused until it is).
async fn identity_field(ctx: &Context, client: &cxone::Client, checks: &mut Vec<Check>) {
    use guard::digital::setup::{FieldState, identity_field};
    let attribute = ctx
        .config
        .file
        .identity
        .as_ref()
        .and_then(|i| i.attribute.clone())
        .unwrap_or_else(|| guard::identity::DEFAULT_ATTRIBUTE.to_string());
    let name = "identity field";
    checks.push(match identity_field(client, &attribute).await {
        Ok(FieldState::Ready) => pass(
            name,
            format!("DFO customer custom field {attribute} is defined (text)"),
        ),
        Ok(FieldState::Missing) => fail(
            name,
            format!(
                "DFO customer custom field {attribute} has no definition: guest links are refused"
            ),
            "run `cxguard digital setup`",
        ),
        Ok(FieldState::WrongType(t)) => fail(
            name,
            format!("DFO customer custom field {attribute} is defined as {t}, not text"),
            "name a text field in [identity] attribute",
        ),
        Err(e) => fail(name, e.to_string(), "see the digital (DFO) check above"),
    });
}

/// Reachability, latency and clock skew, the token, and the scopes per protection, of
/// the tenant `client` talks to (the demo runs these against the emulator first).
pub async fn client_checks(client: &cxone::Client, checks: &mut Vec<Check>) {
    if !reachable(client, checks).await {
        return;
    }
    if client.settings().is_cxone() {
        return super::cxone_doctor::checks(client, checks).await;
    }
    match client.authenticate().await {
        Err(e) => {
            checks.push(fail(
                "token",
                e.to_string(),
                "check the client id and secret (or access key) and the token URL",
            ));
        }
        Ok(()) => {
            checks.push(pass("token", "obtained with the configured grant"));
            scope_checks(client, checks);
        }
    }
}

/// The tenant's base URL answers (no redirect followed), and its clock is near ours.
async fn reachable(client: &cxone::Client, checks: &mut Vec<Check>) -> bool {
    let base = client.settings().base_url.clone();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build();
    let t0 = Instant::now();
    let answer = match http {
        Ok(h) => h.get(base.clone()).send().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match answer {
        Err(e) => {
            checks.push(fail(
                "tenant reachable",
                format!("{base}: {e}"),
                "check tenant.base_url, DNS, the proxy and the firewall",
            ));
            false
        }
        Ok(r) => {
            checks.push(pass(
                "tenant reachable",
                format!("{base} answered in {} ms", t0.elapsed().as_millis()),
            ));
            let date = r
                .headers()
                .get(reqwest::header::DATE)
                .and_then(|v| v.to_str().ok())
                .and_then(|d| {
                    time::OffsetDateTime::parse(d, &time::format_description::well_known::Rfc2822)
                        .ok()
                });
            if let Some(d) = date {
                let skew = (time::OffsetDateTime::now_utc() - d).whole_seconds().abs();
                if skew <= 60 {
                    checks.push(pass("clock", format!("within {skew} s of the tenant's")));
                } else {
                    checks.push(fail(
                        "clock",
                        format!("{skew} s off the tenant's clock"),
                        "synchronise this machine's clock (NTP): tokens and webhook timestamps depend on it",
                    ));
                }
            }
            true
        }
    }
}

/// The scopes each protection needs, against those the token was granted.
fn scope_checks(client: &cxone::Client, checks: &mut Vec<Check>) {
    match client.granted_scopes() {
        None => checks.push(pass(
            "scopes",
            "the token endpoint does not list scopes; each request's answer will tell",
        )),
        Some(granted) => {
            for (what, needs) in NEEDS {
                let missing: Vec<&str> = needs
                    .iter()
                    .copied()
                    .filter(|n| !granted.iter().any(|g| g == n))
                    .collect();
                if missing.is_empty() {
                    checks.push(pass(format!("scopes for {what}"), needs.join(" ")));
                } else {
                    checks.push(fail(
                        format!("scopes for {what}"),
                        format!("missing {}", missing.join(" ")),
                        "grant them to the API client in CXone (or leave this protection unused)",
                    ));
                }
            }
        }
    }
}
