//! URI identities (`im:`, `xmpp:`, `tel:`, `https:`) as a client meets them: enrolled when in
//! canonical form and of a listed scheme, refused with 422 `bad-identity` otherwise (never
//! rewritten), issued with a `uniformResourceIdentifier` subjectAltName, looked up and revoked
//! under their percent-encoded path segment, and every answer valid under schemas/.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{assert_problem, Server};
use serde_json::json;
use test_support::requests::new_key;
use test_support::schemas::Schemas;

use kt_protocol::identity::path_segment as segment;

fn san_of(pem: &str) -> Vec<x509_cert::ext::pkix::name::GeneralName> {
    use der::{Decode as _, DecodePem as _};
    let cert = x509_cert::Certificate::from_pem(pem).unwrap();
    let extension = cert
        .tbs_certificate()
        .extensions()
        .unwrap()
        .iter()
        .find(|e| e.extn_id.to_string() == "2.5.29.17")
        .unwrap()
        .clone();
    x509_cert::ext::pkix::SubjectAltName::from_der(extension.extn_value.as_bytes())
        .unwrap()
        .0
}

#[test]
fn uri_identities_are_enrolled_issued_looked_up_and_revoked() {
    let server = Server::start();
    let schemas = Schemas::load();
    let identities = [
        "https://example.com/alice",
        "im:wireapp=ZjI0ZDQ1/a1b2@wire.example.com",
        "im:a%20b@example.com",
        "tel:+15551234567",
        "xmpp:juliet@example.com",
    ];
    let tokens = server.enroll(&identities);
    let ca = kt_verify::credential::Ca::from_bytes(&server.get("/v1/ca").body).unwrap();
    for (identity, token) in identities.iter().zip(&tokens) {
        let issued = server.issue(identity, token, &new_key());
        assert_eq!(
            issued.status,
            201,
            "{identity}: {}",
            String::from_utf8_lossy(&issued.body)
        );
        let issued = issued.json();
        schemas.check("credential.schema.json", &issued);
        // What verifier-cli and mls-demo check, and what identity they read from it.
        let bundle: kt_protocol::api::CredentialAnswer =
            serde_json::from_value(issued.clone()).unwrap();
        let verified = kt_verify::bundle::verify_bundle(
            &bundle,
            &server.log_key,
            &server.vrf_key,
            &ca,
            as_server::unix_now(),
        )
        .unwrap();
        assert_eq!(verified.facts.identity, *identity);
        let san = san_of(issued["certificate"].as_str().unwrap());
        assert_eq!(san.len(), 1, "{identity}");
        match &san[0] {
            x509_cert::ext::pkix::name::GeneralName::UniformResourceIdentifier(uri) => {
                assert_eq!(uri.as_str(), *identity)
            }
            other => panic!("{identity}: {other:?}"),
        }
        let lookup = server.get(&format!("/v1/identities/{}", segment(identity)));
        assert_eq!(lookup.status, 200, "{identity}");
        let lookup = lookup.json();
        schemas.check("identity.schema.json", &lookup);
        assert_eq!(lookup["identity"], *identity);
        let record = server.verify_directory(&lookup).state.unwrap().record;
        assert_eq!(record.credentials[0].serial.to_hex(), issued["serial"]);
    }
    // Revoked and enabled under the same encoded name.
    let path = segment(identities[0]);
    let revoked = server.admin_post(&format!("/v1/admin/identities/{path}/revoke"), &json!({}));
    assert_eq!(
        revoked.status,
        200,
        "{}",
        String::from_utf8_lossy(&revoked.body)
    );
    assert_eq!(revoked.json()["identity"], identities[0]);
    let enabled = server.admin_post(&format!("/v1/admin/identities/{path}/enable"), &json!({}));
    assert_eq!(enabled.status, 200);

    // Mailboxes keep their rfc822Name.
    let token = server.enroll(&["alice@example.com"]).remove(0);
    let issued = server.issue("alice@example.com", &token, &new_key()).json();
    assert!(matches!(
        &san_of(issued["certificate"].as_str().unwrap())[..],
        [x509_cert::ext::pkix::name::GeneralName::Rfc822Name(name)] if name.as_str() == "alice@example.com"
    ));
}

#[test]
fn uris_not_in_canonical_form_or_of_unlisted_schemes_are_refused() {
    let server = Server::start_with(&["--identity-schemes", "im,https"]);
    let schemas = Schemas::load();
    for bad in [
        "https://Example.com/alice",
        "https://example.com",
        "https://example.com:443/alice",
        "https://bob@example.com/",
        "im:alice@example.com#work",
        "im:a%2fb",
        "im:%61lice",
        "IM:alice@example.com",
        // Listed by default, but not by this server.
        "tel:+15551234567",
        "xmpp:juliet@example.com",
    ] {
        let answer = server.admin_post("/v1/admin/enrollments", &json!({ "identities": [bad] }));
        assert_problem(&answer, 422, "bad-identity", &schemas);
    }
    assert_eq!(server.enroll(&["im:alice@example.com"]).len(), 1);
}
