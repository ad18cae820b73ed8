//! The rotation budget: one credential holder cannot grow the log without limit. The review
//! made 300 rotations in 0.6 s from one client; now all but what the budget allows get 429
//! with `Retry-After`, nothing of them is logged, and the budget holds across a restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{assert_problem, Server};
use test_support::requests::new_key;
use test_support::schemas::Schemas;

const ALICE: &str = "alice@example.com";

/// Rotates alice's credential as fast as a client can, `attempts` times; returns how many
/// were accepted, the serial and key she ends with, and the last refusal.
fn spam(
    server: &Server,
    mut serial: String,
    mut key: ed25519_dalek::SigningKey,
    attempts: usize,
) -> (
    usize,
    String,
    ed25519_dalek::SigningKey,
    Option<as_server::admin_client::Answer>,
) {
    let (mut accepted, mut refusal) = (0, None);
    for _ in 0..attempts {
        let next = new_key();
        let answer = server.rotate(ALICE, &serial, &key, &next);
        match answer.status {
            201 => {
                accepted += 1;
                serial = answer.json()["serial"].as_str().unwrap().to_owned();
                key = next;
            }
            429 => refusal = Some(answer),
            other => panic!("{other}: {}", String::from_utf8_lossy(&answer.body)),
        }
    }
    (accepted, serial, key, refusal)
}

/// Alice's first credential on a server started with `flags` in `data`: (server, serial, key).
fn alice_on(data: &std::path::Path, flags: &[&str]) -> (Server, String, ed25519_dalek::SigningKey) {
    let server = Server::start_in(data, None, flags);
    let token = server.enroll(&[ALICE]).remove(0);
    let key = new_key();
    let issued = server.issue(ALICE, &token, &key);
    assert_eq!(issued.status, 201);
    let serial = issued.json()["serial"].as_str().unwrap().to_owned();
    (server, serial, key)
}

#[test]
fn a_burst_of_rotations_waits_for_the_least_interval() {
    let dir = tempfile::tempdir().unwrap();
    let schemas = Schemas::load();
    let (server, serial, key) = alice_on(
        &dir.path().join("data"),
        &["--rotation-min-interval", "600"],
    );
    let changes = server.changes();
    let (accepted, _, _, refusal) = spam(&server, serial, key, 30);
    assert_eq!(accepted, 1);
    let refusal = refusal.unwrap();
    assert_problem(&refusal, 429, "rate-limited", &schemas);
    let wait: u64 = refusal.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((500..=600).contains(&wait), "Retry-After {wait}");
    assert_eq!(server.changes(), changes + 1, "refusals log nothing");
}

#[test]
fn the_daily_count_holds_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let schemas = Schemas::load();
    let flags = ["--rotation-min-interval", "0", "--rotations-per-day", "3"];
    let (mut server, serial, key) = alice_on(&data, &flags);
    let changes = server.changes();
    let (accepted, serial, key, refusal) = spam(&server, serial, key, 10);
    assert_eq!(accepted, 3);
    let refusal = refusal.unwrap();
    assert_problem(&refusal, 429, "rate-limited", &schemas);
    let wait: u64 = refusal.retry_after.unwrap().parse().unwrap();
    assert!(wait > 86_000, "Retry-After {wait}");
    assert_eq!(server.changes(), changes + 3);

    // The budget is derived from the log, so a restart does not reset it.
    let admin_token = server.admin_token.clone();
    server.kill();
    let server = Server::start_in(&data, Some(admin_token), &flags);
    let (accepted, _, _, refusal) = spam(&server, serial, key, 3);
    assert_eq!(accepted, 0);
    assert_problem(&refusal.unwrap(), 429, "rate-limited", &schemas);
    assert_eq!(server.changes(), changes + 3);
}

#[test]
fn the_default_budget_allows_one_rotation_a_minute() {
    let server = Server::start();
    let token = server.enroll(&[ALICE]).remove(0);
    let key = new_key();
    let issued = server.issue(ALICE, &token, &key);
    let serial = issued.json()["serial"].as_str().unwrap().to_owned();
    let (accepted, _, _, refusal) = spam(&server, serial, key, 20);
    assert_eq!(accepted, 1);
    let wait: u64 = refusal.unwrap().retry_after.unwrap().parse().unwrap();
    assert!((50..=60).contains(&wait), "Retry-After {wait}");
}
