//! The witness core in process: every answer of the spec, cosignatures checked by a second
//! implementation, evidence, state across a reopen.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{config_text, independent_verify, note_text, TestLog};
use kt_log::note::NoteSigner;
use kt_log::Hash;
use kt_witness::config::Config;
use kt_witness::evidence::{Evidence, Finding};
use kt_witness::witness::{AddError, Witness};

const NAME: &str = "witness.example/w1";

fn open(dir: &std::path::Path, log: &TestLog) -> Witness {
    let config = Config::parse(&config_text(NAME, &[log])).unwrap();
    Witness::open(&config, dir).unwrap()
}

#[test]
fn every_answer_of_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let log = TestLog::new("example.com/log", 40);
    let w = open(dir.path(), &log);
    let status = |r: Result<String, AddError>| r.map(|_| 200).unwrap_or_else(|e| e.status());

    // 400: malformed bodies, old > new.
    assert_eq!(status(w.add_checkpoint(b"old 0\n")), 400);
    assert_eq!(status(w.add_checkpoint(b"nonsense")), 400);
    assert_eq!(
        status(w.add_checkpoint(&TestLog::body(6, &[], &log.note(5)))),
        400
    );
    // 404: unknown origin.
    let other = TestLog::new("other.example/log", 3);
    assert!(matches!(
        w.add_checkpoint(&other.request(0, 3)),
        Err(AddError::UnknownOrigin(_))
    ));
    // 403: signed by another key of the right name; a trusted key's signature that fails.
    let impostor = NoteSigner::generate("example.com/log").unwrap();
    let forged = log.note_with_root(5, log.root(5), &impostor);
    assert!(matches!(
        w.add_checkpoint(&TestLog::body(0, &[], &forged)),
        Err(AddError::Forbidden(_))
    ));
    let mut tampered = log.note(5);
    let at = tampered.iter().position(|&b| b == b'\n').unwrap() + 1;
    tampered[at] = b'6'; // size 5 -> 6 under the log's signature
    assert_eq!(
        status(w.add_checkpoint(&TestLog::body(0, &[], &tampered))),
        403
    );
    // 422: size 0 with another root; a proof with old 0.
    let empty_bad = log.note_with_root(0, log.root(1), &log.signer);
    assert!(matches!(
        w.add_checkpoint(&TestLog::body(0, &[], &empty_bad)),
        Err(AddError::EmptyTreeRoot)
    ));
    assert!(matches!(
        w.add_checkpoint(&TestLog::body(0, &[log.root(1)], &log.note(5))),
        Err(AddError::ProofFromZero)
    ));
    // 200: the empty tree, then size 5; cosignatures checked independently.
    let line = w.add_checkpoint(&log.request(0, 0)).unwrap();
    independent_verify(&w.verifier_key(), &note_text(&log.note(0)), &line).unwrap();
    let line = w.add_checkpoint(&log.request(0, 5)).unwrap();
    let t = independent_verify(&w.verifier_key(), &note_text(&log.note(5)), &line).unwrap();
    assert!(t > 1_700_000_000);
    assert_eq!(w.latest_size("example.com/log"), Some(5));
    // 409: old is not the stored size; the answer carries it.
    assert!(matches!(
        w.add_checkpoint(&log.request(0, 7)),
        Err(AddError::Conflict { latest: 5 })
    ));
    assert!(matches!(
        w.add_checkpoint(&log.request(3, 7)),
        Err(AddError::Conflict { latest: 5 })
    ));
    // 422: a bad proof; the same size with another root (a split view: evidence).
    let mut bad = log.proof(5, 9);
    bad[0] = Hash([7; 32]);
    assert!(matches!(
        w.add_checkpoint(&TestLog::body(5, &bad, &log.note(9))),
        Err(AddError::BadProof(_))
    ));
    assert!(matches!(
        w.add_checkpoint(&TestLog::body(5, &[], &log.fork_note(5))),
        Err(AddError::SameSizeOtherRoot)
    ));
    // The same size and root again: re-cosigned (a fresh timestamp), state unchanged.
    w.add_checkpoint(&log.request(5, 5)).unwrap();
    // 422: the same size and root with a non-empty proof.
    assert_eq!(
        status(w.add_checkpoint(&TestLog::body(5, &[log.root(1)], &log.note(5)))),
        422
    );
    // 200 onwards, and the monitoring view carries both signatures.
    w.add_checkpoint(&log.request(5, 9)).unwrap();
    w.add_checkpoint(&log.request(9, 40)).unwrap();
    let hash = kt_witness::witness::origin_hash("example.com/log");
    let served = w.latest_by_origin_hash(&hash).unwrap();
    let served = std::str::from_utf8(&served).unwrap();
    assert!(served.starts_with(&note_text(&log.note(40))));
    assert!(served.contains("\u{2014} example.com/log "));
    let own = served
        .lines()
        .find(|l| l.starts_with(&format!("\u{2014} {NAME} ")))
        .unwrap();
    independent_verify(
        &w.verifier_key(),
        &note_text(&log.note(40)),
        &format!("{own}\n"),
    )
    .unwrap();
    assert!(w.latest_by_origin_hash(&"0".repeat(64)).is_none());

    // The evidence: one split view, one failing proof, re-checkable with the log key only.
    assert_eq!(w.evidence_count(), 2);
    let mut findings = Vec::new();
    for entry in std::fs::read_dir(dir.path().join("evidence")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let evidence = Evidence::parse(&bytes).unwrap();
        assert_eq!(Evidence::parse(&evidence.to_bytes()).unwrap(), evidence);
        findings.push(evidence.check(&[log.signer.verifier()]).unwrap());
        assert!(evidence.check(&[impostor.verifier()]).is_err());
    }
    findings.sort_by_key(|f| format!("{f:?}"));
    assert_eq!(
        findings,
        vec![
            Finding::ProofFails { old: 5, new: 9 },
            Finding::SplitView { size: 5 }
        ]
    );
    // A replayed split view adds no file.
    let _ = w.add_checkpoint(&TestLog::body(40, &[], &log.fork_note(40)));
    let _ = w.add_checkpoint(&TestLog::body(40, &[], &log.fork_note(40)));
    assert_eq!(w.evidence_count(), 3);

    // Reopened, the witness holds size 40 and the same key.
    let key = w.verifier_key();
    drop(w);
    let w = open(dir.path(), &log);
    assert_eq!(w.verifier_key(), key);
    assert_eq!(w.latest_size("example.com/log"), Some(40));
    assert!(matches!(
        w.add_checkpoint(&log.request(9, 40)),
        Err(AddError::Conflict { latest: 40 })
    ));
}

#[test]
fn every_size_pair_is_accepted_with_its_proof() {
    // The witness's consistency check against the RFC 6962 proofs of the test helper.
    let log = TestLog::new("example.com/log", 10);
    for m in 0..=10 {
        for n in m..=10 {
            let dir = tempfile::tempdir().unwrap();
            let w = open(dir.path(), &log);
            if m > 0 {
                w.add_checkpoint(&log.request(0, m)).unwrap();
            }
            w.add_checkpoint(&log.request(m, n))
                .unwrap_or_else(|e| panic!("{m} -> {n}: {e}"));
        }
    }
}

#[test]
fn the_key_file_is_0600_and_bound_to_the_name() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let log = TestLog::new("example.com/log", 1);
    drop(open(dir.path(), &log));
    let mode = std::fs::metadata(dir.path().join("witness-key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let renamed = Config::parse(&config_text("other.example/w", &[&log])).unwrap();
    assert!(Witness::open(&renamed, dir.path()).is_err());
}

#[test]
fn mutated_requests_never_panic_and_never_roll_back() {
    // Untrusted input: random byte flips, truncations and insertions of valid requests.
    let dir = tempfile::tempdir().unwrap();
    let log = TestLog::new("example.com/log", 30);
    let w = open(dir.path(), &log);
    w.add_checkpoint(&log.request(0, 7)).unwrap();
    let valid = log.request(7, 30);
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).unwrap();
    let mut state = u64::from_le_bytes(seed) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut body = valid.clone();
        for _ in 0..=(next() % 3) {
            let at = (next() as usize) % body.len();
            match next() % 3 {
                0 => body[at] = next() as u8,
                1 => body.truncate(at),
                _ => body.insert(at, [b'\n', b'0', b' ', 0xe2, b'A'][(next() % 5) as usize]),
            }
            if body.is_empty() {
                break;
            }
        }
        if let Ok(line) = w.add_checkpoint(&body) {
            // Only the genuine request (or an equivalent encoding of it) may pass.
            independent_verify(&w.verifier_key(), &note_text(&log.note(30)), &line).unwrap();
        }
        assert!(w.latest_size("example.com/log").unwrap() >= 7);
    }
}

#[test]
fn extension_lines_are_cosigned_and_unknown_signatures_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let log = TestLog::new("example.com/log", 4);
    let w = open(dir.path(), &log);
    let body = format!(
        "example.com/log\n4\n{}\nextension line\n",
        base64_root(log.root(4))
    );
    let other = NoteSigner::generate("other.example/witness").unwrap();
    let mut note = log.signer.sign(&body).unwrap();
    note.push_str(&other.signature_line(&body));
    let line = w
        .add_checkpoint(&TestLog::body(0, &[], note.as_bytes()))
        .unwrap();
    // The cosigned message is the whole body, extension line included.
    independent_verify(&w.verifier_key(), &body, &line).unwrap();
    assert!(independent_verify(&w.verifier_key(), &note_text(&log.note(4)), &line).is_err());
    let served = w
        .latest_by_origin_hash(&kt_witness::witness::origin_hash("example.com/log"))
        .unwrap();
    let served = String::from_utf8(served.to_vec()).unwrap();
    assert!(served.contains("\u{2014} other.example/witness "));
}

fn base64_root(root: Hash) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(root.0)
}
