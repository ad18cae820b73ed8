//! Runs the `mls-demo` binary against a real as-server and checks that every expected
//! acceptance and refusal happened.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::process::Command;

#[test]
fn mls_scenario_against_a_real_server() {
    let server = common::Server::start();
    let token_file = server.dir.path().join("admin-token");
    std::fs::write(&token_file, &server.admin_token).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_mls-demo"))
        .arg("--server")
        .arg(&server.base)
        .arg("--tls-ca")
        .arg(server.data.join("tls-cert.pem"))
        .arg("--log-key")
        .arg(server.data.join("log-key.pub"))
        .arg("--ca")
        .arg(server.data.join("ca-cert.pem"))
        .arg("--admin-token-file")
        .arg(&token_file)
        .args(["--domain", "example.com"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "mls-demo failed ({:?})\n{stdout}\n{stderr}",
        output.status
    );
    for expected in [
        // Each member's own credential, then KeyPackages checked before the add.
        "[ok] ACCEPTED alice@example.com validates its own credential: issue entry at log index 0",
        "[ok] ACCEPTED alice@example.com validates KeyPackage of bob@example.com: issue entry at log index 1",
        "[ok] ACCEPTED alice@example.com validates KeyPackage of charlie@example.com: issue entry at log index 2",
        // The ratchet tree checked on join.
        "[ok] ACCEPTED bob@example.com validates member 0 alice@example.com",
        "[ok] ACCEPTED bob@example.com validates member 2 charlie@example.com",
        "[ok] ACCEPTED charlie@example.com validates member 1 bob@example.com",
        "bob@example.com joined",
        "charlie@example.com joined",
        "[ok] charlie@example.com reads \"hello from alice\"",
        "[ok] alice@example.com reads \"hi alice, bob here\"",
        // (a) a key the AS never logged, and an identity it never enrolled.
        "[ok] REFUSED alice@example.com validates forged KeyPackage claiming bob@example.com: no current logged credential of this identity has this key (NotLogged)",
        "(UnknownIdentity)",
        // (b) revocation: re-validation proves the new checkpoint consistent, refuses Charlie.
        "included in checkpoint of size 4 (proven to extend saved size 3)",
        "[ok] REFUSED alice@example.com validates member 2 charlie@example.com: identity is revoked (Revoked)",
        "[ok] REFUSED bob@example.com validates member 2 charlie@example.com: identity is revoked (Revoked)",
        "[ok] REFUSED bob@example.com validates committer 2 charlie@example.com: identity is revoked (Revoked)",
        "bob@example.com discards Charlie's commit",
        "[ok] ACCEPTED bob@example.com validates committer 0 alice@example.com",
        "bob@example.com merged the commit",
        "[ok] charlie@example.com's group is no longer active",
        "[ok] group members now: alice@example.com, bob@example.com",
        "[ok] bob@example.com reads \"charlie is gone\"",
        "[ok] charlie@example.com cannot read it",
        "missed\nRESULT: PASS",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("UNEXPECTED"), "{stdout}");
    assert!(stdout.contains("expectations met, 0 missed"), "{stdout}");
}
