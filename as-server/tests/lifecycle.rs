//! The full life of several identities and devices over real HTTPS: enrollment, issuance (by
//! signature and by CSR), lookups, a second device, rotation, revocation of a credential and of
//! an identity, re-enabling, the CRL — every answer checked against the log key and the schemas.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::Server;
use kt_protocol::directory::record::{Change, Status, VersionRecord};
use kt_protocol::entry::RevocationScope;
use serde_json::{json, Value};
use test_support::requests::new_key;
use test_support::schemas::Schemas;

fn body(answer: &as_server::admin_client::Answer) -> Value {
    answer.json()
}

#[test]
fn identities_and_devices_live_their_whole_life() {
    let server = Server::start();
    let schemas = Schemas::load();

    // Enrollment: alice gets two device tokens, bob one.
    let enroll = server.admin_post(
        "/v1/admin/enrollments",
        &json!({"identities": ["alice@example.com", "alice@example.com", "bob@example.com"], "ttl_seconds": 600}),
    );
    assert_eq!(enroll.status, 201);
    schemas.check("enrollment-response.schema.json", &body(&enroll));
    let tokens: Vec<String> = body(&enroll)["enrollments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["token"].as_str().unwrap().to_owned())
        .collect();

    // Issuance with a signature proof of possession.
    let (alice_phone, alice_laptop, bob_phone) = (new_key(), new_key(), new_key());
    let issued = server.issue("alice@example.com", &tokens[0], &alice_phone);
    assert_eq!(
        issued.status,
        201,
        "{}",
        String::from_utf8_lossy(&issued.body)
    );
    let first = body(&issued);
    schemas.check("credential.schema.json", &first);
    // The answer proves alice's new state in its checkpoint: this credential is in it.
    let record = state_of(&server, &first["directory"]);
    assert_eq!(record.identity, "alice@example.com");
    assert_eq!(record.version, 1);
    assert!(
        matches!(record.change, Change::Issue { serial, .. } if serial.to_hex() == first["serial"])
    );
    let credential = only(&record.credentials);
    assert_eq!(
        credential.public_key,
        alice_phone.verifying_key().to_bytes()
    );
    // The certificate the client got is byte for byte the one the directory commits to.
    let pem = first["certificate"].as_str().unwrap();
    assert_eq!(credential.certificate, pem_to_der(pem));

    let second = body(&server.issue("alice@example.com", &tokens[1], &alice_laptop));
    let bob = body(&server.issue("bob@example.com", &tokens[2], &bob_phone));
    assert_eq!(state_of(&server, &second["directory"]).version, 2);
    assert_eq!(state_of(&server, &bob["directory"]).version, 1);

    // Lookup: both of alice's devices, the complete set, proven in the answer's checkpoint.
    let lookup = body(&server.get("/v1/identities/alice@example.com"));
    schemas.check("identity.schema.json", &lookup);
    let record = state_of(&server, &lookup);
    assert_eq!(record.status, Status::Active);
    assert_eq!(record.credentials.len(), 2);

    // Rotation: the laptop moves to a new key; the old credential is no longer current.
    let laptop_new = new_key();
    let rotated = server.rotate(
        "alice@example.com",
        second["serial"].as_str().unwrap(),
        &alice_laptop,
        &laptop_new,
    );
    assert_eq!(
        rotated.status,
        201,
        "{}",
        String::from_utf8_lossy(&rotated.body)
    );
    let rotated = body(&rotated);
    schemas.check("rotation-response.schema.json", &rotated);
    assert_eq!(rotated["replaces"], second["serial"]);
    let record = state_of(&server, &rotated["directory"]);
    assert!(
        matches!(record.change, Change::Rotate { replaces, .. } if replaces.to_hex() == second["serial"])
    );
    let serials = current_serials(&server, "alice@example.com");
    assert!(serials.contains(&rotated["serial"].as_str().unwrap().to_owned()));
    assert!(!serials.contains(&second["serial"].as_str().unwrap().to_owned()));
    // The superseded credential cannot rotate again.
    let again = server.rotate(
        "alice@example.com",
        second["serial"].as_str().unwrap(),
        &alice_laptop,
        &new_key(),
    );
    assert_eq!(again.status, 409);

    // Revoking one credential.
    let revoked = server.admin_post(
        &format!(
            "/v1/admin/credentials/{}/revoke",
            first["serial"].as_str().unwrap()
        ),
        &json!({"reason": "keyCompromise"}),
    );
    assert_eq!(revoked.status, 200);
    let revoked = body(&revoked);
    schemas.check("revocation-response.schema.json", &revoked);
    let record = state_of(&server, &revoked["directory"]);
    assert!(matches!(
        &record.change,
        Change::Revoke { scope: RevocationScope::Credential, admin, .. } if admin == "admin"
    ));
    assert_eq!(
        current_serials(&server, "alice@example.com"),
        [rotated["serial"].as_str().unwrap()]
    );

    // The CRL lists the revoked serial at once, and not the current one. Fetched now, it is
    // cached; the identity's revocation below must replace it.
    let crl = server.get("/v1/crl");
    let listed = |crl: &as_server::admin_client::Answer, serial: &serde_json::Value| {
        let raw = hex::decode(serial.as_str().unwrap()).unwrap();
        crl.body.windows(raw.len()).any(|w| w == raw.as_slice())
    };
    assert!(listed(&crl, &first["serial"]));
    assert!(!listed(&crl, &rotated["serial"]));

    // Revoking the identity: all its current credentials, and no more enrollment.
    let revoked = body(&server.admin_post(
        "/v1/admin/identities/alice@example.com/revoke",
        &json!({"reason": "affiliationChanged"}),
    ));
    assert_eq!(revoked["revoked"], json!([rotated["serial"]]));
    let record = server.lookup("alice@example.com").state.unwrap().record;
    assert_eq!(record.status, Status::Revoked);
    assert!(record.credentials.is_empty());
    let refused = server.admin_post(
        "/v1/admin/enrollments",
        &json!({"identities": ["alice@example.com"]}),
    );
    assert_eq!(refused.status, 409);
    schemas.check("problem.schema.json", &refused.json());
    assert_eq!(
        server
            .admin_post("/v1/admin/identities/alice@example.com/revoke", &json!({}))
            .status,
        409
    );

    // The CRL lists both revoked serials.
    let crl = server.get("/v1/crl");
    assert_eq!(crl.status, 200);
    assert_eq!(crl.content_type, "application/pkix-crl");
    for serial in [&first["serial"], &rotated["serial"]] {
        let raw = hex::decode(serial.as_str().unwrap()).unwrap();
        assert!(
            crl.body.windows(raw.len()).any(|w| w == raw.as_slice()),
            "CRL lists {serial}"
        );
    }

    // Re-enabling (logged), then enrolling again works; bob was never touched.
    let enabled = server.admin_post("/v1/admin/identities/alice@example.com/enable", &json!({}));
    assert_eq!(enabled.status, 200);
    let enabled = body(&enabled);
    schemas.check("enable-response.schema.json", &enabled);
    let record = state_of(&server, &enabled["directory"]);
    assert!(matches!(record.change, Change::Enable { .. }));
    assert_eq!(record.version, 6);
    let token = server.enroll(&["alice@example.com"]).remove(0);
    assert_eq!(
        server.issue("alice@example.com", &token, &new_key()).status,
        201
    );
    assert_eq!(current_serials(&server, "bob@example.com").len(), 1);

    // Every entry is readable through the log API and the tiles: the empty map's entry, then
    // each of the 8 changes as its update and its batch's map entry.
    let checkpoint = server.checkpoint();
    assert_eq!(checkpoint.size(), 17);
    assert_eq!(server.changes(), 8);
    let bundle = server.get("/log/tile/entries/000.p/17");
    assert_eq!(bundle.status, 200);
    let entries = kt_log::tiles::decode_entry_bundle(&bundle.body, 17).unwrap();
    // Nothing of any identity is in the public log: no name, serial, key or certificate.
    let mut secrets: Vec<String> = vec!["alice@example.com".into(), "bob@example.com".into()];
    for answer in [&first, &second, &bob, &rotated] {
        secrets.push(answer["serial"].as_str().unwrap().to_owned());
        secrets.push(answer["public_key"].as_str().unwrap().to_owned());
        let der = pem_to_der(answer["certificate"].as_str().unwrap());
        secrets.push(B64.encode(&der));
        // Any 12 bytes of the certificate, in base64 at any alignment, would show.
        secrets.push(B64.encode(&der[der.len() / 2..der.len() / 2 + 12]));
    }
    for (index, bytes) in entries.iter().enumerate() {
        let one = body(&server.get(&format!("/v1/log/entries/{index}")));
        schemas.check("log-entry-response.schema.json", &one);
        assert_eq!(B64.decode(one["entry"].as_str().unwrap()).unwrap(), *bytes);
        schemas.check(
            "log-entry.schema.json",
            &serde_json::from_slice(bytes).unwrap(),
        );
        let text = String::from_utf8_lossy(bytes);
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "entry {index} shows {secret}"
            );
            assert!(!bytes
                .windows(12)
                .any(|w| der_windows(secret).contains(&w.to_vec())));
        }
    }
    let key = body(&server.get("/v1/log/key"));
    schemas.check("log-key.schema.json", &key);
    assert_eq!(key["verifier_key"], server.log_key.to_vkey());
    let proof = body(&server.get("/v1/log/proof/consistency?from=3&to=17"));
    schemas.check("consistency-proof.schema.json", &proof);
    let proof = body(&server.get("/v1/log/proof/inclusion?index=2&size=17"));
    schemas.check("inclusion-proof.schema.json", &proof);
}

#[test]
fn openssl_style_csr_gets_a_credential() {
    use der::EncodePem as _;
    use x509_cert::builder::{Builder as _, RequestBuilder};
    let server = Server::start();
    let token = server.enroll(&["carol+work@example.org"]).remove(0);
    let key = new_key();
    let subject: x509_cert::name::Name = "CN=carol\\+work@example.org".parse().unwrap();
    let csr = RequestBuilder::new(subject)
        .unwrap()
        .build::<_, ed25519_dalek::Signature>(&key)
        .unwrap()
        .to_pem(der::pem::LineEnding::LF)
        .unwrap();
    // A CSR with no subject, or for another identity, is refused: the subject binds it.
    let anonymous = RequestBuilder::new(x509_cert::name::Name::default())
        .unwrap()
        .build::<_, ed25519_dalek::Signature>(&key)
        .unwrap()
        .to_pem(der::pem::LineEnding::LF)
        .unwrap();
    let refused = server.post(
        "/v1/credentials",
        &json!({"identity": "carol+work@example.org", "token": token, "csr": anonymous}),
    );
    assert_eq!(
        refused.status,
        422,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    let wrong = server.post(
        "/v1/credentials",
        &json!({"identity": "dave@example.org", "token": token, "csr": csr}),
    );
    assert!(
        wrong.status == 422 || wrong.status == 403,
        "{}",
        wrong.status
    );
    let answer = server.post(
        "/v1/credentials",
        &json!({"identity": "carol+work@example.org", "token": token, "csr": csr}),
    );
    assert_eq!(
        answer.status,
        201,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(
        answer.json()["public_key"],
        B64.encode(key.verifying_key().as_bytes())
    );
}

fn current_serials(server: &Server, identity: &str) -> Vec<String> {
    server.current_serials(identity)
}

/// The record of a verified proof (an answer's `directory`, or a lookup).
fn state_of(server: &Server, proof: &Value) -> VersionRecord {
    server.verify_directory(proof).state.unwrap().record
}

fn only<T>(items: &[T]) -> &T {
    assert_eq!(items.len(), 1);
    &items[0]
}

/// The raw 12-byte windows of the bytes a base64 secret stands for (none for other text).
fn der_windows(secret: &str) -> Vec<Vec<u8>> {
    B64.decode(secret)
        .map(|raw| raw.windows(12).map(<[u8]>::to_vec).collect())
        .unwrap_or_default()
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    B64.decode(b64).unwrap()
}
