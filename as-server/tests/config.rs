//! Running from a config file with operator TLS files and `--admin-token-out`: the settings
//! take effect, the token file is 0600 and the token works, health and metrics answer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;

use as_server::admin_client::HttpsClient;
use common::Server;

#[test]
fn config_file_operator_tls_and_token_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (
        dir.path().join("op-cert.pem"),
        dir.path().join("op-key.pem"),
    );
    as_server::tls::generate_self_signed(&["as.example.test".into()], &cert, &key).unwrap();
    let token_file = dir.path().join("admin-token");
    let config = dir.path().join("as.toml");
    std::fs::write(
        &config,
        format!(
            "origin = \"as.example.test/log\"\ntls_cert = {cert:?}\ntls_key = {key:?}\nadmin_token_out = {token_file:?}\nmax_credentials = 1\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let token_out = {
        // The token goes to the file, not stdout: the harness gets a stand-in, the test reads
        // the file.
        let server = Server::start_trusting(
            &data,
            Some("read from the file".into()),
            &["--config", config.to_str().unwrap()],
            &cert,
        );
        let token = std::fs::read_to_string(&token_file)
            .unwrap()
            .trim()
            .to_owned();
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(
            !data.join("tls-cert.pem").exists(),
            "operator TLS files are used, none generated"
        );

        // The server presents the operator's certificate: a client pinned to it connects.
        let pinned = HttpsClient::new(&server.base, &std::fs::read(&cert).unwrap()).unwrap();
        let health = pinned.get("/healthz").unwrap();
        assert_eq!(
            (health.status, health.body.as_slice()),
            (200, b"ok\n".as_slice())
        );
        assert_eq!(
            pinned.get("/v1/log/key").unwrap().json()["origin"],
            "as.example.test/log"
        );
        let metrics = String::from_utf8(pinned.get("/metrics").unwrap().body).unwrap();
        // A new log holds the empty map's entry.
        assert!(metrics.contains("as_log_size 1"), "{metrics}");
        assert!(metrics.contains("as_sequencer_queue_depth"), "{metrics}");

        let answer = pinned
            .post(
                "/v1/admin/enrollments",
                br#"{"identities":["x@example.test","x@example.test"]}"#,
                Some(&token),
            )
            .unwrap();
        assert_eq!(answer.status, 201);
        let tokens: Vec<String> = answer.json()["enrollments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["token"].as_str().unwrap().to_owned())
            .collect();
        let first = pinned
            .post(
                "/v1/credentials",
                test_support::requests::issue_request(
                    "x@example.test",
                    &tokens[0],
                    &test_support::requests::new_key(),
                )
                .to_string()
                .as_bytes(),
                None,
            )
            .unwrap();
        assert_eq!(first.status, 201);
        // max_credentials = 1 from the file.
        let second = pinned
            .post(
                "/v1/credentials",
                test_support::requests::issue_request(
                    "x@example.test",
                    &tokens[1],
                    &test_support::requests::new_key(),
                )
                .to_string()
                .as_bytes(),
                None,
            )
            .unwrap();
        assert_eq!(second.status, 409);
        token
    };
    assert_eq!(token_out.len(), 43);
}

/// A log key file with an empty key field stops the start with a message, not a panic.
#[test]
fn a_malformed_log_key_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    drop(Server::start_in(&data, None, &[]));
    std::fs::write(data.join("log-key"), "PRIVATE+KEY+name+ab0782d1+\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_as-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env("AS_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("log-key"), "{stderr}");
}

/// A connection bound below the number of workers is refused at start: each worker takes at
/// least one connection, so it could not hold.
#[test]
fn a_connection_bound_below_the_workers_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_as-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", "4"])
        .args(["--max-connections", "2", "--data"])
        .arg(dir.path().join("data"))
        .env("AS_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("max_connections"), "{stderr}");
}
