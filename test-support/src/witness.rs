//! Real `kt-witness` processes: how a suite starts one (`serve` on a loopback port with a
//! config and a data folder), and [`Witness`], one over plain HTTP for the suites that need
//! witnesses of an AS's log (the end-to-end tests, the load generator).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, workspace_binary};

/// How long a start may take before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// `binary serve --listen 127.0.0.1:<port> --config <config> --data <data>`, logging at
/// `warn`, without the environment's `WITNESS_*` settings (which would override the flags)
/// and with its stdout discarded. The caller adds the rest (`--plain-http`, `--workers`).
pub fn serve_command(binary: &Path, config: &Path, data: &Path, port: u16) -> Command {
    let mut command = Command::new(binary);
    command
        .args(["serve", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--config")
        .arg(config)
        .arg("--data")
        .arg(data)
        .env("RUST_LOG", "warn")
        .env_remove("WITNESS_CONFIG")
        .env_remove("WITNESS_DATA")
        .env_remove("WITNESS_LISTEN")
        .env_remove("WITNESS_PLAIN_HTTP")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    command
}

/// One plain HTTP/1.1 request to `127.0.0.1:port`; returns (status, body), `None` if the
/// exchange failed.
pub fn http(port: u16, method: &str, path: &str, body: &[u8]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8(answer).ok()?;
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    let (_, body) = answer.split_once("\r\n\r\n")?;
    Some((status, body.to_owned()))
}

/// A running kt-witness (the workspace's binary, plain HTTP, one worker) witnessing one log,
/// SIGKILLed when dropped.
pub struct Witness {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its config file.
    pub config: PathBuf,
    /// Its data folder (key, state, evidence).
    pub data: PathBuf,
}

impl Drop for Witness {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Witness {
    /// Starts a witness named `name` in a folder under `dir`, witnessing the log `origin`
    /// with the note verifier key `log_vkey`, and waits until it answers.
    pub fn start(dir: &Path, name: &str, origin: &str, log_vkey: &str) -> Witness {
        let folder = dir.join(name.replace('/', "_"));
        std::fs::create_dir_all(&folder).unwrap();
        let config = folder.join("witness.toml");
        std::fs::write(
            &config,
            format!(
                "name = \"{name}\"\n\n[[log]]\norigin = \"{origin}\"\nkeys = [\"{log_vkey}\"]\n"
            ),
        )
        .unwrap();
        let mut witness = Witness {
            child: None,
            port: free_port(),
            config,
            data: folder.join("data"),
        };
        witness.run();
        witness
    }

    fn run(&mut self) {
        let child = serve_command(
            &workspace_binary("kt-witness"),
            &self.config,
            &self.data,
            self.port,
        )
        .args(["--workers", "1", "--plain-http"])
        .spawn()
        .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        while http(self.port, "GET", "/healthz", b"").map(|a| a.0) != Some(200) {
            assert!(
                started.elapsed() < START_TIMEOUT,
                "kt-witness did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILLs it (its port stays reserved for a restart).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and data folder; with `forget`, on an emptied data
    /// folder but the same key (a witness that lost its state).
    pub fn restart(&mut self, forget: bool) {
        self.kill();
        if forget {
            let key = std::fs::read(self.data.join("witness-key")).unwrap();
            std::fs::remove_dir_all(&self.data).unwrap();
            std::fs::create_dir_all(&self.data).unwrap();
            std::fs::write(self.data.join("witness-key"), key).unwrap();
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(
                self.data.join("witness-key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
        }
        self.run();
    }

    /// Restarts it in the auditing mode for its log: the tiles under `url`, over HTTPS
    /// trusting `tls_ca` if given (see kt-witness's `auditor`).
    pub fn audit(&mut self, url: &str, tls_ca: Option<&Path>) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let text = match text.find("[log.audit]") {
            Some(at) => text[..at].to_owned(),
            None => text,
        };
        let mut text = format!("{text}[log.audit]\nurl = \"{url}\"\n");
        if let Some(ca) = tls_ca {
            text.push_str(&format!("tls_ca = \"{}\"\n", ca.display()));
        }
        std::fs::write(&self.config, text).unwrap();
        self.restart(false);
    }

    /// The value of the metric `name` at its `/metrics`.
    pub fn metric(&self, name: &str) -> Option<u64> {
        let (_, body) = http(self.port, "GET", "/metrics", b"")?;
        body.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    /// Sends an add-checkpoint body; returns (status, body).
    pub fn add_checkpoint(&self, body: &[u8]) -> (u16, String) {
        http(self.port, "POST", "/add-checkpoint", body).unwrap()
    }

    /// Its cosignature/v1 verifier key.
    pub fn vkey(&self) -> String {
        std::fs::read_to_string(self.data.join("witness-key.pub"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Its submission prefix.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Submits `note` as the first checkpoint (old size 0, no proof); returns the line.
    pub fn cosign(&self, note: &str) -> String {
        let body = format!("old 0\n\n{note}");
        let (status, line) = http(self.port, "POST", "/add-checkpoint", body.as_bytes()).unwrap();
        assert_eq!(status, 200, "{line}");
        line
    }
}
