//! Bad input: each gets a clear message naming what is wrong, and its exit code.

use crate::{cxguard, stderr, tmp};

#[test]
fn an_unknown_flag_is_a_usage_error() {
    let o = cxguard(&["demo", "--colour"], &[], tmp().path());
    assert_eq!(o.status.code(), Some(64));
    assert!(stderr(&o).contains("--colour"), "{}", stderr(&o));
    let o = cxguard(&["frobnicate"], &[], tmp().path());
    assert_eq!(o.status.code(), Some(64));
}

#[test]
fn help_and_version_exit_0() {
    assert_eq!(
        cxguard(&["--help"], &[], tmp().path()).status.code(),
        Some(0)
    );
    assert_eq!(
        cxguard(&["--version"], &[], tmp().path()).status.code(),
        Some(0)
    );
}

#[test]
fn an_unknown_config_key_names_the_key_and_the_file() {
    let dir = tmp();
    std::fs::write(
        dir.path().join("cxguard.toml"),
        "[tenant]\nbase_url = \"https://x.example.com\"\nclient_secret = \"s\"\n",
    )
    .unwrap();
    let o = cxguard(&["inventory"], &[], dir.path());
    assert_eq!(o.status.code(), Some(78));
    let e = stderr(&o);
    assert!(
        e.contains("cxguard.toml") && e.contains("client_secret"),
        "{e}"
    );
    assert!(
        e.contains("line 3") || e.contains(":3:") || e.contains("3 |"),
        "names the line: {e}"
    );
}

/// Regression (trust review, item 7): a parse error printed its source line, so a
/// secret under the wrong key went to stderr and CI logs. Every file cxguard parses
/// names the line, column and key, never the value.
#[test]
fn a_parse_error_never_prints_the_value() {
    let dir = tmp();
    let secret = "Sup3r-S3cret-Value";
    let cases: [(&str, &str, Vec<&str>); 4] = [
        (
            "cxguard.toml",
            "[tenant]\nbase_url = \"https://x.example.com\"\nclient_secret = \"Sup3r-S3cret-Value\"\n",
            vec!["inventory"],
        ),
        (
            "cxguard.toml",
            "[tenant]\nbase_url = \"https://x.example.com\"\nmax_rate = \"Sup3r-S3cret-Value\"\n",
            vec!["inventory"],
        ),
        (
            "posture.toml",
            "[contacts]\nretention_days = \"Sup3r-S3cret-Value\"\npolicy = \"p.toml\"\n",
            vec!["--sim", "plan", "--posture", "posture.toml"],
        ),
        (
            "policy.toml",
            "[keys]\nk1 = \"Sup3r-S3cret-Value\"\n[fields]\nemail = { op = 3 }\n",
            vec![
                "--sim",
                "contacts",
                "anonymize",
                "--policy",
                "policy.toml",
                "--dry-run",
                "--all",
            ],
        ),
    ];
    for (file, text, args) in cases {
        let _ = std::fs::remove_file(dir.path().join("cxguard.toml"));
        std::fs::write(dir.path().join(file), text).unwrap();
        let o = cxguard(&args, &[], dir.path());
        assert_ne!(o.status.code(), Some(0), "{file}");
        let e = stderr(&o) + &crate::stdout(&o);
        assert!(!e.contains(secret), "{file}: the value was printed: {e}");
        assert!(e.contains(file), "{file}: {e}");
        assert!(
            e.contains(":3:") || e.contains(":2:") || e.contains(":4:"),
            "{file}: names line and column: {e}"
        );
        let _ = std::fs::remove_file(dir.path().join(file));
    }
}

#[test]
fn a_missing_explicit_config_file_is_an_error() {
    let o = cxguard(&["--config", "nope.toml", "inventory"], &[], tmp().path());
    assert_eq!(o.status.code(), Some(78));
    assert!(stderr(&o).contains("nope.toml"));
}

#[test]
fn a_base_url_that_is_not_http_names_the_variable() {
    let o = cxguard(
        &["inventory"],
        &[
            ("CXGUARD_BASE_URL", "ftp://files.example.com"),
            ("CXGUARD_CLIENT_ID", "a"),
            ("CXGUARD_CLIENT_SECRET", "b"),
        ],
        tmp().path(),
    );
    assert_eq!(o.status.code(), Some(78));
    let e = stderr(&o);
    assert!(e.contains("CXGUARD_BASE_URL") && e.contains("http"), "{e}");
}

#[test]
fn missing_credentials_name_the_env_vars_to_set() {
    let o = cxguard(
        &["inventory"],
        &[("CXGUARD_BASE_URL", "https://api.example.com")],
        tmp().path(),
    );
    assert_eq!(o.status.code(), Some(78));
    let e = stderr(&o);
    assert!(
        e.contains("CXGUARD_CLIENT_ID") && e.contains("CXGUARD_CLIENT_SECRET"),
        "{e}"
    );
}

#[test]
fn a_broadly_readable_secret_file_is_warned_about() {
    let dir = tmp();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::write(
        dir.path().join("cxguard.toml"),
        "[tenant]\nbase_url = \"http://127.0.0.1:9\"\nclient_id = \"a\"\nclient_secret_file = \"secret\"\n[tenant.retry]\nmax_attempts = 1\n",
    )
    .unwrap();
    let o = cxguard(&["inventory"], &[], dir.path());
    let e = stderr(&o);
    assert!(e.contains("mode 0644") && e.contains("chmod 600"), "{e}");
    assert!(!e.contains("s3cret"));
}

#[test]
fn contradictory_sim_options_are_refused_before_binding() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["sim", "--fault-rate", "0.7", "--reset-rate", "0.5"],
            "--reset-rate",
        ),
        (&["sim", "--fault-rate", "1.5"], "--fault-rate"),
        (&["sim", "--rate-limit", "0"], "--rate-limit"),
        (
            &["sim", "--rate-limit", "5", "--webchat-rate-limit", "20"],
            "--webchat-rate-limit",
        ),
        (&["sim", "--contacts", "1000001"], "--contacts"),
        (&["sim", "--token-ttl", "0"], "--token-ttl"),
    ];
    for (args, names) in cases {
        let o = cxguard(args, &[], tmp().path());
        assert_eq!(o.status.code(), Some(64), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(names), "{args:?}: {}", stderr(&o));
    }
}
