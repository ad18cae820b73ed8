//! kt_protocol::directory::public_entry::PublicEntry (the log's entries since the directory:
//! updates and map entries) and the public rules that replay them
//! (kt_protocol::directory::batch::Replay, and kt_verify::audit::Audit, the auditor's use of
//! it). The first byte picks what the rest is (`mode % 2`):
//! 0. entry bytes, several separated by NUL (JSON has no raw NUL): each given to
//!    `PublicEntry::parse` and to an `Audit` (which runs each entry that parses through its
//!    `Replay`); an update's sealed change to `DirectoryKeys::unseal` with the fuzz
//!    directory's key (the seeds' changes open), and an opened change to `LogEntry::parse`;
//! 1. a log described one byte per entry, made by the harness and run through a `Replay`:
//!    `0b0__vvlll` an update of label `lll` (of 8 that share long prefixes) whose version is
//!    the label's next one (`vv = 0`) or wrong in one of three ways; `0b1pppppmm` a map entry
//!    whose root and count are right (`mm = 0`: from a model of the map, a plain BTreeMap and
//!    `kt_fuzz::reference_root`) or wrong in one of three ways.
//!
//! One map per input (a `Replay` or `Audit` holds one; each costs milliseconds, 2^16 buckets).
//!
//! Properties: never panics; `parse(b)` succeeding means `to_bytes(parse(b)) == b` (one byte
//! form per entry) and `parse(to_bytes(e)) == e`; the audit fails an entry, at its index, as a
//! format error exactly when it does not parse, and otherwise with the rule that fits its
//! type (version for an update, root or count for a map entry); it is at a batch's end (and
//! `finish` passes) exactly when the last entry is a map entry (or there is none) and no
//! update was accepted since the map entry before; in mode 1, the replay accepts an update
//! exactly when its version is the label's next one (a refused one changes nothing) and a map
//! entry exactly when its root and count are the model's, and after every map entry, right
//! or not, its map is the one the entries make (as kt_verify::audit documents).
#![no_main]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use as_server::directory::keys::DirectoryKeys;
use as_server::entry::LogEntry;
use kt_fuzz::{directory_keys, reference_root, split_mode};
use kt_protocol::directory::batch::{MapViolation, Replay};
use kt_protocol::directory::hash::{chain, LeafValue, EMPTY};
use kt_protocol::directory::public_entry::{MapRoot, PublicEntry, Update};
use kt_protocol::directory::tree::Map;
use kt_protocol::directory::vrf::Label;
use kt_verify::audit::{Audit, AuditError};
use libfuzzer_sys::fuzz_target;

static KEYS: LazyLock<DirectoryKeys> = LazyLock::new(directory_keys);

/// Most entries per input.
const MAX_ENTRIES: usize = 64;

/// `parse`, and the round trip the module promises.
fn parse(bytes: &[u8]) -> Option<PublicEntry> {
    let entry = PublicEntry::parse(bytes).ok()?;
    let again = entry.to_bytes();
    assert_eq!(again, bytes, "parse accepted a non-canonical form");
    assert_eq!(PublicEntry::parse(&again).as_ref(), Ok(&entry));
    if let PublicEntry::Update(update) = &entry {
        assert!(update.version >= 1 && !update.sealed.is_empty());
    }
    Some(entry)
}

/// Mode 0's audit, with the harness's own account of what it must say. The audit is made at
/// the first piece that parses (every map costs milliseconds: 2^16 buckets), resumed at that
/// index: the pieces before changed nothing but the count.
struct Audited {
    audit: Option<Audit>,
    applied: u64,
    /// Whether the last piece parsed as a map entry (or none was applied).
    at_map: bool,
    /// Whether an update was accepted since the last map entry.
    open: bool,
}

impl Audited {
    fn new() -> Audited {
        Audited {
            audit: None,
            applied: 0,
            at_map: true,
            open: false,
        }
    }

    fn apply(&mut self, bytes: &[u8]) {
        let parsed = parse(bytes);
        let index = self.applied;
        self.applied += 1;
        self.at_map = matches!(parsed, Some(PublicEntry::Map(_)));
        if self.audit.is_none() && parsed.is_some() {
            self.audit = Some(Audit::resume(Map::new(), index));
        }
        let Some(audit) = &mut self.audit else {
            return;
        };
        let result = audit.apply(bytes);
        assert_eq!(audit.next_index(), self.applied);
        let at = |i: &u64| *i == index;
        match (&parsed, &result) {
            (None, Err(AuditError::Format { index: i, .. })) if at(i) => {}
            (Some(PublicEntry::Update(_)), Ok(())) => self.open = true,
            (
                Some(PublicEntry::Update(_)),
                Err(AuditError::Rules {
                    index: i,
                    source: MapViolation::Version { .. },
                }),
            ) if at(i) => {}
            // A map entry closes the batch, whether it is right or not.
            (Some(PublicEntry::Map(_)), Ok(())) => self.open = false,
            (
                Some(PublicEntry::Map(_)),
                Err(AuditError::Rules {
                    index: i,
                    source: MapViolation::Root { .. } | MapViolation::Labels { .. },
                }),
            ) if at(i) => self.open = false,
            _ => panic!("entry {index}: parsed {parsed:?}, audited {result:?}"),
        }
        assert_eq!(audit.at_batch_end(), self.at_batch_end());
    }

    /// Where a checkpoint may end: after a map entry, with no update accepted since.
    fn at_batch_end(&self) -> bool {
        self.at_map && !self.open
    }

    fn finish(&self) {
        if let Some(audit) = &self.audit {
            let finished = audit.finish();
            assert_eq!(finished.is_ok(), self.at_batch_end(), "{finished:?}");
        }
    }
}

/// Mode 0: entry bytes from the input.
fn raw(data: &[u8]) {
    let mut audited = Audited::new();
    for piece in data.split(|&b| b == 0).take(MAX_ENTRIES) {
        audited.apply(piece);
        if let Ok(PublicEntry::Update(update)) = PublicEntry::parse(piece) {
            if let Some(opened) = KEYS.unseal(&update.label, update.version, &update.sealed) {
                let _ = LogEntry::parse(&opened.entry);
            }
        }
    }
    audited.finish();
}

/// The labels of mode 1: pairs that share 255, 15 and 8 bits, in one bucket and across.
fn label(i: u8) -> Label {
    let mut l = [0u8; 32];
    match i % 8 {
        0 => {}
        1 => l[31] = 1,
        2 => l[1] = 1,
        3 => l[0] = 0x80,
        4 => l[0] = 0x80 | 0x01,
        5 => l = [0xff; 32],
        6 => {
            l = [0xff; 32];
            l[31] = 0xfe;
        }
        _ => {
            l = [0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0]
                .repeat(4)
                .try_into()
                .expect("32")
        }
    }
    Label(l)
}

/// Mode 1: a log described by the input, through a `Replay` checked against a model of the
/// map.
fn modelled(data: &[u8]) {
    let mut replay = Replay::new();
    // The map after the last map entry, and the batch's updates since.
    let mut committed: BTreeMap<Label, LeafValue> = BTreeMap::new();
    let mut pending: BTreeMap<Label, LeafValue> = BTreeMap::new();
    let mut previous_root = EMPTY;
    for (i, &byte) in data.iter().take(MAX_ENTRIES).enumerate() {
        let mut model = committed.clone();
        model.extend(pending.iter().map(|(l, v)| (*l, *v)));
        let entry = if byte & 0x80 == 0 {
            let label = label(byte);
            let next = model.get(&label).map_or(1, |v| v.version + 1);
            let version = match (byte >> 3) & 0x3 {
                0 => next,
                1 => next + 1,
                2 if next > 1 => next - 1,
                2 => next + 2,
                _ => u64::MAX,
            };
            PublicEntry::Update(Update {
                label,
                version,
                commitment: [i as u8 ^ byte; 32],
                sealed: vec![byte],
            })
        } else {
            let mut root = reference_root(&model);
            let mut labels = model.len() as u64;
            match byte & 0x3 {
                0 => {}
                1 => root[usize::from(byte >> 2) % 32] ^= 1,
                2 => labels = labels.wrapping_add(u64::from(byte >> 2) | 1),
                _ => root = previous_root,
            }
            PublicEntry::Map(MapRoot { root, labels })
        };
        let bytes = entry.to_bytes();
        assert_eq!(
            parse(&bytes).as_ref(),
            Some(&entry),
            "to_bytes does not parse back"
        );
        let result = replay.apply(&entry);
        match &entry {
            PublicEntry::Update(update) => {
                let current = model.get(&update.label);
                let next = current.map_or(1, |v| v.version + 1);
                assert_eq!(
                    result.is_ok(),
                    update.version == next,
                    "{update:?}: {result:?}"
                );
                if result.is_ok() {
                    let head = chain(&current.map_or(EMPTY, |v| v.head), &update.commitment);
                    pending.insert(
                        update.label,
                        LeafValue {
                            version: next,
                            head,
                        },
                    );
                }
            }
            PublicEntry::Map(map) => {
                let right = map.root == reference_root(&model) && map.labels == model.len() as u64;
                assert_eq!(result.is_ok(), right, "{map:?}: {result:?}");
                // Right or not, the map is what the entries make (kt_verify::audit).
                committed = model;
                pending.clear();
                previous_root = replay.map().root();
                assert_eq!(replay.map().len(), committed.len() as u64);
            }
        }
        assert_eq!(replay.in_batch(), !pending.is_empty());
        assert_eq!(
            replay.map().root(),
            reference_root(&committed),
            "the replay's map is not the model's"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = split_mode(data) else {
        return;
    };
    match mode % 2 {
        0 => raw(rest),
        _ => modelled(rest),
    }
});
