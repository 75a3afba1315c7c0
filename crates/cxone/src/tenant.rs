//! CXone's discovery (spec §2.3–2.6): the token's claims name the tenant, and
//! `{issuer}/.well-known/cxone-configuration?tenantId=` names its hosts. Every URL the
//! document gives is held to the rule configured URLs follow (https; plain http only to
//! loopback unless allowed), bounded in length, and then used exactly as built.
//!
//! Not here: the token itself (`auth.rs`) and the API areas that use the hosts.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{Error, Result};
use crate::settings::{CxoneEndpoints, Surface, discovered_base};

/// The longest JWT whose claims are read.
const MAX_JWT: usize = 16 * 1024;

/// What a CXone token says of its tenant (spec §2.3). Names of the user are not kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    /// `tenantId`: a UUID.
    pub tenant_id: Option<String>,
    /// `tenant`: the tenant's name.
    pub tenant: Option<String>,
    /// `icBUId`: the ACD business unit (negative in some dev tenants).
    pub business_unit: Option<i64>,
    /// `icClusterId`, e.g. `B32`.
    pub cluster: Option<String>,
    /// `area`, e.g. `na1` (only some tokens carry it).
    pub area: Option<String>,
}

impl Claims {
    /// The claims of a JWT's payload, read without checking its signature: the token
    /// came straight from the configured issuer over a checked connection, and only
    /// names the tenant to discover. `None` when it is not a JWT.
    pub(crate) fn of(jwt: &str) -> Option<Claims> {
        if jwt.len() > MAX_JWT {
            return None;
        }
        let payload = jwt.split('.').nth(1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        let text = |k: &str| {
            v.get(k).and_then(|x| match x {
                serde_json::Value::String(s) if !s.is_empty() && s.len() <= 200 => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        let bu = v.get("icBUId").and_then(|x| {
            x.as_i64()
                .or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()))
        });
        Some(Claims {
            tenant_id: text("tenantId"),
            tenant: text("tenant"),
            business_unit: bu,
            cluster: text("icClusterId"),
            area: text("area"),
        })
    }
}

/// `cxone-configuration` (spec §2.4), the fields cxguard uses.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Configuration {
    #[serde(rename = "api_endpoint")]
    api_endpoint: Option<String>,
    #[serde(rename = "auth_endpoint")]
    auth_endpoint: Option<String>,
    #[serde(rename = "ui_endpoint")]
    ui_endpoint: Option<String>,
    area: Option<String>,
    cluster: Option<String>,
    tenant_id: Option<String>,
    #[serde(rename = "private")]
    private: Option<bool>,
}

/// A discovered tenant: who it is and where each API area lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    /// The tenant's id (UUID).
    pub tenant_id: String,
    /// The tenant's name, when the token says.
    pub name: Option<String>,
    /// The area (`na1`, `eu1`, …), from discovery, else the token.
    pub area: Option<String>,
    /// The cluster (`B32`, …), from discovery, else the token.
    pub cluster: Option<String>,
    /// The ACD business unit, when the token says.
    pub business_unit: Option<i64>,
    /// Whether discovery calls the tenant private.
    pub private: Option<bool>,
    /// The platform API base (`api_endpoint`).
    #[serde(serialize_with = "url_text")]
    pub api: Url,
    /// The UserHub host (access keys).
    #[serde(serialize_with = "url_text")]
    pub userhub: Url,
    /// `{api}/dfo/3.0/`.
    #[serde(serialize_with = "url_text")]
    pub dfo: Url,
    /// `{api}/inContactAPI/services/{version}/`.
    #[serde(serialize_with = "url_text")]
    pub acd: Url,
    /// The discovery document it came from.
    pub discovered_from: String,
}

fn url_text<S: serde::Serializer>(u: &Url, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(u.as_str())
}

/// The discovery document's URL for `tenant_id`.
pub(crate) fn configuration_url(issuer: &Url, tenant_id: &str) -> Result<Url> {
    let mut url = Url::parse(&format!(
        "{}/.well-known/cxone-configuration",
        issuer.as_str().trim_end_matches('/')
    ))
    .map_err(|e| Error::Build(format!("issuer: cannot build the discovery URL: {e}")))?;
    url.query_pairs_mut().append_pair("tenantId", tenant_id);
    Ok(url)
}

/// The tenant's id from the token's claims; a token without one cannot be discovered.
pub(crate) fn tenant_id(claims: Option<&Claims>, issuer: &Url) -> Result<String> {
    let id = claims.and_then(|c| c.tenant_id.clone());
    match id {
        Some(id)
            if id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok(id)
        }
        Some(_) => Err(discovery_error(
            issuer,
            "the token's tenantId claim is not a tenant id",
        )),
        None => Err(discovery_error(
            issuer,
            "the token has no tenantId claim (neither the id token nor the access token): the tenant cannot be discovered",
        )),
    }
}

fn discovery_error(issuer: &Url, message: &str) -> Error {
    Error::Discovery {
        url: issuer.to_string(),
        message: message.to_string(),
    }
}

/// The tenant, from its discovery document's body and the token's claims, with the
/// configured overrides applied.
pub(crate) fn from_document(
    url: &Url,
    body: &[u8],
    tenant_id: String,
    claims: Option<&Claims>,
    surface: &Surface,
    allow_insecure: bool,
) -> Result<Tenant> {
    let bad = |message: String| Error::Discovery {
        url: url.to_string(),
        message,
    };
    let doc: Configuration = serde_json::from_slice(body)
        .map_err(|e| bad(format!("not a cxone-configuration document: {e}")))?;
    if let Some(said) = &doc.tenant_id
        && !said.is_empty()
        && said != &tenant_id
    {
        return Err(bad(format!(
            "the document is for tenant {said:?}, not {tenant_id:?}"
        )));
    }
    let overrides = match surface {
        Surface::Cxone(e) => (**e).clone(),
        Surface::Tutorial => CxoneEndpoints::default(),
    };
    let api = match (&overrides.api, &doc.api_endpoint) {
        (Some(u), _) => u.clone(),
        (None, Some(raw)) => {
            discovered_base("api_endpoint", raw, allow_insecure).map_err(|e| bad(e.to_string()))?
        }
        (None, None) => return Err(bad("no api_endpoint".into())),
    };
    let userhub = match (&overrides.userhub, doc.auth_endpoint.or(doc.ui_endpoint)) {
        (Some(u), _) => u.clone(),
        (None, Some(raw)) => discovered_base("auth_endpoint", &raw, allow_insecure)
            .map_err(|e| bad(e.to_string()))?,
        (None, None) => return Err(bad("no auth_endpoint or ui_endpoint".into())),
    };
    let join = |base: &Url, path: &str| {
        base.join(path)
            .map_err(|e| bad(format!("cannot build {path} below {base}: {e}")))
    };
    let dfo = join(&api, "dfo/3.0/")?;
    let acd = join(
        &api,
        &format!("inContactAPI/services/{}/", overrides.acd_version),
    )?;
    Ok(Tenant {
        tenant_id,
        name: claims.and_then(|c| c.tenant.clone()),
        area: doc.area.or_else(|| claims.and_then(|c| c.area.clone())),
        cluster: doc
            .cluster
            .or_else(|| claims.and_then(|c| c.cluster.clone())),
        business_unit: claims.and_then(|c| c.business_unit),
        private: doc.private,
        api,
        userhub,
        dfo,
        acd,
        discovered_from: url.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: serde_json::Value) -> String {
        let e = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.{}",
            e(br#"{"alg":"EdDSA"}"#),
            e(payload.to_string().as_bytes()),
            e(b"sig")
        )
    }

    #[test]
    fn claims_are_read_from_the_payload_and_numbers_may_be_strings() {
        let c = Claims::of(&jwt(serde_json::json!({
            "tenantId": "11e7-aa", "tenant": "acme", "icBUId": "-42", "icClusterId": "B32",
            "given_name": "Ada"
        })))
        .unwrap();
        assert_eq!(c.tenant_id.as_deref(), Some("11e7-aa"));
        assert_eq!(c.business_unit, Some(-42));
        assert_eq!(c.cluster.as_deref(), Some("B32"));
        assert!(Claims::of("not a jwt").is_none());
        assert!(Claims::of(&"a".repeat(MAX_JWT + 1)).is_none());
    }

    #[test]
    fn a_document_is_checked_and_its_urls_bounded() {
        let issuer = Url::parse("https://cxone.niceincontact.com").unwrap();
        let url = configuration_url(&issuer, "t-1").unwrap();
        assert_eq!(
            url.as_str(),
            "https://cxone.niceincontact.com/.well-known/cxone-configuration?tenantId=t-1"
        );
        let surface = Surface::Cxone(Box::default());
        let doc = |v: serde_json::Value| {
            from_document(
                &url,
                v.to_string().as_bytes(),
                "t-1".into(),
                None,
                &surface,
                false,
            )
        };
        let t = doc(serde_json::json!({
            "api_endpoint": "https://api-na1.niceincontact.com/",
            "auth_endpoint": "https://na1.nice-incontact.com", "area": "na1", "tenantId": "t-1"
        }))
        .unwrap();
        assert_eq!(t.dfo.as_str(), "https://api-na1.niceincontact.com/dfo/3.0/");
        assert_eq!(
            t.acd.as_str(),
            "https://api-na1.niceincontact.com/inContactAPI/services/v30.0/"
        );
        assert_eq!(t.userhub.as_str(), "https://na1.nice-incontact.com/");
        for (v, says) in [
            (
                serde_json::json!({"auth_endpoint": "https://x.example"}),
                "no api_endpoint",
            ),
            (
                serde_json::json!({"api_endpoint": "http://api.example", "auth_endpoint": "https://x.example"}),
                "api_endpoint",
            ),
            (
                serde_json::json!({"api_endpoint": format!("https://x.example/{}", "a".repeat(3000)), "auth_endpoint": "https://x.example"}),
                "2048",
            ),
            (
                serde_json::json!({"api_endpoint": "https://a.example", "auth_endpoint": "https://x.example", "tenantId": "other"}),
                "not \"t-1\"",
            ),
        ] {
            let e = doc(v).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
        assert!(
            tenant_id(None, &issuer)
                .unwrap_err()
                .to_string()
                .contains("tenantId")
        );
    }
}
