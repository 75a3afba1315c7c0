//! Posture as code: one declared posture for the tenant (`posture.toml`), a plan of
//! everything that would change (signed when saved), an apply that re-derives the plan
//! and runs each protection's own job, journaled as one run. It composes the
//! protections' own plans and applies; it decides nothing they decide. The CLI's
//! `plan`, `apply`, `export` and `status` keep only flags and rendering.

pub mod apply;
pub mod export;
pub mod file;
pub mod keys;
pub mod load;
pub mod plan;
mod rotate;
pub mod saved;
pub mod status;

pub use apply::{PartResult, RUN_KIND, With, apply, recorded_plan};
pub use load::{Posture, Source, load, load_section, load_text};
pub use plan::{Known, PlanSignature, PosturePlan, SIGNED_AS, cutoff, plan};
pub use saved::{check_posture, read_signed};
