//! Exit codes, and the one error type commands return. Each failure says what went
//! wrong and what to do; its kind picks the exit code (documented in the README).

use std::fmt;

/// The process's exit codes. Scripts and CI rely on them: never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked was done.
    Ok = 0,
    /// The command ran but something failed (an API error, failed items).
    Failed = 1,
    /// A check found what it looks for (secrets due for rotation).
    Findings = 2,
    /// Bad command line: unknown flag, bad value, contradictory options.
    Usage = 64,
    /// Bad input data: a policy, an ids file or a value that does not validate.
    Input = 65,
    /// The tenant (or store) could not be reached, or kept failing after retries.
    Unavailable = 69,
    /// Not finished yet, through no fault of the input: run again later (events
    /// still pending after `outbox deliver --until-empty --max-wait`).
    TempFail = 75,
    /// Credentials refused, or a permission (scope) missing.
    Auth = 77,
    /// Bad configuration: config file, environment, missing credentials.
    Config = 78,
    /// Interrupted (Ctrl-C).
    Interrupted = 130,
}

#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
}

impl CliError {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        CliError {
            exit,
            message: message.into(),
        }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        CliError::new(Exit::Usage, message)
    }
    pub fn config(message: impl Into<String>) -> Self {
        CliError::new(Exit::Config, message)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// The exit code of a tenant's error, by the stage that failed.
fn api_exit(e: &cxone::Error) -> Exit {
    use cxone::Stage;
    match e.stage() {
        Stage::Auth => Exit::Auth,
        Stage::Build => Exit::Config,
        Stage::Transport | Stage::Timeout | Stage::RateLimited => Exit::Unavailable,
        Stage::Api if e.is_retryable() => Exit::Unavailable,
        Stage::Api | Stage::Decode => Exit::Failed,
    }
}

impl From<cxone::Error> for CliError {
    fn from(e: cxone::Error) -> Self {
        CliError::new(api_exit(&e), e.to_string())
    }
}

impl From<ledger::Error> for CliError {
    fn from(e: ledger::Error) -> Self {
        use ledger::Error as L;
        let exit = match &e {
            L::Config(_) | L::Foreign(_) | L::Key(_) => Exit::Config,
            L::Unavailable(_) => Exit::Unavailable,
            L::Invalid(_) => Exit::Usage,
            _ => Exit::Failed,
        };
        CliError::new(exit, e.to_string())
    }
}

/// The one place a protection's error becomes an exit code.
impl From<guard::Error> for CliError {
    fn from(e: guard::Error) -> Self {
        match e {
            guard::Error::Invalid(m) => CliError::new(Exit::Input, m),
            guard::Error::Api(e) => e.into(),
            guard::Error::Ledger(e) => e.into(),
            guard::Error::Busy(m) => CliError::new(Exit::TempFail, m),
            guard::Error::Unavailable(m) => CliError::new(Exit::Unavailable, m),
            guard::Error::Conflict(m) | guard::Error::Failed(m) | guard::Error::Internal(m) => {
                CliError::new(Exit::Failed, m)
            }
            other => CliError::new(Exit::Failed, other.to_string()),
        }
    }
}

/// A protection's error for a command that sent a person's identifier to the tenant
/// (subject requests): the exit code as usual, but of a tenant's error only its stage and
/// status, never its words, which may echo the identifier to stderr and CI logs.
pub fn without_tenant_words(e: guard::Error) -> CliError {
    match e {
        guard::Error::Api(api) => CliError::new(
            api_exit(&api),
            format!(
                "the tenant failed: {} (its message is not shown: it may repeat the identifier)",
                api.summary()
            ),
        ),
        other => other.into(),
    }
}

/// A guest link's error: bad input and an unknown guest are the input's fault (65).
impl From<guard::identity::LinkError> for CliError {
    fn from(e: guard::identity::LinkError) -> Self {
        use guard::identity::LinkError as L;
        match e {
            L::Api(e) => e.into(),
            L::UnknownGuest(g) => {
                CliError::new(Exit::Input, format!("the tenant has no guest {g}"))
            }
            e @ L::NoField(_) => CliError::config(e.to_string()),
            other => CliError::new(Exit::Input, other.to_string()),
        }
    }
}

/// `serve`'s error: a configuration that does not validate (78), an address that cannot
/// be bound (69), serving that failed (1).
impl From<server::Error> for CliError {
    fn from(e: server::Error) -> Self {
        match e {
            server::Error::Config(m) => CliError::config(format!("server: {m}")),
            e @ server::Error::Bind { .. } => CliError::new(Exit::Unavailable, e.to_string()),
            other => CliError::new(Exit::Failed, other.to_string()),
        }
    }
}

impl From<cxone_sim::ConfigError> for CliError {
    fn from(e: cxone_sim::ConfigError) -> Self {
        match e {
            cxone_sim::ConfigError::Invalid { .. } => CliError::usage(e.to_string()),
            other => CliError::new(Exit::Unavailable, other.to_string()),
        }
    }
}
