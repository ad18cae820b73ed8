//! C2SP signed-note (<https://c2sp.org/signed-note>) with Ed25519 keys (signature type 0x01).
//!
//! A note is UTF-8 text ending in a newline, a blank line, then one signature line per signer:
//! `— <key name> <base64(key id ‖ signature)>`. The key id is the first four bytes of
//! `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)`, big-endian. Keys are written in the Go
//! `golang.org/x/mod/sumdb/note` text forms:
//! verifier `name+<hex key id>+base64(0x01 ‖ public key)` and signer
//! `PRIVATE+KEY+name+<hex key id>+base64(0x01 ‖ seed)`.
//!
//! Guarantees of [`open`]: it returns a [`VerifiedNote`] only if at least one signature line
//! is a valid Ed25519 signature over the exact text by one of the given keys, matched by name
//! *and* key id. A signature by a known key that fails to verify rejects the note (it is
//! evidence of tampering, not noise), and so does a second line by the same known key (name
//! and key id), valid or not: every line by a known key is checked, so the known keys' part of
//! a note has one byte form. Lines by unknown keys are ignored (the spec requires it), so two
//! copies of a note may still differ in those. Any malformed line, control character, or more
//! than [`MAX_SIGNATURES`] lines rejects the whole note.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Signature type byte of Ed25519 note keys.
const ALG_ED25519: u8 = 0x01;
/// Prefix of every signature line.
const SIG_PREFIX: &str = "\u{2014} ";
/// Most signature lines a note may carry (Go's note package allows the same).
pub const MAX_SIGNATURES: usize = 100;

/// Why a key or a note was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NoteError {
    /// A verifier or signer key string is not in the expected form.
    #[error("malformed note key: {0}")]
    MalformedKey(&'static str),
    /// A key name is empty or contains whitespace or '+'.
    #[error("invalid key name {0:?}")]
    InvalidName(String),
    /// The note is not text, a newline-terminated body, a blank line and signature lines.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// The note has more signature lines than this verifier accepts.
    #[error("note has more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    /// A known key's signature does not verify over the text.
    #[error("invalid signature by {name}")]
    InvalidSignature {
        /// Name of the key whose signature failed.
        name: String,
    },
    /// Two signature lines are by the same known key.
    #[error("more than one signature by {name}")]
    DuplicateSignature {
        /// Name of the key that signed twice.
        name: String,
    },
    /// No signature line is by a key the verifier knows.
    #[error("note has no signature by a known key")]
    NoKnownSignature,
}

/// The 4-byte key id of an Ed25519 note key: `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key)[:4]`.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(public_key);
    let digest: [u8; 32] = h.finalize().into();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Key names: non-empty, no Unicode whitespace, no '+' (it separates the key's fields).
fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(NoteError::InvalidName(name.to_owned()));
    }
    Ok(())
}

/// Splits `name+hexid+base64` and checks the id and algorithm byte; returns name, id, key.
fn parse_key_fields(text: &str) -> Result<(String, u32, [u8; 32]), NoteError> {
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(NoteError::MalformedKey("expected name+keyid+key"));
    };
    check_name(name)?;
    if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(NoteError::MalformedKey("key id is not 8 hex digits"));
    }
    let id = u32::from_str_radix(id_hex, 16).map_err(|_| NoteError::MalformedKey("key id"))?;
    let raw = B64
        .decode(key_b64)
        .map_err(|_| NoteError::MalformedKey("key is not base64"))?;
    // `split_first`, not `raw[1..]`: an empty key field decodes to no bytes at all.
    let Some((&ALG_ED25519, key)) = raw.split_first() else {
        return Err(NoteError::MalformedKey(
            "not an Ed25519 (0x01) key of 32 bytes",
        ));
    };
    let key = <[u8; 32]>::try_from(key)
        .map_err(|_| NoteError::MalformedKey("not an Ed25519 (0x01) key of 32 bytes"))?;
    Ok((name.to_owned(), id, key))
}

/// A public key that verifies notes, with its name and key id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses the verifier key text form `name+hexid+base64(0x01 ‖ key)`, checking that the id
    /// matches the name and key.
    pub fn parse(vkey: &str) -> Result<NoteVerifier, NoteError> {
        let (name, id, bytes) = parse_key_fields(vkey.trim_end_matches('\n'))?;
        if id != key_id(&name, &bytes) {
            return Err(NoteError::MalformedKey(
                "key id does not match name and key",
            ));
        }
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| NoteError::MalformedKey("not a valid Ed25519 public key"))?;
        Ok(NoteVerifier { name, id, key })
    }

    /// Makes a verifier from a name and an Ed25519 public key.
    pub fn new(name: &str, key: VerifyingKey) -> Result<NoteVerifier, NoteError> {
        check_name(name)?;
        Ok(NoteVerifier {
            name: name.to_owned(),
            id: key_id(name, key.as_bytes()),
            key,
        })
    }

    /// The key's name (for a log: its origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key id.
    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// The verifier key text form, `name+hexid+base64(0x01 ‖ key)`.
    pub fn to_vkey(&self) -> String {
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.id, B64.encode(raw))
    }
}

/// A private key that signs notes. Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    id: u32,
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NoteSigner({}+{:08x})", self.name, self.id)
    }
}

impl NoteSigner {
    /// Generates a new key named `name` from the operating system's random source.
    pub fn generate(name: &str) -> Result<NoteSigner, NoteError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|_| NoteError::MalformedKey("no randomness"))?;
        NoteSigner::from_seed(name, &seed)
    }

    /// Makes a signer from a name and a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<NoteSigner, NoteError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(seed);
        Ok(NoteSigner {
            name: name.to_owned(),
            id: key_id(name, key.verifying_key().as_bytes()),
            key,
        })
    }

    /// Parses the signer key text form `PRIVATE+KEY+name+hexid+base64(0x01 ‖ seed)`, checking
    /// that the id matches the derived public key.
    pub fn parse(skey: &str) -> Result<NoteSigner, NoteError> {
        let rest = skey
            .trim_end_matches('\n')
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError::MalformedKey(
                "signer key must start with PRIVATE+KEY+",
            ))?;
        let (name, id, seed) = parse_key_fields(rest)?;
        let signer = NoteSigner::from_seed(&name, &seed)?;
        if signer.id != id {
            return Err(NoteError::MalformedKey(
                "key id does not match name and key",
            ));
        }
        Ok(signer)
    }

    /// The signer key text form. This is the secret: store it with mode 0600, never log it.
    pub fn to_skey(&self) -> String {
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.id,
            B64.encode(raw)
        )
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// The signature line this key makes over `text`, ending in a newline.
    pub fn signature_line(&self, text: &str) -> String {
        let sig = self.key.sign(text.as_bytes());
        let mut raw = self.id.to_be_bytes().to_vec();
        raw.extend_from_slice(&sig.to_bytes());
        format!("{SIG_PREFIX}{} {}\n", self.name, B64.encode(raw))
    }

    /// Signs `text` into a complete note. `text` must be non-empty and end in a newline.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        Ok(format!("{text}\n{}", self.signature_line(text)))
    }
}

/// A note at least one of whose signatures verified: made only by [`open`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedNote {
    text: String,
    verified_by: Vec<String>,
}

impl VerifiedNote {
    /// The signed text, ending in a newline.
    pub fn text(&self) -> &str {
        &self.text
    }
    /// Names of the known keys whose signatures verified.
    pub fn verified_by(&self) -> &[String] {
        &self.verified_by
    }
}

/// Note text: non-empty, newline-terminated, no control characters but newline.
fn check_text(text: &str) -> Result<(), NoteError> {
    if text.is_empty() || !text.ends_with('\n') {
        return Err(NoteError::Malformed("text must end in a newline"));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::Malformed("text contains control characters"));
    }
    Ok(())
}

/// Parses a signed note and verifies it against `known` keys (see the module guarantees).
pub fn open(note: &[u8], known: &[NoteVerifier]) -> Result<VerifiedNote, NoteError> {
    let note = std::str::from_utf8(note).map_err(|_| NoteError::Malformed("not UTF-8"))?;
    // The signature block starts after the last blank line; signatures contain no "\n\n".
    let split = note
        .rfind("\n\n")
        .ok_or(NoteError::Malformed("no blank line before signatures"))?;
    let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
    check_text(text)?;
    if sigs.is_empty() || !sigs.ends_with('\n') {
        return Err(NoteError::Malformed(
            "signature block must end in a newline",
        ));
    }
    let mut verified_by: Vec<String> = Vec::new();
    let mut seen: Vec<(&str, u32)> = Vec::new();
    for (count, line) in sigs[..sigs.len() - 1].split('\n').enumerate() {
        if count >= MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures);
        }
        let line = line.strip_prefix(SIG_PREFIX).ok_or(NoteError::Malformed(
            "signature line must start with an em dash",
        ))?;
        let (name, b64) = line.split_once(' ').ok_or(NoteError::Malformed(
            "signature line must be name and signature",
        ))?;
        check_name(name).map_err(|_| NoteError::Malformed("invalid key name in signature"))?;
        let raw = B64
            .decode(b64)
            .map_err(|_| NoteError::Malformed("signature is not base64"))?;
        if raw.len() < 5 {
            return Err(NoteError::Malformed("signature too short"));
        }
        let id = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let Some(key) = known.iter().find(|k| k.name == name && k.id == id) else {
            continue; // Unknown keys are ignored, as the spec requires.
        };
        // A key is its name and id: two keys of one name (a rotation) may both sign.
        if seen.contains(&(name, id)) {
            return Err(NoteError::DuplicateSignature {
                name: name.to_owned(),
            });
        }
        seen.push((name, id));
        let valid = Signature::from_slice(&raw[4..])
            .map(|sig| key.key.verify_strict(text.as_bytes(), &sig).is_ok())
            .unwrap_or(false);
        if !valid {
            return Err(NoteError::InvalidSignature {
                name: name.to_owned(),
            });
        }
        verified_by.push(name.to_owned());
    }
    if verified_by.is_empty() {
        return Err(NoteError::NoKnownSignature);
    }
    Ok(VerifiedNote {
        text: text.to_owned(),
        verified_by,
    })
}
