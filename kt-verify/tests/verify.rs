//! The library's checks on forged, revoked, expired and inconsistent inputs: each refused with
//! its typed error, and the honest input accepted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../../verifier-cli/tests/common/fixtures.rs"]
mod fixtures;

use fixtures::{b64, now, Cred, MemLog, TestCa, ORIGIN};
use kt_log::checkpoint::{open_checkpoint, VerifiedCheckpoint};
use kt_log::note::{NoteSigner, NoteVerifier};
use kt_log::verify::ProofError;
use kt_verify::bundle::{verify_bundle, BundleError};
use kt_verify::consistency::{self, Advance, ConsistencyError, ForkReason};
use kt_verify::credential::{Ca, CredentialError};
use kt_verify::entry::EntryError;
use kt_verify::fork::{self, Evidence, ForkError};
use kt_verify::lookup::{answer_checkpoint, verify_lookup, LookupError, VerifiedLookup};
use kt_verify::validate::{validate, Invalid, ValidateError};
use kt_verify::wire::{Credential, IdentityAnswer};
use serde_json::{json, Value};

const ALICE: &str = "alice@example.com";

struct World {
    ca: TestCa,
    anchor: Ca,
    log: MemLog,
    verifier: NoteVerifier,
    alice: Cred,
}

/// A log of three credentials (alice's at index 1), all valid for a day around now.
fn world() -> World {
    let ca = TestCa::new(1);
    let anchor = Ca::from_bytes(ca.pem().as_bytes()).unwrap();
    let mut log = MemLog::new(NoteSigner::generate(ORIGIN).unwrap());
    let validity = (now() - 3600, now() + 86400);
    let bob = Cred::new(&ca, "bob@example.com", 1, validity);
    let alice = Cred::new(&ca, ALICE, 2, validity);
    let carol = Cred::new(&ca, "carol@example.com", 3, validity);
    for c in [&bob, &alice, &carol] {
        log.push(c.entry.clone());
    }
    let verifier = log.signer.verifier();
    World {
        ca,
        anchor,
        log,
        verifier,
        alice,
    }
}

fn bundle(w: &World) -> Value {
    w.alice.bundle(&w.ca, &w.log, 1, 3)
}

fn parse_bundle(v: Value) -> Credential {
    serde_json::from_value(v).unwrap()
}

fn answer(w: &World, item: Value) -> IdentityAnswer {
    serde_json::from_value(json!({
        "identity": ALICE,
        "status": "active",
        "checkpoint": w.log.checkpoint(3),
        "credentials": [item],
    }))
    .unwrap()
}

fn lookup(w: &World, answer: &IdentityAnswer) -> Result<VerifiedLookup, LookupError> {
    let checkpoint = answer_checkpoint(answer, ALICE, &w.verifier)?;
    verify_lookup(answer, ALICE, checkpoint, &w.anchor)
}

fn checkpoint(log: &MemLog, size: u64) -> VerifiedCheckpoint {
    open_checkpoint(log.checkpoint(size).as_bytes(), &log.signer.verifier()).unwrap()
}

#[test]
fn an_honest_bundle_verifies() {
    let w = world();
    let verified = verify_bundle(&parse_bundle(bundle(&w)), &w.verifier, &w.anchor, now()).unwrap();
    assert_eq!(verified.logged.binding.identity, ALICE);
    assert_eq!(verified.logged.log_index, 1);
    assert_eq!(verified.logged.entry, w.alice.entry);
    assert!(verified.chain_has_ca);
}

#[test]
fn a_forged_bundle_is_refused() {
    let w = world();
    // The proof of another index.
    let mut forged = bundle(&w);
    forged["log_index"] = json!(0);
    assert!(matches!(
        verify_bundle(&parse_bundle(forged), &w.verifier, &w.anchor, now()),
        Err(BundleError::OtherCertificate { .. } | BundleError::Inclusion { .. })
    ));
    // An entry the log never held: a valid certificate and entry, not in the tree.
    let stray = Cred::new(&w.ca, ALICE, 9, (now() - 10, now() + 10));
    let mut forged = bundle(&w);
    forged["entry"] = json!(b64(&stray.entry));
    forged["certificate"] = json!(fixtures::pem_of(&stray.der));
    forged["serial"] = json!(fixtures::hex(&stray.serial));
    forged["public_key"] = json!(stray.public_b64());
    forged["not_before"] = json!(stray.not_before);
    forged["not_after"] = json!(stray.not_after);
    assert!(matches!(
        verify_bundle(&parse_bundle(forged), &w.verifier, &w.anchor, now()),
        Err(BundleError::Inclusion {
            index: 1,
            source: ProofError::RootMismatch { .. }
        })
    ));
    // A checkpoint signed by another key.
    let mut forged = bundle(&w);
    let other = MemLog {
        signer: NoteSigner::generate(ORIGIN).unwrap(),
        ..w.log.clone()
    };
    forged["checkpoint"] = json!(other.checkpoint(3));
    assert!(matches!(
        verify_bundle(&parse_bundle(forged), &w.verifier, &w.anchor, now()),
        Err(BundleError::Checkpoint(_))
    ));
    // The answer's own fields must say what the entry says.
    let mut forged = bundle(&w);
    forged["not_after"] = json!(w.alice.not_after + 1);
    assert_eq!(
        verify_bundle(&parse_bundle(forged), &w.verifier, &w.anchor, now()).unwrap_err(),
        BundleError::FieldMismatch { field: "not_after" }
    );
    let mut forged = bundle(&w);
    forged["identity"] = json!("bob@example.com");
    assert_eq!(
        verify_bundle(&parse_bundle(forged), &w.verifier, &w.anchor, now()).unwrap_err(),
        BundleError::OtherIdentity
    );
}

#[test]
fn a_credential_of_another_ca_is_refused() {
    let w = world();
    let other_ca = Ca::from_bytes(TestCa::new(2).pem().as_bytes()).unwrap();
    assert!(matches!(
        verify_bundle(&parse_bundle(bundle(&w)), &w.verifier, &other_ca, now()),
        Err(BundleError::Certificate(CredentialError::WrongIssuer(_)))
    ));
    // The audit's entry rule refuses it too, and accepts it under its own CA.
    assert!(matches!(
        kt_verify::audit::check_entry(&w.alice.entry, Some(&other_ca)),
        Err(EntryError::Certificate(CredentialError::WrongIssuer(_)))
    ));
    let entry = kt_verify::audit::check_entry(&w.alice.entry, Some(&w.anchor)).unwrap();
    assert_eq!(entry.body.identity(), ALICE);
    assert!(kt_verify::audit::check_entry(&w.alice.entry, None).is_ok());
}

#[test]
fn expiry_is_checked_at_the_time_given() {
    let w = world();
    let b = parse_bundle(bundle(&w));
    let after = w.alice.not_after + 1;
    assert_eq!(
        verify_bundle(&b, &w.verifier, &w.anchor, after).unwrap_err(),
        BundleError::Validity(CredentialError::Expired {
            not_after: w.alice.not_after,
            now: after
        })
    );
    let before = w.alice.not_before - 1;
    assert!(matches!(
        verify_bundle(&b, &w.verifier, &w.anchor, before),
        Err(BundleError::Validity(CredentialError::NotYetValid { .. }))
    ));
    // At both ends of the validity it is valid.
    for t in [w.alice.not_before, w.alice.not_after] {
        assert!(verify_bundle(&b, &w.verifier, &w.anchor, t).is_ok());
    }
}

#[test]
fn a_lookup_with_a_bad_proof_is_refused() {
    let w = world();
    let good = w.alice.identity_item(&w.log, 1, 3);
    assert_eq!(
        lookup(&w, &answer(&w, good.clone()))
            .unwrap()
            .credentials
            .len(),
        1
    );

    let mut bad = good.clone();
    bad["inclusion_proof"][0] = json!(b64(&[0u8; 32]));
    assert!(matches!(
        lookup(&w, &answer(&w, bad)),
        Err(LookupError::Credential(BundleError::Inclusion {
            index: 1,
            ..
        }))
    ));
    let mut bad = good.clone();
    bad["inclusion_proof"][0] = json!("not base64");
    assert!(matches!(
        lookup(&w, &answer(&w, bad)),
        Err(LookupError::Credential(BundleError::Encoding(_)))
    ));
    // Bob's credential listed as alice's.
    let bob = w.log.entries[0].clone();
    let mut bad = good.clone();
    bad["entry"] = json!(b64(&bob));
    assert!(matches!(
        lookup(&w, &answer(&w, bad)),
        Err(LookupError::Credential(_) | LookupError::CredentialOfOther { .. })
    ));
    // An answer about someone else.
    assert_eq!(
        answer_checkpoint(&answer(&w, good), "bob@example.com", &w.verifier).unwrap_err(),
        LookupError::OtherIdentity
    );
}

#[test]
fn validate_checks_status_key_time_and_the_crl() {
    let w = world();
    let verified = lookup(&w, &answer(&w, w.alice.identity_item(&w.log, 1, 3))).unwrap();
    let key = w.alice.key.verifying_key().to_bytes();
    let crl = |revoked: &[&[u8]]| {
        let der = w.ca.crl(revoked);
        move || Ok::<_, ()>(der)
    };

    let valid = validate(&verified, &key, &w.anchor, now(), crl(&[])).unwrap();
    assert_eq!(valid.index, 0);
    assert_eq!(valid.credential.binding.identity, ALICE);

    // Revoked on the CRL, with the serial as the entry writes it.
    assert_eq!(
        validate(&verified, &key, &w.anchor, now(), crl(&[&w.alice.serial])).unwrap_err(),
        ValidateError::Invalid(Invalid::Revoked {
            serial: fixtures::hex(&w.alice.serial)
        })
    );
    // A CRL of another CA, and a stale one.
    let other = TestCa::new(2).crl(&[]);
    assert!(matches!(
        validate(&verified, &key, &w.anchor, now(), || Ok::<_, ()>(other)),
        Err(ValidateError::BadCrl(CredentialError::BadCrl(_)))
    ));
    let later = now() + 2 * 3600;
    let stale = w.ca.crl(&[]);
    assert!(matches!(
        validate(&verified, &key, &w.anchor, later, || Ok::<_, ()>(stale)),
        Err(ValidateError::BadCrl(CredentialError::StaleCrl { .. }))
    ));
    // Expired at the time given: the CRL is not even asked for.
    assert!(matches!(
        validate(
            &verified,
            &key,
            &w.anchor,
            w.alice.not_after + 1,
            || Err(())
        ),
        Err(ValidateError::Invalid(Invalid::Validity(
            CredentialError::Expired { .. }
        )))
    ));
    // Another key, and a revoked identity.
    assert_eq!(
        validate(&verified, &[9; 32], &w.anchor, now(), || Err(())).unwrap_err(),
        ValidateError::Invalid(Invalid::NoSuchKey)
    );
    let mut revoked = verified.clone();
    revoked.status = "revoked".into();
    assert_eq!(
        validate(&revoked, &key, &w.anchor, now(), || Err(())).unwrap_err(),
        ValidateError::Invalid(Invalid::NotActive {
            status: "revoked".into()
        })
    );
    // The CRL that cannot be had is the caller's error, passed through.
    assert_eq!(
        validate(&verified, &key, &w.anchor, now(), || Err("offline")).unwrap_err(),
        ValidateError::CrlUnavailable("offline")
    );
}

#[test]
fn consistency_is_proven_or_a_fork_is_returned() {
    let w = world();
    let (c1, c3) = (checkpoint(&w.log, 1), checkpoint(&w.log, 3));
    let honest = |from, to| Ok::<_, ()>(w.log.consistency(from, to));
    assert_eq!(consistency::check(None, &c3, honest), Ok(Advance::First));
    assert_eq!(
        consistency::check(Some(&c3), &c3, honest),
        Ok(Advance::Unchanged)
    );
    assert_eq!(
        consistency::check(Some(&c1), &c3, honest),
        Ok(Advance::Extended { from: 1 })
    );
    assert_eq!(
        consistency::check(Some(&c3), &c1, honest),
        Ok(Advance::Behind { saved: 3 })
    );

    // Another tree of size 3 signed by the same key: two roots for one size.
    let mut forked = w.log.clone();
    forked.entries.truncate(2);
    forked.leaves.truncate(2);
    forked.push(b"another third entry".to_vec());
    let f3 = checkpoint(&forked, 3);
    match consistency::check(Some(&c3), &f3, honest) {
        Err(ConsistencyError::Fork(fork)) => {
            assert_eq!(fork.reason, ForkReason::TwoRoots { size: 3 });
            // The evidence it makes proves the fork to anyone with the log key.
            let evidence = Evidence::new(
                &fork.older,
                &fork.newer,
                &fork.proof,
                fork.reason.to_string(),
                None,
                1,
            );
            assert!(fork::check(&evidence, &w.verifier).is_ok());
        }
        other => panic!("{other:?}"),
    }
    // A proof that does not verify.
    match consistency::check(Some(&c1), &f3, |_, _| Ok::<_, ()>(vec![])) {
        Err(ConsistencyError::Fork(fork)) => {
            assert!(matches!(fork.reason, ForkReason::BadProof(_)));
        }
        other => panic!("{other:?}"),
    }
    // No proof to be had for a smaller checkpoint: a rollback, not yet a fork.
    assert_eq!(
        consistency::check(Some(&c3), &c1, |_, _| Err("404")),
        Err(ConsistencyError::NoProof {
            source: "404",
            rolled_back: true
        })
    );
}

#[test]
fn evidence_of_one_view_proves_no_fork() {
    let w = world();
    let (c1, c3) = (checkpoint(&w.log, 1), checkpoint(&w.log, 3));
    let same = Evidence::new(&c3, &c3, &[], String::new(), None, 1);
    assert_eq!(
        fork::check(&same, &w.verifier).unwrap_err(),
        ForkError::SameRoot
    );
    let consistent = Evidence::new(&c1, &c3, &w.log.consistency(1, 3), String::new(), None, 1);
    assert_eq!(
        fork::check(&consistent, &w.verifier).unwrap_err(),
        ForkError::ProofVerifies
    );
    let other = NoteSigner::generate(ORIGIN).unwrap().verifier();
    assert!(matches!(
        fork::check(&consistent, &other),
        Err(ForkError::Checkpoint { which: "older", .. })
    ));
}

#[test]
fn untrusted_bytes_never_panic() {
    let w = world();
    for bytes in [
        &b""[..],
        b"-----BEGIN",
        b"\x30\x84\xff\xff\xff\xff",
        b"\x30\x03\x30\x81",
    ] {
        assert!(kt_verify::credential::parse_certificate(bytes).is_err());
        assert!(w.anchor.verify_certificate(bytes).is_err());
        assert!(w.anchor.verify_crl(bytes, 0).is_err());
        assert!(Ca::from_bytes(bytes).is_err());
        assert!(kt_verify::audit::check_entry(bytes, Some(&w.anchor)).is_err());
    }
    for serial in ["", "0", "00", "0A", &"00".repeat(22), &"01".repeat(21)] {
        let parsed = kt_verify::credential::parse_serial_hex(serial);
        assert_eq!(
            parsed.is_some(),
            serial == "00" || serial.len() == 42,
            "{serial}"
        );
    }
}

/// A certificate's identity is the one rfc822Name (a mailbox) or uniformResourceIdentifier (a
/// URI identity) of its subjectAltName; one kind in the other's place is refused.
#[test]
fn identities_are_read_from_the_san_of_their_kind_only() {
    use x509_cert::ext::pkix::name::GeneralName;
    let ca = TestCa::new(1);
    let anchor = Ca::from_bytes(ca.pem().as_bytes()).unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&fixtures::seed(9)).verifying_key();
    let ia5 = |s: &str| der::asn1::Ia5String::new(s).unwrap();
    let cert = |identity: &str, name: GeneralName| {
        ca.issue_named(identity, name, &key, &[7], now() - 60, now() + 60)
    };
    let uri = "im:alice@example.com";
    let facts = anchor
        .verify_certificate(&cert(uri, GeneralName::UniformResourceIdentifier(ia5(uri))))
        .unwrap();
    assert_eq!(facts.identity, uri);
    for wrong in [
        cert(uri, GeneralName::Rfc822Name(ia5(uri))),
        cert(ALICE, GeneralName::UniformResourceIdentifier(ia5(ALICE))),
        cert(uri, GeneralName::DnsName(ia5("example.com"))),
    ] {
        assert!(matches!(
            anchor.verify_certificate(&wrong),
            Err(CredentialError::BadIdentity(_))
        ));
    }
}
