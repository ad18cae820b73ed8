//! Concurrent issuance over HTTPS: 100 clients at once all get credentials, each proven in a
//! checkpoint that covers it; racing one token, exactly one request wins; a full queue
//! answers 503 and loses nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Barrier};

use common::Server;
use test_support::requests::new_key;

#[test]
fn a_hundred_clients_at_once() {
    let server = Arc::new(Server::start());
    let identities: Vec<String> = (0..100).map(|i| format!("device{i}@example.com")).collect();
    let names: Vec<&str> = identities.iter().map(String::as_str).collect();
    let tokens = server.enroll(&names);
    let barrier = Arc::new(Barrier::new(100));
    let handles: Vec<_> = identities
        .into_iter()
        .zip(tokens)
        .map(|(identity, token)| {
            let server = Arc::clone(&server);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let key = new_key();
                barrier.wait();
                let answer = server.issue(&identity, &token, &key);
                assert_eq!(
                    answer.status,
                    201,
                    "{}",
                    String::from_utf8_lossy(&answer.body)
                );
                let body = answer.json();
                let verified = server.verify_directory(&body["directory"]);
                assert_eq!(verified.identity, identity);
                let state = verified.state.unwrap();
                let serial = body["serial"].as_str().unwrap();
                assert!(state
                    .record
                    .credentials
                    .iter()
                    .any(|c| c.serial.to_hex() == serial
                        && c.public_key == key.verifying_key().to_bytes()));
                verified.label
            })
        })
        .collect();
    let labels: HashSet<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(labels.len(), 100, "one label each");
    assert_eq!(server.changes(), 100, "one update each");
    let size = server.checkpoint().size();
    let metrics = String::from_utf8(server.get("/metrics").body).unwrap();
    assert!(
        metrics.contains(&format!("as_log_size {size}")),
        "{metrics}"
    );
}

#[test]
fn racing_one_token_exactly_one_wins() {
    let server = Arc::new(Server::start());
    let token = server.enroll(&["race@example.com"]).remove(0);
    let barrier = Arc::new(Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let server = Arc::clone(&server);
            let barrier = Arc::clone(&barrier);
            let token = token.clone();
            std::thread::spawn(move || {
                let key = new_key();
                barrier.wait();
                server.issue("race@example.com", &token, &key).status
            })
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    assert_eq!(server.changes(), 1);
}

/// The answer of a change to a server whose queue may be full: a 2xx (`ok`) counted in
/// `done`, or a 503 `overloaded` with `Retry-After: 1` counted in `refused`; anything else
/// fails the test.
fn count_answer(
    answer: &as_server::admin_client::Answer,
    ok: u16,
    done: &mut u64,
    refused: &mut u64,
) {
    match answer.status {
        status if status == ok => *done += 1,
        503 => {
            assert_eq!(answer.retry_after.as_deref(), Some("1"));
            assert_eq!(
                answer.json()["type"],
                "https://kt-as.dev/problems/overloaded"
            );
            *refused += 1;
        }
        other => panic!(
            "unexpected {other}: {}",
            String::from_utf8_lossy(&answer.body)
        ),
    }
}

/// A sequencer queue of one, flooded: first by issuances, then by revocations. An issuance
/// costs its worker milliseconds of CPU in a debug build (the proof of possession, a new
/// identity's VRF label, the CA's signature), so on two cores issuances may reach the
/// sequencer no faster than it drains them and the queue may never fill; a revocation costs
/// its worker next to nothing, so 64 at once always fill it. Either way every 2xx is logged
/// and no 503 is.
#[test]
fn a_full_queue_answers_503_with_retry_after_and_loses_nothing() {
    let server = Arc::new(Server::start_with(&[
        "--queue-capacity",
        "1",
        "--max-batch",
        "1",
    ]));
    let mut issued = 0u64;
    let mut refused = 0;
    let mut serials = Vec::new();
    for round in 0..5 {
        let identities: Vec<String> = (0..64)
            .map(|i| format!("r{round}d{i}@example.com"))
            .collect();
        let names: Vec<&str> = identities.iter().map(String::as_str).collect();
        let tokens = server.enroll(&names);
        let barrier = Arc::new(Barrier::new(64));
        let handles: Vec<_> = identities
            .into_iter()
            .zip(tokens)
            .map(|(identity, token)| {
                let server = Arc::clone(&server);
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    let key = new_key();
                    barrier.wait();
                    server.issue(&identity, &token, &key)
                })
            })
            .collect();
        for handle in handles {
            let answer = handle.join().unwrap();
            count_answer(&answer, 201, &mut issued, &mut refused);
            if answer.status == 201 {
                let body = answer.json();
                assert!(server.verify_directory(&body["directory"]).state.is_some());
                serials.push(body["serial"].as_str().unwrap().to_owned());
            }
        }
        if refused > 0 {
            break;
        }
    }
    // The credentials just issued, revoked all at once.
    let mut revoked = 0u64;
    let mut refused_revocations = 0;
    let barrier = Arc::new(Barrier::new(serials.len()));
    let handles: Vec<_> = serials
        .into_iter()
        .map(|serial| {
            let server = Arc::clone(&server);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                server.admin_post(
                    &format!("/v1/admin/credentials/{serial}/revoke"),
                    &serde_json::json!({}),
                )
            })
        })
        .collect();
    for handle in handles {
        let answer = handle.join().unwrap();
        count_answer(&answer, 200, &mut revoked, &mut refused_revocations);
        if answer.status == 200 {
            assert!(server
                .verify_directory(&answer.json()["directory"])
                .state
                .is_some());
        }
    }
    assert!(
        refused_revocations > 0,
        "64 revocations at once never filled a queue of one"
    );
    assert_eq!(
        server.changes() as u64,
        issued + revoked,
        "every 2xx is logged, no 503 is"
    );
}
