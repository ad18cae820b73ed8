//! An identity owner's monitoring: every change of its own identity since the last run, from
//! one answer of O(log n) proof plus the changes themselves, never the whole log.
//!
//! The owner keeps a [`Watch`]: every version record of its identity so far and the chain
//! head after the last. Each run it verifies the identity's latest state
//! ([`crate::directory::verify_identity`], in a checkpoint consistent with and not older than
//! its saved one), and [`advance`] checks the versions in between:
//! - the latest version is not below the saved one, and at the same version the chain head is
//!   the saved one (nothing was rewritten);
//! - the answer gives the change of each version since; the monitor makes each version's
//!   record from the one before by the directory's transition rule ([`VersionRecord::next`],
//!   which refuses a change that does not apply), and the records, with their openings, must
//!   chain from the saved head to the head the map holds: so they are every version the AS
//!   ever put in the map for this label, in order, a change made and undone included (an AS
//!   that skips or rewinds versions breaks the public rules, which auditors check);
//! - the latest state's record is the one its change makes from the version before;
//! - every change, before its record is made, passes the history rules
//!   ([`kt_protocol::history`]) over the identity's own history (an issuance to a revoked
//!   identity without an enabling, a revoked credential revived, an enrollment used twice…).
//!
//! [`Progress::changes`] are the new records, for the owner to compare with what it did.

use kt_protocol::api::HistoryAnswer;
use kt_protocol::directory::hash::{chain, commitment, Hash32, EMPTY};
use kt_protocol::directory::record::{RecordError, VersionRecord};
use kt_protocol::entry::LogEntry;
use kt_protocol::history::{MemoryHistory, Violation};
use thiserror::Error;

use crate::directory::{hash32, DirectoryError, VerifiedIdentity};

/// What an owner keeps between runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Watch {
    /// Every version record so far, version 1 first.
    pub records: Vec<VersionRecord>,
    /// The chain head after the last.
    pub head: Hash32,
}

impl Watch {
    /// The latest version seen (0: none).
    pub fn version(&self) -> u64 {
        self.records.len() as u64
    }
}

/// Why a run found the identity's history broken.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MonitorError {
    /// The identity had versions and the directory now shows it absent.
    #[error("the identity had {saved} versions and is now absent from the directory")]
    Disappeared {
        /// Versions seen before.
        saved: u64,
    },
    /// The latest version is below the one seen before.
    #[error("the directory shows version {found}, below version {saved} seen before")]
    RolledBack {
        /// Seen before.
        saved: u64,
        /// Shown now.
        found: u64,
    },
    /// At the same version, another chain head: a version was rewritten.
    #[error("version {version} now has another chain head: it was rewritten")]
    Rewritten {
        /// The version.
        version: u64,
    },
    /// The answer does not give exactly the versions in between.
    #[error("the answer gives {found} earlier versions; {expected} are between the saved and the latest")]
    HistoryLength {
        /// Versions needed.
        expected: u64,
        /// Versions given.
        found: usize,
    },
    /// A change is malformed or another identity's.
    #[error("version {version}: {reason}")]
    BadRecord {
        /// The version it stands for.
        version: u64,
        /// What is wrong.
        reason: String,
    },
    /// The records given do not chain to the head the map holds.
    #[error(
        "the versions given do not chain to the directory's head: versions were hidden or changed"
    )]
    ChainBroken,
    /// A record does not follow from the one before by the transition rule.
    #[error("version {version} does not follow from the one before: {source}")]
    DoesNotFollow {
        /// The version.
        version: u64,
        /// Why.
        source: RecordError,
    },
    /// A record's change breaks the history rules.
    #[error("version {version} breaks the history rules: {violation}")]
    Violation {
        /// The version.
        version: u64,
        /// Which rule.
        violation: Violation,
    },
    /// A field does not decode.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

/// A run's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// What to keep for the next run.
    pub watch: Watch,
    /// The versions new since the last run, in order.
    pub changes: Vec<VersionRecord>,
}

/// Checks the identity's history from `watch` (`None`: first run) to the state `verified`
/// shows, with the earlier versions `answer` gives (see the module documentation).
pub fn advance(
    watch: Option<&Watch>,
    answer: &HistoryAnswer,
    verified: &VerifiedIdentity,
) -> Result<Progress, MonitorError> {
    let empty = Watch::default();
    let watch = watch.unwrap_or(&empty);
    let saved = watch.version();
    let Some(state) = &verified.state else {
        if saved > 0 {
            return Err(MonitorError::Disappeared { saved });
        }
        return Ok(Progress {
            watch: Watch {
                records: Vec::new(),
                head: EMPTY,
            },
            changes: Vec::new(),
        });
    };
    let latest = state.record.version;
    if latest < saved {
        return Err(MonitorError::RolledBack {
            saved,
            found: latest,
        });
    }
    if latest == saved {
        if state.leaf.head != watch.head {
            return Err(MonitorError::Rewritten { version: latest });
        }
        return Ok(Progress {
            watch: watch.clone(),
            changes: Vec::new(),
        });
    }
    let between = latest - saved - 1;
    if answer.history.len() as u64 != between {
        return Err(MonitorError::HistoryLength {
            expected: between,
            found: answer.history.len(),
        });
    }
    let mut history = MemoryHistory::default();
    for record in &watch.records {
        if let Ok(entry) = record.entry() {
            history.apply(&entry);
        }
    }
    let mut head = watch.head;
    let mut changes: Vec<VersionRecord> = Vec::with_capacity(answer.history.len() + 1);
    for (i, item) in answer.history.iter().enumerate() {
        let version = saved + 1 + i as u64;
        let bad = |reason: String| MonitorError::BadRecord { version, reason };
        let entry = LogEntry::from_json(&item.change).map_err(|e| bad(e.to_string()))?;
        if entry.body.identity() != verified.identity {
            return Err(bad(format!("the change is of {}", entry.body.identity())));
        }
        // The history rules first (the precise name of what is wrong), then the record: the
        // one the change makes from the record before, by the transition rule applied here
        // rather than trusted.
        history
            .accept(&entry)
            .map_err(|violation| MonitorError::Violation { version, violation })?;
        let previous = changes.last().or(watch.records.last());
        let record = VersionRecord::next(previous, &entry)
            .map_err(|source| MonitorError::DoesNotFollow { version, source })?;
        let opening = hash32(&item.opening, "history.opening")?;
        head = chain(
            &head,
            &commitment(&opening, &verified.label, version, &record.to_bytes()),
        );
        changes.push(record);
    }
    if head != state.previous_head {
        return Err(MonitorError::ChainBroken);
    }

    // The latest version, whose record the verified state holds: it must follow too.
    let version = state.record.version;
    let entry = state
        .record
        .entry()
        .map_err(|source| MonitorError::DoesNotFollow { version, source })?;
    history
        .accept(&entry)
        .map_err(|violation| MonitorError::Violation { version, violation })?;
    let expected = VersionRecord::next(changes.last().or(watch.records.last()), &entry)
        .map_err(|source| MonitorError::DoesNotFollow { version, source })?;
    if expected != state.record {
        return Err(MonitorError::DoesNotFollow {
            version,
            source: RecordError::DoesNotFollow("the state is not what the change makes"),
        });
    }
    changes.push(state.record.clone());
    let mut records = watch.records.clone();
    records.extend(changes.iter().cloned());
    Ok(Progress {
        watch: Watch {
            records,
            head: state.leaf.head,
        },
        changes,
    })
}
