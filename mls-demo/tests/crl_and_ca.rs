//! The validator makes the CA and CRL checks `verifier-cli validate` makes: a credential that
//! does not chain to the trusted CA is refused, and so is one the CA's CRL lists even when the
//! AS (here a stale replica replaying an answer from before the revocation) still lists it as
//! current.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::sync::Arc;

use mls_demo::as_api;
use mls_demo::https::HttpsClient;
use mls_demo::validator::{AsValidator, Refusal};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[test]
fn a_credential_of_another_ca_is_refused() {
    let server = common::Server::start();
    let other = common::Server::start();
    let alice = "alice@example.com";
    let token = as_api::enroll(&server.client, &server.admin_token, &[alice]).unwrap();
    let key = as_api::new_key().unwrap();
    as_api::issue(&server.client, alice, &token[0], &key).unwrap();
    assert!(server
        .validator()
        .validate(alice, key.verifying_key().as_bytes())
        .is_ok());
    // The same answer, log key and proofs, but another CA trusted.
    let validator = AsValidator::new(server.client.clone(), server.log_key.clone(), other.ca());
    assert!(matches!(
        validator.validate(alice, key.verifying_key().as_bytes()),
        Err(Refusal::BadCertificate(_))
    ));
}

#[test]
fn a_credential_on_the_crl_is_refused_even_if_the_as_lists_it() {
    let server = common::Server::start();
    let alice = "alice@example.com";
    let token = as_api::enroll(&server.client, &server.admin_token, &[alice]).unwrap();
    let key = as_api::new_key().unwrap();
    let issued = as_api::issue(&server.client, alice, &token[0], &key).unwrap();
    let path = format!("/v1/identities/{alice}");
    let before = server.client.get(&path).unwrap();
    assert_eq!(before.status, 200);

    as_api::revoke_identity(&server.client, &server.admin_token, alice, "keyCompromise").unwrap();
    let crl = server.client.get("/v1/crl").unwrap();
    assert_eq!(crl.status, 200);

    // A replica that serves the answer from before the revocation, and the current CRL.
    let replica = StaleReplica::start(
        &server.data,
        HashMap::from([(path, before.body), ("/v1/crl".to_owned(), crl.body)]),
    );
    let pem = std::fs::read(server.data.join("tls-cert.pem")).unwrap();
    let client = HttpsClient::new(&replica.base, &pem).unwrap();
    let validator = AsValidator::new(client, server.log_key.clone(), server.ca());
    assert_eq!(
        validator.validate(alice, key.verifying_key().as_bytes()),
        Err(Refusal::CredentialRevoked {
            serial: issued["serial"].as_str().unwrap().to_owned()
        })
    );
}

/// An HTTPS server with the AS's own TLS key that answers fixed paths with fixed bodies.
struct StaleReplica {
    base: String,
}

impl StaleReplica {
    fn start(data: &std::path::Path, answers: HashMap<String, Vec<u8>>) -> StaleReplica {
        let certs = CertificateDer::pem_file_iter(data.join("tls-cert.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(data.join("tls-key.pem")).unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("https://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                    continue;
                };
                let mut tls = rustls::StreamOwned::new(conn, stream);
                let mut reader = BufReader::new(&mut tls);
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let path = request.split_whitespace().nth(1).unwrap_or_default();
                let (status, body) = match answers.get(path) {
                    Some(body) => ("200 OK", body.clone()),
                    None => ("404 Not Found", Vec::new()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(head.as_bytes());
                let _ = tls.write_all(&body);
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        StaleReplica { base }
    }
}
