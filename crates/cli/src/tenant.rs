//! Connecting to the target: the configured tenant, or the embedded emulator.
//!
//! A command that changes things needs a configured tenant, or `--sim` to ask for the
//! embedded emulator explicitly: a forgotten environment variable must never turn a
//! production job into a rehearsal that reports success. Read-only commands fall back to
//! the emulator with a notice that `--quiet` does not hide. Each command names the
//! scopes it needs; they are checked against the token before anything else is sent.

use crate::config::{self, Target};
use crate::context::Context;
use crate::exit::CliError;

pub struct Connected {
    pub client: cxone::Client,
    /// Kept alive while the command runs when the target is the embedded emulator.
    pub sim: Option<cxone_sim::SimHandle>,
}

/// What a command needs of its target.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs<'a> {
    /// A client-side cap in requests per second.
    pub max_rate: Option<u32>,
    /// The command changes the tenant (or serves callers who do).
    pub writes: bool,
    /// OAuth scopes the command uses; missing ones exit 77 before any other request.
    pub scopes: &'a [&'a str],
}

impl<'a> Needs<'a> {
    /// A command that only reads the tenant, with these scopes.
    pub const fn reading(scopes: &'a [&'a str]) -> Self {
        Needs {
            max_rate: None,
            writes: false,
            scopes,
        }
    }

    /// A command that changes the tenant, with these scopes.
    pub const fn writing(scopes: &'a [&'a str]) -> Self {
        Needs {
            max_rate: None,
            writes: true,
            scopes,
        }
    }
}

pub async fn connect(ctx: &Context, needs: Needs<'_>) -> Result<Connected, CliError> {
    let env = ctx.env();
    let target = if ctx.sim {
        Target::Embedded
    } else {
        config::target(&ctx.config, env)?
    };
    let connected = match target {
        Target::Tenant(mut settings) => {
            if needs.max_rate.is_some() {
                settings.max_rate = needs.max_rate;
            }
            Connected {
                client: cxone::Client::new(*settings)?,
                sim: None,
            }
        }
        Target::Embedded => {
            if needs.writes && !ctx.sim {
                return Err(CliError::config(format!(
                    "tenant.base_url: no tenant is configured, and this command changes the tenant; set {} (or [tenant] base_url in cxguard.toml), or pass --sim to run it against the embedded emulator",
                    config::ENV_BASE_URL
                )));
            }
            if !ctx.sim {
                // Not behind --quiet: a script must not mistake the emulator for its tenant.
                eprintln!(
                    "notice: no tenant configured (set {} or [tenant] base_url in cxguard.toml); reading the embedded emulator",
                    config::ENV_BASE_URL
                );
            }
            let sim = cxone_sim::Sim::start(cxone_sim::SimConfig::default()).await?;
            let creds = sim.credentials();
            let grant = cxone::Grant::ClientCredentials {
                client_id: creds.client_id.clone(),
                client_secret: creds.client_secret.clone().into(),
            };
            let mut settings = cxone::Settings::new(&sim.base_url(), grant)?;
            settings.max_rate = needs.max_rate;
            Connected {
                client: cxone::Client::new(settings)?,
                sim: Some(sim),
            }
        }
    };
    // On CXone's published API roles grant, not OAuth scopes: the token lists none a
    // command could be checked against, and each request's 403 speaks instead.
    if !needs.scopes.is_empty() && !connected.client.settings().is_cxone() {
        connected.client.require_scopes(needs.scopes).await?;
    }
    Ok(connected)
}

/// Connects for a command whose API only CXone publishes (`what`, e.g. "data
/// policies"): refused with exit 78 unless the tenant speaks it.
pub async fn connect_cxone(
    ctx: &Context,
    needs: Needs<'_>,
    what: &str,
) -> Result<Connected, CliError> {
    let target = connect(ctx, needs).await?;
    if !target.client.settings().is_cxone() {
        return Err(CliError::config(format!(
            "tenant.api: {what} are CXone's published API; set [tenant] api = \"cxone\""
        )));
    }
    Ok(target)
}
