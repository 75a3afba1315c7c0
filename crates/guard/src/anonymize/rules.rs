//! One rule of a masking policy (`op = …` and its options), compiled to an
//! [`Operator`] for its field — the same for `[fields]` and `[digital.customer_fields]`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::keys::{Key, KeySpec};
use crate::pseudonym::Kind;

/// FF1 needs radix^len ≥ 1,000,000 (NIST SP 800-38G rev. 1): six decimal digits.
pub const MIN_FPE_DIGITS: usize = 6;

/// A contact field the policy can name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    /// `firstName`.
    FirstName,
    /// `lastName`.
    LastName,
    /// `email`.
    Email,
    /// `phone`.
    Phone,
    /// `customFields.<name>`.
    Custom(String),
}

impl Field {
    /// A field from its name in the policy.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "firstName" => Ok(Field::FirstName),
            "lastName" => Ok(Field::LastName),
            "email" => Ok(Field::Email),
            "phone" => Ok(Field::Phone),
            _ => match s.strip_prefix("customFields.") {
                Some(name)
                    if !name.is_empty()
                        && ledger::details::check_identifier("field", name).is_ok() =>
                {
                    Ok(Field::Custom(name.to_string()))
                }
                _ => Err(format!(
                    "unknown field {s:?}: firstName, lastName, email, phone, or customFields.<name>"
                )),
            },
        }
    }

    /// The name as the API and the policy write it.
    pub fn name(&self) -> String {
        match self {
            Field::FirstName => "firstName".into(),
            Field::LastName => "lastName".into(),
            Field::Email => "email".into(),
            Field::Phone => "phone".into(),
            Field::Custom(n) => format!("customFields.{n}"),
        }
    }

    /// The spec's limit in characters (§4).
    pub fn limit(&self) -> usize {
        match self {
            Field::Phone => 50,
            _ => 255,
        }
    }
}

/// Which characters `mask` leaves visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The first n characters.
    First(usize),
    /// The last n characters.
    Last(usize),
}

/// What a rule does to its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    /// Delete the value.
    Erase,
    /// Replace characters with `ch`, leaving `keep` of them visible.
    Mask {
        /// Which characters stay visible.
        keep: Keep,
        /// The mask character.
        ch: char,
        /// Characters left as they are (separators).
        ignore: String,
    },
    /// Replace the value with a keyed hash (HMAC-SHA256) of its normalized form.
    Pseudonymize {
        /// The name of the key in `[keys]`.
        key: String,
        /// How to normalize (email or phone); guessed from the field when `None`.
        kind: Option<Kind>,
    },
    /// Format-preserving encryption (FF1) of the digits, reversible with the key.
    Encrypt {
        /// The name of the key in `[keys]`.
        key: String,
    },
    /// Replace the value with a fixed text.
    Replace {
        /// The text.
        value: String,
    },
    /// Leave the field alone.
    Keep,
}

impl Operator {
    /// The operator's name as audit entries record it.
    pub fn label(&self) -> &'static str {
        match self {
            Operator::Erase => "erase",
            Operator::Mask { .. } => "mask",
            Operator::Pseudonymize { .. } => "pseudonymize",
            Operator::Encrypt { .. } => "encrypt",
            Operator::Replace { .. } => "replace",
            Operator::Keep => "keep",
        }
    }

    /// The algorithm as the consent event names it.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Operator::Erase => "erase",
            Operator::Mask { .. } => "character-mask",
            Operator::Pseudonymize { .. } => "hmac-sha256",
            Operator::Encrypt { .. } => "ff1-aes256",
            Operator::Replace { .. } => "replace",
            Operator::Keep => "keep",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleFile {
    pub(super) op: String,
    pub(super) keep_first: Option<usize>,
    pub(super) keep_last: Option<usize>,
    #[serde(rename = "char")]
    pub(super) mask_char: Option<String>,
    pub(super) ignore: Option<String>,
    pub(super) key: Option<String>,
    pub(super) value: Option<String>,
    /// For custom fields: how to normalize before pseudonymizing (email, phone).
    pub(super) normalize: Option<String>,
}

pub(super) fn compile(
    field: &Field,
    r: &RuleFile,
    key_specs: &BTreeMap<String, Spanned<KeySpec>>,
    keys: &BTreeMap<String, Key>,
) -> Result<Operator, String> {
    check_options(r)?;
    let key_ref = |r: &RuleFile| -> Result<String, String> {
        let k = r
            .key
            .clone()
            .ok_or_else(|| format!("op = {:?} needs key = \"<name in [keys]>\"", r.op))?;
        if !key_specs.contains_key(&k) {
            return Err(format!("key {k:?} is not defined in [keys]"));
        }
        if !keys.contains_key(&k) {
            return Err(format!("key {k:?} could not be loaded (see its error)"));
        }
        Ok(k)
    };
    let limit = field.limit();
    let op = match r.op.as_str() {
        "erase" => Operator::Erase,
        "keep" => Operator::Keep,
        "mask" => mask(r)?,
        "pseudonymize" => {
            if limit < 64 {
                return Err(format!(
                    "pseudonymize gives 64 characters; {} holds at most {limit}",
                    field.name()
                ));
            }
            let kind = normalization(field, r)?;
            Operator::Pseudonymize {
                key: key_ref(r)?,
                kind,
            }
        }
        "encrypt" => {
            // FF1 here keeps the format of digit strings; text would stay in clear.
            if matches!(field, Field::FirstName | Field::LastName | Field::Email) {
                return Err(format!(
                    "encrypt works on digit strings of at least {} digits (phone numbers, account numbers); {} holds text: use pseudonymize, mask or erase",
                    MIN_FPE_DIGITS,
                    field.name()
                ));
            }
            Operator::Encrypt { key: key_ref(r)? }
        }
        "replace" => {
            let v = r
                .value
                .clone()
                .ok_or("op = \"replace\" needs value = \"…\"")?;
            if v.chars().count() > limit {
                return Err(format!(
                    "the replacement has {} characters; {} holds at most {limit}",
                    v.chars().count(),
                    field.name()
                ));
            }
            Operator::Replace { value: v }
        }
        _ => unreachable!("checked above"),
    };
    Ok(op)
}

/// The rule gives only the options its operator takes.
fn check_options(r: &RuleFile) -> Result<(), String> {
    let allowed: &[&str] = match r.op.as_str() {
        "erase" | "keep" => &[],
        "mask" => &["keep_first", "keep_last", "char", "ignore"],
        "pseudonymize" => &["key", "normalize"],
        "encrypt" => &["key"],
        "replace" => &["value"],
        other => {
            return Err(format!(
                "unknown operator {other:?}: erase, mask, pseudonymize, encrypt, replace or keep"
            ));
        }
    };
    let given = [
        ("keep_first", r.keep_first.is_some()),
        ("keep_last", r.keep_last.is_some()),
        ("char", r.mask_char.is_some()),
        ("ignore", r.ignore.is_some()),
        ("key", r.key.is_some()),
        ("value", r.value.is_some()),
        ("normalize", r.normalize.is_some()),
    ];
    if let Some((name, _)) = given.iter().find(|(n, set)| *set && !allowed.contains(n)) {
        return Err(format!("{name} does not apply to op = {:?}", r.op));
    }
    Ok(())
}

/// `op = "mask"`: keep the first or last characters, mask the rest with one character.
fn mask(r: &RuleFile) -> Result<Operator, String> {
    let keep = match (r.keep_first, r.keep_last) {
        (Some(n), None) => Keep::First(n),
        (None, Some(n)) => Keep::Last(n),
        (None, None) => Keep::Last(0),
        (Some(_), Some(_)) => return Err("give keep_first or keep_last, not both".into()),
    };
    let ch = match r.mask_char.as_deref() {
        None => '*',
        Some(s) if s.chars().count() == 1 => s.chars().next().unwrap_or('*'),
        Some(s) => return Err(format!("char must be one character, not {s:?}")),
    };
    let ignore = r.ignore.clone().unwrap_or_default();
    if ignore.contains(ch) {
        return Err(format!("ignore must not contain the mask character {ch:?}"));
    }
    Ok(Operator::Mask { keep, ch, ignore })
}

/// How `pseudonymize` normalizes before hashing: as given, else by the field.
fn normalization(field: &Field, r: &RuleFile) -> Result<Option<Kind>, String> {
    Ok(match (field, r.normalize.as_deref()) {
        (_, Some("email")) => Some(Kind::Email),
        (_, Some("phone")) => Some(Kind::Phone),
        (_, Some("none")) => None,
        (_, Some(other)) => {
            return Err(format!(
                "normalize must be email, phone or none, not {other:?}"
            ));
        }
        (Field::Email, None) => Some(Kind::Email),
        (Field::Phone, None) => Some(Kind::Phone),
        _ => None,
    })
}
