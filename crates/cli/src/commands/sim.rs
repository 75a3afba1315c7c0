//! `cxguard sim`: the emulator stand-alone, printing how to reach it and its demo
//! credentials (emulator-only values derived from the seed), until Ctrl-C.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Args;
use serde_json::json;

use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::{Output, print_json};

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address to listen on. The control API has no authentication: keep it on loopback.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8787)]
    pub port: u16,
    /// Seed of the deterministic tenant: same seed, same data and credentials.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of contacts (at most 1,000,000).
    #[arg(long, default_value_t = 1000)]
    pub contacts: u32,
    /// Number of web-messaging guests.
    #[arg(long, default_value_t = 50)]
    pub guests: u32,
    /// Tenant rate limit in requests/s (default: none).
    #[arg(long, value_name = "PER_SEC")]
    pub rate_limit: Option<u32>,
    /// Webchat rate limit in requests/s (default: 10, or the tenant limit if lower).
    #[arg(long, value_name = "PER_SEC")]
    pub webchat_rate_limit: Option<u32>,
    /// Share of API requests answered 500/503 before any change (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// Share of API requests whose connection is reset after the change (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub reset_rate: f64,
    /// Retry-After seconds on injected 503s (default: none sent).
    #[arg(long, value_name = "SECS")]
    pub fault_retry_after: Option<u64>,
    /// Latency added to every response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Lifetime of access tokens, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub token_ttl: u64,
    /// Serve the token endpoint at this path only (e.g. /auth/token), as a tenant with
    /// its own token URL does; discovery names it.
    #[arg(long, value_name = "PATH")]
    pub token_path: Option<String>,
    /// Multiply CXone's published DFO budgets (120,000 reads an hour) by this factor on
    /// the real surface; small values make the 429s (without Retry-After) come early.
    #[arg(long, default_value_t = 1.0, value_name = "FACTOR")]
    pub dfo_budget_scale: f64,
}

impl SimArgs {
    pub fn to_config(&self) -> cxone_sim::SimConfig {
        let webchat = match (self.webchat_rate_limit, self.rate_limit) {
            (Some(w), _) => Some(w),
            (None, Some(t)) => Some(t.min(10)),
            (None, None) => Some(10),
        };
        cxone_sim::SimConfig {
            seed: self.seed,
            contacts: self.contacts,
            guests: self.guests,
            rate_limit: self.rate_limit,
            webchat_rate_limit: webchat,
            fault_rate: self.fault_rate,
            reset_rate: self.reset_rate,
            fault_retry_after: self.fault_retry_after,
            latency: Duration::from_millis(self.latency_ms),
            token_ttl: Duration::from_secs(self.token_ttl),
            bind: SocketAddr::new(self.bind, self.port),
            token_path: self.token_path.clone(),
            dfo_budget_scale: self.dfo_budget_scale,
        }
    }
}

pub async fn run(ctx: &Context, args: SimArgs) -> Result<Exit, CliError> {
    let config = args.to_config();
    config.validate()?;
    if !args.bind.is_loopback() {
        ctx.note(format!(
            "warning: binding {} exposes the unauthenticated control API beyond this machine",
            args.bind
        ));
    }
    let sim = cxone_sim::Sim::start(config.clone()).await?;
    let c = sim.credentials().clone();
    let base = sim.base_url();
    match ctx.output {
        Output::Json => print_json(&json!({
            "baseUrl": base,
            "tokenUrl": sim.token_url(),
            "controlUrl": format!("{base}/_control/state"),
            "seed": args.seed,
            "contacts": args.contacts,
            "guests": args.guests,
            "rateLimit": config.rate_limit,
            "webchatRateLimit": config.webchat_rate_limit,
            "credentials": {
                "clientId": c.client_id, "clientSecret": c.client_secret,
                "readonlyClientId": c.readonly_client_id, "readonlyClientSecret": c.readonly_client_secret,
                "appClientId": c.app_client_id, "appClientSecret": c.app_client_secret,
                "accessKeyId": c.access_key_id, "accessKeySecret": c.access_key_secret,
            },
            "cxone": {
                "issuer": sim.cxone_issuer(),
                "clientId": c.cxone_client_id, "clientSecret": c.cxone_client_secret,
                "accessKeyId": c.cxone_access_key_id, "accessKeySecret": c.cxone_access_key_secret,
            },
        })),
        Output::Text => print_text(&sim, &args, &config),
    }
    sim.serve_until_ctrl_c().await;
    Ok(Exit::Ok)
}

/// Where the emulator listens, its settings, both surfaces' demo credentials, and how to
/// point cxguard at it.
fn print_text(sim: &cxone_sim::SimHandle, args: &SimArgs, config: &cxone_sim::SimConfig) {
    let c = sim.credentials();
    let base = sim.base_url();
    let limit = |l: Option<u32>| l.map_or("none".to_string(), |v| format!("{v}/s"));
    println!("cxone-sim listening on {base}");
    println!(
        "  seed {}, {} contacts, {} guests; rate limit {}, webchat {}; faults {}, resets {}, latency {} ms, token TTL {} s",
        args.seed,
        args.contacts,
        args.guests,
        limit(config.rate_limit),
        limit(config.webchat_rate_limit),
        args.fault_rate,
        args.reset_rate,
        args.latency_ms,
        args.token_ttl
    );
    println!("  token URL    {}", sim.token_url());
    println!("  control API  {base}/_control/state");
    println!();
    println!("Demo credentials (emulator only, derived from the seed):");
    println!(
        "  client credentials  {} / {}",
        c.client_id, c.client_secret
    );
    println!(
        "  read-only client    {} / {}",
        c.readonly_client_id, c.readonly_client_secret
    );
    println!(
        "  access key grant    app {} / {}, key {} / {}",
        c.app_client_id, c.app_client_secret, c.access_key_id, c.access_key_secret
    );
    println!();
    println!(
        "CXone's published API (api = \"cxone\"), issuer {}:",
        sim.cxone_issuer()
    );
    println!(
        "  registered app      {} / {}",
        c.cxone_client_id, c.cxone_client_secret
    );
    println!(
        "  access key          {} / {}",
        c.cxone_access_key_id, c.cxone_access_key_secret
    );
    println!();
    println!("Point cxguard at it (the tutorials' routes):");
    println!(
        "  export CXGUARD_BASE_URL={base} CXGUARD_CLIENT_ID={} CXGUARD_CLIENT_SECRET={}",
        c.client_id, c.client_secret
    );
    println!("or at CXone's published API, in cxguard.toml:");
    println!(
        "  [tenant]\n  api = \"cxone\"\n  issuer = \"{}\"\n  client_id = \"{}\"\n  access_key_file = \"access-key.json\"   # {{\"accessKeyId\", \"accessKeySecret\"}}, mode 0600",
        sim.cxone_issuer(),
        c.cxone_client_id
    );
    println!("  and CXGUARD_CLIENT_SECRET={}", c.cxone_client_secret);
    println!();
    println!("Press Ctrl-C to stop.");
}
