//! A malicious AS (issue 5), simulated through its data folder while the server is stopped:
//! it holds the real CA and log keys and writes whatever it likes into a log, then serves it.
//! (a) a logged credential for Alice on an attacker's key is caught by Alice's `monitor`;
//! (b) a credential that is not in the log is refused by the client's verification;
//! (c) a rewritten history is a fork for an auditor that saw the old one, with evidence that
//!     re-verifies offline;
//! (d) a split view (two checkpoints of one size) is exposed by `compare`;
//! (c') a log restored from an old backup is refused (exit 1) and, once it grows again, is a
//!     fork;
//! (e) entries that break the directory's public rules (a skipped or rewound version, a map
//!     root or count the entries do not make) fail the audit at their indexes;
//! (f) a history that breaks the history rules (an enrollment used twice) is caught by the
//!     owner's monitor.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use e2e_tests::{
    cert_pem, check_fork_evidence, copy_dir, copy_keys, forge_log, write_expected_keys, EvilAs,
    Server, TestDir, Trust, Verifier,
};
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};
use test_support::requests::{key_b64, new_key};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";

/// A server where Alice and Bob hold one credential each (issued over HTTP).
struct Honest {
    dir: TestDir,
    server: Server,
    trust: Trust,
    alice: SigningKey,
    alice_credential: Value,
    bob_credential: Value,
}

impl Honest {
    fn start() -> Honest {
        let dir = TestDir::new();
        let server = Server::start(&dir.join("as-data"), None, &[]);
        let trust = Trust::copy_from(&server.data, &dir.join("trust"));
        let tokens = server.enroll(&[ALICE, BOB]);
        let alice = new_key();
        let alice_credential = server.issue(ALICE, &tokens[0], &alice);
        let bob_credential = server.issue(BOB, &tokens[1], &new_key());
        Honest {
            dir,
            server,
            trust,
            alice,
            alice_credential,
            bob_credential,
        }
    }

    fn party(&self, name: &str) -> Verifier {
        Verifier::new(&self.trust, &self.dir.join(name))
    }
}

/// Kills `server`, lets `evil` do its work on the data folder, restarts the server on it.
fn while_stopped(server: &mut Server, evil: impl FnOnce(&Path)) {
    server.kill();
    evil(&server.data);
    server.restart(&[]);
}

#[test]
fn a_logged_credential_for_alice_on_an_attackers_key_is_caught_by_her_monitor() {
    let mut h = Honest::start();
    let alice = h.party("alice");
    let auditor = h.party("auditor");
    let expect = h.dir.join("alice-keys");
    write_expected_keys(&expect, &[(ALICE, &h.alice.verifying_key())]);
    alice.monitor(&h.server.base, &[ALICE], &expect).0.code(0);
    auditor.audit(&h.server.base).0.code(0);

    let attacker = new_key();
    let mut index = 0;
    while_stopped(&mut h.server, |data| {
        let mut evil = EvilAs::open(data, None);
        let (entry, _, _) = evil.credential(ALICE, &attacker.verifying_key());
        let (range, _) = evil.append(&[entry]);
        index = range.start;
    });
    // After the empty map's entry and two issuances (each an update and a map entry).
    assert_eq!(index, 5);

    // The update is well-formed and follows the public rules: the auditor cannot tell, and
    // the AS vouches for the key to anyone who asks. Only the owner knows it is not hers.
    let (run, audit) = auditor.audit(&h.server.base);
    run.code(0);
    assert_eq!(audit["size"], json!(7));
    let bob = h.party("bob");
    let attacker_b64 = key_b64(&attacker.verifying_key());
    bob.validate(&h.server.base, ALICE, &attacker_b64).0.code(0);

    let (run, monitor) = alice.monitor(&h.server.base, &[ALICE], &expect);
    run.code(1);
    let unexpected = monitor["unexpected"].as_array().unwrap();
    assert_eq!(unexpected.len(), 1, "{monitor}");
    assert_eq!(unexpected[0]["public_key"], json!(attacker_b64));
    assert_eq!(unexpected[0]["version"], json!(2));
    assert_eq!(unexpected[0]["identity"], json!(ALICE));
    assert_eq!(unexpected[0]["expected"], json!(false));

    // The human report names the key and the version.
    let mut args = vec!["monitor".into()];
    args.extend(alice.online_args(&h.server.base));
    args.extend([
        "--ca".into(),
        alice.trust.ca.clone().into(),
        "--expect-keys".into(),
        expect.into(),
        ALICE.into(),
    ]);
    let human = Verifier::raw(&args);
    human.code(1);
    let text = format!("{}{}", human.stdout, human.stderr);
    assert!(text.contains(&attacker_b64), "{text}");
    assert!(text.contains("at version 2"), "{text}");
}

#[test]
fn a_history_that_breaks_the_rules_is_caught_by_the_owners_monitor() {
    let mut h = Honest::start();
    let alice = h.party("alice");
    let expect = h.dir.join("alice-keys");
    let second = new_key();
    write_expected_keys(
        &expect,
        &[
            (ALICE, &h.alice.verifying_key()),
            (ALICE, &second.verifying_key()),
        ],
    );
    alice.monitor(&h.server.base, &[ALICE], &expect).0.code(0);
    // A second credential on the enrollment alice's first one used: the directory's
    // transition rule lets it through (enrollments are not state), the history rules do not.
    let used = h.alice_credential["directory"]["state"]["record"]["change"]["enrollment"]
        .as_str()
        .unwrap()
        .to_owned();
    while_stopped(&mut h.server, |data| {
        let mut evil = EvilAs::open(data, None);
        let (mut entry, _, _) = evil.credential(ALICE, &second.verifying_key());
        if let as_server::entry::EntryBody::Issue { enrollment, .. } = &mut entry.body {
            *enrollment = kt_protocol::entry::EnrollmentId::parse_hex(&used).unwrap();
        }
        evil.append(&[entry]);
    });
    let (run, out) = alice.monitor(&h.server.base, &[ALICE], &expect);
    run.code(1);
    let error = out["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("version 2 breaks the history rules"),
        "{out}"
    );
}

#[test]
fn a_credential_that_is_not_in_the_log_is_refused() {
    let mut h = Honest::start();
    let client = h.party("client");
    let attacker = new_key();
    let attacker_b64 = key_b64(&attacker.verifying_key());
    let mut forged = Vec::new();
    let mut der = Vec::new();
    let private_log = h.dir.join("private-log");
    let mut private_bundle = Value::Null;
    while_stopped(&mut h.server, |data| {
        let evil = EvilAs::open(data, None);
        let (logged, cert, serial) = evil.credential(ALICE, &attacker.verifying_key());
        let with_cert = |real: &Value| {
            let mut forged = real.clone();
            forged["identity"] = json!(ALICE);
            forged["serial"] = json!(serial);
            forged["public_key"] = json!(attacker_b64);
            forged["certificate"] = json!(cert_pem(&cert));
            forged
        };
        // Bob's real proof under a forged certificate for Alice.
        forged.push(with_cert(&h.bob_credential));
        // Alice's real proof (her complete state) under a forged certificate not in it.
        forged.push(with_cert(&h.alice_credential));
        // Alice's real proof with the forged credential slipped into its record.
        let mut slipped = with_cert(&h.alice_credential);
        slipped["directory"]["state"]["record"]["credentials"]
            .as_array_mut()
            .unwrap()
            .push(json!({"serial": serial, "public_key": attacker_b64,
                         "not_before": 0, "not_after": u64::MAX / 2,
                         "certificate": B64.encode(&cert)}));
        forged.push(slipped);
        der = cert;
        drop(evil);

        // A self-consistent bundle over a private copy of the log that the AS never serves.
        copy_dir(&data.join("log"), &private_log);
        let mut private = EvilAs::open(data, Some(&private_log));
        private.append(&[logged]);
        let mut bundle = forged[1].clone();
        bundle["not_before"] = json!(as_server::unix_now());
        let record = &private.proof(ALICE);
        let state = record.state.as_ref().unwrap();
        let credential = state.record["credentials"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["public_key"] == json!(attacker_b64))
            .unwrap();
        bundle["not_before"] = credential["not_before"].clone();
        bundle["not_after"] = credential["not_after"].clone();
        bundle["directory"] = serde_json::to_value(record).unwrap();
        private_bundle = bundle;
    });

    for (i, bundle) in forged.iter().enumerate() {
        let file = h.dir.join(&format!("forged-{i}.json"));
        std::fs::write(&file, bundle.to_string()).unwrap();
        let (run, out) = client.bundle_verify(&file);
        run.code(1);
        assert!(out["error"].is_string(), "{out}");
    }

    // The private-log bundle is cryptographically whole — the offline check of one file
    // cannot know better — but the client's online checks against the log refuse it.
    let file = h.dir.join("private.json");
    std::fs::write(&file, private_bundle.to_string()).unwrap();
    client.bundle_verify(&file).0.code(0);
    let cert = h.dir.join("forged.pem");
    std::fs::write(&cert, cert_pem(&der)).unwrap();
    let (run, out) = client.credential(&h.server.base, &cert);
    run.code(1);
    assert_eq!(out["state"], json!("not_current"), "{out}");
    let (run, out) = client.validate(&h.server.base, ALICE, &attacker_b64);
    run.code(1);
    assert_eq!(out["valid"], json!(false));
    // Alice's real key is still fine.
    client
        .validate(&h.server.base, ALICE, &key_b64(&h.alice.verifying_key()))
        .0
        .code(0);
}

#[test]
fn rewritten_history_is_a_fork_with_evidence_that_verifies_offline() {
    let mut h = Honest::start();
    let auditor = h.party("auditor");
    let client = h.party("client");
    let (run, audit) = auditor.audit(&h.server.base);
    run.code(0);
    assert_eq!(audit["size"], json!(5));
    client.checkpoint_fetch(&h.server.base).0.code(0);

    // The AS throws its log away and serves a longer one with other entries, under the same
    // keys, from a new data folder.
    h.server.kill();
    let rewritten = h.dir.join("rewritten-data");
    copy_keys(&h.server.data, &rewritten);
    let identities: Vec<String> = (0..5).map(|i| format!("user{i}@example.com")).collect();
    forge_log(&rewritten, &identities);
    let server = Server::start(&rewritten, Some(&h.server.admin_token), &[]);
    assert_eq!(server.checkpoint().size(), 11);

    // A fresh auditor sees a perfectly fine log.
    h.party("newcomer").audit(&server.base).0.code(0);

    // The auditor who saw the old one reports a fork, with evidence.
    let (run, out) = auditor.audit(&server.base);
    run.code(4);
    let evidence = std::path::PathBuf::from(out["evidence"].as_str().unwrap());
    assert!(evidence.is_file(), "{out}");
    assert_eq!(auditor.evidence_files(), vec![evidence.clone()]);
    // Its state still holds the old checkpoint.
    assert_eq!(auditor.saved_size(), Some(5));
    let json = check_fork_evidence(&evidence);
    assert_eq!(json["kt_fork_evidence"], json!(1));
    assert_eq!(json["older"]["size"], json!(5));
    assert_eq!(json["newer"]["size"], json!(11));

    // Anyone re-checks the evidence offline, with nothing but the log key.
    let anyone = h.party("anyone");
    let (run, verdict) = anyone.fork_verify(&evidence);
    run.code(4);
    assert_eq!(verdict["fork"], json!(true), "{verdict}");
    assert_eq!(verdict["older_size"], json!(5));
    assert_eq!(verdict["newer_size"], json!(11));

    // The client's next contact with the server says so too, loudly in human mode.
    let mut args = vec!["checkpoint".into(), "fetch".into()];
    args.extend(client.online_args(&server.base));
    let human = Verifier::raw(&args);
    human.code(4);
    assert!(
        human.stderr.to_lowercase().contains("fork"),
        "{}",
        human.stderr
    );
    assert_eq!(client.saved_size(), Some(5));
    // …and so does any lookup that carries the rewritten checkpoint.
    client.lookup(&server.base, "user0@example.com").0.code(4);
}

#[test]
fn a_split_view_of_one_size_is_exposed_by_compare() {
    let h = Honest::start();
    // A second server with the same keys and a different log of the same size.
    let other = h.dir.join("other-data");
    copy_keys(&h.server.data, &other);
    forge_log(
        &other,
        &["carol@example.com".into(), "dave@example.com".into()],
    );
    let server_b = Server::start(&other, Some(&h.server.admin_token), &[]);

    let auditor_a = h.party("auditor-a");
    let auditor_b = h.party("auditor-b");
    let (run, a) = auditor_a.audit(&h.server.base);
    run.code(0);
    let (run, b) = auditor_b.audit(&server_b.base);
    run.code(0);
    assert_eq!(a["size"], b["size"]);
    assert_ne!(a["root"], b["root"]);

    // Each view alone is fine; together they are a fork.
    let (run, out) = auditor_a.compare(&auditor_a.state, &auditor_a.state);
    run.code(0);
    assert_eq!(out["consistent"], json!(true));
    let (run, out) = auditor_a.compare(&auditor_a.state, &auditor_b.state);
    run.code(4);
    let evidence = std::path::PathBuf::from(out["evidence"].as_str().unwrap());
    let (run, verdict) = h.party("anyone").fork_verify(&evidence);
    run.code(4);
    assert_eq!(verdict["older_size"], verdict["newer_size"]);

    // The checkpoint files themselves compare the same way.
    let cp = |v: &Verifier| {
        v.state
            .join(e2e_tests::escape_origin(e2e_tests::ORIGIN))
            .join("checkpoint")
    };
    auditor_b
        .compare(&cp(&auditor_a), &cp(&auditor_b))
        .0
        .code(4);
}

#[test]
fn entries_that_break_the_rules_fail_the_audit_at_their_indexes() {
    use kt_protocol::directory::public_entry::{MapRoot, PublicEntry, Update};

    let mut h = Honest::start();
    let auditor = h.party("auditor");
    auditor.audit(&h.server.base).0.code(0);
    // The server refuses to open a log that breaks the directory's rules, so the AS serves
    // it as a mirror would: its tiles.
    h.server.kill();
    let evil = EvilAs::open(&h.server.data, None);
    let (label, leaf) = evil.leaf(ALICE);
    let version = leaf.unwrap().version;
    let labels = evil.map().len();
    let (range, _) = evil.append_raw(&[
        // 5: Alice's label skips a version (a change hidden between two shown).
        PublicEntry::Update(Update {
            label,
            version: version + 2,
            commitment: [1; 32],
            sealed: vec![1],
        })
        .to_bytes(),
        // 6: a map entry whose root the entries do not make.
        PublicEntry::Map(MapRoot {
            root: [7; 32],
            labels,
        })
        .to_bytes(),
        // 7: Alice's label rewound to her current version.
        PublicEntry::Update(Update {
            label,
            version,
            commitment: [2; 32],
            sealed: vec![1],
        })
        .to_bytes(),
        // 8: a map entry that counts a label more than the map holds.
        PublicEntry::Map(MapRoot {
            root: evil.map().root(),
            labels: labels + 1,
        })
        .to_bytes(),
    ]);
    assert_eq!(range, 5..9);
    let tiles = h.dir.join("tiles");
    evil.write_tiles(&tiles);

    for auditor in [&auditor, &h.party("fresh-auditor")] {
        let (run, audit) = auditor.audit_tiles(&tiles);
        run.code(1);
        assert_eq!(audit["problem_count"], json!(4), "{audit}");
        let indexes: Vec<u64> = audit["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["index"].as_u64().unwrap())
            .collect();
        assert_eq!(indexes, [5, 6, 7, 8], "{audit}");
        // The wrong root is named with what the entries make.
        let wrong = audit["problems"][1]["problem"].as_str().unwrap();
        assert!(
            wrong.contains("map root") && wrong.contains("entries before it make"),
            "{wrong}"
        );
        // Problems stay recorded: the next run still fails.
        auditor.audit_tiles(&tiles).0.code(1);
    }
}

#[test]
fn a_log_restored_from_an_old_backup_is_caught_when_it_grows_again() {
    let mut h = Honest::start();
    // A backup of the stopped server's data folder at size 5.
    h.server.kill();
    let backup = h.dir.join("backup");
    copy_dir(&h.server.data, &backup);
    h.server.restart(&[]);
    let tokens = h
        .server
        .enroll(&["carol@example.com", "carol2@example.com"]);
    h.server.issue("carol@example.com", &tokens[0], &new_key());
    let auditor = h.party("auditor");
    auditor.audit(&h.server.base).0.code(0);
    assert_eq!(auditor.saved_size(), Some(7));

    // The operator restores the backup: the log is back at size 5, behind the auditor.
    h.server.kill();
    let admin_token = h.server.admin_token.clone();
    let restored = Server::start(&backup, Some(&admin_token), &[]);
    assert_eq!(restored.checkpoint().size(), 5);
    let (run, out) = auditor.checkpoint_fetch(&restored.base);
    run.code(1);
    let error = out["error"].as_str().unwrap();
    assert!(error.contains("older than the saved one"), "{error}");
    assert_eq!(auditor.saved_size(), Some(7));

    // It grows again with another change at index 5: a second root for size 7, a fork.
    let token = restored.enroll(&["dave@example.com"]).remove(0);
    restored.issue("dave@example.com", &token, &new_key());
    let (run, out) = auditor.audit(&restored.base);
    run.code(4);
    let evidence = std::path::PathBuf::from(out["evidence"].as_str().unwrap());
    h.party("anyone").fork_verify(&evidence).0.code(4);
}
