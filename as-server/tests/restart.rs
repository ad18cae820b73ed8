//! Restart with data intact: after SIGKILL the server comes back with every acknowledged
//! credential, the same keys, a log that extends what it signed, and used tokens still used.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Server;
use kt_log::Hash;
use test_support::fixtures::crl_number;
use test_support::requests::new_key;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

#[test]
fn killed_and_restarted_nothing_acknowledged_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start_in(&data, None, &[]);
    let admin = server.admin_token.clone();
    let tokens = server.enroll(&["a@example.com", "b@example.com", "c@example.com"]);
    let key = new_key();
    let first = server.issue("a@example.com", &tokens[0], &key).json();
    let second = server.issue("b@example.com", &tokens[1], &new_key()).json();
    let before = server.checkpoint();
    let ca = server.get("/v1/ca").body;
    let crl_before = crl_number(&server.get("/v1/crl").body);
    server.kill();

    let server = Server::start_in(&data, Some(admin), &[]);
    let after = server.checkpoint();
    assert!(after.size() >= before.size());
    let proof: Vec<Hash> = server
        .get(&format!(
            "/v1/log/proof/consistency?from={}&to={}",
            before.size(),
            after.size()
        ))
        .json()["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_slice(&B64.decode(h.as_str().unwrap()).unwrap()).unwrap())
        .collect();
    before.verify_extended_by(&after, &proof).unwrap();
    assert_eq!(server.get("/v1/ca").body, ca, "same CA after restart");
    // RFC 5280 §5.2.3: CRL numbers strictly increase, across restarts too (the restart here
    // usually happens within the second of the first CRL).
    let crl_after = crl_number(&server.get("/v1/crl").body);
    assert!(crl_after > crl_before, "{crl_after} > {crl_before}");

    for (identity, issued) in [("a@example.com", &first), ("b@example.com", &second)] {
        assert_eq!(
            server.current_serials(identity),
            [issued["serial"].as_str().unwrap()]
        );
    }
    // The token used before the crash stays used; the unused one still works; the admin token
    // from the first start still works.
    assert_eq!(
        server.issue("a@example.com", &tokens[0], &new_key()).status,
        409
    );
    assert_eq!(
        server.issue("c@example.com", &tokens[2], &new_key()).status,
        201
    );
    assert_eq!(server.enroll(&["d@example.com"]).len(), 1);
}

#[test]
fn a_second_server_on_the_same_folder_is_refused_and_the_first_keeps_serving() {
    let server = Server::start();
    let tokens = server.enroll(&["a@example.com", "b@example.com"]);
    assert_eq!(
        server.issue("a@example.com", &tokens[0], &new_key()).status,
        201
    );
    let state_before: Vec<_> = std::fs::read_dir(&server.data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_as-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&server.data)
        .env("AS_LOG", "warn")
        .env_remove("AS_CONFIG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A second server that started would serve forever: give it a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("a second server on the same data folder kept running");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let second = child.wait_with_output().unwrap();
    assert!(!second.status.success(), "the second server must not start");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("in use by another as-server"), "{stderr}");
    assert!(!String::from_utf8_lossy(&second.stdout).contains("listening:"));
    // It touched nothing: no state moved aside, and the first serves on.
    let state_after: Vec<_> = std::fs::read_dir(&server.data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(state_before, state_after);
    assert_eq!(
        server.issue("b@example.com", &tokens[1], &new_key()).status,
        201
    );
    assert_eq!(server.changes(), 2);
}
