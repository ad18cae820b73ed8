//! `--witness-policy`: checkpoints cosigned (by the shared cosignature/v1 code) by a quorum
//! pass; one missing a witness is refused (exit 1) naming it; a bad cosignature by a policy
//! witness is refused; an unusable policy is a usage error; without the option nothing
//! changes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use kt_log::cosignature::CosignatureSigner;
use kt_log::note::NoteSigner;
use serde_json::json;

fn witness(i: u8) -> CosignatureSigner {
    CosignatureSigner::from_seed(&format!("w{i}.example/witness"), &seed(40 + i)).unwrap()
}

/// The checkpoint note of `log` at `size` with cosignatures by the witnesses `by`.
fn cosigned(log: &MemLog, size: u64, by: &[u8]) -> String {
    let note = log.checkpoint(size);
    let body = &note[..note.rfind("\n\n").unwrap() + 1];
    let mut out = note.clone();
    for &i in by {
        out.push_str(&witness(i).cosign(body, 1_700_000_000).unwrap());
    }
    out
}

/// A 2-of-3 policy for `log`.
fn policy(log: &MemLog) -> String {
    format!(
        "# two of three witnesses\nlog {}\nwitness A {}\nwitness B {}\nwitness C {}\ngroup two 2 A B C\nquorum two\n",
        log.vkey(),
        witness(1).verifier().to_vkey(),
        witness(2).verifier().to_vkey(),
        witness(3).verifier().to_vkey()
    )
}

#[test]
fn checkpoint_verify_requires_the_quorum() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(4);
    let key = log.vkey();
    let pol = write(dir.path(), "policy", policy(&log));
    let verify = |note: &str, extra: &[&str]| {
        let f = write(dir.path(), "cp", note);
        let mut args = vec!["checkpoint", "verify", "--log-key", &key];
        args.extend_from_slice(extra);
        args.push(p(&f));
        run(&args)
    };
    let with = ["--witness-policy", p(&pol)];
    // Two of three: verified.
    let (code, out, err) = verify(&cosigned(&log, 4, &[1, 3]), &with);
    assert_eq!(code, 0, "{out}{err}");
    assert!(verify(&cosigned(&log, 4, &[1, 2, 3]), &with).0 == 0);
    // One of three: refused, naming the witnesses missing.
    let (code, out, err) = verify(&cosigned(&log, 4, &[2]), &with);
    assert_eq!(code, 1, "{out}{err}");
    let said = format!("{out}{err}");
    assert!(said.contains("missing cosignatures by A, C"), "{said}");
    assert!(said.contains("two (1 of 2 needed)"), "{said}");
    // Log-signed only: refused with the option, verified without it (as before).
    assert_eq!(verify(&log.checkpoint(4), &with).0, 1);
    assert_eq!(verify(&log.checkpoint(4), &[]).0, 0);
    // A cosignature of another checkpoint, pasted on: refused, naming the witness.
    let other = cosigned(&log, 3, &[3]);
    let pasted = format!(
        "{}{}",
        cosigned(&log, 4, &[1, 2]),
        &other[other.rfind('\u{2014}').unwrap()..]
    );
    let (code, out, err) = verify(&pasted, &with);
    assert_eq!(code, 1);
    assert!(
        format!("{out}{err}").contains("bad cosignature by witness \"C\""),
        "{out}{err}"
    );
    // JSON: the failure is a verification failure.
    let f = write(dir.path(), "cp1", cosigned(&log, 4, &[1]));
    let (code, out) = run_json(&[
        "checkpoint",
        "verify",
        "--log-key",
        &key,
        "--witness-policy",
        p(&pol),
        p(&f),
    ]);
    assert_eq!(code, 1);
    assert_eq!(out["status"], json!("verification_failed"), "{out}");
    // An unusable policy is a usage error (2), an unreadable one an I/O error (3).
    let bad = write(dir.path(), "bad", "witness A nokey\nquorum A\n");
    assert_eq!(
        verify(&log.checkpoint(4), &["--witness-policy", p(&bad)]).0,
        2
    );
    assert_eq!(
        verify(
            &log.checkpoint(4),
            &["--witness-policy", "/nonexistent/policy"]
        )
        .0,
        3
    );
    // A policy for another log refuses this one.
    let other_log = MemLog::new(NoteSigner::from_seed("other.example/log", &seed(9)).unwrap());
    let foreign = write(dir.path(), "foreign", policy(&other_log));
    assert_eq!(
        verify(
            &cosigned(&log, 4, &[1, 2]),
            &["--witness-policy", p(&foreign)]
        )
        .0,
        1
    );
}

#[test]
fn the_environment_variable_sets_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(2);
    let pol = write(dir.path(), "policy", policy(&log));
    let f = write(dir.path(), "cp", cosigned(&log, 2, &[1]));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_verifier-cli"))
        .args(["checkpoint", "verify", "--log-key", &log.vkey(), p(&f)])
        .env("KT_WITNESS_POLICY", &pol)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing cosignatures by B, C"), "{err}");
}

#[test]
fn inclusion_and_consistency_and_bundles_require_the_quorum() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(1);
    let t = now();
    let alice = Cred::new(&ca, "alice@example.com", 1, (t - 100, t + 86400));
    let mut directory = MemDirectory::new(NoteSigner::from_seed(ORIGIN, &seed(1)).unwrap());
    directory.commit(std::slice::from_ref(&alice.entry));
    let log = directory.log.clone();
    let key = log.vkey();
    let vrf = directory.vrf_b64();
    let pol = write(dir.path(), "policy", policy(&log));
    let ca_file = write(dir.path(), "ca.pem", ca.pem());
    // bundle verify: the bundle's checkpoint must be cosigned.
    let mut bundle = directory.bundle(&ca, &alice);
    let bundle_file = write(dir.path(), "plain.json", bundle.to_string());
    let args = |file: &std::path::Path, with: bool| {
        let mut a = vec![
            "bundle".to_owned(),
            "verify".into(),
            "--log-key".into(),
            key.clone(),
            "--vrf-key".into(),
            vrf.clone(),
            "--ca".into(),
            p(&ca_file).into(),
        ];
        if with {
            a.extend(["--witness-policy".into(), p(&pol).into()]);
        }
        a.push(p(file).into());
        a
    };
    let go = |a: Vec<String>| {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        run(&refs)
    };
    assert_eq!(go(args(&bundle_file, false)).0, 0);
    let (code, out, err) = go(args(&bundle_file, true));
    assert_eq!(code, 1, "{out}{err}");
    assert!(format!("{out}{err}").contains("missing cosignatures by A, B, C"));
    bundle["directory"]["checkpoint"] = json!(cosigned(&log, 3, &[2, 3]));
    let cosigned_file = write(dir.path(), "cosigned.json", bundle.to_string());
    let (code, out, err) = go(args(&cosigned_file, true));
    assert_eq!(code, 0, "{out}{err}");

    // inclusion verify and consistency verify read checkpoint files: both checked.
    let cp3 = write(dir.path(), "cp3", cosigned(&log, 3, &[1, 2]));
    let cp1 = write(dir.path(), "cp1", cosigned(&log, 1, &[1]));
    let proof = write(
        dir.path(),
        "proof",
        hashes_json(&log.inclusion(2, 3)).to_string(),
    );
    let entry = write(dir.path(), "entry", &log.entries[2]);
    let incl = |cp: &std::path::Path| {
        run(&[
            "inclusion",
            "verify",
            "--log-key",
            &key,
            "--witness-policy",
            p(&pol),
            "--checkpoint",
            p(cp),
            "--index",
            "2",
            "--entry",
            p(&entry),
            "--proof",
            p(&proof),
        ])
        .0
    };
    assert_eq!(incl(&cp3), 0);
    let cp3_one = write(dir.path(), "cp3one", cosigned(&log, 3, &[1]));
    assert_eq!(incl(&cp3_one), 1);
    let cproof = write(
        dir.path(),
        "cproof",
        hashes_json(&log.consistency(1, 3)).to_string(),
    );
    let cons = |old: &std::path::Path| {
        run(&[
            "consistency",
            "verify",
            "--log-key",
            &key,
            "--witness-policy",
            p(&pol),
            "--old",
            p(old),
            "--new",
            p(&cp3),
            "--proof",
            p(&cproof),
        ])
        .0
    };
    assert_eq!(cons(&cp1), 1, "the old checkpoint lacks the quorum");
    let cp1_two = write(dir.path(), "cp1two", cosigned(&log, 1, &[1, 3]));
    assert_eq!(cons(&cp1_two), 0);
}

#[test]
fn online_commands_require_the_quorum() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(1);
    let t = now();
    let alice = Cred::new(&ca, "alice@example.com", 1, (t - 100, t + 86400));
    let mut directory = MemDirectory::new(NoteSigner::from_seed(ORIGIN, &seed(1)).unwrap());
    directory.commit(std::slice::from_ref(&alice.entry));
    let log = directory.log.clone();
    let key = log.vkey();
    let vrf = directory.vrf_b64();
    let pol = write(dir.path(), "policy", policy(&log));
    let ca_file = write(dir.path(), "ca.pem", ca.pem());
    let server = MockServer::start();
    server.serve_log(&log, log.size());
    server.set("/v1/crl", 200, ca.crl(&[]));
    let serve = |checkpoint: String| {
        server.set("/log/checkpoint", 200, checkpoint.clone());
        let mut proof = directory.proof("alice@example.com");
        proof.checkpoint = checkpoint;
        server.set(
            "/v1/identities/alice@example.com",
            200,
            serde_json::to_vec(&proof).unwrap(),
        );
    };
    let go = |state: &str, cmd: &[&str], with: bool| {
        let state = dir.path().join(state);
        let mut a: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        a.extend([
            "--log-key".into(),
            key.clone(),
            "--server".into(),
            server.url.clone(),
            "--state".into(),
            p(&state).into(),
        ]);
        if cmd[0] != "checkpoint" {
            a.extend([
                "--ca".into(),
                p(&ca_file).into(),
                "--vrf-key".into(),
                vrf.clone(),
            ]);
        }
        if with {
            a.extend(["--witness-policy".into(), p(&pol).into()]);
        }
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        run(&refs)
    };
    let pub_key = alice.public_b64();
    let commands: [&[&str]; 3] = [
        &["checkpoint", "fetch"],
        &["lookup", "alice@example.com"],
        &["validate", "alice@example.com", &pub_key],
    ];
    // Log-signed only: accepted without the option, refused with it, naming the missing.
    serve(log.checkpoint(log.size()));
    for (i, cmd) in commands.iter().enumerate() {
        assert_eq!(go(&format!("plain{i}"), cmd, false).0, 0, "{cmd:?}");
        let (code, out, err) = go(&format!("refused{i}"), cmd, true);
        assert_eq!(code, 1, "{cmd:?}: {out}{err}");
        assert!(
            format!("{out}{err}").contains("missing cosignatures by A, B, C"),
            "{cmd:?}: {out}{err}"
        );
    }
    // Cosigned by two: accepted.
    serve(cosigned(&log, log.size(), &[1, 2]));
    for (i, cmd) in commands.iter().enumerate() {
        let (code, out, err) = go(&format!("cosigned{i}"), cmd, true);
        assert_eq!(code, 0, "{cmd:?}: {out}{err}");
    }
}

#[test]
fn audit_and_monitor_require_the_quorum() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(1);
    let t = now();
    let alice = Cred::new(&ca, "alice@example.com", 1, (t - 100, t + 86400));
    let mut directory = MemDirectory::new(NoteSigner::from_seed(ORIGIN, &seed(1)).unwrap());
    directory.commit(std::slice::from_ref(&alice.entry));
    let log = directory.log.clone();
    let size = log.size();
    let key = log.vkey();
    let vrf = directory.vrf_b64();
    let pol = write(dir.path(), "policy", policy(&log));
    let ca_file = write(dir.path(), "ca.pem", ca.pem());
    let expect = write(dir.path(), "expect", format!("{}\n", alice.public_b64()));
    let tiles = dir.path().join("tiles");
    log.write_tiles(&tiles, size);
    let server = MockServer::start();
    server.serve_log(&log, size);
    server.set("/v1/crl", 200, ca.crl(&[]));
    let serve_history = |checkpoint: String| {
        let mut answer = directory.history("alice@example.com", 0);
        answer.proof.checkpoint = checkpoint;
        server.set(
            "/v1/identities/alice@example.com/history?after=0",
            200,
            serde_json::to_vec(&answer).unwrap(),
        );
    };
    let audit = |state: &str, with: bool| {
        let state = dir.path().join(state);
        let mut a = vec![
            "audit",
            "--log-key",
            &key,
            "--tiles",
            p(&tiles),
            "--state",
            p(&state),
        ];
        if with {
            a.extend(["--witness-policy", p(&pol)]);
        }
        run(&a)
    };
    let monitor = |state: &str, with: bool| {
        let state = dir.path().join(state);
        let mut a = vec![
            "monitor",
            "alice@example.com",
            "--log-key",
            &key,
            "--vrf-key",
            &vrf,
            "--ca",
            p(&ca_file),
            "--expect-keys",
            p(&expect),
            "--server",
            &server.url,
            "--state",
            p(&state),
        ];
        if with {
            a.extend(["--witness-policy", p(&pol)]);
        }
        run(&a)
    };
    // Log-signed only: as before without the option, refused with it.
    serve_history(log.checkpoint(size));
    assert_eq!(audit("a0", false).0, 0);
    assert_eq!(monitor("m0", false).0, 0);
    for (code, out, err) in [audit("a1", true), monitor("m1", true)] {
        assert_eq!(code, 1, "{out}{err}");
        assert!(
            format!("{out}{err}").contains("missing cosignatures by A, B, C"),
            "{out}{err}"
        );
    }
    // Cosigned by the quorum: accepted.
    std::fs::write(tiles.join("checkpoint"), cosigned(&log, size, &[1, 2])).unwrap();
    serve_history(cosigned(&log, size, &[1, 2]));
    let (code, out, err) = audit("a2", true);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = monitor("m2", true);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn an_answer_the_log_alone_signed_is_accepted_once_a_cosigned_checkpoint_covers_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(1);
    let t = now();
    let alice = Cred::new(&ca, "alice@example.com", 1, (t - 100, t + 86400));
    let bob = Cred::new(&ca, "bob@example.com", 2, (t - 100, t + 86400));
    let mut directory = MemDirectory::new(NoteSigner::from_seed(ORIGIN, &seed(1)).unwrap());
    directory.commit(std::slice::from_ref(&alice.entry));
    // Alice's answer, as the AS gives it: in the checkpoint the log alone signed.
    let answer = directory.proof("alice@example.com");
    let answered = directory.log.size();
    // The log grows; the witnesses cosign the newer checkpoint.
    directory.commit(std::slice::from_ref(&bob.entry));
    let log = directory.log.clone();
    let server = MockServer::start();
    server.serve_log(&log, log.size());
    server.set("/v1/crl", 200, ca.crl(&[]));
    server.set(
        "/v1/identities/alice@example.com",
        200,
        serde_json::to_vec(&answer).unwrap(),
    );
    let pol = write(dir.path(), "policy", policy(&log));
    let ca_file = write(dir.path(), "ca.pem", ca.pem());
    let key = log.vkey();
    let vrf = directory.vrf_b64();
    let lookup = |state: &str| {
        let state = dir.path().join(state);
        run(&[
            "--json",
            "lookup",
            "alice@example.com",
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
            "--witness-policy",
            p(&pol),
        ])
    };
    // Covered by a cosigned checkpoint of a larger size, proven consistent: accepted, and
    // the cosigned checkpoint is what the state keeps.
    server.set("/log/checkpoint", 200, cosigned(&log, log.size(), &[1, 3]));
    let (code, out, err) = lookup("covered");
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&[
        "--json",
        "checkpoint",
        "fetch",
        "--log-key",
        &key,
        "--server",
        &server.url,
        "--state",
        p(&dir.path().join("covered")),
        "--witness-policy",
        p(&pol),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let out: serde_json::Value = serde_json::from_str(&out).unwrap();
    // "unchanged": the state already holds the cosigned checkpoint of this size.
    assert_eq!(out["consistency"], "unchanged", "{out}");
    assert_eq!(out["size"], log.size(), "{out}");
    assert!(answered < log.size());

    // A cosigned checkpoint of another log of the same key (a split view): refused.
    let mut fork = MemLog::new(NoteSigner::from_seed(ORIGIN, &seed(1)).unwrap());
    for i in 0..log.size() {
        fork.push(format!("forked {i}").into_bytes());
    }
    server.set(
        "/log/checkpoint",
        200,
        cosigned(&fork, fork.size(), &[1, 3]),
    );
    let (code, out, err) = lookup("split");
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        format!("{out}{err}").contains("not consistent with the cosigned one"),
        "{out}{err}"
    );
    // The cosigned checkpoint lags (older than the answer): refused after the wait, saying so.
    server.set(
        "/log/checkpoint",
        200,
        cosigned(&log, answered - 1, &[1, 2]),
    );
    let (code, out, err) = lookup("lagging");
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        format!("{out}{err}").contains("not covered by a checkpoint the witness quorum cosigned"),
        "{out}{err}"
    );
}

#[test]
fn fork_verify_names_the_witnesses_that_cosigned_both_sides_of_a_split_view() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(4);
    let mut other = MemLog::new(NoteSigner::from_seed(ORIGIN, &seed(1)).unwrap());
    for i in 0..4 {
        other.push(format!("other {i}").into_bytes());
    }
    let key = log.vkey();
    let pol = write(dir.path(), "policy", policy(&log));
    // Witness A cosigned both views of size 4; B only the first, C only the second.
    let a = write(dir.path(), "a", cosigned(&log, 4, &[1, 2]));
    let b = write(dir.path(), "b", cosigned(&other, 4, &[1, 3]));
    let (code, out, err) = run(&[
        "--json",
        "compare",
        p(&a),
        p(&b),
        "--log-key",
        &key,
        "--state",
        p(&dir.path().join("s")),
    ]);
    assert_eq!(code, 4, "{out}{err}");
    let evidence = serde_json::from_str::<serde_json::Value>(&out).unwrap()["evidence"]
        .as_str()
        .unwrap()
        .to_owned();
    let verify = |extra: &[&str]| {
        let mut args = vec!["--json", "fork", "verify", "--log-key", &key];
        args.extend_from_slice(extra);
        args.push(&evidence);
        run(&args)
    };
    let (code, out, _) = verify(&["--witness-policy", p(&pol)]);
    assert_eq!(code, 4);
    let out: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["witnesses_cosigned_both"], json!(["A"]));
    // Without the policy nobody is named; the fork is proven all the same.
    let (code, out, _) = verify(&[]);
    assert_eq!(code, 4);
    let out: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["witnesses_cosigned_both"], json!([]));
}
