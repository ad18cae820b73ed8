//! kt_log::checkpoint: Checkpoint::parse on fuzzed bodies, open_checkpoint on raw notes and on
//! fuzzed bodies signed here by the log key. Properties: never panics; a parsed body
//! re-encodes to the same bytes (the module promises exact re-encoding) and re-parses equal;
//! a body signed by the log key opens exactly when it parses with the right origin.
#![no_main]

use std::sync::LazyLock;

use kt_fuzz::{signer, split_mode, ORIGIN};
use kt_log::checkpoint::{open_checkpoint, Checkpoint, CheckpointError};
use kt_log::note::{NoteSigner, NoteVerifier};
use libfuzzer_sys::fuzz_target;

static SIGNER: LazyLock<NoteSigner> = LazyLock::new(signer);
static VERIFIER: LazyLock<NoteVerifier> = LazyLock::new(|| signer().verifier());

fn check_body(body: &str) -> Option<Checkpoint> {
    let cp = Checkpoint::parse(body).ok()?;
    assert_eq!(cp.to_body(), body, "re-encoding differs");
    assert_eq!(Checkpoint::parse(&cp.to_body()).as_ref(), Ok(&cp));
    Some(cp)
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = split_mode(data) else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Ok(body) = std::str::from_utf8(rest) {
                check_body(body);
            }
        }
        1 => {
            if let Ok(v) = open_checkpoint(rest, &VERIFIER) {
                assert_eq!(v.note(), rest);
                assert_eq!(v.checkpoint().origin, ORIGIN);
                check_body(&v.checkpoint().to_body());
            }
        }
        _ => {
            // The log's origin line, then the fuzzed rest of the body, signed by the log key.
            let Ok(tail) = std::str::from_utf8(rest) else {
                return;
            };
            let body = format!("{ORIGIN}\n{tail}");
            let Ok(note) = SIGNER.sign(&body) else {
                return; // not note text (control characters, no final newline)
            };
            let parsed = Checkpoint::parse(&body);
            let opened = open_checkpoint(note.as_bytes(), &VERIFIER);
            match (&parsed, &opened) {
                (Ok(cp), Ok(v)) => assert_eq!(v.checkpoint(), cp),
                (Err(_), Err(CheckpointError::Malformed(_))) => {}
                // A tail with a blank line moves the note's signature split: then the note
                // itself is refused, which is fine as long as nothing panics.
                (_, Err(CheckpointError::Note(_))) if body.contains("\n\n") => {}
                other => panic!("parse and open disagree on {body:?}: {other:?}"),
            }
        }
    }
});
