//! One person's data across the tenant (GDPR Art. 15 and 17, CCPA): the requests an
//! operator receives, each turned into a *subject* — its reference (a line number or a
//! caller's `ref`, never the identifier), its normalized identifier held as a secret, and
//! its keyed pseudonyms — and a [`Matcher`] that tells, with one lookup per field, which
//! subjects a contact holds, raw or pseudonymized.
//!
//! Identifiers are normalized exactly as anonymize and identity do
//! ([`crate::pseudonym::Normalizer`]), so `Ann.Lee@Example.com ` and `ann.lee@example.com`
//! are one person, as are `(415) 555-0100` and `+14155550100` in region US.

pub mod erase;
mod erase_real;
pub mod export;
pub mod find;
pub mod real;
mod receipt;
mod receipt_real;
mod steps;
pub mod verify;

use std::collections::HashMap;

use secrecy::{ExposeSecret as _, SecretString};

use crate::identity::{IdentifierKind, Identity};
use crate::keys::Key;
use crate::pseudonym::{self, Kind, Normalizer};

pub use erase::{Receipt, erase};
pub use find::{ContactHit, Found, SubjectFound, find};

/// At most this many subjects in one file (a month of requests of a large center).
pub const MAX_SUBJECTS: usize = 100_000;
/// The longest request reference.
pub const MAX_REF: usize = 128;

/// Checks a request reference (a caller's ticket id), the one rule for every face (the
/// CLI's requests file, `serve`'s erasure requests): it is printed and audited, so it is
/// 1–[`MAX_REF`] of `A-Z a-z 0-9 . _ : - # /`, which no email or phone number fits.
pub fn check_reference(r: &str) -> Result<(), String> {
    if r.is_empty()
        || r.len() > MAX_REF
        || !r
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-#/".contains(&b))
    {
        return Err(format!(
            "must be 1 to {MAX_REF} of A-Z a-z 0-9 . _ : - # / (a ticket id, never the identifier)"
        ));
    }
    Ok(())
}

/// One request as received: who (a reference) and the identifier, still raw.
#[derive(Debug, Clone)]
pub struct Request {
    /// How the receipt and every output names this person: the caller's `ref`, or
    /// `line N` of the file.
    pub reference: String,
    /// The identifier as given (never printed, logged or audited).
    pub identifier: SecretString,
    /// What it is.
    pub kind: IdentifierKind,
    /// The person's ids on social and messaging channels (a DFO identity's
    /// `idOnExternalPlatform`), matched exactly; never printed, logged or audited.
    pub external_ids: Vec<SecretString>,
}

/// The longest external id.
pub const MAX_EXTERNAL_ID: usize = 256;

/// Checks an external id (a channel's user id or handle): 1–[`MAX_EXTERNAL_ID`]
/// characters, no control characters. The message never quotes it.
pub fn check_external_id(id: &str) -> Result<(), String> {
    let id = id.trim();
    if id.is_empty() {
        Err("external id: empty".into())
    } else if id.chars().count() > MAX_EXTERNAL_ID {
        Err(format!(
            "external id: longer than {MAX_EXTERNAL_ID} characters"
        ))
    } else if id.chars().any(char::is_control) {
        Err("external id: holds a control character".into())
    } else {
        Ok(())
    }
}

/// A request, normalized and pseudonymized.
#[derive(Debug, Clone)]
pub struct Subject {
    /// As in [`Request::reference`].
    pub reference: String,
    /// Email or phone.
    pub kind: Kind,
    /// The normalized identifier (what the platform erasure is filed with).
    pub normalized: SecretString,
    /// The keyed pseudonym under the identity key: the value guests and pseudonymized
    /// contact fields hold.
    pub pseudonym: String,
    /// The pseudonym's key id.
    pub key_id: String,
    /// Its external ids, trimmed (see [`Request::external_ids`]).
    pub external_ids: Vec<SecretString>,
}

impl Subject {
    /// The details every audit entry about this subject starts with: its pseudonym and
    /// the key that made it (never the identifier).
    pub fn details(&self) -> ledger::Result<ledger::Details> {
        ledger::Details::new()
            .sha256("pseudonym", &self.pseudonym)?
            .id("key", &self.key_id)
    }

    /// A successful audit entry about this subject: its target is the pseudonym.
    pub fn entry(
        &self,
        actor: &str,
        operation: &'static str,
        details: ledger::Details,
    ) -> crate::Result<ledger::NewEntry> {
        Ok(ledger::NewEntry::new(
            actor,
            operation,
            &self.pseudonym,
            ledger::Outcome::Success,
            details,
        )?)
    }
}

/// Reads a requests file: a header naming `identifier` and optionally `kind`
/// (`email`, `phone`, `auto`) and `ref`, then one request per line; blank lines and `#`
/// comments are skipped. Every problem is listed by line, none quotes an identifier.
pub fn parse_requests(text: &str, shown: &str) -> Result<Vec<Request>, Vec<String>> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let Some((hline, header)) = lines.next() else {
        return Err(vec![format!(
            "{shown}: empty; the first line names the columns: identifier[,kind][,ref]"
        )]);
    };
    let cols: Vec<String> = header
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    let at = |name: &str| cols.iter().position(|c| c == name);
    let mut errors = Vec::new();
    let Some(ident) = at("identifier") else {
        return Err(vec![format!(
            "{shown}:{hline}: the header names no identifier column (identifier[,kind][,ref])"
        )]);
    };
    // Not quoted: a file without its header has an identifier on its first line.
    for (i, c) in cols.iter().enumerate() {
        if !["identifier", "kind", "ref", "external_id"].contains(&c.as_str()) {
            errors.push(format!(
                "{shown}:{hline}: column {} of the header is not identifier, kind, ref or external_id",
                i + 1
            ));
        }
    }
    let (kind_col, ref_col, ext_col) = (at("kind"), at("ref"), at("external_id"));
    let mut out = Vec::new();
    let mut refs: HashMap<String, usize> = HashMap::new();
    for (n, line) in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != cols.len() {
            errors.push(format!(
                "{shown}:{n}: {} field(s), the header has {}",
                fields.len(),
                cols.len()
            ));
            continue;
        }
        let request = match request(&fields, ident, [kind_col, ref_col, ext_col], n) {
            Ok(r) => r,
            Err(why) => {
                errors.push(format!("{shown}:{n}: {why}"));
                continue;
            }
        };
        if let Some(first) = refs.insert(request.reference.clone(), n) {
            errors.push(format!(
                "{shown}:{n}: ref {:?} is also on line {first}",
                request.reference
            ));
            continue;
        }
        out.push(request);
    }
    if out.len() > MAX_SUBJECTS {
        errors.push(format!(
            "{shown}: {} requests, more than {MAX_SUBJECTS} in one file",
            out.len()
        ));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// One line's request: its kind (auto when not given), its reference (`line N` when not
/// given) and a non-empty identifier.
fn request(
    fields: &[&str],
    ident: usize,
    [kind_col, ref_col, ext_col]: [Option<usize>; 3],
    n: usize,
) -> Result<Request, String> {
    let mut external_ids = Vec::new();
    if let Some(e) = ext_col.map(|c| fields[c]).filter(|e| !e.is_empty()) {
        check_external_id(e)?;
        external_ids.push(SecretString::from(e.trim().to_string()));
    }
    let kind = match kind_col.map(|k| fields[k]) {
        None | Some("") => IdentifierKind::Auto,
        Some(k) => IdentifierKind::parse(k).map_err(|e| format!("kind: {e}"))?,
    };
    let reference = match ref_col.map(|r| fields[r]) {
        None | Some("") => format!("line {n}"),
        Some(r) => {
            check_reference(r).map_err(|why| format!("ref: {why}"))?;
            r.to_string()
        }
    };
    if fields[ident].is_empty() {
        return Err("identifier: empty".into());
    }
    Ok(Request {
        reference,
        identifier: SecretString::from(fields[ident].to_string()),
        kind,
        external_ids,
    })
}

/// Normalizes and pseudonymizes every request (pure). Problems are listed by
/// reference, never quoting an identifier; two requests for one person are one subject.
pub fn prepare(requests: Vec<Request>, identity: &Identity) -> Result<Vec<Subject>, Vec<String>> {
    let mut errors = Vec::new();
    let mut out: Vec<Subject> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in requests {
        let (kind, normalized) =
            match identity.normalize("identifier", r.identifier.expose_secret(), r.kind) {
                Ok(x) => x,
                Err(e) => {
                    errors.push(format!("{}: {e}", r.reference));
                    continue;
                }
            };
        let p = identity.pseudonym_of(&normalized);
        if let Some(&i) = seen.get(&p) {
            errors.push(format!(
                "{}: the same person as {}",
                r.reference, out[i].reference
            ));
            continue;
        }
        if let Some(why) = r
            .external_ids
            .iter()
            .find_map(|e| check_external_id(e.expose_secret()).err())
        {
            errors.push(format!("{}: {why}", r.reference));
            continue;
        }
        seen.insert(p.clone(), out.len());
        out.push(Subject {
            reference: r.reference,
            kind,
            normalized: SecretString::from(normalized),
            pseudonym: p,
            key_id: identity.key_id().to_string(),
            external_ids: r
                .external_ids
                .iter()
                .map(|e| SecretString::from(e.expose_secret().trim().to_string()))
                .collect(),
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// How a contact field matched a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum How {
    /// The field holds the identifier (after normalization).
    Raw,
    /// The field holds the subject's keyed pseudonym.
    Pseudonym,
}

/// Which subjects a contact holds: one hash lookup per field, however many subjects.
#[derive(Debug)]
pub struct Matcher {
    normalizer: Normalizer,
    emails: HashMap<String, usize>,
    phones: HashMap<String, usize>,
    pseudonyms: HashMap<String, usize>,
    externals: HashMap<String, usize>,
}

impl Matcher {
    /// A matcher of `subjects`; `extra_keys` adds the pseudonyms made with other keys
    /// (a masking policy's own pseudonymize keys).
    pub fn new(subjects: &[Subject], normalizer: Normalizer, extra_keys: &[&Key]) -> Self {
        let mut m = Matcher {
            normalizer,
            emails: HashMap::new(),
            phones: HashMap::new(),
            pseudonyms: HashMap::new(),
            externals: HashMap::new(),
        };
        for (i, s) in subjects.iter().enumerate() {
            let n = s.normalized.expose_secret().to_string();
            match s.kind {
                Kind::Email => m.emails.insert(n.clone(), i),
                Kind::Phone => m.phones.insert(n.clone(), i),
            };
            m.pseudonyms.insert(s.pseudonym.clone(), i);
            for e in &s.external_ids {
                m.externals.insert(e.expose_secret().to_string(), i);
            }
            for k in extra_keys {
                m.pseudonyms.insert(pseudonym::pseudonym(k, &n), i);
            }
        }
        m
    }

    /// The subjects `value` of field `field` (`email` or `phone`) belongs to.
    fn field(&self, field: &'static str, value: &str) -> Option<(usize, How)> {
        if pseudonym::is_pseudonym(value) {
            return self.pseudonyms.get(value).map(|&i| (i, How::Pseudonym));
        }
        let found = match field {
            "email" => self
                .normalizer
                .email(value)
                .ok()
                .and_then(|n| self.emails.get(&n)),
            _ => self
                .normalizer
                .phone(value)
                .ok()
                .and_then(|n| self.phones.get(&n)),
        };
        found.map(|&i| (i, How::Raw))
    }

    /// The subject an address of unknown kind belongs to (a DFO identity's
    /// `idOnExternalPlatform`, an ACD `fromAddress`): a pseudonym, an email when it
    /// holds `@`, else a phone number.
    pub fn address(&self, value: &str) -> Option<(usize, How)> {
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        self.field(
            if value.contains('@') {
                "email"
            } else {
                "phone"
            },
            value,
        )
    }

    /// The subject a channel identity (`idOnExternalPlatform`) belongs to: one of its
    /// external ids exactly, else as [`Matcher::address`].
    pub fn identity(&self, value: &str) -> Option<(usize, How)> {
        match self.externals.get(value.trim()) {
            Some(&i) => Some((i, How::Raw)),
            None => self.address(value),
        }
    }

    /// Every (subject, field, how) the contact holds.
    pub fn hits(&self, c: &cxone::models::Contact) -> Vec<(usize, &'static str, How)> {
        let mut out = Vec::new();
        for (field, value) in [("email", &c.email), ("phone", &c.phone)] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty())
                && let Some((i, how)) = self.field(field, v)
            {
                out.push((i, field, how));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn us() -> Normalizer {
        Normalizer {
            region: Some(pseudonym::parse_region("US").unwrap()),
            gmail_folding: false,
        }
    }

    fn identity() -> Identity {
        let key = Arc::new(Key::from_bytes("k1", vec![3u8; 32]).unwrap());
        Identity::new(key, us(), "hashed_user_id").unwrap()
    }

    /// Regression (trust review, item 9): the CLI checked only a reference's length, so
    /// an identifier in the `ref` column was printed and audited; `serve` refused it.
    /// One rule now, and neither quotes the refused value.
    #[test]
    fn a_reference_that_is_an_identifier_is_refused_as_serve_refuses_it() {
        let errs = parse_requests(
            "identifier,ref\nann@example.com,ann@example.com\nbob@example.com,T 2\n",
            "r",
        )
        .unwrap_err();
        assert!(
            errs[0].starts_with("r:2: ref: must be 1 to 128"),
            "{errs:?}"
        );
        assert!(errs[1].starts_with("r:3: ref:"), "{errs:?}");
        assert!(errs.iter().all(|e| !e.contains("@example")), "{errs:?}");
        assert!(check_reference("ann@example.com").is_err());
        assert!(check_reference("T-1/2:3#4_x.y").is_ok());
        assert!(check_reference(&"a".repeat(129)).is_err());
    }

    /// A file without its header has an identifier on its first line: not quoted.
    #[test]
    fn a_missing_header_is_not_quoted() {
        let errs = parse_requests("ann@example.com\n", "r").unwrap_err();
        assert!(errs.iter().all(|e| !e.contains("ann@")), "{errs:?}");
    }

    #[test]
    fn a_file_is_checked_whole_and_no_error_quotes_an_identifier() {
        let text = "identifier,kind,ref\n\
                    ann@example.com,email,T-1\n\
                    +1 415 555 0100,phone,T-2\n\
                    secret-person@,email,T-3\n\
                    bob@example.com,fax,T-4\n\
                    carl@example.com,email,T-1\n\
                    x,y\n";
        let errs = match parse_requests(text, "req.csv") {
            Err(e) => e,
            Ok(_) => panic!("bad lines are refused"),
        };
        assert!(
            errs.iter().any(|e| e.starts_with("req.csv:5: kind:")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("req.csv:6: ref \"T-1\" is also on line 2")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.starts_with("req.csv:7: 2 field(s)")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .all(|e| !e.contains("bob@") && !e.contains("carl@"))
        );

        let ok = parse_requests("identifier\nAnn@Example.com\nsecret-person@\n", "r").unwrap();
        assert_eq!(ok[1].reference, "line 3");
        let errs = prepare(ok, &identity()).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("line 3: identifier: is not an email"),
            "{errs:?}"
        );
        assert!(!errs[0].contains("secret-person"));
    }

    #[test]
    fn contacts_match_raw_after_normalization_and_by_pseudonym_and_nothing_else() {
        let reqs = parse_requests(
            "identifier,ref\nAnn.Lee@Example.com ,a\n(415) 555-0100,b\n",
            "r",
        )
        .unwrap();
        let subjects = prepare(reqs, &identity()).unwrap();
        let m = Matcher::new(&subjects, us(), &[]);
        let contact = |email: Option<&str>, phone: Option<&str>| cxone::models::Contact {
            id: "c".into(),
            first_name: None,
            last_name: None,
            email: email.map(str::to_string),
            phone: phone.map(str::to_string),
            custom_fields: Default::default(),
            created_at: None,
            updated_at: None,
            etag: None,
        };
        assert_eq!(
            m.hits(&contact(
                Some("ann.lee@example.com"),
                Some("+1 (415) 555-0100")
            )),
            vec![(0, "email", How::Raw), (1, "phone", How::Raw)]
        );
        let p = subjects[0].pseudonym.clone();
        assert_eq!(
            m.hits(&contact(Some(&p), None)),
            vec![(0, "email", How::Pseudonym)]
        );
        assert!(
            m.hits(&contact(Some("ann.lee@example.org"), Some("+14155550101")))
                .is_empty()
        );
        assert!(
            m.hits(&contact(Some(&"a".repeat(64)), Some("415***")))
                .is_empty()
        );
    }
}
