//! webchat: security policies of webchat widgets as a file (spec §7, tutorial 004) —
//! validated before any call, planned as a diff, applied with the widget's real ETag.
//!
//! - [`policy`]: the policy file (TOML), every problem reported by widget, field and
//!   index; the same checks run on what the tenant holds ([`policy::findings`]).
//! - [`origin`]: CORS origins parsed with the WHATWG URL parser and normalized.
//! - [`xss`]: script vectors in rule patterns, after decoding (refused, never rewritten).
//! - [`plan`]: pure — the widget the file asks for (only what it names is managed) and
//!   the diff from what the tenant has; the canonical digest (RFC 8785) of a policy.
//! - [`apply`]: GET with ETag, PUT with `If-Match`, re-plan on 412, on the job runner;
//!   an audit entry and a `webchat.policy_deployed` event per widget changed.
//! - [`export`]: the tenant's policies written as a policy file.

pub mod apply;
pub mod export;
pub mod origin;
pub mod plan;
pub mod policy;
pub mod xss;

pub use apply::{Report, apply};
pub use plan::{Changes, WidgetPlan, config_digest, plan};
pub use policy::Policy;

/// The job kind in the journal.
pub const JOB_KIND: &str = "webchat.apply";

/// The OAuth scopes reading and changing widgets need.
pub const SCOPES: &[&str] = &["webchat:widgets:read", "webchat:widgets:write"];

/// The scope reading widgets needs.
pub const READ_SCOPES: &[&str] = &["webchat:widgets:read"];

/// The rule actions spec §7 allows.
pub const ACTIONS: &[&str] = &["block", "allow", "redirect", "log"];

/// At most this many rules per widget.
pub const MAX_RULES: usize = 50;

/// At most this many characters per pattern.
pub const MAX_PATTERN: usize = 1024;
