//! Witness policies: parsing (valid, malformed, hostile input never panics) and the quorum
//! check over checkpoints cosigned by the real cosignature/v1 code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use kt_log::checkpoint::Checkpoint;
use kt_log::cosignature::{CosignatureError, CosignatureSigner};
use kt_log::hash::empty_root;
use kt_log::note::{NoteSigner, NoteVerifier};
use kt_verify::witness_policy::{
    verify_witnessed_checkpoint, GroupShortfall, PolicyError, WitnessError, WitnessPolicy,
};
use test_support::fixtures;

const ORIGIN: &str = "example.com/log";

fn log_signer() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, &[1; 32]).unwrap()
}

fn witness(i: u8) -> CosignatureSigner {
    CosignatureSigner::from_seed(&format!("witness{i}.example"), &[10 + i; 32]).unwrap()
}

/// A checkpoint of size 3 signed by the log, cosigned by the witnesses `by`.
fn note(by: &[u8]) -> Vec<u8> {
    let cp = Checkpoint {
        origin: ORIGIN.into(),
        size: 3,
        root: empty_root(),
        extensions: vec![],
    };
    let signed = cp.sign(&log_signer()).unwrap();
    let mut note = String::from_utf8(signed.note).unwrap();
    for &i in by {
        note.push_str(
            &witness(i)
                .cosign(&cp.to_body(), 1_700_000_000 + u64::from(i))
                .unwrap(),
        );
    }
    note.into_bytes()
}

fn vkey(i: u8) -> String {
    witness(i).verifier().to_vkey()
}

fn policy(text: &str) -> WitnessPolicy {
    WitnessPolicy::parse(text.as_bytes()).unwrap()
}

fn check(by: &[u8], p: &WitnessPolicy) -> Result<Vec<String>, WitnessError> {
    verify_witnessed_checkpoint(&note(by), &log_signer().verifier(), p)
        .map(|w| w.cosignatures().iter().map(|c| c.witness.clone()).collect())
}

fn missing(r: Result<Vec<String>, WitnessError>) -> (Vec<String>, Vec<GroupShortfall>) {
    match r {
        Err(WitnessError::QuorumNotMet {
            missing, groups, ..
        }) => (missing, groups),
        other => panic!("expected QuorumNotMet, got {other:?}"),
    }
}

fn two_of_three() -> WitnessPolicy {
    policy(&format!(
        "# two of three\nlog {}\n\nwitness A {}\nwitness B {} https://b.example/\n\twitness C {}\ngroup g 2 A B C\nquorum g\n",
        log_signer().verifier().to_vkey(),
        vkey(1),
        vkey(2),
        vkey(3)
    ))
}

#[test]
fn k_of_n_groups() {
    let p = two_of_three();
    assert_eq!(p.witnesses().len(), 3);
    assert_eq!(p.witnesses()[1].url.as_deref(), Some("https://b.example/"));
    assert_eq!(check(&[1, 3], &p).unwrap(), ["A", "C"]);
    assert_eq!(check(&[3, 2, 1], &p).unwrap(), ["A", "B", "C"]);
    let w = verify_witnessed_checkpoint(&note(&[2, 3]), &log_signer().verifier(), &p).unwrap();
    assert_eq!(w.cosignatures()[0].timestamp, 1_700_000_002);
    assert_eq!(w.cosignatures()[0].key_name, "witness2.example");
    assert_eq!(w.checkpoint().size(), 3);
    let (m, g) = missing(check(&[2], &p));
    assert_eq!(m, ["A", "C"]);
    assert_eq!(
        g,
        [GroupShortfall {
            group: "g".into(),
            have: 1,
            need: 2
        }]
    );
    let err = check(&[], &p).unwrap_err().to_string();
    assert!(err.contains("missing cosignatures by A, B, C"), "{err}");
    assert!(err.contains("g (0 of 2 needed)"), "{err}");
}

#[test]
fn all_any_single_and_none() {
    let all = policy(&format!(
        "witness A {}\nwitness B {}\ngroup g all A B\nquorum g\n",
        vkey(1),
        vkey(2)
    ));
    assert!(check(&[1, 2], &all).is_ok());
    assert_eq!(missing(check(&[1], &all)).0, ["B"]);
    let any = policy(&format!(
        "witness A {}\nwitness B {}\ngroup g any A B\nquorum g\n",
        vkey(1),
        vkey(2)
    ));
    assert!(check(&[2], &any).is_ok());
    assert_eq!(missing(check(&[], &any)).0, ["A", "B"]);
    let single = policy(&format!("witness A {}\nquorum A\n", vkey(1)));
    assert!(check(&[1], &single).is_ok());
    assert_eq!(missing(check(&[2], &single)).0, ["A"]);
    // quorum none: the log's signature suffices; witnesses listed are still checked.
    let none = policy(&format!("witness A {}\nquorum none\n", vkey(1)));
    assert_eq!(none.quorum_name(), "none");
    assert_eq!(check(&[], &none).unwrap(), Vec::<String>::new());
    assert_eq!(check(&[1], &none).unwrap(), ["A"]);
    assert!(check(&[], &policy("quorum none")).is_ok());
}

#[test]
fn nested_groups() {
    // Two of the X witnesses and one of the Y witnesses (the spec's example).
    let p = policy(&format!(
        "witness X1 {}\nwitness X2 {}\nwitness X3 {}\ngroup X 2 X1 X2 X3\n\
         witness Y1 {}\nwitness Y2 {}\ngroup Y any Y1 Y2\ngroup XY all X Y\nquorum XY\n",
        vkey(1),
        vkey(2),
        vkey(3),
        vkey(4),
        vkey(5)
    ));
    assert!(check(&[1, 2, 5], &p).is_ok());
    assert!(check(&[1, 3, 4], &p).is_ok());
    let (m, g) = missing(check(&[1, 2], &p));
    assert_eq!(m, ["X3", "Y1", "Y2"]);
    let names: Vec<&str> = g.iter().map(|g| g.group.as_str()).collect();
    assert_eq!(names, ["Y", "XY"]);
    let (_, g) = missing(check(&[1, 4, 5], &p));
    assert_eq!(g[0].group, "X");
}

#[test]
fn witnesses_outside_the_quorum_are_not_named_missing() {
    let p = policy(&format!(
        "witness A {}\nwitness B {}\nquorum A\n",
        vkey(1),
        vkey(2)
    ));
    assert_eq!(missing(check(&[], &p)).0, ["A"]);
}

#[test]
fn bad_cosignatures_by_policy_witnesses_are_errors() {
    let p = two_of_three();
    // A cosignature over another checkpoint, pasted onto this one.
    let other = Checkpoint {
        origin: ORIGIN.into(),
        size: 4,
        root: empty_root(),
        extensions: vec![],
    };
    let mut forged = String::from_utf8(note(&[1, 2])).unwrap();
    forged.push_str(&witness(3).cosign(&other.to_body(), 5).unwrap());
    let err =
        verify_witnessed_checkpoint(forged.as_bytes(), &log_signer().verifier(), &p).unwrap_err();
    assert_eq!(
        err,
        WitnessError::BadCosignature {
            witness: "C".into(),
            reason: CosignatureError::Invalid("witness3.example".into())
        }
    );
    // Two lines by one witness.
    let twice = note(&[1, 2, 2]);
    assert!(matches!(
        verify_witnessed_checkpoint(&twice, &log_signer().verifier(), &p),
        Err(WitnessError::BadCosignature { witness, .. }) if witness == "B"
    ));
    // Unknown signers (another witness key, another note key) are ignored.
    let mut extra = String::from_utf8(note(&[1, 2])).unwrap();
    extra.push_str(&witness(9).cosign("whatever\n", 5).unwrap());
    extra.push_str(
        &NoteSigner::from_seed("other", &[3; 32])
            .unwrap()
            .signature_line("x\n"),
    );
    assert!(verify_witnessed_checkpoint(extra.as_bytes(), &log_signer().verifier(), &p).is_ok());
}

#[test]
fn the_log_signature_and_the_policy_logs_are_checked() {
    let p = two_of_three();
    let stranger = NoteSigner::from_seed(ORIGIN, &[2; 32]).unwrap().verifier();
    assert!(matches!(
        verify_witnessed_checkpoint(&note(&[1, 2]), &stranger, &p),
        Err(WitnessError::Checkpoint(_))
    ));
    // A policy for another log.
    let other = policy(&format!(
        "log {}\nquorum none\n",
        NoteSigner::from_seed("other.example/log", &[4; 32])
            .unwrap()
            .verifier()
            .to_vkey()
    ));
    assert_eq!(
        check(&[], &other),
        Err(WitnessError::LogNotInPolicy { log: ORIGIN.into() })
    );
    // No log lines: the log is known from context.
    assert!(check(&[], &policy("quorum none\n")).is_ok());
}

fn parse_err(text: &str) -> String {
    match WitnessPolicy::parse(text.as_bytes()) {
        Err(e) => e.to_string(),
        Ok(p) => panic!("accepted {text:?}: {p:?}"),
    }
}

#[test]
fn malformed_policies_are_refused() {
    let a = vkey(1);
    let b = vkey(2);
    let log = log_signer().verifier().to_vkey();
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "no quorum"),
        (format!("witness A {a}\n"), "no quorum"),
        ("quorum none\nquorum none\n".into(), "second quorum"),
        ("quorum A\n".into(), "not defined above"),
        (format!("quorum A\nwitness A {a}\n"), "not defined above"),
        (
            format!("witness A {a}\nwitness A {b}\nquorum A\n"),
            "defined twice",
        ),
        (
            format!("witness A {a}\nwitness B {a}\nquorum A\n"),
            "public key of witness",
        ),
        (
            format!("log {log}\nlog {log}\nquorum none\n"),
            "duplicate log",
        ),
        (format!("witness none {a}\nquorum none\n"), "reserved"),
        (
            format!("witness A {a}\ngroup g any none A\nquorum g\n"),
            "cannot be a group member",
        ),
        (
            format!("witness A {a}\ngroup g any A A\nquorum g\n"),
            "listed twice",
        ),
        (
            format!("witness A {a}\ngroup g 2 A\nquorum g\n"),
            "not between 1 and 1",
        ),
        (
            format!("witness A {a}\ngroup g 0 A\nquorum g\n"),
            "not between",
        ),
        (
            format!("witness A {a}\ngroup g 99999999999999999999999 A\nquorum g\n"),
            "not between",
        ),
        (
            format!("witness A {a}\ngroup g -1 A\nquorum g\n"),
            "not all, any or a number",
        ),
        (
            format!("witness A {a}\ngroup g some A\nquorum g\n"),
            "not all, any or a number",
        ),
        ("group g any\nquorum none\n".into(), "has no members"),
        ("group g\nquorum none\n".into(), "expected `group"),
        (
            format!("witness A {a}\ngroup A any A\nquorum A\n"),
            "defined twice",
        ),
        (
            format!("witness A {a}\ngroup g any B\nquorum g\n"),
            "not defined above",
        ),
        ("witness A\nquorum none\n".into(), "expected `witness"),
        (
            format!("witness A {a} url extra\nquorum none\n"),
            "expected `witness",
        ),
        (format!("witness A {log}\nquorum none\n"), "key"),
        (format!("log {a}\nquorum none\n"), "log key"),
        ("quorum\n".into(), "expected `quorum"),
        ("quorum none extra\n".into(), "expected `quorum"),
        ("witnesses A\nquorum none\n".into(), "unknown keyword"),
        ("quorum none\r\n".into(), "control character"),
        ("quorum none\n\0".into(), "line 2: control character"),
    ];
    for (text, want) in cases {
        let err = parse_err(&text);
        assert!(err.contains(want), "{text:?}: {err} (wanted {want})");
    }
    assert!(WitnessPolicy::parse(b"quorum \xff\n").is_err());
    assert_eq!(
        WitnessPolicy::parse(&vec![b'#'; (1 << 20) + 1]),
        Err(PolicyError::TooLarge)
    );
}

#[test]
fn hostile_input_never_panics() {
    // Every truncation and many single-byte corruptions of a valid policy, and of a cosigned
    // note, are refused or accepted without panicking.
    let text = format!(
        "log {}\nwitness A {}\nwitness B {}\ngroup g 1 A B\ngroup h all g\nquorum h\n",
        log_signer().verifier().to_vkey(),
        vkey(1),
        vkey(2)
    );
    let bytes = text.as_bytes();
    for cut in 0..bytes.len() {
        let _ = WitnessPolicy::parse(&bytes[..cut]);
    }
    for i in 0..bytes.len() {
        for b in [0u8, b' ', b'\n', b'#', 0xff, b'9'] {
            let mut m = bytes.to_vec();
            m[i] = b;
            let _ = WitnessPolicy::parse(&m);
        }
    }
    let p = policy(&text);
    let n = note(&[1, 2]);
    let v = log_signer().verifier();
    assert!(verify_witnessed_checkpoint(&n, &v, &p).is_ok());
    for cut in 0..n.len() {
        let _ = verify_witnessed_checkpoint(&n[..cut], &v, &p);
    }
    for i in 0..n.len() {
        let mut m = n.clone();
        m[i] ^= 0x01;
        let _ = verify_witnessed_checkpoint(&m, &v, &p);
    }
}

#[test]
fn a_verifier_of_the_wrong_key_kind_is_refused() {
    let _ = NoteVerifier::parse(&log_signer().verifier().to_vkey()).unwrap();
    assert!(parse_err(&format!(
        "witness A {}\nquorum A\n",
        log_signer().verifier().to_vkey()
    ))
    .contains("witness \"A\" key"));
}

#[test]
fn a_large_policy_parses_quickly() {
    // The limits: 1024 witnesses, then groups over all of them; well under a second.
    let mut text = String::new();
    for i in 0..1024u32 {
        let s = CosignatureSigner::from_seed(&format!("w{i}"), &{
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&i.to_be_bytes());
            seed
        })
        .unwrap();
        text.push_str(&format!("witness n{i} {}\n", s.verifier().to_vkey()));
    }
    let members: Vec<String> = (0..1024).map(|i| format!("n{i}")).collect();
    for g in 0..8 {
        text.push_str(&format!("group g{g} 512 {}\n", members.join(" ")));
    }
    text.push_str("quorum g7\n");
    let started = std::time::Instant::now();
    let p = WitnessPolicy::parse(text.as_bytes()).unwrap();
    assert_eq!(p.witnesses().len(), 1024);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let over = format!("{text}witness extra {}\n", vkey(1));
    assert!(parse_err(&over).contains("too many witnesses"));
    let (m, _) = missing(check(&[1], &p));
    assert_eq!(m.len(), 1024);
}

/// A log of 9 entries; the policy "2 of A, B, C" over it.
fn covered_world() -> (fixtures::MemLog, WitnessPolicy) {
    let mut log = fixtures::MemLog::new(log_signer());
    for i in 0..9u8 {
        log.push(vec![i; 10]);
    }
    (log, two_of_three())
}

/// The checkpoint of `size` of `log`, cosigned by witnesses `by`.
fn cosigned_at(log: &fixtures::MemLog, size: u64, by: &[u8]) -> Vec<u8> {
    let mut note = log.checkpoint(size);
    let body = note[..note.find("\n\n").unwrap() + 1].to_owned();
    for &i in by {
        note.push_str(&witness(i).cosign(&body, 1_700_000_000).unwrap());
    }
    note.into_bytes()
}

#[test]
fn a_log_signed_checkpoint_is_covered_by_a_later_cosigned_one() {
    use kt_log::checkpoint::open_checkpoint;
    use kt_verify::witness_policy::{check_covered, CoverError};
    let (log, p) = covered_world();
    let key = log_signer().verifier();
    let answer = open_checkpoint(log.checkpoint(5).as_bytes(), &key).unwrap();
    let cosigned = cosigned_at(&log, 9, &[1, 2]);
    let witnessed = check_covered(&answer, &cosigned, &log.consistency(5, 9), &key, &p).unwrap();
    assert_eq!(witnessed.checkpoint().size(), 9);
    // The same size: an empty proof.
    let same = cosigned_at(&log, 5, &[2, 3]);
    check_covered(&answer, &same, &[], &key, &p).unwrap();

    // Not the quorum; older; a wrong proof; a fork (another log of the same key).
    assert!(matches!(
        check_covered(
            &answer,
            &cosigned_at(&log, 9, &[1]),
            &log.consistency(5, 9),
            &key,
            &p
        ),
        Err(CoverError::Witnessed(WitnessError::QuorumNotMet { .. }))
    ));
    assert!(matches!(
        check_covered(&answer, &cosigned_at(&log, 4, &[1, 2]), &[], &key, &p),
        Err(CoverError::Older {
            checkpoint: 5,
            cosigned: 4
        })
    ));
    assert!(matches!(
        check_covered(&answer, &cosigned, &log.consistency(4, 9), &key, &p),
        Err(CoverError::Inconsistent(_))
    ));
    let mut fork = fixtures::MemLog::new(log_signer());
    for i in 0..9u8 {
        fork.push(vec![i.wrapping_add(1); 10]);
    }
    let forked = cosigned_at(&fork, 9, &[1, 2]);
    assert!(matches!(
        check_covered(&answer, &forked, &fork.consistency(5, 9), &key, &p),
        Err(CoverError::Inconsistent(_))
    ));
}
