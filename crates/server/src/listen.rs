//! The connection loop: accepts TCP connections up to a cap and serves HTTP/1.1 on each
//! with the limits a service facing the network needs and `axum::serve` does not set:
//! a deadline for a request's headers (which also closes idle keep-alive connections),
//! a longest connection age, and a cap on connections at once. The whole-request
//! deadline and the per-address limits live in [`crate::guards`], as middleware.
//!
//! On shutdown it stops accepting, asks every connection to finish its request in flight
//! and close, and returns when all have.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
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

/// A connection accepted and handed to a lane, with its slot.
type Accepted = (std::net::TcpStream, SocketAddr, OwnedSemaphorePermit);

/// The lanes: a thread per core (at most 16, [`cxone::lanes`]), each running a runtime
/// of its own, on which it serves its connections wholly and calls the tenant through
/// its own connection pool ([`cxone::set_lane`]). A request, its upstream call and its
/// response stay on one thread, where work-stealing workers moved them between threads several
/// times a request. Built before serving so the audit writer can run on lane 0, where its
/// turns let that lane's requests join a commit (see `ledger::appender`).
pub(crate) struct Lanes {
    runtimes: Vec<Unstarted>,
    release: tokio::sync::watch::Receiver<bool>,
}

/// A lane's runtime until its thread takes it. Dropped before that (a server bound and
/// dropped, a lane whose thread could not be started, the lanes after it), it ends
/// without blocking: a plain drop of a runtime inside another one panics.
struct Unstarted(Option<tokio::runtime::Runtime>);

impl Drop for Unstarted {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Lets the lanes' runtimes end. A lane that stopped serving keeps running what was
/// spawned on it (a link whose caller hung up, the audit writer) until released: after
/// the writer committed everything, or after the second drain period.
pub(crate) struct Release(tokio::sync::watch::Sender<bool>);

impl Release {
    pub(crate) fn release(&self) {
        let _ = self.0.send(true);
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        self.release();
    }
}

impl Lanes {
    pub(crate) fn build() -> std::io::Result<(Self, Release)> {
        let runtimes = (0..cxone::lanes())
            .map(|_| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|r| Unstarted(Some(r)))
            })
            .collect::<std::io::Result<_>>()?;
        let (tx, release) = tokio::sync::watch::channel(false);
        Ok((Lanes { runtimes, release }, Release(tx)))
    }

    /// Lane 0's runtime: tasks spawned on it run once the lanes are serving.
    pub(crate) fn first(&self) -> &tokio::runtime::Handle {
        self.runtimes[0]
            .0
            .as_ref()
            .expect("a lane's runtime is taken only by its thread")
            .handle()
    }

    /// Starts each lane's thread.
    fn start(
        self,
        router: &Router,
        limits: &Limits,
        stop: &tokio::sync::watch::Receiver<()>,
    ) -> std::io::Result<Running> {
        let (abort, aborted) = tokio::sync::watch::channel(false);
        let mut queues = Vec::with_capacity(self.runtimes.len());
        for (lane, mut runtime) in self.runtimes.into_iter().enumerate() {
            let (tx, rx) = mpsc::unbounded_channel();
            let (router, limits, stop) = (router.clone(), limits.clone(), stop.clone());
            let aborted = aborted.clone();
            let mut release = self.release.clone();
            std::thread::Builder::new()
                .name(format!("serve-lane-{lane}"))
                .spawn(move || {
                    cxone::set_lane(lane);
                    let Some(runtime) = runtime.0.take() else {
                        return;
                    };
                    runtime.block_on(async move {
                        run_lane(rx, router, limits, stop, aborted).await;
                        let _ = release.wait_for(|r| *r).await;
                    });
                })?;
            queues.push(tx);
        }
        Ok(Running { queues, abort })
    }
}

/// The lanes serving. Dropped (once every connection closed, or when the drain time ran
/// out and the serve task was aborted), it tells them to drop what they still hold.
struct Running {
    queues: Vec<mpsc::UnboundedSender<Accepted>>,
    abort: tokio::sync::watch::Sender<bool>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.abort.send(true);
    }
}

/// Serves the connections a lane is handed until its queue closes and they all ended,
/// or until told to drop them.
async fn run_lane(
    mut queue: mpsc::UnboundedReceiver<Accepted>,
    router: Router,
    limits: Limits,
    stop: tokio::sync::watch::Receiver<()>,
    mut aborted: tokio::sync::watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    let mut open = true;
    loop {
        tokio::select! {
            accepted = queue.recv(), if open => match accepted {
                Some((stream, peer, slot)) => match tokio::net::TcpStream::from_std(stream) {
                    Ok(stream) => {
                        let (router, limits, stop) = (router.clone(), limits.clone(), stop.clone());
                        connections.spawn(connection(stream, peer, slot, router, limits, stop));
                    }
                    Err(e) => tracing::warn!(%peer, error = %e, "cannot serve a connection"),
                },
                None => open = false,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = aborted.wait_for(|a| *a) => return,
            else => return,
        }
    }
}

/// Serves HTTP/1.1 on one connection until it closes, the service stops, or it is too
/// old; its slot is freed when it ends.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    _slot: OwnedSemaphorePermit,
    router: Router,
    limits: Limits,
    mut stop: tokio::sync::watch::Receiver<()>,
) {
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
}

/// Serves `router` on `listener` until `shutdown` resolves and every connection closed.
pub(crate) async fn serve(
    listener: TcpListener,
    lanes: Lanes,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    let lanes = lanes.start(&router, &limits, &stop_rx)?;
    tokio::pin!(shutdown);
    let mut next = 0;
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
        // Round robin: the load rides on keep-alive connections, spread as they open.
        match stream.into_std() {
            Ok(stream) => {
                next = (next + 1) % lanes.queues.len();
                let _ = lanes.queues[next].send((stream, peer, permit));
            }
            Err(e) => tracing::warn!(%peer, error = %e, "cannot serve a connection"),
        }
    }
    drop(listener);
    let _ = stop_tx.send(());
    // Every connection holds a slot until it closes: all slots back means all closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
    drop(lanes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Lanes;

    /// A server bound and dropped without serving drops its lanes' runtimes inside the
    /// caller's runtime, where a plain drop of a runtime panics.
    #[tokio::test]
    async fn lanes_never_started_end_quietly_inside_a_runtime() {
        let (lanes, release) = Lanes::build().unwrap();
        // The audit writer is spawned on lane 0 before the lanes serve.
        drop(lanes.first().spawn(async {}));
        drop(lanes);
        drop(release);
    }
}
