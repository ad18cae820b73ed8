//! The log entry format (`schemas/log-entry.schema.json`, docs/api.md "Log entries"): one
//! versioned JSON object per entry, with exactly one parser and one serializer.
//!
//! Guarantees of [`LogEntry::parse`]: it returns an entry only if the bytes are one JSON
//! object with exactly the fields its `type` requires (no unknown, missing or duplicate
//! field), `v` is 1, every value follows the schema (the identity rule of [`crate::identity`],
//! serials of 32 lowercase hex digits, keys of 32 bytes and certificates in canonical padded
//! base64, enrollments of 64 lowercase hex digits, known `scope` and `reason`, distinct
//! serials, one serial for scope `credential`, `not_before` ≤ `not_after`), **and** the bytes
//! are exactly what [`LogEntry::to_bytes`] makes of that entry. So an entry has one byte form:
//! `parse(b)` succeeding means `to_bytes(parse(b)) == b`, and two different byte strings are
//! never the same entry (the log's leaf hashes, evidence files and auditors' comparisons rely
//! on it). The certificate is not checked against the CA or the other fields here: that is the
//! verifier's job.
//!
//! The canonical form is serde_json's compact output of the fields in this order:
//! `v, type, time, identity`, then for `issue` and `rotate` `serial, public_key, not_before,
//! not_after, certificate` and `enrollment` (issue) or `replaces` (rotate); for `revoke`
//! `serials, scope, reason, admin`; for `enable` `admin`.

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::identity;

/// Version of the entry format, the `v` field.
pub const ENTRY_VERSION: u8 = 1;

/// Why entry bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EntryError {
    /// Not JSON of the entry shape (unknown, missing, duplicate or mistyped field).
    #[error("entry is not valid JSON of the schema: {0}")]
    Json(String),
    /// A field has a value the schema does not allow.
    #[error("entry field {field}: {reason}")]
    Field {
        /// The field name.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Valid, but not in the one byte form of this entry (field order, spaces, escapes).
    #[error("entry is not in canonical form")]
    NotCanonical,
}

fn field(field: &'static str, reason: &'static str) -> EntryError {
    EntryError::Field { field, reason }
}

/// A credential's certificate serial: 16 bytes, written as 32 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Serial(pub [u8; 16]);

impl Serial {
    /// Parses exactly 32 lowercase hex digits.
    pub fn parse_hex(text: &str) -> Option<Serial> {
        decode_hex::<16>(text).map(Serial)
    }

    /// The 32 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }
}

impl std::fmt::Display for Serial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The enrollment an issuance used: SHA-256 of its token, written as 64 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnrollmentId(pub [u8; 32]);

impl EnrollmentId {
    /// Parses exactly 64 lowercase hex digits.
    pub fn parse_hex(text: &str) -> Option<EnrollmentId> {
        decode_hex::<32>(text).map(EnrollmentId)
    }

    /// The 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }
}

impl std::fmt::Display for EnrollmentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Lowercase hex of `bytes`.
pub fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Exactly `2 * N` lowercase hex digits as `N` bytes.
pub fn decode_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if bytes.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// An RFC 5280 CRL reason the API accepts for revocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RevocationReason {
    /// No reason given.
    Unspecified,
    /// The private key is (suspected) compromised.
    KeyCompromise,
    /// The holder's affiliation changed.
    AffiliationChanged,
    /// Replaced by another credential.
    Superseded,
    /// No longer needed.
    CessationOfOperation,
    /// The right to hold it was withdrawn.
    PrivilegeWithdrawn,
}

impl RevocationReason {
    /// The RFC 5280 `CRLReason` code.
    pub fn code(self) -> u8 {
        match self {
            RevocationReason::Unspecified => 0,
            RevocationReason::KeyCompromise => 1,
            RevocationReason::AffiliationChanged => 3,
            RevocationReason::Superseded => 4,
            RevocationReason::CessationOfOperation => 5,
            RevocationReason::PrivilegeWithdrawn => 9,
        }
    }

    /// The name as written in entries and requests (`keyCompromise`).
    pub fn name(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "keyCompromise",
            RevocationReason::AffiliationChanged => "affiliationChanged",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessationOfOperation",
            RevocationReason::PrivilegeWithdrawn => "privilegeWithdrawn",
        }
    }
}

/// What a revocation covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RevocationScope {
    /// The identity and all its current credentials.
    Identity,
    /// One credential.
    Credential,
}

impl RevocationScope {
    /// The name as written in entries.
    pub fn name(self) -> &'static str {
        match self {
            RevocationScope::Identity => "identity",
            RevocationScope::Credential => "credential",
        }
    }
}

/// A credential as bound in the log: the fields shared by issuance and rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// Certificate serial.
    pub serial: Serial,
    /// The subject's Ed25519 public key.
    pub public_key: [u8; 32],
    /// Validity start, Unix seconds.
    pub not_before: u64,
    /// Validity end, Unix seconds (not before `not_before`).
    pub not_after: u64,
    /// The certificate's DER (not empty): the exact credential the client received.
    pub certificate: Vec<u8>,
}

impl Binding {
    /// The public key in standard base64, as on the wire.
    pub fn public_key_b64(&self) -> String {
        B64.encode(self.public_key)
    }
}

/// The body of a log entry, by type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryBody {
    /// A credential issued against an enrollment.
    Issue {
        /// When, Unix seconds.
        time: u64,
        /// Whose.
        identity: String,
        /// The credential.
        binding: Binding,
        /// The enrollment it consumed.
        enrollment: EnrollmentId,
    },
    /// A credential that replaces the holder's current one.
    Rotate {
        /// When, Unix seconds.
        time: u64,
        /// Whose.
        identity: String,
        /// The new credential.
        binding: Binding,
        /// Serial of the credential it supersedes.
        replaces: Serial,
    },
    /// A revocation by an admin.
    Revoke {
        /// When, Unix seconds.
        time: u64,
        /// Whose.
        identity: String,
        /// The credentials revoked, distinct (for scope identity: all that were current, maybe
        /// none; for scope credential: exactly one).
        serials: Vec<Serial>,
        /// Identity or one credential.
        scope: RevocationScope,
        /// Why.
        reason: RevocationReason,
        /// Label of the admin token that asked (not empty).
        admin: String,
    },
    /// A revoked identity enabled again by an admin.
    Enable {
        /// When, Unix seconds.
        time: u64,
        /// Whose.
        identity: String,
        /// Label of the admin token that asked (not empty).
        admin: String,
    },
}

impl EntryBody {
    /// The identity the entry is about.
    pub fn identity(&self) -> &str {
        match self {
            EntryBody::Issue { identity, .. }
            | EntryBody::Rotate { identity, .. }
            | EntryBody::Revoke { identity, .. }
            | EntryBody::Enable { identity, .. } => identity,
        }
    }

    /// The entry's `time`.
    pub fn time(&self) -> u64 {
        match self {
            EntryBody::Issue { time, .. }
            | EntryBody::Rotate { time, .. }
            | EntryBody::Revoke { time, .. }
            | EntryBody::Enable { time, .. } => *time,
        }
    }

    /// The `type` word.
    pub fn kind(&self) -> &'static str {
        match self {
            EntryBody::Issue { .. } => "issue",
            EntryBody::Rotate { .. } => "rotate",
            EntryBody::Revoke { .. } => "revoke",
            EntryBody::Enable { .. } => "enable",
        }
    }

    /// The binding of an issue or rotate entry.
    pub fn binding(&self) -> Option<&Binding> {
        match self {
            EntryBody::Issue { binding, .. } | EntryBody::Rotate { binding, .. } => Some(binding),
            _ => None,
        }
    }
}

/// A versioned log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Format version, [`ENTRY_VERSION`].
    pub v: u8,
    /// The entry itself.
    pub body: EntryBody,
}

/// Bytes written as standard base64 straight into the output (no string in between).
struct B64Of<'a>(&'a [u8]);

impl Serialize for B64Of<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&base64::display::Base64Display::new(self.0, &B64))
    }
}

/// Bytes written as lowercase hex straight into the output.
struct HexOf<'a>(&'a [u8]);

impl std::fmt::Display for HexOf<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Serialize for HexOf<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The wire form of issue and rotate entries, fields in canonical order.
#[derive(Serialize)]
struct WireBinding<'a> {
    v: u8,
    #[serde(rename = "type")]
    kind: &'static str,
    time: u64,
    identity: &'a str,
    serial: HexOf<'a>,
    public_key: B64Of<'a>,
    not_before: u64,
    not_after: u64,
    certificate: B64Of<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enrollment: Option<HexOf<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replaces: Option<HexOf<'a>>,
}

/// The wire form of revoke entries.
#[derive(Serialize)]
struct WireRevoke<'a> {
    v: u8,
    #[serde(rename = "type")]
    kind: &'static str,
    time: u64,
    identity: &'a str,
    serials: Vec<HexOf<'a>>,
    scope: RevocationScope,
    reason: RevocationReason,
    admin: &'a str,
}

/// The wire form of enable entries.
#[derive(Serialize)]
struct WireEnable<'a> {
    v: u8,
    #[serde(rename = "type")]
    kind: &'static str,
    time: u64,
    identity: &'a str,
    admin: &'a str,
}

/// Every field any entry type may have, as read. Borrowed when possible: the audit parses
/// every entry of the log.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry<'a> {
    v: u64,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    time: u64,
    #[serde(borrow)]
    identity: Cow<'a, str>,
    #[serde(borrow, default)]
    serial: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    public_key: Option<Cow<'a, str>>,
    #[serde(default)]
    not_before: Option<u64>,
    #[serde(default)]
    not_after: Option<u64>,
    #[serde(borrow, default)]
    certificate: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    enrollment: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    replaces: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    serials: Option<Vec<Cow<'a, str>>>,
    #[serde(default)]
    scope: Option<RevocationScope>,
    #[serde(default)]
    reason: Option<RevocationReason>,
    #[serde(borrow, default)]
    admin: Option<Cow<'a, str>>,
}

fn need<T>(value: Option<T>, name: &'static str) -> Result<T, EntryError> {
    value.ok_or(field(name, "missing"))
}

fn absent(present: bool, name: &'static str) -> Result<(), EntryError> {
    if present {
        Err(field(name, "not allowed for this entry type"))
    } else {
        Ok(())
    }
}

fn serial(text: &str, name: &'static str) -> Result<Serial, EntryError> {
    Serial::parse_hex(text).ok_or(field(name, "not 32 lowercase hex digits"))
}

/// Canonical padded standard base64 (the decoder refuses non-zero trailing bits).
fn base64(text: &str, name: &'static str) -> Result<Vec<u8>, EntryError> {
    B64.decode(text)
        .map_err(|_| field(name, "not canonical standard base64"))
}

impl LogEntry {
    /// A current-version entry.
    pub fn new(body: EntryBody) -> LogEntry {
        LogEntry {
            v: ENTRY_VERSION,
            body,
        }
    }

    /// The entry's one byte form, what the log stores.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        // Serializing strings, integers and enums into a Vec cannot fail.
        let _ = self.write_to(&mut out);
        out
    }

    /// Writes the entry's one byte form to `out`.
    fn write_to<W: std::io::Write>(&self, out: W) -> serde_json::Result<()> {
        let v = self.v;
        let kind = self.body.kind();
        match &self.body {
            EntryBody::Issue {
                time,
                identity,
                binding,
                enrollment,
            } => serde_json::to_writer(
                out,
                &wire_binding(v, kind, *time, identity, binding, Some(&enrollment.0), None),
            ),
            EntryBody::Rotate {
                time,
                identity,
                binding,
                replaces,
            } => serde_json::to_writer(
                out,
                &wire_binding(v, kind, *time, identity, binding, None, Some(&replaces.0)),
            ),
            EntryBody::Revoke {
                time,
                identity,
                serials,
                scope,
                reason,
                admin,
            } => serde_json::to_writer(
                out,
                &WireRevoke {
                    v,
                    kind,
                    time: *time,
                    identity,
                    serials: serials.iter().map(|s| HexOf(&s.0)).collect(),
                    scope: *scope,
                    reason: *reason,
                    admin,
                },
            ),
            EntryBody::Enable {
                time,
                identity,
                admin,
            } => serde_json::to_writer(
                out,
                &WireEnable {
                    v,
                    kind,
                    time: *time,
                    identity,
                    admin,
                },
            ),
        }
    }

    /// The entry as a JSON object, for answers that carry a change (its fields are the byte
    /// form's; only the byte form fixes their order).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.to_bytes()).unwrap_or_default()
    }

    /// Parses an entry from a JSON object of an answer: the exact shape (no unknown, missing
    /// or mistyped field) and every field's rule, as [`LogEntry::parse`] checks them, but not
    /// the byte form (an answer's JSON has none). `from_json(&e.to_json()) == e`.
    pub fn from_json(value: &serde_json::Value) -> Result<LogEntry, EntryError> {
        let raw = RawEntry::deserialize(value).map_err(|e| EntryError::Json(e.to_string()))?;
        from_raw(raw)
    }

    /// Parses entry bytes (see the module guarantees).
    pub fn parse(bytes: &[u8]) -> Result<LogEntry, EntryError> {
        let raw: RawEntry<'_> =
            serde_json::from_slice(bytes).map_err(|e| EntryError::Json(e.to_string()))?;
        let entry = from_raw(raw)?;
        // The canonical form, compared as it is written: no copy of the entry is made.
        let mut compare = CompareWriter {
            expected: bytes,
            at: 0,
            equal: true,
        };
        if entry.write_to(&mut compare).is_err() || !compare.equal || compare.at != bytes.len() {
            return Err(EntryError::NotCanonical);
        }
        Ok(entry)
    }
}

/// A writer that only compares what it is given with `expected`.
struct CompareWriter<'a> {
    expected: &'a [u8],
    at: usize,
    equal: bool,
}

impl std::io::Write for CompareWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let end = self.at + buf.len();
        if self.expected.get(self.at..end) != Some(buf) {
            self.equal = false;
        }
        self.at = end;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn wire_binding<'a>(
    v: u8,
    kind: &'static str,
    time: u64,
    identity: &'a str,
    binding: &'a Binding,
    enrollment: Option<&'a [u8]>,
    replaces: Option<&'a [u8]>,
) -> WireBinding<'a> {
    WireBinding {
        v,
        kind,
        time,
        identity,
        serial: HexOf(&binding.serial.0),
        public_key: B64Of(&binding.public_key),
        not_before: binding.not_before,
        not_after: binding.not_after,
        certificate: B64Of(&binding.certificate),
        enrollment: enrollment.map(HexOf),
        replaces: replaces.map(HexOf),
    }
}

fn from_raw(raw: RawEntry<'_>) -> Result<LogEntry, EntryError> {
    if raw.v != u64::from(ENTRY_VERSION) {
        return Err(field("v", "must be 1"));
    }
    if identity::check_syntax(&raw.identity).is_err() {
        return Err(field("identity", "not a valid identity"));
    }
    let identity = raw.identity.into_owned();
    let time = raw.time;
    let binding_fields = [
        (raw.serial.is_some(), "serial"),
        (raw.public_key.is_some(), "public_key"),
        (raw.not_before.is_some(), "not_before"),
        (raw.not_after.is_some(), "not_after"),
        (raw.certificate.is_some(), "certificate"),
        (raw.enrollment.is_some(), "enrollment"),
        (raw.replaces.is_some(), "replaces"),
    ];
    let body = match &*raw.kind {
        "issue" | "rotate" => {
            absent(raw.serials.is_some(), "serials")?;
            absent(raw.scope.is_some(), "scope")?;
            absent(raw.reason.is_some(), "reason")?;
            absent(raw.admin.is_some(), "admin")?;
            let public_key = base64(&need(raw.public_key, "public_key")?, "public_key")?;
            let public_key = <[u8; 32]>::try_from(public_key)
                .map_err(|_| field("public_key", "not 32 bytes"))?;
            let certificate = base64(&need(raw.certificate, "certificate")?, "certificate")?;
            if certificate.is_empty() {
                return Err(field("certificate", "empty"));
            }
            let not_before = need(raw.not_before, "not_before")?;
            let not_after = need(raw.not_after, "not_after")?;
            if not_after < not_before {
                return Err(field("not_after", "before not_before"));
            }
            let binding = Binding {
                serial: serial(&need(raw.serial, "serial")?, "serial")?,
                public_key,
                not_before,
                not_after,
                certificate,
            };
            if raw.kind == "issue" {
                absent(raw.replaces.is_some(), "replaces")?;
                let enrollment = EnrollmentId::parse_hex(&need(raw.enrollment, "enrollment")?)
                    .ok_or(field("enrollment", "not 64 lowercase hex digits"))?;
                EntryBody::Issue {
                    time,
                    identity,
                    binding,
                    enrollment,
                }
            } else {
                absent(raw.enrollment.is_some(), "enrollment")?;
                EntryBody::Rotate {
                    time,
                    identity,
                    binding,
                    replaces: serial(&need(raw.replaces, "replaces")?, "replaces")?,
                }
            }
        }
        "revoke" => {
            for (present, name) in binding_fields {
                absent(present, name)?;
            }
            let serials = need(raw.serials, "serials")?
                .iter()
                .map(|s| serial(s, "serials"))
                .collect::<Result<Vec<_>, _>>()?;
            let mut sorted = serials.clone();
            sorted.sort_unstable();
            if sorted.windows(2).any(|pair| pair[0] == pair[1]) {
                return Err(field("serials", "a serial is listed twice"));
            }
            let scope = need(raw.scope, "scope")?;
            if scope == RevocationScope::Credential && serials.len() != 1 {
                return Err(field(
                    "serials",
                    "scope credential names exactly one serial",
                ));
            }
            EntryBody::Revoke {
                time,
                identity,
                serials,
                scope,
                reason: need(raw.reason, "reason")?,
                admin: admin(raw.admin)?,
            }
        }
        "enable" => {
            for (present, name) in binding_fields {
                absent(present, name)?;
            }
            absent(raw.serials.is_some(), "serials")?;
            absent(raw.scope.is_some(), "scope")?;
            absent(raw.reason.is_some(), "reason")?;
            EntryBody::Enable {
                time,
                identity,
                admin: admin(raw.admin)?,
            }
        }
        _ => return Err(field("type", "not issue, rotate, revoke or enable")),
    };
    Ok(LogEntry::new(body))
}

fn admin(value: Option<Cow<'_, str>>) -> Result<String, EntryError> {
    let admin = need(value, "admin")?;
    if admin.is_empty() {
        return Err(field("admin", "empty"));
    }
    Ok(admin.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    fn serial_hex(byte: u8) -> String {
        encode_hex(&[byte; 16])
    }

    fn issue() -> String {
        format!(
            r#"{{"v":1,"type":"issue","time":5,"identity":"alice@example.com","serial":"{}","public_key":"{KEY}","not_before":1,"not_after":2,"certificate":"MAA=","enrollment":"{}"}}"#,
            serial_hex(0x0a),
            "ab".repeat(32)
        )
    }

    fn rotate() -> String {
        format!(
            r#"{{"v":1,"type":"rotate","time":5,"identity":"a@b.co","serial":"{}","public_key":"{KEY}","not_before":1,"not_after":2,"certificate":"MAA=","replaces":"{}"}}"#,
            serial_hex(0x0a),
            serial_hex(0x0b)
        )
    }

    fn revoke() -> String {
        format!(
            r#"{{"v":1,"type":"revoke","time":5,"identity":"a@b.co","serials":["{}"],"scope":"credential","reason":"keyCompromise","admin":"ops"}}"#,
            serial_hex(0x0a)
        )
    }

    const ENABLE: &str = r#"{"v":1,"type":"enable","time":5,"identity":"a@b.co","admin":"ops"}"#;

    #[test]
    fn each_type_round_trips_byte_for_byte() {
        for text in [issue(), rotate(), revoke(), ENABLE.to_owned()] {
            let entry = LogEntry::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}: {text}"));
            assert_eq!(entry.to_bytes(), text.as_bytes());
        }
        let identity_scope = r#"{"v":1,"type":"revoke","time":5,"identity":"a@b.co","serials":[],"scope":"identity","reason":"unspecified","admin":"ops"}"#;
        assert!(LogEntry::parse(identity_scope.as_bytes()).is_ok());
    }

    #[test]
    fn json_objects_round_trip_and_follow_the_same_rules() {
        for text in [issue(), rotate(), revoke(), ENABLE.to_owned()] {
            let entry = LogEntry::parse(text.as_bytes()).unwrap();
            assert_eq!(LogEntry::from_json(&entry.to_json()).unwrap(), entry);
        }
        // Each field's rule holds as in the byte form: a bad identity, an unknown field, a
        // missing one, a mistyped one.
        for bad in [
            issue().replace("alice@example.com", "Alice@example.com"),
            issue().replace(r#""time":5"#, r#""time":5,"extra":1"#),
            issue().replace(r#","enrollment""#, r#","ignored""#),
            issue().replace(r#""time":5"#, r#""time":"5""#),
        ] {
            let value: serde_json::Value = serde_json::from_str(&bad).unwrap();
            assert!(LogEntry::from_json(&value).is_err(), "{bad}");
        }
    }

    #[test]
    fn schema_violations_are_refused() {
        let good = issue();
        let cases = [
            good.replace(r#""v":1"#, r#""v":2"#),
            good.replace("alice@example.com", "Alice@example.com"),
            good.replace("alice@example.com", "alice@exa_mple.com"),
            good.replace(&serial_hex(0x0a), &serial_hex(0x0a).to_uppercase()),
            good.replace(&serial_hex(0x0a), "0a0b"),
            good.replace(r#","enrollment""#, r#","replaces":"0a","enrollment""#),
            good.replace(r#""time":5"#, r#""time":5,"extra":1"#),
            good.replace(r#""time":5"#, r#""time":5,"time":6"#),
            good.replace(r#""time":5"#, r#""time":-5"#),
            good.replace(KEY, "AAAA"),
            // Non-canonical base64: a trailing bit set.
            good.replace(KEY, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB="),
            good.replace(r#""certificate":"MAA=""#, r#""certificate":"""#),
            good.replace(r#""not_after":2"#, r#""not_after":0"#),
            good.replace(&"ab".repeat(32), &"ab".repeat(31)),
            good.replace(r#""type":"issue""#, r#""type":"mint""#),
            revoke().replace(r#""scope":"credential""#, r#""scope":"everything""#),
            revoke().replace(r#""reason":"keyCompromise""#, r#""reason":"because""#),
            revoke().replace(r#""admin":"ops""#, r#""admin":"""#),
            revoke().replace(
                &format!(r#"["{}"]"#, serial_hex(0x0a)),
                &format!(r#"["{0}","{0}"]"#, serial_hex(0x0a)),
            ),
            revoke().replace(&format!(r#"["{}"]"#, serial_hex(0x0a)), "[]"),
            ENABLE.replace(
                r#""admin":"ops""#,
                r#""admin":"ops","reason":"unspecified""#,
            ),
            "[]".to_owned(),
            String::new(),
        ];
        for bad in cases {
            assert!(LogEntry::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_the_canonical_byte_form_parses() {
        let good = issue();
        for other_form in [
            // Another field order, a space, an escaped character, a trailing newline.
            good.replace(r#""v":1,"type":"issue""#, r#""type":"issue","v":1"#),
            good.replace(r#""time":5"#, r#""time": 5"#),
            good.replace("alice@", "\\u0061lice@"),
            format!("{good}\n"),
        ] {
            assert_eq!(
                LogEntry::parse(other_form.as_bytes()),
                Err(EntryError::NotCanonical),
                "{other_form}"
            );
        }
    }
}
