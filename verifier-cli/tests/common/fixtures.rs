//! Pure test fixtures: an honest in-memory log, a test CA with its certificates and CRLs,
//! credentials and entries. Shared by verifier-cli's tests (through `common`) and
//! kt-verify's (by path), so both test the same objects.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::Path;
use std::str::FromStr as _;
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
        let name = GeneralName::Rfc822Name(Ia5String::new(identity).unwrap());
        self.issue_named(identity, name, subject, serial, not_before, not_after)
    }
    /// Like [`TestCa::issue`], with the subjectAltName `name`.
    pub fn issue_named(
        &self,
        identity: &str,
        name: GeneralName,
        subject: &VerifyingKey,
        serial: &[u8],
        not_before: u64,
        not_after: u64,
    ) -> Vec<u8> {
        let san = SubjectAltName(vec![name]);
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
