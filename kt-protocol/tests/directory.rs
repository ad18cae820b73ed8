//! The directory's pure parts: the VRF against RFC 9381's vectors, the map against an
//! independent reading of its definition, proofs, records, the log's entries and the rules.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kt_protocol::directory::batch::{MapViolation, Replay};
use kt_protocol::directory::hash::{inner_hash, leaf_hash, Hash32, LeafValue, EMPTY};
use kt_protocol::directory::proof::{MapProof, MapProofError};
use kt_protocol::directory::public_entry::{MapRoot, PublicEntry, Update};
use kt_protocol::directory::record::{Change, Status, VersionRecord};
use kt_protocol::directory::tree::{Leaf, Map};
use kt_protocol::directory::vrf::{self, Label, VrfPublicKey, VrfSecretKey};
use kt_protocol::entry::{
    Binding, EnrollmentId, EntryBody, LogEntry, RevocationReason, RevocationScope, Serial,
};
use proptest::prelude::*;

// ---- VRF ----

#[test]
fn rfc9381_test_vectors_pass() {
    let text = include_str!("vectors/rfc9381-edwards25519-sha512-tai.json");
    let vectors: serde_json::Value = serde_json::from_str(text).unwrap();
    let vectors = vectors["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 3);
    for v in vectors {
        let h = |k: &str| hex::decode(v[k].as_str().unwrap()).unwrap();
        let seed: [u8; 32] = h("sk").try_into().unwrap();
        let key = VrfSecretKey::from_seed(seed);
        assert_eq!(key.public_key().to_bytes().to_vec(), h("pk"));
        let proof = vrf::prove_raw(seed, &h("alpha"));
        assert_eq!(proof.to_vec(), h("pi"), "ECVRF_prove");
        let beta = vrf::verify_raw(key.public_key(), &h("alpha"), &proof).unwrap();
        assert_eq!(beta.to_vec(), h("beta"), "ECVRF_proof_to_hash");
        // Another input does not verify.
        let mut other = h("alpha");
        other.push(0);
        assert!(vrf::verify_raw(key.public_key(), &other, &proof).is_none());
    }
}

#[test]
fn a_label_verifies_for_its_identity_only_and_every_flipped_bit_fails() {
    let key = VrfSecretKey::from_seed([7; 32]);
    let (label, proof) = key.prove("alice@example.com");
    assert_eq!(
        key.public_key().verify("alice@example.com", &proof),
        Ok(label)
    );
    assert_eq!(
        key.prove("alice@example.com"),
        (label, proof),
        "deterministic"
    );
    assert_ne!(key.prove("bob@example.com").0, label);
    assert!(key.public_key().verify("bob@example.com", &proof).is_err());
    let other = VrfSecretKey::from_seed([8; 32]);
    assert!(other
        .public_key()
        .verify("alice@example.com", &proof)
        .is_err());
    for bit in 0..proof.len() * 8 {
        let mut flipped = proof;
        flipped[bit / 8] ^= 1 << (bit % 8);
        assert!(
            key.public_key()
                .verify("alice@example.com", &flipped)
                .is_err(),
            "bit {bit}"
        );
    }
    assert!(key
        .public_key()
        .verify("alice@example.com", &proof[..79])
        .is_err());
}

#[test]
fn a_proof_whose_s_is_not_reduced_is_refused() {
    // RFC 9381 §5.4.4: s must be below the group order q; s + q verifies in a lax decoder.
    let key = VrfSecretKey::from_seed([9; 32]);
    let (_, proof) = key.prove("carol@example.com");
    let q: [u8; 32] =
        hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
            .unwrap()
            .try_into()
            .unwrap();
    let mut s = [0u8; 32];
    s.copy_from_slice(&proof[48..]);
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(s[i]) + u16::from(q[i]) + carry;
        s[i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0, "s + q fits in 256 bits");
    let mut lax = proof;
    lax[48..].copy_from_slice(&s);
    assert_eq!(
        key.public_key().verify("carol@example.com", &lax),
        Err(vrf::VrfError::MalformedProof)
    );
}

#[test]
fn public_keys_of_small_order_are_refused() {
    let mut identity_point = [0u8; 32];
    identity_point[0] = 1;
    assert!(VrfPublicKey::from_bytes(&identity_point).is_err());
    assert!(VrfPublicKey::from_bytes(&[1u8; 31]).is_err());
}

// ---- The map ----

/// The definition, read independently: the subtree of a set of leaves at a depth.
fn naive(leaves: &[(Label, LeafValue)], depth: usize) -> Hash32 {
    match leaves {
        [] => EMPTY,
        [(label, value)] => leaf_hash(label, value),
        _ => {
            let zero: Vec<_> = leaves
                .iter()
                .copied()
                .filter(|(l, _)| !l.bit(depth))
                .collect();
            let one: Vec<_> = leaves
                .iter()
                .copied()
                .filter(|(l, _)| l.bit(depth))
                .collect();
            inner_hash(&naive(&zero, depth + 1), &naive(&one, depth + 1))
        }
    }
}

fn value(n: u64) -> LeafValue {
    LeafValue {
        version: n % 5 + 1,
        head: [n as u8; 32],
    }
}

/// Labels: random ones, and near copies of earlier ones (one bit flipped, often deep), so that
/// paths run long, buckets hold several labels and subtrees lean to one side.
fn labels() -> impl Strategy<Value = Vec<Label>> {
    prop::collection::vec(
        (any::<[u8; 32]>(), any::<bool>(), 0usize..256, any::<u8>()),
        0..120,
    )
    .prop_map(|raw| {
        let mut out: Vec<Label> = Vec::new();
        for (bytes, near, bit, pick) in raw {
            let label = match out.get(usize::from(pick) % out.len().max(1)) {
                Some(base) if near => {
                    let mut l = base.0;
                    l[bit / 8] ^= 0x80 >> (bit % 8);
                    Label(l)
                }
                _ => Label(bytes),
            };
            if !out.contains(&label) {
                out.push(label);
            }
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_map_is_its_definition_and_proves_every_label(
        labels in labels(),
        absent in prop::collection::vec(any::<[u8; 32]>(), 1..8),
        split in 1usize..7,
    ) {
        let leaves: Vec<(Label, LeafValue)> =
            labels.iter().enumerate().map(|(i, l)| (*l, value(i as u64))).collect();
        let expected = naive(&leaves, 0);

        let mut sorted: Vec<Leaf> = leaves.iter().map(|(label, value)| Leaf { label: *label, value: *value }).collect();
        sorted.sort_by_key(|leaf| leaf.label);
        let bulk = Map::from_sorted(sorted.clone()).unwrap();
        prop_assert_eq!(bulk.root(), expected);
        prop_assert_eq!(bulk.len(), leaves.len() as u64);

        // The same leaves in batches, with some labels set twice (the later value wins).
        let mut map = Map::new();
        for chunk in leaves.chunks(split) {
            let mut changes: Vec<(Label, LeafValue)> = chunk.iter().map(|(l, _)| (*l, value(999))).collect();
            changes.extend_from_slice(chunk);
            let staged = map.stage(&changes);
            let (root, len) = (staged.root(), staged.len());
            map.commit(staged);
            prop_assert_eq!(map.root(), root);
            prop_assert_eq!(map.len(), len);
        }
        prop_assert_eq!(map.root(), expected);

        for (label, v) in &leaves {
            let (proof, found) = map.prove(label);
            prop_assert_eq!(found, Some(*v));
            let decoded = MapProof::decode(&proof.encode()).unwrap();
            prop_assert_eq!(&decoded, &proof);
            prop_assert_eq!(decoded.root_with(label, v).unwrap(), expected);
            prop_assert!(decoded.root_without(label).is_err());
            // Another value is another root.
            let other = LeafValue { version: v.version + 1, head: v.head };
            prop_assert_ne!(decoded.root_with(label, &other).unwrap(), expected);
        }
        for bytes in absent {
            let label = Label(bytes);
            if labels.contains(&label) { continue; }
            let (proof, found) = map.prove(&label);
            prop_assert_eq!(found, None);
            let decoded = MapProof::decode(&proof.encode()).unwrap();
            prop_assert_eq!(decoded.root_without(&label).unwrap(), expected);
            prop_assert!(decoded.root_with(&label, &value(1)).is_err());
        }
    }
}

#[test]
fn the_empty_map_proves_every_absence() {
    let map = Map::new();
    assert_eq!(map.root(), EMPTY);
    let label = Label([3; 32]);
    let (proof, _) = map.prove(&label);
    assert!(proof.siblings.is_empty());
    assert_eq!(proof.root_without(&label).unwrap(), EMPTY);
}

#[test]
fn from_sorted_refuses_unsorted_or_repeated_labels_and_version_0() {
    let leaf = |b: u8, version| Leaf {
        label: Label([b; 32]),
        value: LeafValue {
            version,
            head: [0; 32],
        },
    };
    assert!(Map::from_sorted([leaf(2, 1), leaf(1, 1)]).is_none());
    assert!(Map::from_sorted([leaf(1, 1), leaf(1, 2)]).is_none());
    assert!(Map::from_sorted([leaf(1, 0)]).is_none());
}

#[test]
fn a_flipped_byte_anywhere_in_a_proof_never_verifies() {
    let mut map = Map::new();
    let labels: Vec<Label> = (0..3000u32)
        .map(|i| {
            let mut l = [0u8; 32];
            l[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
            l[4..8].copy_from_slice(&i.to_be_bytes());
            Label(l)
        })
        .collect();
    let changes: Vec<_> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (*l, value(i as u64)))
        .collect();
    let staged = map.stage(&changes);
    map.commit(staged);
    let root = map.root();
    let present = labels[1234];
    let absent = Label([0x5a; 32]);
    for (label, member) in [(present, true), (absent, false)] {
        let (proof, found) = map.prove(&label);
        let bytes = proof.encode();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut flipped = bytes.clone();
                flipped[i] ^= 1 << bit;
                let Ok(decoded) = MapProof::decode(&flipped) else {
                    continue;
                };
                let verdict = if member {
                    decoded.root_with(&label, &found.unwrap())
                } else {
                    decoded.root_without(&label)
                };
                assert_ne!(verdict, Ok(root), "byte {i} bit {bit}");
            }
        }
        assert!(MapProof::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(MapProof::decode(&longer).is_err());
    }
}

#[test]
fn an_absence_proof_with_a_leaf_off_the_path_is_refused() {
    let a = Label([0x00; 32]);
    let b = Label([0xff; 32]);
    let map_changes = [(a, value(1)), (b, value(2))];
    let mut map = Map::new();
    let staged = map.stage(&map_changes);
    map.commit(staged);
    // a's proof shows a; presented as the proof of a label beside a, it must not pass as
    // an absence of a label on b's side.
    let (proof, _) = map.prove(&a);
    let mut forged = proof.clone();
    forged.terminal = kt_protocol::directory::proof::Terminal::Other {
        label: a,
        value: value(1),
    };
    assert!(matches!(
        forged.root_without(&b),
        Err(MapProofError::Impossible(_))
    ));
    assert!(matches!(
        forged.root_without(&a),
        Err(MapProofError::Impossible(_))
    ));
}

// ---- Records ----

fn binding(serial: u8) -> Binding {
    Binding {
        serial: Serial([serial; 16]),
        public_key: [serial; 32],
        not_before: 100,
        not_after: 1000,
        certificate: vec![0x30, serial],
    }
}

fn entry(body: EntryBody) -> LogEntry {
    LogEntry::new(body)
}

#[test]
fn records_follow_their_changes_and_round_trip() {
    let who = "alice@example.com".to_owned();
    let issue = |serial: u8, time| {
        entry(EntryBody::Issue {
            time,
            identity: who.clone(),
            binding: binding(serial),
            enrollment: EnrollmentId([serial; 32]),
        })
    };
    let r1 = VersionRecord::next(None, &issue(5, 10)).unwrap();
    assert_eq!(
        (r1.version, r1.status, r1.credentials.len()),
        (1, Status::Active, 1)
    );
    let r2 = VersionRecord::next(Some(&r1), &issue(3, 11)).unwrap();
    assert_eq!(
        r2.credentials
            .iter()
            .map(|c| c.serial.0[0])
            .collect::<Vec<_>>(),
        vec![3, 5],
        "sorted by serial"
    );
    let rotate = entry(EntryBody::Rotate {
        time: 12,
        identity: who.clone(),
        binding: binding(9),
        replaces: Serial([5; 16]),
    });
    let r3 = VersionRecord::next(Some(&r2), &rotate).unwrap();
    let revoke = entry(EntryBody::Revoke {
        time: 13,
        identity: who.clone(),
        serials: vec![Serial([3; 16]), Serial([9; 16])],
        scope: RevocationScope::Identity,
        reason: RevocationReason::KeyCompromise,
        admin: "admin".into(),
    });
    let r4 = VersionRecord::next(Some(&r3), &revoke).unwrap();
    assert_eq!((r4.status, r4.credentials.len()), (Status::Revoked, 0));
    let enable = entry(EntryBody::Enable {
        time: 14,
        identity: who.clone(),
        admin: "admin".into(),
    });
    let r5 = VersionRecord::next(Some(&r4), &enable).unwrap();
    assert_eq!((r5.version, r5.status), (5, Status::Active));

    for (record, change) in [
        (&r1, issue(5, 10)),
        (&r3, rotate),
        (&r4, revoke),
        (&r5, enable),
    ] {
        assert_eq!(record.entry().unwrap(), change, "the change comes back");
        let bytes = record.to_bytes();
        assert_eq!(&VersionRecord::parse(&bytes).unwrap(), record);
        assert_eq!(
            &VersionRecord::from_json(&record.to_json()).unwrap(),
            record
        );
    }
    let json = String::from_utf8(r3.to_bytes()).unwrap();
    assert!(json.starts_with(r#"{"identity":"alice@example.com","version":3,"time":12,"change":{"type":"rotate","serial":"09090909"#), "{json}");
}

#[test]
fn changes_that_do_not_apply_are_refused() {
    let who = "bob@example.com".to_owned();
    let r1 = VersionRecord::next(
        None,
        &entry(EntryBody::Issue {
            time: 1,
            identity: who.clone(),
            binding: binding(1),
            enrollment: EnrollmentId([1; 32]),
        }),
    )
    .unwrap();
    // Rotating away a serial that is not current; issuing a current serial again; revoking
    // the identity while a credential stays current; another identity's change.
    let bad = [
        EntryBody::Rotate {
            time: 2,
            identity: who.clone(),
            binding: binding(2),
            replaces: Serial([7; 16]),
        },
        EntryBody::Issue {
            time: 2,
            identity: who.clone(),
            binding: binding(1),
            enrollment: EnrollmentId([2; 32]),
        },
        EntryBody::Revoke {
            time: 2,
            identity: who.clone(),
            serials: vec![],
            scope: RevocationScope::Identity,
            reason: RevocationReason::Unspecified,
            admin: "a".into(),
        },
        EntryBody::Enable {
            time: 2,
            identity: "carol@example.com".into(),
            admin: "a".into(),
        },
    ];
    for body in bad {
        assert!(
            VersionRecord::next(Some(&r1), &entry(body.clone())).is_err(),
            "{body:?}"
        );
    }
}

#[test]
fn record_json_is_strict() {
    let r = VersionRecord::next(
        None,
        &entry(EntryBody::Issue {
            time: 1,
            identity: "dave@example.com".into(),
            binding: binding(4),
            enrollment: EnrollmentId([4; 32]),
        }),
    )
    .unwrap();
    let good = r.to_json();
    let mut extra = good.clone();
    extra["surprise"] = serde_json::json!(1);
    let mut bad_status = good.clone();
    bad_status["status"] = serde_json::json!("revoked");
    let mut bad_change = good.clone();
    bad_change["change"]["replaces"] = serde_json::json!("00000000000000000000000000000000");
    let mut version0 = good.clone();
    version0["version"] = serde_json::json!(0);
    for value in [extra, bad_status, bad_change, version0] {
        assert!(VersionRecord::from_json(&value).is_err(), "{value}");
    }
    let mut spaced = r.to_bytes();
    spaced.insert(1, b' ');
    assert!(VersionRecord::parse(&spaced).is_err());
    assert!(matches!(r.change, Change::Issue { .. }));
}

// ---- The log's entries and the rules ----

#[test]
fn public_entries_round_trip_and_are_strict() {
    let update = PublicEntry::Update(Update {
        label: Label([1; 32]),
        version: 3,
        commitment: [2; 32],
        sealed: vec![9, 8, 7],
    });
    let map = PublicEntry::Map(MapRoot {
        root: [4; 32],
        labels: 17,
    });
    for e in [&update, &map] {
        assert_eq!(&PublicEntry::parse(&e.to_bytes()).unwrap(), e);
    }
    let text = String::from_utf8(map.to_bytes()).unwrap();
    assert_eq!(
        text,
        r#"{"v":2,"type":"map","root":"BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ=","labels":17}"#
    );
    for bad in [
        r#"{"v":2,"type":"map","root":"BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ=","labels":17,"x":1}"#,
        r#"{"v":1,"type":"map","root":"BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ=","labels":17}"#,
        r#"{"type":"map","v":2,"root":"BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ=","labels":17}"#,
        r#"{"v":2,"type":"map","root":"BAQE","labels":17}"#,
        r#"{"v":2,"type":"map","root":"BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ=","labels":17,"version":1}"#,
        r#"{"v":2,"type":"update","label":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=","version":0,"commitment":"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=","sealed":"CQgH"}"#,
        r#"{"v":2,"type":"update","label":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=","version":1,"commitment":"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=","sealed":""}"#,
    ] {
        assert!(PublicEntry::parse(bad.as_bytes()).is_err(), "{bad}");
    }
}

#[test]
fn the_rules_refuse_skipped_versions_and_wrong_roots() {
    let label = Label([6; 32]);
    let update = |version| {
        PublicEntry::Update(Update {
            label,
            version,
            commitment: [version as u8; 32],
            sealed: vec![1],
        })
    };
    let mut replay = Replay::new();
    replay.apply(&update(1)).unwrap();
    replay.apply(&update(2)).unwrap();
    assert!(replay.in_batch());
    // The map entry the two updates make, computed from the definition of the chain.
    let mut batch_map = Map::new();
    let head1 = kt_protocol::directory::hash::chain(&EMPTY, &[1; 32]);
    let head2 = kt_protocol::directory::hash::chain(&head1, &[2; 32]);
    let staged = batch_map.stage(&[(
        label,
        LeafValue {
            version: 2,
            head: head2,
        },
    )]);
    let root = staged.root();
    batch_map.commit(staged);
    replay
        .apply(&PublicEntry::Map(MapRoot { root, labels: 1 }))
        .unwrap();
    assert!(!replay.in_batch());
    assert_eq!(
        replay.map().get(&label),
        Some(LeafValue {
            version: 2,
            head: head2
        })
    );
    // Version 4 skips 3; version 2 again rewinds; a wrong root and a wrong count.
    assert!(matches!(
        replay.apply(&update(4)),
        Err(MapViolation::Version {
            expected: 3,
            found: 4,
            ..
        })
    ));
    assert!(matches!(
        replay.apply(&update(2)),
        Err(MapViolation::Version { expected: 3, .. })
    ));
    let mut other = Replay::new();
    other.apply(&update(1)).unwrap();
    assert!(matches!(
        other.apply(&PublicEntry::Map(MapRoot { root, labels: 1 })),
        Err(MapViolation::Root { .. })
    ));
    let mut count = Replay::new();
    count.apply(&update(1)).unwrap();
    count.apply(&update(2)).unwrap();
    assert!(matches!(
        count.apply(&PublicEntry::Map(MapRoot { root, labels: 2 })),
        Err(MapViolation::Labels {
            expected: 1,
            found: 2
        })
    ));
}

#[test]
fn nothing_follows_the_last_version() {
    // A record at version 2^64 − 1 (which parsing accepts) has no next record: an error,
    // never an overflow (found by the version_record fuzz target).
    let mut last = VersionRecord::next(
        None,
        &entry(EntryBody::Issue {
            time: 1,
            identity: "bob@example.com".into(),
            binding: binding(1),
            enrollment: EnrollmentId([1; 32]),
        }),
    )
    .unwrap();
    last.version = u64::MAX;
    let enable = entry(EntryBody::Enable {
        time: 2,
        identity: "bob@example.com".into(),
        admin: "admin".into(),
    });
    assert!(VersionRecord::next(Some(&last), &enable).is_err());

    // The same for a map leaf at the last version: no update follows it.
    let label = Label([9; 32]);
    let map = Map::from_sorted([Leaf {
        label,
        value: LeafValue {
            version: u64::MAX,
            head: [1; 32],
        },
    }])
    .unwrap();
    let mut batch = kt_protocol::directory::batch::Batch::new();
    assert_eq!(batch.next_version(&map, &label), u64::MAX);
    for version in [0, 1, u64::MAX] {
        assert_eq!(
            batch.push(&map, &label, version, &[0; 32]),
            Err(MapViolation::LastVersion { label })
        );
    }
}
