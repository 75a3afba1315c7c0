//! `cxguard.toml` and the environment, turned into validated settings.
//!
//! Where settings come from, later winning: the file's `[tenant]` table, then the
//! `CXGUARD_*` environment variables. Secrets (client secret, access-key secret) come
//! only from the environment or from files named in the config — never from flags or the
//! config file itself, so they stay out of shell history, process lists and repos.
//! Unknown keys are errors, so a typo never silently falls back to a default.
//!
//! One module per concern: `file` (the serde structs of every table), `tenant` (the
//! target and its credentials, with the environment overlay), `store` (data directory,
//! ledger, audit key and anchor), `webhooks`, `identity` and `serve`.

use std::path::{Path, PathBuf};

use crate::exit::CliError;

pub const ENV_BASE_URL: &str = "CXGUARD_BASE_URL";
pub const ENV_TOKEN_URL: &str = "CXGUARD_TOKEN_URL";
pub const ENV_CLIENT_ID: &str = "CXGUARD_CLIENT_ID";
pub const ENV_CLIENT_SECRET: &str = "CXGUARD_CLIENT_SECRET";
pub const ENV_ACCESS_KEY_ID: &str = "CXGUARD_ACCESS_KEY_ID";
pub const ENV_ACCESS_KEY_SECRET: &str = "CXGUARD_ACCESS_KEY_SECRET";
pub const ENV_CONFIG: &str = "CXGUARD_CONFIG";
pub const ENV_STORE: &str = "CXGUARD_STORE";
pub const ENV_HOME: &str = "CXGUARD_HOME";

mod credentials;
mod cxone_api;
mod file;
mod identity;
mod serve;
mod store;
mod tenant;
mod vault;
mod webhooks;

pub use credentials::warn_if_broad;
pub use cxone_api::*;
pub use file::*;
pub use identity::*;
pub use serve::*;
pub use store::*;
pub use tenant::*;
pub use vault::*;
pub use webhooks::*;

/// Where the config was read from, if anywhere.
#[derive(Debug)]
pub struct Loaded {
    pub path: Option<PathBuf>,
    pub file: FileConfig,
}

/// Reads the config: `--config` (must exist), else `$CXGUARD_CONFIG` (must exist), else
/// `./cxguard.toml` if present, else nothing.
pub fn load(
    explicit: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, CliError> {
    let (path, required) = match (explicit, env(ENV_CONFIG)) {
        (Some(p), _) => (p.to_path_buf(), true),
        (None, Some(p)) if !p.is_empty() => (PathBuf::from(p), true),
        _ => (PathBuf::from("cxguard.toml"), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(Loaded {
                path: None,
                file: FileConfig::default(),
            });
        }
        Err(e) => {
            return Err(CliError::config(format!(
                "cannot read config {}: {e}",
                path.display()
            )));
        }
    };
    // Where and which key, never the value: a secret under the wrong key must not
    // reach stderr or a CI log.
    let file: FileConfig = toml::from_str(&text).map_err(|e| {
        CliError::config(format!(
            "config {}",
            guard::parsing::toml_problem(&path.display().to_string(), &text, &e)
        ))
    })?;
    Ok(Loaded {
        path: Some(path),
        file,
    })
}

/// A fake environment for tests.
#[cfg(test)]
pub fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    use std::collections::BTreeMap;
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Loaded, CliError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| CliError::config(e.to_string()))?;
        Ok(Loaded { path: None, file })
    }

    #[test]
    fn nothing_configured_means_the_embedded_emulator() {
        let t = target(&parse("").unwrap(), &env_of(&[])).unwrap();
        assert!(matches!(t, Target::Embedded));
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let e =
            parse("[tenant]\nbase_url = \"https://x\"\nclient_secret = \"oops\"\n").unwrap_err();
        assert!(e.message.contains("client_secret"), "{}", e.message);
        let e = parse("[tenent]\n").unwrap_err();
        assert!(e.message.contains("tenent"), "{}", e.message);
    }

    #[test]
    fn missing_credentials_name_the_env_vars() {
        let e = target(
            &parse("").unwrap(),
            &env_of(&[(ENV_BASE_URL, "https://api.example.com")]),
        )
        .unwrap_err();
        assert!(
            e.message.contains(ENV_CLIENT_ID) && e.message.contains(ENV_CLIENT_SECRET),
            "{}",
            e.message
        );
        let e = target(
            &parse("").unwrap(),
            &env_of(&[
                (ENV_BASE_URL, "https://api.example.com"),
                (ENV_ACCESS_KEY_ID, "AK1"),
            ]),
        )
        .unwrap_err();
        assert!(e.message.contains(ENV_ACCESS_KEY_SECRET), "{}", e.message);
    }

    #[test]
    fn a_base_url_that_is_not_http_is_refused() {
        let e = target(
            &parse("").unwrap(),
            &env_of(&[
                (ENV_BASE_URL, "ftp://x"),
                (ENV_CLIENT_ID, "a"),
                (ENV_CLIENT_SECRET, "b"),
            ]),
        )
        .unwrap_err();
        assert!(e.message.starts_with(ENV_BASE_URL), "{}", e.message);
        let e = target(
            &parse("[tenant]\nbase_url = \"api.example.com\"").unwrap(),
            &env_of(&[(ENV_CLIENT_ID, "a"), (ENV_CLIENT_SECRET, "b")]),
        )
        .unwrap_err();
        assert!(e.message.starts_with("tenant.base_url"), "{}", e.message);
    }

    #[test]
    fn env_overrides_file_and_secrets_stay_redacted() {
        let t = target(
            &parse("[tenant]\nbase_url = \"https://file.example.com\"\nclient_id = \"file-id\"")
                .unwrap(),
            &env_of(&[
                (ENV_BASE_URL, "https://env.example.com"),
                (ENV_CLIENT_SECRET, "hunter2"),
            ]),
        )
        .unwrap();
        let Target::Tenant(s) = t else {
            panic!("expected a tenant")
        };
        assert_eq!(s.base_url.as_str(), "https://env.example.com/");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        fn config() -> ProptestConfig {
            ProptestConfig {
                cases: 10_000,
                failure_persistence: None,
                ..ProptestConfig::default()
            }
        }

        /// Everything the commands derive from a config: none of it may panic.
        fn derive_all(text: &str) {
            let Ok(file) = toml::from_str::<FileConfig>(text) else {
                return;
            };
            let loaded = Loaded { path: None, file };
            let env = env_of(&[(ENV_CLIENT_ID, "id"), (ENV_CLIENT_SECRET, "s")]);
            let _ = target(&loaded, &env);
            let _ = server_settings(&loaded);
            let _ = delivery(&loaded, &env);
            let _ = checkpoint_every(&loaded);
            let _ = anchor_path(&loaded, &env);
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn any_text_as_config_never_panics(s in any::<String>()) {
                derive_all(&s);
            }

            #[test]
            fn structured_configs_never_panic(
                url in prop_oneof![any::<String>(), "https?://[a-z0-9.:-]{0,20}(/[a-z/]{0,10})?"],
                n in prop_oneof![0i64..100, 0i64..=i64::MAX],
                b in any::<bool>(),
            ) {
                let text = format!(
                    "[tenant]\nbase_url = {url:?}\ntoken_url = {url:?}\nallow_insecure_http = {b}\ntimeout_secs = {n}\nmax_body_bytes = {n}\n[server]\nheader_read_timeout_secs = {n}\nupstream_deadline_secs = {n}\nmax_connections = {n}\nrate_per_key = {n}\n[audit]\ncheckpoint_every = {n}\n[webhooks.vault]\nurl = {url:?}\nsecret_env = \"X\"\n"
                );
                derive_all(&text);
            }
        }
    }
}
