//! The MLS architecture's scenario (issue 5): an admin enrolls Alice, Bob and Charlie, each
//! obtains a credential with `verifier-cli enroll`, Alice looks up and validates the others,
//! Bob adds a device and rotates a key, the server is SIGKILLed and restarted in the middle,
//! the admin revokes Charlie (and later enables him again); an auditor's `audit` passes after every step while its saved
//! checkpoint advances, and Bob's `monitor` passes with his expected keys.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use e2e_tests::{
    expect_status, read_key, write_certificate, write_expected_keys, Server, TestDir, Trust,
    Verifier,
};
use serde_json::{json, Value};
use test_support::requests::{key_b64, new_key};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CHARLIE: &str = "charlie@example.com";

/// Runs the auditor and checks that it passes with a log of `changes` changes, saved in its
/// state. The scenario's changes are made one at a time, so each is a batch of its own: the
/// log holds the empty map's entry and, per change, its update and its map entry.
#[track_caller]
fn audit_passes(auditor: &Verifier, server: &Server, changes: u64) -> Value {
    let size = 1 + 2 * changes;
    let (run, audit) = auditor.audit(&server.base);
    run.code(0);
    assert_eq!(audit["size"], json!(size), "{audit}");
    assert_eq!(audit["problem_count"], json!(0), "{audit}");
    assert_eq!(auditor.saved_size(), Some(size));
    audit
}

/// `as-server admin enroll IDENTITIES…`: the tokens, in order.
#[track_caller]
fn admin_enroll(server: &Server, token_file: &Path, identities: &[&str]) -> Vec<String> {
    let mut args = vec!["enroll"];
    args.extend_from_slice(identities);
    let run = server.admin_cli(token_file, &args);
    let answer = run.ok();
    let enrollments = answer["enrollments"].as_array().expect("enrollments");
    assert_eq!(enrollments.len(), identities.len());
    enrollments
        .iter()
        .zip(identities)
        .map(|(e, identity)| {
            assert_eq!(e["identity"], json!(identity));
            e["token"].as_str().expect("a token").to_owned()
        })
        .collect()
}

/// A device: its key file and verified credential file, written by `verifier-cli enroll`.
struct Device {
    key: ed25519_dalek::SigningKey,
    credential: Value,
    cert: std::path::PathBuf,
}

/// `verifier-cli enroll` for `identity` as `party`; checks the files it writes.
#[track_caller]
fn enroll_device(
    party: &Verifier,
    server: &Server,
    dir: &TestDir,
    name: &str,
    identity: &str,
    token: &str,
) -> Device {
    let key_file = dir.join(&format!("{name}.key.pem"));
    let cred_file = dir.join(&format!("{name}.credential.json"));
    let (run, out) = party.enroll(&server.base, identity, token, &key_file, &cred_file);
    run.code(0);
    assert_eq!(out["identity"], json!(identity), "{out}");
    assert!(out["version"].as_u64().unwrap() >= 1, "{out}");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key file is private");
    let key = read_key(&key_file);
    assert_eq!(out["public_key"], json!(key_b64(&key.verifying_key())));
    let credential: Value =
        serde_json::from_slice(&std::fs::read(&cred_file).unwrap()).expect("credential JSON");
    assert_eq!(credential["serial"], out["serial"]);
    // The saved file verifies offline, as anyone receiving it would check it.
    let (run, bundle) = party.bundle_verify(&cred_file);
    run.code(0);
    assert_eq!(bundle["serial"], out["serial"]);
    assert_eq!(bundle["chain_has_ca"], json!(true));
    // The same token cannot be used twice.
    let again = party.enroll(
        &server.base,
        identity,
        token,
        &dir.join(&format!("{name}.again.key.pem")),
        &dir.join(&format!("{name}.again.json")),
    );
    assert_ne!(again.0.code, 0, "a used token is refused");
    let cert = dir.join(&format!("{name}.cert.pem"));
    write_certificate(&credential, &cert);
    Device {
        key,
        credential,
        cert,
    }
}

fn lookup_keys(lookup: &Value) -> BTreeSet<String> {
    lookup["credentials"]
        .as_array()
        .expect("credentials")
        .iter()
        .map(|c| c["public_key"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn mls_scenario_with_audits_restart_rotation_and_revocation() {
    let dir = TestDir::new();
    let data = dir.join("as-data");
    let mut server = Server::start(&data, None, &[]);
    let trust = Trust::copy_from(&data, &dir.join("trust"));
    let token_file = dir.join("admin-token");
    std::fs::write(&token_file, format!("{}\n", server.admin_token)).unwrap();
    let auditor = Verifier::new(&trust, &dir.join("auditor-state"));
    let alice = Verifier::new(&trust, &dir.join("alice-state"));
    let bob = Verifier::new(&trust, &dir.join("bob-state"));
    let charlie = Verifier::new(&trust, &dir.join("charlie-state"));

    // An empty log audits.
    let audit = audit_passes(&auditor, &server, 0);
    assert_eq!(audit["consistency"], json!("first"));

    // The admin's CLI: a wrong token and a bad identity are refused (exit 1), nothing made.
    let wrong = dir.join("wrong-token");
    std::fs::write(&wrong, "not-the-token\n").unwrap();
    let refused = server.admin_cli(&wrong, &["enroll", ALICE]);
    refused.code(1);
    assert_eq!(refused.json()["status"], json!(403));
    let refused = server.admin_cli(&token_file, &["enroll", ALICE, "Not An Identity"]);
    refused.code(1);
    assert_eq!(refused.json()["status"], json!(422));

    // 1. The admin enrolls Alice, Bob and Charlie. Enrollments are not logged.
    let tokens = admin_enroll(&server, &token_file, &[ALICE, BOB, CHARLIE]);
    let audit = audit_passes(&auditor, &server, 0);
    assert_eq!(audit["consistency"], json!("unchanged"));

    // 2. Each obtains a credential with `verifier-cli enroll`.
    let alice1 = enroll_device(&alice, &server, &dir, "alice1", ALICE, &tokens[0]);
    let bob1 = enroll_device(&bob, &server, &dir, "bob1", BOB, &tokens[1]);
    let charlie1 = enroll_device(&charlie, &server, &dir, "charlie1", CHARLIE, &tokens[2]);
    let audit = audit_passes(&auditor, &server, 3);
    assert_eq!(audit["consistency"], json!("extended"));
    assert_eq!(audit["previous_size"], json!(1));
    assert_eq!(audit["entries_checked"], json!(6));
    assert_eq!(audit["labels"], json!(3));

    // 3. Alice looks up Bob and Charlie and validates their keys.
    for (who, device) in [(BOB, &bob1), (CHARLIE, &charlie1)] {
        let (run, lookup) = alice.lookup(&server.base, who);
        run.code(0);
        assert_eq!(lookup["found"], json!(true));
        assert_eq!(lookup["identity_status"], json!("active"));
        assert_eq!(
            lookup_keys(&lookup),
            BTreeSet::from([key_b64(&device.key.verifying_key())])
        );
        let (run, valid) = alice.validate(&server.base, who, &key_b64(&device.key.verifying_key()));
        run.code(0);
        assert_eq!(valid["valid"], json!(true));
        assert_eq!(valid["credential"]["serial"], device.credential["serial"]);
        assert_eq!(valid["proof"]["identity"], json!(who));
        assert!(valid["proof"]["checkpoint"].is_string());
    }
    let stranger = key_b64(&new_key().verifying_key());
    let (run, invalid) = alice.validate(&server.base, BOB, &stranger);
    run.code(1);
    assert_eq!(invalid["valid"], json!(false));
    assert_eq!(invalid["proof"], Value::Null);
    // Bob's key is not Alice's.
    alice
        .validate(&server.base, ALICE, &key_b64(&bob1.key.verifying_key()))
        .0
        .code(1);
    audit_passes(&auditor, &server, 3);

    // 4. Bob adds a second device (a new enrollment from the admin).
    let token = admin_enroll(&server, &token_file, &[BOB]).remove(0);
    let bob2 = enroll_device(&bob, &server, &dir, "bob2", BOB, &token);
    let (run, lookup) = alice.lookup(&server.base, BOB);
    run.code(0);
    assert_eq!(
        lookup_keys(&lookup),
        BTreeSet::from([
            key_b64(&bob1.key.verifying_key()),
            key_b64(&bob2.key.verifying_key())
        ])
    );
    audit_passes(&auditor, &server, 4);

    // 5. SIGKILL in the middle; restart on the same data folder. Nothing acknowledged is
    //    lost and every proof still verifies.
    let before = server.checkpoint();
    server.restart(&[]);
    let after = server.checkpoint();
    assert_eq!(after.size(), before.size());
    assert_eq!(after.root(), before.root());
    for (party, device) in [
        (&alice, &alice1),
        (&bob, &bob1),
        (&bob, &bob2),
        (&charlie, &charlie1),
    ] {
        let (run, credential) = party.credential(&server.base, &device.cert);
        run.code(0);
        assert_eq!(credential["state"], json!("current"));
        assert!(credential["version"].is_u64(), "{credential}");
    }
    // The map entry that ends the checkpoint of Bob's second issuance.
    let bob2_checkpoint = kt_log::checkpoint::open_checkpoint(
        bob2.credential["directory"]["checkpoint"]
            .as_str()
            .unwrap()
            .as_bytes(),
        &test_support::server::log_verifier(&server.data),
    )
    .unwrap();
    check_inclusion_offline(&server, &auditor, &dir, bob2_checkpoint.size() - 1);
    let audit = audit_passes(&auditor, &server, 4);
    assert_eq!(audit["consistency"], json!("unchanged"));

    // 6. Bob rotates his first device's key with `verifier-cli rotate` (the request is signed
    //    by the current and the new key).
    let (run, out) = bob.rotate(
        &server.base,
        &dir.join("bob1.key.pem"),
        &dir.join("bob1.credential.json"),
        &dir.join("bob1-rotated.key.pem"),
        &dir.join("bob1-rotated.json"),
    );
    run.code(0);
    assert_eq!(
        out["version"],
        json!(3),
        "Bob's third change: two issuances, a rotation"
    );
    let rotated_key = dir.join("bob1-rotated.key.pem");
    let mode = std::fs::metadata(&rotated_key)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the new key file is private");
    let bob1_new = read_key(&rotated_key);
    assert_eq!(out["public_key"], json!(key_b64(&bob1_new.verifying_key())));
    let rotated_file = dir.join("bob1-rotated.json");
    let rotated: Value = serde_json::from_slice(&std::fs::read(&rotated_file).unwrap()).unwrap();
    assert_eq!(rotated["replaces"], bob1.credential["serial"]);
    let rotated_cert = dir.join("bob1-rotated.cert.pem");
    write_certificate(&rotated, &rotated_cert);
    let (run, bundle) = bob.bundle_verify(&rotated_file);
    run.code(0);
    assert_eq!(bundle["serial"], rotated["serial"]);
    assert_eq!(bundle["version"], json!(3));
    // The superseded credential cannot be rotated again (the server refuses: exit 3), and
    // a key that does not match the credential is a usage error.
    let (run, _) = bob.rotate(
        &server.base,
        &dir.join("bob1.key.pem"),
        &dir.join("bob1.credential.json"),
        &dir.join("bob1-again.key.pem"),
        &dir.join("bob1-again.json"),
    );
    run.code(3);
    let (run, _) = bob.rotate(
        &server.base,
        &dir.join("bob2.key.pem"),
        &rotated_file,
        &dir.join("bob-mixed.key.pem"),
        &dir.join("bob-mixed.json"),
    );
    run.code(2);
    // Rotation over HTTP, as a client without verifier-cli does it, is checked in online.rs;
    // here the server's answer to a request signed by the new key only is a refusal.
    let forged = test_support::requests::rotation_request(
        BOB,
        rotated["serial"].as_str().unwrap(),
        &new_key(),
        &new_key(),
    );
    let answer = server.post("/v1/credentials/rotate", &forged);
    assert_eq!(
        answer.status,
        422,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let (run, lookup) = alice.lookup(&server.base, BOB);
    run.code(0);
    assert_eq!(
        lookup_keys(&lookup),
        BTreeSet::from([
            key_b64(&bob1_new.verifying_key()),
            key_b64(&bob2.key.verifying_key())
        ])
    );
    alice
        .validate(&server.base, BOB, &key_b64(&bob1_new.verifying_key()))
        .0
        .code(0);
    let (run, old) = alice.validate(&server.base, BOB, &key_b64(&bob1.key.verifying_key()));
    run.code(1);
    assert_eq!(old["valid"], json!(false));
    let (run, superseded) = bob.credential(&server.base, &bob1.cert);
    run.code(1);
    assert_eq!(superseded["state"], json!("not_current"));
    let (run, current) = bob.credential(&server.base, &rotated_cert);
    run.code(0);
    assert_eq!(current["state"], json!("current"));
    audit_passes(&auditor, &server, 5);

    // 7. The admin revokes Charlie.
    let run = server.admin_cli(
        &token_file,
        &["revoke-identity", CHARLIE, "--reason", "keyCompromise"],
    );
    let revoked = run.ok();
    assert_eq!(revoked["revoked"], json!([charlie1.credential["serial"]]));
    // Revoking twice is refused.
    server
        .admin_cli(&token_file, &["revoke-identity", CHARLIE])
        .code(1);
    audit_passes(&auditor, &server, 6);

    // Charlie's credential now fails `credential` with "revoked".
    let (run, credential) = charlie.credential(&server.base, &charlie1.cert);
    run.code(1);
    assert_eq!(credential["state"], json!("revoked"), "{credential}");
    let human = Verifier::raw(&credential_args(&charlie, &server, &charlie1.cert));
    human.code(1);
    assert!(
        human.stdout.to_lowercase().contains("revoked"),
        "{}",
        human.stdout
    );
    let (run, lookup) = alice.lookup(&server.base, CHARLIE);
    run.code(0);
    assert_eq!(lookup["identity_status"], json!("revoked"));
    assert_eq!(lookup["credentials"], json!([]));
    let (run, invalid) = alice.validate(
        &server.base,
        CHARLIE,
        &key_b64(&charlie1.key.verifying_key()),
    );
    run.code(1);
    assert_eq!(invalid["valid"], json!(false));

    // Bob's monitor, with every key he ever used, passes and lists his events.
    let expect = dir.join("bob-keys");
    write_expected_keys(
        &expect,
        &[
            (BOB, &bob1.key.verifying_key()),
            (BOB, &bob2.key.verifying_key()),
            (BOB, &bob1_new.verifying_key()),
        ],
    );
    let (run, monitor) = bob.monitor(&server.base, &[BOB], &expect);
    run.code(0);
    let kinds: Vec<&str> = monitor["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["issue", "issue", "rotate"], "{monitor}");
    assert_eq!(monitor["unexpected"], json!([]));

    // Alice's monitor sees only her own key.
    let expect = dir.join("alice-keys");
    write_expected_keys(&expect, &[(ALICE, &alice1.key.verifying_key())]);
    alice.monitor(&server.base, &[ALICE], &expect).0.code(0);

    // 8. The admin enables Charlie again; a new device enrolls; the revoked one stays
    //    revoked.
    let run = server.admin_cli(&token_file, &["enable", CHARLIE]);
    run.ok();
    let token = admin_enroll(&server, &token_file, &[CHARLIE]).remove(0);
    let charlie2 = enroll_device(&charlie, &server, &dir, "charlie2", CHARLIE, &token);
    audit_passes(&auditor, &server, 8);
    alice
        .validate(
            &server.base,
            CHARLIE,
            &key_b64(&charlie2.key.verifying_key()),
        )
        .0
        .code(0);
    let (run, credential) = charlie.credential(&server.base, &charlie1.cert);
    run.code(1);
    assert_eq!(credential["state"], json!("revoked"));
    let expect = dir.join("charlie-keys");
    write_expected_keys(
        &expect,
        &[
            (CHARLIE, &charlie1.key.verifying_key()),
            (CHARLIE, &charlie2.key.verifying_key()),
        ],
    );
    let (run, monitor) = charlie.monitor(&server.base, &[CHARLIE], &expect);
    run.code(0);
    let events: Vec<(&str, &Value)> = monitor["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["type"].as_str().unwrap(), &e["scope"]))
        .collect();
    assert_eq!(
        events,
        [
            ("issue", &Value::Null),
            ("revoke", &json!("identity")),
            ("enable", &Value::Null),
            ("issue", &Value::Null)
        ],
        "{monitor}"
    );

    // Every party's saved checkpoint is the latest, and they all agree.
    for party in [&alice, &bob, &charlie] {
        party.checkpoint_fetch(&server.base).0.code(0);
        assert_eq!(party.saved_size(), Some(1 + 2 * 8));
        let (run, compare) = auditor.compare(&auditor.state, &party.state);
        run.code(0);
        assert_eq!(compare["consistent"], json!(true));
    }
}

/// The `credential` command line for `party` (human output).
fn credential_args(party: &Verifier, server: &Server, cert: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["credential".into()];
    args.extend(party.online_args(&server.base));
    args.extend(["--ca".into(), party.trust.ca.clone().into(), cert.into()]);
    args
}

/// Fetches entry `index`, its inclusion proof and the checkpoint from the server and checks
/// them with the offline commands `checkpoint verify` and `inclusion verify`.
fn check_inclusion_offline(server: &Server, party: &Verifier, dir: &TestDir, index: u64) {
    let checkpoint = server.get("/log/checkpoint");
    assert_eq!(checkpoint.status, 200);
    let size = test_support::server::log_verifier(&server.data);
    let size = kt_log::checkpoint::open_checkpoint(&checkpoint.body, &size)
        .unwrap()
        .size();
    let cp_file = dir.join("checkpoint");
    std::fs::write(&cp_file, &checkpoint.body).unwrap();
    let entry = expect_status(&server.get(&format!("/v1/log/entries/{index}")), 200);
    let entry_file = dir.join("entry");
    std::fs::write(
        &entry_file,
        B64.decode(entry["entry"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let proof = server.get(&format!(
        "/v1/log/proof/inclusion?index={index}&size={size}"
    ));
    assert_eq!(proof.status, 200);
    let proof_file = dir.join("proof.json");
    std::fs::write(&proof_file, &proof.body).unwrap();

    let key: OsString = party.trust.log_key.clone().into();
    let (run, out) = party.json(
        "checkpoint verify",
        vec!["--log-key".into(), key.clone(), cp_file.clone().into()],
    );
    run.code(0);
    assert_eq!(out["size"], json!(size));
    let (run, out) = party.json(
        "inclusion verify",
        vec![
            "--log-key".into(),
            key,
            "--checkpoint".into(),
            cp_file.into(),
            "--entry".into(),
            entry_file.into(),
            "--proof".into(),
            proof_file.into(),
        ],
    );
    run.code(0);
    assert_eq!(out["index"], json!(index));
}
