//! The demo's webchat step: export the tenant's policies, edit one origin and add one
//! rule, plan, apply (with the widget's ETag), and show an encoded `<ScRiPt` refused.

use std::path::Path;

use guard::webchat::{self, Policy};

use crate::exit::{CliError, Exit};

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WebchatDemo {
    pub(super) exported: Vec<String>,
    pub(super) plan: Vec<webchat::WidgetPlan>,
    pub(super) report: webchat::Report,
    /// The encoded pattern the validator refused, and why.
    pub(super) refused_pattern: String,
    pub(super) refusal: String,
}

/// The pattern the demo tries to sneak in: `<ScRiPt>` percent-encoded twice.
const SNEAKY: &str = "/chat?q=%253CScRiPt%253Ealert(1)";

pub(super) async fn webchat_step(
    client: &cxone::Client,
    ledger: &ledger::Ledger,
) -> Result<WebchatDemo, CliError> {
    let failed = |m: String| CliError::new(Exit::Failed, m);
    let exported = webchat::export::export(client, None).await?;
    let edited = exported.toml.replace(
        "\"https://support.example.com\"",
        "\"https://help.example.com:8443\"",
    ) + "[[widgets.wgt-support.rules]]\nid = \"block-admin\"\naction = \"block\"\npattern = \"/admin/*\"\n";
    let path = Path::new("demo-policy.toml");
    let policy =
        Policy::parse(&edited, path).map_err(|e| failed(format!("the demo policy: {e}")))?;
    let plan = webchat::plan(client, &policy).await?;
    let report = webchat::apply(client, ledger, &policy, "demo").await?;
    let sneaky = format!(
        "{edited}[[widgets.wgt-support.rules]]\nid = \"sneaky\"\naction = \"allow\"\npattern = \"{SNEAKY}\"\n"
    );
    let refusal = match Policy::parse(&sneaky, path) {
        Ok(_) => {
            return Err(failed(
                "the encoded <ScRiPt pattern was accepted (a bug)".into(),
            ));
        }
        Err(e) => e
            .to_string()
            .lines()
            .find(|l| l.contains("sneaky") || l.contains("script vector"))
            .unwrap_or_default()
            .trim()
            .to_string(),
    };
    Ok(WebchatDemo {
        exported: exported.widgets,
        plan,
        report,
        refused_pattern: SNEAKY.to_string(),
        refusal,
    })
}
