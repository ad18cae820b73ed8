//! The identity rules as a client meets them: confusable names and non-mailboxes are refused at
//! enrollment (422 `bad-identity`), the operator's policy decides punycode and `+`
//! sub-addresses, names outside the logged syntax are refused everywhere, and a lookup does not
//! reveal an enrollment that nothing was logged for.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{assert_problem, new_key, Schemas, Server};
use serde_json::json;

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
        // so a lookup is answered: nothing of them is in this log.
        assert_problem(
            &server.get(&format!("/v1/identities/{bad}")),
            404,
            "not-found",
            &schemas,
        );
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
    assert_eq!(server.checkpoint().size(), 0);
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
fn a_pending_enrollment_looks_like_no_enrollment() {
    let server = Server::start();
    let tokens = server.enroll(&["pending@example.com", "used@example.com"]);
    let never = server.get("/v1/identities/never@example.com");
    let pending = server.get("/v1/identities/pending@example.com");
    assert_eq!(never.status, 404);
    // The same answer but for the name in it.
    let pending_body = String::from_utf8(pending.body.clone())
        .unwrap()
        .replace("pending@example.com", "never@example.com");
    assert_eq!(
        (pending.status, pending_body.as_bytes()),
        (never.status, never.body.as_slice()),
        "an enrolled but never used identity must answer as a never enrolled one"
    );
    // Once something is logged, the identity is public.
    let issued = server.issue("used@example.com", &tokens[1], &new_key());
    assert_eq!(issued.status, 201);
    let used = server.get("/v1/identities/used@example.com");
    assert_eq!(used.status, 200);
    assert_eq!(used.json()["credentials"].as_array().unwrap().len(), 1);
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
    let after = server.get("/v1/identities/pending@example.com");
    assert_eq!(after.status, 200);
    assert_eq!(after.json()["status"], "revoked");
}
