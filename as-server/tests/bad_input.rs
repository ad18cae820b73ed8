//! Every kind of bad input gets the right 4xx problem document and changes nothing: the log
//! size and the targeted state are checked after each refusal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::{assert_problem, Server};
use ed25519_dalek::Signer as _;
use serde_json::{json, Value};
use test_support::requests::{issue_request, new_key};
use test_support::schemas::Schemas;

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let server = Server::start_with(&["--max-credentials", "2"]);
    let schemas = Schemas::load();
    let tokens = server.enroll(&[
        "alice@example.com",
        "alice@example.com",
        "alice@example.com",
        "bob@example.com",
    ]);
    let key = new_key();
    let issued = server.issue("alice@example.com", &tokens[0], &key);
    assert_eq!(issued.status, 201);
    let serial = issued.json()["serial"].as_str().unwrap().to_owned();
    let size = server.checkpoint().size();

    let good = issue_request("alice@example.com", &tokens[1], &new_key());
    let with = |field: &str, value: Value| {
        let mut request = good.clone();
        request[field] = value;
        request
    };
    let raw = |bytes: &[u8]| server.client.post("/v1/credentials", bytes, None).unwrap();
    let cases: Vec<(&str, as_server::admin_client::Answer, u16, &str)> = vec![
        ("malformed JSON", raw(b"{\"identity\": "), 400, "bad-request"),
        ("not an object", raw(b"[1,2,3]"), 400, "bad-request"),
        ("empty body", raw(b""), 400, "bad-request"),
        ("wrong type", server.post("/v1/credentials", &with("identity", json!(42))), 400, "bad-request"),
        ("unknown field", server.post("/v1/credentials", &with("extra", json!(1))), 400, "bad-request"),
        ("oversize body", raw(&vec![b' '; 70 * 1024]), 413, "payload-too-large"),
        ("bad base64 key", server.post("/v1/credentials", &with("public_key", json!("!!!"))), 400, "bad-request"),
        ("short key", server.post("/v1/credentials", &with("public_key", json!(B64.encode([1u8; 31])))), 422, "bad-key"),
        ("bad base64 signature", server.post("/v1/credentials", &with("signature", json!("%%%"))), 400, "bad-request"),
        ("signature by another key", server.post("/v1/credentials", &with("public_key", json!(B64.encode(new_key().verifying_key().as_bytes())))), 422, "bad-proof"),
        ("truncated signature", server.post("/v1/credentials", &with("signature", json!(B64.encode([0u8; 63])))), 422, "bad-proof"),
        ("token of another identity, refused before the proof", server.post("/v1/credentials", &with("identity", json!("bob@example.com"))), 403, "bad-token"),
        ("bad identity", server.post("/v1/credentials", &with("identity", json!("Alice@Example.com"))), 422, "bad-identity"),
        ("unknown token", server.post("/v1/credentials", &issue_request("alice@example.com", "nope", &new_key())), 403, "bad-token"),
        ("token of another identity", server.post("/v1/credentials", &issue_request("alice@example.com", &tokens[3], &new_key())), 403, "bad-token"),
        ("reused token", server.issue("alice@example.com", &tokens[0], &new_key()), 409, "token-used"),
        ("replayed request", server.post("/v1/credentials", &issue_request("alice@example.com", &tokens[0], &key)), 409, "token-used"),
        ("both proofs", server.post("/v1/credentials", &with("csr", json!("x"))), 400, "bad-request"),
        ("garbage CSR", server.post("/v1/credentials", &json!({"identity": "alice@example.com", "token": tokens[1], "csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"})), 422, "bad-proof"),
    ];
    // A proof made for one identity does not work for another, even with a valid token.
    let other_key = new_key();
    let mut cross = issue_request("bob@example.com", &tokens[3], &other_key);
    cross["signature"] =
        issue_request("alice@example.com", &tokens[3], &other_key)["signature"].clone();
    let cases = cases
        .into_iter()
        .chain([(
            "proof made for another identity",
            server.post("/v1/credentials", &cross),
            422,
            "bad-proof",
        )])
        .collect::<Vec<_>>();
    for (name, answer, status, code) in &cases {
        eprintln!("case: {name}");
        assert_problem(answer, *status, code, &schemas);
    }

    // Rotation refusals.
    let rotate = |body: Value| server.post("/v1/credentials/rotate", &body);
    let new = new_key();
    let public = B64.encode(new.verifying_key().as_bytes());
    let message = kt_protocol::pop::rotation_message(
        "alice@example.com",
        &kt_protocol::entry::Serial::parse_hex(&serial).unwrap(),
        &public,
    );
    let sign = |k: &ed25519_dalek::SigningKey| B64.encode(k.sign(message.as_bytes()).to_bytes());
    let rotation = json!({"identity": "alice@example.com", "serial": serial, "public_key": public,
        "signature_current": sign(&key), "signature_new": sign(&new)});
    let mut unknown = rotation.clone();
    unknown["serial"] = json!("7".repeat(32));
    assert_problem(&rotate(unknown), 404, "not-found", &schemas);
    let mut not_hex = rotation.clone();
    not_hex["serial"] = json!("XYZ");
    assert_problem(&rotate(not_hex), 404, "not-found", &schemas);
    let mut wrong_current = rotation.clone();
    wrong_current["signature_current"] = json!(sign(&new_key()));
    assert_problem(&rotate(wrong_current), 422, "bad-proof", &schemas);
    let mut wrong_new = rotation.clone();
    wrong_new["signature_new"] = json!(sign(&key));
    assert_problem(&rotate(wrong_new), 422, "bad-proof", &schemas);
    let mut other_identity = rotation.clone();
    other_identity["identity"] = json!("bob@example.com");
    assert_problem(&rotate(other_identity), 404, "not-found", &schemas);

    // Credential limit (2): a second succeeds, a third is refused.
    assert_eq!(server.post("/v1/credentials", &good).status, 201);
    let size_after_second = server.checkpoint().size();
    // Its update and the batch's map entry.
    assert_eq!(size_after_second, size + 2);
    assert_eq!(server.changes(), 2);
    assert_problem(
        &server.issue("alice@example.com", &tokens[2], &new_key()),
        409,
        "too-many-credentials",
        &schemas,
    );

    // Lookups, log reads and paths. A name never enrolled is proven absent.
    assert!(server.lookup("nobody@example.com").state.is_none());
    assert_problem(
        &server.get("/v1/identities/NOT%20AN%20IDENTITY"),
        422,
        "bad-identity",
        &schemas,
    );
    assert_problem(
        &server.get("/v1/log/proof/inclusion?index=5&size=2"),
        404,
        "not-found",
        &schemas,
    );
    assert_problem(
        &server.get("/v1/log/proof/inclusion?index=0&size=999"),
        404,
        "not-found",
        &schemas,
    );
    assert_problem(
        &server.get("/v1/log/proof/inclusion?index=-1&size=2"),
        400,
        "bad-request",
        &schemas,
    );
    assert_problem(
        &server.get("/v1/log/proof/inclusion"),
        400,
        "bad-request",
        &schemas,
    );
    assert_problem(
        &server.get("/v1/log/proof/consistency?from=0&to=1"),
        404,
        "not-found",
        &schemas,
    );
    assert_problem(
        &server.get("/v1/log/proof/consistency?from=2&to=1"),
        404,
        "not-found",
        &schemas,
    );
    assert_problem(
        &server.get("/v1/log/entries/99"),
        404,
        "not-found",
        &schemas,
    );
    assert_problem(
        &server.get("/v1/log/entries/abc"),
        404,
        "not-found",
        &schemas,
    );
    // Entry 0 and its tile exist, but only under their one canonical name.
    assert_eq!(server.get("/v1/log/entries/0").status, 200);
    assert_eq!(server.get("/log/tile/entries/000.p/1").status, 200);
    for other_spelling in [
        "/v1/log/entries/+0",
        "/v1/log/entries/00000",
        "/v1/log/entries/01",
    ] {
        assert_problem(&server.get(other_spelling), 404, "not-found", &schemas);
    }
    for query in [
        "/v1/log/proof/inclusion?index=+0&size=2",
        "/v1/log/proof/inclusion?index=0&size=02",
        "/v1/log/proof/consistency?from=01&to=2",
        "/v1/log/proof/inclusion?index=%30&size=2",
        "/v1/log/proof/inclusion?index=0&size=%32",
    ] {
        assert_problem(&server.get(query), 400, "bad-request", &schemas);
    }
    assert_problem(&server.get("/log/tile/0/001"), 404, "not-found", &schemas);
    assert_problem(
        &server.get("/log/tile/0/000.p/0"),
        404,
        "not-found",
        &schemas,
    );
    assert_problem(&server.get("/log/tile/0/0"), 404, "not-found", &schemas);
    assert_problem(
        &server.get("/log/tile/entries/000.p/9"),
        404,
        "not-found",
        &schemas,
    );
    assert_problem(&server.get("/nope"), 404, "not-found", &schemas);
    let put = server.client.post("/v1/ca", b"{}", None).unwrap();
    assert_problem(&put, 405, "method-not-allowed", &schemas);

    // Nothing refused reached the log.
    assert_eq!(server.checkpoint().size(), size_after_second);
}

#[test]
fn admin_endpoints_need_the_admin_token() {
    let server = Server::start();
    let schemas = Schemas::load();
    let body = json!({"identities": ["alice@example.com"]}).to_string();
    let paths = [
        "/v1/admin/enrollments",
        "/v1/admin/identities/alice@example.com/revoke",
        "/v1/admin/identities/alice@example.com/enable",
        "/v1/admin/credentials/00000000000000000000000000000001/revoke",
    ];
    for path in paths {
        let none = server.client.post(path, body.as_bytes(), None).unwrap();
        assert_problem(&none, 401, "unauthorized", &schemas);
        let wrong = server
            .client
            .post(path, body.as_bytes(), Some("not-the-token"))
            .unwrap();
        assert_problem(&wrong, 403, "forbidden", &schemas);
    }
    // Nothing was logged: the log holds only the empty map's entry.
    assert_eq!(server.checkpoint().size(), 1);
    assert_eq!(server.changes(), 0);
    assert!(
        server.lookup("alice@example.com").state.is_none(),
        "nothing was enrolled: the lookup proves the identity absent"
    );

    // Admin request validation.
    let admin = |path: &str, body: Value| server.admin_post(path, &body);
    assert_problem(
        &admin("/v1/admin/enrollments", json!({"identities": []})),
        400,
        "bad-request",
        &schemas,
    );
    assert_problem(
        &admin(
            "/v1/admin/enrollments",
            json!({"identities": ["ok@example.com", "BAD"]}),
        ),
        422,
        "bad-identity",
        &schemas,
    );
    assert_problem(
        &admin(
            "/v1/admin/enrollments",
            json!({"identities": ["ok@example.com"], "ttl_seconds": 1}),
        ),
        400,
        "bad-request",
        &schemas,
    );
    assert!(
        server.lookup("ok@example.com").state.is_none(),
        "a refused batch enrolls no one"
    );
    assert_problem(
        &admin("/v1/admin/identities/ghost@example.com/revoke", json!({})),
        404,
        "not-found",
        &schemas,
    );
    assert_problem(
        &admin("/v1/admin/identities/ghost@example.com/enable", json!({})),
        404,
        "not-found",
        &schemas,
    );
    assert_problem(
        &admin(
            "/v1/admin/credentials/00000000000000000000000000000001/revoke",
            json!({}),
        ),
        404,
        "not-found",
        &schemas,
    );
    server.enroll(&["alice@example.com"]);
    assert_problem(
        &admin(
            "/v1/admin/identities/alice@example.com/revoke",
            json!({"reason": "because"}),
        ),
        400,
        "bad-request",
        &schemas,
    );
    assert_problem(
        &admin("/v1/admin/identities/alice@example.com/enable", json!({})),
        409,
        "conflict",
        &schemas,
    );
    assert_eq!(server.checkpoint().size(), 1);
    assert_eq!(server.changes(), 0);
}

#[test]
fn tokens_made_before_a_revocation_stay_void_after_re_enabling() {
    let server = Server::start();
    let schemas = Schemas::load();
    let token = server.enroll(&["eve@example.com"]).remove(0);
    assert_eq!(
        server
            .admin_post("/v1/admin/identities/eve@example.com/revoke", &json!({}))
            .status,
        200
    );
    assert_problem(
        &server.issue("eve@example.com", &token, &new_key()),
        409,
        "identity-revoked",
        &schemas,
    );
    assert_eq!(
        server
            .admin_post("/v1/admin/identities/eve@example.com/enable", &json!({}))
            .status,
        200
    );
    assert_problem(
        &server.issue("eve@example.com", &token, &new_key()),
        403,
        "bad-token",
        &schemas,
    );
}

#[test]
fn bulk_enrollment_of_tens_of_thousands() {
    let server = Server::start();
    let identities: Vec<String> = (0..20_000)
        .map(|i| format!("user{i}@bulk.example.com"))
        .collect();
    let answer = server.admin_post("/v1/admin/enrollments", &json!({"identities": identities}));
    assert_eq!(answer.status, 201);
    let enrollments = answer.json()["enrollments"].as_array().unwrap().clone();
    assert_eq!(enrollments.len(), 20_000);
    let last = &enrollments[19_999];
    assert_eq!(last["identity"], "user19999@bulk.example.com");
    let issued = server.issue(
        "user19999@bulk.example.com",
        last["token"].as_str().unwrap(),
        &new_key(),
    );
    assert_eq!(issued.status, 201);
}
