//! `cxguard demo`: a walk-through against the embedded emulator. It starts the emulator
//! in-process, authenticates as a real client would, and shows the tenant's inventory.
//! Later protections add their steps here.

use clap::Args;
use serde_json::json;

use super::inventory::{self, Inventory};
use crate::Context;
use crate::exit::{CliError, Exit};
use crate::output::{Output, print_json};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Seed of the demo tenant.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Contacts in the demo tenant.
    #[arg(long, default_value_t = 1000)]
    pub contacts: u32,
}

pub async fn run(ctx: &Context, args: DemoArgs) -> Result<Exit, CliError> {
    let config = cxone_sim::SimConfig {
        seed: args.seed,
        contacts: args.contacts,
        ..Default::default()
    };
    let sim = cxone_sim::Sim::start(config).await?;
    ctx.note(format!(
        "cxguard demo: running against the embedded CXone emulator at {} (nothing leaves this machine)",
        sim.base_url()
    ));
    let creds = sim.credentials();
    let grant = cxone::Grant::ClientCredentials {
        client_id: creds.client_id.clone(),
        client_secret: creds.client_secret.clone().into(),
    };
    let settings = cxone::Settings::new(&sim.base_url(), grant)?;
    let client = cxone::Client::new(settings)?;

    ctx.note("step 1/2: authenticate with OAuth client credentials");
    client.authenticate().await?;

    ctx.note("step 2/2: take an inventory of the tenant");
    let tables = vec![(
        "ds-customer".to_string(),
        "tbl-customer-profiles".to_string(),
    )];
    let mut inv: Inventory = inventory::gather(&client, &tables, u64::from(args.contacts)).await?;
    // The CXone API cannot list guests; the emulator's control API can.
    inv.guests = sim.control().state()["counts"]["guests"].as_u64();
    inv.target = inventory::TargetInfo {
        kind: "embedded-emulator",
        base_url: sim.base_url(),
    };

    match ctx.output {
        Output::Json => print_json(
            &json!({"demo": {"seed": args.seed}, "inventory": inv, "client": client.stats()}),
        ),
        Output::Text => {
            inventory::print_text(&inv);
            let s = client.stats();
            println!();
            println!(
                "client: {} API requests, {} token request(s), {} retries, {} rate-limited",
                s.requests, s.token_requests, s.retries, s.rate_limited
            );
        }
    }
    sim.stop().await;
    Ok(Exit::Ok)
}
