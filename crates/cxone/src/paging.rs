//! What the real surface's pagers share: a bound on how much one listing may gather,
//! `_links.next` read and checked, enums that keep values they do not know, and
//! lenient numbers (spec §0.3).

use serde::{Deserialize, Deserializer};

use crate::error::{Error, Result};

/// The most items one listing gathers before it stops and says so.
pub const MAX_ITEMS: usize = 1_000_000;
/// The most pages one listing follows: a tenant that keeps naming a next page forever
/// cannot keep cxguard listing forever.
pub const MAX_PAGES: usize = 100_000;

/// A page's links (`_links`), as the ACD, UserHub and DFO customer routes give them.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Links {
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub next: Option<String>,
}

impl Links {
    /// The next page's URL, if the page names one (an empty or null link ends it).
    pub(crate) fn next_url(&self) -> Result<Option<url::Url>> {
        match self.next.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(raw) => url::Url::parse(raw).map(Some).map_err(|e| Error::Decode {
                what: "a page's next link".into(),
                request_id: "none".into(),
                message: format!("not a URL: {e}"),
            }),
        }
    }
}

/// Stops a listing that would pass the bounds.
pub(crate) fn check_bounds(what: &str, items: usize, pages: usize) -> Result<()> {
    if items > MAX_ITEMS || pages > MAX_PAGES {
        return Err(Error::Decode {
            what: what.to_string(),
            request_id: "none".into(),
            message: format!("more than {MAX_ITEMS} items or {MAX_PAGES} pages; stopped listing"),
        });
    }
    Ok(())
}

/// A string, or a number written as text (some schemas disagree on the type).
pub(crate) fn lenient_opt_string<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}

/// A whole number, or one written as text.
pub(crate) fn lenient_opt_i64<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<i64>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// An enum the API spells as text, with `Unknown(String)` for a value cxguard does not
/// know yet (published enums lag the live service, spec §0.3).
macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(from = "String", into = "String")]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vm])* $v,)+
            /// A value this version does not know, as sent.
            Unknown(String),
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $($s => $name::$v,)+
                    _ => $name::Unknown(s),
                }
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> Self {
                v.as_str().to_string()
            }
        }

        impl $name {
            /// As the API spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$v => $s,)+
                    $name::Unknown(s) => s,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use text_enum;
