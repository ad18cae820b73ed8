//! C2SP tlog-checkpoint (<https://c2sp.org/tlog-checkpoint>): the signed statement of a log's
//! size and root.
//!
//! Body: the origin line, the tree size in decimal (no leading zeros), the base64 root hash,
//! each followed by a newline, then optional extension lines. It is carried in a signed note
//! whose key name is the origin.
//!
//! Guarantees of [`open_checkpoint`]: it returns a [`VerifiedCheckpoint`] only if the note is
//! signed by `verifier`, the body parses strictly, and the origin equals the key's name (so a
//! checkpoint of one log can never be taken for another's).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use thiserror::Error;

use crate::hash::{leaf_hash, Hash};
use crate::note::{self, NoteError, NoteSigner, NoteVerifier};
use crate::verify::{
    verify_consistency, verify_inclusion, ProofError, VerifiedConsistency, VerifiedInclusion,
};

/// Why a checkpoint was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The signed note around it failed.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The body is not origin, size, root and extension lines.
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    /// The origin line is not the name of the key that signed it.
    #[error("checkpoint origin {origin:?} is not the key name {key:?}")]
    WrongOrigin {
        /// Origin in the body.
        origin: String,
        /// Name of the verifying key.
        key: String,
    },
}

/// A checkpoint body: which log, how many entries, what root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin, unique to the log (its key name).
    pub origin: String,
    /// Number of entries in the tree.
    pub size: u64,
    /// RFC 9162 root hash of those entries.
    pub root: Hash,
    /// Extension lines, without their newlines (kept so that re-encoding is exact).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The body text, as signed.
    pub fn to_body(&self) -> String {
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root.0)
        );
        for line in &self.extensions {
            body.push_str(line);
            body.push('\n');
        }
        body
    }

    /// Parses a body strictly: a non-empty origin, a canonical decimal size, a 32-byte
    /// base64 root, then non-empty extension lines.
    pub fn parse(body: &str) -> Result<Checkpoint, CheckpointError> {
        let lines = body
            .strip_suffix('\n')
            .ok_or(CheckpointError::Malformed("body must end in a newline"))?;
        let mut lines = lines.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(CheckpointError::Malformed("empty origin"));
        }
        let size = lines
            .next()
            .ok_or(CheckpointError::Malformed("missing size"))?;
        let canonical = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        let size = canonical
            .then(|| size.parse::<u64>().ok())
            .flatten()
            .ok_or(CheckpointError::Malformed(
                "size is not a canonical decimal",
            ))?;
        let root = lines
            .next()
            .and_then(|r| B64.decode(r).ok())
            .and_then(|r| Hash::from_slice(&r))
            .ok_or(CheckpointError::Malformed(
                "root is not a base64 32-byte hash",
            ))?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(CheckpointError::Malformed("empty extension line"));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }

    /// Signs the body into a signed note. The signer's name must be the origin.
    pub fn sign(&self, signer: &NoteSigner) -> Result<SignedCheckpoint, CheckpointError> {
        if signer.name() != self.origin {
            return Err(CheckpointError::WrongOrigin {
                origin: self.origin.clone(),
                key: signer.name().to_owned(),
            });
        }
        let note = signer.sign(&self.to_body())?;
        Ok(SignedCheckpoint {
            checkpoint: self.clone(),
            note: note.into_bytes(),
        })
    }
}

/// A checkpoint with the exact signed-note bytes that carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The parsed body.
    pub checkpoint: Checkpoint,
    /// The signed note, byte for byte as served.
    pub note: Vec<u8>,
}

/// A checkpoint whose signature and origin were verified: made only by [`open_checkpoint`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    checkpoint: Checkpoint,
    note: Vec<u8>,
}

impl VerifiedCheckpoint {
    /// The verified body.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }
    /// The signed note it was read from.
    pub fn note(&self) -> &[u8] {
        &self.note
    }
    /// Tree size.
    pub fn size(&self) -> u64 {
        self.checkpoint.size
    }
    /// Root hash.
    pub fn root(&self) -> Hash {
        self.checkpoint.root
    }

    /// Verifies that `entry` (its exact bytes) is entry `index` of this checkpoint's tree.
    ///
    /// Prefer this to [`verify_inclusion`]: RFC 9162 proofs bind a tree size only together
    /// with its root, and here both come from one signed checkpoint.
    pub fn verify_inclusion(
        &self,
        index: u64,
        entry: &[u8],
        proof: &[Hash],
    ) -> Result<VerifiedInclusion, ProofError> {
        verify_inclusion(index, self.size(), &leaf_hash(entry), proof, &self.root())
    }

    /// Verifies that `newer` (a checkpoint of the same log) extends this one: the append-only
    /// check that detects a fork. Fails with [`ProofError::DifferentLogs`] across origins.
    pub fn verify_extended_by(
        &self,
        newer: &VerifiedCheckpoint,
        proof: &[Hash],
    ) -> Result<VerifiedConsistency, ProofError> {
        if self.checkpoint.origin != newer.checkpoint.origin {
            return Err(ProofError::DifferentLogs);
        }
        verify_consistency(
            self.size(),
            newer.size(),
            &self.root(),
            &newer.root(),
            proof,
        )
    }
}

/// Verifies a signed checkpoint note against the log's key (see the module guarantees).
/// Signatures by other keys (witnesses, say) are ignored.
pub fn open_checkpoint(
    note_bytes: &[u8],
    verifier: &NoteVerifier,
) -> Result<VerifiedCheckpoint, CheckpointError> {
    let opened = note::open(note_bytes, std::slice::from_ref(verifier))?;
    let checkpoint = Checkpoint::parse(opened.text())?;
    if checkpoint.origin != verifier.name() {
        return Err(CheckpointError::WrongOrigin {
            origin: checkpoint.origin,
            key: verifier.name().to_owned(),
        });
    }
    Ok(VerifiedCheckpoint {
        checkpoint,
        note: note_bytes.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::empty_root;

    fn sample() -> Checkpoint {
        Checkpoint {
            origin: "example.com/log".into(),
            size: 12345,
            root: empty_root(),
            extensions: vec![],
        }
    }

    #[test]
    fn body_round_trips() {
        let mut cp = sample();
        assert_eq!(Checkpoint::parse(&cp.to_body()), Ok(cp.clone()));
        cp.extensions.push("ext line".into());
        assert_eq!(Checkpoint::parse(&cp.to_body()), Ok(cp));
    }

    #[test]
    fn rejects_malformed_bodies() {
        let root = B64.encode(empty_root().0);
        for body in [
            String::new(),
            format!("o\n1\n{root}"),
            format!("\n1\n{root}\n"),
            format!("o\n01\n{root}\n"),
            format!("o\n+1\n{root}\n"),
            format!("o\n\n{root}\n"),
            format!("o\n18446744073709551616\n{root}\n"),
            "o\n1\nAAAA\n".to_string(),
            "o\n1\n".to_string(),
            format!("o\n1\n{root}\n\n"),
        ] {
            assert!(Checkpoint::parse(&body).is_err(), "{body:?}");
        }
    }

    #[test]
    fn sign_and_open() {
        let signer = NoteSigner::generate("example.com/log").unwrap();
        let signed = sample().sign(&signer).unwrap();
        let verified = open_checkpoint(&signed.note, &signer.verifier()).unwrap();
        assert_eq!(verified.checkpoint(), &sample());

        let other = NoteSigner::generate("example.com/log").unwrap();
        assert!(open_checkpoint(&signed.note, &other.verifier()).is_err());
    }

    #[test]
    fn checkpoint_bound_proofs() {
        use crate::hash::node_hash;
        let signer = NoteSigner::generate("example.com/log").unwrap();
        let (a, b, c) = (leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c"));
        let open_at = |size, root| {
            let cp = Checkpoint {
                size,
                root,
                ..sample()
            };
            open_checkpoint(&cp.sign(&signer).unwrap().note, &signer.verifier()).unwrap()
        };
        let two = open_at(2, node_hash(&a, &b));
        let three = open_at(3, node_hash(&node_hash(&a, &b), &c));
        assert!(two.verify_inclusion(1, b"b", &[a]).is_ok());
        assert!(two.verify_inclusion(1, b"x", &[a]).is_err());
        assert!(two.verify_extended_by(&three, &[c]).is_ok());
        assert!(two.verify_extended_by(&three, &[a]).is_err());
        let other = NoteSigner::generate("other.example/log").unwrap();
        let foreign = Checkpoint {
            origin: "other.example/log".into(),
            ..three.checkpoint().clone()
        };
        let foreign =
            open_checkpoint(&foreign.sign(&other).unwrap().note, &other.verifier()).unwrap();
        assert_eq!(
            two.verify_extended_by(&foreign, &[c]),
            Err(ProofError::DifferentLogs)
        );
    }

    #[test]
    fn origin_must_match_key_name() {
        let signer = NoteSigner::generate("other.example/log").unwrap();
        assert!(matches!(
            sample().sign(&signer),
            Err(CheckpointError::WrongOrigin { .. })
        ));
        // A note signed by a key whose name differs from the origin is refused on open.
        let note = signer.sign(&sample().to_body()).unwrap();
        assert!(matches!(
            open_checkpoint(note.as_bytes(), &signer.verifier()),
            Err(CheckpointError::WrongOrigin { .. })
        ));
    }
}
