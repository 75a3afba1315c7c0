//! One rule of a masking policy (`op = …` and its options), compiled to an
//! [`Operator`] for its field — the same for `[fields]` and `[digital.customer_fields]`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::policy::{Field, Keep, MIN_FPE_DIGITS, Operator};
use crate::keys::{Key, KeySpec};
use crate::pseudonym::Kind;

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
