//! The identity rules: which names the AS binds keys to.
//!
//! An identity is an email-shaped mailbox, `local@domain`, in lowercase ASCII, at most 254
//! bytes (RFC 5321 §4.5.3.1.3). The rules are strict so that one person has one spelling: a
//! monitor watching `alice@example.com` sees every binding made for that mailbox, and no
//! look-alike name (other case, Unicode, stray dots) can be enrolled beside it.
//!
//! Two rules, one inside the other:
//! - [`check_syntax`], **the rule every logged identity follows**, which verifiers check on
//!   every entry and the server on every name it is asked about: `local` is 1–64 bytes of
//!   `a-z 0-9 . _ + -`; `domain` is two or more dot-separated labels of `a-z 0-9 -`, each 1–63
//!   bytes, not starting or ending with `-`. It has not changed since the first entry of any
//!   log, so no log an honest AS wrote ever fails it.
//! - [`IdentityPolicy::check_new`], what a **new enrollment** must also follow (since the
//!   hardening review; names logged before stay valid): `local` is a dot-atom (RFC 5322 §3.2.3:
//!   no leading, trailing or doubled dot); the top-level label is not all digits (RFC 3696 §2,
//!   so `alice@1.2` is no mailbox); a label with `--` in its third and fourth place is reserved
//!   (RFC 5890 §2.3.1) unless it is a punycode A-label, `xn--…`; and the operator's policy:
//!   punycode labels (shown to people as Unicode, where `xn--80ak6aa92e.com` looks like
//!   `apple.com`) are refused unless allowed, `+` sub-addresses (`alice+work@…`) allowed unless
//!   refused. A name once enrolled stays valid when the policy changes later.

use thiserror::Error;

/// Longest identity, as for an email address path (RFC 5321 §4.5.3.1.3).
pub const MAX_IDENTITY_LEN: usize = 254;
/// Longest local part (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_LEN: usize = 64;
/// Longest domain label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// Why a name is not an identity (or not one the policy enrolls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Empty or longer than [`MAX_IDENTITY_LEN`].
    #[error("an identity is 1 to {MAX_IDENTITY_LEN} bytes")]
    Length,
    /// No `@`.
    #[error("an identity is local@domain")]
    NoAt,
    /// The local part breaks the dot-atom rule.
    #[error("the local part {0}")]
    Local(&'static str),
    /// The domain breaks the host-name rule.
    #[error("the domain {0}")]
    Domain(&'static str),
    /// A punycode (`xn--`) label, and the policy refuses them.
    #[error("the domain has a punycode (xn--) label, which this server does not enroll")]
    Punycode,
    /// A `+` sub-address, and the policy refuses them.
    #[error("the local part has a + sub-address, which this server does not enroll")]
    Subaddress,
}

/// Checks the rule every logged identity follows (see the module doc).
pub fn check_syntax(identity: &str) -> Result<(), IdentityError> {
    if identity.is_empty() || identity.len() > MAX_IDENTITY_LEN {
        return Err(IdentityError::Length);
    }
    let (local, domain) = identity.split_once('@').ok_or(IdentityError::NoAt)?;
    if local.is_empty() || local.len() > MAX_LOCAL_LEN {
        return Err(IdentityError::Local("is 1 to 64 bytes"));
    }
    if !local
        .bytes()
        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'+' | b'-'))
    {
        return Err(IdentityError::Local("is made of a-z 0-9 . _ + -"));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(IdentityError::Domain("has two or more labels"));
    }
    for label in &labels {
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return Err(IdentityError::Domain("has labels of 1 to 63 bytes"));
        }
        if !label
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
        {
            return Err(IdentityError::Domain("is made of a-z 0-9 - and dots"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(IdentityError::Domain(
                "has no label that starts or ends with -",
            ));
        }
    }
    Ok(())
}

/// The rules a new enrollment follows beyond [`check_syntax`], before the operator's policy.
fn check_mailbox(local: &str, domain: &str) -> Result<(), IdentityError> {
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(IdentityError::Local(
            "has no leading, trailing or doubled dot",
        ));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels
        .iter()
        .any(|label| label.get(2..4) == Some("--") && !is_punycode(label))
    {
        return Err(IdentityError::Domain(
            "has no reserved label (-- in third and fourth place, but xn--)",
        ));
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(IdentityError::Domain(
            "has a top-level label that is not all digits",
        ));
    }
    Ok(())
}

fn is_punycode(label: &str) -> bool {
    label.starts_with("xn--")
}

/// What an operator allows in new enrollments, beyond [`check_syntax`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityPolicy {
    /// Enroll domains with punycode (`xn--`) labels. Off by default: shown as Unicode they
    /// can look like another domain.
    pub allow_punycode: bool,
    /// Enroll `+` sub-addresses (`alice+work@…`). On by default: they are distinct mailboxes.
    pub allow_subaddress: bool,
}

impl Default for IdentityPolicy {
    fn default() -> Self {
        IdentityPolicy {
            allow_punycode: false,
            allow_subaddress: true,
        }
    }
}

impl IdentityPolicy {
    /// Checks a name for a new enrollment: the syntax, the mailbox rules, then this policy.
    pub fn check_new(&self, identity: &str) -> Result<(), IdentityError> {
        check_syntax(identity)?;
        let (local, domain) = identity.split_once('@').ok_or(IdentityError::NoAt)?;
        check_mailbox(local, domain)?;
        if !self.allow_subaddress && local.contains('+') {
            return Err(IdentityError::Subaddress);
        }
        if !self.allow_punycode && domain.split('.').any(is_punycode) {
            return Err(IdentityError::Punycode);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_mailboxes() {
        for ok in [
            "alice@example.com",
            "a.b+c_d-e@sub.example.org",
            "x@a1.b2",
            "a@b.co",
            "a-b@x-y.example",
            "alice@123.example.com",
        ] {
            assert_eq!(check_syntax(ok), Ok(()), "{ok}");
            assert_eq!(IdentityPolicy::default().check_new(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_what_is_no_mailbox() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_total = format!("a@{}.com", "b.".repeat(130));
        let long_label = format!("a@{}.com", "b".repeat(64));
        for bad in [
            "",
            "alice",
            "Alice@example.com",
            "alice@example",
            "alice@@example.com",
            "@example.com",
            "alice@-example.com",
            "alice@example-.com",
            "alice@exa mple.com",
            "alice@example..com",
            "alice@.example.com",
            "alice@example.com.",
            "al ice@example.com",
            "alïce@example.com",
            "alice@example.com\n",
            long_local.as_str(),
            long_total.as_str(),
            long_label.as_str(),
        ] {
            assert!(check_syntax(bad).is_err(), "{bad:?}");
            assert!(IdentityPolicy::default().check_new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn new_enrollments_must_be_mailboxes_but_logged_names_stay_valid() {
        for name in [
            // Dot-atom local parts only.
            "..@example.com",
            ".alice@example.com",
            "alice.@example.com",
            "a..lice@example.com",
            ".@example.com",
            // A numeric top-level label is an address, not a domain.
            "alice@1.2",
            "alice@example.123",
            // Reserved labels (-- in third and fourth place) that are not punycode.
            "alice@ab--cd.com",
            "alice@example.zz--z",
        ] {
            assert!(
                IdentityPolicy::default().check_new(name).is_err(),
                "{name:?}"
            );
            // The rule of logged identities is the one every log was written under.
            assert_eq!(check_syntax(name), Ok(()), "{name:?}");
        }
    }

    #[test]
    fn punycode_is_refused_unless_allowed() {
        let homograph = "alice@xn--80ak6aa92e.com";
        assert_eq!(
            check_syntax(homograph),
            Ok(()),
            "valid syntax, once enrolled"
        );
        assert_eq!(
            IdentityPolicy::default().check_new(homograph),
            Err(IdentityError::Punycode)
        );
        assert_eq!(
            IdentityPolicy::default().check_new("alice@mail.xn--p1ai"),
            Err(IdentityError::Punycode),
            "in any label"
        );
        let allowing = IdentityPolicy {
            allow_punycode: true,
            ..IdentityPolicy::default()
        };
        assert_eq!(allowing.check_new(homograph), Ok(()));
    }

    #[test]
    fn subaddresses_follow_the_policy() {
        let sub = "alice+work@example.com";
        assert_eq!(IdentityPolicy::default().check_new(sub), Ok(()));
        let refusing = IdentityPolicy {
            allow_subaddress: false,
            ..IdentityPolicy::default()
        };
        assert_eq!(refusing.check_new(sub), Err(IdentityError::Subaddress));
        assert_eq!(refusing.check_new("alice@example.com"), Ok(()));
        assert_eq!(check_syntax(sub), Ok(()));
    }
}
