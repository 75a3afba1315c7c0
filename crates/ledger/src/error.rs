//! The ledger's errors. Each says what was being done and where, never a secret.

/// What went wrong in the ledger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is wrong: a store URL, a key file, a webhook endpoint.
    #[error("{0}")]
    Config(String),
    /// The store cannot be reached or opened.
    #[error("{0}")]
    Unavailable(String),
    /// The database is not a cxguard ledger (or is corrupt); it was left untouched.
    #[error("{0}")]
    Foreign(String),
    /// The signing key is missing, unreadable or does not fit this ledger.
    #[error("{0}")]
    Key(String),
    /// A value was refused before it reached the store (e.g. a detail that could hold
    /// personal data).
    #[error("{0}")]
    Invalid(String),
    /// A job or item that does not exist, or is not in the state asked for.
    #[error("{0}")]
    NotFound(String),
    /// The database failed.
    #[error("store error: {0}")]
    Database(#[from] sqlx::Error),
}

/// A result whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
