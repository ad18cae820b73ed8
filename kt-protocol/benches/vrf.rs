//! The VRF verification a client makes per lookup: this crate's variable-time RFC 9381 verify
//! beside akd_core's (what it replaced), on the same proofs, in one run.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use akd_core::ecvrf::{Proof, VRFPrivateKey, VRFPublicKey};
use criterion::{criterion_group, criterion_main, Criterion};
use kt_protocol::directory::vrf::{prove_raw, verify_raw, VrfPublicKey, VrfSecretKey};

fn vrf(c: &mut Criterion) {
    let seed = [7u8; 32];
    let alpha = b"kt-as directory label v1\0alice@example.com";
    let proof = prove_raw(seed, alpha);
    let secret = VrfSecretKey::from_seed(seed);
    let ours: VrfPublicKey = secret.public_key().clone();
    let akd = VRFPublicKey::from(&VRFPrivateKey::try_from(&seed[..]).unwrap());
    let decoded = Proof::try_from(&proof[..]).unwrap();
    assert!(verify_raw(&ours, alpha, &proof).is_some());
    assert!(akd.verify(&decoded, alpha).is_ok());

    let mut group = c.benchmark_group("vrf verify");
    group.bench_function("kt-protocol (variable time)", |b| {
        b.iter(|| verify_raw(&ours, alpha, &proof).unwrap())
    });
    group.bench_function("akd_core", |b| {
        b.iter(|| {
            let decoded = Proof::try_from(&proof[..]).unwrap();
            akd.verify(&decoded, alpha).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, vrf);
criterion_main!(benches);
