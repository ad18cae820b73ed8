//! Writes the seed corpora under fuzz/seeds/<target>/ from the repository's test vectors
//! (kt-log/testdata) and from real objects made with the crates' own APIs: checkpoints, notes,
//! tiles and bundles of a kt-log log, log entries, CSRs, certificates and CRLs of an as-server
//! CA. Run from fuzz/: `cargo run --example gen_seeds` (plain stable cargo, no fuzzer flags).
//! Every seed starts with the mode byte its target reads first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

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
use x509_cert::builder::{Builder as _, RequestBuilder};

struct Seeds {
    dir: std::path::PathBuf,
    n: usize,
}

impl Seeds {
    fn new(target: &str) -> Seeds {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds").join(target);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Seeds { dir, n: 0 }
    }
    fn add(&mut self, mode: u8, bytes: impl AsRef<[u8]>) {
        let mut data = vec![mode];
        data.extend_from_slice(bytes.as_ref());
        self.raw(data);
    }
    fn raw(&mut self, data: impl AsRef<[u8]>) {
        self.n += 1;
        std::fs::write(self.dir.join(format!("seed-{:03}", self.n)), data).unwrap();
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
    println!("api: {}", s.n);
    let _ = Hash([0; 32]);
}
