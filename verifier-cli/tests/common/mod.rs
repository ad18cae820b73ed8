//! Test fixtures: an honest in-memory log, a CA, entries, tiles, a tiny HTTP server, and a
//! runner for the built binary.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use der::asn1::{Ia5String, OctetString};
use der::{Decode as _, Encode as _, EncodePem as _};
use ed25519_dalek::pkcs8::EncodePublicKey as _;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use kt_log::checkpoint::Checkpoint;
use kt_log::hash::{leaf_hash, node_hash};
use kt_log::note::NoteSigner;
use kt_log::tree::{self, NodeId, NodeReader};
use kt_log::Hash;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder as _, CertificateBuilder, CrlBuilder};
use x509_cert::certificate::{Rfc5280, TbsCertificate};
use x509_cert::crl::RevokedCert;
use x509_cert::ext::pkix::crl::CrlNumber;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoRef;
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, SubjectPublicKeyInfo};

pub const ORIGIN: &str = "example.com/log";

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn seed(n: u8) -> [u8; 32] {
    let mut s = [n; 32];
    s[0] = 0x5a;
    s
}

/// An honest log held in memory; proofs computed with kt_log::tree over a naive reader.
#[derive(Clone)]
pub struct MemLog {
    pub signer: NoteSigner,
    pub entries: Vec<Vec<u8>>,
    pub leaves: Vec<Hash>,
}

struct Reader<'a>(&'a [Hash]);

impl NodeReader for Reader<'_> {
    type Error = ();
    fn node(&self, id: NodeId) -> Result<Hash, ()> {
        fn go(leaves: &[Hash], level: u32, index: u64) -> Hash {
            if level == 0 {
                return leaves[index as usize];
            }
            node_hash(
                &go(leaves, level - 1, 2 * index),
                &go(leaves, level - 1, 2 * index + 1),
            )
        }
        Ok(go(self.0, id.level, id.index))
    }
}

impl MemLog {
    pub fn new(signer: NoteSigner) -> MemLog {
        MemLog {
            signer,
            entries: Vec::new(),
            leaves: Vec::new(),
        }
    }
    pub fn push(&mut self, entry: Vec<u8>) -> u64 {
        self.leaves.push(leaf_hash(&entry));
        self.entries.push(entry);
        self.entries.len() as u64 - 1
    }
    pub fn size(&self) -> u64 {
        self.entries.len() as u64
    }
    pub fn root(&self, size: u64) -> Hash {
        tree::range_hash(&Reader(&self.leaves), 0, size).unwrap()
    }
    pub fn checkpoint(&self, size: u64) -> String {
        let cp = Checkpoint {
            origin: self.signer.name().to_owned(),
            size,
            root: self.root(size),
            extensions: vec![],
        };
        String::from_utf8(cp.sign(&self.signer).unwrap().note).unwrap()
    }
    pub fn inclusion(&self, index: u64, size: u64) -> Vec<Hash> {
        tree::inclusion_proof(&Reader(&self.leaves), index, size).unwrap()
    }
    pub fn consistency(&self, old: u64, new: u64) -> Vec<Hash> {
        tree::consistency_proof(&Reader(&self.leaves), old, new).unwrap()
    }
    pub fn vkey(&self) -> String {
        self.signer.verifier().to_vkey()
    }
    /// Writes `DIR/checkpoint` and the entry bundles of the tree of `size` entries.
    pub fn write_tiles(&self, dir: &Path, size: u64) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("checkpoint"), self.checkpoint(size)).unwrap();
        let mut tile = 0u64;
        while tile * 256 < size {
            let end = ((tile + 1) * 256).min(size);
            let entries = &self.entries[(tile * 256) as usize..end as usize];
            let bundle = kt_log::tiles::encode_entry_bundle(entries).unwrap();
            let id = kt_log::tiles::TileId {
                kind: kt_log::tiles::TileKind::Entries,
                index: tile,
                width: (end - tile * 256) as u16,
            };
            let path = dir.join(id.path());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bundle).unwrap();
            tile += 1;
        }
    }
}

pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

pub fn hashes_json(hashes: &[Hash]) -> Value {
    json!(hashes.iter().map(|h| b64(&h.0)).collect::<Vec<_>>())
}

struct Profile {
    issuer: Name,
    subject: Name,
    extensions: Vec<Extension>,
}

impl BuilderProfile for Profile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }
    fn get_subject(&self) -> Name {
        self.subject.clone()
    }
    fn build_extensions(
        &self,
        _spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        Ok(self.extensions.clone())
    }
}

fn time(unix: u64) -> Time {
    Time::try_from(UNIX_EPOCH + Duration::from_secs(unix)).unwrap()
}

fn spki(key: &VerifyingKey) -> SubjectPublicKeyInfo {
    SubjectPublicKeyInfo::from_der(key.to_public_key_der().unwrap().as_bytes()).unwrap()
}

/// A test CA.
pub struct TestCa {
    pub key: SigningKey,
    pub cert: Certificate,
    pub der: Vec<u8>,
}

impl TestCa {
    pub fn new(n: u8) -> TestCa {
        let key = SigningKey::from_bytes(&seed(n));
        let name = Name::from_str(&format!("CN=Test CA {n}")).unwrap();
        let profile = Profile {
            issuer: name.clone(),
            subject: name,
            extensions: vec![],
        };
        let builder = CertificateBuilder::new(
            profile,
            SerialNumber::new(&[1]).unwrap(),
            Validity::new(time(now() - 86400), time(now() + 86400 * 365)),
            spki(&key.verifying_key()),
        )
        .unwrap();
        let cert = builder.build::<SigningKey, Signature>(&key).unwrap();
        let der = cert.to_der().unwrap();
        TestCa { key, cert, der }
    }
    pub fn pem(&self) -> String {
        self.cert.to_pem(der::pem::LineEnding::LF).unwrap()
    }
    /// A credential certificate (DER) for `identity` and `subject`.
    pub fn issue(
        &self,
        identity: &str,
        subject: &VerifyingKey,
        serial: &[u8],
        not_before: u64,
        not_after: u64,
    ) -> Vec<u8> {
        let san = SubjectAltName(vec![GeneralName::Rfc822Name(
            Ia5String::new(identity).unwrap(),
        )]);
        let ext = Extension {
            extn_id: <SubjectAltName as der::oid::AssociatedOid>::OID,
            critical: false,
            extn_value: OctetString::new(san.to_der().unwrap()).unwrap(),
        };
        let profile = Profile {
            issuer: self.cert.tbs_certificate().subject().clone(),
            subject: Name::from_str(&format!("CN={}", identity.replace('+', "\\+"))).unwrap(),
            extensions: vec![ext],
        };
        let builder = CertificateBuilder::new(
            profile,
            SerialNumber::new(serial).unwrap(),
            Validity::new(time(not_before), time(not_after)),
            spki(subject),
        )
        .unwrap();
        builder
            .build::<SigningKey, Signature>(&self.key)
            .unwrap()
            .to_der()
            .unwrap()
    }
    pub fn crl(&self, revoked: &[&[u8]]) -> Vec<u8> {
        let entries: Vec<RevokedCert<Rfc5280>> = revoked
            .iter()
            .map(|s| RevokedCert {
                serial_number: SerialNumber::new(s).unwrap(),
                revocation_date: time(now() - 10),
                crl_entry_extensions: None,
            })
            .collect();
        let mut b = CrlBuilder::new_with_this_update(
            &self.cert,
            CrlNumber::try_from(1u64).unwrap(),
            time(now() - 60),
        )
        .unwrap()
        .with_next_update(Some(time(now() + 3600)));
        if !entries.is_empty() {
            b = b.with_certificates(entries.into_iter());
        }
        b.build::<SigningKey, Signature>(&self.key)
            .unwrap()
            .to_der()
            .unwrap()
    }
}

pub fn pem_of(der: &[u8]) -> String {
    Certificate::from_der(der)
        .unwrap()
        .to_pem(der::pem::LineEnding::LF)
        .unwrap()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One credential: key, serial, certificate and its issue entry.
#[derive(Clone)]
pub struct Cred {
    pub identity: String,
    pub key: SigningKey,
    pub serial: [u8; 16],
    pub not_before: u64,
    pub not_after: u64,
    pub der: Vec<u8>,
    pub entry: Vec<u8>,
}

pub fn serial(n: u64) -> [u8; 16] {
    let mut s = [0u8; 16];
    s[0] = 0x11;
    s[8..].copy_from_slice(&n.to_be_bytes());
    s
}

impl Cred {
    pub fn new(ca: &TestCa, identity: &str, n: u64, validity: (u64, u64)) -> Cred {
        let mut seed = [7u8; 32];
        seed[..8].copy_from_slice(&n.to_be_bytes());
        let key = SigningKey::from_bytes(&seed);
        let serial = serial(n);
        let der = ca.issue(
            identity,
            &key.verifying_key(),
            &serial,
            validity.0,
            validity.1,
        );
        let entry = issue_entry(identity, &serial, &key.verifying_key(), validity, &der);
        Cred {
            identity: identity.to_owned(),
            key,
            serial,
            not_before: validity.0,
            not_after: validity.1,
            der,
            entry,
        }
    }
    pub fn public_b64(&self) -> String {
        b64(self.key.verifying_key().as_bytes())
    }
    /// The `Credential` object of POST /v1/credentials, logged at `index` in `log` at size.
    pub fn bundle(&self, ca: &TestCa, log: &MemLog, index: u64, size: u64) -> Value {
        json!({
            "identity": self.identity,
            "serial": hex(&self.serial),
            "certificate": pem_of(&self.der),
            "chain": [ca.pem()],
            "not_before": self.not_before,
            "not_after": self.not_after,
            "public_key": self.public_b64(),
            "log_index": index,
            "entry": b64(&log.entries[index as usize]),
            "inclusion_proof": hashes_json(&log.inclusion(index, size)),
            "checkpoint": log.checkpoint(size),
        })
    }
    /// One element of GET /v1/identities/{identity} `credentials`.
    pub fn identity_item(&self, log: &MemLog, index: u64, size: u64) -> Value {
        json!({
            "serial": hex(&self.serial),
            "public_key": self.public_b64(),
            "not_before": self.not_before,
            "not_after": self.not_after,
            "certificate": pem_of(&self.der),
            "log_index": index,
            "entry": b64(&log.entries[index as usize]),
            "inclusion_proof": hashes_json(&log.inclusion(index, size)),
        })
    }
}

pub fn issue_entry(
    identity: &str,
    serial: &[u8],
    key: &VerifyingKey,
    validity: (u64, u64),
    der: &[u8],
) -> Vec<u8> {
    format!(
        r#"{{"v":1,"type":"issue","time":{},"identity":"{identity}","serial":"{}","public_key":"{}","not_before":{},"not_after":{},"certificate":"{}","enrollment":"{}"}}"#,
        validity.0,
        hex(serial),
        b64(key.as_bytes()),
        validity.0,
        validity.1,
        b64(der),
        // One enrollment per issuance, as an honest AS logs them.
        hex(&Sha256::digest([identity.as_bytes(), serial].concat()))
    )
    .into_bytes()
}

pub fn revoke_entry(identity: &str, serials: &[&[u8]]) -> Vec<u8> {
    let list: Vec<String> = serials.iter().map(|s| format!("\"{}\"", hex(s))).collect();
    format!(
        r#"{{"v":1,"type":"revoke","time":1,"identity":"{identity}","serials":[{}],"scope":"identity","reason":"keyCompromise","admin":"ops"}}"#,
        list.join(",")
    )
    .into_bytes()
}

/// Runs the binary; returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_verifier-cli"))
        .args(args)
        .env_remove("KT_LOG_KEY")
        .env_remove("KT_CA")
        .env_remove("KT_SERVER")
        .env_remove("KT_STATE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "the binary panicked: {stderr}"
    );
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

/// Runs with `--json` and parses stdout.
pub fn run_json(args: &[&str]) -> (i32, Value) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = run(&all);
    let value: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout} / {stderr}"));
    assert_eq!(value["exit_code"], json!(code), "{value}");
    (code, value)
}

pub fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

pub fn flip_bit(bytes: &mut [u8], bit: usize) {
    bytes[bit / 8] ^= 1 << (bit % 8);
}

/// Flips one bit inside the base64 text `b64` and returns the new base64.
pub fn flip_b64(text: &str, bit: usize) -> String {
    let mut raw = B64.decode(text).unwrap();
    let bit = bit % (raw.len() * 8);
    flip_bit(&mut raw, bit);
    B64.encode(raw)
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Path → (status, body).
pub type Routes = Arc<Mutex<HashMap<String, (u16, Vec<u8>)>>>;

/// A plain-HTTP server answering from a shared routing table (path → (status, body)).
pub struct MockServer {
    pub url: String,
    pub routes: Routes,
}

impl MockServer {
    pub fn start() -> MockServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let routes: Routes = Arc::default();
        let shared = routes.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let routes = shared.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                        let mut length = 0usize;
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                                return;
                            }
                            if h == "\r\n" {
                                break;
                            }
                            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0u8; length];
                        let _ = reader.read_exact(&mut body);
                        let (status, answer) = routes
                            .lock()
                            .unwrap()
                            .get(&path)
                            .cloned()
                            .unwrap_or((404, b"{\"type\":\"https://kt-as.dev/problems/not-found\",\"title\":\"not found\",\"status\":404}".to_vec()));
                        let head = format!(
                            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n",
                            answer.len()
                        );
                        if stream.write_all(head.as_bytes()).is_err()
                            || stream.write_all(&answer).is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        MockServer { url, routes }
    }

    pub fn set(&self, path: &str, status: u16, body: impl Into<Vec<u8>>) {
        self.routes
            .lock()
            .unwrap()
            .insert(path.to_owned(), (status, body.into()));
    }

    /// Serves `log` at `size`: checkpoint, consistency proofs from every older size, tiles.
    pub fn serve_log(&self, log: &MemLog, size: u64) {
        self.set("/log/checkpoint", 200, log.checkpoint(size));
        for from in 1..size {
            self.set(
                &format!("/v1/log/proof/consistency?from={from}&to={size}"),
                200,
                json!({"from": from, "to": size, "proof": hashes_json(&log.consistency(from, size))})
                    .to_string(),
            );
        }
        let mut tile = 0u64;
        while tile * 256 < size {
            let end = ((tile + 1) * 256).min(size);
            let bundle = kt_log::tiles::encode_entry_bundle(
                &log.entries[(tile * 256) as usize..end as usize],
            )
            .unwrap();
            let id = kt_log::tiles::TileId {
                kind: kt_log::tiles::TileKind::Entries,
                index: tile,
                width: (end - tile * 256) as u16,
            };
            self.set(&format!("/log/{}", id.path()), 200, bundle);
            tile += 1;
        }
    }
}
