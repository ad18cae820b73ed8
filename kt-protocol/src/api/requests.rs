//! The API's requests (docs/api.md): what clients and admins send, as the server reads them.
//!
//! Reading is strict, since every request is untrusted: unknown fields are refused, and an
//! optional field given as `null` is refused like any other wrong type (absent is the only
//! way to leave it out). Nothing in them is checked beyond its JSON type here: identities,
//! base64, keys and proofs are the server's to check (`as-server`'s operations).

use serde::{Deserialize, Serialize};

use crate::entry::RevocationReason;

/// For optional request fields: absent is `None`, but an explicit `null` is refused like any
/// other wrong type (use with `#[serde(default, deserialize_with = "present")]`).
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// `POST /v1/credentials`: an enrolled identity's token and the proof that its client holds
/// the key — either `public_key` and `signature` (over `pop::issuance_message`), or `csr`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    /// The identity, as enrolled.
    pub identity: String,
    /// Its enrollment token.
    pub token: String,
    /// The Ed25519 public key, standard base64 (with `signature`).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub public_key: Option<String>,
    /// The key's signature of the issuance text, standard base64 (with `public_key`).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub signature: Option<String>,
    /// A PKCS#10 CSR, PEM, signed by the key and naming the identity (alone).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub csr: Option<String>,
}

/// `POST /v1/credentials/rotate`: a current credential, the new key, and both keys'
/// signatures of the rotation text (`pop::rotation_message`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// The identity holding the credential.
    pub identity: String,
    /// The current credential's serial, lowercase hex.
    pub serial: String,
    /// The new Ed25519 public key, standard base64.
    pub public_key: String,
    /// The current key's signature of the rotation text, standard base64.
    pub signature_current: String,
    /// The new key's signature of the rotation text, standard base64.
    pub signature_new: String,
}

/// `POST /v1/admin/enrollments`: identities to enroll, and their tokens' lifetime.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentRequest {
    /// The identities, each getting its own token.
    pub identities: Vec<String>,
    /// The tokens' lifetime in seconds: a JSON number, `86400` or, as JSON Schema's `integer`
    /// allows, `86400.0`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl_seconds: Option<serde_json::Number>,
}

/// The body of both revocations (`…/revoke`); an empty body is the default (no reason).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationRequest {
    /// The RFC 5280 reason, `unspecified` when absent.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub reason: Option<RevocationReason>,
}

/// The body of `…/enable`: nothing (an empty body or `{}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnableRequest {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_fields_may_be_absent_but_not_null() {
        let absent: IssueRequest =
            serde_json::from_str(r#"{"identity":"a@example.com","token":"t","csr":"x"}"#).unwrap();
        assert_eq!(absent.public_key, None);
        assert_eq!(absent.csr.as_deref(), Some("x"));
        assert!(serde_json::from_str::<IssueRequest>(
            r#"{"identity":"a@example.com","token":"t","csr":null}"#
        )
        .is_err());
        assert!(serde_json::from_str::<RevocationRequest>(r#"{"reason":null}"#).is_err());
        assert!(serde_json::from_str::<EnrollmentRequest>(
            r#"{"identities":[],"ttl_seconds":null}"#
        )
        .is_err());
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<EnableRequest>(r#"{"x":1}"#).is_err());
        assert!(serde_json::from_str::<RotateRequest>(
            r#"{"identity":"a","serial":"b","public_key":"c","signature_current":"d","signature_new":"e","extra":0}"#
        )
        .is_err());
    }

    #[test]
    fn written_requests_read_back_the_same() {
        let request = IssueRequest {
            identity: "a@example.com".into(),
            token: "t".into(),
            public_key: Some("k".into()),
            signature: Some("s".into()),
            csr: None,
        };
        let text = serde_json::to_string(&request).unwrap();
        assert!(!text.contains("csr"), "absent fields are left out: {text}");
        assert_eq!(
            serde_json::from_str::<IssueRequest>(&text).unwrap(),
            request
        );
        let revocation = RevocationRequest {
            reason: Some(RevocationReason::KeyCompromise),
        };
        let text = serde_json::to_string(&revocation).unwrap();
        assert_eq!(text, r#"{"reason":"keyCompromise"}"#);
    }
}
