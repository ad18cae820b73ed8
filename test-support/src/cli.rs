//! Running the workspace's command-line tools without the caller's environment settings.

use std::path::Path;
use std::process::Command;

/// The environment variables `verifier-cli` and `as-server admin` read their flags from. A
/// developer's shell may set them, which would change what a test runs; kept in one list so
/// that a new one is removed from every suite.
pub const SETTINGS: [&str; 6] = [
    "KT_LOG_KEY",
    "KT_CA",
    "KT_SERVER",
    "KT_STATE",
    "KT_WITNESS_POLICY",
    "AS_ADMIN_TOKEN",
];

/// A command for `program` with none of [`SETTINGS`] in its environment.
pub fn command(program: &Path) -> Command {
    let mut command = Command::new(program);
    for name in SETTINGS {
        command.env_remove(name);
    }
    command
}
