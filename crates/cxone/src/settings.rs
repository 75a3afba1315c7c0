//! Connection settings: where the tenant is, how to authenticate, and how hard to try.
//! Built by the caller (the CLI reads `cxguard.toml` and the environment); validated
//! here so every caller gets the same errors.

use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::error::{Error, Result};

/// How the client obtains tokens. Secrets are held in `secrecy` types: their `Debug`
/// prints `[REDACTED]`.
#[derive(Clone)]
pub enum Grant {
    /// OAuth 2.0 client credentials (RFC 6749 §4.4).
    ClientCredentials {
        /// The API client's id.
        client_id: String,
        /// The API client's secret.
        client_secret: SecretString,
    },
    /// The password grant with a user's access key, authenticated as a registered app.
    AccessKey {
        /// The user access key's id.
        access_key_id: String,
        /// The user access key's secret.
        access_key_secret: SecretString,
        /// The API client's id.
        client_id: String,
        /// The API client's secret.
        client_secret: SecretString,
    },
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Grant::ClientCredentials { client_id, .. } => f
                .debug_struct("ClientCredentials")
                .field("client_id", client_id)
                .field("client_secret", &"[REDACTED]")
                .finish(),
            Grant::AccessKey {
                access_key_id,
                client_id,
                ..
            } => f
                .debug_struct("AccessKey")
                .field("access_key_id", access_key_id)
                .field("client_id", client_id)
                .field("secrets", &"[REDACTED]")
                .finish(),
        }
    }
}

/// When and how long to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// First backoff ceiling; each later one doubles, up to `max_delay`.
    pub base_delay: Duration,
    /// The largest backoff between two attempts.
    pub max_delay: Duration,
    /// No retry starts after this much time has passed since the first attempt.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            deadline: Duration::from_secs(120),
        }
    }
}

/// The longest token lifetime the client believes: a larger `expires_in` is capped to it.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Default cap of one response body (1 MiB).
pub const DEFAULT_MAX_BODY: usize = 1 << 20;
/// Default cap of one contact page's body (16 MiB).
pub const DEFAULT_MAX_PAGE_BODY: usize = 16 << 20;

/// Which API a tenant is spoken to on (DESIGN.md, "Two API surfaces").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Surface {
    /// The tutorials' routes (`spec/cxone-api.md`), below `base_url`.
    Tutorial,
    /// CXone's published API (`spec/cxone-real.md`): the hosts are discovered from the
    /// issuer and the token's `tenantId` (§2.6), unless overridden here.
    Cxone(Box<CxoneEndpoints>),
}

/// Overrides of what the real surface's discovery finds, for tenants whose discovery
/// differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CxoneEndpoints {
    /// The platform API base (`api_endpoint`): DFO, privacy, data policies, ACD.
    pub api: Option<Url>,
    /// The UserHub host (access-key management).
    pub userhub: Option<Url>,
    /// The ACD API version, `v30.0` by default (`{api}/inContactAPI/services/{version}`).
    pub acd_version: String,
    /// DFO reads (get contact, searches) per hour the client paces itself to; the
    /// published tenant budget, 120,000, by default (spec-real §4.1).
    pub dfo_reads_per_hour: u32,
    /// DFO writes per hour, every case together ("update contact", 1,000,000).
    pub dfo_updates_per_hour: u32,
    /// Writes to one case at once before its refill paces them (250).
    pub dfo_contact_burst: u32,
    /// Writes to one case per minute once its burst is spent (17).
    pub dfo_contact_per_minute: u32,
}

impl Default for CxoneEndpoints {
    fn default() -> Self {
        CxoneEndpoints {
            api: None,
            userhub: None,
            acd_version: DEFAULT_ACD_VERSION.into(),
            dfo_reads_per_hour: DFO_READS_PER_HOUR,
            dfo_updates_per_hour: 1_000_000,
            dfo_contact_burst: 250,
            dfo_contact_per_minute: 17,
        }
    }
}

/// CXone's published DFO "get contact" budget per tenant and hour (spec-real §4.1).
pub const DFO_READS_PER_HOUR: u32 = 120_000;

/// The ACD API version used unless configured (the one cxone-mcp pins, spec §2.6).
pub const DEFAULT_ACD_VERSION: &str = "v30.0";
/// The commercial global issuer (spec §1).
pub const DEFAULT_ISSUER: &str = "https://cxone.niceincontact.com";
/// The longest URL a tenant's discovery document may name.
pub const MAX_DISCOVERED_URL: usize = 2048;

/// Everything a [`crate::Client`] needs: where the tenant is, how to authenticate, and the
/// bounds it keeps (timeouts, body caps, rate, retries).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The API's base URL, e.g. `https://api-na1.niceincontact.com`, with a trailing slash
    /// so paths join below it.
    pub base_url: Url,
    /// The token endpoint, used exactly as written.
    pub token_url: Url,
    /// An OpenID issuer: when set, the token endpoint is read from
    /// `{issuer}/.well-known/openid-configuration` (RFC 8414) and `token_url` is not used.
    pub issuer: Option<Url>,
    /// Allow `http://` to hosts other than loopback (never for production tenants).
    pub allow_insecure_http: bool,
    /// The largest response body accepted, in bytes (contact pages excepted).
    pub max_body: usize,
    /// The largest contact page accepted, in bytes.
    pub max_page_body: usize,
    /// How to obtain tokens.
    pub grant: Grant,
    /// Scopes to request; `None` asks for every scope the client is allowed.
    pub scopes: Option<Vec<String>>,
    /// Limit of one attempt, from sending to the last byte of the response.
    pub request_timeout: Duration,
    /// Limit of opening one connection.
    pub connect_timeout: Duration,
    /// Client-side cap in requests per second, on top of what the server's headers say.
    pub max_rate: Option<u32>,
    /// When and how long to retry.
    pub retry: RetryPolicy,
    /// Requests in flight at most (a connection pool bound).
    pub max_idle_per_host: usize,
    /// The API surface: the tutorials' routes or CXone's published ones.
    pub surface: Surface,
}

impl Settings {
    /// Settings with the defaults for everything but where and who. `token_url` defaults
    /// to `{base_url}/oauth/token`.
    pub fn new(base_url: &str, grant: Grant) -> Result<Self> {
        let base_url = parse_base_url("base_url", base_url)?;
        let token_url = base_url
            .join("oauth/token")
            .map_err(|e| Error::Build(format!("base_url: cannot derive the token URL: {e}")))?;
        Ok(Settings {
            base_url,
            token_url,
            issuer: None,
            allow_insecure_http: false,
            max_body: DEFAULT_MAX_BODY,
            max_page_body: DEFAULT_MAX_PAGE_BODY,
            grant,
            scopes: None,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_rate: None,
            retry: RetryPolicy::default(),
            max_idle_per_host: 64,
            surface: Surface::Tutorial,
        })
    }

    /// Settings for CXone's published API: tokens from `issuer`'s discovery document
    /// (`{issuer}/auth/token` on a real tenant), every other host discovered (§2.6).
    /// `base_url` is the issuer; it is not used for API calls.
    pub fn cxone(issuer: &str, grant: Grant, endpoints: CxoneEndpoints) -> Result<Self> {
        let mut s = Settings::new(issuer, grant)
            .map_err(|e| Error::Build(e.to_string().replacen("base_url", "issuer", 1)))?
            .issuer(issuer)?;
        check_acd_version(&endpoints.acd_version)?;
        s.surface = Surface::Cxone(Box::new(endpoints));
        Ok(s)
    }

    /// The DFO budgets to pace to, on the real surface.
    pub fn dfo_budget(&self) -> Option<&CxoneEndpoints> {
        match &self.surface {
            Surface::Cxone(e) => Some(e),
            Surface::Tutorial => None,
        }
    }

    /// Whether this is CXone's published API.
    pub fn is_cxone(&self) -> bool {
        matches!(self.surface, Surface::Cxone(_))
    }

    /// The token endpoint, used exactly as written (no slash added).
    pub fn token_url(mut self, url: &str) -> Result<Self> {
        self.token_url = parse_http_url("token_url", url)?;
        Ok(self)
    }

    /// An OpenID issuer whose discovery document names the token endpoint.
    pub fn issuer(mut self, url: &str) -> Result<Self> {
        let mut u = parse_http_url("issuer", url)?;
        // RFC 8414 §3: the well-known path is appended to the issuer without its slash.
        let p = u.path().trim_end_matches('/').to_string();
        u.set_path(&p);
        self.issuer = Some(u);
        Ok(self)
    }

    /// Checks the settings as a whole; [`crate::Client::new`] calls it.
    pub fn validate(&self) -> Result<()> {
        let id_ok = |field: &str, v: &str| {
            if v.trim().is_empty() {
                Err(Error::Build(format!("{field} is empty")))
            } else {
                Ok(())
            }
        };
        match &self.grant {
            Grant::ClientCredentials { client_id, .. } => id_ok("client_id", client_id)?,
            Grant::AccessKey {
                access_key_id,
                client_id,
                ..
            } => {
                id_ok("access_key_id", access_key_id)?;
                id_ok("client_id", client_id)?;
            }
        }
        if self.max_rate == Some(0) {
            return Err(Error::Build(
                "max_rate: 0 requests/s would send nothing; omit it for no cap".into(),
            ));
        }
        if self.retry.max_attempts == 0 {
            return Err(Error::Build("retry.max_attempts must be at least 1".into()));
        }
        if self.request_timeout.is_zero() {
            return Err(Error::Build("request_timeout must be more than 0".into()));
        }
        if self.max_body == 0 || self.max_page_body == 0 {
            return Err(Error::Build(
                "response body caps must be more than 0".into(),
            ));
        }
        if self.is_cxone() {
            // The base is the issuer; the token endpoint comes from its discovery.
            check_transport_security("issuer", &self.base_url, self.allow_insecure_http)?;
        } else {
            check_transport_security("base_url", &self.base_url, self.allow_insecure_http)?;
            check_transport_security("token_url", &self.token_url, self.allow_insecure_http)?;
        }
        if let Some(i) = &self.issuer {
            check_transport_security("issuer", i, self.allow_insecure_http)?;
        }
        if let Surface::Cxone(e) = &self.surface {
            if self.issuer.is_none() {
                return Err(Error::Build(
                    "issuer: CXone's API needs the issuer its tokens and discovery come from"
                        .into(),
                ));
            }
            if let Some(u) = &e.api {
                check_transport_security("endpoints.api", u, self.allow_insecure_http)?;
            }
            if let Some(u) = &e.userhub {
                check_transport_security("endpoints.userhub", u, self.allow_insecure_http)?;
            }
            check_acd_version(&e.acd_version)?;
            for (field, v) in [
                ("limits.dfo_reads_per_hour", e.dfo_reads_per_hour),
                ("limits.dfo_updates_per_hour", e.dfo_updates_per_hour),
                ("limits.dfo_contact_burst", e.dfo_contact_burst),
                ("limits.dfo_contact_per_minute", e.dfo_contact_per_minute),
            ] {
                if v == 0 {
                    return Err(Error::Build(format!("{field}: 0 would send nothing")));
                }
            }
        }
        Ok(())
    }
}

/// `vNN.N`: a path segment, nothing else.
fn check_acd_version(v: &str) -> Result<()> {
    let ok = v
        .strip_prefix('v')
        .and_then(|r| r.split_once('.'))
        .is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.len() <= 3
                && b.len() <= 3
                && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
        });
    if ok {
        Ok(())
    } else {
        Err(Error::Build(format!(
            "endpoints.acd_version: {v:?} is not an ACD API version such as v30.0"
        )))
    }
}

/// A URL a tenant's discovery document names: an absolute http(s) URL, no longer than
/// [`MAX_DISCOVERED_URL`], under the same transport rule as configured URLs, with a
/// trailing slash so paths join below it.
pub fn discovered_base(field: &str, raw: &str, allow_insecure: bool) -> Result<Url> {
    if raw.len() > MAX_DISCOVERED_URL {
        return Err(Error::Build(format!(
            "{field}: {} characters, more than the {MAX_DISCOVERED_URL} accepted",
            raw.len()
        )));
    }
    let url = parse_base_url(field, raw.trim().trim_end_matches('/'))?;
    check_transport_security(field, &url, allow_insecure)?;
    Ok(url)
}

/// Whether `url`'s host is this machine: `localhost`, 127.0.0.0/8 or `::1`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    }
}

/// Refuses `http://` to anything but loopback unless `allow_insecure` says otherwise:
/// tokens and secrets would cross the network in clear.
pub fn check_transport_security(field: &str, url: &Url, allow_insecure: bool) -> Result<()> {
    if url.scheme() == "http" && !allow_insecure && !is_loopback(url) {
        return Err(Error::Build(format!(
            "{field}: {} uses http:// to a host that is not loopback; credentials would cross the network in clear. Use https://, or set allow_insecure_http = true for a test tenant",
            url.as_str()
        )));
    }
    Ok(())
}

/// A base URL: [`parse_http_url`] with a trailing slash added so paths join below it.
pub fn parse_base_url(field: &str, raw: &str) -> Result<Url> {
    let mut url = parse_http_url(field, raw)?;
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    Ok(url)
}

/// An absolute http(s) URL with a host, kept exactly as written (an endpoint such as a
/// token or webhook URL is used verbatim); anything else is an error naming `field`.
pub fn parse_http_url(field: &str, raw: &str) -> Result<Url> {
    let url = Url::parse(raw.trim())
        .map_err(|e| Error::Build(format!("{field}: {raw:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::Build(format!(
            "{field}: {raw:?} has scheme {:?}; only http and https are supported",
            url.scheme()
        )));
    }
    if url.host().is_none() {
        return Err(Error::Build(format!("{field}: {raw:?} has no host")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Build(format!(
            "{field}: credentials in the URL are not allowed; use the credential settings"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::Build(format!(
            "{field}: {raw:?} must not have a query or fragment"
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        Grant::ClientCredentials {
            client_id: "id".into(),
            client_secret: SecretString::from("s3cr3t"),
        }
    }

    #[test]
    fn urls() {
        let s = Settings::new("https://api.example.com/base", grant()).unwrap();
        assert_eq!(
            s.token_url.as_str(),
            "https://api.example.com/base/oauth/token"
        );
        for bad in [
            "ftp://x",
            "not a url",
            "https://u:p@x.example",
            "file:///etc/passwd",
            "https://x?y=1",
        ] {
            let e = Settings::new(bad, grant()).unwrap_err().to_string();
            assert!(e.starts_with("base_url:"), "{e}");
        }
    }

    #[test]
    fn endpoints_are_used_as_written_and_only_base_urls_get_a_slash() {
        let s = Settings::new("https://api.example.com", grant())
            .unwrap()
            .token_url("https://cxone.niceincontact.com/auth/token")
            .unwrap();
        assert_eq!(s.base_url.as_str(), "https://api.example.com/");
        assert_eq!(
            s.token_url.as_str(),
            "https://cxone.niceincontact.com/auth/token"
        );
        let s = s.token_url("https://x.example/t/").unwrap();
        assert_eq!(s.token_url.as_str(), "https://x.example/t/");
        let s = s.issuer("https://idp.example/tenant/").unwrap();
        assert_eq!(s.issuer.unwrap().as_str(), "https://idp.example/tenant");
    }

    #[test]
    fn plain_http_only_on_loopback_unless_allowed() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost",
            "http://[::1]:9",
        ] {
            Settings::new(ok, grant()).unwrap().validate().unwrap();
        }
        let mut s = Settings::new("http://api.example.com", grant()).unwrap();
        let e = s.validate().unwrap_err().to_string();
        assert!(
            e.starts_with("base_url:") && e.contains("allow_insecure_http"),
            "{e}"
        );
        s.allow_insecure_http = true;
        s.validate().unwrap();
        let s = Settings::new("https://api.example.com", grant())
            .unwrap()
            .token_url("http://10.0.0.1/token")
            .unwrap();
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .starts_with("token_url:")
        );
    }

    #[test]
    fn debug_never_prints_secrets() {
        let s = Settings::new("http://127.0.0.1:1", grant()).unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
        assert!(dbg.contains("REDACTED"));
    }

    #[test]
    fn zero_rate_is_refused() {
        let mut s = Settings::new("http://127.0.0.1:1", grant()).unwrap();
        s.max_rate = Some(0);
        assert!(s.validate().unwrap_err().to_string().contains("max_rate"));
    }
}
