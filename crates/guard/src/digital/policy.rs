//! The masking policy's `[digital]` section: what happens to the messages of a DFO case
//! (spec-real §4.5d–e). Read from the same file as `contacts anonymize`'s `[fields]`,
//! validated before any call, each problem naming its line.
//!
//! ```toml
//! [digital]
//! messages = { content = "remove", author_name = "remove", reason = "TTL" }
//! ```

use serde::Deserialize;
use toml::Spanned;

use crate::{Error, Result};

/// Why a message's content or author name is removed (§4.2 `ContentRemovedReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A data subject's erasure request.
    Gdpr,
    /// Retention (time to live).
    Ttl,
    /// Anything else.
    Other,
}

impl Reason {
    /// As the API and the audit log write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Gdpr => "GDPR",
            Reason::Ttl => "TTL",
            Reason::Other => "other",
        }
    }
}

/// What happens to each message of a case in scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Messages {
    /// Remove the content (text and attachments).
    pub content: bool,
    /// Remove the author's name, address and handles.
    pub author_name: bool,
    /// The reason sent with each removal.
    pub reason: Reason,
}

/// `[digital]`, checked.
#[derive(Debug)]
pub struct DigitalPolicy {
    /// Where it was read from, for messages (of errors).
    pub shown: String,
    /// The messages rule, if any.
    pub messages: Option<Messages>,
    /// `[digital.customer_fields]`: each ident's rule, with the policy's `[keys]`.
    pub customer_fields: crate::anonymize::Policy,
    /// `[digital.case_fields]`: likewise for the cases' own custom fields.
    pub case_fields: crate::anonymize::Policy,
    /// `[digital.notes] op = "delete"`: the customers' notes are deleted.
    pub delete_notes: bool,
    /// SHA-256 of the policy text (a resumed job checks it runs the same policy).
    pub digest: String,
}

impl DigitalPolicy {
    /// Whether the cases themselves are worked on (their messages or their fields).
    pub fn touches_cases(&self) -> bool {
        self.messages.is_some() || !self.case_fields.rules.is_empty()
    }

    /// Whether the cases' customers are worked on (their fields or their notes).
    pub fn touches_customers(&self) -> bool {
        self.delete_notes || !self.customer_fields.rules.is_empty()
    }
}

#[derive(Deserialize)]
struct File {
    digital: Option<Spanned<Section>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    messages: Option<Spanned<MessagesFile>>,
    /// Compiled by `anonymize::Policy::parse_section`.
    #[serde(default, rename = "customer_fields")]
    _customer_fields: Option<toml::Value>,
    /// Compiled by `anonymize::Policy::parse_section`.
    #[serde(default, rename = "case_fields")]
    _case_fields: Option<toml::Value>,
    notes: Option<Spanned<NotesFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotesFile {
    op: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessagesFile {
    content: Option<String>,
    author_name: Option<String>,
    reason: Option<String>,
}

/// The `[digital]` section of the policy `text` read from `path` (keys through
/// `lookup`), every problem named with its line; a policy that would change nothing is
/// refused.
pub fn load(
    path: &std::path::Path,
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<DigitalPolicy> {
    build(path, text, lookup, false)
}

/// The policy a subject erasure applies on CXone's published API: every message of the
/// person's cases loses its content and author name with reason `GDPR` (whatever
/// `[digital] messages` says, which is for retention), and the `[digital]` field and
/// notes rules apply to their customers and cases. A policy without `[digital]` is
/// accepted: the messages are then all it changes.
pub fn for_erasure(
    path: &std::path::Path,
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<DigitalPolicy> {
    let mut p = build(path, text, lookup, true)?;
    p.messages = Some(Messages {
        content: true,
        author_name: true,
        reason: Reason::Gdpr,
    });
    p.digest = crate::sha256_hex(&format!("erasure\n{text}"));
    Ok(p)
}

fn build(
    path: &std::path::Path,
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    erasure: bool,
) -> Result<DigitalPolicy> {
    let shown = path.display().to_string();
    let (messages, delete_notes) = parse_messages(&shown, text, erasure)?;
    let section = |s| {
        crate::anonymize::Policy::parse_section(text, path, lookup, s).map_err(|problems| {
            Error::Invalid(format!(
                "{shown} does not validate; nothing was changed:\n  {}",
                problems.join("\n  ")
            ))
        })
    };
    let customer_fields = section(crate::anonymize::policy::Section::CustomerFields)?;
    let case_fields = section(crate::anonymize::policy::Section::CaseFields)?;
    if !erasure
        && messages.is_none()
        && !delete_notes
        && customer_fields.rules.is_empty()
        && case_fields.rules.is_empty()
    {
        return Err(Error::Invalid(format!(
            "{shown}: [digital] changes nothing: give messages = {{ content, author_name, reason }} or [digital.customer_fields]"
        )));
    }
    Ok(DigitalPolicy {
        shown,
        messages,
        customer_fields,
        case_fields,
        delete_notes,
        digest: crate::sha256_hex(text),
    })
}

/// `[digital] messages`, if given, and whether `[digital.notes]` deletes notes.
fn parse_messages(shown: &str, text: &str, erasure: bool) -> Result<(Option<Messages>, bool)> {
    let bad = |problems: Vec<String>| {
        Error::Invalid(format!(
            "{shown} does not validate; nothing was changed:\n  {}",
            problems.join("\n  ")
        ))
    };
    let file: File = toml::from_str(text)
        .map_err(|e| Error::Invalid(crate::parsing::toml_problem(shown, text, &e)))?;
    let Some(section) = file.digital else {
        if erasure {
            return Ok((None, false));
        }
        return Err(bad(vec![format!(
            "{shown}: no [digital] section: add one, such as [digital] messages = {{ content = \"remove\", author_name = \"remove\", reason = \"TTL\" }}"
        )]));
    };
    let s = section.into_inner();
    let notes = match s.notes {
        None => false,
        Some(n) => match n.get_ref().op.as_str() {
            "delete" => true,
            "keep" => false,
            other => {
                let line = crate::parsing::line_column(text, n.span().start).0;
                return Err(bad(vec![format!(
                    "{shown}:{line}: digital.notes.op: {other:?} is not \"delete\" or \"keep\""
                )]));
            }
        },
    };
    let Some(m) = s.messages else {
        return Ok((None, notes));
    };
    if erasure {
        // An erasure removes every message part with reason GDPR; the retention rule is
        // still checked, so a typo in it is not silently ignored.
        let _ = parse_rule(shown, text, m)?;
        return Ok((None, notes));
    }
    parse_rule(shown, text, m).map(|m| (Some(m), notes))
}

/// `[digital] messages = { content, author_name, reason }`, checked.
fn parse_rule(shown: &str, text: &str, m: Spanned<MessagesFile>) -> Result<Messages> {
    let bad = |problems: Vec<String>| {
        Error::Invalid(format!(
            "{shown} does not validate; nothing was changed:\n  {}",
            problems.join("\n  ")
        ))
    };
    let mline = crate::parsing::line_column(text, m.span().start).0;
    let m = m.into_inner();
    let mut problems = Vec::new();
    let mut op = |name: &str, v: Option<String>| match v.as_deref() {
        None | Some("keep") => false,
        Some("remove") => true,
        Some(other) => {
            problems.push(format!(
                "{shown}:{mline}: digital.messages.{name}: {other:?} is not \"remove\" or \"keep\""
            ));
            false
        }
    };
    let content = op("content", m.content);
    let author_name = op("author_name", m.author_name);
    let reason = match m.reason.as_deref() {
        Some("GDPR") => Reason::Gdpr,
        Some("TTL") | None => Reason::Ttl,
        Some("other") => Reason::Other,
        Some(r) => {
            problems.push(format!(
                "{shown}:{mline}: digital.messages.reason: {r:?} is not GDPR, TTL or other"
            ));
            Reason::Ttl
        }
    };
    if problems.is_empty() && !content && !author_name {
        problems.push(format!(
            "{shown}:{mline}: digital.messages: both content and author_name are kept: the policy changes nothing"
        ));
    }
    if !problems.is_empty() {
        return Err(bad(problems));
    }
    Ok(Messages {
        content,
        author_name,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digital_section_is_read_and_its_problems_named_by_line() {
        let parse = |_: &str, text: &str| load(std::path::Path::new("p.toml"), text, &|_| None);
        let p = parse(
            "p.toml",
            "[fields]\nemail = { op = \"erase\" }\n[digital]\nmessages = { content = \"remove\", reason = \"GDPR\" }\n",
        )
        .unwrap();
        let m = p.messages.unwrap();
        assert!(m.content && !m.author_name);
        assert_eq!(m.reason, Reason::Gdpr);
        assert!(p.customer_fields.rules.is_empty());
        let p = parse(
            "p.toml",
            "[digital.customer_fields]\nloyalty_number = { op = \"mask\", keep_last = 2 }\n",
        )
        .unwrap();
        assert!(p.messages.is_none() && p.customer_fields.rules.len() == 1);
        let e = parse(
            "p.toml",
            "[digital.customer_fields]\nloyalty_number = { op = \"encrypt\", key = \"k\" }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("p.toml:2: digital.customer_fields.loyalty_number: encrypt"),
            "{e}"
        );
        let e = parse(
            "p.toml",
            "[digital]\nmessages = { content = \"delete\", reason = \"later\" }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("p.toml:2: digital.messages.content"), "{e}");
        assert!(e.contains("digital.messages.reason"), "{e}");
        let e = parse("p.toml", "[fields]\n").unwrap_err().to_string();
        assert!(e.contains("no [digital] section"), "{e}");
        let e = parse("p.toml", "[digital]\nnotes = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("p.toml:2") && e.contains("notes"), "{e}");
    }
}
