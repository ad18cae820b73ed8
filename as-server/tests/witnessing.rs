//! The server's witness settings, without witnesses (tests/e2e/witnessed_log.rs runs real
//! ones): a policy that does not list the log and a saved cosigned checkpoint that is not of
//! the log are refused at start; with its witnesses unreachable the server issues as before,
//! answers `/log/checkpoint` with a 503 problem and `Retry-After`, and says why at
//! `/v1/log/witnesses`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{assert_problem, Server};
use kt_log::checkpoint::Checkpoint;
use kt_log::cosignature::CosignatureSigner;
use kt_log::hash::leaf_hash;
use kt_log::note::NoteSigner;
use test_support::requests::new_key;
use test_support::schemas::Schemas;

/// Runs `as-server serve` on `data` with `extra` and expects it to refuse to start; returns
/// its error output.
fn refused_start(data: &Path, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_as-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(extra)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the server started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A data folder with keys (one start, then stopped), its log key's text and admin token.
fn prepared(dir: &Path) -> (std::path::PathBuf, String, String) {
    let data = dir.join("data");
    let mut server = Server::start_in(&data, None, &[]);
    server.kill();
    let vkey = std::fs::read_to_string(data.join("log-key.pub"))
        .unwrap()
        .trim()
        .to_owned();
    (data, vkey, server.admin_token.clone())
}

#[test]
fn a_policy_without_this_log_is_refused_naming_the_line_to_add() {
    let dir = tempfile::tempdir().unwrap();
    let (data, vkey, _) = prepared(dir.path());
    let other = NoteSigner::generate("other.example/log").unwrap();
    let policy = dir.path().join("policy");
    std::fs::write(
        &policy,
        format!("log {}\nquorum none\n", other.verifier().to_vkey()),
    )
    .unwrap();
    let stderr = refused_start(&data, &["--witness-policy", policy.to_str().unwrap()]);
    assert!(
        stderr.contains("does not list this log") && stderr.contains(&format!("log {vkey}")),
        "{stderr}"
    );
    std::fs::write(&policy, "quorum nobody\n").unwrap();
    let stderr = refused_start(&data, &["--witness-policy", policy.to_str().unwrap()]);
    assert!(stderr.contains("witness policy"), "{stderr}");
}

#[test]
fn a_saved_cosigned_checkpoint_that_is_not_of_this_log_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (data, vkey, _) = prepared(dir.path());
    let policy = dir.path().join("policy");
    std::fs::write(&policy, format!("log {vkey}\nquorum none\n")).unwrap();
    let signer = NoteSigner::parse(
        std::fs::read_to_string(data.join("log-key"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let flags = ["--witness-policy", policy.to_str().unwrap()];
    // Signed by the log's own key, but larger than the log, then at its size another root:
    // entries the witnesses vouched for are missing or different.
    for (size, why) in [(1000, "it has 1 entries"), (1, "another root at that size")] {
        let note = Checkpoint {
            origin: signer.name().to_owned(),
            size,
            root: leaf_hash(b"not this log"),
            extensions: vec![],
        }
        .sign(&signer)
        .unwrap()
        .note;
        std::fs::write(data.join("cosigned-checkpoint"), note).unwrap();
        let stderr = refused_start(&data, &flags);
        assert!(
            stderr.contains("is not a checkpoint of this log") && stderr.contains(why),
            "{stderr}"
        );
    }
    // Not signed by the log at all.
    std::fs::write(data.join("cosigned-checkpoint"), b"garbage\n").unwrap();
    assert!(refused_start(&data, &flags).contains("not a checkpoint signed by this log"));
}

#[test]
fn with_its_witnesses_unreachable_the_server_issues_and_says_why_nothing_is_cosigned() {
    let dir = tempfile::tempdir().unwrap();
    let (data, vkey, token) = prepared(dir.path());
    // A port nobody listens on.
    let dead = test_support::free_port();
    let witness = CosignatureSigner::generate("w.example/w").unwrap();
    let policy = dir.path().join("policy");
    std::fs::write(
        &policy,
        format!(
            "log {vkey}\nwitness W {} http://127.0.0.1:{dead}\nquorum W\n",
            witness.verifier().to_vkey()
        ),
    )
    .unwrap();
    let server = Server::start_in(
        &data,
        Some(token),
        &[
            "--witness-policy",
            policy.to_str().unwrap(),
            "--witness-cadence-ms",
            "50",
            "--witness-timeout-ms",
            "500",
        ],
    );
    let schemas = Schemas::load();
    let tokens = server.enroll(&["alice@example.com"]);
    let issued = server.issue("alice@example.com", &tokens[0], &new_key());
    assert_eq!(issued.status, 201);

    let answer = server.get("/log/checkpoint");
    assert_problem(&answer, 503, "not-yet-available", &schemas);
    assert_eq!(answer.retry_after.as_deref(), Some("1"));
    assert_problem(
        &server.get("/v1/log/checkpoint"),
        503,
        "not-yet-available",
        &schemas,
    );

    let started = Instant::now();
    let status = loop {
        let status = server.get("/v1/log/witnesses").json();
        if status["witnesses"][0]["last_error"].is_string() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{status}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status["quorum"], "W");
    assert!(status["cosigned"].is_null());
    assert_eq!(status["witnesses"][0]["name"], "W");
    assert_eq!(
        status["witnesses"][0]["url"],
        format!("http://127.0.0.1:{dead}")
    );
    assert!(status["witnesses"][0]["last_cosigned"].is_null());

    // Without a policy the status endpoint is a 404 problem and the checkpoint the log's.
    let plain = Server::start();
    assert_problem(&plain.get("/v1/log/witnesses"), 404, "not-found", &schemas);
    assert_eq!(plain.get("/log/checkpoint").status, 200);
}
