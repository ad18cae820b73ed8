//! Methods the API does not use: answered 405 with a problem document without reaching a
//! handler, and counted under one `other` label, so that no client can grow the metrics (and the server's
//! memory) by sending new methods. Before, every distinct method, however long, became a
//! series of its own: 1,000 requests with 30 KB methods grew `/metrics` to 32.5 MB.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{raw_request, Server};

fn series(metrics: &str) -> usize {
    metrics
        .lines()
        .filter(|line| line.starts_with("as_http_requests_total{"))
        .count()
}

#[test]
fn unknown_methods_are_answered_early_and_add_no_series() {
    let server = Server::start();
    // Warm up: the series of /metrics itself and of the paths used below exist from here on.
    let warm = raw_request(
        &server,
        b"BREW /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(warm.0, 405);
    server.get("/metrics");
    let before = String::from_utf8(server.get("/metrics").body).unwrap();

    for i in 0..200 {
        // A distinct, long method each time (and one of 30 KB).
        let len = if i == 0 { 30_000 } else { 2_000 };
        let method: String = format!("M{i:03}")
            .chars()
            .chain(std::iter::repeat('X'))
            .take(len)
            .collect();
        let request = format!("{method} /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let (status, body) = raw_request(&server, request.as_bytes());
        if i == 0 && status != 405 {
            // A head over actix's size limit is refused by actix itself; either way no series.
            assert!((400..500).contains(&status), "{status}");
            continue;
        }
        assert_eq!(status, 405, "{}", String::from_utf8_lossy(&body));
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            problem["type"],
            "https://kt-as.dev/problems/method-not-allowed"
        );
    }
    // Methods of the RFC too, on a real path: the same early answer.
    for method in ["PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"] {
        let request = format!("{method} /v1/ca HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(raw_request(&server, request.as_bytes()).0, 405, "{method}");
    }

    // The 405 names what the path does answer.
    let answer = {
        use std::io::{Read as _, Write as _};
        let mut stream = common::raw_tls(&server.base, &server.data.join("tls-cert.pem"));
        stream
            .write_all(b"BREWXXXX /v1/credentials HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).to_lowercase()
    };
    assert!(answer.starts_with("http/1.1 405"), "{answer}");
    assert!(answer.contains("\r\nallow: post\r\n"), "{answer}");

    let after = String::from_utf8(server.get("/metrics").body).unwrap();
    assert!(!after.contains("XXXX"), "a raw method reached the metrics");
    assert!(
        series(&after) <= series(&before) + 2,
        "series grew from {} to {}",
        series(&before),
        series(&after)
    );
    assert!(
        after.len() < before.len() + 4_096,
        "/metrics grew from {} to {} bytes",
        before.len(),
        after.len()
    );
    assert!(after.contains(r#"method="other",status="405""#), "{after}");
    // The server still answers as before.
    assert_eq!(server.get("/healthz").status, 200);
}
