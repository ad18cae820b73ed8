//! The identity rules: which names the AS binds keys to.
//!
//! An identity is either an email-shaped mailbox, `local@domain`, in lowercase ASCII, or an
//! absolute URI in canonical form (`im:`, `xmpp:`, `tel:`, `https:`… see "URIs" below); at most
//! 254 bytes (RFC 5321 §4.5.3.1.3) either way. The rules are strict so that one person has one
//! spelling: a monitor watching `alice@example.com` sees every binding made for that mailbox,
//! and no look-alike name (other case, Unicode, stray dots, another percent-encoding) can be
//! enrolled beside it. A name that is not in canonical form is refused, never rewritten: the
//! client learns the one spelling instead of the server guessing it. [`kind`] tells the two
//! apart (a mailbox never holds a `:`): certificates carry a mailbox as an `rfc822Name` and a
//! URI as a `uniformResourceIdentifier` subjectAltName.
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
//!
//! ## URIs
//!
//! [`check_syntax`] accepts a URI (RFC 3986) only in this canonical form:
//! - `scheme:rest`, the scheme 1–32 bytes of `a-z 0-9 + . -` starting with a letter (lowercase:
//!   RFC 3986 §6.2.2.1), `rest` not empty;
//! - only the characters RFC 3986 allows in a URI, without `#` (no fragment: it names a part of
//!   a resource, not a client): ASCII letters, digits, `- . _ ~ : / ? [ ] @ ! $ & ' ( ) * + , ; =`
//!   and `%`; so no whitespace, control or non-ASCII character (those are percent-encoded);
//! - percent-encoding normalised (§6.2.2.1–2): every `%` starts `%XX` with two uppercase hex
//!   digits, and never encodes an unreserved character (`A-Z a-z 0-9 - . _ ~`), which is
//!   written as itself;
//! - with an authority (`scheme://authority…`): no user information (`@`; an `https://a@b`
//!   names host `b`), a host of lowercase `a-z 0-9 - .` (§6.2.2.1), a port only if it is not
//!   the scheme's default (`:443` for `https`, §6.2.3) and then without a leading zero, and a
//!   path that is not empty (`https://example.com/`, not `https://example.com`, §6.2.3);
//! - no dot segment (`.` or `..`) in the path (§6.2.2.3);
//! - `tel:` is a global number only (RFC 3966 §5.1.4): `+` and 1–15 digits (E.164), without
//!   visual separators or parameters, so each number has one spelling.
//!
//! [`IdentityPolicy::check_new`] also requires the scheme to be one the operator lists
//! ([`DEFAULT_URI_SCHEMES`] unless configured).

use thiserror::Error;

/// Longest identity, as for an email address path (RFC 5321 §4.5.3.1.3).
pub const MAX_IDENTITY_LEN: usize = 254;
/// Longest local part (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_LEN: usize = 64;
/// Longest domain label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;
/// Longest URI scheme.
pub const MAX_SCHEME_LEN: usize = 32;
/// The URI schemes new enrollments may use unless the operator lists others: instant
/// messaging (RFC 3860; Wire's MLS clients), XMPP (RFC 5122), telephone numbers (RFC 3966),
/// and web identities.
pub const DEFAULT_URI_SCHEMES: [&str; 4] = ["im", "xmpp", "tel", "https"];

/// Which kind of name an identity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    /// `local@domain`: an `rfc822Name` in certificates.
    Mailbox,
    /// An absolute URI: a `uniformResourceIdentifier` in certificates.
    Uri,
}

/// The kind of `identity`, which should pass [`check_syntax`]: a URI exactly if it holds a
/// `:` (no mailbox of the rule does).
pub fn kind(identity: &str) -> IdentityKind {
    if identity.contains(':') {
        IdentityKind::Uri
    } else {
        IdentityKind::Mailbox
    }
}

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
    /// A URI not in the canonical form (see the module doc).
    #[error("the URI {0}")]
    Uri(&'static str),
    /// A URI whose scheme the policy does not list.
    #[error("the URI scheme is not one this server enrolls")]
    Scheme,
}

/// Checks the rule every logged identity follows (see the module doc).
pub fn check_syntax(identity: &str) -> Result<(), IdentityError> {
    if identity.is_empty() || identity.len() > MAX_IDENTITY_LEN {
        return Err(IdentityError::Length);
    }
    if kind(identity) == IdentityKind::Uri {
        return check_uri(identity);
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

/// Whether `scheme` is a URI scheme as URI identities spell it: 1–32 bytes of lowercase
/// `a-z 0-9 + . -`, starting with a letter.
pub fn is_scheme(scheme: &str) -> bool {
    scheme.len() <= MAX_SCHEME_LEN
        && scheme
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase())
        && scheme.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'.' | b'-')
        })
}

/// `identity` as one path segment of a request (`/v1/identities/{segment}`): every byte but
/// the unreserved characters and `@` percent-encoded, so that a URI identity's `/`, `%`, `?`
/// and `:` stay inside the segment; the server decodes it exactly once.
pub fn path_segment(identity: &str) -> String {
    let mut out = String::with_capacity(identity.len());
    for b in identity.bytes() {
        if is_unreserved(b) || b == b'@' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// The canonical-form rules of a URI identity (see "URIs" in the module doc).
fn check_uri(uri: &str) -> Result<(), IdentityError> {
    let bytes = uri.as_bytes();
    if !bytes.iter().all(|&b| {
        is_unreserved(b)
            || matches!(
                b,
                b':' | b'/'
                    | b'?'
                    | b'['
                    | b']'
                    | b'@'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b'%'
            )
    }) {
        return Err(IdentityError::Uri(
            "holds only the characters of RFC 3986, without # (no whitespace, control, \
             non-ASCII or fragment)",
        ));
    }
    for (i, _) in uri.match_indices('%') {
        let hex = bytes.get(i + 1..i + 3).ok_or(IdentityError::Uri(
            "has %XX escapes of two uppercase hex digits",
        ))?;
        if !hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F')) {
            return Err(IdentityError::Uri(
                "has %XX escapes of two uppercase hex digits",
            ));
        }
        let digit = |b: u8| if b <= b'9' { b - b'0' } else { b - b'A' + 10 };
        if is_unreserved(digit(hex[0]) * 16 + digit(hex[1])) {
            return Err(IdentityError::Uri(
                "writes unreserved characters as themselves, not %XX",
            ));
        }
    }
    let (scheme, rest) = uri
        .split_once(':')
        .ok_or(IdentityError::Uri("is scheme:rest"))?;
    if !is_scheme(scheme) {
        return Err(IdentityError::Uri(
            "scheme is 1 to 32 bytes of a-z 0-9 + . - starting with a letter",
        ));
    }
    if rest.is_empty() {
        return Err(IdentityError::Uri("has something after the scheme"));
    }
    if scheme == "tel" {
        let digits = rest
            .strip_prefix('+')
            .ok_or(IdentityError::Uri("tel: is a global number, + and digits"))?;
        if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdentityError::Uri(
                "tel: is + and 1 to 15 digits, without separators or parameters",
            ));
        }
        return Ok(());
    }
    let path = match rest.strip_prefix("//") {
        Some(hierarchical) => {
            let end = hierarchical.find(['/', '?']).unwrap_or(hierarchical.len());
            check_authority(scheme, &hierarchical[..end])?;
            let path = &hierarchical[end..];
            if !path.starts_with('/') {
                return Err(IdentityError::Uri(
                    "with an authority has a path, at least / (https://example.com/)",
                ));
            }
            path
        }
        None => rest,
    };
    let path = path.split('?').next().unwrap_or("");
    if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(IdentityError::Uri("has no . or .. path segment"));
    }
    Ok(())
}

/// A URI's authority: lowercase host, no user information, no default or zero-led port.
fn check_authority(scheme: &str, authority: &str) -> Result<(), IdentityError> {
    if authority.contains('@') {
        return Err(IdentityError::Uri(
            "has no user information (user@) before its host",
        ));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'));
    if !host_ok {
        return Err(IdentityError::Uri(
            "has a host of lowercase a-z 0-9 - and dots",
        ));
    }
    if let Some(port) = port {
        let default = match scheme {
            "https" => Some("443"),
            "http" => Some("80"),
            _ => None,
        };
        if port.is_empty()
            || port.starts_with('0')
            || port.len() > 5
            || !port.bytes().all(|b| b.is_ascii_digit())
            || Some(port) == default
        {
            return Err(IdentityError::Uri(
                "has no port, or a port that is not the scheme's default, without leading zero",
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityPolicy {
    /// Enroll domains with punycode (`xn--`) labels. Off by default: shown as Unicode they
    /// can look like another domain.
    pub allow_punycode: bool,
    /// Enroll `+` sub-addresses (`alice+work@…`). On by default: they are distinct mailboxes.
    pub allow_subaddress: bool,
    /// The URI schemes of URI identities it enrolls ([`DEFAULT_URI_SCHEMES`] by default; empty:
    /// mailboxes only).
    pub uri_schemes: Vec<String>,
}

impl Default for IdentityPolicy {
    fn default() -> Self {
        IdentityPolicy {
            allow_punycode: false,
            allow_subaddress: true,
            uri_schemes: DEFAULT_URI_SCHEMES.map(String::from).to_vec(),
        }
    }
}

impl IdentityPolicy {
    /// Checks a name for a new enrollment: the syntax, the mailbox rules, then this policy.
    pub fn check_new(&self, identity: &str) -> Result<(), IdentityError> {
        check_syntax(identity)?;
        if kind(identity) == IdentityKind::Uri {
            let scheme = identity.split(':').next().unwrap_or("");
            if !self.uri_schemes.iter().any(|listed| listed == scheme) {
                return Err(IdentityError::Scheme);
            }
            return Ok(());
        }
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
    fn canonical_uris_are_identities() {
        for ok in [
            "im:alice@example.com",
            "im:wireapp=ZjI0ZDQ1MzI/a1b2@wire.example.com",
            "xmpp:juliet@example.com",
            "tel:+15551234567",
            "https://example.com/alice",
            "https://example.com/",
            "https://id.example.com:8443/users/alice?v=1",
            "https://example.com/caf%C3%A9",
            "im:a%20b@example.com",
        ] {
            assert_eq!(check_syntax(ok), Ok(()), "{ok}");
            assert_eq!(kind(ok), IdentityKind::Uri, "{ok}");
            assert_eq!(IdentityPolicy::default().check_new(ok), Ok(()), "{ok}");
        }
        assert_eq!(kind("alice@example.com"), IdentityKind::Mailbox);
    }

    #[test]
    fn uris_not_in_canonical_form_are_refused_never_rewritten() {
        let long = format!("https://example.com/{}", "a".repeat(240));
        for bad in [
            "IM:alice@example.com",     // uppercase scheme
            "1im:alice",                // scheme starts with a digit
            "im:",                      // nothing after the scheme
            "im:alice@example.com#x",   // fragment
            "im:alice smith",           // whitespace
            "im:al\u{ef}ce",            // non-ASCII
            "im:alice\n",               // control
            "im:a%2",                   // cut escape
            "im:a%2f",                  // lowercase hex
            "im:a%41",                  // unreserved A escaped
            "im:a%7E",                  // unreserved ~ escaped
            "https://Example.com/",     // uppercase host
            "https://example.com",      // empty path
            "https://example.com:443/", // default port
            "https://example.com:0443/",
            "https://example.com:/",
            "https://bob@example.com/", // user information
            "https:///path",            // no host
            "https://example.com/a/../b",
            "https://example.com/./b",
            "tel:5551234",            // local number
            "tel:+1-555-123-4567",    // visual separators
            "tel:+15551234567;ext=1", // parameter
            "tel:+1234567890123456",  // more than 15 digits
            "https://example.com/<x>",
            long.as_str(),
        ] {
            assert!(check_syntax(bad).is_err(), "{bad:?}");
            assert!(IdentityPolicy::default().check_new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn path_segments_keep_an_identity_in_one_segment() {
        assert_eq!(path_segment("alice@example.com"), "alice@example.com");
        assert_eq!(path_segment("a+b@example.com"), "a%2Bb@example.com");
        assert_eq!(
            path_segment("https://example.com/a?b"),
            "https%3A%2F%2Fexample.com%2Fa%3Fb"
        );
        assert_eq!(path_segment("im:a%20b"), "im%3Aa%2520b");
    }

    #[test]
    fn uri_schemes_follow_the_policy() {
        assert_eq!(check_syntax("sip:alice@example.com"), Ok(()));
        assert_eq!(
            IdentityPolicy::default().check_new("sip:alice@example.com"),
            Err(IdentityError::Scheme)
        );
        let sip = IdentityPolicy {
            uri_schemes: vec!["sip".into()],
            ..IdentityPolicy::default()
        };
        assert_eq!(sip.check_new("sip:alice@example.com"), Ok(()));
        assert_eq!(
            sip.check_new("im:alice@example.com"),
            Err(IdentityError::Scheme)
        );
        // Mailbox policies do not apply to URIs, nor URI policies to mailboxes.
        let strict = IdentityPolicy {
            allow_subaddress: false,
            uri_schemes: Vec::new(),
            ..IdentityPolicy::default()
        };
        assert_eq!(strict.check_new("alice@example.com"), Ok(()));
        assert_eq!(
            strict.check_new("im:alice@example.com"),
            Err(IdentityError::Scheme)
        );
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
