//! The log's entries: what the public log holds, and all it holds.
//!
//! - **update**: one per change of an identity, `{"v":2,"type":"update","label":…,
//!   "version":…,"commitment":…,"sealed":…}` — the identity's VRF label, its new version, the
//!   commitment to its new [`super::record::VersionRecord`], and `sealed`, the change
//!   encrypted to the AS alone (so that the AS can rebuild its state from its own log; opaque
//!   to everyone else and never needed to verify anything).
//! - **map**: one at the end of every batch, `{"v":2,"type":"map","root":…,"labels":…}` — the
//!   map's root and number of labels after the batch's updates. Every checkpoint the AS signs
//!   ends in one, so a checkpoint vouches for a map root.
//!
//! Labels, commitments and roots are padded standard base64 of 32 bytes, `sealed` of its bytes
//! (not empty). Like [`crate::entry`], [`PublicEntry::parse`] returns an entry only if the
//! bytes have exactly the fields of its type, valid values, and are exactly what
//! [`PublicEntry::to_bytes`] makes of it: one byte form per entry.

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Deserialize;
use thiserror::Error;

use super::hash::Hash32;
use super::vrf::Label;

/// The `v` of the log's entries.
pub const PUBLIC_ENTRY_VERSION: u8 = 2;

/// One change of one label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// The identity's label.
    pub label: Label,
    /// Its new version (1 for the first).
    pub version: u64,
    /// The commitment to the new record.
    pub commitment: Hash32,
    /// The change, encrypted to the AS.
    pub sealed: Vec<u8>,
}

/// The map after a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapRoot {
    /// The root hash.
    pub root: Hash32,
    /// The number of labels.
    pub labels: u64,
}

/// An entry of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicEntry {
    /// A change.
    Update(Update),
    /// The end of a batch.
    Map(MapRoot),
}

/// Why entry bytes were refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PublicEntryError {
    /// Not JSON of an entry's shape.
    #[error("entry is not valid JSON of its shape: {0}")]
    Json(String),
    /// A field has a value the format does not allow.
    #[error("entry field {field}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// Valid, but not in the entry's one byte form.
    #[error("entry is not in canonical form")]
    NotCanonical,
}

fn field(field: &'static str, reason: &'static str) -> PublicEntryError {
    PublicEntryError::Field { field, reason }
}

/// Every field either type may have, in canonical order.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    v: u64,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    label: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    commitment: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    sealed: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    root: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    labels: Option<u64>,
}

impl Wire<'_> {
    /// Writes the canonical form: the fields present, in the struct's order, with no
    /// whitespace, strings as they are (base64 needs no escaping) and decimal integers — what
    /// `serde_json` makes of the struct, written directly so that [`PublicEntry::parse`] can
    /// check an entry without encoding its base64 again.
    fn write(&self, out: &mut Vec<u8>) {
        fn string(out: &mut Vec<u8>, name: &str, value: &str) {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":\"");
            out.extend_from_slice(value.as_bytes());
            out.push(b'"');
        }
        fn number(out: &mut Vec<u8>, name: &str, value: u64) {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(value.to_string().as_bytes());
        }
        out.extend_from_slice(b"{\"v\":");
        out.extend_from_slice(self.v.to_string().as_bytes());
        string(out, "type", &self.kind);
        if let Some(label) = &self.label {
            string(out, "label", label);
        }
        if let Some(version) = self.version {
            number(out, "version", version);
        }
        if let Some(commitment) = &self.commitment {
            string(out, "commitment", commitment);
        }
        if let Some(sealed) = &self.sealed {
            string(out, "sealed", sealed);
        }
        if let Some(root) = &self.root {
            string(out, "root", root);
        }
        if let Some(labels) = self.labels {
            number(out, "labels", labels);
        }
        out.push(b'}');
    }
}

fn hash32(text: Option<Cow<'_, str>>, name: &'static str) -> Result<Hash32, PublicEntryError> {
    let text = text.ok_or(field(name, "missing"))?;
    B64.decode(text.as_ref())
        .ok()
        .and_then(|bytes| Hash32::try_from(bytes).ok())
        .ok_or(field(name, "not 32 bytes of canonical base64"))
}

impl PublicEntry {
    /// The entry's one byte form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let wire = match self {
            PublicEntry::Update(u) => Wire {
                v: u64::from(PUBLIC_ENTRY_VERSION),
                kind: Cow::Borrowed("update"),
                label: Some(Cow::Owned(B64.encode(u.label.0))),
                version: Some(u.version),
                commitment: Some(Cow::Owned(B64.encode(u.commitment))),
                sealed: Some(Cow::Owned(B64.encode(&u.sealed))),
                root: None,
                labels: None,
            },
            PublicEntry::Map(m) => Wire {
                v: u64::from(PUBLIC_ENTRY_VERSION),
                kind: Cow::Borrowed("map"),
                label: None,
                version: None,
                commitment: None,
                sealed: None,
                root: Some(Cow::Owned(B64.encode(m.root))),
                labels: Some(m.labels),
            },
        };
        let mut out = Vec::with_capacity(96 + wire.sealed.as_ref().map_or(0, |s| s.len()) + 3 * 44);
        wire.write(&mut out);
        out
    }

    /// Parses entry bytes (see the module documentation).
    pub fn parse(bytes: &[u8]) -> Result<PublicEntry, PublicEntryError> {
        let wire: Wire<'_> =
            serde_json::from_slice(bytes).map_err(|e| PublicEntryError::Json(e.to_string()))?;
        if wire.v != u64::from(PUBLIC_ENTRY_VERSION) {
            return Err(field("v", "not 2"));
        }
        let mut canonical = Vec::with_capacity(bytes.len());
        wire.write(&mut canonical);
        let canonical = canonical == bytes;
        let entry = match wire.kind.as_ref() {
            "update" => {
                if wire.root.is_some() || wire.labels.is_some() {
                    return Err(field("type", "an update has no root or labels"));
                }
                let version = wire.version.ok_or(field("version", "missing"))?;
                if version == 0 {
                    return Err(field("version", "versions start at 1"));
                }
                let sealed = B64
                    .decode(wire.sealed.ok_or(field("sealed", "missing"))?.as_ref())
                    .map_err(|_| field("sealed", "not canonical base64"))?;
                if sealed.is_empty() {
                    return Err(field("sealed", "empty"));
                }
                PublicEntry::Update(Update {
                    label: Label(hash32(wire.label, "label")?),
                    version,
                    commitment: hash32(wire.commitment, "commitment")?,
                    sealed,
                })
            }
            "map" => {
                if wire.label.is_some()
                    || wire.version.is_some()
                    || wire.commitment.is_some()
                    || wire.sealed.is_some()
                {
                    return Err(field(
                        "type",
                        "a map entry has no label, version or sealed change",
                    ));
                }
                PublicEntry::Map(MapRoot {
                    root: hash32(wire.root, "root")?,
                    labels: wire.labels.ok_or(field("labels", "missing"))?,
                })
            }
            _ => return Err(field("type", "not update or map")),
        };
        // The one byte form, checked on the text as it came: a string with an escape differs
        // from its value written back, and every base64 value was decoded strictly (canonical
        // padding, no stray bits), so equal text means equal entry.
        if !canonical {
            return Err(PublicEntryError::NotCanonical);
        }
        debug_assert_eq!(entry.to_bytes(), bytes);
        Ok(entry)
    }
}
