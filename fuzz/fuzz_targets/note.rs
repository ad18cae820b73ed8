//! kt_log::note: `open` on raw bytes, on notes signed here over fuzzed text (so the
//! signature-checking path is reached), and the key text parsers NoteVerifier::parse and
//! NoteSigner::parse. Properties: never panics; an opened note's text is the note's prefix,
//! ends in a newline and is vouched for by known keys (two keys of one name may both sign);
//! a note signed here by 1–3 known keys opens with all of them; parsed keys round-trip.
#![no_main]

use std::sync::LazyLock;

use kt_fuzz::{known_verifiers, rotated, signer, split_mode, split_nul, witness, ORIGIN};
use kt_log::note::{self, NoteSigner, NoteVerifier, VerifiedNote};
use libfuzzer_sys::fuzz_target;

static KNOWN: LazyLock<Vec<NoteVerifier>> = LazyLock::new(known_verifiers);
static SIGNER: LazyLock<NoteSigner> = LazyLock::new(signer);
static WITNESS: LazyLock<NoteSigner> = LazyLock::new(witness);
static ROTATED: LazyLock<NoteSigner> = LazyLock::new(rotated);

fn check_opened(note_bytes: &[u8], opened: &VerifiedNote) {
    let text = opened.text();
    assert!(note_bytes.starts_with(text.as_bytes()), "text is not the note's prefix");
    assert!(text.ends_with('\n'));
    assert!(!opened.verified_by().is_empty());
    // A key is its name and key id: two keys of one name (a rotation) may both sign, but no
    // name appears more often than there are known keys of that name.
    for name in opened.verified_by() {
        let keys = KNOWN.iter().filter(|k| k.name() == name).count();
        let times = opened.verified_by().iter().filter(|n| *n == name).count();
        assert!(keys > 0, "unknown signer {name}");
        assert!(times <= keys, "signer {name} {times} times, {keys} keys of that name");
    }
}

fn open_and_check(note_bytes: &[u8]) -> bool {
    match note::open(note_bytes, &KNOWN) {
        Ok(opened) => {
            check_opened(note_bytes, &opened);
            true
        }
        Err(_) => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = split_mode(data) else {
        return;
    };
    match mode % 4 {
        // Raw bytes as a note.
        0 => {
            open_and_check(rest);
        }
        // Fuzzed text signed by the fuzz key (and maybe the witness), then fuzzed extra lines.
        1 => {
            let (text, extra) = split_nul(rest);
            let Ok(text) = std::str::from_utf8(text) else {
                return;
            };
            let Ok(mut signed) = SIGNER.sign(text) else {
                return;
            };
            let mut signers = 1;
            if mode & 0x10 != 0 {
                signed.push_str(&WITNESS.signature_line(text));
                signers += 1;
            }
            if mode & 0x20 != 0 {
                signed.push_str(&ROTATED.signature_line(text));
                signers += 1;
            }
            let mut note_bytes = signed.into_bytes();
            note_bytes.extend_from_slice(extra);
            let ok = open_and_check(&note_bytes);
            if extra.is_empty() {
                assert!(ok, "a note signed by a known key was refused: {text:?}");
                let opened = note::open(&note_bytes, &KNOWN).expect("checked above");
                assert_eq!(opened.text(), text);
                assert_eq!(opened.verified_by().len(), signers);
                assert_eq!(opened.verified_by()[0], ORIGIN);
            }
        }
        // Verifier key text.
        2 => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            if let Ok(v) = NoteVerifier::parse(text) {
                assert_eq!(v.key_id(), note::key_id(v.name(), v.public_key().as_bytes()));
                let again = NoteVerifier::parse(&v.to_vkey()).expect("to_vkey re-parses");
                assert_eq!(again, v);
            }
        }
        // Signer key text.
        _ => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            if let Ok(s) = NoteSigner::parse(text) {
                let again = NoteSigner::parse(&s.to_skey()).expect("to_skey re-parses");
                assert_eq!(again.verifier(), s.verifier());
                let v = NoteVerifier::parse(&s.verifier().to_vkey()).expect("vkey parses");
                assert_eq!(v, s.verifier());
            }
        }
    }
});
