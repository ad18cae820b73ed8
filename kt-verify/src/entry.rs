//! Log entries (docs/api.md, "Log entries") as the verifier uses them.
//!
//! [`parse_entry`] is `kt_protocol::entry::LogEntry::parse`, the protocol's one strict parser
//! (its guarantees: exactly the schema's fields and values, and the canonical byte form),
//! turned into the verifier's view: serials also as normalised bytes to compare with
//! certificates. It does not check the certificate against the CA or against the other
//! fields: [`Binding::check_certificate`] does that.

use kt_protocol::entry::{EntryBody, LogEntry, Serial};
use thiserror::Error;

use crate::credential::{self, Ca, CertFacts, CredentialError};

/// Why an entry was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EntryError {
    /// Not an entry of the protocol's format (see `kt_protocol::entry::EntryError`).
    #[error(transparent)]
    Format(#[from] kt_protocol::entry::EntryError),
    /// The certificate does not verify or does not say what the entry says.
    #[error("entry certificate: {0}")]
    Certificate(#[from] CredentialError),
    /// The certificate verifies but disagrees with the entry.
    #[error("entry {field} does not match its certificate")]
    Mismatch {
        /// The field that differs.
        field: &'static str,
    },
}

/// A parsed, schema-checked log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A credential issued on enrollment.
    Issue(Binding),
    /// A credential issued by rotation, replacing `replaces`.
    Rotate(Binding),
    /// Revocation of credentials (and, with scope identity, of the identity).
    Revoke(Revoke),
    /// An identity re-enabled.
    Enable(Enable),
}

impl Entry {
    /// The entry's identity.
    pub fn identity(&self) -> &str {
        match self {
            Entry::Issue(b) | Entry::Rotate(b) => &b.identity,
            Entry::Revoke(r) => &r.identity,
            Entry::Enable(e) => &e.identity,
        }
    }
    /// The entry's `type` word.
    pub fn kind(&self) -> &'static str {
        match self {
            Entry::Issue(_) => "issue",
            Entry::Rotate(_) => "rotate",
            Entry::Revoke(_) => "revoke",
            Entry::Enable(_) => "enable",
        }
    }
    /// The entry's `time`.
    pub fn time(&self) -> u64 {
        match self {
            Entry::Issue(b) | Entry::Rotate(b) => b.time,
            Entry::Revoke(r) => r.time,
            Entry::Enable(e) => e.time,
        }
    }
    /// The binding of an issue or rotate entry.
    pub fn binding(&self) -> Option<&Binding> {
        match self {
            Entry::Issue(b) | Entry::Rotate(b) => Some(b),
            _ => None,
        }
    }
}

/// An identity→key binding (issue or rotate entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// Entry time, Unix seconds.
    pub time: u64,
    /// The identity bound.
    pub identity: String,
    /// Serial as written in the entry (lowercase hex).
    pub serial_hex: String,
    /// Serial bytes, leading zeros dropped.
    pub serial: Vec<u8>,
    /// The Ed25519 key bound.
    pub public_key: [u8; 32],
    /// Validity start, Unix seconds.
    pub not_before: u64,
    /// Validity end, Unix seconds.
    pub not_after: u64,
    /// The credential's DER.
    pub certificate: Vec<u8>,
    /// Rotate: serial replaced (normalized), with its hex.
    pub replaces: Option<(Vec<u8>, String)>,
}

impl Binding {
    /// Verifies the certificate under the CA and checks that it says exactly what the entry
    /// says: serial, key, validity and identity. Returns the certificate's facts.
    pub fn check_certificate(&self, ca: &Ca) -> Result<CertFacts, EntryError> {
        let facts = ca.verify_certificate(&self.certificate)?;
        self.check_facts(&facts)?;
        Ok(facts)
    }

    /// Checks that a certificate's facts match this entry.
    pub fn check_facts(&self, facts: &CertFacts) -> Result<(), EntryError> {
        let field = if facts.serial != self.serial {
            "serial"
        } else if facts.public_key != self.public_key {
            "public_key"
        } else if facts.not_before != self.not_before {
            "not_before"
        } else if facts.not_after != self.not_after {
            "not_after"
        } else if facts.identity != self.identity {
            "identity"
        } else {
            return Ok(());
        };
        Err(EntryError::Mismatch { field })
    }
}

/// A revoke entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revoke {
    /// Entry time, Unix seconds.
    pub time: u64,
    /// The identity whose credentials are revoked.
    pub identity: String,
    /// Revoked serials, normalized, with their hex.
    pub serials: Vec<(Vec<u8>, String)>,
    /// `credential` or `identity`.
    pub scope: String,
    /// RFC 5280 reason name.
    pub reason: String,
    /// Label of the admin token used.
    pub admin: String,
}

/// An enable entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enable {
    /// Entry time, Unix seconds.
    pub time: u64,
    /// The identity re-enabled.
    pub identity: String,
    /// Label of the admin token used.
    pub admin: String,
}

/// Whether `identity` follows the syntax every logged identity follows
/// ([`kt_protocol::identity::check_syntax`], docs/api.md "Identities"): no honest AS ever
/// logged a name that breaks it.
pub fn is_valid_identity(identity: &str) -> bool {
    kt_protocol::identity::check_syntax(identity).is_ok()
}

/// A serial as normalised bytes (leading zeros dropped, as certificates compare) and its hex.
fn serial_pair(serial: &Serial) -> (Vec<u8>, String) {
    (
        credential::normalize_serial(&serial.0).to_vec(),
        serial.to_hex(),
    )
}

/// Parses one entry with the protocol's parser (see the module doc).
pub fn parse_entry(bytes: &[u8]) -> Result<Entry, EntryError> {
    Ok(view_of(&LogEntry::parse(bytes)?))
}

/// The verifier's view of a parsed entry.
pub fn view_of(entry: &LogEntry) -> Entry {
    match &entry.body {
        EntryBody::Issue {
            time,
            identity,
            binding,
            ..
        } => Entry::Issue(verifier_binding(*time, identity, binding, None)),
        EntryBody::Rotate {
            time,
            identity,
            binding,
            replaces,
        } => Entry::Rotate(verifier_binding(
            *time,
            identity,
            binding,
            Some(serial_pair(replaces)),
        )),
        EntryBody::Revoke {
            time,
            identity,
            serials,
            scope,
            reason,
            admin,
        } => Entry::Revoke(Revoke {
            time: *time,
            identity: identity.clone(),
            serials: serials.iter().map(serial_pair).collect(),
            scope: scope.name().to_owned(),
            reason: reason.name().to_owned(),
            admin: admin.clone(),
        }),
        EntryBody::Enable {
            time,
            identity,
            admin,
        } => Entry::Enable(Enable {
            time: *time,
            identity: identity.clone(),
            admin: admin.clone(),
        }),
    }
}

fn verifier_binding(
    time: u64,
    identity: &str,
    binding: &kt_protocol::entry::Binding,
    replaces: Option<(Vec<u8>, String)>,
) -> Binding {
    let (serial, serial_hex) = serial_pair(&binding.serial);
    Binding {
        time,
        identity: identity.to_owned(),
        serial_hex,
        serial,
        public_key: binding.public_key,
        not_before: binding.not_before,
        not_after: binding.not_after,
        certificate: binding.certificate.clone(),
        replaces,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    /// A serial with leading zero bytes, which the verifier's view drops.
    const S: &str = "00000000000000000000000000000a0b";
    const T: &str = "0000000000000000000000000000000b";

    fn issue() -> String {
        format!(
            r#"{{"v":1,"type":"issue","time":5,"identity":"alice@example.com","serial":"{S}","public_key":"{KEY}","not_before":1,"not_after":2,"certificate":"MAA=","enrollment":"{}"}}"#,
            "ab".repeat(32)
        )
    }

    #[test]
    fn parses_each_type() {
        assert!(matches!(
            parse_entry(issue().as_bytes()),
            Ok(Entry::Issue(_))
        ));
        let rotate = format!(
            r#"{{"v":1,"type":"rotate","time":5,"identity":"a@b.co","serial":"{S}","public_key":"{KEY}","not_before":1,"not_after":2,"certificate":"MAA=","replaces":"{T}"}}"#
        );
        match parse_entry(rotate.as_bytes()) {
            Ok(Entry::Rotate(binding)) => {
                assert_eq!(binding.serial, [0x0a, 0x0b]);
                assert_eq!(binding.serial_hex, S);
                assert_eq!(binding.replaces, Some((vec![0x0b], T.to_owned())));
            }
            other => panic!("{other:?}"),
        }
        let revoke = r#"{"v":1,"type":"revoke","time":5,"identity":"a@b.co","serials":[],"scope":"identity","reason":"keyCompromise","admin":"ops"}"#;
        assert!(matches!(
            parse_entry(revoke.as_bytes()),
            Ok(Entry::Revoke(_))
        ));
        let enable = r#"{"v":1,"type":"enable","time":5,"identity":"a@b.co","admin":"ops"}"#;
        assert!(matches!(
            parse_entry(enable.as_bytes()),
            Ok(Entry::Enable(_))
        ));
    }

    #[test]
    fn rejects_schema_violations() {
        let good = issue();
        for bad in [
            good.replace(r#""v":1"#, r#""v":2"#),
            good.replace("alice@example.com", "Alice@example.com"),
            good.replace(S, &S.to_uppercase()),
            good.replace(S, "0a0b"),
            good.replace(r#","enrollment""#, r#","replaces":"0a","enrollment""#),
            good.replace(r#""time":5"#, r#""time":5,"extra":1"#),
            good.replace(r#""time":5"#, r#""time":5,"time":6"#),
            good.replace(r#""time":5"#, r#""time":-5"#),
            good.replace(KEY, "AAAA"),
            good.replace(r#""type":"issue""#, r#""type":"mint""#),
            good[..good.len() - 1].to_string(),
        ] {
            assert!(parse_entry(bad.as_bytes()).is_err(), "{bad}");
        }
        let revoke = r#"{"v":1,"type":"revoke","time":5,"identity":"a@b.co","serials":[],"scope":"credential","reason":"keyCompromise","admin":"ops"}"#;
        assert!(parse_entry(revoke.as_bytes()).is_err());
        // Another byte form of a valid entry is refused too.
        assert!(matches!(
            parse_entry(format!("{good} ").as_bytes()),
            Err(EntryError::Format(
                kt_protocol::entry::EntryError::NotCanonical
            ))
        ));
    }

    #[test]
    fn identity_rules() {
        for good in ["a@b.c", "x.y_z+w-1@mail.example.com"] {
            assert!(is_valid_identity(good), "{good}");
        }
        for bad in [
            "", "a@b", "@b.c", "a@-b.c", "a@b-.c", "A@b.c", "a@b..c", "a b@c.d",
        ] {
            assert!(!is_valid_identity(bad), "{bad}");
        }
        assert!(!is_valid_identity(&format!("{}@b.c", "a".repeat(65))));
    }
}
