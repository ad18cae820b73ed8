//! Runs the real `as-server` binary (built by `cargo build --workspace`, next to the test
//! executable) on a loopback port with a fresh data folder, through test-support, with
//! mls-demo's own HTTPS client of it; and a replica with the AS's TLS key that replays fixed
//! answers.
#![allow(dead_code, missing_docs, unreachable_pub)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::ops::Deref;
use std::sync::Arc;

use kt_verify::credential::Ca;
use mls_demo::https::HttpsClient;
use mls_demo::validator::AsValidator;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use test_support::server::TestServer;
use test_support::workspace_binary;

/// A running server with a fresh data folder ([`TestServer`]: its trust anchors come from the
/// data folder's files, as an MLS member would be given them, never from the server's
/// answers) and mls-demo's HTTPS client of it.
pub struct Server {
    server: TestServer,
    pub client: HttpsClient,
}

impl Deref for Server {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.server
    }
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Started with `extra` flags (e.g. `--rotation-min-interval 0`).
    pub fn start_with(extra: &[&str]) -> Server {
        let server = TestServer::start_fresh(&workspace_binary("as-server"), extra);
        let client = HttpsClient::new(&server.base, &server.tls_pem()).unwrap();
        Server { server, client }
    }

    /// The server's CA, as an MLS member would be given it.
    pub fn ca(&self) -> Ca {
        Ca::from_bytes(&std::fs::read(self.data.join("ca-cert.pem")).unwrap()).unwrap()
    }

    pub fn validator(&self) -> AsValidator {
        self.validator_of(self.client.clone())
    }

    /// A validator trusting this server's keys and CA, asking `client` (e.g. a replica).
    pub fn validator_of(&self, client: HttpsClient) -> AsValidator {
        AsValidator::new(
            client,
            self.log_key.clone(),
            self.vrf_key.clone(),
            self.ca(),
        )
    }
}

/// An HTTPS server with the AS's own TLS key that answers fixed paths with fixed bodies.
pub struct StaleReplica {
    pub base: String,
}

impl StaleReplica {
    pub fn start(data: &std::path::Path, answers: HashMap<String, Vec<u8>>) -> StaleReplica {
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
