//! What the test suites that run the real `as-server` binary share (as-server's own
//! integration tests, the end-to-end tests in `tests/`, and mls-demo's): starting it on a
//! loopback port and stopping it. It depends on nothing but std, so mls-demo (which must not
//! depend on as-server) can use it too; each suite keeps its own HTTPS client.
//! [`postgres`] gives a test a PostgreSQL database of its own (a throw-away cluster started by
//! `scripts/pg-cluster`, or the server at `KT_TEST_POSTGRES_URL`).
#![forbid(unsafe_code)]
// Test code: a panic is how a test fails, with its message.
#![allow(clippy::panic)]

pub mod file_server;
pub mod postgres;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a start may take before the test fails (a debug build under a loaded CI machine
/// can take a few seconds to create its keys).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `as-server serve --listen 127.0.0.1:0`, SIGKILLed when dropped.
pub struct ServerProcess {
    child: Option<Child>,
    /// `https://127.0.0.1:<port>`, from its `listening:` line.
    pub base: String,
    /// The admin token it printed (`admin-token:`), on the first start of a data folder.
    pub printed_admin_token: Option<String>,
}

impl ServerProcess {
    /// Starts `binary serve` over `data` with `extra` flags, and waits for its `listening:`
    /// line. The environment's `AS_*` settings that would change the start are removed;
    /// logs go to the test's stderr at `warn`. Panics (the test fails) if it does not start.
    pub fn start(binary: &Path, data: &Path, extra: &[&str]) -> ServerProcess {
        ServerProcess::start_logging(binary, data, extra, "warn", Stdio::inherit())
    }

    /// Like [`ServerProcess::start`], with `AS_LOG=log_filter` and its log (stderr) going to
    /// `log`.
    pub fn start_logging(
        binary: &Path,
        data: &Path,
        extra: &[&str],
        log_filter: &str,
        log: Stdio,
    ) -> ServerProcess {
        let mut child = Command::new(binary)
            .arg("serve")
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("AS_LOG", log_filter)
            .env_remove("AS_CONFIG")
            .env_remove("AS_ADMIN_TOKEN_OUT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", binary.display()));
        let Some(stdout) = child.stdout.take() else {
            panic!("no stdout pipe");
        };
        let (lines_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Keep draining after the test stops listening, so that the server never
                // blocks on a full pipe.
                let _ignored = lines_tx.send(line);
            }
        });
        let mut printed_admin_token = None;
        let base = loop {
            let line = match lines.recv_timeout(START_TIMEOUT) {
                Ok(line) => line,
                Err(e) => {
                    let _ = child.kill();
                    let status = child.wait();
                    panic!(
                        "as-server on {} did not print `listening:` ({e}); exit {status:?}",
                        data.display()
                    );
                }
            };
            if let Some(token) = line.strip_prefix("admin-token: ") {
                printed_admin_token = Some(token.trim().to_owned());
            }
            if let Some(address) = line.strip_prefix("listening: ") {
                break address.trim().to_owned();
            }
        };
        ServerProcess {
            child: Some(child),
            base,
            printed_admin_token,
        }
    }

    /// SIGKILLs the server (no clean shutdown) and waits for it; nothing if already done.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The workspace binary `name` next to the running test executable
/// (`target/<profile>/<name>`, from `target/<profile>/deps/<test>`), for suites in other
/// packages than the binary's, where Cargo sets no `CARGO_BIN_EXE_<name>`. Panics with how to
/// build it if it is missing.
pub fn workspace_binary(name: &str) -> PathBuf {
    let Ok(exe) = std::env::current_exe() else {
        panic!("the test executable's path is unknown");
    };
    let Some(mut dir) = exe.parent().map(Path::to_path_buf) else {
        panic!("the test executable has no folder");
    };
    if dir.ends_with("deps") {
        dir.pop();
    }
    let binary = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "{} not found. Tests that run the real binaries need them built first, in the same \
         profile and target folder: `cargo build --workspace`, or `cargo test --workspace`, \
         which builds them before any test runs.",
        binary.display()
    );
    binary
}
