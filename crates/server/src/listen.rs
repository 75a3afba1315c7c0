//! The connection loop: accepts TCP connections up to a cap and serves HTTP/1.1 on each
//! with the limits a service facing the network needs and `axum::serve` does not set:
//! a deadline for a request's headers (which also closes idle keep-alive connections),
//! a longest connection age, and a cap on connections at once. The whole-request
//! deadline and the per-address limits live in [`crate::guards`], as middleware.
//!
//! On shutdown it stops accepting, asks every connection to finish its request in flight
//! and close, and returns when all have.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_service::Service;

/// What one connection and one request may take.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A request's line and headers must arrive within this (idle keep-alive
    /// connections are closed after it too).
    pub header_read_timeout: Duration,
    /// A whole request, body and handler included, must finish within this; then 408
    /// (or 504 when the handler was still waiting on the tenant).
    pub request_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Keep connections open between requests.
    pub keep_alive: bool,
    /// A connection is closed (after its request in flight) once this old.
    pub max_connection_age: Duration,
    /// `/metrics` and `/readyz` requests per second per client address (burst twice).
    pub ops_rate_per_ip: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            keep_alive: true,
            max_connection_age: Duration::from_secs(300),
            ops_rate_per_ip: 10,
        }
    }
}

impl Limits {
    /// Checks every limit, naming the `[server]` setting at fault.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("header_read_timeout_secs", self.header_read_timeout),
            ("request_timeout_secs", self.request_timeout),
            ("max_connection_age_secs", self.max_connection_age),
        ];
        for (name, d) in positive {
            if d.is_zero() {
                return Err(format!("{name}: must be more than 0"));
            }
        }
        if self.max_connections == 0 || self.max_connections > u32::MAX as usize / 2 {
            return Err(format!(
                "max_connections: {} is not from 1 to {}",
                self.max_connections,
                u32::MAX / 2
            ));
        }
        if self.ops_rate_per_ip == 0 {
            return Err("ops_rate_per_ip: must be at least 1".into());
        }
        Ok(())
    }
}

/// Serves `router` on `listener` until `shutdown` resolves and every connection closed.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let mut stop = stop_rx.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let _slot = permit;
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                router.clone().call(req)
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .keep_alive(limits.keep_alive)
                .max_buf_size(64 * 1024);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let old = tokio::time::sleep(limits.max_connection_age);
            tokio::pin!(old);
            let mut closing = false;
            loop {
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(%peer, error = %e, "connection closed");
                        }
                        break;
                    }
                    _ = stop.changed(), if !closing => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    _ = &mut old, if !closing => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(());
    // Every connection holds a slot until it closes: all slots back means all closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}
