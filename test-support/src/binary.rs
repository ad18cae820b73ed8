//! Where the workspace's built binaries are, for suites and examples outside their package.

use std::path::{Path, PathBuf};

/// The workspace binary `name` beside the running executable: `target/<profile>/<name>`,
/// from a test (`target/<profile>/deps/<test>`) or an example
/// (`target/<profile>/examples/<example>`) of a package other than the binary's, where Cargo
/// sets no `CARGO_BIN_EXE_<name>`. Panics with how to build it if it is missing.
pub fn workspace_binary(name: &str) -> PathBuf {
    let Ok(exe) = std::env::current_exe() else {
        panic!("the test executable's path is unknown");
    };
    let Some(mut dir) = exe.parent().map(Path::to_path_buf) else {
        panic!("the test executable has no folder");
    };
    if dir.ends_with("deps") || dir.ends_with("examples") {
        dir.pop();
    }
    let binary = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "{} not found. Tests that run the real binaries need them built first, in the same \
         profile and target folder: `cargo build --workspace`, or `cargo test --workspace`, \
         which builds them before any test runs (an example: `cargo build --release --bins`).",
        binary.display()
    );
    binary
}
