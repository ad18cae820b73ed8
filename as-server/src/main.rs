//! `as-server`: the Authentication Service binary. `serve` runs it; `admin` drives a running
//! one; `reset-admin-token` replaces the admin token offline.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use as_server::admin_client::{self, AdminArgs};
use as_server::config::ServeArgs;
use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's allocator: the server allocates and frees many small buffers
/// per request on several threads, where glibc malloc took about a tenth of its CPU and its
/// arena locks a sixth of its futex calls.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Authentication Service with a key-transparency log.
///
/// Issues X.509 credentials binding identities to Ed25519 keys, and logs every issuance,
/// rotation and revocation in an RFC 9162 transparency log that anyone can audit.
#[derive(Parser)]
#[command(version, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTPS service (creates keys, certificates and an admin token on first start).
    Serve(Box<ServeArgs>),
    /// Call a running server's admin API.
    Admin(AdminArgs),
    /// Replace the admin token(s) of a data folder with a new one (restart the server after).
    ResetAdminToken {
        /// Data folder.
        #[arg(long, env = "AS_DATA", default_value = "as-data")]
        data: PathBuf,
        /// Label of the new token (named in the log entries of its actions).
        #[arg(long, default_value = "admin")]
        label: String,
        /// Write the token to this file (mode 0600) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let filter = std::env::var("AS_LOG").unwrap_or_else(|_| "info".to_owned());
            if let Err(e) = as_server::logging::init(&filter) {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            let config = match args.resolve() {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let system = actix_web::rt::System::new();
            match system.block_on(as_server::server::serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Admin(args) => match admin_client::run(args) {
            Ok(code) => ExitCode::from(code as u8),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::ResetAdminToken { data, label, out } => {
            match as_server::setup::reset_admin_token(&data, &label, out.as_deref()) {
                Ok(Some(token)) => {
                    println!("admin-token: {token}");
                    ExitCode::SUCCESS
                }
                Ok(None) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
