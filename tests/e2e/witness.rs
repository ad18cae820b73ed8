//! Witness cosigning end to end: two real `kt-witness` processes (plain HTTP on loopback)
//! cosign a log's checkpoint through `POST /add-checkpoint`, and the real `verifier-cli`
//! with `--witness-policy` accepts the checkpoint cosigned by both (the quorum) and refuses
//! the one missing a witness, naming it.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use e2e_tests::{binary, Run};
use kt_log::checkpoint::Checkpoint;
use kt_log::hash::leaf_hash;
use kt_log::note::NoteSigner;
use test_support::witness::Witness;

const ORIGIN: &str = "e2e.example/witnessed-log";

#[test]
fn a_quorum_cosigned_checkpoint_passes_and_one_missing_a_witness_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = NoteSigner::from_seed(ORIGIN, &[21; 32]).unwrap();
    let log_vkey = log.verifier().to_vkey();
    let note = Checkpoint {
        origin: ORIGIN.into(),
        size: 7,
        root: leaf_hash(b"any root: the witness checks consistency, not contents"),
        extensions: vec![],
    }
    .sign(&log)
    .unwrap()
    .note;
    let note = String::from_utf8(note).unwrap();

    let a = Witness::start(dir.path(), "witness-a.example/w", ORIGIN, &log_vkey);
    let b = Witness::start(dir.path(), "witness-b.example/w", ORIGIN, &log_vkey);
    let line_a = a.cosign(&note);
    let line_b = b.cosign(&note);

    let policy = dir.path().join("policy");
    std::fs::write(
        &policy,
        format!(
            "log {log_vkey}\nwitness A {} http://127.0.0.1:{}/\nwitness B {}\ngroup both all A B\nquorum both\n",
            a.vkey(),
            a.port,
            b.vkey()
        ),
    )
    .unwrap();
    let verify = |name: &str, text: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        Run::of(
            &binary("verifier-cli"),
            &[
                "checkpoint".into(),
                "verify".into(),
                "--log-key".into(),
                log_vkey.clone().into(),
                "--witness-policy".into(),
                policy.clone().into(),
                file.into(),
            ],
        )
    };
    // Both witnesses (the quorum): verified.
    verify("both", &format!("{note}{line_a}{line_b}")).code(0);
    // Only A: refused (exit 1), naming B.
    let run = verify("only-a", &format!("{note}{line_a}"));
    run.code(1);
    assert!(
        run.stderr.contains("missing cosignatures by B") && !run.stderr.contains("by A"),
        "{}",
        run.stderr
    );
    // Only the log's signature: refused, naming both.
    let run = verify("none", &note);
    run.code(1);
    assert!(
        run.stderr.contains("missing cosignatures by A, B"),
        "{}",
        run.stderr
    );
    // B's cosignature with its key id but a tampered signature: refused as a bad cosignature.
    let (head, sig) = line_b.trim_end().rsplit_once(' ').unwrap();
    let mut raw = B64.decode(sig).unwrap();
    raw[40] ^= 0x01;
    let tampered = format!("{head} {}", B64.encode(raw));
    let run = verify("tampered", &format!("{note}{line_a}{tampered}\n"));
    run.code(1);
    assert!(
        run.stderr.contains("bad cosignature by witness \"B\""),
        "{}",
        run.stderr
    );
}
