//! The audit's history index: what the entries audited so far established, as the shared
//! history rules (`kt_protocol::history`) read it, kept across runs.
//!
//! In memory: each credential's serial → (identity tag, status, `not_after`), the used
//! enrollments, the revoked identities' tags. An identity tag is the first 16 bytes of
//! SHA-256 of the identity: two identities share one with a chance of about 2^-64 among 2^32
//! identities, which would make the index take one for the other.
//!
//! On disk (`history.bin`): the effects of every accepted entry, in log order, as fixed
//! records of [`RECORD`] bytes, only ever appended and fsynced before the audit state that
//! counts them is replaced. So the state's record count is the commit point, and loading
//! replays the first `count` records.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::{Read as _, Seek as _, Write as _};
use std::path::PathBuf;

use kt_protocol::entry::{EnrollmentId, LogEntry, Serial};
use kt_protocol::history::{
    self, CredentialFacts, CredentialStatus, Effect, HistoryView, Refused, Violation,
};
use sha2::{Digest, Sha256};

use crate::error::Error;

/// Bytes of one record of `history.bin`: a kind byte and 40 bytes of payload.
pub(crate) const RECORD: usize = 41;

const NEW_CREDENTIAL: u8 = 1;
const STATUS: u8 = 2;
const ENROLLMENT: u8 = 3;
const IDENTITY: u8 = 4;

/// An identity as the index knows it.
type Tag = [u8; 16];

fn tag(identity: &str) -> Tag {
    let digest = Sha256::digest(identity.as_bytes());
    let mut tag = [0u8; 16];
    tag.copy_from_slice(&digest[..16]);
    tag
}

fn status_byte(status: CredentialStatus) -> u8 {
    match status {
        CredentialStatus::Current => 0,
        CredentialStatus::Superseded => 1,
        CredentialStatus::Revoked => 2,
    }
}

fn status_of(byte: u8) -> Option<CredentialStatus> {
    match byte {
        0 => Some(CredentialStatus::Current),
        1 => Some(CredentialStatus::Superseded),
        2 => Some(CredentialStatus::Revoked),
        _ => None,
    }
}

/// See the module doc.
pub(crate) struct AuditIndex {
    credentials: HashMap<Serial, (Tag, CredentialStatus, u64)>,
    enrollments: HashSet<EnrollmentId>,
    revoked: HashSet<Tag>,
    unsaved: Vec<[u8; RECORD]>,
    path: PathBuf,
    saved_records: u64,
}

impl AuditIndex {
    /// Loads the first `records` records of `path` (none: an empty index).
    pub(crate) fn load(path: PathBuf, records: u64) -> Result<AuditIndex, Error> {
        let mut index = AuditIndex {
            credentials: HashMap::new(),
            enrollments: HashSet::new(),
            revoked: HashSet::new(),
            unsaved: Vec::new(),
            path,
            saved_records: records,
        };
        if records == 0 {
            return Ok(index);
        }
        let path = index.path.clone();
        let mut file =
            std::fs::File::open(&path).map_err(|e| Error::io("cannot open", &path, e))?;
        let len = usize::try_from(records)
            .ok()
            .and_then(|n| n.checked_mul(RECORD))
            .ok_or_else(|| Error::verify("audit state is corrupt: too many history records"))?;
        let mut buf = vec![0u8; len];
        file.read_exact(&mut buf)
            .map_err(|e| Error::io("truncated audit history file", &path, e))?;
        for record in buf.chunks_exact(RECORD) {
            index.replay(record)?;
        }
        Ok(index)
    }

    fn replay(&mut self, record: &[u8]) -> Result<(), Error> {
        let corrupt = || Error::verify("audit history file is corrupt");
        let bytes = |range: std::ops::Range<usize>| record.get(range).ok_or_else(corrupt);
        let serial = || -> Result<Serial, Error> {
            Ok(Serial(bytes(1..17)?.try_into().map_err(|_| corrupt())?))
        };
        match record.first().copied() {
            Some(NEW_CREDENTIAL) => {
                let holder: Tag = bytes(17..33)?.try_into().map_err(|_| corrupt())?;
                let not_after =
                    u64::from_be_bytes(bytes(33..41)?.try_into().map_err(|_| corrupt())?);
                self.credentials
                    .insert(serial()?, (holder, CredentialStatus::Current, not_after));
            }
            Some(STATUS) => {
                let status = bytes(17..18)?
                    .first()
                    .copied()
                    .and_then(status_of)
                    .ok_or_else(corrupt)?;
                if let Some(credential) = self.credentials.get_mut(&serial()?) {
                    credential.1 = status;
                }
            }
            Some(ENROLLMENT) => {
                let id: [u8; 32] = bytes(1..33)?.try_into().map_err(|_| corrupt())?;
                self.enrollments.insert(EnrollmentId(id));
            }
            Some(IDENTITY) => {
                let who: Tag = bytes(1..17)?.try_into().map_err(|_| corrupt())?;
                if bytes(17..18)? == [1] {
                    self.revoked.insert(who);
                } else {
                    self.revoked.remove(&who);
                }
            }
            _ => return Err(corrupt()),
        }
        Ok(())
    }

    /// Checks `entry` against the shared history rules; if it may come next, applies its
    /// effects (to be saved by the next [`AuditIndex::flush`]).
    pub(crate) fn accept(&mut self, entry: &LogEntry) -> Result<(), Violation> {
        history::check(self, entry).map_err(|refused| match refused {
            Refused::Violation(violation) => violation,
            Refused::View(never) => match never {},
        })?;
        let holder = tag(entry.body.identity());
        for effect in history::effects(entry) {
            let mut record = [0u8; RECORD];
            match effect {
                Effect::NewCredential { serial, not_after } => {
                    record[0] = NEW_CREDENTIAL;
                    record[1..17].copy_from_slice(&serial.0);
                    record[17..33].copy_from_slice(&holder);
                    record[33..41].copy_from_slice(&not_after.to_be_bytes());
                }
                Effect::CredentialStatus { serial, status } => {
                    record[0] = STATUS;
                    record[1..17].copy_from_slice(&serial.0);
                    record[17] = status_byte(status);
                }
                Effect::EnrollmentUsed(id) => {
                    record[0] = ENROLLMENT;
                    record[1..33].copy_from_slice(&id.0);
                }
                Effect::IdentityRevoked(revoked) => {
                    record[0] = IDENTITY;
                    record[1..17].copy_from_slice(&holder);
                    record[17] = u8::from(revoked);
                }
            }
            // The record is well formed by construction.
            let _ = self.replay(&record);
            self.unsaved.push(record);
        }
        Ok(())
    }

    /// Appends the unsaved records after the first `saved_records`, fsyncs, and returns how
    /// many records are saved now.
    pub(crate) fn flush(&mut self) -> Result<u64, Error> {
        if self.unsaved.is_empty() {
            return Ok(self.saved_records);
        }
        let path = &self.path;
        let io = |e| Error::io("cannot write", path, e);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io)?;
        let end = self.saved_records * RECORD as u64;
        file.set_len(end).map_err(io)?;
        file.seek(std::io::SeekFrom::Start(end)).map_err(io)?;
        let buf: Vec<u8> = self.unsaved.concat();
        file.write_all(&buf).map_err(io)?;
        file.sync_all().map_err(io)?;
        self.saved_records += self.unsaved.len() as u64;
        self.unsaved.clear();
        Ok(self.saved_records)
    }
}

impl HistoryView for AuditIndex {
    type Error = std::convert::Infallible;

    fn identity_revoked(&self, identity: &str) -> Result<bool, Self::Error> {
        Ok(self.revoked.contains(&tag(identity)))
    }

    fn credential(
        &self,
        serial: &Serial,
        identity: &str,
    ) -> Result<Option<CredentialFacts>, Self::Error> {
        Ok(self
            .credentials
            .get(serial)
            .map(|(holder, status, not_after)| CredentialFacts {
                held_by_identity: *holder == tag(identity),
                status: *status,
                not_after: *not_after,
            }))
    }

    fn enrollment_used(&self, enrollment: &EnrollmentId) -> Result<bool, Self::Error> {
        Ok(self.enrollments.contains(enrollment))
    }
}
