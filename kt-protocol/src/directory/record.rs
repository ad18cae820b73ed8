//! A version record: the complete state of one identity after one change, which the map
//! commits to (through [`super::hash::commitment`]) and a lookup shows.
//!
//! Canonical bytes: serde_json's compact output of the fields in the order of
//! [`VersionRecord`] (`identity, version, time, change, status, credentials`), a change's
//! fields in the order of [`Change`] after its `type`, each credential's as in [`Credential`];
//! serials and enrollments as lowercase hex, keys and certificates as padded standard base64.
//! The commitment is over these bytes, so a client that parses a record from an answer
//! ([`VersionRecord::from_json`], strict) and writes it back ([`VersionRecord::to_bytes`])
//! gets exactly the bytes the AS committed to, or a commitment that does not match.
//!
//! A record's `credentials` are every current credential of the identity, sorted by serial;
//! a revoked identity has none. [`VersionRecord::next`] is the one rule that makes a record
//! from the previous one and a change ([`crate::entry::LogEntry`]): the AS builds records
//! with it and an owner's monitor re-derives every record with it, so a record that does not
//! follow from its predecessor is caught.

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::entry::{
    Binding, EnrollmentId, EntryBody, LogEntry, RevocationReason, RevocationScope, Serial,
};

/// Whether the identity may hold credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It may.
    Active,
    /// Revoked by an admin, until enabled again: no credential.
    Revoked,
}

/// The change a record follows from: its log entry without what the record's state repeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A credential issued against an enrollment (the credential is in the state).
    Issue {
        /// Its serial.
        serial: Serial,
        /// The enrollment used.
        enrollment: EnrollmentId,
    },
    /// A credential that replaced a current one (the new credential is in the state).
    Rotate {
        /// The new serial.
        serial: Serial,
        /// The serial replaced.
        replaces: Serial,
    },
    /// A revocation by an admin.
    Revoke {
        /// The credentials revoked.
        serials: Vec<Serial>,
        /// Identity or one credential.
        scope: RevocationScope,
        /// Why.
        reason: RevocationReason,
        /// The admin token's label.
        admin: String,
    },
    /// The identity enabled again by an admin.
    Enable {
        /// The admin token's label.
        admin: String,
    },
}

/// One current credential.
pub type Credential = Binding;

/// The state of an identity after one change; see the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionRecord {
    /// Whose.
    pub identity: String,
    /// From 1, one more per change.
    pub version: u64,
    /// When the change was made, Unix seconds.
    pub time: u64,
    /// The change.
    pub change: Change,
    /// Active or revoked.
    pub status: Status,
    /// Every current credential, sorted by serial.
    pub credentials: Vec<Credential>,
}

/// Why a record was refused or could not be made.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Not JSON of the record's shape.
    #[error("record is not valid JSON of its shape: {0}")]
    Json(String),
    /// A field breaks the record's rules.
    #[error("record field {field}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The change does not apply to the previous record.
    #[error("the change does not follow the previous record: {0}")]
    DoesNotFollow(&'static str),
}

fn field(field: &'static str, reason: &'static str) -> RecordError {
    RecordError::Field { field, reason }
}

impl VersionRecord {
    /// The record after `entry`, from the identity's previous record (`None` before its first
    /// change). This is the directory's one transition rule (see the module documentation);
    /// it checks that the change applies (credentials replaced or revoked are current, new
    /// ones are new), not the history rules of [`crate::history`], which need more than one
    /// identity's state.
    pub fn next(previous: Option<&VersionRecord>, entry: &LogEntry) -> Result<Self, RecordError> {
        let identity = entry.body.identity();
        if previous.is_some_and(|p| p.identity != identity) {
            return Err(RecordError::DoesNotFollow("another identity"));
        }
        let version = match previous {
            None => 1,
            Some(p) => p.version.checked_add(1).ok_or(RecordError::DoesNotFollow(
                "the previous version is the last one",
            ))?,
        };
        let mut status = previous.map_or(Status::Active, |p| p.status);
        let mut credentials = previous.map_or_else(Vec::new, |p| p.credentials.clone());
        let insert = |credentials: &mut Vec<Credential>, binding: &Binding| match credentials
            .binary_search_by(|c| c.serial.cmp(&binding.serial))
        {
            Ok(_) => Err(RecordError::DoesNotFollow(
                "a new serial is already current",
            )),
            Err(at) => {
                credentials.insert(at, binding.clone());
                Ok(())
            }
        };
        let remove = |credentials: &mut Vec<Credential>, serial: &Serial| match credentials
            .binary_search_by(|c| c.serial.cmp(serial))
        {
            Ok(at) => {
                credentials.remove(at);
                Ok(())
            }
            Err(_) => Err(RecordError::DoesNotFollow("a serial is not current")),
        };
        let change = match &entry.body {
            EntryBody::Issue {
                binding,
                enrollment,
                ..
            } => {
                insert(&mut credentials, binding)?;
                Change::Issue {
                    serial: binding.serial,
                    enrollment: *enrollment,
                }
            }
            EntryBody::Rotate {
                binding, replaces, ..
            } => {
                remove(&mut credentials, replaces)?;
                insert(&mut credentials, binding)?;
                Change::Rotate {
                    serial: binding.serial,
                    replaces: *replaces,
                }
            }
            EntryBody::Revoke {
                serials,
                scope,
                reason,
                admin,
                ..
            } => {
                for serial in serials {
                    remove(&mut credentials, serial)?;
                }
                if *scope == RevocationScope::Identity {
                    if !credentials.is_empty() {
                        return Err(RecordError::DoesNotFollow(
                            "an identity revocation left current credentials",
                        ));
                    }
                    status = Status::Revoked;
                }
                Change::Revoke {
                    serials: serials.clone(),
                    scope: *scope,
                    reason: *reason,
                    admin: admin.clone(),
                }
            }
            EntryBody::Enable { admin, .. } => {
                status = Status::Active;
                Change::Enable {
                    admin: admin.clone(),
                }
            }
        };
        let record = VersionRecord {
            identity: identity.to_owned(),
            version,
            time: entry.body.time(),
            change,
            status,
            credentials,
        };
        record.check()?;
        Ok(record)
    }

    /// The change as a log entry (the credential of an issuance or rotation taken from the
    /// state), for the history rules.
    pub fn entry(&self) -> Result<LogEntry, RecordError> {
        let credential = |serial: &Serial| {
            self.credentials
                .iter()
                .find(|c| c.serial == *serial)
                .cloned()
                .ok_or(field(
                    "change",
                    "the new serial is not among the credentials",
                ))
        };
        let identity = self.identity.clone();
        let time = self.time;
        let body = match &self.change {
            Change::Issue { serial, enrollment } => EntryBody::Issue {
                time,
                identity,
                binding: credential(serial)?,
                enrollment: *enrollment,
            },
            Change::Rotate { serial, replaces } => EntryBody::Rotate {
                time,
                identity,
                binding: credential(serial)?,
                replaces: *replaces,
            },
            Change::Revoke {
                serials,
                scope,
                reason,
                admin,
            } => EntryBody::Revoke {
                time,
                identity,
                serials: serials.clone(),
                scope: *scope,
                reason: *reason,
                admin: admin.clone(),
            },
            Change::Enable { admin } => EntryBody::Enable {
                time,
                identity,
                admin: admin.clone(),
            },
        };
        Ok(LogEntry::new(body))
    }

    /// The record's canonical bytes (see the module documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing strings, integers and enums into a Vec cannot fail.
        serde_json::to_vec(&self.to_wire()).unwrap_or_default()
    }

    /// The record as a JSON value, as answers carry it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.to_wire()).unwrap_or_default()
    }

    /// Parses a record from an answer: the exact shape (no unknown, missing or mistyped
    /// field), then [`VersionRecord::check`].
    pub fn from_json(value: &serde_json::Value) -> Result<VersionRecord, RecordError> {
        let wire = WireRecord::deserialize(value).map_err(|e| RecordError::Json(e.to_string()))?;
        VersionRecord::from_wire(wire)
    }

    /// Parses a record from its canonical bytes (anything else is refused).
    pub fn parse(bytes: &[u8]) -> Result<VersionRecord, RecordError> {
        let wire: WireRecord<'_> =
            serde_json::from_slice(bytes).map_err(|e| RecordError::Json(e.to_string()))?;
        let record = VersionRecord::from_wire(wire)?;
        if record.to_bytes() != bytes {
            return Err(field("record", "not in canonical form"));
        }
        Ok(record)
    }

    /// The rules every record keeps: a logged identity, a version from 1, credentials sorted
    /// by distinct serial with `not_before ≤ not_after`, none for a revoked identity, and a
    /// change that agrees with the state (a new serial among the credentials, a replaced or
    /// revoked one not, a scope matching the status, a non-empty admin).
    pub fn check(&self) -> Result<(), RecordError> {
        crate::identity::check_syntax(&self.identity)
            .map_err(|_| field("identity", "not a valid identity"))?;
        if self.version == 0 {
            return Err(field("version", "versions start at 1"));
        }
        if self
            .credentials
            .windows(2)
            .any(|pair| pair[0].serial >= pair[1].serial)
        {
            return Err(field("credentials", "not sorted by distinct serial"));
        }
        for credential in &self.credentials {
            if credential.not_before > credential.not_after {
                return Err(field("credentials", "not_before after not_after"));
            }
            if credential.certificate.is_empty() {
                return Err(field("credentials", "empty certificate"));
            }
        }
        if self.status == Status::Revoked && !self.credentials.is_empty() {
            return Err(field("credentials", "a revoked identity holds credentials"));
        }
        let current = |serial: &Serial| self.credentials.iter().any(|c| c.serial == *serial);
        match &self.change {
            Change::Issue { serial, .. } => {
                if !current(serial) {
                    return Err(field("change", "the issued serial is not current"));
                }
            }
            Change::Rotate { serial, replaces } => {
                if !current(serial) || current(replaces) {
                    return Err(field("change", "the rotation does not show in the state"));
                }
            }
            Change::Revoke {
                serials,
                scope,
                admin,
                ..
            } => {
                let mut sorted = serials.clone();
                sorted.sort();
                sorted.dedup();
                if sorted.len() != serials.len() || serials.iter().any(current) {
                    return Err(field("change", "revoked serials repeated or still current"));
                }
                let expected = match scope {
                    RevocationScope::Identity => Status::Revoked,
                    RevocationScope::Credential => Status::Active,
                };
                if (*scope == RevocationScope::Credential && serials.len() != 1)
                    || self.status != expected
                    || admin.is_empty()
                {
                    return Err(field("change", "the revocation does not match the state"));
                }
            }
            Change::Enable { admin } => {
                if self.status != Status::Active || admin.is_empty() {
                    return Err(field("change", "the enabling does not match the state"));
                }
            }
        }
        Ok(())
    }

    fn to_wire(&self) -> WireRecord<'_> {
        let change = match &self.change {
            Change::Issue { serial, enrollment } => WireChange {
                kind: Cow::Borrowed("issue"),
                serial: Some(Cow::Owned(serial.to_hex())),
                enrollment: Some(Cow::Owned(enrollment.to_hex())),
                ..WireChange::default()
            },
            Change::Rotate { serial, replaces } => WireChange {
                kind: Cow::Borrowed("rotate"),
                serial: Some(Cow::Owned(serial.to_hex())),
                replaces: Some(Cow::Owned(replaces.to_hex())),
                ..WireChange::default()
            },
            Change::Revoke {
                serials,
                scope,
                reason,
                admin,
            } => WireChange {
                kind: Cow::Borrowed("revoke"),
                serials: Some(serials.iter().map(|s| Cow::Owned(s.to_hex())).collect()),
                scope: Some(*scope),
                reason: Some(*reason),
                admin: Some(Cow::Borrowed(admin)),
                ..WireChange::default()
            },
            Change::Enable { admin } => WireChange {
                kind: Cow::Borrowed("enable"),
                admin: Some(Cow::Borrowed(admin)),
                ..WireChange::default()
            },
        };
        WireRecord {
            identity: Cow::Borrowed(&self.identity),
            version: self.version,
            time: self.time,
            change,
            status: self.status,
            credentials: self
                .credentials
                .iter()
                .map(|c| WireCredential {
                    serial: Cow::Owned(c.serial.to_hex()),
                    public_key: Cow::Owned(B64.encode(c.public_key)),
                    not_before: c.not_before,
                    not_after: c.not_after,
                    certificate: Cow::Owned(B64.encode(&c.certificate)),
                })
                .collect(),
        }
    }

    fn from_wire(wire: WireRecord<'_>) -> Result<VersionRecord, RecordError> {
        fn need<'a>(
            value: Option<Cow<'a, str>>,
            name: &'static str,
        ) -> Result<Cow<'a, str>, RecordError> {
            value.ok_or(field(name, "missing"))
        }
        let serial = |text: &str, name| Serial::parse_hex(text).ok_or(field(name, "not a serial"));
        let c = wire.change;
        let only = |allowed: &[&str]| -> Result<(), RecordError> {
            let present = [
                ("serial", c.serial.is_some()),
                ("enrollment", c.enrollment.is_some()),
                ("replaces", c.replaces.is_some()),
                ("serials", c.serials.is_some()),
                ("scope", c.scope.is_some()),
                ("reason", c.reason.is_some()),
                ("admin", c.admin.is_some()),
            ];
            if present.iter().any(|(n, p)| *p && !allowed.contains(n)) {
                return Err(field("change", "a field its type does not have"));
            }
            Ok(())
        };
        let change = match c.kind.as_ref() {
            "issue" => {
                only(&["serial", "enrollment"])?;
                Change::Issue {
                    serial: serial(&need(c.serial.clone(), "change.serial")?, "change.serial")?,
                    enrollment: EnrollmentId::parse_hex(&need(
                        c.enrollment.clone(),
                        "change.enrollment",
                    )?)
                    .ok_or(field("change.enrollment", "not 64 lowercase hex digits"))?,
                }
            }
            "rotate" => {
                only(&["serial", "replaces"])?;
                Change::Rotate {
                    serial: serial(&need(c.serial.clone(), "change.serial")?, "change.serial")?,
                    replaces: serial(
                        &need(c.replaces.clone(), "change.replaces")?,
                        "change.replaces",
                    )?,
                }
            }
            "revoke" => {
                only(&["serials", "scope", "reason", "admin"])?;
                Change::Revoke {
                    serials: c
                        .serials
                        .clone()
                        .ok_or(field("change.serials", "missing"))?
                        .iter()
                        .map(|s| serial(s, "change.serials"))
                        .collect::<Result<_, _>>()?,
                    scope: c.scope.ok_or(field("change.scope", "missing"))?,
                    reason: c.reason.ok_or(field("change.reason", "missing"))?,
                    admin: need(c.admin.clone(), "change.admin")?.into_owned(),
                }
            }
            "enable" => {
                only(&["admin"])?;
                Change::Enable {
                    admin: need(c.admin.clone(), "change.admin")?.into_owned(),
                }
            }
            _ => return Err(field("change.type", "unknown change")),
        };
        let credentials = wire
            .credentials
            .into_iter()
            .map(|w| {
                Ok(Binding {
                    serial: serial(&w.serial, "credentials.serial")?,
                    public_key: B64
                        .decode(w.public_key.as_ref())
                        .ok()
                        .and_then(|k| <[u8; 32]>::try_from(k).ok())
                        .ok_or(field("credentials.public_key", "not 32 bytes of base64"))?,
                    not_before: w.not_before,
                    not_after: w.not_after,
                    certificate: B64
                        .decode(w.certificate.as_ref())
                        .map_err(|_| field("credentials.certificate", "not base64"))?,
                })
            })
            .collect::<Result<Vec<_>, RecordError>>()?;
        let record = VersionRecord {
            identity: wire.identity.into_owned(),
            version: wire.version,
            time: wire.time,
            change,
            status: wire.status,
            credentials,
        };
        record.check()?;
        Ok(record)
    }
}

/// The record on the wire, fields in canonical order.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRecord<'a> {
    #[serde(borrow)]
    identity: Cow<'a, str>,
    version: u64,
    time: u64,
    #[serde(borrow)]
    change: WireChange<'a>,
    status: Status,
    #[serde(borrow)]
    credentials: Vec<WireCredential<'a>>,
}

/// A change on the wire: `type`, then the fields of that type in canonical order.
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WireChange<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    serial: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    enrollment: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    replaces: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    serials: Option<Vec<Cow<'a, str>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<RevocationScope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<RevocationReason>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    admin: Option<Cow<'a, str>>,
}

/// A credential on the wire.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireCredential<'a> {
    #[serde(borrow)]
    serial: Cow<'a, str>,
    #[serde(borrow)]
    public_key: Cow<'a, str>,
    not_before: u64,
    not_after: u64,
    #[serde(borrow)]
    certificate: Cow<'a, str>,
}
