//! `cxguard serve`: the guest-identity HTTP service (see the `server` crate), until
//! SIGTERM or Ctrl-C, which stop accepting and let in-flight requests finish.

use clap::Args;

use crate::config;
use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::store::{self, Access};
use crate::tenant;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (default: [server] listen, else 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

pub async fn run(ctx: &Context, args: ServeArgs) -> Result<Exit, CliError> {
    let env = ctx.env();
    // Everything is validated before anything starts.
    let settings = config::server_settings(&ctx.config)?;
    let identity = config::identity(&ctx.config, env)?;
    let subjects = subjects_config(ctx)?;
    let listen = args
        .listen
        .or(settings.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    listen.parse::<std::net::SocketAddr>().map_err(|_| {
        CliError::usage(format!(
            "--listen: {listen:?} is not an address such as 127.0.0.1:8080 or 0.0.0.0:8080"
        ))
    })?;
    let scopes = scopes(subjects.as_ref());
    let target = tenant::connect(ctx, tenant::Needs::writing(&scopes)).await?;
    // The client's retries end within the caller's deadline, so a caller gets the 502
    // of exhausted retries rather than a request cut off in flight.
    let mut upstream = target.client.settings().clone();
    upstream.retry.deadline = upstream.retry.deadline.min(settings.upstream_deadline);
    let client = cxone::Client::new(upstream)?;
    let ledger = store::open(ctx, Access::Write).await?;
    // Erasures anonymize contacts, whose consent events go to the outbox: deliver them
    // while serving.
    let deliverer = match &subjects {
        Some(_) => Some(store::start_delivery(ctx, &ledger)?),
        None => None,
    };
    let server = server::Server::bind(
        &listen,
        server::Config {
            identity,
            client,
            ledger,
            api_keys: settings.api_keys,
            kms_tokens: settings.kms_tokens,
            rate: settings.rate,
            upstream_deadline: settings.upstream_deadline,
            drain: settings.drain,
            limits: settings.limits,
            subjects,
        },
    )
    .await?;
    let addr = server.local_addr();
    tracing::info!(listen = %addr, "serving");
    ctx.note(format!(
        "cxguard serve: listening on http://{addr} (SIGTERM or Ctrl-C drains and stops)"
    ));
    server.run(shutdown_signal()).await?;
    if let Some(d) = deliverer {
        d.stop().await;
    }
    tracing::info!("stopped");
    drop(target);
    Ok(Exit::Ok)
}

/// `[subjects]`: the erasure queue's policy and settings, when it is configured.
fn subjects_config(ctx: &Context) -> Result<Option<server::SubjectsConfig>, CliError> {
    Ok(match config::subjects_settings(&ctx.config)? {
        Some(s) => Some(server::SubjectsConfig {
            policy: crate::commands::subject::read_erase_policy(
                ctx,
                &s.policy,
                crate::surface::speaks_cxone(ctx),
            )
            .map_err(|e| CliError::config(format!("subjects.policy: {}", e.message)))?,
            queue: s.queue,
            platform_erasure: s.platform_erasure,
            page_size: s.page_size,
            concurrency: s.concurrency,
        }),
        None => None,
    })
}

/// The scopes the service's token needs. Subject erasure needs more: contacts, and the
/// platform erasure unless the privacy team files it apart.
fn scopes(subjects: Option<&server::SubjectsConfig>) -> Vec<&'static str> {
    let mut scopes: Vec<&str> = guard::identity::SCOPES.to_vec();
    if let Some(s) = subjects {
        let more = if s.platform_erasure {
            guard::subject::erase::SCOPES
        } else {
            guard::subject::erase::SCOPES_WITHOUT_PLATFORM
        };
        scopes.extend(
            more.iter()
                .filter(|m| !scopes.contains(m))
                .collect::<Vec<_>>(),
        );
    }
    scopes
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown signal: draining in-flight requests");
}
