//! Offline commands against honest and tampered inputs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use kt_log::note::NoteSigner;
use serde_json::json;

#[test]
fn checkpoint_verify_catches_tampering_and_other_keys() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(5);
    let key = log.vkey();
    let cp = log.checkpoint(5);
    let good = write(dir.path(), "cp", &cp);
    let (code, out) = run_json(&["checkpoint", "verify", "--log-key", &key, p(&good)]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["size"], json!(5));
    assert_eq!(out["origin"], json!(ORIGIN));

    // Every bit of the note: flipped → not verified (1), never a panic.
    let bytes = cp.as_bytes().to_vec();
    for bit in (0..bytes.len() * 8).step_by(7) {
        let mut bad = bytes.clone();
        flip_bit(&mut bad, bit);
        let f = write(dir.path(), "bad", &bad);
        let (code, _, _) = run(&["checkpoint", "verify", "--log-key", &key, p(&f)]);
        assert_eq!(code, 1, "bit {bit}");
    }
    // Signed by another key of the same name.
    let other = MemLog {
        signer: NoteSigner::from_seed(ORIGIN, &seed(2)).unwrap(),
        ..log.clone()
    };
    let f = write(dir.path(), "other", other.checkpoint(5));
    assert_eq!(
        run(&["checkpoint", "verify", "--log-key", &key, p(&f)]).0,
        1
    );
    // Key file instead of text; missing file; unusable key.
    let kf = write(dir.path(), "key", format!("{key}\n"));
    assert_eq!(
        run(&["checkpoint", "verify", "--log-key", p(&kf), p(&good)]).0,
        0
    );
    assert_eq!(
        run(&["checkpoint", "verify", "--log-key", &key, "/nonexistent/cp"]).0,
        3
    );
    assert_eq!(
        run(&["checkpoint", "verify", "--log-key", "garbage", p(&good)]).0,
        2
    );
    // An empty key field is a usage error too, not a panic (exit 101 before).
    assert_eq!(
        run(&[
            "checkpoint",
            "verify",
            "--log-key",
            "name+ab0782d1+",
            p(&good)
        ])
        .0,
        2
    );
    assert_eq!(run(&["checkpoint", "verify"]).0, 2);
}

#[test]
fn inclusion_verify_honest_and_tampered() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(13);
    let key = log.vkey();
    let cp = write(dir.path(), "cp", log.checkpoint(13));
    for index in [0u64, 5, 12] {
        let entry = write(dir.path(), "entry", &log.entries[index as usize]);
        let proof = log.inclusion(index, 13);
        let pf = write(dir.path(), "proof", hashes_json(&proof).to_string());
        let i = index.to_string();
        let args = |pf: &std::path::Path, entry: &std::path::Path, i: &str| {
            run(&[
                "inclusion",
                "verify",
                "--log-key",
                &key,
                "--checkpoint",
                p(&cp),
                "--index",
                i,
                "--entry",
                p(entry),
                "--proof",
                p(pf),
            ])
            .0
        };
        assert_eq!(args(&pf, &entry, &i), 0);
        // Object form, with and without --index.
        let obj = write(
            dir.path(),
            "proof.json",
            json!({"index": index, "size": 13, "proof": hashes_json(&proof)}).to_string(),
        );
        assert_eq!(args(&obj, &entry, &i), 0);
        let (code, out) = run_json(&[
            "inclusion",
            "verify",
            "--log-key",
            &key,
            "--checkpoint",
            p(&cp),
            "--entry",
            p(&entry),
            "--proof",
            p(&obj),
        ]);
        assert_eq!(code, 0, "{out}");
        assert_eq!(out["index"], json!(index));
        // A flipped bit in every proof hash.
        for h in 0..proof.len() {
            for bit in [0usize, 77, 255] {
                let mut bad = proof.clone();
                flip_bit(&mut bad[h].0, bit);
                let f = write(dir.path(), "bad", hashes_json(&bad).to_string());
                assert_eq!(args(&f, &entry, &i), 1, "hash {h} bit {bit}");
            }
        }
        // A flipped bit in the entry.
        let mut e = log.entries[index as usize].clone();
        flip_bit(&mut e, 3);
        let ef = write(dir.path(), "badentry", &e);
        assert_eq!(args(&pf, &ef, &i), 1);
        // Wrong index; a proof for another size.
        let wrong = ((index + 1) % 13).to_string();
        assert_eq!(args(&pf, &entry, &wrong), 1);
        let other_size = write(
            dir.path(),
            "o",
            hashes_json(&log.inclusion(index, 12)).to_string(),
        );
        assert_eq!(args(&other_size, &entry, &i), 1);
        let mismatched = write(
            dir.path(),
            "m",
            json!({"index": index, "size": 12, "proof": hashes_json(&proof)}).to_string(),
        );
        assert_eq!(args(&mismatched, &entry, &i), 1);
        // Extra or missing hashes.
        let mut longer = proof.clone();
        longer.push(proof[0]);
        let f = write(dir.path(), "l", hashes_json(&longer).to_string());
        assert_eq!(args(&f, &entry, &i), 1);
    }
    // Malformed proof files: clear error, exit 1.
    let entry = write(dir.path(), "entry", &log.entries[0]);
    for bad in [
        "",
        "{",
        "[1,2]",
        "[\"!!\"]",
        "{\"proof\":[],\"x\":1}",
        "null",
    ] {
        let f = write(dir.path(), "bad", bad);
        let (code, _, err) = run(&[
            "inclusion",
            "verify",
            "--log-key",
            &key,
            "--checkpoint",
            p(&cp),
            "--index",
            "0",
            "--entry",
            p(&entry),
            "--proof",
            p(&f),
        ]);
        assert_eq!(code, 1, "{bad}");
        assert!(err.contains("proof"), "{err}");
    }
}

#[test]
fn consistency_verify_honest_forked_and_swapped() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(20);
    let key = log.vkey();
    for (old, new) in [(1u64, 20u64), (7, 13), (8, 20), (13, 13)] {
        let o = write(dir.path(), "old", log.checkpoint(old));
        let n = write(dir.path(), "new", log.checkpoint(new));
        let proof = log.consistency(old, new);
        let pf = write(dir.path(), "proof", hashes_json(&proof).to_string());
        let verify = |o: &std::path::Path, n: &std::path::Path, pf: &std::path::Path| {
            run(&[
                "consistency",
                "verify",
                "--log-key",
                &key,
                "--old",
                p(o),
                "--new",
                p(n),
                "--proof",
                p(pf),
            ])
            .0
        };
        assert_eq!(verify(&o, &n, &pf), 0, "{old}->{new}");
        for h in 0..proof.len() {
            let mut bad = proof.clone();
            flip_bit(&mut bad[h].0, 100);
            let f = write(dir.path(), "bad", hashes_json(&bad).to_string());
            assert_eq!(verify(&o, &n, &f), 1);
        }
        if old != new {
            assert_eq!(verify(&n, &o, &pf), 1, "swapped");
        }
    }
    // A forked log: same first 7 entries, then different ones, signed by the same key.
    let mut fork = log_of(7);
    for i in 7..20 {
        fork.push(format!("forked {i}").into_bytes());
    }
    let o = write(dir.path(), "old", log.checkpoint(10));
    let n = write(dir.path(), "new", fork.checkpoint(20));
    let pf = write(
        dir.path(),
        "proof",
        hashes_json(&fork.consistency(10, 20)).to_string(),
    );
    assert_eq!(
        run(&[
            "consistency",
            "verify",
            "--log-key",
            &key,
            "--old",
            p(&o),
            "--new",
            p(&n),
            "--proof",
            p(&pf)
        ])
        .0,
        1
    );
}

#[test]
fn bundle_verify_honest_and_tampered() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(1);
    let ca_file = write(dir.path(), "ca.pem", ca.pem());
    let t = now();
    let mut directory = MemDirectory::new(NoteSigner::from_seed(ORIGIN, &seed(1)).unwrap());
    let cred = Cred::new(&ca, "alice@example.com", 1, (t - 100, t + 86400));
    let bob = Cred::new(&ca, "bob@example.com", 5, (t - 100, t + 86400));
    directory.commit(std::slice::from_ref(&bob.entry));
    directory.commit(std::slice::from_ref(&cred.entry));
    let key = directory.log.vkey();
    let vrf = directory.vrf_b64();
    let bundle = directory.bundle(&ca, &cred);
    let args = |ca: &str, file: &str| -> Vec<String> {
        [
            "bundle",
            "verify",
            "--log-key",
            &key,
            "--vrf-key",
            &vrf,
            "--ca",
            ca,
            file,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let verify = |b: &serde_json::Value| {
        let f = write(dir.path(), "bundle.json", b.to_string());
        let a = args(p(&ca_file), p(&f));
        run(&a.iter().map(String::as_str).collect::<Vec<_>>()).0
    };
    let f = write(dir.path(), "bundle.json", bundle.to_string());
    let a = args(p(&ca_file), p(&f));
    let (code, out) = run_json(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["version"], json!(1));
    assert_eq!(out["identity"], json!("alice@example.com"));
    assert_eq!(out["chain_has_ca"], json!(true));

    let mut tampered = Vec::new();
    let d = &bundle["directory"];
    for h in 0..d["map_entry_proof"].as_array().unwrap().len() {
        let mut b = bundle.clone();
        b["directory"]["map_entry_proof"][h] =
            json!(flip_b64(d["map_entry_proof"][h].as_str().unwrap(), 9));
        tampered.push(b);
    }
    for (field, bits) in [
        ("map_entry", [0usize, 100, 300]),
        ("map_proof", [3, 50, 200]),
        ("vrf_proof", [1, 300, 600]),
    ] {
        for bit in bits {
            let mut b = bundle.clone();
            b["directory"][field] = json!(flip_b64(d[field].as_str().unwrap(), bit));
            tampered.push(b);
        }
    }
    let mut b = bundle.clone();
    b["directory"]["checkpoint"] = json!(directory.log.checkpoint(3));
    tampered.push(b);
    let mut b = bundle.clone();
    b["directory"]["state"]["opening"] = json!(b64(&[1u8; 32]));
    tampered.push(b);
    let mut b = bundle.clone();
    b["public_key"] = json!(b64(&[9u8; 32]));
    tampered.push(b);
    let mut b = bundle.clone();
    b["serial"] = json!("22".repeat(16));
    tampered.push(b);
    let mut b = bundle.clone();
    let cp = d["checkpoint"].as_str().unwrap().replace("\n5\n", "\n6\n");
    b["directory"]["checkpoint"] = json!(cp);
    tampered.push(b);
    // Bob's proof presented for alice's credential.
    let mut b = bundle.clone();
    b["directory"] = json!(directory.proof("bob@example.com"));
    b["directory"]["identity"] = json!("alice@example.com");
    tampered.push(b);
    // Another certificate (same key, other serial) than the one in the state.
    let other = Cred::new(&ca, "alice@example.com", 2, (t - 100, t + 86400));
    let mut b = bundle.clone();
    b["certificate"] = json!(pem_of(&other.der));
    tampered.push(b);
    for (i, b) in tampered.iter().enumerate() {
        assert_eq!(verify(b), 1, "tampering {i}");
    }

    // A certificate by another CA, in the directory honestly: the chain check fails.
    let rogue = TestCa::new(2);
    let bad = Cred::new(&rogue, "carol@example.com", 3, (t - 100, t + 86400));
    directory.commit(std::slice::from_ref(&bad.entry));
    assert_eq!(verify(&directory.bundle(&rogue, &bad)), 1);
    // Expired, in the directory honestly.
    let old = Cred::new(&ca, "dave@example.com", 4, (t - 1000, t - 10));
    directory.commit(std::slice::from_ref(&old.entry));
    assert_eq!(verify(&directory.bundle(&ca, &old)), 1);
    // Malformed bundle files and CA file.
    for bad in ["", "{}", "[]", "{\"identity\":1}"] {
        let f = write(dir.path(), "bundle.json", bad);
        let a = args(p(&ca_file), p(&f));
        assert_eq!(run(&a.iter().map(String::as_str).collect::<Vec<_>>()).0, 1);
    }
    let junk_ca = write(dir.path(), "junk.pem", "not a cert");
    let f = write(dir.path(), "bundle.json", bundle.to_string());
    let a = args(p(&junk_ca), p(&f));
    assert_eq!(run(&a.iter().map(String::as_str).collect::<Vec<_>>()).0, 2);
}

#[test]
fn compare_and_fork_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let log = log_of(10);
    let key = log.vkey();
    let mut fork = log_of(6);
    for i in 6..10 {
        fork.push(format!("forked {i}").into_bytes());
    }
    // Equal sizes, different roots: a fork, with evidence that re-checks.
    let a = write(dir.path(), "a", log.checkpoint(10));
    let b = write(dir.path(), "b", fork.checkpoint(10));
    let (code, out) = run_json(&[
        "compare",
        "--log-key",
        &key,
        "--state",
        p(&state),
        p(&a),
        p(&b),
    ]);
    assert_eq!(code, 4, "{out}");
    let evidence = out["evidence"].as_str().unwrap().to_owned();
    let (code, out) = run_json(&["fork", "verify", "--log-key", &key, &evidence]);
    assert_eq!(code, 4, "{out}");
    assert_eq!(out["fork"], json!(true));
    // The evidence does not verify under another key.
    let other = NoteSigner::from_seed(ORIGIN, &seed(3))
        .unwrap()
        .verifier()
        .to_vkey();
    assert_eq!(
        run(&["fork", "verify", "--log-key", &other, &evidence]).0,
        1
    );

    // Same view: consistent.
    let a2 = write(dir.path(), "a2", log.checkpoint(10));
    assert_eq!(
        run(&[
            "compare",
            "--log-key",
            &key,
            "--state",
            p(&state),
            p(&a),
            p(&a2)
        ])
        .0,
        0
    );
    // Different sizes: needs a proof; honest → 0, forked → 4 and evidence confirms.
    let small = write(dir.path(), "small", log.checkpoint(7));
    assert_eq!(
        run(&[
            "compare",
            "--log-key",
            &key,
            "--state",
            p(&state),
            p(&small),
            p(&a)
        ])
        .0,
        2
    );
    let pf = write(
        dir.path(),
        "pf",
        hashes_json(&log.consistency(7, 10)).to_string(),
    );
    assert_eq!(
        run(&[
            "compare",
            "--log-key",
            &key,
            "--state",
            p(&state),
            "--proof",
            p(&pf),
            p(&small),
            p(&a)
        ])
        .0,
        0
    );
    let forked_pf = write(
        dir.path(),
        "fpf",
        hashes_json(&fork.consistency(7, 10)).to_string(),
    );
    let (code, out) = run_json(&[
        "compare",
        "--log-key",
        &key,
        "--state",
        p(&state),
        "--proof",
        p(&forked_pf),
        p(&small),
        p(&b),
    ]);
    assert_eq!(code, 4, "{out}");
    let evidence = out["evidence"].as_str().unwrap().to_owned();
    assert_eq!(run(&["fork", "verify", "--log-key", &key, &evidence]).0, 4);
    // Evidence whose proof actually verifies proves nothing.
    let mut ev: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&evidence).unwrap()).unwrap();
    ev["newer"]["checkpoint"] = json!(log.checkpoint(10));
    ev["proof"] = hashes_json(&log.consistency(7, 10));
    let f = write(dir.path(), "ev.json", ev.to_string());
    assert_eq!(run(&["fork", "verify", "--log-key", &key, p(&f)]).0, 1);
    let f = write(dir.path(), "ev.json", "{\"kt_fork_evidence\":1}");
    assert_eq!(run(&["fork", "verify", "--log-key", &key, p(&f)]).0, 1);
}
