//! kt_protocol::directory::proof::MapProof: the decoding of a map proof from an answer, and
//! what a verifier computes from it. The first byte picks what the rest is (`mode % 3`):
//! 0. a proof's bytes, given to `MapProof::decode`; a decoded proof is folded with
//!    `root_with` and `root_without` for labels the harness derives from it (the all-zero
//!    label, the terminal's other label itself, and that label with the bit at the path's
//!    end flipped, so on the path);
//! 1. `label (32) ‖ u64be(version) ‖ head (32) ‖ proof bytes`: the same with that label
//!    and leaf value;
//! 2. a label (32 bytes, zero-padded) and a u16: the proof of that label in a fixed map of
//!    some 130 labels that share long prefixes (built once, in two batches with `Map::stage` and
//!    `commit`, and checked against an independent statement of the root,
//!    `kt_fuzz::reference_root`, and against `Map::from_sorted`), and that proof with the
//!    u16-th bit flipped.
//!
//! Properties: never panics; `decode(b)` succeeding means `encode(decode(b)) == b` (the module's
//! one encoding per proof); `root_with` refuses a proof of absence and `root_without` one of
//! membership, and both refuse the impossible shapes the module names (last sibling empty,
//! the other leaf the asked label); the map's root is the reference root; the map's proof of
//! any label round-trips and leads to the map's root with the label's value (or its
//! absence); and that proof with one bit flipped never leads to that root.
#![no_main]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use kt_fuzz::{reference_root, split_mode};
use kt_protocol::directory::hash::{LeafValue, EMPTY};
use kt_protocol::directory::proof::{MapProof, MapProofError, Terminal, MAX_DEPTH};
use kt_protocol::directory::tree::{Leaf, Map};
use kt_protocol::directory::vrf::Label;
use libfuzzer_sys::fuzz_target;

/// `decode`, and the round trip the module promises.
fn decode(bytes: &[u8]) -> Option<MapProof> {
    let proof = MapProof::decode(bytes).ok()?;
    assert!(proof.siblings.len() <= MAX_DEPTH);
    let encoded = proof.encode();
    assert_eq!(encoded, bytes, "decode accepted a non-canonical encoding");
    assert_eq!(MapProof::decode(&encoded).as_ref(), Ok(&proof));
    Some(proof)
}

/// Folds `proof` for `label` both ways; checks the refusals the module documents.
fn fold(proof: &MapProof, label: &Label, value: &LeafValue) {
    let with = proof.root_with(label, value);
    let without = proof.root_without(label);
    let last_empty = proof.siblings.last() == Some(&EMPTY);
    match &proof.terminal {
        Terminal::Asked => {
            assert!(matches!(without, Err(MapProofError::WrongKind { .. })));
            if value.version == 0 || last_empty {
                assert!(
                    matches!(with, Err(MapProofError::Impossible(_))),
                    "{with:?}"
                );
            } else {
                assert!(with.is_ok(), "{with:?}");
            }
        }
        Terminal::Empty | Terminal::Other { .. } => {
            assert!(matches!(with, Err(MapProofError::WrongKind { .. })));
            if last_empty {
                assert!(without.is_err());
            }
            if let Terminal::Other { label: other, .. } = &proof.terminal {
                if other == label {
                    assert!(matches!(without, Err(MapProofError::Impossible(_))));
                }
            }
        }
    }
}

/// Mode 0: labels derived from the proof.
fn derived(proof: &MapProof) {
    let value = LeafValue {
        version: 1,
        head: [0x5a; 32],
    };
    fold(proof, &Label([0; 32]), &value);
    if let Terminal::Other { label, value } = &proof.terminal {
        fold(proof, label, value);
        let depth = proof.siblings.len();
        if depth < MAX_DEPTH {
            let mut near = *label;
            near.0[depth / 8] ^= 0x80 >> (depth % 8);
            fold(proof, &near, value);
        }
    }
}

/// The map of mode 2 and its leaves: labels of zeros but one byte (so that they share long
/// prefixes, in one bucket and across buckets), pairs that differ in their last bit, and
/// labels of ones; built once (a map costs milliseconds: 2^16 buckets) in two batches, and
/// checked against the reference root and `Map::from_sorted`.
static MAP: LazyLock<(Map, BTreeMap<Label, LeafValue>)> = LazyLock::new(|| {
    let mut model = BTreeMap::new();
    for i in 0..64u8 {
        let mut label = [0u8; 32];
        label[usize::from(i % 32)] = 1 << ((i / 32) * 3);
        model.insert(
            Label(label),
            LeafValue {
                version: 1 + u64::from(i % 3),
                head: [i; 32],
            },
        );
        label[31] ^= 1;
        model.insert(
            Label(label),
            LeafValue {
                version: 1,
                head: [!i; 32],
            },
        );
    }
    let mut ones = [0xffu8; 32];
    model.insert(
        Label(ones),
        LeafValue {
            version: 7,
            head: [7; 32],
        },
    );
    ones[16] = 0x7f;
    model.insert(
        Label(ones),
        LeafValue {
            version: 1,
            head: [8; 32],
        },
    );
    let changes: Vec<_> = model.iter().map(|(l, v)| (*l, *v)).collect();
    let mut map = Map::new();
    let (first, second) = changes.split_at(changes.len() / 2);
    for batch in [first, second] {
        let staged = map.stage(batch);
        let (root, len) = (staged.root(), staged.len());
        map.commit(staged);
        assert_eq!((map.root(), map.len()), (root, len));
    }
    assert_eq!(
        map.root(),
        reference_root(&model),
        "the map's root is not the reference root"
    );
    assert_eq!(map.len(), model.len() as u64);
    let sorted = Map::from_sorted(model.iter().map(|(label, value)| Leaf {
        label: *label,
        value: *value,
    }))
    .expect("sorted distinct leaves of versions from 1");
    assert_eq!(
        sorted.root(),
        map.root(),
        "from_sorted's root is not the reference root"
    );
    (map, model)
});

/// Mode 2: the fixed map's proof of a fuzzed label, and of it with one bit flipped.
fn map(data: &[u8]) {
    let (map, model) = &*MAP;
    let root = map.root();
    let mut label = [0u8; 32];
    let n = data.len().min(32);
    label[..n].copy_from_slice(&data[..n]);
    let label = Label(label);
    let rest = [&data[n..], &[0, 0]].concat();
    let flip = usize::from(u16::from_be_bytes([rest[0], rest[1]]));

    let (proof, value) = map.prove(&label);
    assert_eq!(value, model.get(&label).copied());
    let encoded = proof.encode();
    assert_eq!(decode(&encoded).as_ref(), Some(&proof));
    let leads = |proof: &MapProof| match value {
        Some(value) => proof.root_with(&label, &value) == Ok(root),
        None => proof.root_without(&label) == Ok(root),
    };
    assert!(
        leads(&proof),
        "the map's own proof does not lead to its root"
    );
    assert_eq!(proof.is_membership(), value.is_some());
    derived(&proof);
    // One bit flipped: refused, or another root.
    let mut flipped = encoded;
    let bit = flip % (8 * flipped.len());
    flipped[bit / 8] ^= 0x80 >> (bit % 8);
    if let Some(mutated) = decode(&flipped) {
        let other = LeafValue {
            version: 1,
            head: EMPTY,
        };
        assert!(
            !leads(&mutated),
            "a proof with bit {bit} flipped leads to the root"
        );
        assert_ne!(mutated.root_with(&label, &value.unwrap_or(other)), Ok(root));
        assert_ne!(mutated.root_without(&label), Ok(root));
        derived(&mutated);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = split_mode(data) else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Some(proof) = decode(rest) {
                derived(&proof);
            }
        }
        1 => {
            if rest.len() < 72 {
                return;
            }
            let (header, bytes) = rest.split_at(72);
            let label = Label(header[..32].try_into().expect("32 bytes"));
            let value = LeafValue {
                version: u64::from_be_bytes(header[32..40].try_into().expect("8 bytes")),
                head: header[40..72].try_into().expect("32 bytes"),
            };
            if let Some(proof) = decode(bytes) {
                fold(&proof, &label, &value);
                derived(&proof);
            }
        }
        _ => map(rest),
    }
});
