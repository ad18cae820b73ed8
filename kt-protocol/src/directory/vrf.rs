//! Labels: where an identity sits in the directory's map, from a VRF (RFC 9381,
//! ECVRF-EDWARDS25519-SHA512-TAI), so that only the AS can compute them and anyone holding
//! its VRF public key can check one.
//!
//! The VRF input (RFC 9381 `alpha`) is `"kt-as directory label v1" ‖ 0x00 ‖ identity`, and the
//! label is the first 32 bytes of the VRF output (`beta`, 64 bytes), as AKD and keytrans
//! truncate it. Prove and verify are akd_core's (the Diem implementation, with RFC 9381's test
//! vectors); on top of it this module adds the two things its API does not expose or check:
//! `ECVRF_proof_to_hash` (§5.2: `beta = SHA-512(0x03 ‖ 0x03 ‖ cofactor·Γ ‖ 0x00)`), and the
//! strict decoding of §5.4.4 (`Γ` a canonical point encoding, `s < q`), so that one label has
//! exactly one valid proof encoding per proof and a flipped byte never verifies.
//!
//! Guarantee of [`VrfPublicKey::verify`]: it returns a label only if the proof is a valid
//! RFC 9381 proof by the key for that identity's input; the label is then the one the holder
//! of the secret key computes for it, and no other identity's.

use akd_core::ecvrf::{Proof, VRFExpandedPrivateKey, VRFPrivateKey, VRFPublicKey};
use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
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
        let public = VrfPublicKey {
            bytes: key.to_bytes(),
            key,
        };
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
        Ok(VrfPublicKey { key, bytes })
    }

    /// The 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.bytes
    }

    /// The label of `identity` if `proof` proves it (see the module doc).
    pub fn verify(&self, identity: &str, proof: &[u8]) -> Result<Label, VrfError> {
        let label = proof_to_label(proof).ok_or(VrfError::MalformedProof)?;
        let decoded = Proof::try_from(proof).map_err(|_| VrfError::MalformedProof)?;
        self.key
            .verify(&decoded, &alpha(identity))
            .map_err(|_| VrfError::Invalid)?;
        Ok(label)
    }
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
    let gamma_bytes: [u8; 32] = proof[..32].try_into().ok()?;
    let gamma = CompressedEdwardsY(gamma_bytes).decompress()?;
    if gamma.compress().to_bytes() != gamma_bytes {
        return None;
    }
    let s: [u8; 32] = proof[48..].try_into().ok()?;
    if bool::from(Scalar::from_canonical_bytes(s).is_none()) {
        return None;
    }
    // suite_string 0x03 (ECVRF-EDWARDS25519-SHA512-TAI), proof_to_hash_domain_separator_front
    // 0x03, then the point cofactor·Γ, then the back separator 0x00.
    let digest = Sha512::new()
        .chain_update([0x03, 0x03])
        .chain_update(gamma.mul_by_cofactor().compress().as_bytes())
        .chain_update([0x00])
        .finalize();
    let mut beta = [0u8; 64];
    beta.copy_from_slice(&digest);
    Some(beta)
}

/// RFC 9381 `ECVRF_prove` over a raw `alpha` (for the RFC's test vectors).
pub fn prove_raw(seed: [u8; 32], alpha: &[u8]) -> [u8; PROOF_LEN] {
    let key = VrfSecretKey::from_seed(seed);
    key.expanded.prove(&key.public.key, alpha).to_bytes()
}

/// RFC 9381 `ECVRF_verify` over a raw `alpha` (for the RFC's test vectors): `beta` if valid.
pub fn verify_raw(public_key: &VrfPublicKey, alpha: &[u8], proof: &[u8]) -> Option<[u8; 64]> {
    let beta = proof_to_hash(proof)?;
    let decoded = Proof::try_from(proof).ok()?;
    public_key.key.verify(&decoded, alpha).ok()?;
    Some(beta)
}
