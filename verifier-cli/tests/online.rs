//! Online commands against a mock HTTP server serving honest and dishonest answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use kt_log::note::NoteSigner;
use serde_json::json;

fn signer() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, &seed(1)).unwrap()
}

#[test]
fn checkpoint_fetch_extends_and_detects_forks() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut log = MemLog::new(signer());
    for i in 0..10 {
        log.push(format!("e{i}").into_bytes());
    }
    let key = log.vkey();
    let server = MockServer::start();
    let fetch = || {
        run_json(&[
            "checkpoint",
            "fetch",
            "--log-key",
            &key,
            "--server",
            &server.url,
            "--state",
            p(&state),
        ])
    };
    server.serve_log(&log, 6);
    let (code, out) = fetch();
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["consistency"], json!("first"));
    server.serve_log(&log, 10);
    let (code, out) = fetch();
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["consistency"], json!("extended"));
    assert_eq!(out["previous_size"], json!(6));
    assert_eq!(fetch().1["consistency"], json!("unchanged"));
    // A stale (older, consistent) view is not saved.
    server.serve_log(&log, 8);
    assert_eq!(fetch().1["consistency"], json!("behind"));

    // A bad proof, a checkpoint by another key, garbage: verification failures, not forks.
    server.serve_log(&log, 10);
    let other = MemLog {
        signer: NoteSigner::from_seed(ORIGIN, &seed(4)).unwrap(),
        ..log.clone()
    };
    server.set("/log/checkpoint", 200, other.checkpoint(10));
    assert_eq!(fetch().0, 1);
    server.set("/log/checkpoint", 200, "garbage");
    assert_eq!(fetch().0, 1);
    server.set("/log/checkpoint", 500, "oops");
    assert_eq!(fetch().0, 3);

    // The server forks: a log with the same first 5 entries and other ones after.
    let mut fork = MemLog::new(signer());
    for i in 0..12 {
        fork.push(
            if i < 5 {
                format!("e{i}")
            } else {
                format!("x{i}")
            }
            .into_bytes(),
        );
    }
    server.serve_log(&fork, 12);
    let (code, out) = fetch();
    assert_eq!(code, 4, "{out}");
    let evidence = out["evidence"].as_str().unwrap().to_owned();
    assert_eq!(run(&["fork", "verify", "--log-key", &key, &evidence]).0, 4);
    // Same size, different root.
    server.serve_log(&fork, 10);
    let (code, out) = fetch();
    assert_eq!(code, 4, "{out}");
    assert_eq!(
        run(&[
            "fork",
            "verify",
            "--log-key",
            &key,
            out["evidence"].as_str().unwrap()
        ])
        .0,
        4
    );
    // The saved state was not replaced by the forked views.
    server.serve_log(&log, 10);
    assert_eq!(fetch().1["consistency"], json!("unchanged"));
    // Two auditors' folders: the second saw the fork.
    let state_b = dir.path().join("state_b");
    server.serve_log(&fork, 10);
    assert_eq!(
        run(&[
            "checkpoint",
            "fetch",
            "--log-key",
            &key,
            "--server",
            &server.url,
            "--state",
            p(&state_b)
        ])
        .0,
        0
    );
    let (code, out) = run_json(&[
        "compare",
        "--log-key",
        &key,
        "--state",
        p(&state),
        p(&state),
        p(&state_b),
    ]);
    assert_eq!(code, 4, "{out}");
}

struct Fixture {
    dir: tempfile::TempDir,
    ca: TestCa,
    directory: MemDirectory,
    server: MockServer,
    alice: Cred,
    old_alice: Cred,
    revoked: Cred,
}

impl Fixture {
    /// Alice's old credential rotated to `alice`; a third credential issued and revoked.
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new(1);
        let mut directory = MemDirectory::new(signer());
        let t = now();
        let alice = Cred::new(&ca, "alice@example.com", 1, (t - 100, t + 86400));
        let old_alice = Cred::new(&ca, "alice@example.com", 2, (t - 100, t + 86400));
        let revoked = Cred::new(&ca, "alice@example.com", 3, (t - 100, t + 86400));
        directory.commit(std::slice::from_ref(&old_alice.entry));
        directory.commit(&[alice.rotate_entry(&old_alice.serial)]);
        directory.commit(std::slice::from_ref(&revoked.entry));
        directory.commit(&[revoke_credential_entry(
            "alice@example.com",
            &revoked.serial,
        )]);
        let server = MockServer::start();
        let f = Fixture {
            dir,
            ca,
            directory,
            server,
            alice,
            old_alice,
            revoked,
        };
        f.serve_directory();
        f.server.set("/v1/crl", 200, f.ca.crl(&[&f.revoked.serial]));
        f
    }

    /// Serves the log, alice's proof and nobody's absence as the directory is now.
    fn serve_directory(&self) {
        self.server
            .serve_log(&self.directory.log, self.directory.log.size());
        for who in ["alice@example.com", "nobody@example.com"] {
            self.serve_proof(who, &self.directory.proof(who));
        }
    }

    fn serve_proof(&self, identity: &str, proof: &kt_protocol::api::IdentityProof) {
        self.server.set(
            &format!("/v1/identities/{identity}"),
            200,
            serde_json::to_vec(proof).unwrap(),
        );
    }
}

#[test]
fn lookup_validate_credential() {
    let f = Fixture::new();
    let key = f.directory.log.vkey();
    let vrf = f.directory.vrf_b64();
    let ca_file = write(f.dir.path(), "ca.pem", f.ca.pem());
    let state = f.dir.path().join("state");
    let base = |cmd: &str| {
        vec![
            cmd.to_owned(),
            "--log-key".into(),
            key.clone(),
            "--vrf-key".into(),
            vrf.clone(),
            "--ca".into(),
            p(&ca_file).into(),
            "--server".into(),
            f.server.url.clone(),
            "--state".into(),
            p(&state).into(),
        ]
    };
    let go = |cmd: &str, rest: &[&str]| {
        let mut a = base(cmd);
        a.extend(rest.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        run_json(&refs)
    };
    // lookup: the complete state, every proof verified; saved for offline re-checks.
    let saved = f.dir.path().join("alice-answer.json");
    let (code, out) = go("lookup", &["--save", p(&saved), "alice@example.com"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["version"], json!(4));
    assert_eq!(out["identity_status"], json!("active"));
    assert_eq!(out["credentials"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(out["credentials"][0]["serial"], json!(hex(&f.alice.serial)));
    let (code, out) = go("lookup", &["verify", p(&saved)]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["credentials"][0]["serial"], json!(hex(&f.alice.serial)));
    // The server's binary form, saved as it came: the same verification, and a flipped byte
    // in it fails it.
    let mut binary = f.directory.proof("alice@example.com").to_binary().unwrap();
    let saved_binary = write(f.dir.path(), "alice-answer.bin", &binary);
    let (code, out) = go("lookup", &["verify", p(&saved_binary)]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["credentials"][0]["serial"], json!(hex(&f.alice.serial)));
    binary[300] ^= 1;
    let tampered_binary = write(f.dir.path(), "tampered.bin", &binary);
    assert_eq!(go("lookup", &["verify", p(&tampered_binary)]).0, 1);
    let (code, out) = go("lookup", &["nobody@example.com"]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["found"], json!(false));
    assert_eq!(go("lookup", &["Not An Identity"]).0, 2);

    // validate: the current key → 0 with its proof; others → 1.
    let (code, out) = go("validate", &["alice@example.com", &f.alice.public_b64()]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["valid"], json!(true));
    assert_eq!(out["proof"]["identity"], json!("alice@example.com"));
    for other in [&f.old_alice, &f.revoked] {
        let (code, out) = go("validate", &["alice@example.com", &other.public_b64()]);
        assert_eq!(code, 1, "{out}");
        assert_eq!(out["valid"], json!(false));
    }
    assert_eq!(go("validate", &["alice@example.com", "AAAA"]).0, 2);
    let (code, out) = go("validate", &["nobody@example.com", &f.alice.public_b64()]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["reason"], json!("identity is not enrolled"), "{out}");
    for field in ["credential", "proof"] {
        assert_eq!(out.get(field), Some(&json!(null)), "{field}: {out}");
    }

    // credential: current → 0; superseded → not_current; revoked → revoked.
    let cert = |c: &Cred| write(f.dir.path(), "cert.pem", pem_of(&c.der));
    let (code, out) = go("credential", &[p(&cert(&f.alice))]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["state"], json!("current"));
    let (code, out) = go("credential", &[p(&cert(&f.old_alice))]);
    assert_eq!(
        (code, out["state"].clone()),
        (1, json!("not_current")),
        "{out}"
    );
    let (code, out) = go("credential", &[p(&cert(&f.revoked))]);
    assert_eq!((code, out["state"].clone()), (1, json!("revoked")), "{out}");
    // Expired certificate; another CA's certificate; a malformed file.
    let t = now();
    let expired = Cred::new(&f.ca, "alice@example.com", 9, (t - 1000, t - 10));
    let (code, out) = go("credential", &[p(&cert(&expired))]);
    assert_eq!((code, out["state"].clone()), (1, json!("expired")), "{out}");
    let rogue = Cred::new(&TestCa::new(7), "alice@example.com", 10, (t - 100, t + 100));
    assert_eq!(go("credential", &[p(&cert(&rogue))]).0, 1);
    let junk = write(
        f.dir.path(),
        "junk.pem",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    assert_eq!(go("credential", &[p(&junk)]).0, 1);
    // A CRL signed by another CA is refused.
    f.server.set("/v1/crl", 200, TestCa::new(7).crl(&[]));
    assert_eq!(
        go("validate", &["alice@example.com", &f.alice.public_b64()]).0,
        1
    );
    f.server.set("/v1/crl", 200, f.ca.crl(&[&f.revoked.serial]));

    // A server that lies in the identity answer: a tampered map proof, bob's proof for alice,
    // a credential dropped from the state, alice shown absent.
    let honest = f.directory.proof("alice@example.com");
    let mut tampered = honest.clone();
    tampered.map_proof = flip_b64(&tampered.map_proof, 40);
    let mut dropped = honest.clone();
    dropped.state.as_mut().unwrap().record["credentials"] = json!([]);
    let mut absent = f.directory.proof("nobody@example.com");
    absent.identity = "alice@example.com".into();
    let mut hidden = honest.clone();
    hidden.state = None;
    for lie in [tampered, dropped, absent, hidden] {
        f.serve_proof("alice@example.com", &lie);
        assert_eq!(go("lookup", &["alice@example.com"]).0, 1, "{lie:?}");
        assert_eq!(
            go("validate", &["alice@example.com", &f.alice.public_b64()]).0,
            1
        );
    }
    f.serve_proof("alice@example.com", &honest);

    // Replaying an older answer: the state before the rotation, proven in the checkpoint of
    // then, after the client verified a newer one. It is refused, although it verifies alone.
    let mut earlier = MemDirectory::new(signer());
    earlier.commit(std::slice::from_ref(&f.old_alice.entry));
    let stale = earlier.proof("alice@example.com");
    f.serve_proof("alice@example.com", &stale);
    let (code, out) = go(
        "validate",
        &["alice@example.com", &f.old_alice.public_b64()],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out["error"]
            .as_str()
            .unwrap_or_default()
            .contains("older than the newest"),
        "{out}"
    );
    f.serve_proof("alice@example.com", &honest);

    // The server is unreachable: network error.
    let mut a = base("lookup");
    a[8] = "http://127.0.0.1:9".into();
    a.push("alice@example.com".into());
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    assert_eq!(run(&refs).0, 3);
}

#[test]
fn enroll_refuses_a_credential_for_another_key() {
    let f = Fixture::new();
    let key = f.directory.log.vkey();
    let vrf = f.directory.vrf_b64();
    let ca_file = write(f.dir.path(), "ca.pem", f.ca.pem());
    let state = f.dir.path().join("state");
    // The server answers with a valid credential, but not for the key we generated.
    f.server.set(
        "/v1/credentials",
        201,
        f.directory.bundle(&f.ca, &f.alice).to_string(),
    );
    let key_out = f.dir.path().join("key.pem");
    let out_file = f.dir.path().join("cred.json");
    let args = [
        "enroll",
        "--log-key",
        &key,
        "--vrf-key",
        &vrf,
        "--ca",
        p(&ca_file),
        "--server",
        &f.server.url,
        "--state",
        p(&state),
        "--identity",
        "alice@example.com",
        "--token",
        "tok",
        "--key-out",
        p(&key_out),
        "--out",
        p(&out_file),
    ];
    let (code, out) = run_json(&args);
    assert_eq!(code, 1, "{out}");
    assert!(!out_file.exists());
    // The key was written first, with mode 0600, as PKCS#8 PEM.
    let pem = std::fs::read_to_string(&key_out).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // It never overwrites.
    let (code, _) = run_json(&args);
    assert_eq!(code, 2);
}
