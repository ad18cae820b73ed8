//! Log entries (docs/api.md, "Log entries"): strict parsing of the exact bytes the log serves.
//!
//! Guarantees of [`parse_entry`]: it returns an [`Entry`] only if the bytes are one JSON object
//! with exactly the fields its `type` requires (no unknown or duplicate fields), `v` is 1, the
//! identity follows the identity rules, serials are lowercase hex, keys are 32 bytes of
//! standard base64, the certificate is non-empty base64 DER, and the enumerations (`scope`,
//! `reason`) hold known values. It does not check the certificate against the CA or against
//! the other fields: [`Binding::check_certificate`] does that.

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Deserialize;
use thiserror::Error;

use crate::credential::{self, CertFacts, CredentialError};
use crate::trust::Ca;

/// Why an entry was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub(crate) enum EntryError {
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

/// Every field any entry type may have, as they appear in the JSON. Borrowed when possible:
/// the audit parses every entry of the log.
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
    #[serde(borrow, default)]
    scope: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reason: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    admin: Option<Cow<'a, str>>,
}

/// A parsed, schema-checked log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
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
    pub(crate) fn identity(&self) -> &str {
        match self {
            Entry::Issue(b) | Entry::Rotate(b) => &b.identity,
            Entry::Revoke(r) => &r.identity,
            Entry::Enable(e) => &e.identity,
        }
    }
    /// The entry's `type` word.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Entry::Issue(_) => "issue",
            Entry::Rotate(_) => "rotate",
            Entry::Revoke(_) => "revoke",
            Entry::Enable(_) => "enable",
        }
    }
    /// The entry's `time`.
    pub(crate) fn time(&self) -> u64 {
        match self {
            Entry::Issue(b) | Entry::Rotate(b) => b.time,
            Entry::Revoke(r) => r.time,
            Entry::Enable(e) => e.time,
        }
    }
    /// The binding of an issue or rotate entry.
    pub(crate) fn binding(&self) -> Option<&Binding> {
        match self {
            Entry::Issue(b) | Entry::Rotate(b) => Some(b),
            _ => None,
        }
    }
}

/// An identity→key binding (issue or rotate entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Binding {
    /// Entry time, Unix seconds.
    pub(crate) time: u64,
    /// The identity bound.
    pub(crate) identity: String,
    /// Serial as written in the entry (lowercase hex).
    pub(crate) serial_hex: String,
    /// Serial bytes, leading zeros dropped.
    pub(crate) serial: Vec<u8>,
    /// The Ed25519 key bound.
    pub(crate) public_key: [u8; 32],
    /// Validity start, Unix seconds.
    pub(crate) not_before: u64,
    /// Validity end, Unix seconds.
    pub(crate) not_after: u64,
    /// The credential's DER.
    pub(crate) certificate: Vec<u8>,
    /// Rotate: serial replaced (normalized), with its hex.
    pub(crate) replaces: Option<(Vec<u8>, String)>,
}

impl Binding {
    /// Verifies the certificate under the CA and checks that it says exactly what the entry
    /// says: serial, key, validity and identity. Returns the certificate's facts.
    pub(crate) fn check_certificate(&self, ca: &Ca) -> Result<CertFacts, EntryError> {
        let facts = ca.verify_certificate(&self.certificate)?;
        self.check_facts(&facts)?;
        Ok(facts)
    }

    /// Checks that a certificate's facts match this entry.
    pub(crate) fn check_facts(&self, facts: &CertFacts) -> Result<(), EntryError> {
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
pub(crate) struct Revoke {
    /// Entry time, Unix seconds.
    pub(crate) time: u64,
    /// The identity whose credentials are revoked.
    pub(crate) identity: String,
    /// Revoked serials, normalized, with their hex.
    pub(crate) serials: Vec<(Vec<u8>, String)>,
    /// `credential` or `identity`.
    pub(crate) scope: String,
    /// RFC 5280 reason name.
    pub(crate) reason: String,
    /// Label of the admin token used.
    pub(crate) admin: String,
}

/// An enable entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Enable {
    /// Entry time, Unix seconds.
    pub(crate) time: u64,
    /// The identity re-enabled.
    pub(crate) identity: String,
    /// Label of the admin token used.
    pub(crate) admin: String,
}

/// The RFC 5280 reasons an entry may name.
const REASONS: [&str; 6] = [
    "unspecified",
    "keyCompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "privilegeWithdrawn",
];

/// Whether `identity` follows the identity syntax every logged identity follows
/// ([`kt_protocol::identity::check_syntax`], docs/api.md "Identities"): the one rule the
/// server enrolls by, so an entry that breaks it cannot come from an honest AS.
pub(crate) fn is_valid_identity(identity: &str) -> bool {
    kt_protocol::identity::check_syntax(identity).is_ok()
}

fn need<T>(value: Option<T>, field: &'static str) -> Result<T, EntryError> {
    value.ok_or(EntryError::Field {
        field,
        reason: "missing",
    })
}

fn absent<T>(value: &Option<T>, field: &'static str) -> Result<(), EntryError> {
    match value {
        Some(_) => Err(EntryError::Field {
            field,
            reason: "not allowed for this entry type",
        }),
        None => Ok(()),
    }
}

fn serial(text: &str, field: &'static str) -> Result<(Vec<u8>, String), EntryError> {
    let bytes = credential::parse_serial_hex(text).ok_or(EntryError::Field {
        field,
        reason: "not a lowercase hex serial",
    })?;
    Ok((bytes, text.to_owned()))
}

/// Parses and schema-checks one entry (see the module guarantees).
pub(crate) fn parse_entry(bytes: &[u8]) -> Result<Entry, EntryError> {
    let raw: RawEntry<'_> =
        serde_json::from_slice(bytes).map_err(|e| EntryError::Json(e.to_string()))?;
    if raw.v != 1 {
        return Err(EntryError::Field {
            field: "v",
            reason: "must be 1",
        });
    }
    if !is_valid_identity(&raw.identity) {
        return Err(EntryError::Field {
            field: "identity",
            reason: "not a valid identity",
        });
    }
    let identity = raw.identity.into_owned();
    match &*raw.kind {
        "issue" | "rotate" => {
            absent(&raw.serials, "serials")?;
            absent(&raw.scope, "scope")?;
            absent(&raw.reason, "reason")?;
            absent(&raw.admin, "admin")?;
            let replaces = if raw.kind == "issue" {
                absent(&raw.replaces, "replaces")?;
                let enrollment = need(raw.enrollment, "enrollment")?;
                if enrollment.len() != 64 || credential::decode_lower_hex(&enrollment).is_none() {
                    return Err(EntryError::Field {
                        field: "enrollment",
                        reason: "not 64 lowercase hex digits",
                    });
                }
                None
            } else {
                absent(&raw.enrollment, "enrollment")?;
                Some(serial(&need(raw.replaces, "replaces")?, "replaces")?)
            };
            let (serial_bytes, serial_hex) = serial(&need(raw.serial, "serial")?, "serial")?;
            let public_key = B64
                .decode(&*need(raw.public_key, "public_key")?)
                .ok()
                .and_then(|k| <[u8; 32]>::try_from(k).ok())
                .ok_or(EntryError::Field {
                    field: "public_key",
                    reason: "not base64 of 32 bytes",
                })?;
            let certificate = B64
                .decode(&*need(raw.certificate, "certificate")?)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or(EntryError::Field {
                    field: "certificate",
                    reason: "not base64 DER",
                })?;
            let not_before = need(raw.not_before, "not_before")?;
            let not_after = need(raw.not_after, "not_after")?;
            if not_after < not_before {
                return Err(EntryError::Field {
                    field: "not_after",
                    reason: "before not_before",
                });
            }
            let binding = Binding {
                time: raw.time,
                identity,
                serial_hex,
                serial: serial_bytes,
                public_key,
                not_before,
                not_after,
                certificate,
                replaces,
            };
            Ok(if raw.kind == "issue" {
                Entry::Issue(binding)
            } else {
                Entry::Rotate(binding)
            })
        }
        "revoke" => {
            for (present, field) in [
                (raw.serial.is_some(), "serial"),
                (raw.public_key.is_some(), "public_key"),
                (raw.not_before.is_some(), "not_before"),
                (raw.not_after.is_some(), "not_after"),
                (raw.certificate.is_some(), "certificate"),
                (raw.enrollment.is_some(), "enrollment"),
                (raw.replaces.is_some(), "replaces"),
            ] {
                if present {
                    absent(&Some(()), field)?;
                }
            }
            let serials = need(raw.serials, "serials")?
                .iter()
                .map(|s| serial(s, "serials"))
                .collect::<Result<Vec<_>, _>>()?;
            let scope = need(raw.scope, "scope")?.into_owned();
            match scope.as_str() {
                "identity" => {}
                "credential" if serials.len() == 1 => {}
                "credential" => {
                    return Err(EntryError::Field {
                        field: "serials",
                        reason: "scope credential names exactly one serial",
                    })
                }
                _ => {
                    return Err(EntryError::Field {
                        field: "scope",
                        reason: "not credential or identity",
                    })
                }
            }
            let reason = need(raw.reason, "reason")?.into_owned();
            if !REASONS.contains(&reason.as_str()) {
                return Err(EntryError::Field {
                    field: "reason",
                    reason: "not an RFC 5280 reason this log uses",
                });
            }
            let admin = need(raw.admin, "admin")?.into_owned();
            Ok(Entry::Revoke(Revoke {
                time: raw.time,
                identity,
                serials,
                scope,
                reason,
                admin,
            }))
        }
        "enable" => {
            for (present, field) in [
                (raw.serial.is_some(), "serial"),
                (raw.public_key.is_some(), "public_key"),
                (raw.not_before.is_some(), "not_before"),
                (raw.not_after.is_some(), "not_after"),
                (raw.certificate.is_some(), "certificate"),
                (raw.enrollment.is_some(), "enrollment"),
                (raw.replaces.is_some(), "replaces"),
                (raw.serials.is_some(), "serials"),
                (raw.scope.is_some(), "scope"),
                (raw.reason.is_some(), "reason"),
            ] {
                if present {
                    absent(&Some(()), field)?;
                }
            }
            Ok(Entry::Enable(Enable {
                time: raw.time,
                identity,
                admin: need(raw.admin, "admin")?.into_owned(),
            }))
        }
        _ => Err(EntryError::Field {
            field: "type",
            reason: "not issue, rotate, revoke or enable",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    fn issue() -> String {
        format!(
            r#"{{"v":1,"type":"issue","time":5,"identity":"alice@example.com","serial":"0a0b","public_key":"{KEY}","not_before":1,"not_after":2,"certificate":"MAA=","enrollment":"{}"}}"#,
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
            r#"{{"v":1,"type":"rotate","time":5,"identity":"a@b.c","serial":"0a","public_key":"{KEY}","not_before":1,"not_after":2,"certificate":"MAA=","replaces":"0b"}}"#
        );
        assert!(matches!(
            parse_entry(rotate.as_bytes()),
            Ok(Entry::Rotate(_))
        ));
        let revoke = r#"{"v":1,"type":"revoke","time":5,"identity":"a@b.c","serials":[],"scope":"identity","reason":"keyCompromise","admin":"ops"}"#;
        assert!(matches!(
            parse_entry(revoke.as_bytes()),
            Ok(Entry::Revoke(_))
        ));
        let enable = r#"{"v":1,"type":"enable","time":5,"identity":"a@b.c","admin":"ops"}"#;
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
            good.replace(r#""serial":"0a0b""#, r#""serial":"0A0B""#),
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
        let revoke = r#"{"v":1,"type":"revoke","time":5,"identity":"a@b.c","serials":[],"scope":"credential","reason":"keyCompromise","admin":"ops"}"#;
        assert!(parse_entry(revoke.as_bytes()).is_err());
    }

    #[test]
    fn identity_rules() {
        for good in ["a@b.c", "x.y_z+w-1@mail.example.com"] {
            assert!(is_valid_identity(good), "{good}");
        }
        for bad in [
            "", "a@b", "@b.c", "a@-b.c", "a@b-.c", "A@b.c", "a@b..c", "a b@c.d", ".a@b.c",
            "a.@b.c", "a..b@c.d", "a@1.2",
        ] {
            assert!(!is_valid_identity(bad), "{bad}");
        }
        assert!(!is_valid_identity(&format!("{}@b.c", "a".repeat(65))));
    }
}
