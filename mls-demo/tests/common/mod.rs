//! Runs the real `as-server` binary (built by `cargo build --workspace`, next to the test
//! executable) on a loopback port with a fresh data folder.
#![allow(dead_code, missing_docs, unreachable_pub)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use kt_log::note::NoteVerifier;
use mls_demo::https::HttpsClient;
use mls_demo::validator::AsValidator;

pub struct Server {
    child: Child,
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    pub base: String,
    pub admin_token: String,
    pub client: HttpsClient,
    pub log_key: NoteVerifier,
}

/// target/<profile>/as-server, from target/<profile>/deps/<test executable>.
fn as_server_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable under target/<profile>/deps");
    let binary = profile_dir.join(format!("as-server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "{} is missing: run `cargo build --workspace` (or `cargo test --workspace`) first",
        binary.display()
    );
    binary
}

impl Server {
    pub fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut child = Command::new(as_server_binary())
            .arg("serve")
            .arg("--data")
            .arg(&data)
            .args(["--listen", "127.0.0.1:0"])
            .env("AS_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut token = None;
        let base = loop {
            let line = lines
                .recv_timeout(Duration::from_secs(60))
                .expect("as-server printed its address");
            if let Some(t) = line.strip_prefix("admin-token: ") {
                token = Some(t.trim().to_owned());
            }
            if let Some(addr) = line.strip_prefix("listening: ") {
                break addr.trim().to_owned();
            }
        };
        let pem = std::fs::read(data.join("tls-cert.pem")).unwrap();
        let client = HttpsClient::new(&base, &pem).unwrap();
        let vkey = std::fs::read_to_string(data.join("log-key.pub")).unwrap();
        Server {
            child,
            dir,
            data,
            base,
            admin_token: token.expect("an admin token"),
            client,
            log_key: NoteVerifier::parse(vkey.trim()).unwrap(),
        }
    }

    pub fn validator(&self) -> AsValidator {
        AsValidator::new(self.client.clone(), self.log_key.clone())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
