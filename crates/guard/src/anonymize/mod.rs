//! anonymize: pseudonymize, mask, encrypt or erase personal data in contact records, in
//! bulk, at the tenant's rate limit, resumable after a crash.
//!
//! - [`policy`]: the masking policy (TOML), validated before any call.
//! - [`transform`]: the pure contact → patch function; running it twice changes nothing.
//! - [`selection`]: which contacts (ids, a retention cut-off, all) and the run options.
//! - [`plan`]: the dry run — every contact planned, nothing written.
//! - [`apply`]: streams the selection page by page on the job runner, journals every
//!   contact before it is touched, PATCHes with the listed ETag in `If-Match` (re-planning
//!   from the contact a 412 returns).
//! - `settle`: what each outcome records — audit entry and consent event, committed
//!   with the contact's journal outcome.
//! - [`report`]: what a run reports.
//! - [`reveal`]: decrypts one encrypted field for a subject-access request, audited.
//!
//! Not here: how the progress bar or the report look (the CLI).

pub mod apply;
pub mod plan;
pub mod policy;
pub mod report;
pub mod reveal;
mod rules;
pub mod selection;
mod settle;
pub mod transform;

pub use crate::job::Progress;
pub use apply::run;
pub use plan::{DryRun, dry_run};
pub use policy::Policy;
pub use report::Report;
pub use selection::{Options, Selection};

/// The job kind in the journal.
pub const JOB_KIND: &str = "anonymize";
