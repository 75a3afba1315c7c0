//! The hardening a user relies on from the command line: no silent switch to the
//! emulator, scopes checked before any call, endpoints used exactly as configured, and an
//! audit log whose rollback or deletion `audit verify` catches.

use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;

use crate::{cxguard, stderr, stdout, tmp};

const POLICY: &str = r#"[keys]
k = { id = "hardening-key", env = "HARDENING_KEY" }
[fields]
firstName = { op = "erase" }
email = { op = "pseudonymize", key = "k" }
"#;

fn key() -> String {
    base64::engine::general_purpose::STANDARD.encode([5u8; 32])
}

/// A policy and an ids file in `dir`.
fn inputs(dir: &Path, ids: &[&str]) {
    std::fs::write(dir.join("policy.toml"), POLICY).unwrap();
    std::fs::write(dir.join("ids.txt"), ids.join("\n") + "\n").unwrap();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_write_command_without_a_tenant_exits_78_unless_sim_is_asked_for() {
    let dir = tmp();
    let home = tmp();
    inputs(dir.path(), &["c-0000001"]);
    let home_s = home.path().to_str().unwrap();
    let env = [("CXGUARD_HOME", home_s), ("HARDENING_KEY", &key())];
    let args = [
        "contacts",
        "anonymize",
        "--policy",
        "policy.toml",
        "--ids",
        "ids.txt",
    ];
    let o = cxguard(&args, &env, dir.path());
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("tenant.base_url") && e.contains("--sim"), "{e}");
    assert!(
        !home.path().join("ledger.sqlite").exists(),
        "nothing was written"
    );

    let mut with_sim = args.to_vec();
    with_sim.push("--sim");
    let o = cxguard(&with_sim, &env, dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // A read-only command falls back, and says so even with -q.
    let o = cxguard(
        &["-q", "secrets", "due", "--max-age", "90d"],
        &env,
        dir.path(),
    );
    assert!(
        stderr(&o).contains("notice: no tenant configured"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn missing_scopes_exit_77_before_any_request() {
    let rt = runtime();
    let sim = rt
        .block_on(cxone_sim::Sim::start(cxone_sim::SimConfig {
            contacts: 20,
            ..Default::default()
        }))
        .unwrap();
    let dir = tmp();
    let home = tmp();
    inputs(dir.path(), &["c-0000001"]);
    let c = sim.credentials();
    let base = sim.base_url();
    let o = cxguard(
        &["contacts", "anonymize", "--policy", "policy.toml", "--all"],
        &[
            ("CXGUARD_HOME", home.path().to_str().unwrap()),
            ("HARDENING_KEY", &key()),
            ("CXGUARD_BASE_URL", &base),
            ("CXGUARD_CLIENT_ID", &c.readonly_client_id),
            ("CXGUARD_CLIENT_SECRET", &c.readonly_client_secret),
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(77), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("contact:write"), "{e}");
    assert_eq!(e.lines().count(), 1, "one line, not one per contact: {e}");
    let control = sim.control();
    assert_eq!(control.route_hits("GET /api/v1/contacts"), 0);
    assert_eq!(control.route_hits("PATCH /api/v1/contacts/{id}"), 0);
}

#[test]
fn a_token_url_is_requested_exactly_as_configured() {
    let rt = runtime();
    let sim = rt
        .block_on(cxone_sim::Sim::start(cxone_sim::SimConfig {
            contacts: 5,
            token_path: Some("/auth/token".into()),
            ..Default::default()
        }))
        .unwrap();
    let dir = tmp();
    let c = sim.credentials();
    let base = sim.base_url();
    let token_url = sim.token_url();
    let env = |t: &str| {
        vec![
            ("CXGUARD_BASE_URL".to_string(), base.clone()),
            ("CXGUARD_CLIENT_ID".to_string(), c.client_id.clone()),
            ("CXGUARD_CLIENT_SECRET".to_string(), c.client_secret.clone()),
            ("CXGUARD_TOKEN_URL".to_string(), t.to_string()),
        ]
    };
    let run = |t: &str| {
        let e = env(t);
        let pairs: Vec<(&str, &str)> = e.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        cxguard(&["secrets", "list"], &pairs, dir.path())
    };
    let o = run(&token_url);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(sim.control().token_requests_total(), 1);
    // The issuer's discovery document names the same endpoint.
    std::fs::write(
        dir.path().join("cxguard.toml"),
        format!("[tenant]\nissuer = \"{base}\"\n"),
    )
    .unwrap();
    let pairs = [
        ("CXGUARD_BASE_URL", base.as_str()),
        ("CXGUARD_CLIENT_ID", c.client_id.as_str()),
        ("CXGUARD_CLIENT_SECRET", c.client_secret.as_str()),
    ];
    let o = cxguard(&["secrets", "list"], &pairs, dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(sim.control().token_requests_total(), 2);
}

/// A forward HTTP proxy on `rt`: it relays each connection, bytes unchanged, to the host
/// its first request names, and logs every request line a client sends through it
/// (several per connection once the client keeps it alive).
fn forward_proxy(rt: &tokio::runtime::Runtime) -> (String, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let seen: Arc<Mutex<Vec<String>>> = Default::default();
    let log = seen.clone();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let (mut from_client, to_client) = client.into_split();
                let mut to_client = Some(to_client);
                let mut upstream: Option<tokio::net::tcp::OwnedWriteHalf> = None;
                // Bytes not yet split into lines; request lines are logged as they pass.
                let mut pending: Vec<u8> = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = match from_client.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(end) = pending.windows(2).position(|w| w == b"\r\n") {
                        let line = String::from_utf8_lossy(&pending[..end]).into_owned();
                        pending.drain(..end + 2);
                        // `GET http://127.0.0.1:PORT/api/… HTTP/1.1`: absolute form, as a
                        // client speaks to a proxy.
                        let target = line.split_whitespace().nth(1).unwrap_or("");
                        if let Some(rest) = target.strip_prefix("http://") {
                            log.lock().unwrap().push(line.clone());
                            // One upstream per connection, as a keep-alive client to one
                            // host needs.
                            if let Some(mut back) = to_client.take() {
                                let authority = rest.split('/').next().unwrap_or("");
                                let Ok(up) = tokio::net::TcpStream::connect(authority).await else {
                                    return;
                                };
                                let (mut up_read, up_write) = up.into_split();
                                tokio::spawn(async move {
                                    let _ = tokio::io::copy(&mut up_read, &mut back).await;
                                });
                                upstream = Some(up_write);
                            }
                        }
                    }
                    if let Some(up) = upstream.as_mut()
                        && up.write_all(&buf[..n]).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), seen)
}

#[test]
fn a_proxy_named_in_the_environment_carries_every_request() {
    let rt = runtime();
    let sim = rt
        .block_on(cxone_sim::Sim::start(cxone_sim::SimConfig::default()))
        .unwrap();
    let (proxy, seen) = forward_proxy(&rt);
    let dir = tmp();
    let c = sim.credentials();
    let base = sim.base_url();
    let mut env = vec![
        ("CXGUARD_BASE_URL", base.as_str()),
        ("CXGUARD_CLIENT_ID", c.client_id.as_str()),
        ("CXGUARD_CLIENT_SECRET", c.client_secret.as_str()),
        ("NO_PROXY", ""),
        ("no_proxy", ""),
    ];
    let o = cxguard(&["secrets", "list"], &env, dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(seen.lock().unwrap().is_empty(), "no proxy named, none used");
    env.push(("HTTP_PROXY", proxy.as_str()));
    let o = cxguard(&["secrets", "list"], &env, dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let lines = seen.lock().unwrap().clone();
    let via = |what: &str| lines.iter().any(|l| l.contains(what));
    assert!(via(&format!("POST {} ", sim.token_url())), "{lines:?}");
    assert!(
        via(&format!("GET {}/api/", base.trim_end_matches('/'))),
        "{lines:?}"
    );
    // Excluded by NO_PROXY: sent directly again.
    let n = lines.len();
    let host = base
        .trim_start_matches("http://")
        .split(':')
        .next()
        .unwrap()
        .to_string();
    env[3] = ("NO_PROXY", host.as_str());
    let o = cxguard(&["secrets", "list"], &env, dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        seen.lock().unwrap().len(),
        n,
        "NO_PROXY excludes the tenant"
    );
    // A proxy that refuses is named as the cause, without its credentials.
    env[3] = ("NO_PROXY", "");
    let last = env.len() - 1;
    env[last] = ("HTTP_PROXY", "http://user:pw-in-proxy-url@127.0.0.1:1");
    let o = cxguard(&["secrets", "list"], &env, dir.path());
    assert_eq!(o.status.code(), Some(69), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("through the proxy http://127.0.0.1:1"), "{e}");
    assert!(!e.contains("pw-in-proxy-url"), "{e}");
}

/// Runs an anonymize job on the embedded emulator, with the ledger in `home`'s `sim/`
/// (a rehearsal's own ledger).
fn job(dir: &Path, home: &Path, ids: &[&str]) {
    inputs(dir, ids);
    let o = cxguard(
        &[
            "--sim",
            "contacts",
            "anonymize",
            "--policy",
            "policy.toml",
            "--ids",
            "ids.txt",
        ],
        &[
            ("CXGUARD_HOME", home.to_str().unwrap()),
            ("HARDENING_KEY", &key()),
        ],
        dir,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Verifies the ledger `job` wrote: a `--sim` rehearsal's own, under `sim/`.
fn verify(dir: &Path, home: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--sim", "audit", "verify"];
    args.extend_from_slice(extra);
    cxguard(&args, &[("CXGUARD_HOME", home.to_str().unwrap())], dir)
}

#[test]
fn a_ledger_put_back_from_an_older_copy_fails_verification() {
    let dir = tmp();
    let home = tmp();
    job(dir.path(), home.path(), &["c-0000001", "c-0000002"]);
    let ledger = home.path().join("sim/ledger.sqlite");
    let anchor = home.path().join("sim/audit-anchor.json");
    assert!(anchor.exists(), "the job's checkpoint wrote the anchor");
    let o = verify(dir.path(), home.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let head = stdout(&o)
        .lines()
        .find_map(|l| l.strip_prefix("head: ").map(str::to_string))
        .expect("verify prints the head");
    let old_seq: i64 = head.split(':').next().unwrap().parse().unwrap();

    let copy = dir.path().join("ledger.copy");
    std::fs::copy(&ledger, &copy).unwrap();
    job(dir.path(), home.path(), &["c-0000003"]);
    // The saved head is still in the longer ledger.
    let o = verify(dir.path(), home.path(), &["--expect-head", &head]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    std::fs::copy(&copy, &ledger).unwrap();
    for ext in ["sqlite-wal", "sqlite-shm"] {
        let _ = std::fs::remove_file(home.path().join(format!("sim/ledger.{ext}")));
    }
    let o = verify(dir.path(), home.path(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    let new_seq: i64 = {
        let a: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&anchor).unwrap()).unwrap();
        a["seq"].as_i64().unwrap()
    };
    assert!(new_seq > old_seq);
    assert!(
        out.contains("audit-anchor.json")
            && out.contains(&format!("ends at entry {old_seq}"))
            && out.contains(&format!("records entry {new_seq}")),
        "{out}"
    );
    // Regression (trust review, item 4): report, status and doctor used the chain check
    // without the anchor, and called this ledger intact. Each says broken now, naming
    // both sequence numbers.
    let names_both = |text: &str| {
        text.contains(&format!("ends at entry {old_seq}"))
            && text.contains(&format!("records entry {new_seq}"))
    };
    let env = [("CXGUARD_HOME", home.path().to_str().unwrap())];
    let o = cxguard(&["--sim", "status"], &env, dir.path());
    assert_eq!(o.status.code(), Some(1), "status: {}", stdout(&o));
    assert!(
        stdout(&o).contains("BROKEN") && names_both(&stdout(&o)),
        "status: {}",
        stdout(&o)
    );
    let o = cxguard(&["--sim", "doctor"], &env, dir.path());
    assert_ne!(o.status.code(), Some(0), "doctor: {}", stdout(&o));
    assert!(
        names_both(&stdout(&o)) && stdout(&o).contains("broken"),
        "doctor: {}",
        stdout(&o)
    );
    let report = dir.path().join("report.json");
    let o = cxguard(
        &[
            "--sim",
            "report",
            "--format",
            "json",
            "--out",
            report.to_str().unwrap(),
        ],
        &env,
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(0), "report: {}", stderr(&o));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["audit"]["intact"], false, "report: {}", r["audit"]);
    assert!(
        names_both(r["audit"]["broken"].as_str().unwrap_or_default()),
        "report: {}",
        r["audit"]
    );

    // Without the anchor, an auditor's saved head still catches it.
    let later = format!("{new_seq}:{}", "0".repeat(64));
    std::fs::remove_file(&anchor).unwrap();
    let o = verify(dir.path(), home.path(), &["--expect-head", &later]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("--expect-head"), "{}", stdout(&o));
}

#[test]
fn a_deleted_ledger_fails_verification_and_is_not_recreated() {
    let dir = tmp();
    let home = tmp();
    job(dir.path(), home.path(), &["c-0000001"]);
    let ledger = home.path().join("sim/ledger.sqlite");
    std::fs::remove_file(&ledger).unwrap();
    for ext in ["sqlite-wal", "sqlite-shm"] {
        let _ = std::fs::remove_file(home.path().join(format!("sim/ledger.{ext}")));
    }
    let o = verify(dir.path(), home.path(), &[]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("no ledger"), "{}", stderr(&o));
    assert!(!ledger.exists(), "verify created a ledger");
}

#[cfg(unix)]
#[test]
fn the_ledger_and_its_directory_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tmp();
    let parent = tmp();
    let home = parent.path().join("new-home");
    job(dir.path(), &home, &["c-0000001"]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&home), 0o700);
    let data = home.join("sim");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("ledger.sqlite")), 0o600);
    assert_eq!(mode(&data.join("audit-anchor.json")), 0o600);
    assert_eq!(mode(&data.join("audit-signing.key")), 0o600);
}

/// A tenant answering a token that never expires and a 429 asking to wait for ever.
#[test]
fn absurd_numbers_from_a_tenant_end_the_command_quickly_naming_them() {
    use axum::http::{StatusCode, header};
    let rt = runtime();
    let base = rt.block_on(async {
        let app = axum::Router::new()
            .route(
                "/oauth/token",
                axum::routing::post(|| async {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        r#"{"access_token":"t","token_type":"Bearer","expires_in":18446744073709551615}"#,
                    )
                }),
            )
            .fallback(|| async {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, "18446744073709551615")],
                    "{}",
                )
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}")
    });
    let dir = tmp();
    let start = std::time::Instant::now();
    let o = cxguard(
        &["secrets", "list"],
        &[
            ("CXGUARD_BASE_URL", &base),
            ("CXGUARD_CLIENT_ID", "id"),
            ("CXGUARD_CLIENT_SECRET", "s"),
        ],
        dir.path(),
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    assert_ne!(o.status.code(), Some(101), "a panic: {}", stderr(&o));
    assert_eq!(o.status.code(), Some(69), "{}", stderr(&o));
    assert!(stderr(&o).contains("Retry-After"), "{}", stderr(&o));
}

/// cxguard caps glibc's malloc arenas at two by starting itself again with
/// `MALLOC_ARENA_MAX=2` (the memory target of issue 16); a value the operator set wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_process_runs_with_two_malloc_arenas_unless_told_otherwise() {
    use std::io::BufRead as _;
    let environ_of = |set: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cxguard"));
        cmd.args(["sim", "--port", "0", "--contacts", "10"])
            .env_remove("MALLOC_ARENA_MAX")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        if let Some(v) = set {
            cmd.env("MALLOC_ARENA_MAX", v);
        }
        let mut child = cmd.spawn().unwrap();
        // Once it has printed its URL, it is the program that serves.
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let environ = std::fs::read(format!("/proc/{}/environ", child.id())).unwrap();
        child.kill().ok();
        child.wait().ok();
        assert!(first.contains("listening"), "{first}");
        environ
            .split(|b| *b == 0)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .filter_map(|v| v.strip_prefix("MALLOC_ARENA_MAX="))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(environ_of(None), ["2"]);
    assert_eq!(environ_of(Some("8")), ["8"]);
}
