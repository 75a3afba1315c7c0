//! The real surface's seeded tenant: access keys, DFO customers and cases, ACD completed
//! contacts and data policies, all derived from the seed. Some people appear both as a
//! DFO customer identity and as a completed contact's `fromAddress` (spec §5, §7.4).

use serde_json::{Value, json};

use crate::data::{self, access_key_text, mix, rfc3339, sha256_hex};

/// Customers seeded.
pub(crate) const CUSTOMERS: usize = 60;
/// Cases seeded.
pub(crate) const CASES: usize = 150;
/// Completed contacts seeded in the last 30 days.
pub(crate) const RECENT_CONTACTS: usize = 200;
/// Completed contacts seeded 31 to 90 days ago.
pub(crate) const OLDER_CONTACTS: usize = 40;

const STATUSES: [&str; 7] = [
    "open",
    "pending",
    "closed",
    "resolved",
    "new",
    "escalated",
    "trashed",
];

/// One access key of the tenant. The emulator keeps the secret to check grants.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    pub id: String,
    pub secret: String,
    pub user_id: String,
    pub agent_id: i64,
    pub is_active: bool,
    /// Unix seconds of the last grant, if any.
    pub last_used: Option<i64>,
    /// Created through the API while the emulator runs (not seeded).
    pub created: bool,
}

impl Key {
    pub(crate) fn to_json(&self, tenant_id: &str, with_id: bool) -> Value {
        let mut v = json!({
            "userId": self.user_id,
            "tenantId": tenant_id,
            "agentId": self.agent_id,
            "billingId": 1000 + self.agent_id,
            "isActive": self.is_active,
            "lastUsedDate": self.last_used.map(|t| rfc3339(data::ts(t))),
        });
        if with_id {
            v["accessKeyId"] = json!(self.id);
        }
        v
    }
}

/// The seeded tenant of the real surface.
pub(crate) struct Tenant {
    pub tenant_id: String,
    pub keys: Vec<Key>,
    pub customers: Vec<Value>,
    pub cases: Vec<Value>,
    pub field_definitions: Value,
    pub completed: Vec<Value>,
    pub policies: Vec<Value>,
    pub instances: Vec<Value>,
    /// Message id → `{contentRemoved?, authorNameRemoved?}` set by the removal routes.
    pub removed: std::collections::HashMap<String, Value>,
    /// Customer id → its notes (§4.3h): every fifth customer has one.
    pub notes: std::collections::BTreeMap<String, Vec<Value>>,
}

/// A UUID-shaped text derived from `label`.
fn uuid_of(label: &str) -> String {
    let h = sha256_hex(label.as_bytes());
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The tenant id of a seed.
pub(crate) fn tenant_id_for(seed: u64) -> String {
    uuid_of(&format!("tenant:{seed}"))
}

fn user_id(seed: u64, i: usize) -> String {
    uuid_of(&format!("user:{seed}:{i}"))
}

/// The email of customer `i`: the identity the ACD rows reuse.
pub(crate) fn customer_email(i: usize) -> String {
    format!("digital.person{i:03}@example.net")
}

impl Tenant {
    pub(crate) fn seeded(seed: u64, now: i64, access_key: (&str, &str)) -> Self {
        let tenant_id = tenant_id_for(seed);
        Tenant {
            keys: keys(seed, now, access_key),
            customers: (0..CUSTOMERS).map(|i| customer(seed, i, now)).collect(),
            cases: (0..CASES).map(|i| case(seed, i, now)).collect(),
            field_definitions: json!([
                {"ident": "loyalty_number", "label": "Loyalty number", "type": "text",
                 "isRequired": false, "isEditable": true, "isVisibleInRightPanel": true,
                 "isVisibleInCustomerCard": true},
                {"ident": "secondary_email", "label": "Secondary email", "type": "email",
                 "isRequired": false, "isEditable": true, "isVisibleInRightPanel": false,
                 "isVisibleInCustomerCard": false},
            ]),
            completed: (0..RECENT_CONTACTS + OLDER_CONTACTS)
                .map(|i| completed(seed, i, now))
                .collect(),
            policies: policies(now),
            instances: instances(now),
            removed: std::collections::HashMap::new(),
            notes: (0..CUSTOMERS)
                .filter(|i| i.is_multiple_of(5))
                .map(|i| {
                    let at = rfc3339(data::ts(now - (i as i64 + 1) * 3600));
                    (
                        format!("cust-{:05}", i + 1),
                        vec![json!({"id": format!("note-{}", i + 1), "createdAt": at, "updatedAt": at,
                                    "user": {"id": 1}, "content": format!("Called about order; call back on +4420795{i:05}")})],
                    )
                })
                .collect(),
            tenant_id,
        }
    }
}

/// Eight keys: the demo's active key (used an hour ago), an inactive one, one never
/// used, one unused for 120 days, and four others of two more users.
fn keys(seed: u64, now: i64, (id, secret): (&str, &str)) -> Vec<Key> {
    let mut keys = vec![Key {
        id: id.to_string(),
        secret: secret.to_string(),
        user_id: user_id(seed, 0),
        agent_id: 4_100_001,
        is_active: true,
        last_used: Some(now - 3600),
        created: false,
    }];
    for i in 1..8usize {
        let user = i / 3;
        keys.push(Key {
            id: access_key_text(seed, &format!("key-id-{i}")),
            secret: access_key_text(seed, &format!("key-secret-{i}")),
            user_id: user_id(seed, user),
            agent_id: 4_100_001 + user as i64,
            is_active: i != 1,
            last_used: match i {
                2 => None,
                3 => Some(now - 120 * 86_400),
                _ => Some(now - (i as i64) * 86_400),
            },
            created: false,
        });
    }
    keys
}

fn customer(seed: u64, i: usize, now: i64) -> Value {
    let r = mix(seed ^ (i as u64).wrapping_mul(0x9E37));
    let mut identities = vec![json!({
        "idOnExternalPlatform": customer_email(i),
        "firstName": format!("Person{i}"), "lastName": "Digital",
    })];
    if i.is_multiple_of(3) {
        identities.push(json!({"idOnExternalPlatform": format!("+4420795{:05}", i)}));
    }
    // Every seventh also writes on a social channel, under a numeric user id.
    if i.is_multiple_of(7) {
        identities.push(json!({"idOnExternalPlatform": format!("{}", 1_000_000 + i), "firstName": format!("Person{i}")}));
    }
    let mut fields = Vec::new();
    if i.is_multiple_of(2) {
        fields.push(json!({"ident": "loyalty_number", "value": format!("LN{:06}", r % 1_000_000)}));
    }
    json!({
        "id": format!("cust-{:05}", i + 1),
        "updatedAt": rfc3339(data::ts(now - (r % 90) as i64 * 86_400)),
        "firstName": format!("Person{i}"),
        "surname": "Digital",
        "fullName": format!("Person{i} Digital"),
        "identities": identities,
        "customFields": fields,
        "messageStatistics": {"inbound": r % 7, "outbound": r % 5},
        "sentimentStatistics": {"positive": 1, "neutral": 0, "negative": 0},
    })
}

fn case(seed: u64, i: usize, now: i64) -> Value {
    let r = mix(seed ^ 0xCA5E ^ (i as u64));
    let customer = i % CUSTOMERS;
    let created = now - (r % 60) as i64 * 86_400;
    json!({
        "id": format!("{}", 300_000_000 + i),
        "contactId": if i.is_multiple_of(10) { Value::Null } else { json!(700_000 + i as i64) },
        "channelId": if i.is_multiple_of(2) { "chat_web_sim" } else { "email_sim" },
        "status": STATUSES[i % STATUSES.len()],
        "createdAt": rfc3339(data::ts(created)),
        // Its status set up to three days after it was created.
        "statusUpdatedAt": rfc3339(data::ts((created + ((r >> 8) % 3) as i64 * 86_400).min(now))),
        "direction": "inbound",
        "endUser": {"id": format!("cust-{:05}", customer + 1)},
        "authorEndUserIdentity": {"idOnExternalPlatform": customer_email(customer)},
        // Every third case carries an order number (a case custom field, §4.4c).
        "customFields": if i.is_multiple_of(3) {
            json!([{"ident": "order_number", "value": format!("ORD-{:08}", r % 100_000_000)}])
        } else {
            json!([])
        },
    })
}

/// Every fourth of the first 180 completed contacts comes from a DFO customer's address;
/// the others from phone numbers.
fn completed(seed: u64, i: usize, now: i64) -> Value {
    let r = mix(seed ^ 0xACD ^ (i as u64));
    let age_days = if i < RECENT_CONTACTS {
        (r % 29) as i64
    } else {
        31 + (r % 59) as i64
    };
    // The first 180 only: a customer then appears in at most three (spec scenario of a
    // person with two cases and three completed contacts).
    let (from, media) = if i.is_multiple_of(4) && i < 180 {
        (customer_email(i % CUSTOMERS), "Email")
    } else {
        (format!("+1555{:07}", r % 10_000_000), "Voice")
    };
    json!({
        "contactId": 900_000 + i as i64,
        "masterContactId": 900_000 + i as i64,
        "contactStartDate": rfc3339(data::ts(now - age_days * 86_400 - (r % 80_000) as i64)),
        "fromAddress": from,
        "toAddress": if media == "Email" { "support@sim.example".to_string() } else { "+18005550100".to_string() },
        "mediaTypeName": media,
        "mediaTypeId": if media == "Email" { 1 } else { 4 },
        "agentId": 4_100_001,
        "skillName": "Support",
        // Types differ between schemas (spec §7.1): sent as text here.
        "pointOfContactName": "Main line",
        "totalDurationSeconds": (r % 900) as i64,
    })
}

fn policies(now: i64) -> Vec<Value> {
    let p = |id: &str, name: &str, ty: &str, days: Option<&str>, recurring: bool| {
        json!({
            "policyId": id, "policyName": name, "policyType": ty,
            "entityType": "MASTER_CONTACT", "applyToMediaTypes": ["VOICE"],
            "retentionValueInDays": days, "recurring": recurring,
            "recurrenceConfig": if recurring { json!({"frequency": "DAILY", "recurrenceEndType": "NEVER"}) } else { Value::Null },
            "needsApproval": ty == "DATA_ERASURE", "autoApproveLimit": 100,
            "creationDate": rfc3339(data::ts(now - 200 * 86_400)),
            "lastModifiedDate": rfc3339(data::ts(now - 10 * 86_400)),
            "criteria": [],
        })
    };
    vec![
        p(
            "pol-retention-voice",
            "Voice retention 2y",
            "RETENTION",
            Some("730"),
            true,
        ),
        p(
            "pol-erasure-requests",
            "GDPR erasure",
            "DATA_ERASURE",
            None,
            false,
        ),
        p(
            "pol-hold-case-17",
            "Litigation hold: case 17",
            "LITIGATION_HOLD",
            None,
            false,
        ),
        p(
            "pol-release-case-9",
            "Release: case 9",
            "LITIGATION_RELEASE",
            None,
            false,
        ),
    ]
}

fn instances(now: i64) -> Vec<Value> {
    let runs = [
        ("pol-retention-voice", "RETENTION", "SUCCEEDED", 3),
        ("pol-retention-voice", "RETENTION", "SUCCEEDED", 2),
        ("pol-retention-voice", "RETENTION", "PARTIALLY_SUCCEEDED", 1),
        (
            "pol-erasure-requests",
            "DATA_ERASURE",
            "PENDING_APPROVAL",
            1,
        ),
        (
            "pol-erasure-requests",
            "DATA_ERASURE",
            "SUCCEEDED_WITH_ZERO_RESULTS",
            5,
        ),
        ("pol-hold-case-17", "LITIGATION_HOLD", "FAILED", 4),
        ("pol-release-case-9", "LITIGATION_RELEASE", "SUCCEEDED", 6),
    ];
    runs.iter()
        .enumerate()
        .map(|(i, (policy, ty, status, days))| {
            let ended = !matches!(*status, "PENDING_APPROVAL");
            json!({
                "policyId": policy, "policyInstanceId": format!("run-{:04}", i + 1),
                "policyName": policy, "policyType": ty, "status": status,
                "summaryStatus": status, "policyInstanceNo": i + 1,
                "creationDate": rfc3339(data::ts(now - days * 86_400)),
                "lastModificationDate": rfc3339(data::ts(now - days * 86_400 + 600)),
                "completionDate": ended.then(|| rfc3339(data::ts(now - days * 86_400 + 600))),
            })
        })
        .collect()
}

/// How many messages case `id` has: two to four, derived from its number.
pub(crate) fn messages_in(id: &str) -> u64 {
    2 + id.parse::<u64>().unwrap_or(0) % 5
}
