//! `as-server`: the Authentication Service. Not built yet (issue 3): it only describes itself.
#![forbid(unsafe_code)]

use clap::Parser;

/// Authentication Service with a key-transparency log.
///
/// Not implemented yet: this build only prints its help. The log it will serve is the
/// `kt-log` crate.
#[derive(Parser)]
#[command(version, arg_required_else_help = true)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
