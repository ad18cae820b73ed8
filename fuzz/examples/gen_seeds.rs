//! Writes the seed corpora under fuzz/seeds/<target>/ from the repository's test vectors
//! (kt-log/testdata) and from real objects made with the crates' own APIs: checkpoints, notes,
//! tiles and bundles of a kt-log log, log entries, CSRs, certificates and CRLs of an as-server
//! CA, and a directory (`DirectoryDemo`: a log of update and map entries under the fuzz log
//! and directory keys, with the version records, VRF and map proofs and the answers a server
//! would give). Run from fuzz/: `cargo run --example gen_seeds [target…]` (plain stable cargo,
//! no fuzzer flags); with target names, only their folders are rewritten (certificates and
//! sealed changes carry fresh randomness, so a full run changes every such seed). Every seed
//! starts with the mode byte its target reads first (log_entry has none).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::Path;

use as_server::ca::Ca;
use as_server::entry::{
    Binding, EnrollmentId, EntryBody, LogEntry, RevocationReason, RevocationScope, Serial,
};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use der::{Encode as _, EncodePem as _};
use ed25519_dalek::SigningKey;
use kt_fuzz::{signer, witness, ORIGIN};
use kt_log::hash::Hash;
use kt_log::log::Log;
use kt_log::store::MemoryStore;
use kt_log::tiles::encode_index;
use kt_protocol::api::{CredentialAnswer, HistoryAnswer, HistoryItem, IdentityProof, StateProof};
use kt_protocol::directory::batch::Batch;
use kt_protocol::directory::hash::{commitment, Hash32, LeafValue, EMPTY};
use kt_protocol::directory::public_entry::PublicEntry;
use kt_protocol::directory::record::VersionRecord;
use kt_protocol::directory::tree::Map;
use kt_protocol::directory::vrf::Label;
use x509_cert::builder::{Builder as _, RequestBuilder};

struct Seeds {
    /// `None`: a target not asked for on the command line (nothing is written).
    dir: Option<std::path::PathBuf>,
    n: usize,
}

impl Seeds {
    fn new(target: &str) -> Seeds {
        let only: Vec<String> = std::env::args().skip(1).collect();
        if !only.is_empty() && !only.iter().any(|o| o == target) {
            return Seeds { dir: None, n: 0 };
        }
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds").join(target);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Seeds { dir: Some(dir), n: 0 }
    }
    fn add(&mut self, mode: u8, bytes: impl AsRef<[u8]>) {
        let mut data = vec![mode];
        data.extend_from_slice(bytes.as_ref());
        self.raw(data);
    }
    fn raw(&mut self, data: impl AsRef<[u8]>) {
        if let Some(dir) = &self.dir {
            self.n += 1;
            std::fs::write(dir.join(format!("seed-{:03}", self.n)), data).unwrap();
        }
    }
}

/// A directory as the AS keeps it, under the fuzz log key and the fuzz directory secret: its
/// log (update entries sealing each change, a map entry closing each batch), its map, and every
/// identity's records and chain heads, so that it can answer as the server does.
struct DirectoryDemo {
    keys: as_server::directory::keys::DirectoryKeys,
    log: Log<MemoryStore>,
    map: Map,
    batch: Batch,
    pending: Vec<Vec<u8>>,
    /// Every entry logged, in order.
    entries: Vec<Vec<u8>>,
    /// Every change made, in order (its bytes).
    changes: Vec<Vec<u8>>,
    records: HashMap<String, Vec<VersionRecord>>,
    /// Chain heads after each version, from version 0 (zeros).
    heads: HashMap<String, Vec<Hash32>>,
}

impl DirectoryDemo {
    fn new() -> DirectoryDemo {
        DirectoryDemo {
            keys: kt_fuzz::directory_keys(),
            log: Log::open(MemoryStore::new(), signer()).unwrap(),
            map: Map::new(),
            batch: Batch::new(),
            pending: Vec::new(),
            entries: Vec::new(),
            changes: Vec::new(),
            records: HashMap::new(),
            heads: HashMap::new(),
        }
    }

    fn label(&self, identity: &str) -> (Label, [u8; 80]) {
        self.keys.vrf().prove(identity)
    }

    /// Adds a change to the open batch.
    fn change(&mut self, body: EntryBody) {
        let entry = LogEntry::new(body);
        let identity = entry.body.identity().to_owned();
        let previous = self.records.get(&identity).and_then(|r| r.last());
        let record = VersionRecord::next(previous, &entry).unwrap();
        let (label, vrf_proof) = self.label(&identity);
        let version = record.version;
        let opening = self.keys.opening(&label, version);
        let committed = commitment(&opening, &label, version, &record.to_bytes());
        let value = self.batch.push(&self.map, &label, version, &committed).unwrap();
        let bytes = entry.to_bytes();
        self.pending.push(
            self.keys
                .update_entry(&label, version, &committed, &vrf_proof, &bytes)
                .unwrap(),
        );
        self.changes.push(bytes);
        self.heads.entry(identity.clone()).or_insert_with(|| vec![EMPTY]).push(value.head);
        self.records.entry(identity).or_default().push(record);
    }

    /// Closes the batch with its map entry, logs it and signs a checkpoint.
    fn close(&mut self) {
        let (staged, root) = std::mem::take(&mut self.batch).stage(&self.map);
        self.pending.push(PublicEntry::Map(root).to_bytes());
        self.log.append_and_sign(&self.pending).unwrap();
        self.entries.append(&mut self.pending);
        self.map.commit(staged);
    }

    /// The proof of `identity`'s latest state (or absence) in the latest checkpoint.
    fn prove(&self, identity: &str) -> IdentityProof {
        assert!(self.pending.is_empty(), "prove after close");
        let size = self.log.size();
        let (label, vrf_proof) = self.label(identity);
        let (map_proof, value) = self.map.prove(&label);
        let state = value.map(|value: LeafValue| {
            let record = self.records[identity].last().unwrap();
            let version = record.version;
            assert_eq!(version, value.version);
            StateProof {
                record: record.to_json(),
                opening: B64.encode(self.keys.opening(&label, version)),
                previous_head: B64.encode(self.heads[identity][version as usize - 1]),
            }
        });
        IdentityProof {
            identity: identity.to_owned(),
            checkpoint: String::from_utf8(self.log.latest_checkpoint().note.clone()).unwrap(),
            map_entry: B64.encode(self.log.entry(size - 1).unwrap()),
            map_entry_proof: kt_verify::wire::encode_hashes(
                &self.log.inclusion_proof(size - 1, size).unwrap(),
            ),
            vrf_proof: B64.encode(vrf_proof),
            map_proof: B64.encode(map_proof.encode()),
            state,
        }
    }

    /// The answer to `GET /v1/identities/{identity}/history?after={after}`.
    fn history(&self, identity: &str, after: usize) -> HistoryAnswer {
        let (label, _) = self.label(identity);
        let records = self.records.get(identity).map_or(&[][..], |r| &r[..]);
        let between = records.get(after..records.len().saturating_sub(1)).unwrap_or(&[]);
        HistoryAnswer {
            proof: self.prove(identity),
            history: between
                .iter()
                .map(|r| HistoryItem {
                    change: r.entry().unwrap().to_json(),
                    opening: B64.encode(self.keys.opening(&label, r.version)),
                })
                .collect(),
        }
    }

    /// The answer to an issuance or rotation that made `identity`'s latest record, for the
    /// credential `serial` in it.
    fn credential(&self, identity: &str, serial: [u8; 16], ca: &Ca) -> CredentialAnswer {
        let record = self.records[identity].last().unwrap();
        let binding = record.credentials.iter().find(|c| c.serial.0 == serial).unwrap();
        let replaces = match &record.change {
            kt_protocol::directory::record::Change::Rotate { replaces, .. } => {
                Some(replaces.to_hex())
            }
            _ => None,
        };
        CredentialAnswer {
            identity: identity.to_owned(),
            serial: binding.serial.to_hex(),
            certificate: as_server::ca::cert_pem(&binding.certificate),
            chain: vec![ca.cert_pem().to_owned()],
            not_before: binding.not_before,
            not_after: binding.not_after,
            public_key: B64.encode(binding.public_key),
            replaces,
            directory: self.prove(identity),
        }
    }
}

fn load(name: &str) -> serde_json::Value {
    let path = format!("{}/../kt-log/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hash_hex(v: &serde_json::Value) -> Vec<u8> {
    unhex(v.as_str().unwrap())
}

fn main() {
    let vectors = load("rfc6962.json");
    let notes = load("signed-note.json");
    let leaves: Vec<Vec<u8>> = vectors["leaves_hex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| unhex(l.as_str().unwrap()))
        .collect();

    // A real log with the fuzz key: checkpoints, tiles and bundles.
    let log = Log::open(MemoryStore::new(), signer()).unwrap();
    let mut checkpoints = vec![log.latest_checkpoint().note.clone()];
    log.append_and_sign(&leaves).unwrap();
    checkpoints.push(log.latest_checkpoint().note.clone());
    let many: Vec<Vec<u8>> = (0..300u32).map(|i| i.to_be_bytes().to_vec()).collect();
    log.append_and_sign(&many).unwrap();
    checkpoints.push(log.latest_checkpoint().note.clone());

    // note
    let mut s = Seeds::new("note");
    for n in notes["notes"].as_array().unwrap() {
        let text = n["text"].as_str().unwrap();
        let line = n["signature_line"].as_str().unwrap();
        s.add(0, format!("{text}\n{line}"));
        s.add(1, text);
        s.add(2, n["vkey"].as_str().unwrap());
        if let Some(skey) = n["skey"].as_str() {
            s.add(3, skey);
        }
    }
    let cosigned = {
        let text = "fuzz.example/log\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        format!("{}{}", signer().sign(text).unwrap(), witness().signature_line(text))
    };
    s.add(0, &cosigned);
    s.add(0, &checkpoints[1]);
    s.add(0x11, "hello\n\0\u{2014} unknown.example AAAAAAA=\n");
    s.add(0x31, "fuzz.example/log\n2\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n");
    let rotation = {
        let text = "two keys of one name\n";
        format!("{}{}", signer().sign(text).unwrap(), kt_fuzz::rotated().signature_line(text))
    };
    s.add(0, &rotation);
    s.add(2, signer().verifier().to_vkey());
    s.add(3, signer().to_skey());
    println!("note: {}", s.n);

    // checkpoint
    let mut s = Seeds::new("checkpoint");
    for note in &checkpoints {
        let text = std::str::from_utf8(note).unwrap();
        let body = &text[..text.rfind("\n\n").unwrap() + 1];
        s.add(0, body);
        s.add(1, note);
        s.add(2, body.strip_prefix(&format!("{ORIGIN}\n")).unwrap());
    }
    s.add(0, "example.com/log\n12345\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\next line\n");
    s.add(1, cosigned.as_bytes());
    s.add(2, "8\nXcjjdOIqP0qbb1F1ZQ0mmrpx5uCvUGUEngUPN7zJLAk=\nwitness: x\n");
    println!("checkpoint: {}", s.n);

    // tiles
    let mut s = Seeds::new("tiles");
    for path in [
        "tile/0/000",
        "tile/0/x001/x234/067.p/8",
        "tile/entries/000.p/5",
        "tile/entries/x018/x446/x744/x073/x709/x551/615",
        "tile/63/000.p/1",
        "tile/1/000.p/255",
    ] {
        s.add(0, path);
    }
    for n in [0u64, 999, 1000, 1_234_067, u64::MAX] {
        s.add(1, encode_index(n));
    }
    s.add(2, log.hash_tile(0, 0, 256).unwrap());
    s.add(2, log.hash_tile(0, 1, 52).unwrap());
    s.add(2, log.hash_tile(1, 0, 1).unwrap());
    let bundle = log.entry_bundle(0, 8).unwrap();
    s.add(3, [&[1u8, 8][..], &bundle].concat());
    let bundle = log.entry_bundle(1, 52).unwrap();
    s.add(3, [&[1u8, 52][..], &bundle].concat());
    s.add(3, [0u8]);
    s.add(3, [8u8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 1, 7]);
    println!("tiles: {}", s.n);

    // verify: the vectors' proofs in the raw layout, and differential parameters.
    let mut s = Seeds::new("verify");
    for p in vectors["inclusion"].as_array().unwrap() {
        let mut d = Vec::new();
        d.extend_from_slice(&p["leaf_index"].as_u64().unwrap().to_be_bytes());
        d.extend_from_slice(&p["tree_size"].as_u64().unwrap().to_be_bytes());
        d.extend(hash_hex(&p["leaf_hash"]));
        d.extend(hash_hex(&p["root"]));
        for h in p["proof"].as_array().unwrap() {
            d.extend(hash_hex(h));
        }
        s.add(0, d);
    }
    for p in vectors["consistency"].as_array().unwrap() {
        let mut d = Vec::new();
        d.extend_from_slice(&p["old_size"].as_u64().unwrap().to_be_bytes());
        d.extend_from_slice(&p["new_size"].as_u64().unwrap().to_be_bytes());
        d.extend(hash_hex(&p["old_root"]));
        d.extend(hash_hex(&p["new_root"]));
        for h in p["proof"].as_array().unwrap() {
            d.extend(hash_hex(h));
        }
        s.add(0x10, d);
    }
    let param = |a: &[u64], how: u8| {
        let mut d: Vec<u8> = a.iter().flat_map(|x| x.to_be_bytes()).collect();
        d.push(how);
        d
    };
    for (size, idx, old) in [(7u64, 3u64, 4u64), (8, 0, 8), (300, 299, 17), (1, 0, 1), (256, 128, 255)] {
        let mut d = (size as u16).to_be_bytes().to_vec();
        d.extend(param(&[idx, old, 0x0102], 0));
        s.add(1, &d);
        d.pop();
        d.push(1);
        s.add(1, &d);
    }
    for (size, idx, old) in [
        (u64::MAX, u64::MAX - 1, u64::MAX - 2),
        (1 << 63, (1 << 63) - 1, 1 << 62),
        ((1 << 63) + 1, 1 << 63, (1 << 63) + 1),
        (12_345_678_901, 42, 9_876_543_210),
    ] {
        s.add(2, param(&[size, idx, old, 7], 2));
    }
    s.add(0, param(&[u64::MAX, u64::MAX - 1], 0));
    s.add(0x10, param(&[u64::MAX - 1, u64::MAX], 0));
    println!("verify: {}", s.n);

    // identity
    let mut s = Seeds::new("identity");
    for (i, id) in [
        "alice@example.com",
        "a.b+c_d-e@sub.example.org",
        "x@a1.b2",
        "alice@xn--80ak6aa92e.com",
        "carol+work@example.org",
        "alice@123.example.com",
        "Alice@example.com",
        "alice@example..com",
        "ab--c@ab--cd.example",
        "a@1.2",
    ]
    .iter()
    .enumerate()
    {
        s.add((i % 4) as u8, id);
    }
    println!("identity: {}", s.n);

    // A CA, a credential, a CRL.
    let now = 1_700_000_000;
    let ca = Ca::generate("KT-AS Credential CA", now, 10 * 365 * 86_400).unwrap();
    let key = SigningKey::from_bytes(&[3u8; 32]);
    let serial = [0x11u8; 16];
    let cert = ca
        .issue("alice@example.com", &key.verifying_key(), &serial, now, now + 86_400)
        .unwrap();
    let crl_empty = ca.crl(&[], 1, now, 3600).unwrap();
    let crl = ca
        .crl(
            &[(serial, now, RevocationReason::KeyCompromise), ([0x22; 16], now, RevocationReason::Superseded)],
            2,
            now,
            3600,
        )
        .unwrap();

    // log_entry: one of each type, in the one byte form.
    let mut s = Seeds::new("log_entry");
    let binding = Binding {
        serial: Serial(serial),
        public_key: key.verifying_key().to_bytes(),
        not_before: now,
        not_after: now + 86_400,
        certificate: cert.clone(),
    };
    let entries = [
        EntryBody::Issue {
            time: now,
            identity: "alice@example.com".into(),
            binding: binding.clone(),
            enrollment: EnrollmentId([0xab; 32]),
        },
        EntryBody::Rotate {
            time: now + 60,
            identity: "alice@example.com".into(),
            binding: Binding { certificate: vec![0x30, 0x00], ..binding.clone() },
            replaces: Serial([0x22; 16]),
        },
        EntryBody::Revoke {
            time: now + 120,
            identity: "alice@example.com".into(),
            serials: vec![Serial(serial), Serial([0x33; 16])],
            scope: RevocationScope::Identity,
            reason: RevocationReason::KeyCompromise,
            admin: "admin".into(),
        },
        EntryBody::Revoke {
            time: now + 130,
            identity: "bob@example.com".into(),
            serials: vec![Serial([0x44; 16])],
            scope: RevocationScope::Credential,
            reason: RevocationReason::Superseded,
            admin: "ops".into(),
        },
        EntryBody::Enable {
            time: now + 180,
            identity: "alice@example.com".into(),
            admin: "admin".into(),
        },
    ];
    for body in entries {
        s.raw(LogEntry::new(body).to_bytes());
    }
    println!("log_entry: {}", s.n);

    // csr
    let mut s = Seeds::new("csr");
    let csr_for = |subject: &str| {
        RequestBuilder::new(subject.parse().unwrap())
            .unwrap()
            .build::<_, ed25519_dalek::Signature>(&key)
            .unwrap()
    };
    let with_id = |id: &str, rest: &[u8]| [&[id.len() as u8][..], id.as_bytes(), rest].concat();
    let alice = csr_for("CN=alice@example.com");
    let carol = csr_for("CN=carol\\+work@example.org");
    let pem = alice.to_pem(der::pem::LineEnding::LF).unwrap();
    s.add(0, with_id("alice@example.com", pem.as_bytes()));
    s.add(0, with_id("bob@example.com", pem.as_bytes()));
    s.add(0, with_id("carol+work@example.org", carol.to_pem(der::pem::LineEnding::LF).unwrap().as_bytes()));
    s.add(1, with_id("alice@example.com", &alice.to_der().unwrap()));
    s.add(1, with_id("carol+work@example.org", &carol.to_der().unwrap()));
    s.add(1, with_id("x@y.z", &csr_for("CN=x@y.z,O=Org").to_der().unwrap()));
    s.add(2, with_id("alice@example.com", b""));
    s.add(2, with_id("carol+work@example.org", b""));
    println!("csr: {}", s.n);

    // x509
    let mut s = Seeds::new("x509");
    s.add(0, &cert);
    s.add(0, ca.cert_der());
    s.add(1, &crl);
    s.add(1, &crl_empty);
    s.add(2, as_server::ca::cert_pem(&cert));
    s.add(2, &cert);
    s.add(3, ca.cert_der());
    println!("x509: {}", s.n);

    // api: bodies, segments and queries per request kind (see fuzz_targets/api.rs).
    let mut s = Seeds::new("api");
    let pk = B64.encode(key.verifying_key().as_bytes());
    let sig = B64.encode([0u8; 64]);
    s.add(0, format!(r#"{{"identity":"bob@example.com","token":"t","public_key":"{pk}","signature":"{sig}"}}"#));
    s.add(0, format!(r#"{{"identity":"bob@example.com","token":"t","csr":{}}}"#, serde_json::to_string(&pem).unwrap()));
    s.add(1, format!(r#"{{"identity":"alice@example.com","serial":"{}","public_key":"{pk}","signature_current":"{sig}","signature_new":"{sig}"}}"#, "11".repeat(16)));
    s.add(2, r#"{"identities":["carol@example.org"],"ttl_seconds":3600}"#);
    s.add(2, r#"{"identities":["dave@example.org"],"ttl_seconds":86400.0}"#);
    s.add(3, b"bob@example.com\0{\"reason\":\"keyCompromise\"}".as_slice());
    s.add(3, b"nobody@example.com\0".as_slice());
    s.add(4, b"bob@example.com\0{}".as_slice());
    s.add(5, format!("{}\0{{\"reason\":\"superseded\"}}", "22".repeat(16)));
    s.add(6, b"Bearer wrong\0{\"identities\":[]}".as_slice());
    s.add(7, "alice@example.com");
    s.add(8, "index=0&size=1");
    s.add(9, "from=0&to=1");
    s.add(10, "0");
    s.add(11, "entries/000.p/1");
    s.add(11, "0/000.p/1");
    s.add(12, b"alice@example.com\0after=0".as_slice());
    s.add(12, b"bob@example.com\0after=1".as_slice());
    println!("api: {}", s.n);

    // The directory: four batches of changes of alice, bob and carol (dave never enrolled).
    let month = 30 * 86_400;
    let credential = |identity: &str, seed: u8, serial: [u8; 16], not_before: u64| {
        let key = SigningKey::from_bytes(&[seed; 32]).verifying_key();
        let not_after = not_before + month;
        Binding {
            serial: Serial(serial),
            public_key: key.to_bytes(),
            not_before,
            not_after,
            certificate: ca.issue(identity, &key, &serial, not_before, not_after).unwrap(),
        }
    };
    let (alice, bob, carol, dave) =
        ("alice@example.com", "bob@example.com", "carol+work@example.org", "dave@example.com");
    let mut d = DirectoryDemo::new();
    let mut proofs = Vec::new(); // (identity proofs, in the order made)
    let mut bundles = Vec::new();
    let mut histories = Vec::new(); // (mode, the owner's version, answer)
    // Batch 1: alice and bob get credentials.
    d.change(EntryBody::Issue {
        time: now,
        identity: alice.into(),
        binding: credential(alice, 3, [0x11; 16], now),
        enrollment: EnrollmentId([0xa1; 32]),
    });
    d.change(EntryBody::Issue {
        time: now + 1,
        identity: bob.into(),
        binding: credential(bob, 5, [0x22; 16], now),
        enrollment: EnrollmentId([0xb1; 32]),
    });
    d.close();
    bundles.push(d.credential(alice, [0x11; 16], &ca));
    bundles.push(d.credential(bob, [0x22; 16], &ca));
    proofs.push(d.prove(dave));
    // Batch 2: alice rotates; carol gets a credential.
    d.change(EntryBody::Rotate {
        time: now + 100,
        identity: alice.into(),
        binding: credential(alice, 4, [0x33; 16], now + 100),
        replaces: Serial([0x11; 16]),
    });
    d.change(EntryBody::Issue {
        time: now + 101,
        identity: carol.into(),
        binding: credential(carol, 6, [0x44; 16], now + 100),
        enrollment: EnrollmentId([0xc1; 32]),
    });
    d.close();
    bundles.push(d.credential(alice, [0x33; 16], &ca));
    bundles.push(d.credential(carol, [0x44; 16], &ca));
    // Batch 3: a second credential for alice; bob revoked; carol's credential revoked.
    d.change(EntryBody::Issue {
        time: now + 200,
        identity: alice.into(),
        binding: credential(alice, 7, [0x55; 16], now + 200),
        enrollment: EnrollmentId([0xa2; 32]),
    });
    d.change(EntryBody::Revoke {
        time: now + 201,
        identity: bob.into(),
        serials: vec![Serial([0x22; 16])],
        scope: RevocationScope::Identity,
        reason: RevocationReason::KeyCompromise,
        admin: "admin".into(),
    });
    d.change(EntryBody::Revoke {
        time: now + 202,
        identity: carol.into(),
        serials: vec![Serial([0x44; 16])],
        scope: RevocationScope::Credential,
        reason: RevocationReason::Superseded,
        admin: "ops".into(),
    });
    d.close();
    proofs.push(d.prove(bob));
    proofs.push(d.prove(carol));
    histories.push((5, 0, d.history(bob, 0)));
    // Batch 4: bob enabled and issued again in one batch, and alice rotates again.
    d.change(EntryBody::Enable {
        time: now + 300,
        identity: bob.into(),
        admin: "admin".into(),
    });
    d.change(EntryBody::Issue {
        time: now + 301,
        identity: bob.into(),
        binding: credential(bob, 8, [0x66; 16], now + 300),
        enrollment: EnrollmentId([0xb2; 32]),
    });
    d.change(EntryBody::Rotate {
        time: now + 302,
        identity: alice.into(),
        binding: credential(alice, 9, [0x77; 16], now + 300),
        replaces: Serial([0x33; 16]),
    });
    d.close();
    bundles.push(d.credential(bob, [0x66; 16], &ca));
    bundles.push(d.credential(alice, [0x77; 16], &ca));
    for identity in [alice, bob, carol, dave] {
        proofs.push(d.prove(identity));
    }
    for (identity, after) in [(alice, 0), (alice, 2), (bob, 0), (bob, 3), (carol, 0), (dave, 0)] {
        histories.push((5, after, d.history(identity, after)));
    }
    // From a watch of the first k versions (mode 5 + 6k).
    histories.push((5 + 6, 0, d.history(alice, 0)));
    histories.push((5 + 6 * 2, 0, d.history(bob, 0)));
    histories.push((5 + 6 * 3, 0, d.history(bob, 0)));
    // The answers are real: each verifies under the fuzz keys as far as kt-verify goes without
    // the CA (which is another one in the answers target).
    let vrf = kt_fuzz::vrf_public();
    let verify = |proof: &IdentityProof| {
        let checkpoint = kt_verify::directory::answer_checkpoint(
            proof,
            &proof.identity,
            &signer().verifier(),
        )
        .unwrap();
        kt_verify::directory::verify_identity(proof, &checkpoint, &vrf).unwrap()
    };
    for proof in &proofs {
        verify(proof);
    }
    let verifier_ca = kt_verify::credential::Ca::from_bytes(ca.cert_pem().as_bytes()).unwrap();
    for bundle in &bundles {
        kt_verify::bundle::verify_bundle(bundle, &signer().verifier(), &vrf, &verifier_ca, now + 400)
            .unwrap();
    }
    for (_, after, history) in &histories {
        let identity = &history.proof.identity;
        let watch = kt_verify::monitor::Watch {
            records: d.records.get(identity).map_or(vec![], |r| r[..*after].to_vec()),
            head: d.heads.get(identity).map_or(EMPTY, |h| h[*after]),
        };
        let progress =
            kt_verify::monitor::advance(Some(&watch), history, &verify(&history.proof)).unwrap();
        let records = d.records.get(identity).map_or(&[][..], |r| &r[..]);
        assert_eq!(progress.watch.records[..], records[..progress.watch.records.len()]);
    }
    let all_records: Vec<&VersionRecord> = [alice, bob, carol]
        .iter()
        .flat_map(|id| d.records[*id].iter())
        .collect();

    // answers: real answers of the directory above, and the consistency answer, certificate
    // and CRL seeds of before.
    let mut s = Seeds::new("answers");
    for bundle in &bundles {
        s.add(0, serde_json::to_vec(bundle).unwrap());
    }
    for proof in &proofs {
        s.add(1, serde_json::to_vec(proof).unwrap());
        s.add(1, proof.to_binary().unwrap());
    }
    let proof = kt_verify::wire::encode_hashes(&log.consistency_proof(8, log.size()).unwrap());
    s.add(2, serde_json::json!({"from": 8, "to": log.size(), "proof": proof}).to_string());
    s.add(2, format!(r#"{{"from": 1, "to": 2, "proof": ["{}"]}}"#, "A".repeat(43) + "="));
    s.add(3, "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n");
    s.add(3, as_server::ca::cert_pem(&cert));
    s.add(4, [0x30, 0x03, 0x02, 0x01, 0x01]);
    s.add(4, &crl);
    for (mode, _, history) in &histories {
        s.add(*mode, serde_json::to_vec(history).unwrap());
    }
    println!("answers: {}", s.n);

    // map_proof: the directory's proofs (modes 0, 1), and maps described to the harness (2).
    let mut s = Seeds::new("map_proof");
    for identity in [alice, bob, carol, dave] {
        let (label, _) = d.label(identity);
        let (proof, value) = d.map.prove(&label);
        s.add(0, proof.encode());
        let value = value.unwrap_or(LeafValue { version: 1, head: [0x42; 32] });
        let header = [&label.0[..], &value.version.to_be_bytes(), &value.head].concat();
        s.add(1, [header, proof.encode()].concat());
    }
    // Labels for the harness's fixed map (zeros but one byte; ones), then a bit to flip.
    let (zero, _) = d.map.prove(&Label([0; 32]));
    s.add(0, zero.encode());
    let mut one_byte = [0u8; 32];
    for (at, byte, flip) in [(0usize, 0u8, 0u16), (5, 1, 77), (31, 1, 300), (31, 9, 2), (16, 8, 1000), (2, 0x40, 9)] {
        one_byte.fill(0);
        one_byte[at] = byte;
        s.add(2, [&one_byte[..], &flip.to_be_bytes()].concat());
    }
    s.add(2, [[0xffu8; 32].as_slice(), &[0, 20]].concat());
    println!("map_proof: {}", s.n);

    // public_entry: the directory's log (whole, per batch, per entry), and described logs.
    let mut s = Seeds::new("public_entry");
    s.add(0, d.entries.join(&0u8));
    let mut batch = Vec::new();
    for entry in &d.entries {
        s.add(0, entry);
        batch.push(entry.clone());
        if matches!(PublicEntry::parse(entry), Ok(PublicEntry::Map(_))) {
            s.add(0, batch.join(&0u8));
            batch.clear();
        }
    }
    let empty_map = PublicEntry::Map(kt_protocol::directory::public_entry::MapRoot {
        root: EMPTY,
        labels: 0,
    });
    s.add(0, empty_map.to_bytes());
    s.add(1, [0x00u8, 0x01, 0x80, 0x00, 0x09, 0x02, 0x80]);
    s.add(1, [0x00u8, 0x00, 0x01, 0x80, 0x05, 0x06, 0x81, 0x05, 0x06, 0x80]);
    s.add(1, [0x02u8, 0x03, 0x04, 0x82, 0x80, 0x07, 0x0f, 0x17, 0x1f, 0x07, 0x83, 0x07, 0x80]);
    s.add(1, [0x00u8, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x80, 0x00, 0x01, 0x80]);
    println!("public_entry: {}", s.n);

    // version_record: every record (canonical, as JSON, and each change on its predecessor).
    let mut s = Seeds::new("version_record");
    for record in &all_records {
        s.add(0, record.to_bytes());
    }
    for record in all_records.iter().step_by(2) {
        s.add(1, serde_json::to_vec_pretty(&record.to_json()).unwrap());
    }
    for identity in [alice, bob, carol] {
        let records = &d.records[identity];
        let changes: Vec<&Vec<u8>> = d
            .changes
            .iter()
            .filter(|c| LogEntry::parse(c).unwrap().body.identity() == identity)
            .collect();
        s.add(2, [&[0u8][..], changes[0]].concat());
        for (previous, change) in records.iter().zip(&changes[1..]) {
            s.add(2, [&previous.to_bytes()[..], &[0], change].concat());
        }
    }
    println!("version_record: {}", s.n);

    // vrf_proof: real proofs in each layout.
    let mut s = Seeds::new("vrf_proof");
    for identity in [alice, carol, "x@y.z", ""] {
        let (_, proof) = d.label(identity);
        s.add(0, [identity.as_bytes(), &[0], &proof].concat());
        s.add(1, [&proof[..], identity.as_bytes()].concat());
        s.add(2, [&[0u8, 5][..], identity.as_bytes()].concat());
        let public = d.keys.vrf().public_key().to_bytes();
        s.add(3, [&public[..], &proof, identity.as_bytes()].concat());
    }
    s.add(2, [&[0x02u8, 0x7f][..], "urn:example:device:1".as_bytes()].concat());
    println!("vrf_proof: {}", s.n);
    let _ = Hash([0; 32]);
}
