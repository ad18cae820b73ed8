//! The library's checks on forged, revoked, expired, replayed and inconsistent inputs: each
//! refused with its typed error, and the honest input accepted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use test_support::fixtures;

use fixtures::{b64, now, revoke_entry, Cred, MemDirectory, MemLog, TestCa, ORIGIN};
use kt_log::checkpoint::{open_checkpoint, VerifiedCheckpoint};
use kt_log::note::{NoteSigner, NoteVerifier};
use kt_protocol::api::{CredentialAnswer, IdentityProof};
use kt_protocol::directory::record::Status;
use kt_protocol::directory::vrf::VrfPublicKey;
use kt_verify::bundle::{verify_bundle, BundleError};
use kt_verify::consistency::{self, Advance, ConsistencyError, ForkReason};
use kt_verify::credential::{Ca, CredentialError};
use kt_verify::directory::{answer_checkpoint, verify_identity, DirectoryError, VerifiedIdentity};
use kt_verify::fork::{self, Evidence, ForkError};
use kt_verify::lookup::{verify_lookup, LookupError, VerifiedLookup};
use kt_verify::monitor::{advance, MonitorError};
use kt_verify::validate::{validate, Invalid, ValidateError};
use serde_json::Value;

const ALICE: &str = "alice@example.com";

struct World {
    ca: TestCa,
    anchor: Ca,
    dir: MemDirectory,
    log: MemLog,
    verifier: NoteVerifier,
    vrf: VrfPublicKey,
    alice: Cred,
}

/// A directory of three identities (alice's credential in the second batch), each credential
/// valid for a day around now; `log` is its log.
fn world() -> World {
    let ca = TestCa::new(1);
    let anchor = Ca::from_bytes(ca.pem().as_bytes()).unwrap();
    let mut dir = MemDirectory::new(NoteSigner::generate(ORIGIN).unwrap());
    let validity = (now() - 3600, now() + 86400);
    let bob = Cred::new(&ca, "bob@example.com", 1, validity);
    let alice = Cred::new(&ca, ALICE, 2, validity);
    let carol = Cred::new(&ca, "carol@example.com", 3, validity);
    dir.commit(std::slice::from_ref(&bob.entry));
    dir.commit(&[alice.entry.clone(), carol.entry.clone()]);
    let verifier = dir.log.signer.verifier();
    World {
        ca,
        anchor,
        log: dir.log.clone(),
        vrf: dir.vrf_key(),
        dir,
        verifier,
        alice,
    }
}

fn checkpoint(log: &MemLog, size: u64) -> VerifiedCheckpoint {
    open_checkpoint(log.checkpoint(size).as_bytes(), &log.signer.verifier()).unwrap()
}

/// Steps 1 and 2 of a lookup of `identity` in `proof`.
fn verify(
    w: &World,
    identity: &str,
    proof: &IdentityProof,
) -> Result<VerifiedIdentity, DirectoryError> {
    let cp = answer_checkpoint(proof, identity, &w.verifier)?;
    verify_identity(proof, &cp, &w.vrf)
}

fn lookup(w: &World, proof: &IdentityProof) -> VerifiedLookup {
    verify_lookup(verify(w, ALICE, proof).unwrap(), &w.anchor).unwrap()
}

fn bundle(w: &World) -> CredentialAnswer {
    serde_json::from_value(w.dir.bundle(&w.ca, &w.alice)).unwrap()
}

#[test]
fn an_honest_bundle_verifies() {
    let w = world();
    let verified = verify_bundle(&bundle(&w), &w.verifier, &w.vrf, &w.anchor, now()).unwrap();
    assert_eq!(verified.identity.identity, ALICE);
    assert_eq!(verified.binding.serial.0, w.alice.serial);
    assert_eq!(verified.identity.checkpoint.size(), w.log.size());
    assert!(verified.chain_has_ca);
}

#[test]
fn a_forged_bundle_is_refused() {
    let w = world();
    let honest = serde_json::to_value(bundle(&w)).unwrap();
    let check = |v: Value| {
        let b: CredentialAnswer = serde_json::from_value(v).unwrap();
        verify_bundle(&b, &w.verifier, &w.vrf, &w.anchor, now())
    };
    let with = |field: &str, value: Value| {
        let mut v = honest.clone();
        v[field] = value;
        v
    };
    let bob_cert = Cred::new(&w.ca, "bob@example.com", 1, (now() - 3600, now() + 86400));
    // Another certificate than the state's; a serial not in the state; a key, validity or
    // identity the state does not say; a proof of another identity.
    assert!(matches!(
        check(with("certificate", fixtures::pem_of(&bob_cert.der).into())),
        Err(BundleError::OtherCertificate(_))
    ));
    assert!(matches!(
        check(with("serial", fixtures::hex(&fixtures::serial(77)).into())),
        Err(BundleError::NotCurrent(_))
    ));
    assert!(matches!(
        check(with("public_key", b64(&[9; 32]).into())),
        Err(BundleError::FieldMismatch {
            field: "public_key"
        })
    ));
    assert!(matches!(
        check(with("not_after", (now() + 5).into())),
        Err(BundleError::FieldMismatch { field: "not_after" })
    ));
    assert!(matches!(
        check(with("identity", "bob@example.com".into())),
        Err(BundleError::Directory(DirectoryError::OtherIdentity))
    ));
    let mut other = honest.clone();
    other["directory"] = serde_json::to_value(w.dir.proof("bob@example.com")).unwrap();
    other["directory"]["identity"] = ALICE.into();
    assert!(check(other).is_err(), "bob's proof presented as alice's");
    // A replaced serial that is still current.
    assert!(matches!(
        check(with("replaces", fixtures::hex(&w.alice.serial).into())),
        Err(BundleError::FieldMismatch { field: "replaces" })
    ));
}

#[test]
fn a_credential_of_another_ca_is_refused() {
    let w = world();
    let other_ca = TestCa::new(2);
    let other = Ca::from_bytes(other_ca.pem().as_bytes()).unwrap();
    assert!(matches!(
        verify_bundle(&bundle(&w), &w.verifier, &w.vrf, &other, now()),
        Err(BundleError::Binding(_))
    ));
    // And in a lookup: one credential that is not the CA's fails the whole state.
    let verified = verify(&w, ALICE, &w.dir.proof(ALICE)).unwrap();
    assert!(matches!(
        verify_lookup(verified, &other),
        Err(LookupError::Credential { .. })
    ));
}

#[test]
fn expiry_is_checked_at_the_time_given() {
    let w = world();
    let b = bundle(&w);
    assert!(verify_bundle(&b, &w.verifier, &w.vrf, &w.anchor, now()).is_ok());
    assert!(matches!(
        verify_bundle(&b, &w.verifier, &w.vrf, &w.anchor, now() + 2 * 86400),
        Err(BundleError::Validity(CredentialError::Expired { .. }))
    ));
    assert!(matches!(
        verify_bundle(&b, &w.verifier, &w.vrf, &w.anchor, now() - 2 * 3600),
        Err(BundleError::Validity(CredentialError::NotYetValid { .. }))
    ));
}

#[test]
fn a_lookup_is_the_complete_state_or_a_proven_absence() {
    let mut w = world();
    let second = Cred::new(&w.ca, ALICE, 4, (now() - 3600, now() + 86400));
    w.dir.commit(std::slice::from_ref(&second.entry));
    let looked = lookup(&w, &w.dir.proof(ALICE));
    assert_eq!(looked.status, Some(Status::Active));
    assert_eq!(looked.credentials.len(), 2, "both of alice's credentials");
    // Absence: a name never logged.
    let nobody = w.dir.proof("nobody@example.com");
    assert!(verify(&w, "nobody@example.com", &nobody)
        .unwrap()
        .state
        .is_none());

    // A credential dropped from the record: the commitment no longer opens. (Dropping the
    // one the change names is refused before, as a record that contradicts itself.)
    let honest = w.dir.proof(ALICE);
    let mut dropped = honest.clone();
    let state = dropped.state.as_mut().unwrap();
    state.record["credentials"]
        .as_array_mut()
        .unwrap()
        .remove(0);
    assert!(matches!(
        verify(&w, ALICE, &dropped),
        Err(DirectoryError::Root("state"))
    ));
    let mut dropped_new = honest.clone();
    let state = dropped_new.state.as_mut().unwrap();
    state.record["credentials"]
        .as_array_mut()
        .unwrap()
        .remove(1);
    assert!(matches!(
        verify(&w, ALICE, &dropped_new),
        Err(DirectoryError::Record(_))
    ));
    // A false absence: alice's proof without her state.
    let mut hidden = honest.clone();
    hidden.state = None;
    assert!(matches!(
        verify(&w, ALICE, &hidden),
        Err(DirectoryError::MapProof(_))
    ));
    // Another identity's absence proof shown for alice.
    let mut false_absence = nobody.clone();
    false_absence.identity = ALICE.into();
    assert!(verify(&w, ALICE, &false_absence).is_err());
    // An older state (before the second credential) re-proven against the new checkpoint:
    // its leaf is not the map's.
    let mut older = honest.clone();
    let v1 = &w.dir.versions[ALICE][0];
    older.state = Some(kt_protocol::api::StateProof {
        record: v1.record.to_json(),
        opening: b64(&v1.opening),
        previous_head: b64(&v1.previous_head),
    });
    assert!(matches!(
        verify(&w, ALICE, &older),
        Err(DirectoryError::Root("state"))
    ));
    // A checkpoint whose last entry is an update, not a map entry.
    let mut not_map = honest.clone();
    not_map.map_entry = b64(&w.dir.log.entries[w.dir.log.size() as usize - 2]);
    assert!(verify(&w, ALICE, &not_map).is_err());
}

#[test]
fn a_flipped_byte_anywhere_in_an_answer_fails() {
    let w = world();
    let honest = serde_json::to_vec(&w.dir.proof(ALICE)).unwrap();
    let mut refused = 0;
    for i in 0..honest.len() {
        let mut bytes = honest.clone();
        bytes[i] ^= 0x01;
        let Ok(proof) = serde_json::from_slice::<IdentityProof>(&bytes) else {
            refused += 1;
            continue;
        };
        let verified = verify(&w, ALICE, &proof).and_then(|v| {
            if v.state.is_none() {
                Err(DirectoryError::Root("absence"))
            } else {
                Ok(v)
            }
        });
        match verified {
            Err(_) => refused += 1,
            // A flip that does not change what is verified (a JSON escape's case, a key the
            // verifier does not read) still yields the honest state: compare it.
            Ok(v) => {
                let honest_state = verify(&w, ALICE, &w.dir.proof(ALICE)).unwrap().state;
                assert_eq!(
                    v.state, honest_state,
                    "byte {i} changed the state and verified"
                );
            }
        }
    }
    assert!(
        refused > honest.len() * 9 / 10,
        "{refused} of {}",
        honest.len()
    );
}

#[test]
fn a_binary_answer_is_the_json_answer_and_every_flipped_byte_of_it_fails() {
    let mut w = world();
    let second = Cred::new(&w.ca, ALICE, 4, (now() - 3600, now() + 86400));
    w.dir.commit(std::slice::from_ref(&second.entry));
    for identity in [ALICE, "nobody@example.com"] {
        let honest = w.dir.proof(identity);
        let binary = honest.to_binary().unwrap();
        let json = serde_json::to_vec(&honest).unwrap();
        assert!(
            binary.len() * 10 < json.len() * 9,
            "{} binary bytes against {} of JSON",
            binary.len(),
            json.len()
        );
        assert_eq!(IdentityProof::from_binary(&binary).unwrap(), honest);
        let expected = verify(&w, identity, &honest).unwrap().state;
        // Every byte of the binary form is read and checked: no flip (of one bit, a different
        // one from byte to byte) leaves a proof that verifies, whatever its state.
        for i in 0..binary.len() {
            let mut bytes = binary.clone();
            bytes[i] ^= 0x80 >> (i % 8);
            if let Ok(proof) = IdentityProof::from_binary(&bytes) {
                assert_eq!(
                    proof.to_binary().unwrap(),
                    bytes,
                    "one byte form (byte {i})"
                );
                assert!(
                    verify(&w, identity, &proof).is_err(),
                    "byte {i} of {identity}'s answer flipped and it still verified"
                );
            }
        }
        // Cut short or followed by anything: refused.
        for len in 0..binary.len() {
            assert!(IdentityProof::from_binary(&binary[..len]).is_err(), "{len}");
        }
        let longer = [&binary[..], &[0]].concat();
        assert!(IdentityProof::from_binary(&longer).is_err());
        assert!(expected.is_some() == (identity == ALICE));
    }
}

#[test]
fn validate_checks_status_key_time_and_the_crl() {
    let mut w = world();
    let key = w.alice.key.verifying_key().to_bytes();
    let crl_none = w.ca.crl(&[]);
    let verified = lookup(&w, &w.dir.proof(ALICE));
    let valid = validate(&verified, &key, &w.anchor, now(), || {
        Ok::<_, ()>(crl_none.clone())
    })
    .unwrap();
    assert_eq!(valid.credential.binding.serial.0, w.alice.serial);
    // Another key; a time outside the validity; a CRL that lists it.
    assert_eq!(
        validate(&verified, &[3; 32], &w.anchor, now(), || Ok::<_, ()>(
            crl_none.clone()
        ))
        .unwrap_err(),
        ValidateError::Invalid(Invalid::NoSuchKey)
    );
    assert!(matches!(
        validate(
            &verified,
            &key,
            &w.anchor,
            now() + 3 * 86400,
            || Ok::<_, ()>(crl_none.clone())
        ),
        Err(ValidateError::Invalid(Invalid::Validity(_)))
    ));
    let listed = w.ca.crl(&[&w.alice.serial]);
    assert!(matches!(
        validate(&verified, &key, &w.anchor, now(), || Ok::<_, ()>(
            listed.clone()
        )),
        Err(ValidateError::Invalid(Invalid::Revoked { .. }))
    ));
    // The CRL that cannot be had is the caller's error, passed through.
    assert_eq!(
        validate(&verified, &key, &w.anchor, now(), || Err("offline")).unwrap_err(),
        ValidateError::CrlUnavailable("offline")
    );
    // Revoked: the complete state says so, whatever (stale) CRL comes.
    w.dir.commit(&[revoke_entry(ALICE, &[&w.alice.serial])]);
    let revoked = lookup(&w, &w.dir.proof(ALICE));
    assert_eq!(
        validate(&revoked, &key, &w.anchor, now(), || Ok::<_, ()>(
            crl_none.clone()
        ))
        .unwrap_err(),
        ValidateError::Invalid(Invalid::NotActive)
    );
    let absent = verify_lookup(
        verify(&w, "nobody@example.com", &w.dir.proof("nobody@example.com")).unwrap(),
        &w.anchor,
    )
    .unwrap();
    assert_eq!(
        validate(&absent, &key, &w.anchor, now(), || Ok::<_, ()>(
            crl_none.clone()
        ))
        .unwrap_err(),
        ValidateError::Invalid(Invalid::NotEnrolled)
    );
}

#[test]
fn the_monitor_sees_every_version_and_checks_each_one() {
    let mut w = world();
    let first = {
        let answer = w.dir.history(ALICE, 0);
        let v = verify(&w, ALICE, &answer.proof).unwrap();
        advance(None, &answer, &v).unwrap()
    };
    assert_eq!(first.changes.len(), 1);
    // The AS binds a new key and takes it back before the next run: both versions show.
    let intruder = Cred::new(&w.ca, ALICE, 9, (now() - 60, now() + 60));
    w.dir.commit(std::slice::from_ref(&intruder.entry));
    w.dir
        .commit(&[fixtures::revoke_credential_entry(ALICE, &intruder.serial)]);
    let answer = w.dir.history(ALICE, 1);
    let v = verify(&w, ALICE, &answer.proof).unwrap();
    let second = advance(Some(&first.watch), &answer, &v).unwrap();
    assert_eq!(second.changes.len(), 2);
    assert!(second.changes[0]
        .credentials
        .iter()
        .any(|c| c.serial.0 == intruder.serial));
    // Nothing new: nothing to report, and the same head.
    let again = w.dir.history(ALICE, 3);
    let v = verify(&w, ALICE, &again.proof).unwrap();
    assert!(advance(Some(&second.watch), &again, &v)
        .unwrap()
        .changes
        .is_empty());
    // A version hidden from the history: the chain does not reach the map's head.
    let mut hiding = w.dir.history(ALICE, 1);
    hiding.history.clear();
    let v = verify(&w, ALICE, &hiding.proof).unwrap();
    assert!(matches!(
        advance(Some(&first.watch), &hiding, &v),
        Err(MonitorError::HistoryLength { .. })
    ));
    let mut swapped = w.dir.history(ALICE, 1);
    swapped.history[0].opening = b64(&[0; 32]);
    assert!(matches!(
        advance(Some(&first.watch), &swapped, &v),
        Err(MonitorError::ChainBroken)
    ));
    // Shown an older state than the one held: rolled back.
    let v = verify(&w, ALICE, &w.dir.history(ALICE, 0).proof).unwrap();
    let mut ahead = second.watch.clone();
    ahead.records.push(ahead.records[0].clone());
    assert!(matches!(
        advance(Some(&ahead), &w.dir.history(ALICE, 4), &v),
        Err(MonitorError::RolledBack { .. })
    ));
}

#[test]
fn the_monitor_applies_the_history_rules() {
    let mut w = world();
    let answer = w.dir.history(ALICE, 0);
    let v = verify(&w, ALICE, &answer.proof).unwrap();
    let watch = advance(None, &answer, &v).unwrap().watch;
    // A second issuance on the enrollment alice's first one used: the transition rule lets it
    // through (enrollments are not state), the history rules do not.
    let again = Cred::new(&w.ca, ALICE, 5, (now() - 60, now() + 600));
    let used = String::from_utf8(w.alice.entry.clone()).unwrap();
    let used = &used[used.find("\"enrollment\":").unwrap()..];
    let text = String::from_utf8(again.entry.clone()).unwrap();
    let forged = format!("{}{}", &text[..text.find("\"enrollment\":").unwrap()], used);
    w.dir.commit(&[forged.into_bytes()]);
    let answer = w.dir.history(ALICE, 1);
    let v = verify(&w, ALICE, &answer.proof).unwrap();
    assert!(matches!(
        advance(Some(&watch), &answer, &v),
        Err(MonitorError::Violation { version: 2, .. })
    ));
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
        assert!(kt_verify::audit::Audit::new().apply(bytes).is_err());
        assert!(serde_json::from_slice::<IdentityProof>(bytes).is_err());
        assert!(IdentityProof::from_binary(bytes).is_err());
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

/// The five histories an outside review built (issue 11), which a dishonest AS can commit to
/// in its directory: each is refused by the owner's monitor at its version, by the shared
/// history rules.
#[test]
fn forged_histories_are_refused_by_the_monitor_at_their_version() {
    use kt_protocol::directory::record::{Change, VersionRecord};
    use kt_protocol::entry::{EnrollmentId, RevocationReason, RevocationScope, Serial};
    let ca = TestCa::new(1);
    let anchor = Ca::from_bytes(ca.pem().as_bytes()).unwrap();
    let cred = |n: u64| Cred::new(&ca, ALICE, n, (now() - 5, now() + 500));
    let binding = |n: u64| {
        let c = cred(n);
        kt_protocol::entry::Binding {
            serial: Serial(c.serial),
            public_key: c.key.verifying_key().to_bytes(),
            not_before: c.not_before,
            not_after: c.not_after,
            certificate: c.der,
        }
    };
    let record = |version, change, status, credentials: Vec<u64>| VersionRecord {
        identity: ALICE.into(),
        version,
        time: now(),
        change,
        status,
        credentials: credentials.into_iter().map(binding).collect(),
    };
    let issue = |n: u64, enrollment: u8| Change::Issue {
        serial: Serial(fixtures::serial(n)),
        enrollment: EnrollmentId([enrollment; 32]),
    };
    let rotate = |n: u64, replaces: u64| Change::Rotate {
        serial: Serial(fixtures::serial(n)),
        replaces: Serial(fixtures::serial(replaces)),
    };
    let revoke = |serials: Vec<u64>, scope| Change::Revoke {
        serials: serials
            .into_iter()
            .map(|n| Serial(fixtures::serial(n)))
            .collect(),
        scope,
        reason: RevocationReason::KeyCompromise,
        admin: "admin".into(),
    };
    use RevocationScope::{Credential, Identity};
    use Status::{Active, Revoked};
    let cases: Vec<(&str, Vec<VersionRecord>)> = vec![
        (
            "one enrollment used by two issuances",
            vec![
                record(1, issue(1, 7), Active, vec![1]),
                record(2, issue(2, 7), Active, vec![1, 2]),
            ],
        ),
        (
            "an issuance to an identity revoked and never enabled",
            vec![
                record(1, revoke(vec![], Identity), Revoked, vec![]),
                record(2, issue(1, 1), Active, vec![1]),
            ],
        ),
        (
            "a rotation that replaces a revoked credential",
            vec![
                record(1, issue(1, 1), Active, vec![1]),
                record(2, revoke(vec![1], Credential), Active, vec![]),
                record(3, rotate(2, 1), Active, vec![2]),
            ],
        ),
        (
            "one serial rotated twice",
            vec![
                record(1, issue(1, 1), Active, vec![1]),
                record(2, rotate(2, 1), Active, vec![2]),
                record(3, rotate(3, 1), Active, vec![2, 3]),
            ],
        ),
        (
            "a double revocation",
            vec![
                record(1, issue(1, 1), Active, vec![1]),
                record(2, revoke(vec![1], Credential), Active, vec![]),
                record(3, revoke(vec![1], Credential), Active, vec![]),
            ],
        ),
    ];
    for (case, records) in cases {
        let bad = records.len() as u64;
        let mut dir = MemDirectory::new(NoteSigner::generate(ORIGIN).unwrap());
        for r in records {
            dir.commit_records(vec![r]);
        }
        let answer = dir.history(ALICE, 0);
        let cp = answer_checkpoint(&answer.proof, ALICE, &dir.log.signer.verifier()).unwrap();
        let verified = verify_identity(&answer.proof, &cp, &dir.vrf_key()).unwrap();
        // Every credential of the forged state is a real one of the CA: only the history
        // gives it away.
        assert!(verify_lookup(verified.clone(), &anchor).is_ok(), "{case}");
        match advance(None, &answer, &verified) {
            Err(MonitorError::Violation { version, .. }) => assert_eq!(version, bad, "{case}"),
            other => panic!("{case}: {other:?}"),
        }
    }
}
