//! `verifier-cli`: the auditor's tool. Not built yet (issue 4): it only describes itself.
#![forbid(unsafe_code)]

use clap::Parser;

/// Standalone auditor and client for the key-transparency log.
///
/// Not implemented yet: this build only prints its help. It will depend on nothing but the
/// verification half of `kt-log`.
#[derive(Parser)]
#[command(version, arg_required_else_help = true)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
