//! verifier-cli's online commands against the real server (issue 4): `checkpoint fetch`,
//! `lookup`, `validate`, `credential` (current, revoked, superseded, not enrolled, foreign
//! CA), `audit` and `monitor` over a log of more than one tile (300 identities bulk-enrolled
//! with `as-server admin enroll --file`, credentials issued over HTTPS), the offline proof
//! commands on the server's own proofs, TLS trust and network errors. Every `--json` output
//! is parsed and checked for its documented fields (harness).

use std::ffi::OsString;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use e2e_tests::{
    expect_status, write_certificate, write_expected_keys, Server, TestDir, Trust, Verifier,
};
use ed25519_dalek::SigningKey;
use kt_log::checkpoint::open_checkpoint;
use kt_log::Hash;
use serde_json::{json, Value};
use test_support::requests::{key_b64, new_key};
use test_support::server::log_verifier;

const BULK: usize = 300;
const DAVE: &str = "dave@example.com";
const ERIN: &str = "erin@example.com";
const FRANK: &str = "frank@example.com";
/// Every character class the identity rules allow, in the URL path of every call.
const GRACE: &str = "grace.o+mls_test-1@sub.ex-ample.co";

/// `as-server admin enroll --file FILE EXTRA…`: identity → token.
fn bulk_enroll(
    server: &Server,
    token_file: &Path,
    file: &Path,
    extra: &[&str],
) -> Vec<(String, String)> {
    let mut args = vec!["enroll", "--file", file.to_str().unwrap(), "--ttl", "3600"];
    args.extend_from_slice(extra);
    let answer = server.admin_cli(token_file, &args).ok();
    answer["enrollments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["identity"].as_str().unwrap().to_owned(),
                e["token"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Issues one credential per (identity, token) over HTTPS from a few threads.
fn issue_all(server: &Server, work: Vec<(String, String)>) {
    let threads = 6;
    let chunk = work.len().div_ceil(threads);
    let handles: Vec<_> = work
        .chunks(chunk)
        .map(|part| {
            let part = part.to_vec();
            let http = server.client.clone();
            std::thread::spawn(move || {
                for (identity, token) in part {
                    let body = test_support::requests::issue_request(&identity, &token, &new_key());
                    let answer = http
                        .post("/v1/credentials", body.to_string().as_bytes(), None)
                        .unwrap();
                    expect_status(&answer, 201);
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
}

fn proof_hashes(proof: &Value) -> Vec<Hash> {
    proof
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_slice(&B64.decode(h.as_str().unwrap()).unwrap()).unwrap())
        .collect()
}

fn issue_one(server: &Server, identity: &str, token: &str) -> (SigningKey, Value) {
    let key = new_key();
    let credential = server.issue(identity, token, &key);
    (key, credential)
}

#[test]
fn online_commands_on_a_log_of_more_than_one_tile() {
    let dir = TestDir::new();
    let mut server = Server::start(&dir.join("as-data"), None, &[]);
    let trust = Trust::copy_from(&server.data, &dir.join("trust"));
    let token_file = dir.join("admin-token");
    std::fs::write(&token_file, &server.admin_token).unwrap();
    let client = Verifier::new(&trust, &dir.join("client"));
    let auditor = Verifier::new(&trust, &dir.join("auditor"));
    let base = server.base.clone();

    // checkpoint fetch: first sight of an empty directory (the empty map's entry).
    let (run, fetched) = client.checkpoint_fetch(&base);
    run.code(0);
    assert_eq!(fetched["consistency"], json!("first"));
    assert_eq!(fetched["previous_size"], Value::Null);
    assert_eq!(fetched["size"], json!(1));

    // 300 identities from a file, plus three named ones, in one admin call.
    let list = dir.join("identities.txt");
    let bulk: Vec<String> = (0..BULK).map(|i| format!("user{i}@bulk.example")).collect();
    std::fs::write(&list, bulk.join("\n")).unwrap();
    let enrolled = bulk_enroll(&server, &token_file, &list, &[DAVE, ERIN, FRANK, GRACE]);
    assert_eq!(enrolled.len(), BULK + 4);
    let token = |who: &str| {
        enrolled
            .iter()
            .find(|(i, _)| i == who)
            .map(|(_, t)| t.clone())
            .unwrap()
    };
    let (dave, dave_cred) = issue_one(&server, DAVE, &token(DAVE));
    let (erin, erin_cred) = issue_one(&server, ERIN, &token(ERIN));
    let (frank, frank_cred) = issue_one(&server, FRANK, &token(FRANK));
    let (grace, _) = issue_one(&server, GRACE, &token(GRACE));
    issue_all(
        &server,
        enrolled
            .iter()
            .filter(|(i, _)| i.ends_with("@bulk.example"))
            .cloned()
            .collect(),
    );
    // Every change is an update, and every batch ends with a map entry.
    let size = server.checkpoint().size();
    assert!(size > (BULK + 4) as u64, "{size}");

    // checkpoint fetch: extended, then unchanged; the old one kept for `consistency verify`.
    let old_checkpoint = dir.join("checkpoint-0");
    std::fs::write(
        &old_checkpoint,
        dave_cred["directory"]["checkpoint"].as_str().unwrap(),
    )
    .unwrap();
    let (run, fetched) = client.checkpoint_fetch(&base);
    run.code(0);
    assert_eq!(fetched["consistency"], json!("extended"));
    assert_eq!(fetched["previous_size"], json!(1));
    assert_eq!(fetched["size"], json!(size));
    let (run, fetched) = client.checkpoint_fetch(&base);
    run.code(0);
    assert_eq!(fetched["consistency"], json!("unchanged"));

    // The first audit crosses a tile boundary (256 entries).
    let (run, audit) = auditor.audit(&base);
    run.code(0);
    assert_eq!(audit["size"], json!(size));
    assert_eq!(audit["entries_checked"], json!(size));
    assert_eq!(audit["problem_count"], json!(0));
    assert_eq!(audit["problems"], json!([]));

    // Erin's credential is revoked, Frank rotates.
    let revoked = server
        .admin_cli(
            &token_file,
            &[
                "revoke-credential",
                erin_cred["serial"].as_str().unwrap(),
                "--reason",
                "keyCompromise",
            ],
        )
        .ok();
    assert_eq!(revoked["revoked"], json!([erin_cred["serial"]]));
    let frank_new = new_key();
    let answer = server.rotate(
        FRANK,
        frank_cred["serial"].as_str().unwrap(),
        &frank,
        &frank_new,
    );
    let frank_rotated = expect_status(&answer, 201);
    // Each of the two changes alone in its batch: an update and a map entry.
    let size = size + 4;
    assert_eq!(server.checkpoint().size(), size);

    // credential: current, revoked, superseded, rotated-in, not enrolled, foreign CA.
    let cert = |name: &str, credential: &Value| {
        let path = dir.join(name);
        write_certificate(credential, &path);
        path
    };
    let (run, out) = client.credential(&base, &cert("dave.pem", &dave_cred));
    run.code(0);
    assert_eq!(out["state"], json!("current"));
    assert_eq!(out["version"], json!(1));
    assert_eq!(out["serial"], dave_cred["serial"]);
    assert_eq!(out["public_key"], json!(key_b64(&dave.verifying_key())));
    assert_eq!(out["checkpoint"]["size"], json!(size));
    assert_eq!(out["consistency"], json!("extended"));
    assert_eq!(out["previous_size"], json!(size - 4));
    assert_eq!(out["crl"]["revoked_count"], json!(1), "{out}");
    let (run, out) = client.credential(&base, &cert("erin.pem", &erin_cred));
    run.code(1);
    assert_eq!(out["state"], json!("revoked"));
    let (run, out) = client.credential(&base, &cert("frank-old.pem", &frank_cred));
    run.code(1);
    assert_eq!(out["state"], json!("not_current"));
    let (run, out) = client.credential(&base, &cert("frank-new.pem", &frank_rotated));
    run.code(0);
    assert_eq!(out["state"], json!("current"));
    assert_eq!(out["version"], json!(2));
    // A CA-signed certificate for an identity the server never enrolled (a CA key used
    // outside the service): not in the log.
    let ca = as_server::ca::Ca::load(
        &std::fs::read_to_string(server.data.join("ca-key.pem")).unwrap(),
        &std::fs::read_to_string(server.data.join("ca-cert.pem")).unwrap(),
    )
    .unwrap();
    let now = as_server::unix_now();
    let serial = as_server::ca::random_serial().unwrap();
    let der = ca
        .issue(
            "nobody@example.com",
            &new_key().verifying_key(),
            &serial,
            now,
            now + 3600,
        )
        .unwrap();
    let nobody = dir.join("nobody.pem");
    std::fs::write(&nobody, e2e_tests::cert_pem(&der)).unwrap();
    let (run, out) = client.credential(&base, &nobody);
    run.code(1);
    assert_eq!(out["state"], json!("not_enrolled"));
    // A certificate from another CA is refused before anything is fetched.
    let other = as_server::ca::Ca::generate("Other CA", now, 3600).unwrap();
    let der = other
        .issue(DAVE, &dave.verifying_key(), &serial, now, now + 3600)
        .unwrap();
    let foreign = dir.join("foreign.pem");
    std::fs::write(&foreign, e2e_tests::cert_pem(&der)).unwrap();
    let (run, out) = client.credential(&base, &foreign);
    run.code(1);
    assert!(out["error"].is_string(), "{out}");

    // lookup.
    let (run, out) = client.lookup(&base, DAVE);
    run.code(0);
    assert_eq!(out["found"], json!(true));
    assert_eq!(out["identity_status"], json!("active"));
    assert_eq!(out["checkpoint"]["size"], json!(size));
    assert_eq!(out["consistency"], json!("unchanged"));
    let credentials = out["credentials"].as_array().unwrap();
    assert_eq!(credentials.len(), 1);
    assert_eq!(out["version"], json!(1));
    for field in [
        "identity",
        "serial",
        "public_key",
        "not_before",
        "not_after",
    ] {
        assert!(credentials[0].get(field).is_some(), "lookup lacks {field}");
    }
    assert_eq!(credentials[0]["serial"], dave_cred["serial"]);
    let (run, out) = client.lookup(&base, FRANK);
    run.code(0);
    let credentials = out["credentials"].as_array().unwrap();
    assert_eq!(
        credentials.len(),
        1,
        "only the rotated-in credential is current"
    );
    assert_eq!(credentials[0]["serial"], frank_rotated["serial"]);
    assert_eq!(out["version"], json!(2));
    let (run, out) = client.lookup(&base, ERIN);
    run.code(0);
    assert_eq!(out["identity_status"], json!("active"));
    assert_eq!(out["credentials"], json!([]));
    let (run, out) = client.lookup(&base, "nobody@example.com");
    run.code(1);
    assert_eq!(out["found"], json!(false));
    client.lookup(&base, "Not An Identity").0.code(2);
    let (run, out) = client.lookup(&base, GRACE);
    run.code(0);
    assert_eq!(out["credentials"][0]["identity"], json!(GRACE));

    // validate, with a proof that checks out independently.
    let (run, out) = client.validate(&base, DAVE, &key_b64(&dave.verifying_key()));
    run.code(0);
    assert_eq!(out["valid"], json!(true));
    assert_eq!(out["credential"]["serial"], dave_cred["serial"]);
    assert_eq!(out["crl"]["revoked_count"], json!(1));
    for field in ["this_update", "next_update"] {
        assert!(out["crl"][field].is_u64(), "{out}");
    }
    // The proof is the identity proof: kept, it re-verifies offline with `lookup verify`.
    let proof_file = dir.join("dave-proof.json");
    std::fs::write(&proof_file, out["proof"].to_string()).unwrap();
    let mut args = vec!["verify".into(), proof_file.clone().into()];
    args.extend(["--log-key".into(), trust.log_key.clone().into()]);
    args.extend(["--ca".into(), trust.ca.clone().into()]);
    let (run, again) = client.json("lookup", args);
    run.code(0);
    assert_eq!(again["credentials"][0]["serial"], dave_cred["serial"]);
    let checkpoint = open_checkpoint(
        out["proof"]["checkpoint"].as_str().unwrap().as_bytes(),
        &log_verifier(&server.data),
    )
    .unwrap();
    checkpoint
        .verify_inclusion(
            checkpoint.size() - 1,
            &B64.decode(out["proof"]["map_entry"].as_str().unwrap())
                .unwrap(),
            &proof_hashes(&out["proof"]["map_entry_proof"]),
        )
        .unwrap();
    for (who, key) in [(ERIN, &erin), (FRANK, &frank)] {
        let (run, out) = client.validate(&base, who, &key_b64(&key.verifying_key()));
        run.code(1);
        assert_eq!(out["valid"], json!(false));
        assert!(out["reason"].is_string());
    }
    client
        .validate(&base, FRANK, &key_b64(&frank_new.verifying_key()))
        .0
        .code(0);
    client
        .validate(&base, GRACE, &key_b64(&grace.verifying_key()))
        .0
        .code(0);
    client.validate(&base, DAVE, "not base64").0.code(2);
    // An identity the server does not know: exit 1, proven absent in the checkpoint.
    let (run, out) = client.validate(&base, "nobody@example.com", &key_b64(&dave.verifying_key()));
    run.code(1);
    assert_eq!(out["reason"], json!("identity is not enrolled"), "{out}");
    assert_eq!(out["consistency"], json!("unchanged"), "{out}");

    // The log grows past the partial tile; the auditor resumes where it stopped.
    let more: Vec<String> = (0..10).map(|i| format!("late{i}@bulk.example")).collect();
    let refs: Vec<&str> = more.iter().map(String::as_str).collect();
    let tokens = server.enroll(&refs);
    issue_all(&server, more.into_iter().zip(tokens).collect());
    let before = size;
    let size = server.checkpoint().size();
    assert!(size > before + 10);
    let (run, audit) = auditor.audit(&base);
    run.code(0);
    assert_eq!(audit["size"], json!(size));
    assert_eq!(audit["previous_size"], json!(before - 4));
    assert_eq!(audit["consistency"], json!("extended"));
    assert_eq!(
        audit["entries_checked"],
        json!(size - before + 4),
        "{audit}"
    );
    assert_eq!(audit["problem_count"], json!(0));
    let (run, audit) = auditor.audit(&base);
    run.code(0);
    assert_eq!(audit["consistency"], json!("unchanged"));
    assert_eq!(audit["entries_checked"], json!(0));

    // monitor over the whole log.
    let expect = dir.join("keys");
    write_expected_keys(
        &expect,
        &[
            (DAVE, &dave.verifying_key()),
            (FRANK, &frank.verifying_key()),
            (FRANK, &frank_new.verifying_key()),
        ],
    );
    let (run, out) = client.monitor(&base, &[DAVE, FRANK], &expect);
    run.code(0);
    assert_eq!(out["size"], json!(size));
    assert_eq!(out["events"].as_array().unwrap().len(), 3, "{out}");
    write_expected_keys(&expect, &[(GRACE, &grace.verifying_key())]);
    let (run, out) = client.monitor(&base, &[GRACE], &expect);
    run.code(0);
    assert_eq!(out["events"].as_array().unwrap().len(), 1, "{out}");
    // An owner who expects only Frank's first key (a first run: every version is new).
    write_expected_keys(&expect, &[(FRANK, &frank.verifying_key())]);
    let (run, out) =
        Verifier::new(&trust, &dir.join("frank-owner")).monitor(&base, &[FRANK], &expect);
    run.code(1);
    assert_eq!(out["unexpected"][0]["version"], json!(2));
    assert_eq!(out["unexpected"][0]["serial"], frank_rotated["serial"]);

    // The offline commands on the server's own checkpoints and proofs.
    let new_checkpoint = dir.join("checkpoint-new");
    std::fs::write(&new_checkpoint, server.get("/log/checkpoint").body).unwrap();
    let old_size = open_checkpoint(
        &std::fs::read(&old_checkpoint).unwrap(),
        &log_verifier(&server.data),
    )
    .unwrap()
    .size();
    let proof = dir.join("consistency.json");
    std::fs::write(
        &proof,
        server
            .get(&format!(
                "/v1/log/proof/consistency?from={old_size}&to={size}"
            ))
            .body,
    )
    .unwrap();
    let key: OsString = trust.log_key.clone().into();
    let (run, out) = client.json(
        "consistency verify",
        vec![
            "--log-key".into(),
            key.clone(),
            "--old".into(),
            old_checkpoint.clone().into(),
            "--new".into(),
            new_checkpoint.clone().into(),
            "--proof".into(),
            proof.into(),
        ],
    );
    run.code(0);
    assert_eq!(out["old_size"], json!(old_size));
    assert_eq!(out["new_size"], json!(size));

    // The admin CLI's paths carry such identities too.
    let revoked = server
        .admin_cli(&token_file, &["revoke-identity", GRACE])
        .ok();
    assert_eq!(revoked["identity"], json!(GRACE));
    let (run, out) = client.validate(&base, GRACE, &key_b64(&grace.verifying_key()));
    run.code(1);
    assert_eq!(out["reason"], json!("identity is revoked"), "{out}");

    // TLS: the server's self-signed certificate is not trusted by default (exit 3);
    // --insecure-skip-tls-verify connects, and the log key still protects the result.
    let mut args: Vec<OsString> = vec!["--json".into(), "checkpoint".into(), "fetch".into()];
    args.extend([
        "--log-key".into(),
        key.clone(),
        "--server".into(),
        base.clone().into(),
        "--state".into(),
        dir.join("tls-state").into(),
    ]);
    let run = Verifier::raw(&args);
    e2e_tests::check_json_output("checkpoint fetch", &run);
    run.code(3);
    args.push("--insecure-skip-tls-verify".into());
    let run = Verifier::raw(&args);
    e2e_tests::check_json_output("checkpoint fetch", &run);
    run.code(0);

    // A stopped server is a network error, not a verification failure.
    server.kill();
    let (run, _) = client.checkpoint_fetch(&base);
    run.code(3);
    let (run, _) = auditor.audit(&base);
    run.code(3);
    assert_eq!(auditor.saved_size(), Some(size));
}
