//! `--witnesses N`: N local `kt-witness` processes (the release binary beside the load
//! generator, plain HTTP on loopback) witnessing the spawned server's log, and the policy
//! that asks all of them and needs a majority; so that issuance with witnesses is measured
//! against issuance without, in one run of the same binaries. With `--audit-witnesses` they
//! run in the auditing mode, fetching every entry from the server's tiles.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One witness: its process, files and port.
struct Running {
    child: Child,
    config: PathBuf,
    data: PathBuf,
    port: u16,
}

/// Running witnesses, SIGKILLed when dropped.
pub(crate) struct Witnesses {
    binary: PathBuf,
    running: Vec<Running>,
    /// The policy file naming them.
    pub(crate) policy: PathBuf,
}

impl Drop for Witnesses {
    fn drop(&mut self) {
        for witness in &mut self.running {
            let _ = witness.child.kill();
            let _ = witness.child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the witness of `config` and `data` on `port` and waits until it answers.
fn spawn(binary: &Path, config: &Path, data: &Path, port: u16) -> Child {
    let child = Command::new(binary)
        .args(["serve", "--plain-http", "--workers", "1", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--config")
        .arg(config)
        .arg("--data")
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let key_file = data.join("witness-key.pub");
    let started = Instant::now();
    while !key_file.is_file() || std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "witness {} did not start",
            config.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Starts `n` witnesses in folders under `dir` for the log `origin` with key `log_vkey`, and
/// writes the policy "majority of them".
pub(crate) fn start(n: usize, dir: &Path, origin: &str, log_vkey: &str) -> Witnesses {
    let exe = std::env::current_exe().unwrap();
    let binary = exe.parent().unwrap().parent().unwrap().join("kt-witness");
    assert!(
        binary.is_file(),
        "{} is missing: cargo build --release -p kt-witness",
        binary.display()
    );
    let mut running = Vec::new();
    let mut policy = format!("log {log_vkey}\n");
    let mut names = Vec::new();
    for i in 0..n {
        let folder = dir.join(format!("witness-{i}"));
        std::fs::create_dir_all(&folder).unwrap();
        let config = folder.join("witness.toml");
        std::fs::write(
            &config,
            format!(
                "name = \"w{i}.bench.example/w\"\n[[log]]\norigin = \"{origin}\"\nkeys = [\"{log_vkey}\"]\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let data = folder.join("data");
        let child = spawn(&binary, &config, &data, port);
        let vkey = std::fs::read_to_string(data.join("witness-key.pub")).unwrap();
        policy.push_str(&format!(
            "witness w{i} {} http://127.0.0.1:{port}\n",
            vkey.trim()
        ));
        names.push(format!("w{i}"));
        running.push(Running {
            child,
            config,
            data,
            port,
        });
    }
    policy.push_str(&format!(
        "group majority {} {}\nquorum majority\n",
        n / 2 + 1,
        names.join(" ")
    ));
    let path = dir.join("witness-policy");
    std::fs::write(&path, policy).unwrap();
    Witnesses {
        binary,
        running,
        policy: path,
    }
}

impl Witnesses {
    /// Restarts every witness in the auditing mode over the tiles under `url`, trusting the
    /// certificate `tls_ca`.
    pub(crate) fn audit(&mut self, url: &str, tls_ca: &Path) {
        for witness in &mut self.running {
            let _ = witness.child.kill();
            let _ = witness.child.wait();
            let mut config = std::fs::OpenOptions::new()
                .append(true)
                .open(&witness.config)
                .unwrap();
            write!(
                config,
                "[log.audit]\nurl = \"{url}\"\ntls_ca = \"{}\"\n",
                tls_ca.display()
            )
            .unwrap();
            witness.child = spawn(&self.binary, &witness.config, &witness.data, witness.port);
        }
    }

    /// Each witness's `witness_audited_entries` metric.
    pub(crate) fn audited_entries(&self) -> Vec<u64> {
        self.running
            .iter()
            .map(|w| {
                let mut stream = std::net::TcpStream::connect(("127.0.0.1", w.port)).unwrap();
                stream
                    .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .unwrap();
                let mut body = String::new();
                stream.read_to_string(&mut body).unwrap();
                body.lines()
                    .find_map(|l| l.strip_prefix("witness_audited_entries ")?.parse().ok())
                    .unwrap_or(0)
            })
            .collect()
    }
}
