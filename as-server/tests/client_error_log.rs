//! Client mistakes that actix-http answers itself (malformed heads, over-long ones) are not
//! logged at ERROR: anyone can send them, so they would fill the error log. They are logged at
//! DEBUG instead, and the server goes on serving.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::Stdio;

use test_support::ServerProcess;

/// Sends raw bytes on a new TLS connection and returns whatever comes back.
fn send(base: &str, cert: &Path, bytes: &[u8]) -> Vec<u8> {
    let mut stream = common::raw_tls(base, cert);
    let _ = stream.write_all(bytes).and_then(|()| stream.flush());
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

fn run_with_log(filter: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = ServerProcess::start_logging(
        Path::new(env!("CARGO_BIN_EXE_as-server")),
        &data,
        &[],
        filter,
        Stdio::from(log),
    );
    let cert = data.join("tls-cert.pem");
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    let attempts: [&[u8]; 4] = [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n",
        b"\x00\x01\x02 garbage\r\n\r\n",
        long_uri.as_bytes(),
    ];
    for bytes in attempts {
        let answer = send(&server.base, &cert, bytes);
        let status = String::from_utf8_lossy(&answer)
            .split(' ')
            .nth(1)
            .map(str::to_owned);
        assert!(
            status.as_deref().is_none_or(|s| s.starts_with('4')),
            "{status:?}"
        );
    }
    // Still serving.
    let ok = send(
        &server.base,
        &cert,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        ok.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&ok)
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    server.kill();
    std::fs::read_to_string(&log_path).unwrap()
}

#[test]
fn malformed_requests_are_not_logged_as_errors() {
    let log = run_with_log("info");
    assert!(
        !log.lines().any(|line| line.contains("ERROR")),
        "client mistakes at ERROR:\n{log}"
    );
    // At debug level they are there, under their own target.
    let log = run_with_log("info,as_server::client_error=debug");
    assert!(log.contains("as_server::client_error"), "{log}");
    assert!(!log.lines().any(|line| line.contains("ERROR")), "{log}");
}

/// The log installs a maximum level: at `info`, debug and trace events (the servers's own,
/// and the `log` records of rustls, sled and actix) are turned off at their call sites, not
/// built and filtered one by one (that cost 5–10 % of the CPU per request when it was lost).
#[test]
fn the_log_keeps_its_maximum_level() {
    as_server::logging::init("info").unwrap();
    assert_eq!(
        tracing::level_filters::LevelFilter::current(),
        tracing::level_filters::LevelFilter::INFO
    );
}
