//! The log entry format: one versioned JSON object per entry (`schemas/log-entry.schema.json`).
//!
//! The log stores the exact bytes that [`LogEntry::to_bytes`] makes, and verifiers hash the
//! bytes as served, so the encoding only has to be deterministic for one write; readers parse
//! JSON and never rely on field order.

use serde::{Deserialize, Serialize};

/// Version of the entry format, the `v` field.
pub const ENTRY_VERSION: u8 = 1;

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

/// A credential as bound in the log: the fields shared by issuance and rotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// Certificate serial, 32 lowercase hex digits.
    pub serial: String,
    /// The subject's Ed25519 public key, base64.
    pub public_key: String,
    /// Validity start, Unix seconds.
    pub not_before: u64,
    /// Validity end, Unix seconds.
    pub not_after: u64,
    /// The certificate's DER, base64: the exact credential the client received.
    pub certificate: String,
}

/// The body of a log entry, by type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum EntryBody {
    /// A credential issued against an enrollment.
    Issue {
        /// When, Unix seconds.
        time: u64,
        /// Whose.
        identity: String,
        /// The credential.
        #[serde(flatten)]
        binding: Binding,
        /// The enrollment it consumed: hex SHA-256 of the token.
        enrollment: String,
    },
    /// A credential that replaces the holder's current one.
    Rotate {
        /// When, Unix seconds.
        time: u64,
        /// Whose.
        identity: String,
        /// The new credential.
        #[serde(flatten)]
        binding: Binding,
        /// Serial of the credential it supersedes.
        replaces: String,
    },
    /// A revocation by an admin.
    Revoke {
        /// When, Unix seconds.
        time: u64,
        /// Whose.
        identity: String,
        /// The credentials revoked (for scope identity: all that were current, maybe none).
        serials: Vec<String>,
        /// Identity or one credential.
        scope: RevocationScope,
        /// Why.
        reason: RevocationReason,
        /// Label of the admin token that asked.
        admin: String,
    },
    /// A revoked identity enabled again by an admin.
    Enable {
        /// When, Unix seconds.
        time: u64,
        /// Whose.
        identity: String,
        /// Label of the admin token that asked.
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
}

/// A versioned log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Format version, [`ENTRY_VERSION`].
    pub v: u8,
    /// The entry itself.
    #[serde(flatten)]
    pub body: EntryBody,
}

impl LogEntry {
    /// A current-version entry.
    pub fn new(body: EntryBody) -> LogEntry {
        LogEntry {
            v: ENTRY_VERSION,
            body,
        }
    }

    /// The bytes the log stores.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses entry bytes (of this log: replay trusts them, but still never panics).
    pub fn parse(bytes: &[u8]) -> Result<LogEntry, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_version_and_type_first() {
        let entry = LogEntry::new(EntryBody::Issue {
            time: 5,
            identity: "alice@example.com".into(),
            binding: Binding {
                serial: "01".repeat(16),
                public_key: "k".into(),
                not_before: 1,
                not_after: 2,
                certificate: "c".into(),
            },
            enrollment: "e".into(),
        });
        let bytes = entry.to_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with(
                r#"{"v":1,"type":"issue","time":5,"identity":"alice@example.com","serial":"#
            ),
            "{text}"
        );
        assert_eq!(LogEntry::parse(&bytes).unwrap(), entry);

        let revoke = LogEntry::new(EntryBody::Revoke {
            time: 1,
            identity: "a@b.c".into(),
            serials: vec![],
            scope: RevocationScope::Identity,
            reason: RevocationReason::KeyCompromise,
            admin: "admin".into(),
        });
        let text = String::from_utf8(revoke.to_bytes()).unwrap();
        assert!(
            text.contains(r#""scope":"identity","reason":"keyCompromise""#),
            "{text}"
        );
    }
}
