//! kt_protocol::identity: check_syntax (the rule of every logged name) and
//! IdentityPolicy::check_new (new enrollments: syntax, mailbox rules, operator policy; the
//! policy from the first byte). Properties: never panics; check_new accepts only what
//! check_syntax accepts; a name check_syntax accepts is 1..=254 bytes of lowercase ASCII with
//! exactly one '@'; and check_new agrees with an independent statement of the documented
//! mailbox rules (dot-atom local part, no reserved `??--` label but `xn--`, no all-digit
//! top-level label) and policy (xn-- labels, '+' sub-addresses), error by error. A URI
//! identity (one with ':') that check_syntax accepts is printable ASCII without '#', '%XX'
//! escapes are uppercase, its scheme is lowercase, and check_new accepts it exactly when the
//! policy lists its scheme.
#![no_main]

use kt_fuzz::split_mode;
use kt_protocol::identity::{
    check_syntax, kind, IdentityError, IdentityKind, IdentityPolicy, DEFAULT_URI_SCHEMES,
    MAX_IDENTITY_LEN,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = split_mode(data) else {
        return;
    };
    let Ok(identity) = std::str::from_utf8(rest) else {
        return;
    };
    let policy = IdentityPolicy {
        allow_punycode: mode & 1 != 0,
        allow_subaddress: mode & 2 != 0,
        uri_schemes: if mode & 4 != 0 {
            DEFAULT_URI_SCHEMES.map(String::from).to_vec()
        } else {
            vec!["sip".into()]
        },
    };
    let syntax = check_syntax(identity);
    let new = policy.check_new(identity);
    let Ok(()) = syntax else {
        assert_eq!(new, syntax, "check_new and check_syntax disagree on {identity:?}");
        return;
    };
    assert!(!identity.is_empty() && identity.len() <= MAX_IDENTITY_LEN);
    if kind(identity) == IdentityKind::Uri {
        assert!(identity.bytes().all(|b| b.is_ascii_graphic() && b != b'#'), "{identity:?}");
        let (scheme, _) = identity.split_once(':').expect("has :");
        assert!(scheme.bytes().all(|b| !b.is_ascii_uppercase()), "{identity:?}");
        for (i, _) in identity.match_indices('%') {
            let hex = &identity.as_bytes()[i + 1..i + 3];
            assert!(hex.iter().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b)));
        }
        let listed = policy.uri_schemes.iter().any(|s| s == scheme);
        assert_eq!(new.is_ok(), listed, "{identity:?}: {new:?}");
        if !listed {
            assert_eq!(new, Err(IdentityError::Scheme));
        }
        return;
    }
    assert!(identity.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()));
    assert_eq!(identity.matches('@').count(), 1, "{identity:?}");
    let (local, domain) = identity.split_once('@').expect("has @");
    let labels: Vec<&str> = domain.split('.').collect();
    let dot_atom = !local.starts_with('.') && !local.ends_with('.') && !local.contains("..");
    let reserved = labels
        .iter()
        .any(|l| l.len() >= 4 && &l[2..4] == "--" && !l.starts_with("xn--"));
    let numeric_tld = labels.last().is_some_and(|t| t.bytes().all(|b| b.is_ascii_digit()));
    let has_plus = local.contains('+');
    let has_puny = labels.iter().any(|l| l.starts_with("xn--"));
    match new {
        Ok(()) => {
            assert!(dot_atom && !reserved && !numeric_tld, "mailbox rule not applied: {identity:?}");
            assert!(policy.allow_subaddress || !has_plus);
            assert!(policy.allow_punycode || !has_puny);
        }
        Err(IdentityError::Local(_)) => assert!(!dot_atom, "{identity:?}: {new:?}"),
        Err(IdentityError::Domain(_)) => {
            assert!(dot_atom && (reserved || numeric_tld), "{identity:?}: {new:?}")
        }
        Err(IdentityError::Subaddress) => {
            assert!(dot_atom && !reserved && !numeric_tld && has_plus && !policy.allow_subaddress)
        }
        Err(IdentityError::Punycode) => {
            assert!(dot_atom && !reserved && !numeric_tld && has_puny && !policy.allow_punycode);
            assert!(policy.allow_subaddress || !has_plus);
        }
        Err(e) => panic!("check_new refused a syntactically valid {identity:?} with {e:?}"),
    }
});
