//! A running `as-server` with what every suite reads from its data folder: the base URL, the
//! admin token, the TLS certificate and the trust anchors. Each suite wraps it with its own
//! HTTPS client (as-server's, mls-demo's), the clients being part of what they test.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_log::note::NoteVerifier;
use kt_protocol::directory::vrf::VrfPublicKey;

use crate::ServerProcess;

/// `as-server serve` over a data folder, SIGKILLed when dropped.
pub struct TestServer {
    /// Declared first, so that it is killed before `temporary` removes its folder.
    process: ServerProcess,
    /// The temporary folder holding a fresh data folder, removed with the server.
    temporary: Option<tempfile::TempDir>,
    binary: PathBuf,
    /// Its data folder.
    pub data: PathBuf,
    /// `https://127.0.0.1:<port>`.
    pub base: String,
    /// The admin token: printed by the first start of the data folder, or given.
    pub admin_token: String,
    /// The log's note verifier key, from the data folder's `log-key.pub` (as a client is
    /// given it), never from the server's answers.
    pub log_key: NoteVerifier,
    /// The directory's VRF key, from the data folder's `vrf-key.pub`.
    pub vrf_key: VrfPublicKey,
}

impl TestServer {
    /// Starts `binary` (the as-server executable) on a fresh data folder, `data` in a
    /// temporary folder, with `extra` flags for `serve`.
    pub fn start_fresh(binary: &Path, extra: &[&str]) -> TestServer {
        let temporary = tempfile::tempdir().expect("a temporary folder");
        let mut server = TestServer::start(binary, &temporary.path().join("data"), None, extra);
        server.temporary = Some(temporary);
        server
    }

    /// Starts `binary` over `data` (created on the first start). `admin_token`: the token
    /// an earlier start of the same folder printed (a first start prints a new one).
    pub fn start(
        binary: &Path,
        data: &Path,
        admin_token: Option<&str>,
        extra: &[&str],
    ) -> TestServer {
        let process = ServerProcess::start(binary, data, extra);
        let admin_token = process
            .printed_admin_token
            .clone()
            .or(admin_token.map(str::to_owned))
            .expect("an admin token (first start, or given)");
        TestServer {
            base: process.base.clone(),
            process,
            temporary: None,
            binary: binary.to_path_buf(),
            data: data.to_path_buf(),
            admin_token,
            log_key: log_verifier(data),
            vrf_key: vrf_key(data),
        }
    }

    /// SIGKILLs the server (no clean shutdown) and waits for it.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Kills the server and starts it again on the same data folder (a new port), with
    /// `extra` flags.
    pub fn restart(&mut self, extra: &[&str]) {
        self.kill();
        let temporary = self.temporary.take();
        *self = TestServer::start(&self.binary, &self.data, Some(&self.admin_token), extra);
        self.temporary = temporary;
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// The folder holding the data folder (for a fresh start, the temporary folder removed
    /// with the server), where a test can keep its other files.
    pub fn folder(&self) -> &Path {
        self.data.parent().expect("the data folder's parent")
    }

    /// The server's TLS certificate file.
    pub fn tls_cert(&self) -> PathBuf {
        self.data.join("tls-cert.pem")
    }

    /// The PEM of the server's TLS certificate, for a client that trusts exactly it.
    pub fn tls_pem(&self) -> Vec<u8> {
        std::fs::read(self.tls_cert()).expect("tls-cert.pem")
    }
}

/// The log's note verifier key of a data folder (`log-key.pub`).
pub fn log_verifier(data: &Path) -> NoteVerifier {
    let text = std::fs::read_to_string(data.join("log-key.pub")).expect("log-key.pub");
    NoteVerifier::parse(text.trim()).expect("a note verifier key")
}

/// The directory's VRF public key of a data folder (`vrf-key.pub`, base64).
pub fn vrf_key(data: &Path) -> VrfPublicKey {
    let text = std::fs::read_to_string(data.join("vrf-key.pub")).expect("vrf-key.pub");
    let bytes = B64.decode(text.trim()).expect("base64");
    VrfPublicKey::from_bytes(&bytes).expect("a VRF public key")
}

/// The files of a data folder that every frontend of one log holds alike (docs/operations.md,
/// "Several frontends"): the CA, the log key, the directory key and the admin tokens.
pub const KEY_FILES: [&str; 7] = [
    "ca-key.pem",
    "ca-cert.pem",
    "log-key",
    "log-key.pub",
    "directory-key",
    "vrf-key.pub",
    "admin-tokens.json",
];

/// Copies [`KEY_FILES`] of data folder `from` into `to` (created, mode 0700, if missing).
pub fn copy_keys(from: &Path, to: &Path) {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(to)
        .expect("data folder");
    for name in KEY_FILES {
        std::fs::copy(from.join(name), to.join(name)).expect("copy key material");
    }
}
