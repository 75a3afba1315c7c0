//! The API's resources as the spec defines them, one type per document and one module
//! per API surface. Unknown members are ignored on input, so a newer API does not break
//! an older client.

mod contacts;
mod datastores;
mod guests;
mod secrets;
mod webchat;

pub use contacts::*;
pub use datastores::*;
pub use guests::*;
pub use secrets::*;
pub use webchat::*;

use serde::Deserialize;

#[derive(Deserialize)]
pub(crate) struct Items<T> {
    pub items: Vec<T>,
}
