//! Loading a posture: the file parsed, each section checked by its protection's own
//! validation, every problem collected (nothing is read from the tenant here).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::encrypt;
use secrecy::SecretString;

use super::file::{Generate, PostureFile, SecretPosture, relative};
use crate::encrypt::config::DatastoreFile;
use crate::{Error, Result};

/// A checked posture.
pub struct Posture {
    /// Where it was read from.
    pub path: PathBuf,
    /// SHA-256 of the file.
    pub digest: String,
    /// Its secrets section, checked.
    pub secrets: Option<Secrets>,
    /// Its retention section, with the masking policy loaded.
    pub contacts: Option<Contacts>,
    /// Its tables, as encryption requests.
    pub tables: Vec<encrypt::Request>,
    /// Its webchat policy, checked.
    pub webchat: Option<crate::webchat::Policy>,
    /// The identity key id it expects.
    pub identity_key_id: Option<String>,
    /// Its access keys section (CXone's published API), checked.
    pub access_keys: Option<super::keys::AccessKeys>,
    /// Its data policies (CXone's published API), checked.
    pub data_policies: Option<Vec<crate::policies::Declared>>,
}

/// `[secrets]`, checked.
pub struct Secrets {
    /// The default maximum age.
    pub max_age_days: Option<u32>,
    /// Secrets left alone.
    pub unmanaged: BTreeSet<String>,
    /// The default value source.
    pub generate: Option<Generate>,
    /// Per secret.
    pub each: BTreeMap<String, SecretPosture>,
}

/// `[contacts]`, checked.
pub struct Contacts {
    /// Contacts last updated longer ago than this are anonymized.
    pub retention_days: u32,
    /// The masking policy, loaded.
    pub policy: crate::anonymize::Policy,
}

/// Where a due secret's new value comes from.
pub enum Source<'a> {
    /// A generated value.
    Generate(&'a Generate),
    /// A file.
    File(&'a Path),
    /// An environment variable.
    Env(&'a str),
}

impl Secrets {
    /// The maximum age of `id`, if one applies.
    pub fn max_age(&self, id: &str) -> Option<u32> {
        self.each
            .get(id)
            .and_then(|e| e.max_age_days)
            .or(self.max_age_days)
    }

    /// The value source of `id`, if it has one.
    pub fn source(&self, id: &str) -> Option<Source<'_>> {
        let e = self.each.get(id);
        if let Some(e) = e {
            if let Some(g) = &e.generate {
                return Some(Source::Generate(g));
            }
            if let Some(f) = &e.value_file {
                return Some(Source::File(f));
            }
            if let Some(v) = &e.value_env {
                return Some(Source::Env(v));
            }
        }
        self.generate.as_ref().map(Source::Generate)
    }

    /// The current value of `id`, for a rollback: its `previous_*`, or the file the
    /// last generated value was written to.
    pub fn previous(&self, id: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<SecretString> {
        let e = self.each.get(id);
        let read = |file: Option<&Path>, var: Option<&str>| {
            crate::values::read("previous value", file, var, env)
                .ok()
                .flatten()
        };
        let (file, var) = (
            e.and_then(|e| e.previous_file.as_deref()),
            e.and_then(|e| e.previous_env.as_deref()),
        );
        if file.is_some() || var.is_some() {
            return read(file, var);
        }
        if let Some(Source::Generate(g)) = self.source(id) {
            let p = crate::rotate::secrets::path_for_id(&g.write_to, id).ok()?;
            return read(Some(&p), None);
        }
        None
    }
}

fn check_generate(at: &str, g: &Generate, problems: &mut Vec<String>) {
    if let Some(l) = g.length
        && !(16..=3000).contains(&l)
    {
        problems.push(format!("{at}.generate.length: {l} is not from 16 to 3000"));
    }
    if let Some(c) = &g.charset
        && !matches!(c.as_str(), "base64url" | "base64")
    {
        problems.push(format!(
            "{at}.generate.charset: {c:?} is not base64url or base64"
        ));
    }
    if !g.write_to.contains("{id}") && at == "secrets" {
        problems.push(format!(
            "{at}.generate.write_to: must contain {{id}} (one file per secret)"
        ));
    }
    if g.write_to.trim().is_empty() {
        problems.push(format!("{at}.generate.write_to: is empty"));
    }
}

/// Reads and checks the posture at `path`. A file that cannot be read or parsed is an
/// error at once; every other problem is returned with the posture, so the checks that
/// need the tenant (tables) can add theirs and all are reported together (exit 65).
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<(Posture, Vec<String>)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Invalid(format!("cannot read the posture {}: {e}", path.display())))?;
    load_text(&text, path, env)
}

/// The posture in a `[posture]` section of the configuration file at `config` (paths in
/// it are relative to that file).
pub fn load_section(
    section: &toml::Table,
    config: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Posture, Vec<String>)> {
    let text = toml_text(section);
    let (mut p, problems) = load_text(&text, config, env)?;
    p.path = PathBuf::from(format!("{} [posture]", config.display()));
    Ok((p, problems))
}

/// Parses and checks posture `text`; paths in it are relative to `path`'s directory.
pub fn load_text(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Posture, Vec<String>)> {
    let text = text.to_string();
    let file: PostureFile = toml::from_str(&text).map_err(|e| {
        Error::Invalid(crate::parsing::toml_problem(
            &path.display().to_string(),
            &text,
            &e,
        ))
    })?;
    let mut problems = Vec::new();

    let secrets = file
        .secrets
        .map(|s| load_secrets(s, path, env, &mut problems));
    let contacts = file
        .contacts
        .and_then(|c| load_contacts(c, path, env, &mut problems));
    let tables = load_tables(file.datastore, &mut problems);
    let webchat = file
        .webchat
        .and_then(|w| load_webchat(w, path, &mut problems));
    let access_keys = file
        .access_keys
        .map(|a| super::keys::load(a, path, &mut problems));
    let data_policies = file
        .data_policies
        .map(|d| crate::policies::load(d, &path.display().to_string(), &text, &mut problems));
    let identity_key_id = file.identity.map(|i| {
        if ledger::details::check_identifier("identity.key_id", &i.key_id).is_err() {
            problems.push("identity.key_id: not a key id".into());
        }
        i.key_id
    });

    Ok((
        Posture {
            path: path.to_path_buf(),
            digest: crate::sha256_hex(&text),
            secrets,
            contacts,
            tables,
            webchat,
            identity_key_id,
            access_keys,
            data_policies,
        },
        problems,
    ))
}

/// `[secrets]`: one value source per secret, paths relative to the posture file.
fn load_secrets(
    mut s: super::file::SecretsPosture,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Secrets {
    // Paths are relative to the posture file, like its other paths.
    for e in s.each.values_mut() {
        for f in [&mut e.value_file, &mut e.previous_file]
            .into_iter()
            .flatten()
        {
            *f = relative(path, f);
        }
    }
    if s.max_age_days == Some(0) {
        problems.push("secrets.max_age_days: must be at least 1".into());
    }
    if let Some(g) = &s.generate {
        check_generate("secrets", g, problems);
    }
    for (id, e) in &s.each {
        let at = format!("secrets.each.{id}");
        if ledger::details::check_identifier("secret id", id).is_err() {
            problems.push(format!("{at}: not a secret id"));
        }
        if e.max_age_days == Some(0) {
            problems.push(format!("{at}.max_age_days: must be at least 1"));
        }
        let sources = [
            e.value_file.is_some(),
            e.value_env.is_some(),
            e.generate.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if sources > 1 {
            problems.push(format!(
                "{at}: give one of value_file, value_env or generate, not {sources}"
            ));
        }
        if sources == 0 && s.generate.is_none() {
            problems.push(format!(
                "{at}: no value source: give value_file, value_env or generate (or a default [secrets] generate)"
            ));
        }
        if let Some(g) = &e.generate {
            check_generate(&at, g, problems);
        }
        if let Some(v) = &e.value_env
            && env(v).is_none_or(|x| x.is_empty())
        {
            problems.push(format!(
                "{at}.value_env: the environment variable {v} is not set"
            ));
        }
        if let Some(f) = &e.value_file
            && !f.is_file()
        {
            problems.push(format!(
                "{at}.value_file: {} is not a readable file",
                f.display()
            ));
        }
    }
    Secrets {
        max_age_days: s.max_age_days,
        unmanaged: s.unmanaged.into_iter().collect(),
        generate: s.generate,
        each: s.each,
    }
}

/// `[contacts]`: a retention of at least a day and a policy that parses.
fn load_contacts(
    c: super::file::ContactsPosture,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Option<Contacts> {
    if c.retention_days == 0 {
        problems.push("contacts.retention_days: must be at least 1 (0 would anonymize every contact updated before now)".into());
    }
    let p = relative(path, &c.policy);
    match std::fs::read_to_string(&p) {
        Err(e) => {
            problems.push(format!("contacts.policy: cannot read {}: {e}", p.display()));
            None
        }
        Ok(t) => match crate::anonymize::Policy::parse(&t, &p, env) {
            Ok(policy) => Some(Contacts {
                retention_days: c.retention_days,
                policy,
            }),
            Err(errors) => {
                for e in errors {
                    problems.push(format!("contacts.policy: {e}"));
                }
                None
            }
        },
    }
}

/// `[datastore]`: each table's encryption request.
fn load_tables(
    datastore: Option<super::file::DatastorePosture>,
    problems: &mut Vec<String>,
) -> Vec<encrypt::Request> {
    let mut tables = Vec::new();
    for (i, t) in datastore
        .map(|d| d.tables)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        match crate::encrypt::config::request(&t, &DatastoreFile::default()) {
            Ok(r) => tables.push(r),
            Err(e) => problems.push(format!("datastore.tables[{i}] ({}): {e}", t.table)),
        }
    }
    tables
}

/// `[webchat]`: a policy file or inline widget tables, not both.
fn load_webchat(
    w: super::file::WebchatPosture,
    path: &Path,
    problems: &mut Vec<String>,
) -> Option<crate::webchat::Policy> {
    let (text, shown) = match (&w.policy, &w.widgets) {
        (Some(_), Some(_)) => {
            problems.push(
                "webchat: give policy = \"FILE\" or [webchat.widgets.ID] tables, not both".into(),
            );
            (None, PathBuf::new())
        }
        (Some(p), None) => {
            let p = relative(path, p);
            match std::fs::read_to_string(&p) {
                Ok(t) => (Some(t), p),
                Err(e) => {
                    problems.push(format!("webchat.policy: cannot read {}: {e}", p.display()));
                    (None, p)
                }
            }
        }
        (None, Some(widgets)) => {
            let mut doc = toml::Table::new();
            doc.insert("widgets".into(), toml::Value::Table(widgets.clone()));
            (
                Some(toml_text(&doc)),
                PathBuf::from(format!("{} [webchat]", path.display())),
            )
        }
        (None, None) => {
            problems.push("webchat: give policy = \"FILE\" or [webchat.widgets.ID] tables".into());
            (None, PathBuf::new())
        }
    };
    text.and_then(|t| match crate::webchat::Policy::parse(&t, &shown) {
        Ok(p) => Some(p),
        Err(e) => {
            problems.push(format!("webchat: {e}"));
            None
        }
    })
}

/// A TOML table as text (the toml crate here parses only): strings, booleans, integers,
/// arrays and tables, which is all a webchat section holds.
fn toml_text(t: &toml::Table) -> String {
    let mut out = String::new();
    write_table(&mut out, "", t);
    out
}

fn write_table(out: &mut String, prefix: &str, t: &toml::Table) {
    let mut subtables = Vec::new();
    let mut arrays_of_tables = Vec::new();
    for (k, v) in t {
        match v {
            toml::Value::Table(sub) => subtables.push((k, sub)),
            toml::Value::Array(a) if !a.is_empty() && a.iter().all(|x| x.is_table()) => {
                arrays_of_tables.push((k, a))
            }
            other => out.push_str(&format!(
                "{} = {}\n",
                crate::webchat::export::toml_key(k),
                value(other)
            )),
        }
    }
    for (k, a) in arrays_of_tables {
        for x in a {
            let name = format!("{prefix}{}", crate::webchat::export::toml_key(k));
            out.push_str(&format!("[[{name}]]\n"));
            if let Some(tb) = x.as_table() {
                for (kk, vv) in tb {
                    out.push_str(&format!(
                        "{} = {}\n",
                        crate::webchat::export::toml_key(kk),
                        value(vv)
                    ));
                }
            }
        }
    }
    for (k, sub) in subtables {
        let name = format!("{prefix}{}", crate::webchat::export::toml_key(k));
        out.push_str(&format!("[{name}]\n"));
        write_table(out, &format!("{name}."), sub);
    }
}

fn value(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => crate::webchat::export::toml_string(s),
        toml::Value::Array(a) => {
            format!("[{}]", a.iter().map(value).collect::<Vec<_>>().join(", "))
        }
        toml::Value::Table(t) => format!(
            "{{ {} }}",
            t.iter()
                .map(|(k, v)| format!("{} = {}", crate::webchat::export::toml_key(k), value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
    }
}
