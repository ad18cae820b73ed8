//! C2SP tlog-cosignature v1 with Ed25519 (<https://c2sp.org/tlog-cosignature>, key type 0x04).
//!
//! A cosignature is a signed-note signature line `— <name> base64(key id ‖ timestamp ‖ sig)`:
//! - key id = `SHA-256(name ‖ "\n" ‖ 0x04 ‖ Ed25519 public key)[:4]`;
//! - timestamp = POSIX seconds, u64 big-endian, never zero and below 2^63;
//! - sig = Ed25519 over `"cosignature/v1\n" ‖ "time <timestamp>\n" ‖ checkpoint body`, where the
//!   body is the whole note text (extension lines included, signature lines excluded).
//!
//! The signed message does not commit to the cosigner's name, so one key must serve one
//! cosigner name only: [`CosignatureSigner::parse`] checks the key file's name and id.
//!
//! Keys are written in the signed-note text forms with type 0x04: verifier
//! `name+<hex key id>+base64(0x04 ‖ public key)`, signer
//! `PRIVATE+KEY+name+<hex key id>+base64(0x04 ‖ seed)`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Key type byte of Ed25519 cosignature/v1 keys.
pub const KEY_TYPE: u8 = 0x04;
/// Largest timestamp a cosignature may carry (2^63 - 1).
pub const MAX_TIMESTAMP: u64 = (1 << 63) - 1;

/// Why a cosignature key, line or signature was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CosignatureError {
    /// A key string is not in the expected form.
    #[error("malformed cosignature key: {0}")]
    MalformedKey(&'static str),
    /// The key name is empty or contains whitespace or '+'.
    #[error("invalid cosigner name {0:?}")]
    InvalidName(String),
    /// A timestamp of zero or of 2^63 and above.
    #[error("cosignature timestamp {0} is outside 1..2^63")]
    BadTimestamp(u64),
    /// No line by this cosigner, or it is not a valid cosignature.
    #[error("no valid cosignature by {0}")]
    Invalid(String),
    /// Two lines by one cosigner (name and key id) in one note.
    #[error("more than one cosignature by {0}")]
    Duplicate(String),
    /// The operating system gave no randomness for a new key.
    #[error("no randomness for a new key")]
    NoRandomness,
}

/// The 4-byte key id of an Ed25519 cosignature key: `SHA-256(name ‖ 0x0A ‖ 0x04 ‖ key)[:4]`.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', KEY_TYPE]);
    h.update(public_key);
    let digest: [u8; 32] = h.finalize().into();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// The exact bytes an Ed25519 cosignature/v1 signs over `body` at `timestamp`.
pub fn signed_message(body: &str, timestamp: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{body}").into_bytes()
}

fn check_name(name: &str) -> Result<(), CosignatureError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(CosignatureError::InvalidName(name.to_owned()));
    }
    Ok(())
}

/// Splits `name+hexid+base64(0x04 ‖ 32 bytes)` into its fields, checking the type byte.
fn parse_key_fields(text: &str) -> Result<(String, [u8; 4], [u8; 32]), CosignatureError> {
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(CosignatureError::MalformedKey("expected name+keyid+key"));
    };
    check_name(name)?;
    if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CosignatureError::MalformedKey("key id is not 8 hex digits"));
    }
    let id = u32::from_str_radix(id_hex, 16)
        .map_err(|_| CosignatureError::MalformedKey("key id"))?
        .to_be_bytes();
    let raw = B64
        .decode(key_b64)
        .map_err(|_| CosignatureError::MalformedKey("key is not base64"))?;
    let Some((&KEY_TYPE, key)) = raw.split_first() else {
        return Err(CosignatureError::MalformedKey(
            "not an Ed25519 cosignature (0x04) key",
        ));
    };
    let key = <[u8; 32]>::try_from(key)
        .map_err(|_| CosignatureError::MalformedKey("key is not 32 bytes"))?;
    Ok((name.to_owned(), id, key))
}

/// A witness's private cosigning key with its name. `Debug` never shows the key.
#[derive(Clone)]
pub struct CosignatureSigner {
    name: String,
    id: [u8; 4],
    key: SigningKey,
}

impl std::fmt::Debug for CosignatureSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CosignatureSigner({})", self.verifier().to_vkey())
    }
}

impl CosignatureSigner {
    /// A new key named `name` from the operating system's random source.
    pub fn generate(name: &str) -> Result<CosignatureSigner, CosignatureError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|_| CosignatureError::NoRandomness)?;
        CosignatureSigner::from_seed(name, &seed)
    }

    /// The key of a name and a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<CosignatureSigner, CosignatureError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(seed);
        Ok(CosignatureSigner {
            name: name.to_owned(),
            id: key_id(name, key.verifying_key().as_bytes()),
            key,
        })
    }

    /// Parses `PRIVATE+KEY+name+hexid+base64(0x04 ‖ seed)`, checking that the id matches the
    /// name and the derived public key.
    pub fn parse(skey: &str) -> Result<CosignatureSigner, CosignatureError> {
        let rest = skey
            .trim_end_matches('\n')
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(CosignatureError::MalformedKey(
                "signer key must start with PRIVATE+KEY+",
            ))?;
        let (name, id, seed) = parse_key_fields(rest)?;
        let signer = CosignatureSigner::from_seed(&name, &seed)?;
        if signer.id != id {
            return Err(CosignatureError::MalformedKey(
                "key id does not match name and key",
            ));
        }
        Ok(signer)
    }

    /// The secret text form. Store it with mode 0600; never log it.
    pub fn to_skey(&self) -> String {
        let mut raw = vec![KEY_TYPE];
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex(&self.id),
            B64.encode(raw)
        )
    }

    /// The cosigner's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The matching public key.
    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// The cosignature line (ending in a newline) over the checkpoint `body` (the note text,
    /// newline-terminated) at `timestamp`, which must be in `1..2^63`.
    pub fn cosign(&self, body: &str, timestamp: u64) -> Result<String, CosignatureError> {
        if timestamp == 0 || timestamp > MAX_TIMESTAMP {
            return Err(CosignatureError::BadTimestamp(timestamp));
        }
        let sig = self.key.sign(&signed_message(body, timestamp));
        let mut raw = Vec::with_capacity(4 + 8 + 64);
        raw.extend_from_slice(&self.id);
        raw.extend_from_slice(&timestamp.to_be_bytes());
        raw.extend_from_slice(&sig.to_bytes());
        Ok(format!("\u{2014} {} {}\n", self.name, B64.encode(raw)))
    }
}

/// A witness's public cosigning key with its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosignatureVerifier {
    name: String,
    id: [u8; 4],
    key: VerifyingKey,
}

impl CosignatureVerifier {
    /// Parses `name+hexid+base64(0x04 ‖ public key)`, checking the id against name and key.
    pub fn parse(vkey: &str) -> Result<CosignatureVerifier, CosignatureError> {
        let (name, id, bytes) = parse_key_fields(vkey.trim_end_matches('\n'))?;
        if id != key_id(&name, &bytes) {
            return Err(CosignatureError::MalformedKey(
                "key id does not match name and key",
            ));
        }
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| CosignatureError::MalformedKey("not an Ed25519 public key"))?;
        Ok(CosignatureVerifier { name, id, key })
    }

    /// The cosigner's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public key text form, `name+hexid+base64(0x04 ‖ key)`.
    pub fn to_vkey(&self) -> String {
        let mut raw = vec![KEY_TYPE];
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{}+{}", self.name, hex(&self.id), B64.encode(raw))
    }

    /// The 4-byte key id.
    pub fn key_id(&self) -> [u8; 4] {
        self.id
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Finds this cosigner's line among `lines` (signature lines, newline-separated) and
    /// verifies it over `body`; returns its timestamp.
    ///
    /// Guarantee: `Ok(t)` only if a line names this cosigner with its key id and carries a
    /// valid Ed25519 signature over `cosignature/v1`, `time t` and `body`, with `t` in
    /// `1..2^63`, and no other line names this cosigner with its key id. Lines by other keys
    /// are ignored. No line at all is [`CosignatureError::Invalid`] too; use
    /// [`CosignatureVerifier::find`] to tell a missing cosignature from a bad one.
    pub fn verify(&self, body: &str, lines: &str) -> Result<u64, CosignatureError> {
        self.find(body, lines)?
            .ok_or_else(|| CosignatureError::Invalid(self.name.clone()))
    }

    /// Looks for this cosigner's line among `lines` (signature lines, newline-separated) and,
    /// if there is one, verifies it over `body`.
    ///
    /// Guarantee: `Ok(Some(t))` only if exactly one line names this cosigner with its key id
    /// (its name and the first four bytes of its signature) and that line is a valid Ed25519
    /// signature over `cosignature/v1`, `time t` and `body`, with `t` in `1..2^63`.
    /// `Ok(None)` if no line names this cosigner with its key id. A line that does but fails
    /// (wrong length, bad timestamp, bad signature), or a second one, is an error: it is a
    /// forged or broken cosignature, never noise. Lines by other keys, and lines that are not
    /// `— <name> <base64>`, are ignored. Never panics.
    pub fn find(&self, body: &str, lines: &str) -> Result<Option<u64>, CosignatureError> {
        let invalid = || CosignatureError::Invalid(self.name.clone());
        let mut found = None;
        for line in lines.lines() {
            let Some(rest) = line.strip_prefix("\u{2014} ") else {
                continue;
            };
            let Some((name, b64)) = rest.split_once(' ') else {
                continue;
            };
            if name != self.name {
                continue;
            }
            let Ok(raw) = B64.decode(b64) else {
                continue;
            };
            if raw.get(..4) != Some(&self.id[..]) {
                continue;
            }
            if found.is_some() {
                return Err(CosignatureError::Duplicate(self.name.clone()));
            }
            if raw.len() != 4 + 8 + 64 {
                return Err(invalid());
            }
            let mut ts_bytes = [0u8; 8];
            ts_bytes.copy_from_slice(&raw[4..12]);
            let timestamp = u64::from_be_bytes(ts_bytes);
            if timestamp == 0 || timestamp > MAX_TIMESTAMP {
                return Err(CosignatureError::BadTimestamp(timestamp));
            }
            let sig = Signature::from_slice(&raw[12..]).map_err(|_| invalid())?;
            self.key
                .verify_strict(&signed_message(body, timestamp), &sig)
                .map_err(|_| invalid())?;
            found = Some(timestamp);
        }
        Ok(found)
    }
}

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    #[test]
    fn the_signed_message_is_the_spec_example() {
        // The example of tlog-cosignature, "Ed25519 signed message".
        assert_eq!(
            signed_message(BODY, 1679315147),
            b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
    }

    #[test]
    fn keys_round_trip_and_lines_verify() {
        let signer = CosignatureSigner::from_seed("witness.example/w1", &[7; 32]).unwrap();
        let again = CosignatureSigner::parse(&signer.to_skey()).unwrap();
        assert_eq!(again.verifier(), signer.verifier());
        let verifier = CosignatureVerifier::parse(&signer.verifier().to_vkey()).unwrap();
        let line = signer.cosign(BODY, 1679315147).unwrap();
        assert_eq!(verifier.verify(BODY, &line), Ok(1679315147));
        let other = BODY.replace("20852163", "20852164");
        assert!(verifier.verify(&other, &line).is_err());
        assert_eq!(verifier.find(BODY, ""), Ok(None));
        assert_eq!(
            verifier.find(&other, &line),
            Err(CosignatureError::Invalid("witness.example/w1".into()))
        );
        let twice = format!("{line}{line}");
        assert_eq!(
            verifier.find(BODY, &twice),
            Err(CosignatureError::Duplicate("witness.example/w1".into()))
        );
        // Another key of the same name, and junk lines, are ignored.
        let other_key = CosignatureSigner::from_seed("witness.example/w1", &[8; 32]).unwrap();
        let mixed = format!(
            "junk\n\u{2014} x\n{}{line}",
            other_key.cosign(BODY, 5).unwrap()
        );
        assert_eq!(verifier.find(BODY, &mixed), Ok(Some(1679315147)));
        // A truncated line by this key is an error, not absent.
        let short = format!(
            "\u{2014} witness.example/w1 {}\n",
            B64.encode(verifier.key_id())
        );
        assert!(verifier.find(BODY, &short).is_err());
        assert!(signer.cosign(BODY, 0).is_err());
        assert!(signer.cosign(BODY, 1 << 63).is_err());
    }

    #[test]
    fn rejects_malformed_keys() {
        let signer = CosignatureSigner::from_seed("w", &[1; 32]).unwrap();
        let vkey = signer.verifier().to_vkey();
        // A note (0x01) key with the right id for 0x01, a wrong id, a short key.
        let public = *signer.verifier().key.as_bytes();
        let mut raw = vec![0x01];
        raw.extend_from_slice(&public);
        let note_type = format!(
            "w+{:08x}+{}",
            crate::note::key_id("w", &public),
            B64.encode(raw)
        );
        assert!(CosignatureVerifier::parse(&vkey).is_ok());
        for bad in [
            note_type.as_str(),
            "w+00000000+BAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "w+zz+BA==",
            "w",
            "",
        ] {
            assert!(CosignatureVerifier::parse(bad).is_err(), "{bad}");
        }
        assert!(CosignatureSigner::parse(&signer.to_skey().replace("+w+", "+v+")).is_err());
    }
}
