//! Posture as code on `api = "cxone"`: `[access_keys]` planned, saved, applied and
//! planned again against the emulator's real surface, the tutorials' sections refused,
//! and a delivery to OpenBao over TLS with `[vault] ca_file`.

use crate::cxone_api::real;
use crate::harness::Harness;
use crate::openbao::{bao_api, bao_tls, with_vault};
use crate::{stderr, stdout};

/// The keys as `accesskeys list --output json` shows them.
fn keys(h: &Harness) -> Vec<serde_json::Value> {
    let o = h.run(&["--output", "json", "accesskeys", "list"]);
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    v["keys"].as_array().unwrap().clone()
}

fn active(h: &Harness, id: &str) -> bool {
    keys(h).iter().any(|k| k["id"] == id && k["active"] == true)
}

/// The emulator's seeded keys, sorted for the posture below: the one to deactivate
/// (unused 120 days), one to rotate per user (their first active, used key), and the
/// rest (the demo's own key, other used keys of a user) left unmanaged.
struct Seeded {
    unused: String,
    rotate: Vec<(String, String)>,
    unmanaged: Vec<String>,
}

fn seeded(h: &Harness) -> Seeded {
    let own = h.sim.credentials().cxone_access_key_id.clone();
    let now = time::OffsetDateTime::now_utc();
    let mut s = Seeded {
        unused: String::new(),
        rotate: Vec::new(),
        unmanaged: vec![own.clone()],
    };
    for k in keys(h) {
        let id = k["id"].as_str().unwrap().to_string();
        let user = k["userId"].as_str().unwrap().to_string();
        let used = k["lastUsed"].as_str().map(|t| {
            (now - time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .unwrap())
            .whole_days()
        });
        if id == own || k["active"] != true || used.is_none() {
            continue;
        }
        if used.unwrap() >= 100 {
            s.unused = id;
        } else if s.rotate.iter().any(|(_, u)| *u == user) {
            s.unmanaged.push(id);
        } else {
            s.rotate.push((id, user));
        }
    }
    s
}

#[test]
fn access_keys_in_the_posture_are_planned_signed_applied_and_then_unchanged() {
    let h = real(cxone_sim::SimConfig::default());
    let s = seeded(&h);
    assert!(
        !s.unused.is_empty() && s.rotate.len() >= 2,
        "the seed changed"
    );
    std::fs::create_dir(h.dir.path().join("keys")).unwrap();
    h.write(
        "posture.toml",
        &format!(
            "[access_keys]\nmax_age_days = 90\nmax_unused_days = 60\ndeliver = \"file:keys/{{user}}.json\"\nunmanaged = {:?}\n",
            s.unmanaged
        ),
    );
    let o = h.run(&["--output", "json", "plan", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let planned = plan["accessKeys"].as_array().unwrap();
    assert_eq!(planned.len(), 1 + s.rotate.len(), "{plan:#}");
    for (id, user) in &s.rotate {
        let c = planned.iter().find(|c| c["key"] == id.as_str()).unwrap();
        assert_eq!(c["action"], "rotate");
        assert!(c["reason"].as_str().unwrap().contains("age unknown"));
        assert!(
            c["deliver"]
                .as_str()
                .unwrap()
                .ends_with(&format!("keys/{user}.json"))
        );
    }
    let d = planned
        .iter()
        .find(|c| c["key"] == s.unused.as_str())
        .unwrap();
    assert_eq!(d["action"], "deactivate");
    assert!(
        plan["findings"].to_string().contains("never used"),
        "the never-used key needs a person: {plan:#}"
    );
    // The text plan names each action.
    let o = h.run(&["plan"]);
    let text = stdout(&o);
    assert!(
        text.contains(&format!("~ access key {}", s.unused)),
        "{text}"
    );
    assert!(
        text.contains("deactivate (unused for 120 days (max 60))"),
        "{text}"
    );

    // Saved, signed, applied exactly.
    let o = h.run(&["plan", "--out", "plan.json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = h.run(&["--output", "json", "apply", "plan.json"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let part = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["protection"] == "access_keys")
        .unwrap()
        .clone();
    assert_eq!(part["status"], "applied", "{r:#}");

    assert!(!active(&h, &s.unused));
    for (id, user) in &s.rotate {
        let path = h.dir.path().join(format!("keys/{user}.json"));
        let file: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let new = file["accessKeyId"].as_str().unwrap();
        assert!(active(&h, new) && !active(&h, id), "{id} → {new}");
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let deactivated = h.ledger_entries("accesskey.deactivated");
    assert_eq!(deactivated.len(), 1 + s.rotate.len());
    assert!(
        deactivated
            .iter()
            .any(|e| e.details.to_string().contains("unused")),
        "{deactivated:?}"
    );
    assert_eq!(h.run(&["audit", "verify"]).status.code(), Some(0));

    // The tenant now matches: new keys are of known age, old ones inactive.
    let o = h.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    // The same saved plan again is stale, not applied twice.
    let o = h.run(&["apply", "plan.json"]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(stderr(&o).contains("stale"), "{}", stderr(&o));
}

#[test]
fn the_tutorials_sections_and_a_bad_access_keys_section_are_refused_before_any_change() {
    let h = real(cxone_sim::SimConfig::default());
    h.write(
        "posture.toml",
        "[secrets]\nmax_age_days = 30\n\n[access_keys]\nmax_age_days = 30\ndeliver = \"file:k.json\"\n",
    );
    let o = h.run(&["plan"]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("[secrets]: the tutorials' routes"),
        "{}",
        stderr(&o)
    );

    h.write(
        "posture.toml",
        "[access_keys]\nmax_age_days = 0\nmax_unused_days = 30\ndeliver = \"ftp:somewhere\"\ngrace = \"3w\"\n",
    );
    let before = h.sim.control().state()["real"]["counts"].clone();
    let o = h.run(&["apply", "--auto-approve"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(65), "{err}");
    for field in [
        "access_keys.max_age_days",
        "access_keys.deliver",
        "access_keys.grace",
    ] {
        assert!(err.contains(field), "names {field}: {err}");
    }
    assert_eq!(h.sim.control().state()["real"]["counts"], before);

    // On the tutorials' routes, [access_keys] is the one refused.
    let t = Harness::start(cxone_sim::SimConfig::default());
    t.write("posture.toml", "[access_keys]\nmax_unused_days = 30\n");
    let o = t.run(&["--sim", "plan"]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("[access_keys]: access keys are CXone's"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_rotation_reaches_openbao_over_tls_with_its_ca_file_and_is_refused_without_it() {
    let certs = tempfile::tempdir().unwrap();
    let Some(b) = bao_tls(certs.path()) else {
        return;
    };
    let h = real(cxone_sim::SimConfig::default()).env("IT_BAO_TOKEN", "it-root-token");
    let plain = std::fs::read_to_string(h.dir.path().join("cxguard.toml")).unwrap();
    // Another user's key: cxguard keeps signing in with its own.
    let old = seeded(&h).rotate[0].0.clone();
    let rotate = [
        "accesskeys",
        "rotate",
        "--key",
        &old,
        "--deliver",
        "vault:secret/cxone/tls",
    ];
    // Without the CA file, the server's certificate is not trusted: nothing changes.
    h.write(
        "cxguard.toml",
        &format!(
            "{plain}\n[vault]\naddress = \"{}\"\ntoken_env = \"IT_BAO_TOKEN\"\n",
            b.address
        ),
    );
    let o = h.run(&rotate);
    assert_eq!(o.status.code(), Some(69), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("vault:secret/cxone/tls"),
        "{}",
        stderr(&o)
    );
    assert!(active(&h, &old));
    // With it, the rotation is delivered and read back over TLS.
    h.write("cxguard.toml", &plain);
    with_vault(&h, &b);
    let o = h.run(&rotate);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = bao_api(&b, "GET", "secret/data/cxone/tls", None);
    let new = v["data"]["data"]["accessKeyId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(active(&h, &new) && !active(&h, &old));
    // A CA file that holds no certificate is a configuration error, before any request.
    h.write("not-a-cert.pem", "hello\n");
    let toml = std::fs::read_to_string(h.dir.path().join("cxguard.toml")).unwrap();
    h.write(
        "cxguard.toml",
        &toml.replace(
            &b.ca.as_ref().unwrap().display().to_string(),
            "not-a-cert.pem",
        ),
    );
    let o = h.run(&["accesskeys", "list"]);
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    assert!(stderr(&o).contains("vault.ca_file"), "{}", stderr(&o));
}

#[test]
fn an_apply_killed_inside_a_rotation_resumes_to_one_new_key_per_user() {
    let h = real(cxone_sim::SimConfig::default());
    let s = seeded(&h);
    std::fs::create_dir(h.dir.path().join("keys")).unwrap();
    h.write(
        "posture.toml",
        &format!(
            "[access_keys]\nmax_age_days = 90\ndeliver = \"file:keys/{{user}}.json\"\nunmanaged = {:?}\n",
            s.unmanaged
                .iter()
                .chain(std::iter::once(&s.unused))
                .collect::<Vec<_>>()
        ),
    );
    let o = h.run(&["--output", "json", "plan"]);
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let planned: Vec<(String, String)> = plan["accessKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["action"], "rotate");
            (
                c["key"].as_str().unwrap().to_string(),
                c["user"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(planned.len() >= 2, "{plan:#}");
    // Killed right after the first new key is created, before it is delivered.
    let o = h
        .command(&["apply", "--auto-approve"])
        .env("CXGUARD_FAILPOINT", "accesskey.created")
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    let run = err
        .split_whitespace()
        .find(|w| w.starts_with("posture-"))
        .unwrap_or_else(|| panic!("names its run: {err}"))
        .trim_end_matches(':')
        .to_string();
    let o = h.run(&["apply", "--resume", &run]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    for (id, user) in &planned {
        let file: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(h.dir.path().join(format!("keys/{user}.json"))).unwrap(),
        )
        .unwrap();
        let new = file["accessKeyId"].as_str().unwrap();
        assert!(active(&h, new) && !active(&h, id), "{id} → {new}");
    }
    // No orphan: the seeded 8, one new key per rotated user, and the undelivered one
    // created before the kill deleted.
    let n = h.sim.control().state()["real"]["counts"].clone();
    assert_eq!(n["accessKeys"], 8 + planned.len());
    assert_eq!(n["activeAccessKeys"], 7);
    let o = h.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
}
