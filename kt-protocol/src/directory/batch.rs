//! The directory's public rules: how the log's entries move the map, checkable by anyone
//! from the log alone, with no secret.
//!
//! - An update of a label must carry the label's current version plus one (1 for a label not
//!   in the map), and sets the label's leaf to that version and to the head of its chain
//!   extended by the update's commitment ([`super::hash::chain`]). So every version of every
//!   label stays in the chain forever, in order: a change made and undone leaves two versions
//!   behind, and nothing is ever removed or rewritten.
//! - A map entry closes the batch of updates before it: its root and label count must be the
//!   map's after them.
//!
//! [`Batch`] is one batch on top of a map (the AS builds its batches with it); [`Replay`]
//! runs a whole log through the rules (auditors, the witness's auditing mode, the AS when it
//! rebuilds its map).

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use thiserror::Error;

use super::hash::{chain, Hash32, LeafValue, EMPTY};
use super::public_entry::{MapRoot, PublicEntry, Update};
use super::tree::{Map, Staged};
use super::vrf::Label;

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&B64.encode(self.0))
    }
}

/// Why the log's entries break the directory's public rules.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MapViolation {
    /// An update that does not extend its label by exactly one version.
    #[error("update of label {label} to version {found}; the next version is {expected}")]
    Version {
        /// The label.
        label: Label,
        /// The version the rules require.
        expected: u64,
        /// The version the update has.
        found: u64,
    },
    /// A map entry whose root is not the map's.
    #[error("map root {} in the log; the entries before it make {}", B64.encode(found), B64.encode(expected))]
    Root {
        /// The root recomputed from the entries.
        expected: Hash32,
        /// The root the log has.
        found: Hash32,
    },
    /// A map entry whose label count is not the map's.
    #[error("map entry counts {found} labels; the entries before it make {expected}")]
    Labels {
        /// The count recomputed.
        expected: u64,
        /// The count the log has.
        found: u64,
    },
    /// An update of a label already at the last version (2^64 − 1): none can follow.
    #[error("update of label {label}, which is at the last version")]
    LastVersion {
        /// The label.
        label: Label,
    },
}

/// One batch of updates on top of a map; see the module documentation.
#[derive(Debug, Default)]
pub struct Batch {
    changes: Vec<(Label, LeafValue)>,
    latest: HashMap<Label, LeafValue>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// The value of `label` in `map` after this batch's updates so far.
    pub fn current(&self, map: &Map, label: &Label) -> Option<LeafValue> {
        self.latest.get(label).copied().or_else(|| map.get(label))
    }

    /// The version the next update of `label` must carry.
    pub fn next_version(&self, map: &Map, label: &Label) -> u64 {
        // Saturating: a label at the last version gets no next one ([`Batch::push`] refuses).
        self.current(map, label)
            .map_or(1, |v| v.version.saturating_add(1))
    }

    /// Adds an update of `label` to `version` with `commitment`, if it follows the rules;
    /// returns the label's new leaf value.
    pub fn push(
        &mut self,
        map: &Map,
        label: &Label,
        version: u64,
        commitment: &Hash32,
    ) -> Result<LeafValue, MapViolation> {
        let current = self.current(map, label);
        let Some(expected) = current.map_or(Some(1), |v| v.version.checked_add(1)) else {
            return Err(MapViolation::LastVersion { label: *label });
        };
        if version != expected {
            return Err(MapViolation::Version {
                label: *label,
                expected,
                found: version,
            });
        }
        let previous = current.map_or(EMPTY, |v| v.head);
        let value = LeafValue {
            version,
            head: chain(&previous, commitment),
        };
        self.changes.push((*label, value));
        self.latest.insert(*label, value);
        Ok(value)
    }

    /// Whether the batch has no update.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The batch's effect on `map` (see [`Map::stage`]), and the map entry that closes it.
    pub fn stage(&self, map: &Map) -> (Staged, MapRoot) {
        let staged = map.stage(&self.changes);
        let entry = MapRoot {
            root: staged.root(),
            labels: staged.len(),
        };
        (staged, entry)
    }
}

/// Checks that the map entry `found`, which closes a batch, is the one the batch makes
/// (`expected`, from [`Batch::stage`]): the same root and the same number of labels.
pub fn check_map_entry(found: &MapRoot, expected: &MapRoot) -> Result<(), MapViolation> {
    if found.root != expected.root {
        return Err(MapViolation::Root {
            expected: expected.root,
            found: found.root,
        });
    }
    if found.labels != expected.labels {
        return Err(MapViolation::Labels {
            expected: expected.labels,
            found: found.labels,
        });
    }
    Ok(())
}

/// A log's entries run through the rules from its first; see the module documentation.
#[derive(Debug, Default)]
pub struct Replay {
    map: Map,
    batch: Batch,
}

impl Replay {
    /// Before the log's first entry.
    pub fn new() -> Replay {
        Replay::default()
    }

    /// After a batch that left `map` (a saved map, trusted to be what the log made).
    pub fn from_map(map: Map) -> Replay {
        Replay {
            map,
            batch: Batch::new(),
        }
    }

    /// Applies the log's next entry. An update that breaks the rules changes nothing; a map
    /// entry that disagrees with the map is reported, and the map stays the one the entries
    /// make, so that every later map entry is checked against the entries too.
    pub fn apply(&mut self, entry: &PublicEntry) -> Result<(), MapViolation> {
        match entry {
            PublicEntry::Update(Update {
                label,
                version,
                commitment,
                ..
            }) => {
                self.batch.push(&self.map, label, *version, commitment)?;
            }
            PublicEntry::Map(found) => {
                let (staged, expected) = std::mem::take(&mut self.batch).stage(&self.map);
                self.map.commit(staged);
                check_map_entry(found, &expected)?;
            }
        }
        Ok(())
    }

    /// The map after the last map entry applied.
    pub fn map(&self) -> &Map {
        &self.map
    }

    /// Takes the map after the last map entry applied.
    pub fn into_map(self) -> Map {
        self.map
    }

    /// Whether updates were applied since the last map entry (a log must not end so).
    pub fn in_batch(&self) -> bool {
        !self.batch.is_empty()
    }
}
