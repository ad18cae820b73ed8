//! Runs the `mls-demo` binary against a real as-server and checks that every expected
//! acceptance and refusal happened.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::process::Command;

#[test]
fn mls_scenario_against_a_real_server() {
    let server = common::Server::start();
    let token_file = server.folder().join("admin-token");
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
    // The log starts with the empty map's entry, and each change of this scenario is a batch
    // of its own: one update entry and one map entry. So the three issuances end at sizes 3,
    // 5 and 7, Charlie's revocation at 9 and Bob's rotation at 11.
    for expected in [
        // Each member's own credential (proven by its issuance answer, whose checkpoint it
        // keeps), then KeyPackages checked before the add: each key is the one current
        // credential of version 1 of its identity's state.
        "alice@example.com: credential serial ",
        "proven in version 1 of its state in checkpoint of size 3",
        "[ok] ACCEPTED alice@example.com validates its own credential: version 1 of its state (1 current credential), proven in the map of checkpoint of size 3 (same as saved)",
        "[ok] ACCEPTED bob@example.com validates its own credential: version 1 of its state (1 current credential), proven in the map of checkpoint of size 5 (same as saved)",
        "[ok] ACCEPTED charlie@example.com validates its own credential: version 1 of its state (1 current credential), proven in the map of checkpoint of size 7 (same as saved)",
        "[ok] ACCEPTED alice@example.com validates KeyPackage of bob@example.com: version 1 of its state (1 current credential), proven in the map of checkpoint of size 7 (proven to extend saved size 3)",
        "[ok] ACCEPTED alice@example.com validates KeyPackage of charlie@example.com: version 1 of its state (1 current credential), proven in the map of checkpoint of size 7 (same as saved)",
        // The ratchet tree checked on join.
        "[ok] ACCEPTED bob@example.com validates member 0 alice@example.com",
        "[ok] ACCEPTED bob@example.com validates member 2 charlie@example.com",
        "[ok] ACCEPTED charlie@example.com validates member 1 bob@example.com",
        "bob@example.com joined",
        "charlie@example.com joined",
        "[ok] charlie@example.com reads \"hello from alice\"",
        "[ok] alice@example.com reads \"hi alice, bob here\"",
        // (a) a key the AS never logged, and an identity it never enrolled.
        "[ok] REFUSED alice@example.com validates forged KeyPackage claiming bob@example.com: no current logged credential of this identity has this key (not in its complete current set) (NotLogged)",
        "[ok] REFUSED alice@example.com validates KeyPackage of never-enrolled dave@example.com: unknown identity: the directory proves it absent (UnknownIdentity)",
        // (b) revocation: its answer proves Charlie's new state; re-validation proves the new
        // checkpoint consistent with the saved one, and refuses Charlie.
        "the answer proves version 2 of charlie's state, revoked with no current credential, in checkpoint of size 9",
        "[ok] ACCEPTED alice@example.com validates member 1 bob@example.com: version 1 of its state (1 current credential), proven in the map of checkpoint of size 9 (proven to extend saved size 7)",
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
        // (c) rotation: Bob's old key leaves his complete current set. Alice refuses his leaf
        // and a KeyPackage still carrying it (with his old, unexpired certificate, which is
        // superseded, not on the CRL), and accepts his new key.
        "proven in version 2 of his state in checkpoint of size 11",
        "[ok] REFUSED alice@example.com validates member 1 bob@example.com: no current logged credential of this identity has this key (not in its complete current set) (NotLogged)",
        "[ok] REFUSED alice@example.com validates KeyPackage of bob@example.com with his rotated-away key and old certificate: no current logged credential of this identity has this key (not in its complete current set) (NotLogged)",
        "[ok] ACCEPTED alice@example.com validates KeyPackage of bob@example.com with his new key: version 2 of its state (1 current credential), proven in the map of checkpoint of size 11",
        "missed\nRESULT: PASS",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("UNEXPECTED"), "{stdout}");
    assert!(stdout.contains("expectations met, 0 missed"), "{stdout}");
}
