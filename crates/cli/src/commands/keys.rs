//! `cxguard keys new`: key material for a policy's `[keys]` (or an identity key).

use clap::{Args, Subcommand};

use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::{Output, print_json};

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
    /// A new API key for `cxguard serve`: the key goes to stdout once (give it to the
    /// caller); the line for [server] api_keys, holding only its SHA-256, to stderr.
    /// With --kms, a KMS callback token instead, for [kms] callback_tokens: put it at
    /// the end of the callback URL (https://HOST/v1/kms/callback/TOKEN).
    Api {
        /// The key's name in logs and the audit trail, e.g. web-backend.
        #[arg(long)]
        id: String,
        /// Make a KMS callback token (cxk_…) rather than an API key (cxg_…).
        #[arg(long)]
        kms: bool,
    },
}

pub fn run(ctx: &Context, args: KeysArgs) -> Result<Exit, CliError> {
    match args.command {
        KeysCommand::New => {
            let k = guard::keys::generate_base64().map_err(|e| CliError::new(Exit::Failed, e))?;
            match ctx.output {
                Output::Json => {
                    print_json(&serde_json::json!({"key": k, "encoding": "base64", "bytes": 32}))
                }
                Output::Text => println!("{k}"),
            }
            Ok(Exit::Ok)
        }
        KeysCommand::Api { id, kms } => {
            ledger::details::check_identifier("--id", &id)
                .map_err(|e| CliError::new(Exit::Usage, e.to_string()))?;
            let generated = if kms {
                server::generate_kms_token()
            } else {
                server::generate_api_key()
            };
            let (key, sha256) = generated.map_err(|e| CliError::new(Exit::Failed, e))?;
            if ctx.output == Output::Json {
                // For a script: the key once, and the entry for the config file.
                print_json(&serde_json::json!({
                    "id": id,
                    "kind": if kms { "kms_callback_token" } else { "api_key" },
                    "key": key,
                    "sha256": sha256,
                    "section": if kms { "kms.callback_tokens" } else { "server.api_keys" },
                }));
                return Ok(Exit::Ok);
            }
            println!("{key}");
            if kms {
                eprintln!(
                    "add to [kms] in cxguard.toml (it holds only the token's SHA-256):\n  callback_tokens = [{{ id = \"{id}\", sha256 = \"{sha256}\" }}]\nand give the tenant the callback URL https://<your serve host>/v1/kms/callback/<the token above>, e.g. with `datastore encrypt --kms-callback`"
                );
            } else {
                eprintln!(
                    "add to [server] in cxguard.toml (it holds only the key's SHA-256):\n  api_keys = [{{ id = \"{id}\", sha256 = \"{sha256}\" }}]"
                );
            }
            Ok(Exit::Ok)
        }
    }
}
