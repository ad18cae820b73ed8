//! Peak memory of one bulk enrollment: starts the real server (the `as-server` binary of the
//! same profile) on a fresh data folder, enrolls N identities in one request, and prints the
//! server's resident set before and at its peak (VmHWM).
//!
//! `cargo build --release --bins --examples -p as-server &&
//!  target/release/examples/bulk_memory [N, default 100000]`; `AS_SERVER_BIN=<path>` measures
//! another build of the server (a baseline, for a side-by-side ratio).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use as_server::admin_client::HttpsClient;
use test_support::ServerProcess;

/// A `/proc/<pid>/status` field in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| {
            line.strip_prefix(field)?
                .trim()
                .strip_suffix(" kB")?
                .parse()
                .ok()
        })
        .unwrap()
}

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .map_or(100_000, |n| n.parse().expect("N: a number"));
    let binary = std::env::var_os("AS_SERVER_BIN").map_or_else(
        || test_support::workspace_binary("as-server"),
        std::path::PathBuf::from,
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::start(&binary, &data, &[]);
    let pid = server.pid().unwrap();
    let token = server.printed_admin_token.clone().unwrap();
    let client = HttpsClient::new(
        &server.base,
        &std::fs::read(data.join("tls-cert.pem")).unwrap(),
    )
    .unwrap();
    let identities: Vec<String> = (0..count)
        .map(|i| format!("user{i}@bulk.example.com"))
        .collect();
    let body = serde_json::json!({ "identities": identities }).to_string();
    let before = status_kb(pid, "VmRSS:");
    let started = Instant::now();
    let answer = client
        .post("/v1/admin/enrollments", body.as_bytes(), Some(&token))
        .unwrap();
    let took = started.elapsed();
    assert_eq!(
        answer.status,
        201,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    println!(
        "{count} identities: {:.2} s, server RSS {} MB before, peak {} MB",
        took.as_secs_f64(),
        before / 1024,
        status_kb(pid, "VmHWM:") / 1024
    );
}
