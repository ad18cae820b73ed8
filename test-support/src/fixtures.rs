//! Pure test fixtures: an honest in-memory log, a test CA with its certificates and CRLs,
//! credentials and entries, an honest in-memory directory. Shared by verifier-cli's tests and
//! kt-verify's, so both test the same objects.

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

/// The origin of the fixtures' logs.
pub const ORIGIN: &str = "example.com/log";

/// Unix time now, in seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A fixed key seed, one for each `n`.
pub fn seed(n: u8) -> [u8; 32] {
    let mut s = [n; 32];
    s[0] = 0x5a;
    s
}

/// An honest log held in memory; proofs computed with kt_log::tree over a naive reader.
#[derive(Clone)]
pub struct MemLog {
    /// The log's note key.
    pub signer: NoteSigner,
    /// The entries, in order.
    pub entries: Vec<Vec<u8>>,
    /// Their leaf hashes.
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
    /// An empty log signed by `signer`.
    pub fn new(signer: NoteSigner) -> MemLog {
        MemLog {
            signer,
            entries: Vec::new(),
            leaves: Vec::new(),
        }
    }
    /// Appends `entry`; returns its index.
    pub fn push(&mut self, entry: Vec<u8>) -> u64 {
        self.leaves.push(leaf_hash(&entry));
        self.entries.push(entry);
        self.entries.len() as u64 - 1
    }
    /// How many entries it holds.
    pub fn size(&self) -> u64 {
        self.entries.len() as u64
    }
    /// The root of the tree of its first `size` entries.
    pub fn root(&self, size: u64) -> Hash {
        tree::range_hash(&Reader(&self.leaves), 0, size).unwrap()
    }
    /// The signed checkpoint (note text) of the tree of `size` entries.
    pub fn checkpoint(&self, size: u64) -> String {
        let cp = Checkpoint {
            origin: self.signer.name().to_owned(),
            size,
            root: self.root(size),
            extensions: vec![],
        };
        String::from_utf8(cp.sign(&self.signer).unwrap().note).unwrap()
    }
    /// The inclusion proof of entry `index` in the tree of `size` entries.
    pub fn inclusion(&self, index: u64, size: u64) -> Vec<Hash> {
        tree::inclusion_proof(&Reader(&self.leaves), index, size).unwrap()
    }
    /// The consistency proof from the tree of `old` entries to that of `new`.
    pub fn consistency(&self, old: u64, new: u64) -> Vec<Hash> {
        tree::consistency_proof(&Reader(&self.leaves), old, new).unwrap()
    }
    /// The note verifier key of its signer.
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

/// Standard base64.
pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// Hashes as a JSON array of base64 strings, as the API writes proofs.
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
    /// Its signing key.
    pub key: SigningKey,
    /// Its self-signed certificate.
    pub cert: Certificate,
    /// The certificate's DER.
    pub der: Vec<u8>,
}

impl TestCa {
    /// The CA named `Test CA <n>`, with a key of [`seed`]`(n)`, valid for a year.
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
    /// Its certificate's PEM.
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
    /// A CRL listing the serials `revoked`, valid for an hour.
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

/// The PEM of a DER certificate.
pub fn pem_of(der: &[u8]) -> String {
    Certificate::from_der(der)
        .unwrap()
        .to_pem(der::pem::LineEnding::LF)
        .unwrap()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One credential: key, serial, certificate and its issue entry.
#[derive(Clone)]
pub struct Cred {
    /// The identity it binds.
    pub identity: String,
    /// The subject's key.
    pub key: SigningKey,
    /// Its serial.
    pub serial: [u8; 16],
    /// Start of validity (Unix seconds).
    pub not_before: u64,
    /// End of validity (Unix seconds).
    pub not_after: u64,
    /// The certificate's DER.
    pub der: Vec<u8>,
    /// Its `issue` entry.
    pub entry: Vec<u8>,
}

/// The serial of credential `n`.
pub fn serial(n: u64) -> [u8; 16] {
    let mut s = [0u8; 16];
    s[0] = 0x11;
    s[8..].copy_from_slice(&n.to_be_bytes());
    s
}

impl Cred {
    /// Credential `n` of `identity` from `ca`, valid over `validity` (a fixed key for each `n`).
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
    /// The subject's public key, base64.
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

/// The `issue` entry of a credential, as an honest AS logs it.
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

/// The entry revoking `serials` of `identity` (scope identity).
pub fn revoke_entry(identity: &str, serials: &[&[u8]]) -> Vec<u8> {
    let list: Vec<String> = serials.iter().map(|s| format!("\"{}\"", hex(s))).collect();
    format!(
        r#"{{"v":1,"type":"revoke","time":1,"identity":"{identity}","serials":[{}],"scope":"identity","reason":"keyCompromise","admin":"ops"}}"#,
        list.join(",")
    )
    .into_bytes()
}

/// One version of an identity in a [`MemDirectory`].
#[derive(Clone, Debug)]
pub struct Version {
    /// The version's record.
    pub record: kt_protocol::directory::record::VersionRecord,
    /// The opening of its commitment.
    pub opening: [u8; 32],
    /// The head of the identity's chain before it.
    pub previous_head: [u8; 32],
    /// The head of the chain with it.
    pub head: [u8; 32],
}

/// An honest directory in memory over a [`MemLog`], made as the AS makes it: the log starts
/// with the empty map's entry, each batch of changes becomes update entries (label, version,
/// commitment, an opaque sealed change) closed by the batch's map entry.
#[derive(Clone)]
pub struct MemDirectory {
    /// The log it writes.
    pub log: MemLog,
    /// The VRF key of its labels.
    pub vrf: std::sync::Arc<kt_protocol::directory::vrf::VrfSecretKey>,
    /// The map the log makes.
    pub map: kt_protocol::directory::tree::Map,
    /// Each identity's versions, oldest first.
    pub versions: std::collections::HashMap<String, Vec<Version>>,
}

impl MemDirectory {
    /// A directory whose log, signed by `signer`, holds the empty map's entry.
    pub fn new(signer: NoteSigner) -> MemDirectory {
        let mut log = MemLog::new(signer);
        let map = kt_protocol::directory::tree::Map::new();
        log.push(
            kt_protocol::directory::public_entry::PublicEntry::Map(
                kt_protocol::directory::public_entry::MapRoot {
                    root: map.root(),
                    labels: 0,
                },
            )
            .to_bytes(),
        );
        MemDirectory {
            log,
            vrf: std::sync::Arc::new(kt_protocol::directory::vrf::VrfSecretKey::from_seed(seed(
                99,
            ))),
            map,
            versions: Default::default(),
        }
    }

    /// The VRF public key, base64 (as `vrf-key.pub` holds it).
    pub fn vrf_b64(&self) -> String {
        b64(&self.vrf.public_key().to_bytes())
    }

    /// The VRF public key.
    pub fn vrf_key(&self) -> kt_protocol::directory::vrf::VrfPublicKey {
        self.vrf.public_key().clone()
    }

    /// One batch: each change (a change entry's bytes) becomes its identity's next version.
    /// Returns the log indices of the updates.
    pub fn commit(&mut self, changes: &[Vec<u8>]) -> Vec<u64> {
        // Later changes of one identity in the same batch follow the earlier ones.
        let mut latest: std::collections::HashMap<
            String,
            kt_protocol::directory::record::VersionRecord,
        > = Default::default();
        let mut records = Vec::new();
        for bytes in changes {
            let entry = kt_protocol::entry::LogEntry::parse(bytes).unwrap();
            let identity = entry.body.identity().to_owned();
            let previous = latest.get(&identity).cloned().or_else(|| {
                self.versions
                    .get(&identity)
                    .and_then(|v| v.last())
                    .map(|v| v.record.clone())
            });
            let record =
                kt_protocol::directory::record::VersionRecord::next(previous.as_ref(), &entry)
                    .unwrap();
            latest.insert(identity, record.clone());
            records.push(record);
        }
        self.commit_records(records)
    }

    /// One batch of records as given, each its identity's next version, whether or not it
    /// follows the previous one (what a dishonest AS can commit to).
    pub fn commit_records(
        &mut self,
        records: Vec<kt_protocol::directory::record::VersionRecord>,
    ) -> Vec<u64> {
        use kt_protocol::directory::hash::{chain, commitment, EMPTY};
        use kt_protocol::directory::public_entry::{PublicEntry, Update};
        let mut batch = kt_protocol::directory::batch::Batch::new();
        let mut indices = Vec::new();
        for record in records {
            let identity = record.identity.clone();
            let (label, _) = self.vrf.prove(&identity);
            let versions = self.versions.entry(identity).or_default();
            let previous = versions.last();
            let version = previous.map_or(1, |v| v.record.version + 1);
            assert_eq!(record.version, version, "records come in version order");
            let opening: [u8; 32] = Sha256::digest(
                [
                    b"fixture opening".as_slice(),
                    &label.0,
                    &version.to_be_bytes(),
                ]
                .concat(),
            )
            .into();
            let committed = commitment(&opening, &label, version, &record.to_bytes());
            let previous_head = previous.map_or(EMPTY, |v| v.head);
            let head = chain(&previous_head, &committed);
            batch.push(&self.map, &label, version, &committed).unwrap();
            versions.push(Version {
                record,
                opening,
                previous_head,
                head,
            });
            indices.push(
                self.log.push(
                    PublicEntry::Update(Update {
                        label,
                        version,
                        commitment: committed,
                        sealed: b"sealed for the AS".to_vec(),
                    })
                    .to_bytes(),
                ),
            );
        }
        let (staged, map_entry) = batch.stage(&self.map);
        self.map.commit(staged);
        self.log.push(PublicEntry::Map(map_entry).to_bytes());
        indices
    }

    /// The proof of `identity` in the latest checkpoint.
    pub fn proof(&self, identity: &str) -> kt_protocol::api::IdentityProof {
        let size = self.log.size();
        let (label, vrf_proof) = self.vrf.prove(identity);
        let (map_proof, value) = self.map.prove(&label);
        let state = value.map(|value| {
            let v = &self.versions[identity][value.version as usize - 1];
            kt_protocol::api::StateProof {
                record: v.record.to_json(),
                opening: b64(&v.opening),
                previous_head: b64(&v.previous_head),
            }
        });
        kt_protocol::api::IdentityProof {
            identity: identity.to_owned(),
            checkpoint: self.log.checkpoint(size),
            map_entry: b64(&self.log.entries[size as usize - 1]),
            map_entry_proof: self
                .log
                .inclusion(size - 1, size)
                .iter()
                .map(|h| b64(&h.0))
                .collect(),
            vrf_proof: b64(&vrf_proof),
            map_proof: b64(&map_proof.encode()),
            state,
        }
    }

    /// `GET /v1/identities/{identity}/history?after=N`.
    pub fn history(&self, identity: &str, after: u64) -> kt_protocol::api::HistoryAnswer {
        let proof = self.proof(identity);
        let versions = self.versions.get(identity).cloned().unwrap_or_default();
        let latest = versions.len() as u64;
        let history = versions
            .iter()
            .filter(|v| v.record.version > after && v.record.version < latest)
            .map(|v| kt_protocol::api::HistoryItem {
                change: v.record.entry().expect("a record's change").to_json(),
                opening: b64(&v.opening),
            })
            .collect();
        kt_protocol::api::HistoryAnswer { proof, history }
    }

    /// The answer of the issuance of `cred` (its identity's latest state holds it).
    pub fn bundle(&self, ca: &TestCa, cred: &Cred) -> Value {
        json!({
            "identity": cred.identity,
            "serial": hex(&cred.serial),
            "certificate": pem_of(&cred.der),
            "chain": [ca.pem()],
            "not_before": cred.not_before,
            "not_after": cred.not_after,
            "public_key": cred.public_b64(),
            "directory": self.proof(&cred.identity),
        })
    }
}

/// The change revoking one credential of `identity`.
pub fn revoke_credential_entry(identity: &str, serial: &[u8]) -> Vec<u8> {
    format!(
        r#"{{"v":1,"type":"revoke","time":2,"identity":"{identity}","serials":["{}"],"scope":"credential","reason":"keyCompromise","admin":"ops"}}"#,
        hex(serial)
    )
    .into_bytes()
}

impl Cred {
    /// The change that rotates `replaces` of the same identity to this credential.
    pub fn rotate_entry(&self, replaces: &[u8]) -> Vec<u8> {
        format!(
            r#"{{"v":1,"type":"rotate","time":{},"identity":"{}","serial":"{}","public_key":"{}","not_before":{},"not_after":{},"certificate":"{}","replaces":"{}"}}"#,
            self.not_before,
            self.identity,
            hex(&self.serial),
            self.public_b64(),
            self.not_before,
            self.not_after,
            b64(&self.der),
            hex(replaces),
        )
        .into_bytes()
    }
}

/// The CRL number of a DER CRL (its `cRLNumber` extension, RFC 5280 §5.2.3), up to 128 bits.
pub fn crl_number(der: &[u8]) -> u128 {
    let crl = x509_cert::crl::CertificateList::<Rfc5280>::from_der(der).expect("a DER CRL");
    let extension = crl
        .tbs_cert_list
        .crl_extensions
        .expect("CRL extensions")
        .into_iter()
        .find(|e| e.extn_id.to_string() == "2.5.29.20")
        .expect("a CRL number");
    let number = x509_cert::ext::pkix::crl::CrlNumber::from_der(extension.extn_value.as_bytes())
        .expect("a CRL number that decodes");
    number
        .0
        .as_bytes()
        .iter()
        .fold(0u128, |n, b| (n << 8) | u128::from(*b))
}
