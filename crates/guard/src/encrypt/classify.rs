//! Which columns hold sensitive data, by name and type: the built-in classifier behind
//! coverage ("sensitive columns still in clear"), adjustable with `[datastore] sensitive`
//! and `not_sensitive`.
//!
//! A column name is split into words (`date_of_birth`, `cardNumber`, `SSN` → `date of
//! birth`, `card number`, `ssn`) and matched against word patterns, so `email` and
//! `customer_email` match but `emailed_flag`-like near misses stay rare. Configuration wins
//! over the built-in list: a name in `not_sensitive` is never sensitive, one in `sensitive`
//! always is.

/// Word patterns that make a column sensitive: each is a sequence of words that must
/// appear together in the column's name.
const PATTERNS: &[&[&str]] = &[
    &["ssn"],
    &["social", "security"],
    &["national", "id"],
    &["nin"],
    &["card"],
    &["pan"],
    &["cvv"],
    &["cvc"],
    &["iban"],
    &["account", "number"],
    &["bank", "account"],
    &["routing", "number"],
    &["email"],
    &["e", "mail"],
    &["phone"],
    &["mobile"],
    &["msisdn"],
    &["date", "of", "birth"],
    &["dob"],
    &["birth", "date"],
    &["birthdate"],
    &["address"],
    &["street"],
    &["postal", "code"],
    &["zip"],
    &["mrn"],
    &["medical"],
    &["diagnosis"],
    &["health"],
    &["passport"],
    &["tax", "id"],
    &["tin"],
    &["vat", "number"],
    &["salary"],
    &["income"],
    &["driver", "license"],
    &["drivers", "license"],
    &["licence"],
    &["full", "name"],
    &["first", "name"],
    &["last", "name"],
    &["surname"],
];

/// The classifier, with the configured overrides.
#[derive(Debug, Clone, Default)]
pub struct Classifier {
    /// Column names always sensitive (exact, case-insensitive).
    pub sensitive: Vec<String>,
    /// Column names never sensitive (exact, case-insensitive); wins over everything.
    pub not_sensitive: Vec<String>,
}

impl Classifier {
    /// Whether column `name` of type `kind` holds sensitive data.
    pub fn is_sensitive(&self, name: &str, kind: &str) -> bool {
        let same = |list: &[String]| list.iter().any(|n| n.eq_ignore_ascii_case(name));
        if same(&self.not_sensitive) {
            return false;
        }
        if same(&self.sensitive) {
            return true;
        }
        if kind.eq_ignore_ascii_case("boolean") {
            return false;
        }
        let words = words(name);
        PATTERNS.iter().any(|p| contains_run(&words, p))
    }
}

/// `cardNumber`, `card_number`, `Card-Number` → `["card", "number"]`.
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for ch in name.chars() {
        if !ch.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if ch.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = ch.is_lowercase() || ch.is_ascii_digit();
        cur.extend(ch.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn contains_run(words: &[String], pattern: &[&str]) -> bool {
    words
        .windows(pattern.len())
        .any(|w| w.iter().zip(pattern).all(|(a, b)| a == b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_classified_by_words() {
        let c = Classifier::default();
        for s in [
            "ssn",
            "SSN",
            "card_number",
            "cardNumber",
            "email",
            "customer_email",
            "phone",
            "date_of_birth",
            "dateOfBirth",
            "address_line1",
            "iban",
            "passport_number",
            "mrn",
            "tax_id",
            "salary",
            "full_name",
        ] {
            assert!(c.is_sensitive(s, "string"), "{s}");
        }
        for s in [
            "customer_id",
            "loyalty_points",
            "city",
            "country",
            "agent_notes",
            "panel",
            "cardinality",
            "tinted",
        ] {
            assert!(!c.is_sensitive(s, "string"), "{s}");
        }
        assert!(!c.is_sensitive("email_opt_in", "boolean"));
    }

    #[test]
    fn configuration_wins() {
        let c = Classifier {
            sensitive: vec!["agent_notes".into()],
            not_sensitive: vec!["city".into(), "email".into()],
        };
        assert!(c.is_sensitive("Agent_Notes", "string"));
        assert!(!c.is_sensitive("email", "string"));
    }
}
