//! The schemas the harness validates with (`schemas/verifier-cli-output.schema.json`,
//! `schemas/fork-evidence.schema.json`) cover every command, and catch drift: hand-written
//! outputs of the documented shape pass, and each kind of mistake a change to verifier-cli
//! could make (a field added, renamed or dropped, a status that disagrees with the exit code,
//! a result and an error mixed, evidence where there is no fork) fails. The real outputs are
//! validated by the harness in every other test.

use e2e_tests::{output_reference, COMMANDS, STATUSES};
use serde_json::{json, Value};
use test_support::schemas::schemas;

const OUTPUT: &str = "verifier-cli-output.schema.json";
const HASH: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
const KEY: &str = "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik=";
const SERIAL: &str = "5f0c2b9e4d7a13f08c6e21b5a94d0e7f";
const HASH_HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn valid(reference: &str, value: &Value) {
    schemas().check(reference, value);
}

#[track_caller]
fn invalid(reference: &str, value: &Value, why: &str) {
    assert!(
        !schemas().errors(reference, value).is_empty(),
        "{why}: accepted by {reference}:\n{value:#}"
    );
}

/// Checks `value` under its command's schema and the whole output schema.
#[track_caller]
fn output_ok(value: &Value) {
    let command = value["command"].as_str().unwrap();
    valid(&output_reference(command), value);
    valid(OUTPUT, value);
}

#[track_caller]
fn output_bad(value: &Value, why: &str) {
    let command = value["command"].as_str().unwrap();
    invalid(&output_reference(command), value, why);
    invalid(OUTPUT, value, why);
}

fn with(value: &Value, changes: Value) -> Value {
    let mut v = value.clone();
    for (k, x) in changes.as_object().unwrap() {
        if x == &json!("__remove__") {
            v.as_object_mut().unwrap().remove(k);
        } else {
            v[k] = x.clone();
        }
    }
    v
}

fn common(command: &str, code: i32) -> Value {
    let status = STATUSES[code as usize];
    json!({"command": command, "ok": code == 0, "status": status, "exit_code": code})
}

fn merge(a: Value, b: Value) -> Value {
    let mut a = a;
    a.as_object_mut()
        .unwrap()
        .extend(b.as_object().unwrap().clone());
    a
}

fn credential_summary() -> Value {
    json!({"identity": "alice@example.com", "serial": SERIAL, "public_key": KEY,
           "not_before": 1, "not_after": 2})
}

#[test]
fn every_command_has_a_schema_and_the_discriminator_lists_them_all() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../schemas/verifier-cli-output.schema.json"),
    )
    .unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    let names: Vec<Value> = COMMANDS.iter().map(|c| json!(c)).collect();
    assert_eq!(
        schema["$defs"]["common"]["properties"]["command"]["enum"],
        json!(names)
    );
    let branches: Vec<Value> = COMMANDS
        .iter()
        .map(|c| json!({"$ref": format!("#/$defs/{}", c.replace(' ', "_"))}))
        .collect();
    assert_eq!(schema["oneOf"], json!(branches));
    for command in COMMANDS {
        let def = &schema["$defs"][command.replace(' ', "_")];
        assert_eq!(def["properties"]["command"]["const"], json!(command));
        // Every command can fail with an error object.
        let mut error = common(command, 3);
        error["error"] = json!("network: connection refused");
        output_ok(&error);
        // …but not one that says exit 0, or a status of another code.
        output_bad(
            &with(&error, json!({"exit_code": 0, "ok": true, "status": "ok"})),
            "error with exit 0",
        );
        output_bad(
            &with(&error, json!({"status": "usage_error"})),
            "status ≠ exit code",
        );
        output_bad(&with(&error, json!({"surprise": 1})), "unknown field");
        output_bad(
            &with(&error, json!({"evidence": "/tmp/x"})),
            "evidence without a fork",
        );
    }
    // The command name is the discriminator.
    let mut error = common("audit", 3);
    error["error"] = json!("x");
    error["command"] = json!("audits");
    invalid(OUTPUT, &error, "unknown command");
}

#[test]
fn forks_carry_evidence_only_where_a_fork_can_be_detected() {
    let mut fork = common("audit", 4);
    fork["error"] = json!("FORK DETECTED: …");
    fork["evidence"] = json!("/state/fork-localhost%2Fkt-as-2-5-1795000000.json");
    output_ok(&fork);
    output_bad(
        &with(&fork, json!({"evidence": "__remove__"})),
        "fork without evidence",
    );
    // Offline commands compare nothing with saved state.
    output_bad(
        &with(&fork, json!({"command": "checkpoint verify"})),
        "offline fork",
    );
    // fork verify's own exit 4 is a result, not an error.
    let proven = merge(
        common("fork verify", 4),
        json!({"fork": true, "reason": "two different roots signed for size 2", "origin": "localhost/kt-as",
               "older_size": 2, "newer_size": 2, "witnesses_cosigned_both": ["A"]}),
    );
    output_ok(&proven);
    output_bad(
        &with(&proven, json!({"evidence": "/x"})),
        "fork verify with evidence",
    );
    output_bad(&with(&proven, json!({"fork": false})), "fork false");
    output_bad(
        &merge(
            common("fork verify", 0),
            json!({"fork": true, "reason": "r",
        "origin": "o", "older_size": 1, "newer_size": 2, "witnesses_cosigned_both": []}),
        ),
        "fork verify exit 0",
    );
}

#[test]
fn results_are_closed_and_their_fields_agree_with_the_exit_code() {
    let checkpoint = json!({"origin": "localhost/kt-as", "size": 5, "root": HASH});
    let fetch = merge(
        merge(common("checkpoint fetch", 0), checkpoint.clone()),
        json!({"consistency": "extended", "previous_size": 3}),
    );
    output_ok(&fetch);
    output_ok(&with(
        &fetch,
        json!({"consistency": "first", "previous_size": null}),
    ));
    output_bad(
        &with(&fetch, json!({"previous_size": null})),
        "extended without previous_size",
    );
    output_bad(
        &with(&fetch, json!({"consistency": "first"})),
        "first with previous_size",
    );
    output_bad(&with(&fetch, json!({"root": "AAAA"})), "root not a hash");
    output_bad(&with(&fetch, json!({"size": "__remove__"})), "missing size");
    output_bad(&with(&fetch, json!({"sizes": 5})), "extra field");
    output_bad(&with(&fetch, json!({"error": "x"})), "result and error");

    let audit = merge(
        merge(common("audit", 0), checkpoint.clone()),
        json!({"consistency": "first", "previous_size": null, "resumed_from": 0,
               "entries_checked": 5, "elapsed_ms": 12, "entries_per_second": 416,
               "labels": 2, "problem_count": 0, "problems": []}),
    );
    output_ok(&audit);
    output_bad(
        &with(&audit, json!({"labels": "two"})),
        "labels not a number",
    );
    output_bad(
        &with(&audit, json!({"certificate_checks": true})),
        "a field of the plaintext log's audit",
    );
    let failed = with(
        &merge(audit.clone(), common("audit", 1)),
        json!({"problem_count": 1, "problems": [{"index": 3, "problem": "serial 0a issued twice"}]}),
    );
    output_ok(&failed);
    output_bad(
        &with(&failed, json!({"exit_code": 0, "ok": true, "status": "ok"})),
        "problems with exit 0",
    );

    let found = merge(
        merge(
            common("lookup", 0),
            json!({"consistency": "unchanged", "previous_size": null}),
        ),
        json!({"identity": "alice@example.com", "found": true, "identity_status": "active",
               "version": 3, "checkpoint": checkpoint, "credentials": [credential_summary()]}),
    );
    output_ok(&found);
    output_bad(
        &with(&found, json!({"status": "active"})),
        "identity status in `status`",
    );
    output_bad(
        &with(&found, json!({"identity_status": "__remove__"})),
        "no identity_status",
    );
    let mut extra = credential_summary();
    extra["log_index"] = json!(4);
    output_bad(
        &with(&found, json!({"credentials": [extra]})),
        "a credential with a log index",
    );
    output_bad(&with(&found, json!({"version": 0})), "version 0");
    output_bad(
        &with(&found, json!({"identity_status": "pending"})),
        "unknown status",
    );
    let not_found = merge(
        common("lookup", 1),
        json!({"identity": "nobody@example.com", "found": false, "identity_status": null,
               "version": null, "checkpoint": checkpoint, "consistency": "unchanged",
               "previous_size": null, "credentials": []}),
    );
    output_ok(&not_found);
    output_bad(
        &with(
            &not_found,
            json!({"exit_code": 0, "ok": true, "status": "ok"}),
        ),
        "not found, exit 0",
    );

    let invalid_key = merge(
        common("validate", 1),
        json!({"identity": "nobody@example.com", "public_key": KEY, "valid": false,
               "reason": "identity is not enrolled", "credential": null, "proof": null,
               "consistency": "extended", "previous_size": 3}),
    );
    output_ok(&invalid_key);
    output_bad(
        &with(
            &invalid_key,
            json!({"consistency": "__remove__", "previous_size": "__remove__"}),
        ),
        "validate without consistency",
    );

    let event = json!({"identity": "alice@example.com", "version": 4, "time": 9, "type": "revoke",
        "public_key": null, "expected": null, "current_serials": [], "serials": [SERIAL],
        "scope": "credential", "reason": "keyCompromise", "admin": "ops"});
    let monitor = merge(
        merge(common("monitor", 0), checkpoint),
        json!({"consistency": "first", "previous_size": null, "identities": ["alice@example.com"],
               "events": [event.clone()], "unexpected": [], "bytes_fetched": 1800}),
    );
    output_ok(&monitor);
    let mut wrong = event.clone();
    wrong["public_key"] = json!(KEY);
    output_bad(
        &with(&monitor, json!({"events": [wrong]})),
        "revoke event with a key",
    );
    let issued = json!({"identity": "alice@example.com", "version": 5, "time": 9, "type": "issue",
        "serial": SERIAL, "enrollment": HASH_HEX, "public_key": KEY, "expected": false,
        "current_serials": [SERIAL]});
    output_bad(
        &with(&monitor, json!({"unexpected": [issued]})),
        "an unexpected key with exit 0",
    );
}

#[test]
fn fork_evidence_files_are_closed() {
    let note = format!("localhost/kt-as\n2\n{HASH}\n\n— localhost/kt-as AAAAAAAA\n");
    let side = json!({"size": 2, "root": HASH, "checkpoint": note});
    let evidence = json!({"kt_fork_evidence": 1, "origin": "localhost/kt-as",
        "reason": "two different roots for size 2", "detected_at": 1795000000,
        "server": null, "older": side, "newer": side, "proof": []});
    valid("fork-evidence.schema.json", &evidence);
    valid(
        "fork-evidence.schema.json",
        &with(
            &evidence,
            json!({"server": "https://127.0.0.1:8443", "proof": [HASH]}),
        ),
    );
    for (change, why) in [
        (json!({"kt_fork_evidence": 2}), "version 2"),
        (json!({"server": "__remove__"}), "server missing"),
        (json!({"extra": true}), "unknown field"),
        (json!({"proof": ["AAAA"]}), "proof not hashes"),
        (
            json!({"older": {"size": 2, "root": HASH}}),
            "side without its note",
        ),
    ] {
        invalid("fork-evidence.schema.json", &with(&evidence, change), why);
    }
}
