//! Argument parsing that real values must survive.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

#[test]
fn an_enrollment_token_may_start_with_a_hyphen() {
    // Tokens are base64url: one in 64 starts with '-', which must not be taken for a flag.
    let out = Command::new(env!("CARGO_BIN_EXE_verifier-cli"))
        .args(["enroll", "--log-key", "not-a-key", "--ca", "none.pem"])
        .args(["--identity", "a@example.com", "--token", "-EsP0jS1x2Z5Dqv"])
        .args(["--key-out", "k.pem", "--out", "c.json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("unexpected argument"), "{stderr}");
    assert!(
        stderr.contains("--log-key"),
        "parsing got as far as the log key: {stderr}"
    );
}
