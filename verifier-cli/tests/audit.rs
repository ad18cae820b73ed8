//! `audit` over local tile folders and over HTTP, and `monitor` against a mock server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use kt_log::note::NoteSigner;
use kt_protocol::directory::public_entry::{MapRoot, PublicEntry, Update};
use serde_json::json;

fn signer() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, &seed(1)).unwrap()
}

/// A directory of `n` credentials for seven identities, in batches of up to 5.
fn cred_directory(ca: &TestCa, n: u64) -> (MemDirectory, Vec<Cred>) {
    let mut dir = MemDirectory::new(signer());
    let t = now();
    let creds: Vec<Cred> = (0..n)
        .map(|i| {
            Cred::new(
                ca,
                &format!("user{}@example.com", i % 7),
                i,
                (t - 100, t + 86400),
            )
        })
        .collect();
    for chunk in creds.chunks(5) {
        dir.commit(&chunk.iter().map(|c| c.entry.clone()).collect::<Vec<_>>());
    }
    (dir, creds)
}

fn audit_tiles(
    key: &str,
    tiles: &std::path::Path,
    state: &std::path::Path,
) -> (i32, serde_json::Value) {
    run_json(&[
        "audit",
        "--log-key",
        key,
        "--tiles",
        p(tiles),
        "--state",
        p(state),
    ])
}

#[test]
fn audit_local_tiles_resumes_and_finds_problems() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(1);
    let state = dir.path().join("state");
    let tiles = dir.path().join("tiles");
    let (mut d, creds) = cred_directory(&ca, 300);
    let key = d.log.vkey();
    let size = d.log.size();
    d.log.write_tiles(&tiles, size);
    let (code, out) = audit_tiles(&key, &tiles, &state);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["entries_checked"], json!(size));
    assert_eq!(out["labels"], json!(7));
    assert_eq!(out["consistency"], json!("first"));

    // The log grows (a revocation, new identities): resume where it stopped.
    d.commit(&[revoke_credential_entry(
        "user0@example.com",
        &creds[0].serial,
    )]);
    for i in 300..520u64 {
        d.commit(&[Cred::new(
            &ca,
            &format!("late{i}@example.com"),
            i,
            (now() - 5, now() + 50),
        )
        .entry]);
    }
    let grown = d.log.size();
    d.log.write_tiles(&tiles, grown);
    let (code, out) = audit_tiles(&key, &tiles, &state);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["resumed_from"], json!(size));
    assert_eq!(out["entries_checked"], json!(grown - size));
    assert_eq!(out["labels"], json!(7 + 220));
    assert_eq!(out["consistency"], json!("extended"));

    // Nothing new: nothing downloaded.
    let (code, out) = audit_tiles(&key, &tiles, &state);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["entries_checked"], json!(0));

    // Problems in new entries: an update that skips a version, a map entry with a wrong root,
    // one with a wrong label count, an entry that is no directory entry, and a log that ends
    // in an update no map entry closes.
    let label = d.vrf.prove("user1@example.com").0;
    let first_bad = d.log.size();
    d.log.push(
        PublicEntry::Update(Update {
            label,
            version: 99,
            commitment: [1; 32],
            sealed: vec![1],
        })
        .to_bytes(),
    );
    d.log.push(
        PublicEntry::Map(MapRoot {
            root: [7; 32],
            labels: d.map.len(),
        })
        .to_bytes(),
    );
    d.log.push(
        PublicEntry::Map(MapRoot {
            root: d.map.root(),
            labels: d.map.len() + 1,
        })
        .to_bytes(),
    );
    d.log.push(b"{\"v\":1}".to_vec());
    d.log.push(
        PublicEntry::Update(Update {
            label,
            version: 1000,
            commitment: [1; 32],
            sealed: vec![1],
        })
        .to_bytes(),
    );
    d.log.write_tiles(&tiles, d.log.size());
    let (code, out) = audit_tiles(&key, &tiles, &state);
    assert_eq!(code, 1, "{out}");
    let indices: Vec<u64> = out["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["index"].as_u64().unwrap())
        .collect();
    let b = first_bad;
    // The last update breaks the version rule and leaves the log unfinished.
    assert_eq!(indices, vec![b, b + 1, b + 2, b + 3, b + 4, b + 4], "{out}");
    let texts: Vec<&str> = out["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["problem"].as_str().unwrap())
        .collect();
    assert!(texts[1].contains("map root"), "{texts:?}");
    assert!(texts[2].contains("labels"), "{texts:?}");
    assert!(texts[5].contains("ends with updates"), "{texts:?}");
    // The problems stay in the state: the next run still fails.
    let (code, out) = audit_tiles(&key, &tiles, &state);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["entries_checked"], json!(0));
}

#[test]
fn audit_catches_tampered_tiles_and_forks() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(1);
    let (d, _) = cred_directory(&ca, 40);
    let log = d.log.clone();
    let size = log.size();
    let key = log.vkey();
    // A flipped bit in an entry of a tile: the root does not match (or the entry breaks).
    let tiles = dir.path().join("tampered");
    log.write_tiles(&tiles, size);
    let bundle = tiles.join(format!("tile/entries/000.p/{size}"));
    let mut bytes = std::fs::read(&bundle).unwrap();
    flip_bit(&mut bytes, 8 * 100 + 1);
    std::fs::write(&bundle, bytes).unwrap();
    let (code, out) = audit_tiles(&key, &tiles, &dir.path().join("s1"));
    assert_eq!(code, 1, "{out}");
    // A checkpoint signed by another key.
    let other = MemLog {
        signer: NoteSigner::from_seed(ORIGIN, &seed(5)).unwrap(),
        ..log.clone()
    };
    let tiles = dir.path().join("otherkey");
    other.write_tiles(&tiles, size);
    assert_eq!(audit_tiles(&key, &tiles, &dir.path().join("s2")).0, 1);

    // Fork: the auditor saw a prefix of one log; the tiles now show a log whose same prefix
    // differs.
    let state = dir.path().join("s3");
    let tiles = dir.path().join("honest");
    // A size where a batch ends (a map entry last), as every honest checkpoint's.
    let seen = (1..size - 2)
        .rev()
        .find(|i| {
            matches!(
                PublicEntry::parse(&log.entries[*i as usize]),
                Ok(PublicEntry::Map(_))
            )
        })
        .unwrap()
        + 1;
    log.write_tiles(&tiles, seen);
    assert_eq!(audit_tiles(&key, &tiles, &state).0, 0);
    let mut forked = MemDirectory::new(signer());
    while forked.log.size() <= size {
        let i = forked.log.size();
        forked.commit(&[Cred::new(
            &ca,
            "mallory@example.com",
            1000 + i,
            (now() - 5, now() + 50),
        )
        .entry]);
    }
    let tiles = dir.path().join("forked");
    forked.log.write_tiles(&tiles, forked.log.size());
    let (code, out) = audit_tiles(&key, &tiles, &state);
    assert_eq!(code, 4, "{out}");
    assert!(std::path::Path::new(out["evidence"].as_str().unwrap()).exists());
}

/// Serves alice's history answers of `dir` for every `after` up to her latest version.
fn serve_histories(server: &MockServer, dir: &MemDirectory, identity: &str) {
    let latest = dir.versions.get(identity).map_or(0, Vec::len) as u64;
    for after in 0..=latest + 1 {
        server.set(
            &format!("/v1/identities/{identity}/history?after={after}"),
            200,
            serde_json::to_vec(&dir.history(identity, after)).unwrap(),
        );
    }
}

#[test]
fn audit_and_monitor_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(1);
    let ca_file = write(dir.path(), "ca.pem", ca.pem());
    let state = dir.path().join("state");
    let (mut d, creds) = cred_directory(&ca, 60);
    let key = d.log.vkey();
    let vrf = d.vrf_b64();
    let server = MockServer::start();
    server.serve_log(&d.log, d.log.size());
    let (code, out) = run_json(&[
        "audit",
        "--log-key",
        &key,
        "--server",
        &server.url,
        "--state",
        p(&state),
        "--threads",
        "3",
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["entries_checked"], json!(d.log.size()));

    let user3: Vec<&Cred> = creds
        .iter()
        .filter(|c| c.identity == "user3@example.com")
        .collect();
    let expected: String = user3
        .iter()
        .map(|c| format!("user3@example.com {}\n", c.public_b64()))
        .collect();
    let keys = write(dir.path(), "keys", format!("# user3's devices\n{expected}"));
    let monitor = |keys: &std::path::Path, identities: &[&str]| {
        let mut a = vec![
            "monitor",
            "--log-key",
            &key,
            "--vrf-key",
            &vrf,
            "--ca",
            p(&ca_file),
            "--server",
            &server.url,
            "--state",
            p(&state),
            "--expect-keys",
            p(keys),
        ];
        a.extend_from_slice(identities);
        run_json(&a)
    };
    serve_histories(&server, &d, "user3@example.com");
    serve_histories(&server, &d, "nobody@example.com");
    let (code, out) = monitor(&keys, &["user3@example.com"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["events"].as_array().unwrap().len(), user3.len());
    assert!(out["bytes_fetched"].as_u64().unwrap() > 0);

    // The AS binds an unexpected key to user3 and takes it back before the next run: both
    // versions are reported, the key as unexpected.
    let rogue = Cred::new(&ca, "user3@example.com", 5000, (now() - 5, now() + 50));
    d.commit(std::slice::from_ref(&rogue.entry));
    d.commit(&[revoke_credential_entry("user3@example.com", &rogue.serial)]);
    server.serve_log(&d.log, d.log.size());
    serve_histories(&server, &d, "user3@example.com");
    serve_histories(&server, &d, "nobody@example.com");
    let (code, out) = monitor(&keys, &["user3@example.com"]);
    assert_eq!(code, 1, "{out}");
    let unexpected = out["unexpected"].as_array().unwrap();
    assert_eq!(unexpected.len(), 1, "{out}");
    assert_eq!(unexpected[0]["public_key"], json!(rogue.public_b64()));
    let events = out["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "the change and its undoing");
    assert_eq!(events[1]["type"], json!("revoke"));
    // Not saved while a key is unexpected: the next run raises the alarm again.
    let (code, out) = monitor(&keys, &["user3@example.com"]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["unexpected"].as_array().unwrap().len(), 1, "{out}");
    // Once the owner expects it, the run passes and is saved: the next has nothing new.
    let acknowledged = write(
        dir.path(),
        "keys-acknowledged",
        format!("{expected}user3@example.com {}\n", rogue.public_b64()),
    );
    let (code, out) = monitor(&acknowledged, &["user3@example.com"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["events"].as_array().unwrap().len(), 2, "{out}");
    let (code, out) = monitor(&acknowledged, &["user3@example.com", "nobody@example.com"]);
    assert_eq!(code, 0, "{out}");
    assert!(out["events"].as_array().unwrap().is_empty(), "{out}");
    // A bad expected-keys file is a usage error.
    let bad = write(dir.path(), "bad", "not-a-key\n");
    assert_eq!(monitor(&bad, &["user3@example.com"]).0, 2);
    // A version hidden from the history: refused.
    let mut hiding = d.history("user3@example.com", 0);
    hiding.history.pop();
    server.set(
        "/v1/identities/user3@example.com/history?after=0",
        200,
        serde_json::to_vec(&hiding).unwrap(),
    );
    let fresh = dir.path().join("fresh-state");
    let (code, out) = run_json(&[
        "monitor",
        "--log-key",
        &key,
        "--vrf-key",
        &vrf,
        "--ca",
        p(&ca_file),
        "--server",
        &server.url,
        "--state",
        p(&fresh),
        "--expect-keys",
        p(&keys),
        "user3@example.com",
    ]);
    assert_eq!(code, 1, "{out}");
}
