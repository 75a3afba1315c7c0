//! `cxguard inventory` on CXone's published API (`api = "cxone"`): the discovered
//! tenant, its access keys, DFO customers and cases, custom fields, data policies with
//! their last run, and the contacts completed in the last 30 days.

use guard::inventory::real::{CxoneInventory, STALE_DAYS};

use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::{Output, print_json, table};

pub async fn run(ctx: &Context, client: &cxone::Client) -> Result<Exit, CliError> {
    let inv = guard::inventory::real::gather(client).await?;
    match ctx.output {
        Output::Json => print_json(&inv),
        Output::Text => print_text(&inv),
    }
    Ok(Exit::Ok)
}

fn print_text(inv: &CxoneInventory) {
    let t = &inv.tenant;
    println!(
        "Tenant: {} ({}), area {}, cluster {}; API {}",
        t.tenant_id,
        t.name.as_deref().unwrap_or("name not given"),
        t.area.as_deref().unwrap_or("?"),
        t.cluster.as_deref().unwrap_or("?"),
        t.api
    );
    println!();
    let k = &inv.access_keys;
    println!(
        "Access keys: {} ({} active, {} inactive, {} never used, {} active but unused for {STALE_DAYS} days)",
        k.total, k.active, k.inactive, k.never_used, k.unused_90_days
    );
    let mut users = table(&["user", "keys"]);
    for (u, n) in &k.by_user {
        users.add_row(vec![u.clone(), n.to_string()]);
    }
    println!("{users}");
    println!();
    println!(
        "DFO: {} customers; cases {}",
        inv.customers,
        inv.cases_by_status
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  customer custom fields: {}",
        inv.custom_fields
            .iter()
            .map(|f| format!("{} ({})", f.ident, f.kind.as_deref().unwrap_or("?")))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!();
    println!(
        "Data policies: {}",
        inv.policies_by_type
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut p = table(&["policy", "name", "type", "last run", "at"]);
    for r in &inv.policies {
        p.add_row(vec![
            r.id.clone(),
            r.name.clone().unwrap_or_default(),
            r.kind.clone().unwrap_or_default(),
            r.last_run.clone().unwrap_or_else(|| "never".into()),
            r.last_run_at.clone().unwrap_or_default(),
        ]);
    }
    println!("{p}");
    println!();
    println!(
        "Completed contacts, last 30 days: {}",
        inv.completed_contacts_30_days
    );
    if inv.rate_limited > 0 {
        println!(
            "(the tenant answered 429 {} time(s); each was retried)",
            inv.rate_limited
        );
    }
}
