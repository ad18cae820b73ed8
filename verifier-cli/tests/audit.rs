//! `audit` and `monitor` over local tile folders and over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use kt_log::note::NoteSigner;
use serde_json::json;

fn signer() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, &seed(1)).unwrap()
}

/// A log of `n` credentials for a few identities (entry i is credential i).
fn cred_log(ca: &TestCa, n: u64) -> (MemLog, Vec<Cred>) {
    let mut log = MemLog::new(signer());
    let t = now();
    let mut creds = Vec::new();
    for i in 0..n {
        let c = Cred::new(
            ca,
            &format!("user{}@example.com", i % 7),
            i,
            (t - 100, t + 86400),
        );
        log.push(c.entry.clone());
        creds.push(c);
    }
    (log, creds)
}

#[test]
fn audit_local_tiles_resumes_and_finds_problems() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(1);
    let ca_file = write(dir.path(), "ca.pem", ca.pem());
    let state = dir.path().join("state");
    let tiles = dir.path().join("tiles");
    let (mut log, creds) = cred_log(&ca, 300);
    let key = log.vkey();
    log.write_tiles(&tiles, 300);
    let audit = |tiles: &std::path::Path| {
        run_json(&[
            "audit",
            "--log-key",
            &key,
            "--ca",
            p(&ca_file),
            "--tiles",
            p(tiles),
            "--state",
            p(&state),
        ])
    };
    let (code, out) = audit(&tiles);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["entries_checked"], json!(300));
    assert_eq!(out["consistency"], json!("first"));

    // The log grows (a revocation naming an existing serial): resume from 300.
    log.push(revoke_entry("user0@example.com", &[&creds[0].serial]));
    for i in 300..520 {
        log.push(Cred::new(&ca, "late@example.com", i, (now() - 5, now() + 50)).entry);
    }
    log.write_tiles(&tiles, 521);
    let (code, out) = audit(&tiles);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["resumed_from"], json!(300));
    assert_eq!(out["entries_checked"], json!(221));
    assert_eq!(out["consistency"], json!("extended"));

    // Nothing new: nothing downloaded.
    let (code, out) = audit(&tiles);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["entries_checked"], json!(0));

    // Problems in new entries: a serial issued twice, a revocation of an unknown serial, of
    // another identity's serial, a certificate by another CA, an unparseable entry.
    let rogue = TestCa::new(9);
    log.push(creds[5].entry.clone());
    log.push(revoke_entry("user1@example.com", &[&serial(99_999)]));
    log.push(revoke_entry("user1@example.com", &[&creds[2].serial]));
    log.push(Cred::new(&rogue, "eve@example.com", 700, (now() - 5, now() + 50)).entry);
    log.push(b"{\"v\":1}".to_vec());
    log.write_tiles(&tiles, log.size());
    let (code, out) = audit(&tiles);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["problem_count"], json!(5));
    let indices: Vec<u64> = out["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indices, vec![521, 522, 523, 524, 525]);
    // The problems stay in the state: the next run still fails.
    let (code, out) = audit(&tiles);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["entries_checked"], json!(0));
}

#[test]
fn audit_catches_tampered_tiles_and_forks() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(1);
    let ca_file = write(dir.path(), "ca.pem", ca.pem());
    let (log, _) = cred_log(&ca, 40);
    let key = log.vkey();
    let audit = |tiles: &std::path::Path, state: &std::path::Path| {
        run_json(&[
            "audit",
            "--log-key",
            &key,
            "--ca",
            p(&ca_file),
            "--tiles",
            p(tiles),
            "--state",
            p(state),
        ])
    };
    // A flipped bit in an entry of a tile: the root does not match (or the entry breaks).
    let tiles = dir.path().join("tampered");
    log.write_tiles(&tiles, 40);
    let bundle = tiles.join("tile/entries/000.p/40");
    let mut bytes = std::fs::read(&bundle).unwrap();
    flip_bit(&mut bytes, 8 * 100 + 1);
    std::fs::write(&bundle, bytes).unwrap();
    let (code, out) = audit(&tiles, &dir.path().join("s1"));
    assert_eq!(code, 1, "{out}");
    // A checkpoint signed by another key.
    let other = MemLog {
        signer: NoteSigner::from_seed(ORIGIN, &seed(5)).unwrap(),
        ..log.clone()
    };
    let tiles = dir.path().join("otherkey");
    other.write_tiles(&tiles, 40);
    assert_eq!(audit(&tiles, &dir.path().join("s2")).0, 1);

    // Fork: the auditor saw size 30 of one log; the tiles now show a log whose first 30
    // entries differ.
    let state = dir.path().join("s3");
    let tiles = dir.path().join("honest");
    log.write_tiles(&tiles, 30);
    assert_eq!(audit(&tiles, &state).0, 0);
    let (mut forked, _) = cred_log(&ca, 29);
    for i in 29..40 {
        forked.push(
            Cred::new(
                &ca,
                "mallory@example.com",
                1000 + i,
                (now() - 5, now() + 50),
            )
            .entry,
        );
    }
    let tiles = dir.path().join("forked");
    forked.write_tiles(&tiles, 40);
    let (code, out) = audit(&tiles, &state);
    assert_eq!(code, 4, "{out}");
    assert!(std::path::Path::new(out["evidence"].as_str().unwrap()).exists());
}

#[test]
fn audit_and_monitor_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(1);
    let ca_file = write(dir.path(), "ca.pem", ca.pem());
    let state = dir.path().join("state");
    let (mut log, creds) = cred_log(&ca, 600);
    let key = log.vkey();
    let server = MockServer::start();
    server.serve_log(&log, 600);
    let (code, out) = run_json(&[
        "audit",
        "--log-key",
        &key,
        "--ca",
        p(&ca_file),
        "--server",
        &server.url,
        "--state",
        p(&state),
        "--threads",
        "3",
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["entries_checked"], json!(600));

    // An unexpected key for user3 appears; the owner's list has only the honest ones.
    let rogue_cred = Cred::new(&ca, "user3@example.com", 5000, (now() - 5, now() + 50));
    let index = log.push(rogue_cred.entry.clone());
    log.push(revoke_entry("user3@example.com", &[&creds[3].serial]));
    server.serve_log(&log, log.size());
    let expected: String = creds
        .iter()
        .filter(|c| c.identity == "user3@example.com")
        .map(|c| format!("user3@example.com {}\n", c.public_b64()))
        .collect();
    let keys = write(dir.path(), "keys", format!("# user3's devices\n{expected}"));
    let (code, out) = run_json(&[
        "monitor",
        "--log-key",
        &key,
        "--server",
        &server.url,
        "--state",
        p(&state),
        "--expect-keys",
        p(&keys),
        "user3@example.com",
    ]);
    assert_eq!(code, 1, "{out}");
    let unexpected = out["unexpected"].as_array().unwrap();
    assert_eq!(unexpected.len(), 1);
    assert_eq!(unexpected[0]["index"], json!(index));
    assert_eq!(unexpected[0]["public_key"], json!(rogue_cred.public_b64()));
    let events = out["events"].as_array().unwrap();
    assert_eq!(events.len(), 600 / 7 + 1 + 2);
    assert_eq!(events.last().unwrap()["type"], json!("revoke"));
    // With the new key expected, the same log passes; other identities are not reported.
    let keys = write(
        dir.path(),
        "keys",
        format!("{expected}{}\n", rogue_cred.public_b64()),
    );
    let (code, out) = run_json(&[
        "monitor",
        "--log-key",
        &key,
        "--server",
        &server.url,
        "--state",
        p(&state),
        "--expect-keys",
        p(&keys),
        "user3@example.com",
        "nobody@example.com",
    ]);
    assert_eq!(code, 0, "{out}");
    // Human output names the key and the index.
    let keys = write(dir.path(), "keys", expected);
    let (code, stdout, _) = run(&[
        "monitor",
        "--log-key",
        &key,
        "--server",
        &server.url,
        "--state",
        p(&state),
        "--expect-keys",
        p(&keys),
        "user3@example.com",
    ]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains(&format!("UNEXPECTED KEY {}", rogue_cred.public_b64())),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("log index {index}")), "{stdout}");
    // A bad expected-keys file is a usage error.
    let bad = write(dir.path(), "bad", "not-a-key\n");
    assert_eq!(
        run(&[
            "monitor",
            "--log-key",
            &key,
            "--server",
            &server.url,
            "--state",
            p(&state),
            "--expect-keys",
            p(&bad),
            "user3@example.com"
        ])
        .0,
        2
    );
}

/// The five logs an outside review built, signed with the real keys, that the audit accepted
/// with no problem before it used the shared history rules: each now fails at its entry.
#[test]
fn forged_histories_fail_the_audit_at_their_index() {
    use kt_protocol::entry::{EntryBody, LogEntry, RevocationReason, RevocationScope, Serial};

    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(1);
    let ca_file = write(dir.path(), "ca.pem", ca.pem());
    const ALICE: &str = "alice@example.com";
    let cred = |n: u64| Cred::new(&ca, ALICE, n, (now() - 5, now() + 50));
    let parsed = |bytes: &[u8]| LogEntry::parse(bytes).unwrap();
    // Credential n's issue entry turned into a rotation that replaces `replaces`.
    let rotation = |n: u64, replaces: u64| {
        let EntryBody::Issue {
            time,
            identity,
            binding,
            ..
        } = parsed(&cred(n).entry).body
        else {
            unreachable!()
        };
        LogEntry::new(EntryBody::Rotate {
            time,
            identity,
            binding,
            replaces: Serial(serial(replaces)),
        })
        .to_bytes()
    };
    let revocation = |n: u64| {
        LogEntry::new(EntryBody::Revoke {
            time: now(),
            identity: ALICE.into(),
            serials: vec![Serial(serial(n))],
            scope: RevocationScope::Credential,
            reason: RevocationReason::KeyCompromise,
            admin: "admin".into(),
        })
        .to_bytes()
    };
    // Credential 2's issuance with credential 1's enrollment.
    let reused_enrollment = {
        let mut second = parsed(&cred(2).entry);
        let EntryBody::Issue {
            enrollment: first, ..
        } = parsed(&cred(1).entry).body
        else {
            unreachable!()
        };
        if let EntryBody::Issue { enrollment, .. } = &mut second.body {
            *enrollment = first;
        }
        second.to_bytes()
    };
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "one enrollment used by two issuances",
            vec![cred(1).entry, reused_enrollment],
        ),
        (
            "an issuance to a revoked identity",
            vec![revoke_entry(ALICE, &[]), cred(1).entry],
        ),
        (
            "a rotation that replaces a revoked credential",
            vec![cred(1).entry, revocation(1), rotation(2, 1)],
        ),
        (
            "one serial rotated twice",
            vec![cred(1).entry, rotation(2, 1), rotation(3, 1)],
        ),
        (
            "a double revocation",
            vec![cred(1).entry, revocation(1), revocation(1)],
        ),
    ];
    for (i, (case, entries)) in cases.into_iter().enumerate() {
        let mut log = MemLog::new(signer());
        let bad = entries.len() as u64 - 1;
        for entry in entries {
            log.push(entry);
        }
        let tiles = dir.path().join(format!("tiles{i}"));
        log.write_tiles(&tiles, log.size());
        let (code, out) = run_json(&[
            "audit",
            "--log-key",
            &log.vkey(),
            "--ca",
            p(&ca_file),
            "--tiles",
            p(&tiles),
            "--state",
            p(&dir.path().join(format!("state{i}"))),
        ]);
        assert_eq!(code, 1, "{case}: {out}");
        assert_eq!(out["problem_count"], json!(1), "{case}: {out}");
        assert_eq!(out["problems"][0]["index"], json!(bad), "{case}: {out}");
    }
}
