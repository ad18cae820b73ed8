//! Runs the real `as-server` binary (built by `cargo build --workspace`, next to the test
//! executable) on a loopback port with a fresh data folder, through `test-support`.
#![allow(dead_code, missing_docs, unreachable_pub)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use kt_log::note::NoteVerifier;
use kt_verify::credential::Ca;
use mls_demo::https::HttpsClient;
use mls_demo::validator::AsValidator;
use test_support::{workspace_binary, ServerProcess};

pub struct Server {
    process: ServerProcess,
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    pub base: String,
    pub admin_token: String,
    pub client: HttpsClient,
    pub log_key: NoteVerifier,
}

impl Server {
    pub fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let process = ServerProcess::start(&workspace_binary("as-server"), &data, &[]);
        let base = process.base.clone();
        let admin_token = process.printed_admin_token.clone().expect("an admin token");
        let pem = std::fs::read(data.join("tls-cert.pem")).unwrap();
        let client = HttpsClient::new(&base, &pem).unwrap();
        let vkey = std::fs::read_to_string(data.join("log-key.pub")).unwrap();
        Server {
            process,
            dir,
            data,
            base,
            admin_token,
            client,
            log_key: NoteVerifier::parse(vkey.trim()).unwrap(),
        }
    }

    /// The server's CA, as an MLS member would be given it.
    pub fn ca(&self) -> Ca {
        Ca::from_bytes(&std::fs::read(self.data.join("ca-cert.pem")).unwrap()).unwrap()
    }

    pub fn validator(&self) -> AsValidator {
        AsValidator::new(self.client.clone(), self.log_key.clone(), self.ca())
    }
}
