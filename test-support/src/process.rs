//! The `as-server serve` process: started on a loopback port, SIGKILLed when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
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

/// Sends signal `name` (`KILL`, `STOP`, `CONT`…) to the processes `pids` with `kill(1)`;
/// whether every one was signalled (false too if `pids` is empty).
pub fn signal(name: &str, pids: &[u32]) -> bool {
    if pids.is_empty() {
        return false;
    }
    Command::new("kill")
        .arg(format!("-{name}"))
        .args(pids.iter().map(u32::to_string))
        .status()
        .is_ok_and(|status| status.success())
}
