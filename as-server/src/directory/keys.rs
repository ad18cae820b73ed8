//! The directory's secret and what it derives: the VRF key of labels, the openings of
//! commitments, and the key that seals each change to the AS in the log.
//!
//! One 32-byte secret, created at first start in `directory-key` (mode 0600, base64), whose
//! VRF public key is written to `vrf-key.pub` (base64) and served at `/v1/log/key`. From it,
//! by HMAC-SHA256 with distinct labels: the VRF seed (`"kt-as directory vrf key v1"`), the
//! opening key (`"… opening key v1"`) and the sealing key (`"… seal key v1"`).
//!
//! Guarantees: an opening is `HMAC(opening key, label ‖ u64be(version))`, unpredictable without
//! the secret (so a commitment hides its record) and the same at every rebuild (so nothing
//! but the log and this file is needed to answer for any version). A sealed change is
//! XChaCha20-Poly1305 with a fresh random 24-byte nonce over `u32be(len) ‖ VRF proof ‖ entry ‖
//! zero padding to a multiple of 64 bytes`, with `label ‖ u64be(version)` as associated data:
//! only the AS can read it, a sealed change moved to another place does not open, and its
//! length says little more than the number of 64-byte blocks. The secret is never logged.

use std::path::Path;
use std::sync::Arc;

use chacha20poly1305::aead::{Aead, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, KeyInit, Mac};
use kt_protocol::directory::hash::Hash32;
use kt_protocol::directory::public_entry::{PublicEntry, Update};
use kt_protocol::directory::vrf::{Label, VrfSecretKey, PROOF_LEN};
use sha2::Sha256;

use crate::encoding::{b64, from_b64};
use crate::secret_file::write_atomic;

/// The file of the secret, and of the VRF public key, in the data folder.
pub const SECRET_FILE: &str = "directory-key";
/// The VRF public key's file.
pub const PUBLIC_FILE: &str = "vrf-key.pub";

const NONCE_LEN: usize = 24;
const PAD: usize = 64;

/// The directory's keys; see the module documentation. A clone shares them (one copy of the
/// secret's keys in memory).
#[derive(Clone)]
pub struct DirectoryKeys {
    keys: Arc<Keys>,
}

struct Keys {
    vrf: VrfSecretKey,
    opening_key: [u8; 32],
    seal: XChaCha20Poly1305,
}

/// A sealed change, opened.
#[derive(Debug, PartialEq, Eq)]
pub struct Unsealed {
    /// The VRF proof of the change's label.
    pub vrf_proof: [u8; PROOF_LEN],
    /// The change's entry bytes (`kt_protocol::entry`).
    pub entry: Vec<u8>,
}

fn derive(secret: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(label);
    mac.finalize().into_bytes().into()
}

impl DirectoryKeys {
    /// The keys of `secret`.
    pub fn from_secret(secret: &[u8; 32]) -> DirectoryKeys {
        let seal_key = derive(secret, b"kt-as directory seal key v1");
        DirectoryKeys {
            keys: Arc::new(Keys {
                vrf: VrfSecretKey::from_seed(derive(secret, b"kt-as directory vrf key v1")),
                opening_key: derive(secret, b"kt-as directory opening key v1"),
                seal: XChaCha20Poly1305::new((&seal_key).into()),
            }),
        }
    }

    /// Loads the secret from `data`, or creates it (and the public key's file) at first start.
    pub fn load_or_create(data: &Path) -> Result<DirectoryKeys, String> {
        let path = data.join(SECRET_FILE);
        let secret: [u8; 32] = if path.exists() {
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            from_b64(text.trim())
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| format!("{}: not 32 bytes of base64", path.display()))?
        } else {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).map_err(|e| format!("randomness: {e}"))?;
            write_atomic(&path, format!("{}\n", b64(&secret)).as_bytes(), true)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            secret
        };
        let keys = DirectoryKeys::from_secret(&secret);
        let public = data.join(PUBLIC_FILE);
        let text = format!("{}\n", keys.vrf_public_b64());
        if std::fs::read_to_string(&public).ok().as_deref() != Some(text.as_str()) {
            write_atomic(&public, text.as_bytes(), false)
                .map_err(|e| format!("{}: {e}", public.display()))?;
        }
        Ok(keys)
    }

    /// The VRF key.
    pub fn vrf(&self) -> &VrfSecretKey {
        &self.keys.vrf
    }

    /// The VRF public key, base64.
    pub fn vrf_public_b64(&self) -> String {
        b64(&self.keys.vrf.public_key().to_bytes())
    }

    /// The opening of the commitment to `version` of `label`.
    pub fn opening(&self, label: &Label, version: u64) -> Hash32 {
        let mut input = [0u8; 40];
        input[..32].copy_from_slice(&label.0);
        input[32..].copy_from_slice(&version.to_be_bytes());
        derive(&self.keys.opening_key, &input)
    }

    /// Seals a change (see the module documentation).
    pub fn seal(
        &self,
        label: &Label,
        version: u64,
        vrf_proof: &[u8; PROOF_LEN],
        entry: &[u8],
    ) -> Result<Vec<u8>, String> {
        let mut plain = Vec::with_capacity(4 + PROOF_LEN + entry.len() + PAD);
        plain.extend_from_slice(&(entry.len() as u32).to_be_bytes());
        plain.extend_from_slice(vrf_proof);
        plain.extend_from_slice(entry);
        plain.resize(plain.len().div_ceil(PAD) * PAD, 0);
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| format!("randomness: {e}"))?;
        let aad = place(label, version);
        let sealed = self
            .keys
            .seal
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &aad,
                },
            )
            .map_err(|_| "sealing failed".to_owned())?;
        Ok([&nonce[..], &sealed].concat())
    }

    /// The log's update entry for version `version` of `label` with `commitment`, sealing the
    /// change `entry` (its bytes) and the label's VRF proof.
    pub fn update_entry(
        &self,
        label: &Label,
        version: u64,
        commitment: &Hash32,
        vrf_proof: &[u8; PROOF_LEN],
        entry: &[u8],
    ) -> Result<Vec<u8>, String> {
        Ok(PublicEntry::Update(Update {
            label: *label,
            version,
            commitment: *commitment,
            sealed: self.seal(label, version, vrf_proof, entry)?,
        })
        .to_bytes())
    }

    /// Opens a change sealed at `version` of `label`; `None` if it was not sealed there by
    /// this key, or is malformed.
    pub fn unseal(&self, label: &Label, version: u64, sealed: &[u8]) -> Option<Unsealed> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let aad = place(label, version);
        let plain = self
            .keys
            .seal
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .ok()?;
        let len = usize::try_from(u32::from_be_bytes(plain.get(..4)?.try_into().ok()?)).ok()?;
        let vrf_proof: [u8; PROOF_LEN] = plain.get(4..4 + PROOF_LEN)?.try_into().ok()?;
        let entry = plain.get(4 + PROOF_LEN..4 + PROOF_LEN + len)?.to_vec();
        Some(Unsealed { vrf_proof, entry })
    }
}

/// The associated data of a sealed change: its label and version.
fn place(label: &Label, version: u64) -> [u8; 40] {
    let mut aad = [0u8; 40];
    aad[..32].copy_from_slice(&label.0);
    aad[32..].copy_from_slice(&version.to_be_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secret_is_created_0600_once_and_its_keys_are_stable() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirectoryKeys::load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = DirectoryKeys::load_or_create(dir.path()).unwrap();
        assert_eq!(first.vrf_public_b64(), again.vrf_public_b64());
        let public = std::fs::read_to_string(dir.path().join(PUBLIC_FILE)).unwrap();
        assert_eq!(public.trim(), first.vrf_public_b64());
        let label = Label([1; 32]);
        assert_eq!(first.opening(&label, 3), again.opening(&label, 3));
        assert_ne!(first.opening(&label, 3), first.opening(&label, 4));
    }

    #[test]
    fn a_sealed_change_opens_only_in_its_place_and_untouched() {
        let keys = DirectoryKeys::from_secret(&[5; 32]);
        let label = Label([2; 32]);
        let proof = [9u8; PROOF_LEN];
        let sealed = keys.seal(&label, 1, &proof, b"{\"v\":1}").unwrap();
        assert_eq!(sealed.len() % PAD, (NONCE_LEN + 16) % PAD);
        let opened = keys.unseal(&label, 1, &sealed).unwrap();
        assert_eq!(opened.vrf_proof, proof);
        assert_eq!(opened.entry, b"{\"v\":1}");
        assert!(keys.unseal(&label, 2, &sealed).is_none());
        assert!(keys.unseal(&Label([3; 32]), 1, &sealed).is_none());
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert!(keys.unseal(&label, 1, &flipped).is_none());
        assert!(DirectoryKeys::from_secret(&[6; 32])
            .unseal(&label, 1, &sealed)
            .is_none());
        // Two seals of one change differ (fresh nonces).
        assert_ne!(
            keys.seal(&label, 1, &proof, b"x").unwrap(),
            keys.seal(&label, 1, &proof, b"x").unwrap()
        );
    }
}
