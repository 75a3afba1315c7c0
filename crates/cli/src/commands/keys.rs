//! `cxguard keys new`: key material for a policy's `[keys]` (or an identity key).

use clap::{Args, Subcommand};

use crate::Context;
use crate::exit::{CliError, Exit};

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print 32 random bytes (OS CSPRNG) as base64: store it in a file of mode 0600 or a
    /// secret manager, and name it in [keys] with env = or file =.
    New,
}

pub fn run(_ctx: &Context, args: KeysArgs) -> Result<Exit, CliError> {
    match args.command {
        KeysCommand::New => {
            let k = guard::keys::generate_base64().map_err(|e| CliError::new(Exit::Failed, e))?;
            println!("{k}");
            Ok(Exit::Ok)
        }
    }
}
