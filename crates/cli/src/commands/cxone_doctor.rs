//! `cxguard doctor` on CXone's published API: the token by the access-key grant, the
//! tenant's discovery (issuer, tenant id, area, cluster, `api_endpoint`), then one
//! harmless read per API area, each ✓ or ✗ with what to do about it.

use super::checks::{Check, fail, pass};

/// The fix for a failed read of `area`, by how it failed.
fn fix_for(area: &str, permission: &str, e: &cxone::Error) -> String {
    match e.status() {
        Some(401) | Some(403) => format!(
            "give the access key's user the {permission} permission in CXone (Admin → Security Profiles), or leave {area} unused"
        ),
        Some(404) => format!(
            "the tenant has no {area} here: check [tenant.endpoints] or whether the tenant licenses it"
        ),
        Some(429) => {
            "the tenant throttled every retry: run again later, or lower [tenant.limits]".into()
        }
        _ => "see the error above; `cxguard doctor -v` logs each request".into(),
    }
}

/// Discovery and a read per area, appended to `checks`.
pub async fn checks(client: &cxone::Client, checks: &mut Vec<Check>) {
    if let Err(e) = client.authenticate().await {
        checks.push(fail(
            "token",
            e.to_string(),
            "check the registered app's client id and secret and the access key (access_key_file)",
        ));
        return;
    }
    checks.push(pass("token", "obtained with the access-key grant"));
    if !discovery(client, checks).await {
        return;
    }
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let area = |name: &str, permission: &str, r: Result<String, cxone::Error>| match r {
        Ok(detail) => pass(name, detail),
        Err(e) => {
            let fix = fix_for(name, permission, &e);
            fail(name, e.to_string(), fix)
        }
    };
    checks.push(area(
        "access keys",
        "Access Key (view)",
        client
            .access_keys()
            .list(None)
            .await
            .map(|k| format!("{} listed on UserHub", k.len())),
    ));
    checks.push(area(
        "digital (DFO)",
        "Digital Engagement (view)",
        client
            .dfo()
            .customer_fields()
            .await
            .map(|f| format!("{} customer custom-field definitions", f.len())),
    ));
    checks.push(area(
        "data policies",
        "Data Policies (view)",
        client
            .policies()
            .list()
            .await
            .map(|p| format!("{} policies", p.len())),
    ));
    checks.push(area(
        "ACD reporting",
        "Reporting (view)",
        client
            .acd()
            .completed(&fmt(now - time::Duration::hours(1)), &fmt(now))
            .await
            .map(|c| format!("{} contacts completed in the last hour", c.len())),
    ));
}

/// The tenant's discovery: issuer, tenant id, area, cluster and hosts.
async fn discovery(client: &cxone::Client, checks: &mut Vec<Check>) -> bool {
    let t = match client.tenant().await {
        Ok(t) => t,
        Err(e) => {
            checks.push(fail(
                "discovery",
                e.to_string(),
                "check [tenant] issuer; [tenant.endpoints] overrides what discovery finds",
            ));
            return false;
        }
    };
    checks.push(pass(
        "discovery",
        format!(
            "issuer {}, tenant {}{}, area {}, cluster {}, api_endpoint {}, UserHub {}",
            client
                .settings()
                .issuer
                .as_ref()
                .map_or("-".into(), |u| u.to_string()),
            t.tenant_id,
            t.name
                .as_deref()
                .map_or(String::new(), |n| format!(" ({n})")),
            t.area.as_deref().unwrap_or("?"),
            t.cluster.as_deref().unwrap_or("?"),
            t.api,
            t.userhub
        ),
    ));
    true
}
