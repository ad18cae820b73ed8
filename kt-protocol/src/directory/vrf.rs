//! Labels: where an identity sits in the directory's map, from a VRF (RFC 9381,
//! ECVRF-EDWARDS25519-SHA512-TAI), so that only the AS can compute them and anyone holding
//! its VRF public key can check one.
//!
//! The VRF input (RFC 9381 `alpha`) is `"kt-as directory label v1" ‖ 0x00 ‖ identity`, and the
//! label is the first 32 bytes of the VRF output (`beta`, 64 bytes), as AKD and keytrans
//! truncate it. Proving (which handles the secret key) is akd_core's (the Diem implementation,
//! with RFC 9381's test vectors). Verification, which handles only public values, is written
//! here from RFC 9381 §5.3 in variable time: akd_core's makes four constant-time scalar
//! multiplications and decompresses the key every time, this one two multi-scalar
//! multiplications over a key decoded once, about half the time a client spends on a lookup.
//! Its tests check it against the RFC's vectors and against akd_core's verification on random
//! and tampered proofs. On top of akd_core this module also adds what its API does not expose
//! or check: `ECVRF_proof_to_hash` (§5.2: `beta = SHA-512(0x03 ‖ 0x03 ‖ cofactor·Γ ‖ 0x00)`),
//! and the strict decoding of §5.4.4 (`Γ` a canonical point encoding, `s < q`), so that one
//! label has exactly one valid proof encoding per proof and a flipped byte never verifies.
//!
//! Guarantee of [`VrfPublicKey::verify`]: it returns a label only if the proof is a valid
//! RFC 9381 proof by the key for that identity's input; the label is then the one the holder
//! of the secret key computes for it, and no other identity's.

use akd_core::ecvrf::{VRFExpandedPrivateKey, VRFPrivateKey, VRFPublicKey};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use sha2::{Digest, Sha512};
use thiserror::Error;

/// Length of a VRF proof (RFC 9381: Γ 32, c 16, s 32).
pub const PROOF_LEN: usize = 80;
/// Length of a label.
pub const LABEL_LEN: usize = 32;
/// The domain of the VRF input.
const LABEL_DOMAIN: &[u8] = b"kt-as directory label v1\0";

/// An identity's place in the map: the first 32 bytes of its VRF output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label(pub [u8; LABEL_LEN]);

impl Label {
    /// Bit `i` (0 = the most significant bit of the first byte): the branch taken at depth
    /// `i` of the map.
    pub fn bit(&self, i: usize) -> bool {
        (self.0[i / 8] >> (7 - i % 8)) & 1 == 1
    }
}

/// Why a VRF key or proof was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum VrfError {
    /// Not a 32-byte encoding of a point of large order.
    #[error("not a VRF public key")]
    BadPublicKey,
    /// Not 80 bytes, Γ not a canonical point encoding, or s not below the group order.
    #[error("malformed VRF proof")]
    MalformedProof,
    /// Well-formed, but not a proof by this key for this identity.
    #[error("the VRF proof does not verify for this identity")]
    Invalid,
}

/// The AS's VRF secret key: 32 bytes, as an Ed25519 seed (RFC 9381 §5.1 uses RFC 8032's key
/// expansion). Holds the expanded key so that proving does not re-hash the seed.
pub struct VrfSecretKey {
    expanded: VRFExpandedPrivateKey,
    public: VrfPublicKey,
}

impl VrfSecretKey {
    /// The key of a 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> VrfSecretKey {
        // A 32-byte slice always converts.
        let seed = VRFPrivateKey::try_from(&seed[..]).unwrap_or_else(|_| unreachable!());
        let expanded = VRFExpandedPrivateKey::from(&seed);
        let key = VRFPublicKey::from(&seed);
        let bytes = key.to_bytes();
        // The key of a seed is a point of large order: it decodes.
        let point = decode_point(&bytes).unwrap_or_else(|| unreachable!());
        let public = VrfPublicKey { bytes, key, point };
        VrfSecretKey { expanded, public }
    }

    /// The public key that verifies this key's proofs.
    pub fn public_key(&self) -> &VrfPublicKey {
        &self.public
    }

    /// The label of `identity` and its proof.
    pub fn prove(&self, identity: &str) -> (Label, [u8; PROOF_LEN]) {
        let proof = self
            .expanded
            .prove(&self.public.key, &alpha(identity))
            .to_bytes();
        // A proof this key made always decodes.
        let label = proof_to_label(&proof).unwrap_or_else(|| unreachable!());
        (label, proof)
    }
}

/// A VRF public key, checked to be a point of large order.
#[derive(Clone)]
pub struct VrfPublicKey {
    key: VRFPublicKey,
    bytes: [u8; 32],
    /// The point `Y`, decoded once.
    point: EdwardsPoint,
}

impl std::fmt::Debug for VrfPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VrfPublicKey({})", crate::entry::encode_hex(&self.bytes))
    }
}

impl PartialEq for VrfPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for VrfPublicKey {}

impl VrfPublicKey {
    /// Parses 32 bytes: refused unless a point of large order.
    pub fn from_bytes(bytes: &[u8]) -> Result<VrfPublicKey, VrfError> {
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| VrfError::BadPublicKey)?;
        let key = VRFPublicKey::try_from(&bytes[..]).map_err(|_| VrfError::BadPublicKey)?;
        let point = decode_point(&bytes).ok_or(VrfError::BadPublicKey)?;
        Ok(VrfPublicKey { key, bytes, point })
    }

    /// The 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.bytes
    }

    /// The label of `identity` if `proof` proves it (see the module doc).
    pub fn verify(&self, identity: &str, proof: &[u8]) -> Result<Label, VrfError> {
        let beta = self.verify_alpha(&alpha(identity), proof)?;
        let mut label = [0u8; LABEL_LEN];
        label.copy_from_slice(&beta[..LABEL_LEN]);
        Ok(Label(label))
    }

    /// RFC 9381 §5.3 `ECVRF_verify` of `proof` for `alpha`: `beta` if valid. Variable time:
    /// every input is public.
    fn verify_alpha(&self, alpha: &[u8], proof: &[u8]) -> Result<[u8; 64], VrfError> {
        // §5.4.4 ECVRF_decode_proof, strictly: Γ a canonical encoding, c 16 bytes, s < q.
        let proof: &[u8; PROOF_LEN] = proof.try_into().map_err(|_| VrfError::MalformedProof)?;
        let (gamma_bytes, rest) = proof.split_at(32);
        let (c_bytes, s_bytes) = rest.split_at(16);
        let gamma = decode_point(gamma_bytes).ok_or(VrfError::MalformedProof)?;
        let s: [u8; 32] = s_bytes.try_into().map_err(|_| VrfError::MalformedProof)?;
        let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s))
            .ok_or(VrfError::MalformedProof)?;
        let mut c = [0u8; 32];
        c[..16].copy_from_slice(c_bytes);
        let c = Scalar::from_bytes_mod_order(c);
        // Steps 4-8: H, U = s·B − c·Y, V = s·H − c·Γ, and the challenge of the five points.
        let h = self.encode_to_curve(alpha).ok_or(VrfError::Invalid)?;
        let u = EdwardsPoint::vartime_double_scalar_mul_basepoint(&(-c), &self.point, &s);
        let v = EdwardsPoint::vartime_multiscalar_mul([s, -c], [h, gamma]);
        let challenge = Sha512::new()
            .chain_update([SUITE, 0x02])
            .chain_update(self.bytes)
            .chain_update(h.compress().as_bytes())
            .chain_update(gamma_bytes)
            .chain_update(u.compress().as_bytes())
            .chain_update(v.compress().as_bytes())
            .chain_update([0x00])
            .finalize();
        if challenge[..16] != *c_bytes {
            return Err(VrfError::Invalid);
        }
        Ok(beta_of(&gamma))
    }

    /// RFC 9381 §5.4.1.1 `ECVRF_encode_to_curve_try_and_increment` with the public key as
    /// salt: the first counter whose hash decodes (RFC 8032 §5.1.3, strictly) to a point that
    /// is not the identity once multiplied by the cofactor. `None` after 256 failures (with
    /// probability about 2^-256).
    fn encode_to_curve(&self, alpha: &[u8]) -> Option<EdwardsPoint> {
        (0..=u8::MAX).find_map(|counter| {
            let hash = Sha512::new()
                .chain_update([SUITE, 0x01])
                .chain_update(self.bytes)
                .chain_update(alpha)
                .chain_update([counter, 0x00])
                .finalize();
            let point = decode_point(&hash[..32])?.mul_by_cofactor();
            (!point.is_identity()).then_some(point)
        })
    }
}

/// RFC 9381's suite string of ECVRF-EDWARDS25519-SHA512-TAI.
const SUITE: u8 = 0x03;

/// RFC 8032 §5.1.3 decoding, strictly: refused unless `bytes` are the canonical encoding of
/// the point (y < p, and not "x = 0 with the sign bit set"), which is exactly when decoding
/// then encoding gives the bytes back.
fn decode_point(bytes: &[u8]) -> Option<EdwardsPoint> {
    let bytes: [u8; 32] = bytes.try_into().ok()?;
    let point = CompressedEdwardsY(bytes).decompress()?;
    (point.compress().to_bytes() == bytes).then_some(point)
}

/// The VRF input of `identity`.
fn alpha(identity: &str) -> Vec<u8> {
    let mut alpha = Vec::with_capacity(LABEL_DOMAIN.len() + identity.len());
    alpha.extend_from_slice(LABEL_DOMAIN);
    alpha.extend_from_slice(identity.as_bytes());
    alpha
}

/// RFC 9381 §5.2 `ECVRF_proof_to_hash` after §5.4.4's strict decoding, truncated to a label;
/// `None` if the proof is malformed.
fn proof_to_label(proof: &[u8]) -> Option<Label> {
    let beta = proof_to_hash(proof)?;
    let mut label = [0u8; LABEL_LEN];
    label.copy_from_slice(&beta[..LABEL_LEN]);
    Some(Label(label))
}

/// RFC 9381 §5.2 `ECVRF_proof_to_hash` (`beta`, 64 bytes) of a strictly decoded proof.
pub fn proof_to_hash(proof: &[u8]) -> Option<[u8; 64]> {
    if proof.len() != PROOF_LEN {
        return None;
    }
    let gamma = decode_point(&proof[..32])?;
    let s: [u8; 32] = proof[48..].try_into().ok()?;
    if bool::from(Scalar::from_canonical_bytes(s).is_none()) {
        return None;
    }
    Some(beta_of(&gamma))
}

/// §5.2's hash of `Γ`: suite_string 0x03, proof_to_hash_domain_separator_front 0x03, the point
/// cofactor·Γ, then the back separator 0x00.
fn beta_of(gamma: &EdwardsPoint) -> [u8; 64] {
    let digest = Sha512::new()
        .chain_update([SUITE, 0x03])
        .chain_update(gamma.mul_by_cofactor().compress().as_bytes())
        .chain_update([0x00])
        .finalize();
    let mut beta = [0u8; 64];
    beta.copy_from_slice(&digest);
    beta
}

/// RFC 9381 `ECVRF_prove` over a raw `alpha` (for the RFC's test vectors).
pub fn prove_raw(seed: [u8; 32], alpha: &[u8]) -> [u8; PROOF_LEN] {
    let key = VrfSecretKey::from_seed(seed);
    key.expanded.prove(&key.public.key, alpha).to_bytes()
}

/// RFC 9381 `ECVRF_verify` over a raw `alpha` (for the RFC's test vectors): `beta` if valid.
pub fn verify_raw(public_key: &VrfPublicKey, alpha: &[u8], proof: &[u8]) -> Option<[u8; 64]> {
    public_key.verify_alpha(alpha, proof).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use akd_core::ecvrf::Proof;

    /// What verification was before this module's own: the strict decoding, then akd_core's
    /// `verify`.
    fn akd_verify(key: &VrfPublicKey, alpha: &[u8], proof: &[u8]) -> Option<[u8; 64]> {
        let beta = proof_to_hash(proof)?;
        let decoded = Proof::try_from(proof).ok()?;
        key.key.verify(&decoded, alpha).ok()?;
        Some(beta)
    }

    #[test]
    fn verification_agrees_with_akd_core_on_valid_and_tampered_proofs() {
        for n in 0u8..4 {
            let seed: [u8; 32] = Sha512::digest([n]).as_slice()[..32].try_into().unwrap();
            let key = VrfSecretKey::from_seed(seed);
            let other = VrfSecretKey::from_seed([n ^ 0xff; 32]);
            let alpha = format!("identity {n}").into_bytes();
            let proof = prove_raw(seed, &alpha);
            let expected = akd_verify(key.public_key(), &alpha, &proof);
            assert!(expected.is_some());
            assert_eq!(verify_raw(key.public_key(), &alpha, &proof), expected);
            // Another input, another key: both refuse.
            assert_eq!(verify_raw(key.public_key(), b"other", &proof), None);
            assert_eq!(akd_verify(key.public_key(), b"other", &proof), None);
            assert_eq!(verify_raw(other.public_key(), &alpha, &proof), None);
            // Bytes flipped in Γ, c and s (every one for the first key): the two agree, and
            // none verifies.
            for at in (0..PROOF_LEN).filter(|at| n == 0 || at % 9 == usize::from(n)) {
                let mut tampered = proof;
                tampered[at] ^= 1 << (at % 8);
                let ours = verify_raw(key.public_key(), &alpha, &tampered);
                assert_eq!(
                    ours,
                    akd_verify(key.public_key(), &alpha, &tampered),
                    "byte {at}"
                );
                assert_eq!(ours, None, "byte {at}");
            }
        }
    }

    #[test]
    fn non_canonical_point_encodings_are_refused() {
        // y = p (not reduced) encodes the same point as y = 0 would: refused.
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert!(decode_point(&p).is_none());
        // The identity (y = 1) with the sign bit set (x = 0, x_0 = 1): refused.
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(decode_point(&one).is_some());
        one[31] |= 0x80;
        assert!(decode_point(&one).is_none());
    }
}
