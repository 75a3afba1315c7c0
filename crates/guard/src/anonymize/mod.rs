//! anonymize: pseudonymize, mask, encrypt or erase personal data in contact records, in
//! bulk, at the tenant's rate limit, resumable after a crash.
//!
//! - [`policy`]: the masking policy (TOML), validated before any call.
//! - [`transform`]: the pure contact → patch function; running it twice changes nothing.
//! - [`apply`]: streams the selection page by page, journals every contact before it is
//!   touched, PATCHes with the listed ETag in `If-Match` (re-reading on 412), and
//!   settles each contact with its audit entry and consent event in one transaction.
//! - [`reveal`]: decrypts one encrypted field for a subject-access request, audited.
//!
//! Not here: how the progress bar or the report look (the CLI).

pub mod apply;
pub mod policy;
pub mod reveal;
pub mod transform;

pub use apply::{DryRun, Options, Progress, Report, Selection, dry_run, run};
pub use policy::Policy;

/// The job kind in the journal.
pub const JOB_KIND: &str = "anonymize";
