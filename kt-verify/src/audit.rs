//! The public audit: every entry of the log, in order, through the directory's public rules
//! (`kt_protocol::directory::batch`), with no secret.
//!
//! Guarantee of an [`Audit`] that applied every entry `0 .. size` and then
//! [`Audit::finish`]ed: every entry is an entry of the directory's format in its canonical form;
//! every update extended its label by exactly one version (so no version was ever removed,
//! rewound or rewritten, and a change made and undone left two versions); every map entry's
//! root and label count are exactly the map its updates made; and the log ends with a map
//! entry, so the checkpoint vouches for that map. What it cannot check: whose labels they are,
//! what the records say, or whether the changes followed the history rules (those are hidden
//! from the public; each owner checks its own with [`crate::monitor`]).

use kt_protocol::directory::batch::{MapViolation, Replay};
use kt_protocol::directory::public_entry::{PublicEntry, PublicEntryError};
use kt_protocol::directory::tree::Map;
use thiserror::Error;

/// Why the log fails the audit, at which entry.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The entry is not of the directory's format.
    #[error("entry {index}: {source}")]
    Format {
        /// Its index.
        index: u64,
        /// Why.
        source: PublicEntryError,
    },
    /// The entry breaks the directory's public rules.
    #[error("entry {index}: {source}")]
    Rules {
        /// Its index.
        index: u64,
        /// Which rule.
        source: MapViolation,
    },
    /// The log ends in entries that no map entry closes.
    #[error("the log ends with updates after its last map entry (entry {last}): no checkpoint should end there")]
    Unfinished {
        /// The last entry's index.
        last: u64,
    },
}

/// An audit in progress: the map the entries so far made.
#[derive(Debug, Default)]
pub struct Audit {
    replay: Replay,
    next: u64,
    /// Whether the last entry applied is a map entry (or nothing was applied).
    at_map: bool,
}

impl Audit {
    /// From the log's first entry.
    pub fn new() -> Audit {
        Audit {
            at_map: true,
            ..Audit::default()
        }
    }

    /// From entry `next`, with the map the entries before made (a resumed audit, which
    /// resumes only after a map entry).
    pub fn resume(map: Map, next: u64) -> Audit {
        Audit {
            replay: Replay::from_map(map),
            next,
            at_map: true,
        }
    }

    /// The index of the next entry to apply.
    pub fn next_index(&self) -> u64 {
        self.next
    }

    /// The map after the last map entry applied.
    pub fn map(&self) -> &Map {
        self.replay.map()
    }

    /// Whether the entries so far end with a map entry (a point an audit can resume from, and
    /// where a checkpoint may end).
    pub fn at_batch_end(&self) -> bool {
        self.at_map && !self.replay.in_batch()
    }

    /// Applies the next entry's bytes.
    pub fn apply(&mut self, bytes: &[u8]) -> Result<(), AuditError> {
        self.apply_parsed(PublicEntry::parse(bytes))
    }

    /// Applies the next entry, parsed (by [`PublicEntry::parse`], maybe on another thread).
    /// An entry that fails is counted and changes nothing (a map entry that disagrees with
    /// the map leaves the map the entries make: see `Replay::apply`).
    pub fn apply_parsed(
        &mut self,
        parsed: Result<PublicEntry, PublicEntryError>,
    ) -> Result<(), AuditError> {
        let index = self.next;
        self.next += 1;
        self.at_map = matches!(parsed, Ok(PublicEntry::Map(_)));
        let entry = parsed.map_err(|source| AuditError::Format { index, source })?;
        self.replay
            .apply(&entry)
            .map_err(|source| AuditError::Rules { index, source })
    }

    /// Checks that the entries applied end with a map entry.
    pub fn finish(&self) -> Result<(), AuditError> {
        match self.next.checked_sub(1) {
            Some(last) if !self.at_batch_end() => Err(AuditError::Unfinished { last }),
            _ => Ok(()),
        }
    }
}
