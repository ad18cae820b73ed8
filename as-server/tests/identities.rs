//! The identity rules as a client meets them: confusable names and non-mailboxes are refused at
//! enrollment (422 `bad-identity`), the operator's policy decides punycode and `+`
//! sub-addresses, names outside the logged syntax are refused everywhere, and a lookup does not
//! reveal an enrollment that nothing was logged for. A lookup answers in the form the client
//! asks for (JSON or binary).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{assert_problem, Server};
use kt_protocol::api::{IdentityProof, IDENTITY_PROOF_MEDIA_TYPE};
use serde_json::json;
use test_support::requests::new_key;
use test_support::schemas::Schemas;

fn enroll_one(server: &Server, identity: &str) -> as_server::admin_client::Answer {
    server.admin_post(
        "/v1/admin/enrollments",
        &json!({ "identities": [identity] }),
    )
}

#[test]
fn confusable_names_are_refused_and_the_policy_decides_the_rest() {
    let server = Server::start();
    let schemas = Schemas::load();
    for bad in [
        "..@example.com",
        ".alice@example.com",
        "alice.@example.com",
        "a..lice@example.com",
        "alice@1.2",
        "alice@ab--cd.example",
        // Punycode: refused by default (a Cyrillic homograph of apple.com).
        "alice@xn--80ak6aa92e.com",
    ] {
        assert_problem(&enroll_one(&server, bad), 422, "bad-identity", &schemas);
        // They follow the syntax of logged names (which an earlier server may have enrolled),
        // so a lookup is answered: a proof that nothing of them is in this log.
        assert!(server.lookup(bad).state.is_none(), "{bad}");
    }
    // Outside the syntax of logged names: refused everywhere.
    for bad in ["Alice@example.com", "alice@example", "al ice@example.com"] {
        assert_problem(&enroll_one(&server, bad), 422, "bad-identity", &schemas);
        assert_problem(
            &server.get(&format!("/v1/identities/{}", bad.replace(' ', "%20"))),
            422,
            "bad-identity",
            &schemas,
        );
    }
    // Sub-addresses are enrolled by default.
    assert_eq!(enroll_one(&server, "alice+work@example.com").status, 201);
    assert_eq!(server.changes(), 0);
    drop(server);

    let permissive = Server::start_with(&["--allow-punycode", "true"]);
    assert_eq!(
        enroll_one(&permissive, "alice@xn--80ak6aa92e.com").status,
        201
    );
    drop(permissive);

    let strict = Server::start_with(&["--allow-subaddress", "false"]);
    assert_problem(
        &enroll_one(&strict, "alice+work@example.com"),
        422,
        "bad-identity",
        &schemas,
    );
    assert_eq!(enroll_one(&strict, "alice@example.com").status, 201);
}

#[test]
fn a_lookup_answers_in_binary_to_a_client_that_prefers_it_and_in_json_otherwise() {
    let server = Server::start();
    let token = server.enroll(&["alice@example.com"]).remove(0);
    assert_eq!(
        server.issue("alice@example.com", &token, &new_key()).status,
        201
    );
    let get = |identity: &str, accept: &str| {
        server
            .client
            .get_accepting(&format!("/v1/identities/{identity}"), accept)
            .unwrap()
    };
    for identity in ["alice@example.com", "nobody@example.com"] {
        let json = server.get(&format!("/v1/identities/{identity}"));
        assert_eq!(json.content_type, "application/json");
        let proof: IdentityProof = serde_json::from_slice(&json.body).unwrap();
        for accept in [
            IDENTITY_PROOF_MEDIA_TYPE,
            "application/json;q=0.5, application/vnd.kt.identity-proof",
            "application/vnd.kt.identity-proof, */*",
        ] {
            let binary = get(identity, accept);
            assert_eq!(binary.status, 200, "{accept}");
            assert_eq!(binary.content_type, IDENTITY_PROOF_MEDIA_TYPE, "{accept}");
            // Nothing was logged in between: the same proof, smaller.
            assert_eq!(IdentityProof::from_binary(&binary.body).unwrap(), proof);
            assert!(binary.body.len() < json.body.len(), "{accept}");
        }
        for accept in [
            "application/json",
            "*/*",
            "application/vnd.kt.identity-proof;q=0, application/json",
            "application/vnd.kt.identity-proof;q=0.4, application/json",
            "not a media type",
        ] {
            let answer = get(identity, accept);
            assert_eq!(answer.content_type, "application/json", "{accept}");
            assert_eq!(answer.body, json.body, "{accept}");
        }
    }
    let verified = server.verify_directory(
        &serde_json::to_value(
            IdentityProof::from_binary(&get("alice@example.com", IDENTITY_PROOF_MEDIA_TYPE).body)
                .unwrap(),
        )
        .unwrap(),
    );
    assert_eq!(verified.state.unwrap().record.credentials.len(), 1);
}

#[test]
fn a_pending_enrollment_looks_like_no_enrollment() {
    let server = Server::start();
    let tokens = server.enroll(&["pending@example.com", "used@example.com"]);
    let never = server.get("/v1/identities/never@example.com");
    let pending = server.get("/v1/identities/pending@example.com");
    assert_eq!((never.status, pending.status), (200, 200));
    // The same answer: a proof of absence in the same checkpoint and map, no state. (The
    // labels, and so the VRF and map proofs, differ by name, as for any two names.)
    let (never, pending) = (never.json(), pending.json());
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&never), keys(&pending));
    for field in ["checkpoint", "map_entry", "map_entry_proof"] {
        assert_eq!(never[field], pending[field], "{field}");
    }
    assert!(server.verify_directory(&never).state.is_none());
    assert!(
        server.verify_directory(&pending).state.is_none(),
        "an enrolled but never used identity must answer as a never enrolled one"
    );
    // Once something is logged, the identity is public.
    let issued = server.issue("used@example.com", &tokens[1], &new_key());
    assert_eq!(issued.status, 201);
    let used = server.lookup("used@example.com").state.unwrap();
    assert_eq!(used.record.credentials.len(), 1);
    // An admin revocation of a pending identity is logged, and so makes it public.
    let revoked = server.admin_post(
        "/v1/admin/identities/pending@example.com/revoke",
        &json!({}),
    );
    assert_eq!(
        revoked.status,
        200,
        "{}",
        String::from_utf8_lossy(&revoked.body)
    );
    let after = server.lookup("pending@example.com").state.unwrap();
    assert_eq!(
        after.record.status,
        kt_protocol::directory::record::Status::Revoked
    );
}
