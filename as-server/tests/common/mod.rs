//! The suite's view of test-support: the real `as-server` binary on a loopback port
//! ([`TestServer`]) with as-server's own HTTPS client pinned to its certificate, the calls
//! the tests make with it, and answers checked against the log key and the schemas.
#![allow(dead_code, missing_docs, unreachable_pub)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ops::{Deref, DerefMut};
use std::path::Path;

use as_server::admin_client::{Answer, HttpsClient};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use kt_log::checkpoint::{open_checkpoint, VerifiedCheckpoint};
use kt_protocol::api::IdentityProof;
use kt_protocol::directory::public_entry::PublicEntry;
use kt_verify::directory::{self, VerifiedIdentity};
use serde_json::Value;
use test_support::requests::{
    enrollment_request, enrollment_tokens, issue_request, rotation_request,
};
use test_support::schemas::Schemas;
use test_support::server::TestServer;

/// A running server (data folder, token, keys: [`TestServer`]) and as-server's HTTPS client
/// of it.
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

impl DerefMut for Server {
    fn deref_mut(&mut self) -> &mut TestServer {
        &mut self.server
    }
}

/// This package's binary.
fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_as-server"))
}

impl Server {
    /// A server with a fresh data folder.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// A server with a fresh data folder and extra `serve` flags.
    pub fn start_with(extra: &[&str]) -> Server {
        let server = TestServer::start_fresh(binary(), extra);
        let client = HttpsClient::new(&server.base, &server.tls_pem()).unwrap();
        Server { server, client }
    }

    /// A server over `data`; `admin_token` is the token from an earlier start, if any.
    pub fn start_in(data: &Path, admin_token: Option<String>, extra: &[&str]) -> Server {
        Server::start_trusting(data, admin_token, extra, &data.join("tls-cert.pem"))
    }

    /// Like [`Server::start_in`], trusting the TLS certificate in `tls_cert`.
    pub fn start_trusting(
        data: &Path,
        admin_token: Option<String>,
        extra: &[&str],
        tls_cert: &Path,
    ) -> Server {
        let server = TestServer::start(binary(), data, admin_token.as_deref(), extra);
        let pem = std::fs::read(tls_cert).unwrap();
        let client = HttpsClient::new(&server.base, &pem).unwrap();
        Server { server, client }
    }

    /// How many file descriptors the server process has open now.
    pub fn open_fds(&self) -> usize {
        let pid = self.pid().expect("running");
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    }

    pub fn get(&self, path: &str) -> Answer {
        self.client.get(path).unwrap()
    }

    pub fn post(&self, path: &str, body: &Value) -> Answer {
        self.client
            .post(path, body.to_string().as_bytes(), None)
            .unwrap()
    }

    pub fn admin_post(&self, path: &str, body: &Value) -> Answer {
        self.client
            .post(path, body.to_string().as_bytes(), Some(&self.admin_token))
            .unwrap()
    }

    /// Enrolls `identities`, returns their tokens in order.
    pub fn enroll(&self, identities: &[&str]) -> Vec<String> {
        let answer = self.admin_post("/v1/admin/enrollments", &enrollment_request(identities));
        assert_eq!(
            answer.status,
            201,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        enrollment_tokens(&answer.json())
    }

    /// Requests a credential for `identity` with `token`, proving possession of `key`.
    pub fn issue(&self, identity: &str, token: &str, key: &SigningKey) -> Answer {
        self.post("/v1/credentials", &issue_request(identity, token, key))
    }

    /// Rotates `serial` of `identity` from `current` to `new`.
    pub fn rotate(
        &self,
        identity: &str,
        serial: &str,
        current: &SigningKey,
        new: &SigningKey,
    ) -> Answer {
        self.post(
            "/v1/credentials/rotate",
            &rotation_request(identity, serial, current, new),
        )
    }

    /// The latest checkpoint, verified.
    pub fn checkpoint(&self) -> VerifiedCheckpoint {
        let answer = self.get("/log/checkpoint");
        assert_eq!(answer.status, 200);
        open_checkpoint(&answer.body, &self.log_key).unwrap()
    }

    /// Verifies a proof of an identity (a lookup, or an answer's `directory`) with kt-verify:
    /// checkpoint signed by the log key, map entry last, VRF label, map proof, record.
    pub fn verify_directory(&self, proof: &Value) -> VerifiedIdentity {
        let proof: IdentityProof = serde_json::from_value(proof.clone()).unwrap();
        let checkpoint =
            directory::answer_checkpoint(&proof, &proof.identity, &self.log_key).unwrap();
        directory::verify_identity(&proof, &checkpoint, &self.vrf_key).unwrap()
    }

    /// Looks `identity` up and verifies the answer; panics unless it verifies.
    pub fn lookup(&self, identity: &str) -> VerifiedIdentity {
        let answer = self.get(&format!("/v1/identities/{identity}"));
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        self.verify_directory(&answer.json())
    }

    /// The serials of `identity`'s current credentials, verified.
    pub fn current_serials(&self, identity: &str) -> Vec<String> {
        self.lookup(identity).state.map_or_else(Vec::new, |state| {
            state
                .record
                .credentials
                .iter()
                .map(|c| c.serial.to_hex())
                .collect()
        })
    }

    /// The log's entries up to the published checkpoint.
    pub fn entries(&self) -> Vec<PublicEntry> {
        let size = self.checkpoint().size();
        (0..size)
            .map(|i| {
                let answer = self.get(&format!("/v1/log/entries/{i}")).json();
                let bytes = B64.decode(answer["entry"].as_str().unwrap()).unwrap();
                PublicEntry::parse(&bytes).unwrap()
            })
            .collect()
    }

    /// How many changes the log holds (its update entries).
    pub fn changes(&self) -> usize {
        self.entries()
            .iter()
            .filter(|e| matches!(e, PublicEntry::Update(_)))
            .count()
    }
}

/// A raw TLS connection to the server, for requests no HTTP client sends (odd methods, bodies
/// that stall), pinned to the server's TLS certificate. The handshake happens on first use.
pub fn raw_tls(
    base: &str,
    tls_cert: &Path,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_file(tls_cert).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let address = base.strip_prefix("https://").unwrap();
    let tcp = std::net::TcpStream::connect(address).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    rustls::StreamOwned::new(connection, tcp)
}

/// Sends `request` (a whole HTTP/1.1 request, `Connection: close`) on a new raw TLS
/// connection and returns the status and body of the answer.
pub fn raw_request(server: &Server, request: &[u8]) -> (u16, Vec<u8>) {
    use std::io::{Read as _, Write as _};
    let mut stream = raw_tls(&server.base, &server.data.join("tls-cert.pem"));
    stream.write_all(request).unwrap();
    stream.flush().unwrap();
    let mut answer = Vec::new();
    // The server closes after answering; a TLS close without close_notify is fine here.
    let _ = stream.read_to_end(&mut answer);
    parse_answer(&answer)
}

/// Status and body of a raw HTTP/1.1 answer (with Content-Length or to the end).
pub fn parse_answer(answer: &[u8]) -> (u16, Vec<u8>) {
    let text = String::from_utf8_lossy(answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let body = match answer.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => answer[end + 4..].to_vec(),
        None => Vec::new(),
    };
    (status, body)
}

/// Asserts a problem answer: status, code, schema.
pub fn assert_problem(
    answer: &as_server::admin_client::Answer,
    status: u16,
    code: &str,
    schemas: &Schemas,
) {
    assert_eq!(
        answer.status,
        status,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.content_type, "application/problem+json");
    let problem = answer.json();
    assert_eq!(
        problem["type"],
        format!("https://kt-as.dev/problems/{code}"),
        "{problem}"
    );
    assert_eq!(problem["status"], status);
    schemas.check("problem.schema.json", &problem);
}
