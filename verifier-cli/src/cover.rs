//! Answers under a witness policy: an issuance or lookup answer carries a checkpoint the log
//! alone signed (witnesses cosign about once a second, after it); the client accepts it once
//! a checkpoint the policy's quorum cosigned covers it (`kt_verify::witness_policy::
//! check_covered`), fetched from `/log/checkpoint`, waiting a little for one if needed.

use std::time::{Duration, Instant};

use kt_log::checkpoint::VerifiedCheckpoint;
use kt_verify::witness_policy::{check_covered, check_witnessed, verify_witnessed_checkpoint};

use crate::error::Error;
use crate::online::Online;
use crate::sync::ProofSource as _;

/// Longest wait for a cosigned checkpoint that covers an answer.
const COVER_WAIT: Duration = Duration::from_secs(10);
/// Time between two fetches of the cosigned checkpoint while waiting.
const POLL: Duration = Duration::from_millis(200);
/// The problem type of the server's 503 before any checkpoint is cosigned.
const NOT_YET_AVAILABLE: &str = "not-yet-available";
/// Largest checkpoint note accepted.
const NOTE_LIMIT: u64 = 64 << 10;

impl Online {
    /// With a witness policy, and `cp` (verified under the log key, the checkpoint of
    /// `what`) not itself cosigned by the quorum: the newest cosigned checkpoint, at least as
    /// large as `cp` and proven consistent with it, to be saved after `cp`. `None` without a
    /// policy or when `cp` satisfies it. Refused (exit 1) if the server's cosigned checkpoint
    /// fails the policy, is not consistent with `cp` (a split view), or does not reach `cp`
    /// within [`COVER_WAIT`].
    pub(crate) fn witnessed_cover(
        &self,
        cp: &VerifiedCheckpoint,
        what: &str,
    ) -> Result<Option<VerifiedCheckpoint>, Error> {
        let Some(policy) = self.witnesses.policy() else {
            return Ok(None);
        };
        if check_witnessed(cp.clone(), &self.verifier, policy).is_ok() {
            return Ok(None);
        }
        let deadline = Instant::now() + COVER_WAIT;
        loop {
            let newest = match self.client.get_bytes("/log/checkpoint", NOTE_LIMIT) {
                Ok(note) => Some(note),
                // None cosigned yet (503), or the server busy: wait while there is time.
                Err(Error::Network(_)) if Instant::now() < deadline => None,
                // The server says it has no cosigned checkpoint at all: it cannot show that
                // witnesses saw this log, which is a refusal, not a network failure.
                Err(Error::Network(e)) if e.contains(NOT_YET_AVAILABLE) => {
                    return Err(Error::verify(format!(
                        "{what} (size {}) is not covered by a checkpoint the witness quorum \
                         cosigned after {} s: the server has none ({e})",
                        cp.size(),
                        COVER_WAIT.as_secs()
                    )))
                }
                Err(e) => return Err(e),
            };
            if let Some(note) = newest {
                let cosigned =
                    verify_witnessed_checkpoint(&note, &self.verifier, policy).map_err(|e| {
                        Error::verify(format!("server checkpoint: witness policy: {e}"))
                    })?;
                let size = cosigned.checkpoint().size();
                if size >= cp.size() {
                    let proof = if size == cp.size() {
                        Vec::new()
                    } else {
                        self.client.consistency(cp.size(), size)?
                    };
                    return check_covered(cp, &note, &proof, &self.verifier, policy)
                        .map(|w| Some(w.into_checkpoint()))
                        .map_err(|e| Error::verify(format!("{what}: {e}")));
                }
                if Instant::now() >= deadline {
                    return Err(Error::verify(format!(
                        "{what} (size {}) is not covered by a checkpoint the witness quorum \
                         cosigned after {} s: the newest cosigned is of size {size}",
                        cp.size(),
                        COVER_WAIT.as_secs()
                    )));
                }
            }
            std::thread::sleep(POLL);
        }
    }

    /// Accepts `cp`, the checkpoint of an answer (`what`), under the witness policy
    /// ([`Online::witnessed_cover`]) and moves the saved checkpoint to it and then to its
    /// cover. Returns how `cp` relates to the checkpoint saved before.
    pub(crate) fn accept(
        &self,
        cp: &VerifiedCheckpoint,
        what: &str,
    ) -> Result<crate::sync::Advance, Error> {
        let cover = self.witnessed_cover(cp, what)?;
        let advance = self.sync(cp)?;
        if let Some(cover) = cover {
            self.sync(&cover)?;
        }
        Ok(advance)
    }
}
