//! The seeded tenant: deterministic contacts, secrets, data actions, a data store table,
//! guests and widgets, all derived from one seed.
//!
//! Contacts are not stored until they change: contact `i` is computed from `(seed, i)` on
//! demand, so a tenant of a million contacts starts instantly and costs memory only for
//! the contacts a test modifies.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// splitmix64: a fast, well-mixed hash of a 64-bit input.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn pick<'a>(items: &[&'a str], h: u64) -> &'a str {
    items[(h % items.len() as u64) as usize]
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn derived(seed: u64, label: &str) -> String {
    sha256_hex(format!("{label}:{seed}").as_bytes())[..32].to_string()
}

/// A value shaped like CXone's access-key ids and secrets: base64 text ending in `=`
/// padding, which must be URL-encoded in a form (spec §2.2).
pub(crate) fn access_key_text(seed: u64, label: &str) -> String {
    use base64::Engine as _;
    let d = sha2::Sha256::digest(format!("{label}:{seed}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(d)
}

/// The credentials of a seeded tenant. They are derived from the seed, so the same seed
/// always gives the same credentials (the emulator is not a place for real secrets).
#[derive(Debug, Clone)]
pub struct Credentials {
    /// A client allowed every scope (client-credentials grant).
    pub client_id: String,
    /// Its client secret.
    pub client_secret: String,
    /// A client allowed only the read scopes.
    pub readonly_client_id: String,
    /// The client secret of the read-only API client (read scopes only).
    pub readonly_client_secret: String,
    /// The registered app used with the access-key (password) grant.
    pub app_client_id: String,
    /// The client secret of the registered app the access-key grant authenticates as.
    pub app_client_secret: String,
    /// A user's access key for the password grant.
    pub access_key_id: String,
    /// The secret of the user access key.
    pub access_key_secret: String,
    /// CXone's real surface: the registered app's client id (HTTP Basic at `/auth/token`).
    pub cxone_client_id: String,
    /// Its client secret.
    pub cxone_client_secret: String,
    /// CXone's real surface: an active user access key (the password grant's username).
    pub cxone_access_key_id: String,
    /// Its secret (the password grant's password).
    pub cxone_access_key_secret: String,
}

impl Credentials {
    pub(crate) fn for_seed(seed: u64) -> Self {
        Credentials {
            client_id: "cxguard-demo".into(),
            client_secret: derived(seed, "client"),
            readonly_client_id: "cxguard-readonly".into(),
            readonly_client_secret: derived(seed, "readonly"),
            app_client_id: "cxguard-app".into(),
            app_client_secret: derived(seed, "app"),
            access_key_id: format!("AK{}", &derived(seed, "akid")[..14].to_uppercase()),
            access_key_secret: derived(seed, "aksecret"),
            cxone_client_id: format!("cxguard-app-{}", &derived(seed, "cxapp")[..8]),
            cxone_client_secret: derived(seed, "cxappsecret"),
            cxone_access_key_id: access_key_text(seed, "cxakid"),
            cxone_access_key_secret: access_key_text(seed, "cxaksecret"),
        }
    }
}

pub(crate) const ALL_SCOPES: &[&str] = &[
    "integration:secret:read",
    "integration:secret:write",
    "integration:dataaction:read",
    "integration:dataaction:write",
    "contact:read",
    "contact:write",
    "data_management:read",
    "data_management:write",
    "data_management:encrypt",
    "interaction:guest:read",
    "interaction:guest:write",
    "webchat:widgets:read",
    "webchat:widgets:write",
    "privacy:erasure:write",
    "platform:read",
];

pub(crate) const READ_SCOPES: &[&str] = &[
    "integration:secret:read",
    "integration:dataaction:read",
    "contact:read",
    "data_management:read",
    "interaction:guest:read",
    "webchat:widgets:read",
    "platform:read",
];

// ---------------------------------------------------------------- contacts

/// (display name, ascii form used in emails)
const FIRST: &[(&str, &str)] = &[
    ("James", "james"),
    ("María", "maria"),
    ("Wei", "wei"),
    ("Aisha", "aisha"),
    ("Łukasz", "lukasz"),
    ("Søren", "soren"),
    ("Zoë", "zoe"),
    ("José", "jose"),
    ("Priya", "priya"),
    ("Olivia", "olivia"),
    ("Mohammed", "mohammed"),
    ("Yuki", "yuki"),
    ("Chloé", "chloe"),
    ("Noah", "noah"),
    ("Fatima", "fatima"),
    ("Liam", "liam"),
    ("Ingrid", "ingrid"),
    ("Mateo", "mateo"),
    ("Amara", "amara"),
    ("Dmitri", "dmitri"),
    ("Siobhán", "siobhan"),
    ("Kwame", "kwame"),
    ("Elena", "elena"),
    ("Hiroshi", "hiroshi"),
];

const LAST: &[(&str, &str)] = &[
    ("Smith", "smith"),
    ("García", "garcia"),
    ("Chen", "chen"),
    ("Okafor", "okafor"),
    ("Kowalski", "kowalski"),
    ("Jørgensen", "jorgensen"),
    ("Müller", "muller"),
    ("O'Brien", "obrien"),
    ("Nguyễn", "nguyen"),
    ("Patel", "patel"),
    ("Rossi", "rossi"),
    ("Tanaka", "tanaka"),
    ("Dubois", "dubois"),
    ("Johnson", "johnson"),
    ("Haddad", "haddad"),
    ("van der Berg", "vanderberg"),
    ("Silva", "silva"),
    ("Ivanova", "ivanova"),
    ("Mensah", "mensah"),
    ("Fernández", "fernandez"),
];

const DOMAINS: &[&str] = &[
    "example.com",
    "mail.example.org",
    "gmail.com",
    "outlook.com",
    "yahoo.co.uk",
    "web.de",
    "corp.example.net",
];

/// Phone formats as people type them, one per country. `#` is a digit.
const PHONES: &[&str] = &[
    "+1 (212) 555-01##",
    "+1 415-555-01##",
    "+44 20 7946 0###",
    "+49 30 901820##",
    "+33 1 23 45 67 ##",
    "+81 3-1234-56##",
    "+61 2 9374 40##",
    "+91 98765 432##",
    "+55 11 91234-56##",
    "+34 912 345 6##",
    "(212) 555-01##",
    "+353 1 234 56##",
];

const TIERS: &[&str] = &["bronze", "silver", "gold", "platinum"];
const LANGS: &[&str] = &["en-US", "es-ES", "fr-FR", "de-DE", "ja-JP", "pt-BR"];

/// 2023-01-01T00:00:00Z
const EPOCH_START: i64 = 1_672_531_200;
/// Seeded timestamps spread over about 3.4 years.
const SPAN_SECS: u64 = 108_000_000;

pub(crate) fn contact_id(index: u32) -> String {
    format!("c-{index:07}")
}

/// Parses a contact id back into its index; `None` if it is not one of ours.
pub(crate) fn contact_index(id: &str, count: u32) -> Option<u32> {
    let digits = id.strip_prefix("c-")?;
    if digits.len() != 7 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let i: u32 = digits.parse().ok()?;
    (i >= 1 && i <= count).then_some(i)
}

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// A stored contact: its JSON fields (without `id`/timestamps) plus bookkeeping.
#[derive(Debug, Clone)]
pub(crate) struct ContactRecord {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub custom_fields: Map<String, Value>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Bumped by every real change; the ETag is derived from it.
    pub revision: u32,
}

/// Seeded contact `index` (1-based).
pub(crate) fn seeded_contact(seed: u64, index: u32) -> ContactRecord {
    let h = mix(seed ^ (u64::from(index) << 20));
    let h2 = mix(h);
    let h3 = mix(h2);
    let (first, first_ascii) = FIRST[(h % FIRST.len() as u64) as usize];
    let (last, last_ascii) = LAST[((h >> 8) % LAST.len() as u64) as usize];
    let domain = pick(DOMAINS, h >> 16);
    let email = match (h2 >> 4) % 4 {
        0 => format!("{first_ascii}.{last_ascii}{}@{domain}", index % 1000),
        1 => format!("{}{last_ascii}{}@{domain}", &first_ascii[..1], index),
        2 => format!("{first_ascii}_{last_ascii}+cx{}@{domain}", index % 97),
        _ => format!("{first_ascii}{}@{domain}", index),
    };
    let mut digits = h3;
    let phone: String = pick(PHONES, h2 >> 12)
        .chars()
        .map(|c| {
            if c == '#' {
                let d = (digits % 10) as u8;
                digits /= 10;
                char::from(b'0' + d)
            } else {
                c
            }
        })
        .collect();
    // Some fields are missing, as in any real tenant.
    let nulls = h3 >> 40;
    let mut custom = Map::new();
    custom.insert("loyaltyTier".into(), json!(pick(TIERS, h3 >> 8)));
    custom.insert("preferredLanguage".into(), json!(pick(LANGS, h3 >> 16)));
    if nulls.is_multiple_of(3) {
        custom.insert(
            "accountNumber".into(),
            json!(format!("AC-{:08}", h2 % 100_000_000)),
        );
    }
    if nulls.is_multiple_of(5) {
        custom.insert(
            "notes".into(),
            json!(format!(
                "Called about order {}; prefers email.",
                h % 1_000_000
            )),
        );
    }
    let created_at = EPOCH_START + (h2 % SPAN_SECS) as i64;
    let updated_at = created_at + ((h3 >> 3) % 20_000_000) as i64;
    ContactRecord {
        first_name: (!nulls.is_multiple_of(17)).then(|| first.to_string()),
        last_name: (!nulls.is_multiple_of(19)).then(|| last.to_string()),
        email: (!nulls.is_multiple_of(11)).then_some(email),
        phone: (!nulls.is_multiple_of(7)).then_some(phone),
        custom_fields: custom,
        created_at,
        updated_at,
        revision: 0,
    }
}

impl ContactRecord {
    pub(crate) fn etag(&self, seed: u64, index: u32) -> String {
        let h = mix(seed ^ mix(u64::from(index)) ^ (u64::from(self.revision) << 40));
        format!("\"{h:016x}\"")
    }

    pub(crate) fn to_json(&self, index: u32, etag: Option<&str>) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(contact_id(index)));
        m.insert("firstName".into(), json!(self.first_name));
        m.insert("lastName".into(), json!(self.last_name));
        m.insert("email".into(), json!(self.email));
        m.insert("phone".into(), json!(self.phone));
        m.insert(
            "customFields".into(),
            Value::Object(self.custom_fields.clone()),
        );
        m.insert("createdAt".into(), json!(rfc3339(ts(self.created_at))));
        m.insert("updatedAt".into(), json!(rfc3339(ts(self.updated_at))));
        if let Some(e) = etag {
            m.insert("etag".into(), json!(e));
        }
        Value::Object(m)
    }
}

pub(crate) fn ts(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

// ---------------------------------------------------------------- integration

pub(crate) struct SeedSecret {
    pub id: &'static str,
    pub name: &'static str,
    pub format: &'static str,
    pub description: &'static str,
    /// Days before "now" of the last update, so `secrets due` has something to find.
    pub age_days: i64,
}

pub(crate) const SECRETS: &[SeedSecret] = &[
    SeedSecret {
        id: "sec-crm-api-key",
        name: "CRM API key",
        format: "raw",
        description: "Key for the CRM lookups used by three data actions",
        age_days: 120,
    },
    SeedSecret {
        id: "sec-payments-jwt",
        name: "Payments gateway JWT",
        format: "jwt",
        description: "Signed service token for the payments gateway",
        age_days: 30,
    },
    SeedSecret {
        id: "sec-erp-basic",
        name: "ERP basic credentials",
        format: "base64",
        description: "base64 user:password for the ERP connector",
        age_days: 200,
    },
    SeedSecret {
        id: "sec-unused-token",
        name: "Legacy webhook token",
        format: "raw",
        description: "Not referenced by any data action",
        age_days: 400,
    },
];

pub(crate) struct SeedAction {
    pub id: &'static str,
    pub name: &'static str,
    pub secrets: &'static [&'static str],
}

pub(crate) const ACTIONS: &[SeedAction] = &[
    SeedAction {
        id: "da-crm-lookup",
        name: "CRM customer lookup",
        secrets: &["sec-crm-api-key"],
    },
    SeedAction {
        id: "da-crm-case",
        name: "CRM create case",
        secrets: &["sec-crm-api-key"],
    },
    SeedAction {
        id: "da-crm-loyalty",
        name: "CRM loyalty status",
        secrets: &["sec-crm-api-key", "sec-erp-basic"],
    },
    SeedAction {
        id: "da-payment-status",
        name: "Payment status",
        secrets: &["sec-payments-jwt"],
    },
    SeedAction {
        id: "da-erp-order",
        name: "ERP order lookup",
        secrets: &["sec-erp-basic"],
    },
];

/// The value a seeded secret holds when the emulator starts. Tests and the demo need it
/// as the "previous value" of a rotation; a real tenant never reveals it.
pub fn seeded_secret_value(seed: u64, secret_id: &str) -> Option<String> {
    use base64::Engine as _;
    let s = SECRETS.iter().find(|s| s.id == secret_id)?;
    let raw = derived(seed, s.id);
    Some(match s.format {
        "jwt" => {
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
            let payload = b64.encode(format!(r#"{{"sub":"{}","iat":1700000000}}"#, s.id));
            let sig = b64.encode(raw.as_bytes());
            format!("{header}.{payload}.{sig}")
        }
        "base64" => base64::engine::general_purpose::STANDARD.encode(format!("erp:{raw}")),
        _ => format!("key_{raw}"),
    })
}

// ---------------------------------------------------------------- data store

pub(crate) fn seeded_table() -> Value {
    json!({
        "id": "tbl-customer-profiles",
        "datastoreId": "ds-customer",
        "name": "customer_profiles",
        "columns": [
            {"name": "customer_id", "type": "string", "encrypted": false, "encryptionConfiguration": null},
            {"name": "full_name", "type": "string", "encrypted": false, "encryptionConfiguration": null},
            {"name": "email", "type": "string", "encrypted": false, "encryptionConfiguration": null},
            {"name": "phone", "type": "string", "encrypted": false, "encryptionConfiguration": null},
            {"name": "ssn", "type": "string", "encrypted": false, "encryptionConfiguration": null},
            {"name": "date_of_birth", "type": "date", "encrypted": false, "encryptionConfiguration": null},
            {"name": "card_number", "type": "string", "encrypted": true, "encryptionConfiguration": {
                "enabled": true, "algorithm": "AES-256-GCM", "complianceMode": "PCI",
                "keyRotationDirective": {"strategy": "AUTOMATIC", "intervalDays": 90, "nextRotationEpoch": 1798761600},
                "indexMaskingTrigger": false, "decryptionPermissionVerification": true}},
            {"name": "loyalty_points", "type": "integer", "encrypted": false, "encryptionConfiguration": null},
            {"name": "address_line1", "type": "string", "encrypted": false, "encryptionConfiguration": null},
            {"name": "city", "type": "string", "encrypted": false, "encryptionConfiguration": null},
            {"name": "postal_code", "type": "string", "encrypted": false, "encryptionConfiguration": null},
            {"name": "country", "type": "string", "encrypted": false, "encryptionConfiguration": null},
            {"name": "iban", "type": "string", "encrypted": false, "encryptionConfiguration": null},
            {"name": "passport_number", "type": "string", "encrypted": false, "encryptionConfiguration": null},
            {"name": "agent_notes", "type": "string", "encrypted": false, "encryptionConfiguration": null}
        ],
        "metadata": {"maxEncryptedFields": 12}
    })
}

pub(crate) fn seeded_indexes() -> Value {
    json!([
        {"name": "pk_customer", "columns": ["customer_id"], "readOnly": true},
        {"name": "idx_email", "columns": ["email"], "readOnly": false},
        {"name": "idx_phone_name", "columns": ["phone", "full_name"], "readOnly": false}
    ])
}

// ---------------------------------------------------------------- guests & widgets

pub(crate) fn guest_id(index: u32) -> String {
    format!("g-{index:06}")
}

pub(crate) fn seeded_widgets() -> Vec<Value> {
    vec![
        json!({
            "id": "wgt-support",
            "name": "Support chat",
            "settings": {
                "securityPolicies": {
                    "corsOrigins": ["https://www.example.com", "https://support.example.com"],
                    "authentication": {"requireToken": true, "tokenExpiryMinutes": 60},
                    "rules": [
                        {"id": "block-bots", "action": "block", "pattern": "(?i)bot|crawler"},
                        {"id": "log-all", "action": "log", "pattern": ".*"}
                    ]
                },
                "version": "1"
            }
        }),
        json!({
            "id": "wgt-sales",
            "name": "Sales chat",
            "settings": {
                "securityPolicies": {
                    "corsOrigins": ["https://shop.example.com", "http://localhost:3000"],
                    "authentication": {"requireToken": false, "tokenExpiryMinutes": 30},
                    "rules": [
                        {"id": "allow-shop", "action": "allow", "pattern": "^/shop/"}
                    ]
                },
                "version": "1"
            }
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_contacts_are_deterministic_and_vary() {
        let a = seeded_contact(7, 12);
        let b = seeded_contact(7, 12);
        assert_eq!(a.email, b.email);
        assert_eq!(a.phone, b.phone);
        let emails: std::collections::HashSet<_> = (1..200)
            .filter_map(|i| seeded_contact(7, i).email)
            .collect();
        assert!(emails.len() > 150, "emails should be mostly distinct");
        let nulls = (1..1000)
            .filter(|i| seeded_contact(7, *i).phone.is_none())
            .count();
        assert!(nulls > 50 && nulls < 300, "some phones are null: {nulls}");
    }

    #[test]
    fn contact_ids_round_trip() {
        assert_eq!(contact_index(&contact_id(42), 100), Some(42));
        assert_eq!(contact_index("c-0000101", 100), None);
        assert_eq!(contact_index("c-42", 100), None);
        assert_eq!(contact_index("c-0000000", 100), None);
    }

    #[test]
    fn seeded_secret_values_are_well_formed() {
        let jwt = seeded_secret_value(1, "sec-payments-jwt").unwrap();
        assert_eq!(jwt.split('.').count(), 3);
        assert!(seeded_secret_value(1, "nope").is_none());
    }
}
