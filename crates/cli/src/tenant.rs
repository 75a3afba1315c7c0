//! Connecting to the target: the configured tenant, or — when none is configured — the
//! embedded emulator, which the CLI says out loud.

use crate::Context;
use crate::config::{self, Target};
use crate::exit::CliError;

pub struct Connected {
    pub client: cxone::Client,
    /// Kept alive while the command runs when the target is the embedded emulator.
    pub sim: Option<cxone_sim::SimHandle>,
}

pub async fn connect(
    ctx: &Context,
    env: &dyn Fn(&str) -> Option<String>,
    max_rate: Option<u32>,
) -> Result<Connected, CliError> {
    match config::target(&ctx.config, env)? {
        Target::Tenant(mut settings) => {
            if max_rate.is_some() {
                settings.max_rate = max_rate;
            }
            Ok(Connected {
                client: cxone::Client::new(*settings)?,
                sim: None,
            })
        }
        Target::Embedded => {
            ctx.note(format!(
                "note: no tenant configured (set {} or [tenant] base_url in cxguard.toml); using the embedded emulator",
                config::ENV_BASE_URL
            ));
            let sim = cxone_sim::Sim::start(cxone_sim::SimConfig::default()).await?;
            let creds = sim.credentials();
            let grant = cxone::Grant::ClientCredentials {
                client_id: creds.client_id.clone(),
                client_secret: creds.client_secret.clone().into(),
            };
            let mut settings = cxone::Settings::new(&sim.base_url(), grant)?;
            settings.max_rate = max_rate;
            Ok(Connected {
                client: cxone::Client::new(settings)?,
                sim: Some(sim),
            })
        }
    }
}
