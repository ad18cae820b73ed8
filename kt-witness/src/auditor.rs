//! The auditing mode, beyond C2SP tlog-witness: for a log of this project's directory format,
//! the witness cosigns a checkpoint only if the entries it adds keep the directory's public
//! rules — the role keytrans and Signal give third-party auditors.
//!
//! Before the witness cosigns a checkpoint (already verified as log-signed and consistent with
//! the one it cosigned before), [`Auditor::check`] fetches the entries between the two from the
//! log's tiles and:
//! - recomputes the tree from them: its root must be the checkpoint's, so the entries checked
//!   are exactly the ones the checkpoint commits to;
//! - applies each to the public audit of `kt_verify::audit` (the same code `verifier-cli
//!   audit` runs): every entry is a directory entry in canonical form, every update extends
//!   its label by exactly one version, every map entry's root and label count are recomputed
//!   from the map the updates made, and the checkpoint ends with a map entry.
//!
//! So a checkpoint it cosigns also vouches that the directory only changed as the rules allow.
//! What it cannot check is what the public audit cannot: whose labels they are and whether the
//! hidden records follow the history rules (owners check their own).
//!
//! Guarantees: the progress kept in memory is always that of a checkpoint the witness cosigned
//! and persisted (a check whose cosignature is not persisted is [`Auditor::discard`]ed, and a
//! failed check discards itself), so a resumed audit extends a tree the witness vouched for.
//! The progress is saved to a file now and then (see [`SNAPSHOT_MIN_ENTRIES`]; the file is
//! checked by a digest, and its loss only costs a longer audit from the log's first entry),
//! never before the checkpoint it belongs to is cosigned and persisted.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use kt_log::hash::leaf_hash;
use kt_log::tree::Frontier;
use kt_log::Hash;
use kt_protocol::directory::tree::Map;
use kt_verify::audit::Audit;
use sha2::{Digest, Sha256};

use crate::config::AuditConfig;
use crate::files::write_atomic;
use crate::tiles::{FetchError, TileClient};

/// The progress is saved when at least this many entries, and at least as many as the map
/// has labels, were audited since the last save: writing the map costs O(labels), so the
/// saves cost O(1) per audited entry.
pub const SNAPSHOT_MIN_ENTRIES: u64 = 65_536;

/// How long one tile request may take.
const TILE_TIMEOUT: Duration = Duration::from_secs(30);

/// The first bytes of a progress file.
const MAGIC: &[u8] = b"kt-witness audit v1\n";

/// Why a checkpoint was not audited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditFailure {
    /// The tiles could not be fetched: nothing is known against the checkpoint (503).
    Unavailable(String),
    /// The entries break the directory's rules, or are not the ones the checkpoint commits to
    /// (422): the log misbehaves.
    Broken(String),
}

impl From<FetchError> for AuditFailure {
    fn from(e: FetchError) -> Self {
        AuditFailure::Unavailable(e.0)
    }
}

/// The audit so far: the map and tree of the entries of a cosigned checkpoint.
struct Progress {
    audit: Audit,
    frontier: Frontier,
    /// The size of the last save (or of the load).
    saved_at: u64,
}

impl Progress {
    fn empty() -> Progress {
        Progress {
            audit: Audit::new(),
            frontier: Frontier::new(),
            saved_at: 0,
        }
    }

    fn size(&self) -> u64 {
        self.frontier.size()
    }
}

/// The auditor of one log.
pub struct Auditor {
    tiles: TileClient,
    file: PathBuf,
    /// `None`: to be loaded from the file (at start, or after a discarded check).
    progress: Mutex<Option<Progress>>,
    audited: AtomicU64,
}

impl Auditor {
    /// The auditor of the log whose tiles `config` names, saving its progress at `file`.
    pub fn new(config: &AuditConfig, file: PathBuf) -> Result<Auditor, String> {
        Ok(Auditor {
            tiles: TileClient::new(&config.url, config.tls_ca.as_deref(), TILE_TIMEOUT)?,
            file,
            progress: Mutex::new(None),
            audited: AtomicU64::new(0),
        })
    }

    /// How many entries it audited since the start.
    pub fn audited(&self) -> u64 {
        self.audited.load(Ordering::Relaxed)
    }

    /// Audits the entries up to the checkpoint of `size` and `root` (see the module doc). On
    /// success the progress is at `size`; the caller then calls [`Auditor::commit`] once the
    /// cosignature is persisted, or [`Auditor::discard`] if it is not. Blocking: it fetches
    /// tiles. Called under the witness's lock of the log, so checks never interleave.
    pub fn check(&self, size: u64, root: &Hash) -> Result<(), AuditFailure> {
        let mut guard = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        let mut progress = match guard.take() {
            Some(progress) => progress,
            None => self.load(),
        };
        if progress.size() > size {
            // Saved beyond this checkpoint (another history, or a reset witness): start over.
            progress = Progress::empty();
        }
        let resumed = progress.size() > 0;
        let result = match self.extend(&mut progress, size, root) {
            Err(AuditFailure::Broken(why)) if resumed => {
                // The saved progress may be of a history this witness no longer vouches for
                // (its state was reset): the checkpoint is judged on the whole log instead.
                tracing::warn!(
                    why,
                    "the audit from saved progress failed; auditing from the first entry"
                );
                progress = Progress::empty();
                self.extend(&mut progress, size, root)
            }
            other => other,
        };
        if result.is_ok() {
            *guard = Some(progress);
        }
        result
    }

    /// Applies the entries `progress.size()..size`, then checks the root and the batch end.
    fn extend(&self, progress: &mut Progress, size: u64, root: &Hash) -> Result<(), AuditFailure> {
        let from = progress.size();
        self.tiles.entries(from, size, |entry| {
            progress.frontier.push(leaf_hash(entry), |_| {});
            progress
                .audit
                .apply(entry)
                .map_err(|e| AuditFailure::Broken(format!("the directory's rules: {e}")))
        })?;
        self.audited.fetch_add(size - from, Ordering::Relaxed);
        if progress.frontier.root() != *root {
            return Err(AuditFailure::Broken(
                "the log's entries do not hash to the checkpoint's root".into(),
            ));
        }
        progress
            .audit
            .finish()
            .map_err(|e| AuditFailure::Broken(format!("the directory's rules: {e}")))
    }

    /// The checked checkpoint is cosigned and persisted: saves the progress if it is due.
    pub fn commit(&self) {
        let mut guard = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        let Some(progress) = guard.as_mut() else {
            return;
        };
        let since = progress.size() - progress.saved_at;
        if since < SNAPSHOT_MIN_ENTRIES.max(progress.audit.map().len()) {
            return;
        }
        match save(&self.file, progress) {
            Ok(()) => progress.saved_at = progress.size(),
            // Only a longer audit after a restart is lost.
            Err(e) => {
                tracing::warn!(file = %self.file.display(), error = %e, "cannot save the audit's progress")
            }
        }
    }

    /// The checked checkpoint was not persisted: forgets the progress past the last cosigned
    /// checkpoint (the next check resumes from the saved file).
    pub fn discard(&self) {
        *self.progress.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The saved progress, or the empty one if there is none or it is not whole.
    fn load(&self) -> Progress {
        match load(&self.file) {
            Ok(Some(progress)) => progress,
            Ok(None) => Progress::empty(),
            Err(why) => {
                tracing::warn!(file = %self.file.display(), why, "the audit's saved progress is unusable; auditing from the first entry");
                Progress::empty()
            }
        }
    }
}

/// Writes `MAGIC ‖ u64be(size) ‖ frontier hashes ‖ map leaves ‖ SHA-256 of all before`.
fn save(path: &Path, progress: &Progress) -> std::io::Result<()> {
    let map = progress.audit.map();
    let hashes = progress.frontier.hashes();
    let mut bytes =
        Vec::with_capacity(MAGIC.len() + 8 + hashes.len() * 32 + map.len() as usize * 72 + 32);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&progress.size().to_be_bytes());
    for hash in hashes {
        bytes.extend_from_slice(&hash.0);
    }
    map.write_leaves(&mut bytes)?;
    let digest = Sha256::digest(&bytes);
    bytes.extend_from_slice(&digest);
    write_atomic(path, &bytes, false)
}

/// Reads what [`save`] wrote; `Ok(None)` if there is no file.
fn load(path: &Path) -> Result<Option<Progress>, String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let body_len = bytes.len().checked_sub(32).ok_or("too short")?;
    let (body, digest) = bytes.split_at(body_len);
    if Sha256::digest(body).as_slice() != digest {
        return Err("its digest does not match".into());
    }
    let rest = body.strip_prefix(MAGIC).ok_or("not a progress file")?;
    let (size, rest) = rest.split_first_chunk::<8>().ok_or("too short")?;
    let size = u64::from_be_bytes(*size);
    let count = size.count_ones() as usize;
    let (hashes, leaves) = rest.split_at_checked(count * 32).ok_or("too short")?;
    let hashes = hashes
        .chunks_exact(32)
        .filter_map(Hash::from_slice)
        .collect();
    let frontier = Frontier::from_parts(size, hashes).ok_or("bad frontier")?;
    let map = Map::read_leaves(leaves).ok_or("bad map leaves")?;
    Ok(Some(Progress {
        audit: Audit::resume(map, size),
        frontier,
        saved_at: size,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_round_trips_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("progress");
        assert!(load(&path).unwrap().is_none());
        let mut progress = Progress::empty();
        for i in 0..5u64 {
            progress.frontier.push(leaf_hash(&i.to_be_bytes()), |_| {});
        }
        save(&path, &progress).unwrap();
        let loaded = load(&path).unwrap().unwrap();
        assert_eq!(loaded.frontier, progress.frontier);
        assert_eq!(loaded.audit.next_index(), 5);
        assert_eq!(loaded.saved_at, 5);
        let mut bytes = std::fs::read(&path).unwrap();
        for at in [0, MAGIC.len() + 3, bytes.len() - 1] {
            bytes[at] ^= 1;
            std::fs::write(&path, &bytes).unwrap();
            assert!(load(&path).is_err(), "flipped byte {at}");
            bytes[at] ^= 1;
        }
        std::fs::write(&path, &bytes[..bytes.len() - 40]).unwrap();
        assert!(load(&path).is_err());
    }
}
