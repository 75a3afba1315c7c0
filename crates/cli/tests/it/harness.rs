//! The one harness every CLI test that needs a tenant runs on: an emulator on its own
//! runtime, a temporary data directory (`CXGUARD_HOME`) and working directory, and the
//! `cxguard` binary run in them with the emulator's credentials and a clean `CXGUARD_*`
//! environment. A test adds what its command needs (files, variables) and reads the
//! outcome back (the emulator's control API, the ledger).

use std::path::PathBuf;
use std::process::{Command, Output};

pub struct Harness {
    pub rt: tokio::runtime::Runtime,
    pub sim: cxone_sim::SimHandle,
    /// `CXGUARD_HOME`: the ledger, keys and anchor live here.
    pub home: tempfile::TempDir,
    /// The working directory commands run in: config, policies, value files.
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Harness {
    /// An emulator started with `config`, and fresh directories.
    pub fn start(config: cxone_sim::SimConfig) -> Harness {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let sim = rt.block_on(cxone_sim::Sim::start(config)).unwrap();
        Harness {
            rt,
            sim,
            home: crate::tmp(),
            dir: crate::tmp(),
            env: Vec::new(),
        }
    }

    /// Sets `name` for every command this harness runs.
    pub fn env(mut self, name: &str, value: &str) -> Harness {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Writes `name` in the working directory, readable by its owner only (as value and
    /// key files must be), and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        p
    }

    /// `cxguard args…` in the working directory, pointed at the emulator.
    pub fn command(&self, args: &[&str]) -> Command {
        let c = self.sim.credentials();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cxguard"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("TMPDIR", self.dir.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("CXGUARD_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("CXGUARD_BASE_URL", self.sim.base_url())
            .env("CXGUARD_CLIENT_ID", &c.client_id)
            .env("CXGUARD_CLIENT_SECRET", &c.client_secret)
            .env("CXGUARD_HOME", self.home.path());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `cxguard args…` to the end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// A webhook receiver on this harness's runtime: its URL (path `/{path}`) and every
    /// JSON body it is sent, answered 200.
    pub fn receiver(
        &self,
        path: &str,
    ) -> (
        String,
        std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    ) {
        let got: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>> = Default::default();
        let g = got.clone();
        let route = format!("/{path}");
        let url = self.rt.block_on(async move {
            let app = axum::Router::new().route(
                &route,
                axum::routing::post(move |body: axum::body::Bytes| {
                    let g = g.clone();
                    async move {
                        if let Ok(v) = serde_json::from_slice(&body) {
                            g.lock().unwrap().push(v);
                        }
                        axum::http::StatusCode::OK
                    }
                }),
            );
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
            format!("http://{addr}{route}")
        });
        (url, got)
    }

    /// The ledger the commands wrote, opened read-only.
    pub fn ledger(&self) -> ledger::Ledger {
        let url = format!(
            "sqlite://{}",
            self.home.path().join("ledger.sqlite").display()
        );
        self.rt
            .block_on(ledger::Ledger::open(&url, ledger::KeySource::None))
            .unwrap()
    }

    /// The audit entries of `op` (an operation, or a prefix ending in `*`).
    pub fn ledger_entries(&self, op: &str) -> Vec<ledger::AuditEntry> {
        let l = self.ledger();
        self.rt
            .block_on(l.entries(&ledger::Filter {
                operation: Some(op.into()),
                ..Default::default()
            }))
            .unwrap()
    }

    /// Every byte of the ledger (database and write-ahead log), lowercased, to search
    /// for what must never be in it.
    pub fn ledger_bytes(&self) -> String {
        let mut all = Vec::new();
        for f in ["ledger.sqlite", "ledger.sqlite-wal"] {
            all.extend(std::fs::read(self.home.path().join(f)).unwrap_or_default());
        }
        String::from_utf8_lossy(&all).to_lowercase()
    }
}
