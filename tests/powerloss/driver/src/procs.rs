//! The processes the driver runs: the lazy-fs daemon (the mount) and the server. Each writes
//! its pid to a file in the work folder while it runs, so that `run`'s trap can stop it even if
//! the driver itself dies; each is SIGKILLed when dropped.

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A child process whose stdout lines are collected, stderr going to a file.
pub(crate) struct Proc {
    name: String,
    child: Option<Child>,
    lines: Receiver<String>,
    pid_file: PathBuf,
}

impl Proc {
    /// Starts `command`; its stderr is appended to `log`.
    pub(crate) fn spawn(
        name: &str,
        command: &mut Command,
        log: &Path,
        pid_file: &Path,
    ) -> Result<Proc, String> {
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        let _best_effort = std::fs::write(pid_file, format!("{}\n", child.id()));
        let (tx, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    // Keep reading after nobody listens, so the child never blocks on a pipe.
                    let _ignored = tx.send(line);
                }
            });
        }
        Ok(Proc {
            name: name.to_owned(),
            child: Some(child),
            lines,
            pid_file: pid_file.to_owned(),
        })
    }

    fn pid(&self) -> Option<Pid> {
        let id = self.child.as_ref()?.id();
        Some(Pid::from_raw(i32::try_from(id).ok()?))
    }

    /// Sends `signal` (nothing once it is reaped).
    pub(crate) fn signal(&self, signal: Signal) -> Result<(), String> {
        match self.pid() {
            Some(pid) => kill(pid, signal).map_err(|e| format!("{signal} to {}: {e}", self.name)),
            None => Err(format!("{} is not running", self.name)),
        }
    }

    /// Its exit status if it has exited.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Waits up to `timeout` for a stdout line starting with `prefix`; fails if the process
    /// exits or the time runs out first.
    pub(crate) fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "{} did not print `{prefix}` within {timeout:?}",
                    self.name
                ));
            }
            match self.lines.recv_timeout(left.min(Duration::from_millis(50))) {
                Ok(line) if line.starts_with(prefix) => return Ok(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(status) = self.exited() {
                        return Err(format!(
                            "{} exited ({status}) before printing `{prefix}`",
                            self.name
                        ));
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(50));
                    if let Some(status) = self.exited() {
                        return Err(format!(
                            "{} exited ({status}) before printing `{prefix}`",
                            self.name
                        ));
                    }
                }
            }
        }
    }

    /// Waits up to `timeout` for it to exit (reaping it).
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                self.child = None;
                let _best_effort = std::fs::remove_file(&self.pid_file);
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL and reap.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            let _best_effort = std::fs::remove_file(&self.pid_file);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether `path` is a mount point (per /proc/self/mounts).
pub(crate) fn is_mounted(path: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return false;
    };
    let wanted = path.to_string_lossy().replace(' ', "\\040");
    mounts
        .lines()
        .any(|line| line.split(' ').nth(1) == Some(wanted.as_str()))
}

/// The lazy-fs daemon and its mount.
pub(crate) struct Mount {
    proc: Proc,
    mountpoint: PathBuf,
}

impl Mount {
    /// Mounts `backing` on `mountpoint` and waits until it answers.
    pub(crate) fn new(
        binary: &Path,
        extra: &[String],
        backing: &Path,
        mountpoint: &Path,
        work: &Path,
    ) -> Result<Mount, String> {
        if is_mounted(mountpoint) {
            force_unmount(mountpoint);
        }
        let mut proc = Proc::spawn(
            "lazy-fs",
            Command::new(binary)
                .args(extra)
                .arg(backing)
                .arg(mountpoint),
            &work.join("logs").join("lazy-fs.log"),
            &work.join("lazy-fs.pid"),
        )?;
        proc.wait_line("mounted", Duration::from_secs(20))?;
        Ok(Mount {
            proc,
            mountpoint: mountpoint.to_owned(),
        })
    }

    /// The power loss: SIGUSR1, and its `dropped …` line.
    pub(crate) fn lose_power(&mut self) -> Result<String, String> {
        self.proc.signal(Signal::SIGUSR1)?;
        self.proc.wait_line("dropped", Duration::from_secs(30))
    }

    /// Everything unsynced to the backing folder (what the OS does after a process crash):
    /// SIGUSR2, and its `synced …` line.
    pub(crate) fn sync_all(&mut self) -> Result<String, String> {
        self.proc.signal(Signal::SIGUSR2)?;
        self.proc.wait_line("synced", Duration::from_secs(30))
    }

    /// Unmounts (SIGTERM: lazy-fs unmounts and exits), forcing it if that does not work.
    pub(crate) fn unmount(mut self) -> Result<(), String> {
        let _ = self.proc.signal(Signal::SIGTERM);
        let clean = self.proc.wait_exit(Duration::from_secs(20)).is_some();
        if !clean {
            self.proc.kill();
        }
        if is_mounted(&self.mountpoint) {
            force_unmount(&self.mountpoint);
        }
        if is_mounted(&self.mountpoint) {
            return Err(format!("{} is still mounted", self.mountpoint.display()));
        }
        if clean {
            Ok(())
        } else {
            Err("lazy-fs did not exit on SIGTERM (killed)".into())
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.proc.kill();
        if is_mounted(&self.mountpoint) {
            force_unmount(&self.mountpoint);
        }
    }
}

/// `fusermount3 -u`, then a lazy `umount -l`.
pub(crate) fn force_unmount(path: &Path) {
    let quiet = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .arg(path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !quiet("fusermount3", &["-u"]) {
        quiet("umount", &["-l"]);
    }
}

/// A running `as-server serve`.
pub(crate) struct Server {
    pub(crate) proc: Proc,
    /// `https://127.0.0.1:<port>`.
    pub(crate) base: String,
}

impl Server {
    /// Starts the server on `data` and waits for its `listening:` line (at most `timeout`).
    pub(crate) fn start(
        binary: &Path,
        data: &Path,
        port: u16,
        work: &Path,
        log: &Path,
        timeout: Duration,
    ) -> Result<Server, String> {
        let mut proc = Proc::spawn(
            "as-server",
            Command::new(binary)
                .arg("serve")
                .arg("--data")
                .arg(data)
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--admin-token-out")
                .arg(work.join("admin-token"))
                // Rotations as often as the workload wants them.
                .args([
                    "--rotation-min-interval",
                    "0",
                    "--rotations-per-day",
                    "1000",
                ])
                .env(
                    "AS_LOG",
                    std::env::var("POWERLOSS_AS_LOG").unwrap_or_else(|_| "info".into()),
                )
                .env_remove("AS_CONFIG")
                .env_remove("AS_ADMIN_TOKEN_OUT")
                .env_remove("AS_DATA")
                .env_remove("AS_LISTEN"),
            log,
            &work.join("server.pid"),
        )?;
        let line = proc.wait_line("listening: ", timeout)?;
        let base = line.trim_start_matches("listening: ").trim().to_owned();
        Ok(Server { proc, base })
    }
}
