//! Which contacts a run covers ([`Selection`]: ids, a retention cut-off, or all) and
//! how it runs ([`Options`]). Both are checked here, before any call.

use crate::{Error, Result};

/// Which contacts a run covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These ids (erasure requests).
    Ids(Vec<String>),
    /// Contacts last updated before this time (retention).
    UpdatedBefore(time::OffsetDateTime),
    /// Every contact.
    All,
}

impl Selection {
    /// Reads an ids file: one id a line; blank lines and `#` comments are ignored,
    /// duplicates dropped. An empty list or a malformed id is an error naming the line.
    pub fn from_ids_text(text: &str, shown: &str) -> Result<Self> {
        let mut ids = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, line) in text.lines().enumerate() {
            let id = line.split('#').next().unwrap_or("").trim();
            if id.is_empty() {
                continue;
            }
            ledger::details::check_identifier("contact id", id)
                .map_err(|e| Error::Invalid(format!("{shown}:{}: {e}", i + 1)))?;
            if seen.insert(id.to_string()) {
                ids.push(id.to_string());
            }
        }
        if ids.is_empty() {
            return Err(Error::Invalid(format!(
                "{shown}: no contact ids (one id a line): the selection is empty"
            )));
        }
        Ok(Selection::Ids(ids))
    }

    /// `--updated-before`: an RFC 3339 time or a date (midnight UTC); not in the future.
    pub fn updated_before(text: &str, now: time::OffsetDateTime) -> Result<Self> {
        let t = crate::parsing::date_or_time("--updated-before", text)?;
        if t > now {
            return Err(Error::Invalid(format!(
                "--updated-before: {text} is in the future; a retention cut-off must be in the past"
            )));
        }
        Ok(Selection::UpdatedBefore(t))
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Selection::Ids(ids) => {
                let lines: String = ids.iter().map(|id| format!("{id}\n")).collect();
                format!("ids:{}:{}", ids.len(), crate::sha256_hex(&lines))
            }
            Selection::UpdatedBefore(t) => format!("updated-before:{}", t.unix_timestamp()),
            Selection::All => "all".into(),
        }
    }

    pub(crate) fn label(&self) -> &'static str {
        match self {
            Selection::Ids(_) => "ids",
            Selection::UpdatedBefore(_) => "updated_before",
            Selection::All => "all",
        }
    }
}

/// How a run runs: concurrency, page size, who runs it, what to resume.
#[derive(Debug, Clone)]
pub struct Options {
    /// PATCHes in flight at once.
    pub concurrency: usize,
    /// Contacts per listing page.
    pub page_size: cxone::PageSize,
    /// Who runs the job, for the audit trail (an identifier).
    pub actor: String,
    /// Resume this job instead of finding or starting one.
    pub resume: Option<String>,
    /// Re-reads after a 412 before a contact is given up.
    pub conflict_retries: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            concurrency: 16,
            page_size: cxone::PageSize::DEFAULT_BULK,
            actor: "cxguard".into(),
            resume: None,
            conflict_retries: 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_validate() {
        let now = time::OffsetDateTime::now_utc();
        assert!(
            Selection::updated_before("2999-01-01", now)
                .unwrap_err()
                .to_string()
                .contains("in the future")
        );
        assert!(Selection::updated_before("last year", now).is_err());
        assert!(matches!(
            Selection::updated_before("2024-06-01", now),
            Ok(Selection::UpdatedBefore(_))
        ));
        assert!(
            Selection::from_ids_text("# none\n\n", "ids.txt")
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        let e = Selection::from_ids_text("c-1\nann@example.com\n", "ids.txt")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("ids.txt:2:"), "{e}");
        assert_eq!(
            Selection::from_ids_text("c-1\nc-2 # dup below\nc-1\n", "f").unwrap(),
            Selection::Ids(vec!["c-1".into(), "c-2".into()])
        );
    }
}
