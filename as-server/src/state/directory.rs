//! The directory's side of the state: each logged identity's label and VRF proof, and one row
//! per version with its record and chain heads, so that lookups and monitors are answered for
//! any version without touching the log.
//!
//! Keys: `d/<identity>` → [`LabelRow`], `v/<identity>/<version, 20 digits>` → [`VersionRow`].
//! Like the rest of the state these rows are made from the log alone (the sealed changes
//! and the AS's keys) by [`Overlay::record_version`], the one function that the sequencer and
//! the rebuild both call.

use kt_protocol::directory::hash::{chain, commitment, Hash32, EMPTY};
use kt_protocol::directory::record::VersionRecord;
use kt_protocol::directory::vrf::{Label, PROOF_LEN};
use serde::{Deserialize, Serialize};

use super::{Overlay, State, StateError};
use crate::encoding::{b64, from_b64};
use crate::entry::LogEntry;

/// An identity's label and its VRF proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelRow {
    /// The label, base64.
    pub label: String,
    /// The VRF proof, base64.
    pub vrf_proof: String,
}

impl LabelRow {
    /// The row of `label` proven by `proof`.
    pub fn new(label: &Label, proof: &[u8; PROOF_LEN]) -> LabelRow {
        LabelRow {
            label: b64(&label.0),
            vrf_proof: b64(proof),
        }
    }

    /// The label and proof.
    pub fn decode(&self) -> Option<(Label, [u8; PROOF_LEN])> {
        let label = from_b64(&self.label)?.try_into().ok()?;
        let proof = from_b64(&self.vrf_proof)?.try_into().ok()?;
        Some((Label(label), proof))
    }
}

/// One version of an identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRow {
    /// The record's canonical bytes (a JSON text).
    pub record: String,
    /// The chain head before this version, base64.
    pub previous_head: String,
    /// The chain head after it, base64.
    pub head: String,
}

impl VersionRow {
    /// The record.
    pub fn record(&self) -> Result<VersionRecord, StateError> {
        VersionRecord::parse(self.record.as_bytes()).map_err(|e| StateError::Corrupt {
            key: "v/".into(),
            error: e.to_string(),
        })
    }

    /// The chain head before this version.
    pub fn previous_head(&self) -> Hash32 {
        hash_of(&self.previous_head)
    }

    /// The chain head after this version.
    pub fn head(&self) -> Hash32 {
        hash_of(&self.head)
    }
}

fn hash_of(text: &str) -> Hash32 {
    from_b64(text)
        .and_then(|b| b.try_into().ok())
        .unwrap_or(EMPTY)
}

pub(super) fn label_key(identity: &str) -> Vec<u8> {
    [b"d/", identity.as_bytes()].concat()
}

pub(super) fn version_key(identity: &str, version: u64) -> Vec<u8> {
    format!("v/{identity}/{version:020}").into_bytes()
}

/// A change as the log holds it, opened with the AS's keys: what the state applies.
#[derive(Clone, Debug)]
pub struct OpenedChange {
    /// The identity's label.
    pub label: Label,
    /// Its VRF proof.
    pub vrf_proof: [u8; PROOF_LEN],
    /// The identity's new version.
    pub version: u64,
    /// The opening of the new version's commitment.
    pub opening: Hash32,
    /// The commitment the log holds, checked against the record made (`None`: the sequencer
    /// making the change, before the log holds it).
    pub commitment: Option<Hash32>,
    /// The change.
    pub entry: LogEntry,
}

/// What [`Overlay::record_version`] made.
#[derive(Clone, Debug)]
pub struct RecordedVersion {
    /// The new record.
    pub record: VersionRecord,
    /// Its commitment.
    pub commitment: Hash32,
    /// The chain head before it.
    pub previous_head: Hash32,
    /// The chain head after it.
    pub head: Hash32,
}

impl State {
    /// An identity's label row, if it was ever logged. A read the store refuses is answered
    /// from the log if the store keeps it ([`super::log_rows`]).
    pub fn label_row(&self, identity: &str) -> Result<Option<LabelRow>, StateError> {
        match self.get(&label_key(identity)) {
            Err(StateError::Sled(refused)) => self.refused_label_row(identity, refused),
            read => read,
        }
    }

    /// Version `version` of an identity. A read the store refuses is answered from the log if
    /// the store keeps it ([`super::log_rows`]).
    pub fn version_row(
        &self,
        identity: &str,
        version: u64,
    ) -> Result<Option<VersionRow>, StateError> {
        match self.get(&version_key(identity, version)) {
            Err(StateError::Sled(refused)) => self.refused_version_row(identity, version, refused),
            read => read,
        }
    }

    /// The label row the store `refused` to read, from the log; without it, the refusal.
    pub(super) fn refused_label_row(
        &self,
        identity: &str,
        refused: sled::Error,
    ) -> Result<Option<LabelRow>, StateError> {
        match &self.log_rows {
            Some(rows) => Ok(rows.rows(identity, 1, refused)?.label.clone()),
            None => Err(StateError::Sled(refused)),
        }
    }

    /// The version row the store `refused` to read, from the log; without it, the refusal.
    pub(super) fn refused_version_row(
        &self,
        identity: &str,
        version: u64,
        refused: sled::Error,
    ) -> Result<Option<VersionRow>, StateError> {
        match &self.log_rows {
            Some(rows) => Ok(rows.rows(identity, version, refused)?.version(version)),
            None => Err(StateError::Sled(refused)),
        }
    }
}

impl Overlay<'_> {
    /// An identity's label row, as changed so far.
    pub fn label_row(&self, identity: &str) -> Result<Option<LabelRow>, StateError> {
        self.get(&label_key(identity))
    }

    /// Records version `version` of `entry`'s identity at `label` ([`make_version`]) and
    /// writes its version row and, at the identity's first version, its label row.
    pub fn record_version(
        &mut self,
        label: &Label,
        vrf_proof: &[u8; PROOF_LEN],
        version: u64,
        entry: &LogEntry,
        opening: &Hash32,
        expected: Option<&Hash32>,
    ) -> Result<RecordedVersion, StateError> {
        let identity = entry.body.identity();
        let key = version_key(identity, version);
        let previous = match version.checked_sub(1).filter(|v| *v > 0) {
            Some(v) => Some(
                self.get::<VersionRow>(&version_key(identity, v))?
                    .ok_or_else(|| StateError::Corrupt {
                        key: String::from_utf8_lossy(&key).into_owned(),
                        error: format!("version {v} is missing"),
                    })?,
            ),
            None => None,
        };
        let (recorded, row) =
            make_version(label, version, previous.as_ref(), entry, opening, expected).map_err(
                |error| StateError::Corrupt {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    error,
                },
            )?;
        self.put(key, &row);
        if self.label_row(identity)?.is_none() {
            self.put(label_key(identity), &LabelRow::new(label, vrf_proof));
        }
        Ok(recorded)
    }
}

/// Version `version` of `entry`'s identity at `label`, after its row `previous` (`None` before
/// version 1): the record that follows by the directory's rule, its commitment (opened by
/// `opening`), the chain heads, and its row. If `expected` is given (a rebuild from the log),
/// the commitment must be it.
pub fn make_version(
    label: &Label,
    version: u64,
    previous: Option<&VersionRow>,
    entry: &LogEntry,
    opening: &Hash32,
    expected: Option<&Hash32>,
) -> Result<(RecordedVersion, VersionRow), String> {
    let previous_record = previous
        .map(VersionRow::record)
        .transpose()
        .map_err(|e| e.to_string())?;
    let record = VersionRecord::next(previous_record.as_ref(), entry).map_err(|e| e.to_string())?;
    if record.version != version {
        return Err(format!("the record is version {}", record.version));
    }
    let bytes = record.to_bytes();
    let committed = commitment(opening, label, version, &bytes);
    if expected.is_some_and(|e| *e != committed) {
        return Err("the log's commitment is not this record's".into());
    }
    let previous_head = previous.map_or(EMPTY, VersionRow::head);
    let head = chain(&previous_head, &committed);
    let row = VersionRow {
        record: String::from_utf8_lossy(&bytes).into_owned(),
        previous_head: b64(&previous_head),
        head: b64(&head),
    };
    Ok((
        RecordedVersion {
            record,
            commitment: committed,
            previous_head,
            head,
        },
        row,
    ))
}
