//! Evidence files: what the witness keeps when a log shows it a checkpoint inconsistent with
//! the one it cosigned, to be re-checked offline by anyone with the log's public key.
//!
//! A file holds a header and the two byte strings it names, back to back:
//!
//! ```text
//! kt-witness evidence v1
//! kind same-size-other-root        (or: inconsistent-proof)
//! origin <origin>
//! time <unix seconds of detection>
//! cosigned <byte length>           the checkpoint note the witness had cosigned
//! request <byte length>            the add-checkpoint request body it refused
//!
//! <cosigned bytes><request bytes>
//! ```
//!
//! What [`Evidence::check`] proves, given the log's keys:
//! - `same-size-other-root`: both notes carry valid signatures by a log key over two
//!   checkpoints of the same origin and size with different roots. That is a proven split view
//!   (a fork): an honest log signs one root per size.
//! - `inconsistent-proof`: both notes are log-signed and the proof in the request does not
//!   verify from the cosigned checkpoint to the new one. This proves only that *this* proof
//!   fails; the log forked if no valid proof exists, which its tiles settle (fetch the
//!   consistency proof or the tree and check it).

use kt_log::checkpoint::{open_checkpoint, VerifiedCheckpoint};
use kt_log::note::NoteVerifier;
use kt_log::verify::verify_consistency;

use kt_log::witness_request::{parse_canonical_u64, AddCheckpointRequest};

/// Which inconsistency was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvidenceKind {
    /// The same size as the cosigned checkpoint with another root.
    SameSizeOtherRoot,
    /// A consistency proof from the cosigned checkpoint that does not verify.
    InconsistentProof,
}

impl EvidenceKind {
    /// The name written in files and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::SameSizeOtherRoot => "same-size-other-root",
            EvidenceKind::InconsistentProof => "inconsistent-proof",
        }
    }
}

/// One evidence event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// What was seen.
    pub kind: EvidenceKind,
    /// The log's origin.
    pub origin: String,
    /// When, in Unix seconds.
    pub time: u64,
    /// The checkpoint note the witness had cosigned (with its cosignature).
    pub cosigned: Vec<u8>,
    /// The refused add-checkpoint request body.
    pub request: Vec<u8>,
}

/// What an evidence file shows once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Two log-signed checkpoints of one size with different roots: a proven fork.
    SplitView {
        /// The common size.
        size: u64,
    },
    /// The request's proof fails between two log-signed checkpoints.
    ProofFails {
        /// Size of the cosigned checkpoint.
        old: u64,
        /// Size of the refused one.
        new: u64,
    },
}

impl Evidence {
    /// The file contents.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "kt-witness evidence v1\nkind {}\norigin {}\ntime {}\ncosigned {}\nrequest {}\n\n",
            self.kind.as_str(),
            self.origin,
            self.time,
            self.cosigned.len(),
            self.request.len()
        )
        .into_bytes();
        out.extend_from_slice(&self.cosigned);
        out.extend_from_slice(&self.request);
        out
    }

    /// Parses a file's contents strictly.
    pub fn parse(bytes: &[u8]) -> Result<Evidence, String> {
        let split = bytes
            .windows(2)
            .position(|w| w == b"\n\n")
            .ok_or("no header")?;
        let header = std::str::from_utf8(&bytes[..split]).map_err(|_| "header is not UTF-8")?;
        let rest = &bytes[split + 2..];
        let mut lines = header.split('\n');
        if lines.next() != Some("kt-witness evidence v1") {
            return Err("not a kt-witness evidence v1 file".into());
        }
        let mut field = |name: &str| -> Result<String, String> {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(' '))
                .map(str::to_owned)
                .ok_or_else(|| format!("missing {name} line"))
        };
        let kind = match field("kind")?.as_str() {
            "same-size-other-root" => EvidenceKind::SameSizeOtherRoot,
            "inconsistent-proof" => EvidenceKind::InconsistentProof,
            other => return Err(format!("unknown kind {other:?}")),
        };
        let origin = field("origin")?;
        let number = |text: String| parse_canonical_u64(&text).ok_or("bad number");
        let time = number(field("time")?)?;
        let cosigned_len =
            usize::try_from(number(field("cosigned")?)?).map_err(|e| e.to_string())?;
        let request_len = usize::try_from(number(field("request")?)?).map_err(|e| e.to_string())?;
        if cosigned_len.checked_add(request_len) != Some(rest.len()) {
            return Err("lengths do not match the file".into());
        }
        let (cosigned, request) = rest.split_at(cosigned_len);
        Ok(Evidence {
            kind,
            origin,
            time,
            cosigned: cosigned.to_vec(),
            request: request.to_vec(),
        })
    }

    /// Re-checks the evidence against the log's keys (see the module guarantees).
    pub fn check(&self, keys: &[NoteVerifier]) -> Result<Finding, String> {
        let open = |note: &[u8]| -> Result<VerifiedCheckpoint, String> {
            let mut errors = Vec::new();
            for key in keys {
                match open_checkpoint(note, key) {
                    Ok(cp) => return Ok(cp),
                    Err(e) => errors.push(e.to_string()),
                }
            }
            Err(format!(
                "not signed by a given log key: {}",
                errors.join("; ")
            ))
        };
        let request = AddCheckpointRequest::parse(&self.request).map_err(|e| e.to_string())?;
        let old = open(&self.cosigned)?;
        let new = open(&request.note)?;
        if old.checkpoint().origin != self.origin || new.checkpoint().origin != self.origin {
            return Err("the checkpoints are not of the named origin".into());
        }
        match self.kind {
            EvidenceKind::SameSizeOtherRoot
                if old.size() == new.size() && old.root() != new.root() =>
            {
                Ok(Finding::SplitView { size: old.size() })
            }
            EvidenceKind::InconsistentProof
                if request.old_size == old.size()
                    && verify_consistency(
                        old.size(),
                        new.size(),
                        &old.root(),
                        &new.root(),
                        &request.proof,
                    )
                    .is_err() =>
            {
                Ok(Finding::ProofFails {
                    old: old.size(),
                    new: new.size(),
                })
            }
            _ => Err("the evidence does not show what its kind says".into()),
        }
    }
}
