//! The fixtures of test-support (an honest in-memory log, a CA, entries, tiles), a tiny HTTP
//! server, and a runner for the built binary.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_log::note::NoteSigner;
use serde_json::{json, Value};

pub use test_support::fixtures::*;

/// A log of `n` entries (`entry 0`, `entry 1`, …) under the origin of the fixtures.
pub fn log_of(n: u64) -> MemLog {
    let mut log = MemLog::new(NoteSigner::from_seed(ORIGIN, &seed(1)).unwrap());
    for i in 0..n {
        log.push(format!("entry {i}").into_bytes());
    }
    log
}

/// Runs the binary; returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out = test_support::cli::command(Path::new(env!("CARGO_BIN_EXE_verifier-cli")))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "the binary panicked: {stderr}"
    );
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

/// Runs with `--json` and parses stdout.
pub fn run_json(args: &[&str]) -> (i32, Value) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = run(&all);
    let value: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout} / {stderr}"));
    assert_eq!(value["exit_code"], json!(code), "{value}");
    (code, value)
}

pub fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

pub fn flip_bit(bytes: &mut [u8], bit: usize) {
    bytes[bit / 8] ^= 1 << (bit % 8);
}

/// Flips one bit inside the base64 text `b64` and returns the new base64.
pub fn flip_b64(text: &str, bit: usize) -> String {
    let mut raw = B64.decode(text).unwrap();
    let bit = bit % (raw.len() * 8);
    flip_bit(&mut raw, bit);
    B64.encode(raw)
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Path → (status, body).
pub type Routes = Arc<Mutex<HashMap<String, (u16, Vec<u8>)>>>;

/// A plain-HTTP server answering from a shared routing table (path → (status, body)).
pub struct MockServer {
    pub url: String,
    pub routes: Routes,
}

impl MockServer {
    pub fn start() -> MockServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let routes: Routes = Arc::default();
        let shared = routes.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let routes = shared.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                        let mut length = 0usize;
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                                return;
                            }
                            if h == "\r\n" {
                                break;
                            }
                            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0u8; length];
                        let _ = reader.read_exact(&mut body);
                        let (status, answer) = routes
                            .lock()
                            .unwrap()
                            .get(&path)
                            .cloned()
                            .unwrap_or((404, b"{\"type\":\"https://kt-as.dev/problems/not-found\",\"title\":\"not found\",\"status\":404}".to_vec()));
                        let head = format!(
                            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n",
                            answer.len()
                        );
                        if stream.write_all(head.as_bytes()).is_err()
                            || stream.write_all(&answer).is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        MockServer { url, routes }
    }

    pub fn set(&self, path: &str, status: u16, body: impl Into<Vec<u8>>) {
        self.routes
            .lock()
            .unwrap()
            .insert(path.to_owned(), (status, body.into()));
    }

    /// Serves `log` at `size`: checkpoint, consistency proofs from every older size, tiles.
    pub fn serve_log(&self, log: &MemLog, size: u64) {
        self.set("/log/checkpoint", 200, log.checkpoint(size));
        for from in 1..size {
            self.set(
                &format!("/v1/log/proof/consistency?from={from}&to={size}"),
                200,
                json!({"from": from, "to": size, "proof": hashes_json(&log.consistency(from, size))})
                    .to_string(),
            );
        }
        let mut tile = 0u64;
        while tile * 256 < size {
            let end = ((tile + 1) * 256).min(size);
            let bundle = kt_log::tiles::encode_entry_bundle(
                &log.entries[(tile * 256) as usize..end as usize],
            )
            .unwrap();
            let id = kt_log::tiles::TileId {
                kind: kt_log::tiles::TileKind::Entries,
                index: tile,
                width: (end - tile * 256) as u16,
            };
            self.set(&format!("/log/{}", id.path()), 200, bundle);
            tile += 1;
        }
    }
}
