//! What every command gets besides its own arguments: the output format, quietness,
//! whether the embedded emulator was asked for, the loaded configuration, and the
//! environment the configuration is read with (a fake one in tests).

use crate::config;
use crate::output::Output;

/// The environment: a variable's value by name.
pub type Env = dyn Fn(&str) -> Option<String> + Send + Sync;

/// What every command gets besides its own arguments.
pub struct Context {
    pub output: Output,
    pub quiet: bool,
    /// `--sim`: the embedded emulator was asked for explicitly; the ledger is the
    /// rehearsal's own (see [`config::isolate_rehearsal`]).
    pub sim: bool,
    pub config: config::Loaded,
    env: Box<Env>,
}

impl Context {
    /// A context over `config`, reading the environment through `env`.
    pub fn new(
        output: Output,
        quiet: bool,
        sim: bool,
        config: config::Loaded,
        env: Box<Env>,
    ) -> Self {
        Context {
            output,
            quiet,
            sim,
            config,
            env,
        }
    }

    /// The environment, as the configuration functions take it.
    pub fn env(&self) -> &(dyn Fn(&str) -> Option<String> + Send + Sync) {
        &*self.env
    }

    /// A note for the person at the terminal: stderr, unless --quiet.
    pub fn note(&self, msg: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }
}
