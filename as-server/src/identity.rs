//! The identity rules: which names the AS binds keys to.
//!
//! An identity is email-shaped, `local@domain`, lowercase ASCII, at most 254 bytes. `local` is
//! 1–64 of `a-z 0-9 . _ + -`; `domain` is two or more dot-separated labels of `a-z 0-9 -`, each
//! 1–63 long and not starting or ending with `-`. Being this strict means one spelling per
//! identity (no case or Unicode confusables), so a monitor watching `alice@example.com` sees
//! every binding of it.

/// Longest identity, as for an email address path (RFC 5321 §4.5.3.1.3).
pub const MAX_IDENTITY_LEN: usize = 254;

/// Whether `identity` follows the rules in the module doc.
pub fn is_valid_identity(identity: &str) -> bool {
    if identity.is_empty() || identity.len() > MAX_IDENTITY_LEN {
        return false;
    }
    let Some((local, domain)) = identity.split_once('@') else {
        return false;
    };
    let local_ok = (1..=64).contains(&local.len())
        && local
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'+' | b'-'));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
        });
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_addresses() {
        for ok in ["alice@example.com", "a.b+c_d-e@sub.example.org", "x@a1.b2"] {
            assert!(is_valid_identity(ok), "{ok}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_total = format!("a@{}.com", "b.".repeat(130));
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
            "al ice@example.com",
            "alïce@example.com",
            "alice@example.com\n",
            long_local.as_str(),
            long_total.as_str(),
        ] {
            assert!(!is_valid_identity(bad), "{bad:?}");
        }
    }
}
