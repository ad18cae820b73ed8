//! Storage faults: which failures mean that the data disk does not take writes (full, over
//! quota, read-only, failing) or that the log's PostgreSQL database cannot be reached, what a
//! client is told about one, and the probe that says whether the disk takes writes again.
//!
//! Such a failure is answered `503 storage-unavailable` with `Retry-After`, not `500
//! internal`: it says nothing about the request, and the same request may succeed once the
//! disk is back ([`crate::resync`]). What the client is told names the kind of fault only;
//! the error itself (which may name files) goes to the server's log.

use std::io::{self, Write as _};
use std::path::Path;

use kt_log::log::LogError;
use kt_log::store::StoreError;

use crate::refusal::Refusal;
use crate::state::StateError;

/// Bytes the probe writes: about what one batch's writes need, so that a disk with only a few
/// bytes free does not pass for one that takes writes again.
const PROBE_LEN: usize = 1 << 20;
/// The probe's file, in the data folder.
const PROBE_FILE: &str = ".storage-probe";

/// The reason of every failure of the log's PostgreSQL database (unreachable, restarting, a
/// failed query or commit): the client needs no more, the server's log gets the error.
pub const DATABASE_FAILED: &str = "the log's database is unreachable or failed";

/// A write the storage refused: the data disk, or the log's database.
#[derive(Clone, Debug)]
pub struct Fault {
    /// What kind of fault, for clients ("the data disk is full").
    pub reason: &'static str,
    /// The error, for the server's log.
    pub error: String,
}

impl Fault {
    /// The fault behind a failed log write, if it is one (not a signing failure or a damaged
    /// log).
    pub fn of_log(error: &LogError) -> Option<Fault> {
        match error {
            LogError::Store(StoreError::Io(e)) => Some(Fault::io(e, error)),
            LogError::Store(StoreError::Sled(e)) => Some(Fault::sled(e, error)),
            LogError::Store(StoreError::Postgres(_)) => Some(Fault {
                reason: DATABASE_FAILED,
                error: error.to_string(),
            }),
            _ => None,
        }
    }

    /// The fault behind a failed state write, if it is one. Every sled error is: sled takes
    /// no write after one failed until it is reopened, and a reopen finds a damaged store.
    pub fn of_state(error: &StateError) -> Option<Fault> {
        match error {
            StateError::Sled(e) => Some(Fault::sled(e, error)),
            StateError::Journal(e) => Some(Fault::io(e, error)),
            StateError::Unavailable => Some(Fault {
                reason: "the state store failed a write and is not reopened yet",
                error: error.to_string(),
            }),
            _ => None,
        }
    }

    /// A fault of `io`, reported as `error`.
    pub fn io(io: &io::Error, error: impl std::fmt::Display) -> Fault {
        Fault {
            reason: reason(io.kind()),
            error: error.to_string(),
        }
    }

    fn sled(sled: &sled::Error, error: impl std::fmt::Display) -> Fault {
        match sled {
            sled::Error::Io(io) => Fault::io(io, error),
            _ => Fault {
                reason: "the state store failed",
                error: error.to_string(),
            },
        }
    }

    /// The refusal that tells a client: nothing was written; retry in `seconds`.
    pub fn refusal(&self, seconds: u64) -> Refusal {
        Refusal::storage_unavailable(
            format!(
                "the server's storage does not take writes now ({}); nothing was changed, \
                 retry later",
                self.reason
            ),
            seconds,
        )
    }
}

/// The refusal of an action a state store `error` stopped: `storage-unavailable` if it is a
/// storage fault (sled may need to write to answer a read: it splits pages as it reads them,
/// and it takes no write after a failed one), else a failure of the server.
pub fn state_refusal(error: StateError) -> Refusal {
    match Fault::of_state(&error) {
        Some(fault) => {
            tracing::warn!(error = %fault.error, "state store unavailable");
            fault.refusal(1)
        }
        None => Refusal::failed(error),
    }
}

/// The refusal of a change that is committed (in the log, and in the state) but whose proof
/// cannot be read now, because `fault` stopped the read: the answer says the change is in the
/// log, so that a client looks it up before retrying rather than taking the refusal for
/// "nothing changed".
pub fn committed_unproven(fault: &Fault) -> Refusal {
    tracing::warn!(error = %fault.error, "proving a committed change");
    Refusal::storage_unavailable(
        format!(
            "the change is in the log, but its proof cannot be read now ({}); look it up \
             before retrying",
            fault.reason
        ),
        1,
    )
}

/// The refusal of a read of the log that `error` stopped, if the storage is at fault (on
/// PostgreSQL, the database unreachable): `storage-unavailable`, retry soon, since the same
/// read succeeds once the storage is back. `None` for any other failure (the server's).
pub fn log_read_refusal(error: &LogError) -> Option<Refusal> {
    let fault = Fault::of_log(error)?;
    tracing::warn!(error = %fault.error, "a read of the log failed");
    Some(fault.refusal(1))
}

/// The refusal of an action the shared database failed (an enrollment it could not store or
/// look up): `storage-unavailable`, retry soon. The error goes to the server's log only.
pub fn database_refusal(error: String) -> Refusal {
    tracing::warn!(%error, "the shared database failed");
    Fault {
        reason: DATABASE_FAILED,
        error,
    }
    .refusal(1)
}

fn reason(kind: io::ErrorKind) -> &'static str {
    match kind {
        io::ErrorKind::StorageFull => "the data disk is full",
        io::ErrorKind::QuotaExceeded => "the data disk's quota is exceeded",
        io::ErrorKind::ReadOnlyFilesystem => "the data disk is read-only",
        _ => "the data disk failed an I/O",
    }
}

/// Whether the disk of `data` (the data folder) takes writes: writes [`PROBE_LEN`] bytes to a
/// file there, syncs them, and removes it.
pub fn probe(data: &Path) -> io::Result<()> {
    let path = data.join(PROBE_FILE);
    let written = std::fs::File::create(&path).and_then(|mut file| {
        file.write_all(&vec![0u8; PROBE_LEN])?;
        file.sync_data()
    });
    let removed = std::fs::remove_file(&path);
    written.and(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_faults_are_told_by_kind_and_other_failures_are_not_faults() {
        let full = LogError::Store(StoreError::Io(io::Error::from(io::ErrorKind::StorageFull)));
        assert_eq!(
            Fault::of_log(&full).unwrap().reason,
            "the data disk is full"
        );
        let read_only = StateError::Journal(io::Error::from(io::ErrorKind::ReadOnlyFilesystem));
        assert_eq!(
            Fault::of_state(&read_only).unwrap().reason,
            "the data disk is read-only"
        );
        let sled_io = StateError::Sled(sled::Error::Io(io::Error::from_raw_os_error(122)));
        assert_eq!(
            Fault::of_state(&sled_io).unwrap().reason,
            "the data disk's quota is exceeded"
        );
        assert!(Fault::of_log(&LogError::Store(StoreError::Corrupt("x".into()))).is_none());
        assert!(Fault::of_state(&StateError::Disagrees("x".into())).is_none());
        let refusal = Fault::of_log(&full).unwrap().refusal(3);
        assert_eq!(refusal.retry_after, Some(3));
        assert!(
            refusal.detail.contains("the data disk is full"),
            "{}",
            refusal.detail
        );
    }

    #[test]
    fn the_probe_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        probe(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(probe(&dir.path().join("missing")).is_err());
    }
}
