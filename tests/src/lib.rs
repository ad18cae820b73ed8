//! Harness of the end-to-end tests (see `e2e/`): finds the built `as-server` and
//! `verifier-cli` binaries, runs servers on loopback with temporary data folders, runs the
//! verifier as separate parties (each with its own state folder), and plays a malicious AS by
//! writing to a stopped server's data folder directly.
//!
//! The binaries are looked up next to the test executable (`target/<profile>/`), so they must
//! be built first: `cargo build --workspace` (or `cargo test --workspace`, which builds every
//! binary before running any test).
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsString;
use std::ops::{Deref, DerefMut, Range};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use std::collections::HashMap;

use as_server::admin_client::{Answer, HttpsClient};
use as_server::ca::{random_serial, Ca};
use as_server::directory::keys::DirectoryKeys;
use as_server::directory::{empty_map_entry, open_change};
use as_server::encoding::hex;
use as_server::entry::{Binding, EntryBody, LogEntry, Serial};
use as_server::state::directory::{make_version, VersionRow};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use ed25519_dalek::{SigningKey, VerifyingKey};
use kt_log::checkpoint::{open_checkpoint, SignedCheckpoint, VerifiedCheckpoint};
use kt_log::log::Log;
use kt_log::note::{NoteSigner, NoteVerifier};
use kt_log::store::FileStore;
use kt_protocol::directory::batch::{Batch, Replay};
use kt_protocol::directory::public_entry::PublicEntry;
use kt_protocol::directory::tree::Map;
use kt_protocol::directory::vrf::{Label, PROOF_LEN};
use serde_json::{json, Value};
use test_support::requests::{
    enrollment_request, enrollment_tokens, issue_request, key_b64, new_key, rotation_request,
};
use test_support::schemas::schemas;
use test_support::server::{log_verifier, TestServer};

/// The default log origin of `as-server` (its data folder's state folder name is derived from
/// it).
pub const ORIGIN: &str = "localhost/kt-as";

/// Path of a workspace binary, next to the running test executable.
///
/// Panics with instructions when it is missing.
pub fn binary(name: &str) -> PathBuf {
    test_support::workspace_binary(name)
}

/// What a finished process said.
#[derive(Debug, Clone)]
pub struct Run {
    /// The command line, for messages.
    pub command: String,
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Runs `program` with `args` and collects its output.
    pub fn of(program: &Path, args: &[OsString]) -> Run {
        let output = test_support::cli::command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
        let command = std::iter::once(program.display().to_string())
            .chain(args.iter().map(|a| a.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(" ");
        Run {
            command,
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics (showing everything) unless the exit code is `code`; returns self.
    #[track_caller]
    pub fn code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "expected exit {code} from\n  {}\nstdout:\n{}\nstderr:\n{}",
            self.command, self.stdout, self.stderr
        );
        self
    }

    /// Stdout as one JSON value (panics showing the output when it is not).
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout of\n  {}\nis not JSON ({e}):\n{}\nstderr:\n{}",
                self.command, self.stdout, self.stderr
            )
        })
    }

    /// Exit 0 and the JSON output.
    #[track_caller]
    pub fn ok(&self) -> Value {
        self.code(0).json()
    }
}

/// The fields docs/auditing.md promises in each command's `--json` output (besides
/// `command`, `ok`, `status`, `exit_code`), when the command reached a result (an error adds
/// `error` instead).
pub fn documented_fields(command: &str) -> &'static [&'static str] {
    const BUNDLE: &[&str] = &[
        "identity",
        "serial",
        "public_key",
        "not_before",
        "not_after",
        "version",
        "checkpoint_size",
        "checkpoint_root",
        "origin",
        "chain_has_ca",
    ];
    match command {
        "checkpoint verify" => &["origin", "size", "root"],
        "checkpoint fetch" => &["origin", "size", "root", "consistency", "previous_size"],
        "inclusion verify" => &["origin", "size", "root", "index", "leaf_hash"],
        "consistency verify" => &["origin", "old_size", "old_root", "new_size", "new_root"],
        "bundle verify" => BUNDLE,
        "fork verify" => &[
            "fork",
            "reason",
            "origin",
            "older_size",
            "newer_size",
            "witnesses_cosigned_both",
        ],
        "compare" => &[
            "origin",
            "a_size",
            "a_root",
            "b_size",
            "b_root",
            "consistent",
        ],
        "lookup" => &[
            "identity",
            "found",
            // Not `status`: that is the common field (the command's outcome).
            "identity_status",
            "version",
            "checkpoint",
            "consistency",
            "previous_size",
            "credentials",
        ],
        "validate" => &[
            "identity",
            "public_key",
            "valid",
            "reason",
            "credential",
            "proof",
            "consistency",
            "previous_size",
        ],
        "credential" => &[
            "identity",
            "serial",
            "public_key",
            "not_before",
            "not_after",
            "state",
            "version",
            "checkpoint",
            "crl",
            "consistency",
            "previous_size",
        ],
        "audit" => &[
            "origin",
            "size",
            "root",
            "consistency",
            "previous_size",
            "resumed_from",
            "entries_checked",
            "elapsed_ms",
            "entries_per_second",
            "labels",
            "problem_count",
            "problems",
        ],
        "monitor" => &[
            "origin",
            "size",
            "root",
            "consistency",
            "previous_size",
            "identities",
            "events",
            "unexpected",
            "bytes_fetched",
        ],
        // The same fields: a rotation saves a new key and credential as an enrollment does.
        "enroll" | "rotate" => &[
            "identity",
            "serial",
            "public_key",
            "not_before",
            "not_after",
            "version",
            "checkpoint_size",
            "checkpoint_root",
            "origin",
            "chain_has_ca",
            "key_file",
            "credential_file",
            "consistency",
            "previous_size",
        ],
        _ => &[],
    }
}

/// Checks a `--json` output against docs/auditing.md and `schemas/`: the common fields agree
/// with the exit code, either `error` or every documented field of `command` is there, the
/// whole object is valid under `verifier-cli-output.schema.json#/$defs/<command>` (closed:
/// no field more or less), and the fork evidence file it names, if any, is valid under
/// `fork-evidence.schema.json`.
#[track_caller]
pub fn check_json_output(command: &str, run: &Run) -> Value {
    let value = run.json();
    let status = usize::try_from(run.code)
        .ok()
        .and_then(|code| STATUSES.get(code))
        .unwrap_or_else(|| panic!("exit code {} is not documented: {}", run.code, run.command));
    assert_eq!(value["command"], json!(command), "{}", run.stdout);
    assert_eq!(value["ok"], json!(run.code == 0), "{}", run.stdout);
    assert_eq!(value["status"], json!(status), "{}", run.stdout);
    assert_eq!(value["exit_code"], json!(run.code), "{}", run.stdout);
    if value.get("error").is_some() {
        assert!(value["error"].is_string(), "{}", run.stdout);
        assert_ne!(run.code, 0, "an error with exit 0: {}", run.stdout);
        if run.code == 4 {
            assert!(
                value["evidence"].is_string(),
                "fork without evidence: {}",
                run.stdout
            );
        }
    } else {
        let missing: Vec<&str> = documented_fields(command)
            .iter()
            .copied()
            .filter(|f| value.get(*f).is_none())
            .collect();
        assert!(
            missing.is_empty(),
            "`{command} --json` lacks the documented fields {missing:?}: {}",
            run.stdout
        );
    }
    check_output(command, &value, run);
    if let Some(evidence) = value["evidence"].as_str().filter(|e| !e.is_empty()) {
        check_fork_evidence(Path::new(evidence));
    }
    value
}

/// The `status` of each exit code of verifier-cli, by code (docs/auditing.md).
pub const STATUSES: [&str; 5] = [
    "ok",
    "verification_failed",
    "usage_error",
    "network_or_io_error",
    "fork_detected",
];

/// Every verifier-cli command, as `--json` output names it.
pub const COMMANDS: [&str; 14] = [
    "checkpoint verify",
    "checkpoint fetch",
    "inclusion verify",
    "consistency verify",
    "bundle verify",
    "fork verify",
    "compare",
    "credential",
    "lookup",
    "validate",
    "audit",
    "monitor",
    "enroll",
    "rotate",
];

/// The schema reference of `command`'s output: `verifier-cli-output.schema.json#/$defs/…`.
pub fn output_reference(command: &str) -> String {
    format!(
        "verifier-cli-output.schema.json#/$defs/{}",
        command.replace(' ', "_")
    )
}

/// Checks the `--json` output of `command` under its schema (and the whole output schema,
/// which must pick the same command).
#[track_caller]
pub fn check_output(command: &str, value: &Value, run: &Run) {
    let reference = output_reference(command);
    let errors = schemas().errors(&reference, value);
    assert!(
        errors.is_empty(),
        "`{command} --json` does not match {reference}:\n  {}\ncommand: {}\nstdout: {}",
        errors.join("\n  "),
        run.command,
        run.stdout
    );
    schemas().check("verifier-cli-output.schema.json", value);
}

/// Reads a fork evidence file and checks it against `fork-evidence.schema.json`.
#[track_caller]
pub fn check_fork_evidence(path: &Path) -> Value {
    let bytes = std::fs::read(path)
        .unwrap_or_else(|e| panic!("cannot read the evidence {}: {e}", path.display()));
    let value: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("the evidence {} is not JSON: {e}", path.display()));
    schemas().check("fork-evidence.schema.json", &value);
    value
}

/// Reads a Credential file saved by `enroll` (`credential.schema.json`) or `rotate`
/// (`rotation-response.schema.json`) and checks it against its schema.
#[track_caller]
pub fn check_credential_file(path: &Path, rotated: bool) -> Value {
    let bytes = std::fs::read(path)
        .unwrap_or_else(|e| panic!("cannot read the credential {}: {e}", path.display()));
    let value: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("the credential {} is not JSON: {e}", path.display()));
    let schema = if rotated {
        "rotation-response.schema.json"
    } else {
        "credential.schema.json"
    };
    schemas().check(schema, &value);
    value
}

/// A running `as-server serve` on 127.0.0.1 (port 0), SIGKILLed when dropped: test-support's
/// [`TestServer`] (data folder, admin token, keys) with as-server's HTTPS client of it.
pub struct Server {
    server: TestServer,
    /// An HTTPS client pinned to its TLS certificate.
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

impl Server {
    /// Starts a server over `data` (created on first start). `admin_token`: the token printed
    /// by an earlier start of the same folder (a first start prints a new one).
    pub fn start(data: &Path, admin_token: Option<&str>, extra: &[&str]) -> Server {
        let server = TestServer::start(&binary("as-server"), data, admin_token, extra);
        let client = HttpsClient::new(&server.base, &server.tls_pem()).expect("an HTTPS client");
        Server { server, client }
    }

    /// Kills this server and starts a new one on the same data folder (new port).
    pub fn restart(&mut self, extra: &[&str]) {
        self.server.restart(extra);
        self.client =
            HttpsClient::new(&self.server.base, &self.server.tls_pem()).expect("an HTTPS client");
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Answer {
        self.client.get(path).expect("GET")
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Answer {
        self.client
            .post(path, body.to_string().as_bytes(), None)
            .expect("POST")
    }

    /// `POST path` with a JSON body as the admin.
    pub fn admin_post(&self, path: &str, body: &Value) -> Answer {
        self.client
            .post(path, body.to_string().as_bytes(), Some(&self.admin_token))
            .expect("POST")
    }

    /// Enrolls `identities` over HTTP; returns their tokens in order.
    #[track_caller]
    pub fn enroll(&self, identities: &[&str]) -> Vec<String> {
        let answer = self.admin_post("/v1/admin/enrollments", &enrollment_request(identities));
        enrollment_tokens(&expect_status(&answer, 201))
    }

    /// Issues a credential over HTTP (signature proof of possession); returns the
    /// `Credential` answer.
    #[track_caller]
    pub fn issue(&self, identity: &str, token: &str, key: &SigningKey) -> Value {
        let answer = self.post("/v1/credentials", &issue_request(identity, token, key));
        expect_status(&answer, 201)
    }

    /// Rotates `serial` of `identity` from `current` to `new` over HTTP, signed by both keys
    /// (docs/api.md); returns the answer.
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

    /// Revokes one credential as the admin.
    #[track_caller]
    pub fn revoke_credential(&self, serial: &str) -> Value {
        let answer = self.admin_post(
            &format!("/v1/admin/credentials/{serial}/revoke"),
            &json!({"reason": "keyCompromise"}),
        );
        expect_status(&answer, 200)
    }

    /// The current checkpoint, verified with the data folder's log key.
    pub fn checkpoint(&self) -> VerifiedCheckpoint {
        let answer = self.get("/log/checkpoint");
        assert_eq!(answer.status, 200);
        open_checkpoint(&answer.body, &log_verifier(&self.data)).expect("a valid checkpoint")
    }

    /// Runs `as-server admin --server … --tls-ca … --token-file FILE ARGS…`.
    pub fn admin_cli(&self, token_file: &Path, args: &[&str]) -> Run {
        let mut all: Vec<OsString> = vec![
            "admin".into(),
            "--server".into(),
            self.base.clone().into(),
            "--tls-ca".into(),
            self.tls_cert().into(),
            "--token-file".into(),
            token_file.into(),
        ];
        all.extend(args.iter().map(OsString::from));
        Run::of(&binary("as-server"), &all)
    }
}

/// The body of `answer` as JSON, after checking its status.
#[track_caller]
pub fn expect_status(answer: &Answer, status: u16) -> Value {
    assert_eq!(
        answer.status,
        status,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.json()
}

/// Reads a PKCS#8 PEM private key (as `verifier-cli enroll` writes it).
pub fn read_key(path: &Path) -> SigningKey {
    let pem = std::fs::read_to_string(path).expect("a key file");
    SigningKey::from_pkcs8_pem(&pem).expect("a PKCS#8 Ed25519 key")
}

/// The PEM of a `Credential` JSON's certificate, written to `path`.
pub fn write_certificate(credential: &Value, path: &Path) {
    let pem = credential["certificate"].as_str().expect("a certificate");
    std::fs::write(path, pem).expect("write the certificate");
}

/// What an auditor or client trusts, copied out of the server's data folder once (so that
/// it survives whatever the AS later does to its folder): the log's verifier key, the
/// directory's VRF key (beside it, where verifier-cli looks by default), the CA certificate,
/// the server's TLS certificate.
#[derive(Debug, Clone)]
pub struct Trust {
    /// `log-key.pub` (with `vrf-key.pub` beside it).
    pub log_key: PathBuf,
    /// `ca-cert.pem`.
    pub ca: PathBuf,
    /// `tls-cert.pem`.
    pub tls: PathBuf,
}

impl Trust {
    /// Copies the anchors of data folder `data` into `dir`.
    pub fn copy_from(data: &Path, dir: &Path) -> Trust {
        std::fs::create_dir_all(dir).expect("trust folder");
        let copy = |name: &str| {
            let to = dir.join(name);
            std::fs::copy(data.join(name), &to).expect("copy a trust anchor");
            to
        };
        copy("vrf-key.pub");
        Trust {
            log_key: copy("log-key.pub"),
            ca: copy("ca-cert.pem"),
            tls: copy("tls-cert.pem"),
        }
    }
}

/// One party running `verifier-cli` (a client device, an identity owner, an auditor) with its
/// own state folder. Every call is made with `--json` and its output checked against the
/// documented fields ([`check_json_output`]).
#[derive(Debug, Clone)]
pub struct Verifier {
    /// Trust anchors.
    pub trust: Trust,
    /// State folder.
    pub state: PathBuf,
    /// The witness policy its online commands require (`--witness-policy`), if any.
    pub policy: Option<PathBuf>,
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

impl Verifier {
    /// A party trusting `trust`, keeping its state in `state`.
    pub fn new(trust: &Trust, state: &Path) -> Verifier {
        Verifier {
            trust: trust.clone(),
            state: state.to_path_buf(),
            policy: None,
        }
    }

    /// This party, requiring the witness policy `policy` in every online command.
    pub fn requiring(mut self, policy: &Path) -> Verifier {
        self.policy = Some(policy.to_path_buf());
        self
    }

    /// `verifier-cli ARGS…` as given (no flags added), human output.
    pub fn raw(args: &[OsString]) -> Run {
        Run::of(&binary("verifier-cli"), args)
    }

    /// `verifier-cli --json COMMAND… ARGS…`, output checked against the documented fields.
    pub fn json(&self, command: &str, args: Vec<OsString>) -> (Run, Value) {
        let mut all: Vec<OsString> = vec!["--json".into()];
        all.extend(command.split(' ').map(OsString::from));
        all.extend(args);
        let run = Verifier::raw(&all);
        let value = check_json_output(command, &run);
        (run, value)
    }

    fn key_args(&self) -> Vec<OsString> {
        vec!["--log-key".into(), self.trust.log_key.clone().into()]
    }

    fn ca_args(&self) -> Vec<OsString> {
        vec!["--ca".into(), self.trust.ca.clone().into()]
    }

    /// `--log-key`, `--server`, `--tls-ca`, `--state`.
    pub fn online_args(&self, server: &str) -> Vec<OsString> {
        let mut args = self.key_args();
        args.extend([
            "--server".into(),
            server.into(),
            "--tls-ca".into(),
            self.trust.tls.clone().into(),
            "--state".into(),
            self.state.clone().into(),
        ]);
        if let Some(policy) = &self.policy {
            args.extend(["--witness-policy".into(), policy.clone().into()]);
        }
        args
    }

    /// `checkpoint fetch`.
    pub fn checkpoint_fetch(&self, server: &str) -> (Run, Value) {
        self.json("checkpoint fetch", self.online_args(server))
    }

    /// `lookup IDENTITY`.
    pub fn lookup(&self, server: &str, identity: &str) -> (Run, Value) {
        let mut args = self.online_args(server);
        args.extend(self.ca_args());
        args.push(identity.into());
        self.json("lookup", args)
    }

    /// `validate IDENTITY KEY`.
    pub fn validate(&self, server: &str, identity: &str, key: &str) -> (Run, Value) {
        let mut args = self.online_args(server);
        args.extend(self.ca_args());
        args.extend(os(&[identity, key]));
        self.json("validate", args)
    }

    /// `credential CERT`.
    pub fn credential(&self, server: &str, cert: &Path) -> (Run, Value) {
        let mut args = self.online_args(server);
        args.extend(self.ca_args());
        args.push(cert.into());
        self.json("credential", args)
    }

    /// `enroll --identity --token --key-out --out`.
    pub fn enroll(
        &self,
        server: &str,
        identity: &str,
        token: &str,
        key_out: &Path,
        out: &Path,
    ) -> (Run, Value) {
        let mut args = self.online_args(server);
        args.extend(self.ca_args());
        args.extend(os(&["--identity", identity, "--token", token]));
        args.extend([
            "--key-out".into(),
            key_out.into(),
            "--out".into(),
            out.into(),
        ]);
        let (run, value) = self.json("enroll", args);
        if run.code == 0 {
            check_credential_file(out, false);
        }
        (run, value)
    }

    /// `rotate --key --credential --key-out --out`.
    pub fn rotate(
        &self,
        server: &str,
        key: &Path,
        credential: &Path,
        key_out: &Path,
        out: &Path,
    ) -> (Run, Value) {
        let mut args = self.online_args(server);
        args.extend(self.ca_args());
        args.extend([
            "--key".into(),
            key.into(),
            "--credential".into(),
            credential.into(),
            "--key-out".into(),
            key_out.into(),
            "--out".into(),
            out.into(),
        ]);
        let (run, value) = self.json("rotate", args);
        if run.code == 0 {
            check_credential_file(out, true);
        }
        (run, value)
    }

    /// `audit --server …`.
    pub fn audit(&self, server: &str) -> (Run, Value) {
        self.json("audit", self.online_args(server))
    }

    /// `audit --tiles DIR` (a copy of the log's tiles).
    pub fn audit_tiles(&self, tiles: &Path) -> (Run, Value) {
        let mut args = self.key_args();
        args.extend([
            "--tiles".into(),
            tiles.into(),
            "--state".into(),
            self.state.clone().into(),
        ]);
        self.json("audit", args)
    }

    /// `monitor IDENTITY… --expect-keys FILE --server …`.
    pub fn monitor(&self, server: &str, identities: &[&str], expect: &Path) -> (Run, Value) {
        let mut args = self.online_args(server);
        args.extend(self.ca_args());
        args.extend(["--expect-keys".into(), expect.into()]);
        args.extend(os(identities));
        self.json("monitor", args)
    }

    /// `bundle verify FILE` (offline).
    pub fn bundle_verify(&self, file: &Path) -> (Run, Value) {
        let mut args = self.key_args();
        args.extend(self.ca_args());
        args.push(file.into());
        self.json("bundle verify", args)
    }

    /// `fork verify FILE` (offline).
    pub fn fork_verify(&self, file: &Path) -> (Run, Value) {
        let mut args = self.key_args();
        args.push(file.into());
        self.json("fork verify", args)
    }

    /// `compare A B` (offline; evidence goes to this party's state folder).
    pub fn compare(&self, a: &Path, b: &Path) -> (Run, Value) {
        let mut args = self.key_args();
        args.extend([
            "--state".into(),
            self.state.clone().into(),
            a.into(),
            b.into(),
        ]);
        self.json("compare", args)
    }

    /// The size of the checkpoint saved in this party's state (None before the first).
    pub fn saved_size(&self) -> Option<u64> {
        let path = self.state.join(escape_origin(ORIGIN)).join("checkpoint");
        let note = std::fs::read(path).ok()?;
        let verifier = NoteVerifier::parse(
            std::fs::read_to_string(&self.trust.log_key)
                .expect("log key")
                .trim(),
        )
        .expect("log key");
        Some(
            open_checkpoint(&note, &verifier)
                .expect("saved checkpoint verifies")
                .size(),
        )
    }

    /// Fork evidence files in the state folder, each checked against
    /// `fork-evidence.schema.json`.
    pub fn evidence_files(&self) -> Vec<PathBuf> {
        let Ok(dir) = std::fs::read_dir(&self.state) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = dir
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("fork-"))
            })
            .collect();
        files.sort();
        for file in &files {
            check_fork_evidence(file);
        }
        files
    }
}

/// A log origin as the state folder names it (see verifier-cli's state.rs).
pub fn escape_origin(origin: &str) -> String {
    let mut out = String::new();
    for (i, b) in origin.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-') || (b == b'.' && i > 0);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Copies the key material of data folder `from` (CA, log key, TLS, admin tokens) into a new
/// data folder `to`, without the log and the state: what a malicious AS needs to serve a
/// different log under the same keys.
pub fn copy_keys(from: &Path, to: &Path) {
    test_support::server::copy_keys(from, to);
    for name in ["tls-key.pem", "tls-cert.pem"] {
        std::fs::copy(from.join(name), to.join(name)).expect("copy key material");
    }
}

/// Makes a new log at `data/log` (which must not exist) holding one forged issuance per
/// identity in `identities`, each its own batch, signed with the real keys.
pub fn forge_log(data: &Path, identities: &[String]) {
    let mut evil = EvilAs::open(data, None);
    for identity in identities {
        let entry = evil.credential(identity, &new_key().verifying_key()).0;
        evil.append(&[entry]);
    }
}

/// The malicious AS: the stopped server's key material and log, driven directly (no API, no
/// checks but the directory's transition rule), to write whatever it likes into a log and sign
/// it with the real keys. It holds the real directory key, so it can do anything the AS can:
/// give any identity a new version, with any credential the real CA signs.
pub struct EvilAs {
    /// The log (kt-log `FileStore` under the real note signer).
    pub log: Log<FileStore>,
    /// The real CA.
    pub ca: Ca,
    /// The real directory keys.
    pub keys: DirectoryKeys,
    /// The map the log makes.
    map: Map,
    /// Each identity's latest version row and its label.
    latest: HashMap<String, (Label, [u8; PROOF_LEN], u64, VersionRow)>,
}

impl EvilAs {
    /// Opens `data/log` (or `log_dir`) with the real log key, directory key and CA of `data`,
    /// and reads the directory out of it. The server on `data` must be stopped. A new log gets
    /// the empty map's entry first, as the AS starts its logs.
    pub fn open(data: &Path, log_dir: Option<&Path>) -> EvilAs {
        let skey = std::fs::read_to_string(data.join("log-key")).expect("log-key");
        let signer = NoteSigner::parse(skey.trim()).expect("a note signer");
        let key_pem = std::fs::read_to_string(data.join("ca-key.pem")).expect("ca-key.pem");
        let cert_pem = std::fs::read_to_string(data.join("ca-cert.pem")).expect("ca-cert.pem");
        let ca = Ca::load(&key_pem, &cert_pem).expect("the CA");
        let keys = DirectoryKeys::load_or_create(data).expect("the directory key");
        let dir = log_dir.map_or_else(|| data.join("log"), Path::to_path_buf);
        let store = FileStore::open(&dir).expect("the log store");
        let log = Log::open(store, signer).expect("the log");
        if log.size() == 0 {
            log.append(&[empty_map_entry()]).expect("the first entry");
        }
        let mut replay = Replay::new();
        let mut latest = HashMap::new();
        for (i, bytes) in log
            .entries(0, log.size())
            .expect("entries")
            .iter()
            .enumerate()
        {
            replay
                .apply(&PublicEntry::parse(bytes).expect("a directory entry"))
                .expect("the log follows the public rules");
            if let Some(change) = open_change(&keys, bytes).expect("a change of this AS") {
                let identity = change.entry.body.identity().to_owned();
                let previous = latest
                    .get(&identity)
                    .map(|(_, _, _, row): &(_, _, _, VersionRow)| row.clone());
                let (_, row) = make_version(
                    &change.label,
                    change.version,
                    previous.as_ref(),
                    &change.entry,
                    &change.opening,
                    change.commitment.as_ref(),
                )
                .unwrap_or_else(|e| panic!("entry {i}: {e}"));
                latest.insert(
                    identity,
                    (change.label, change.vrf_proof, change.version, row),
                );
            }
        }
        EvilAs {
            log,
            ca,
            keys,
            map: replay.into_map(),
            latest,
        }
    }

    /// A CA-signed credential for `identity` and `key` (valid from now for a day) and the
    /// `issue` change binding it; returns (change, certificate DER, serial hex).
    pub fn credential(&self, identity: &str, key: &VerifyingKey) -> (LogEntry, Vec<u8>, String) {
        let serial = random_serial().expect("a serial");
        EvilAs::certify(&self.ca, identity, key, &serial)
    }

    /// Like [`EvilAs::credential`], with any CA and serial.
    pub fn certify(
        ca: &Ca,
        identity: &str,
        key: &VerifyingKey,
        serial: &[u8; 16],
    ) -> (LogEntry, Vec<u8>, String) {
        let now = as_server::unix_now();
        let der = ca
            .issue(identity, key, serial, now, now + 86_400)
            .expect("a certificate");
        let entry = LogEntry::new(EntryBody::Issue {
            time: now,
            identity: identity.to_owned(),
            binding: Binding {
                serial: Serial(*serial),
                public_key: key.to_bytes(),
                not_before: now,
                not_after: now + 86_400,
                certificate: der.clone(),
            },
            enrollment: kt_protocol::pop::enrollment_id(&hex(serial)),
        });
        (entry, der, hex(serial))
    }

    /// Makes `changes` one batch of the directory (each its identity's next version, by the
    /// transition rule only: no history rule is checked), appends it with its map entry and
    /// signs a checkpoint. Returns the updates' range and the checkpoint.
    pub fn append(&mut self, changes: &[LogEntry]) -> (Range<u64>, Arc<SignedCheckpoint>) {
        let mut batch = Batch::new();
        let mut entries = Vec::new();
        for change in changes {
            let identity = change.body.identity().to_owned();
            let (label, proof) = match self.latest.get(&identity) {
                Some((label, proof, _, _)) => (*label, *proof),
                None => self.keys.vrf().prove(&identity),
            };
            let version = batch.next_version(&self.map, &label);
            let previous = self.latest.get(&identity).map(|(_, _, _, row)| row.clone());
            let opening = self.keys.opening(&label, version);
            let (recorded, row) =
                make_version(&label, version, previous.as_ref(), change, &opening, None)
                    .expect("the change follows the identity's record");
            batch
                .push(&self.map, &label, version, &recorded.commitment)
                .expect("the next version");
            entries.push(
                self.keys
                    .update_entry(
                        &label,
                        version,
                        &recorded.commitment,
                        &proof,
                        &change.to_bytes(),
                    )
                    .expect("an update entry"),
            );
            self.latest.insert(identity, (label, proof, version, row));
        }
        let (staged, map_entry) = batch.stage(&self.map);
        self.map.commit(staged);
        entries.push(PublicEntry::Map(map_entry).to_bytes());
        let (range, checkpoint) = self.log.append_and_sign(&entries).expect("append and sign");
        (range.start..range.end - 1, checkpoint)
    }

    /// Appends raw entries (anything, the public rules unchecked) and signs a checkpoint.
    pub fn append_raw(&self, entries: &[Vec<u8>]) -> (Range<u64>, Arc<SignedCheckpoint>) {
        self.log.append_and_sign(entries).expect("append and sign")
    }

    /// The directory's label of `identity` and its map leaf.
    pub fn leaf(&self, identity: &str) -> (Label, Option<kt_protocol::directory::hash::LeafValue>) {
        let label = self.keys.vrf().prove(identity).0;
        (label, self.map.get(&label))
    }

    /// The map the log makes.
    pub fn map(&self) -> &Map {
        &self.map
    }

    /// The proof of `identity` in the log's latest checkpoint, as the AS would answer it.
    pub fn proof(&self, identity: &str) -> kt_protocol::api::IdentityProof {
        let checkpoint = self.log.latest_checkpoint();
        let size = checkpoint.checkpoint.size;
        let (label, vrf_proof) = self.keys.vrf().prove(identity);
        let (map_proof, value) = self.map.prove(&label);
        let state = value.map(|value| {
            let (_, _, version, row) = &self.latest[identity];
            assert_eq!(*version, value.version);
            kt_protocol::api::StateProof {
                record: serde_json::from_str(&row.record).expect("a record"),
                opening: B64.encode(self.keys.opening(&label, value.version)),
                previous_head: row.previous_head.clone(),
            }
        });
        kt_protocol::api::IdentityProof {
            identity: identity.to_owned(),
            checkpoint: String::from_utf8(checkpoint.note.clone()).expect("a note"),
            map_entry: B64.encode(self.log.entry(size - 1).expect("the map entry")),
            map_entry_proof: self
                .log
                .inclusion_proof(size - 1, size)
                .expect("a proof")
                .iter()
                .map(|h| B64.encode(h.0))
                .collect(),
            vrf_proof: B64.encode(vrf_proof),
            map_proof: B64.encode(map_proof.encode()),
            state,
        }
    }

    /// Writes the log's C2SP tiles (checkpoint, hash tiles, entry bundles) to `dir`, as a
    /// mirror would serve them.
    pub fn write_tiles(&self, dir: &Path) {
        use kt_log::tiles::{tile_width, TileId, TileKind, TILE_WIDTH};
        let checkpoint = self.log.latest_checkpoint();
        let size = checkpoint.checkpoint.size;
        let write = |path: PathBuf, bytes: &[u8]| {
            std::fs::create_dir_all(path.parent().expect("a folder")).expect("a tile folder");
            std::fs::write(path, bytes).expect("a tile");
        };
        write(dir.join("checkpoint"), &checkpoint.note);
        for index in 0..size.div_ceil(TILE_WIDTH) {
            let width = tile_width(size, None, index);
            let id = TileId {
                kind: TileKind::Entries,
                index,
                width,
            };
            write(
                dir.join(id.path()),
                &self.log.entry_bundle(index, width).expect("a bundle"),
            );
        }
        let mut level = 0u8;
        while size >> (8 * u32::from(level)) > 0 {
            for index in 0..(size >> (8 * u32::from(level))).div_ceil(TILE_WIDTH) {
                let width = tile_width(size, Some(level), index);
                if width > 0 {
                    let id = TileId {
                        kind: TileKind::Hashes { level },
                        index,
                        width,
                    };
                    write(
                        dir.join(id.path()),
                        &self.log.hash_tile(level, index, width).expect("a tile"),
                    );
                }
            }
            level += 1;
        }
    }
}

/// The PEM of a DER certificate.
pub fn cert_pem(der: &[u8]) -> String {
    as_server::ca::cert_pem(der)
}

/// A temporary folder for one test; kept (and its path printed) when `E2E_KEEP` is set.
pub struct TestDir {
    path: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl TestDir {
    /// A new empty folder.
    pub fn new() -> TestDir {
        let dir = tempfile::Builder::new()
            .prefix("kt-e2e-")
            .tempdir()
            .expect("a temporary folder");
        if std::env::var_os("E2E_KEEP").is_some() {
            let path = dir.keep();
            eprintln!("test folder kept: {}", path.display());
            return TestDir { path, _dir: None };
        }
        TestDir {
            path: dir.path().to_path_buf(),
            _dir: Some(dir),
        }
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Default for TestDir {
    fn default() -> TestDir {
        TestDir::new()
    }
}

/// Copies folder `from` to `to` recursively (e.g. a stopped server's log).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a folder");
    for entry in std::fs::read_dir(from).expect("read a folder") {
        let entry = entry.expect("a folder entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

/// Writes an expected-keys file for `monitor`: one `IDENTITY KEY` line per key.
pub fn write_expected_keys(path: &Path, keys: &[(&str, &VerifyingKey)]) {
    let mut text = String::from("# identity key\n");
    for (identity, key) in keys {
        text.push_str(&format!("{identity} {}\n", key_b64(key)));
    }
    std::fs::write(path, text).expect("write the expected keys");
}
