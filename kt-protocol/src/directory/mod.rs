//! The directory: a private, verifiable map from each identity to its complete current state,
//! committed in the log (docs/architecture.md "The directory" specifies it in full).
//!
//! - [`vrf`]: an identity's **label** is its RFC 9381 VRF output (ECVRF-EDWARDS25519-SHA512-TAI,
//!   truncated to 32 bytes) under the AS's VRF key: only the AS can compute it, anyone can
//!   check it with the proof, and the log never shows the identity.
//! - [`record`]: the **version record**, the identity's complete state after one change (its
//!   status and every current credential), and the one rule that makes each record from the
//!   previous one.
//! - [`hash`]: every hash: the **commitment** that hides a record in the log, the **chain**
//!   that links all versions of a label, and the map's leaf and inner nodes.
//! - [`tree`] and [`proof`]: the **map**, a binary prefix tree over labels whose leaf for a
//!   label holds its latest version and chain head, and the proof that shows a label's leaf or
//!   its absence.
//! - [`public_entry`]: what the log holds: one **update** per change (label, version,
//!   commitment, the change sealed to the AS) and a **map** entry with the root at the end of
//!   every batch.
//! - [`batch`]: the **public rules** (versions go up by one, chains only grow, every map entry
//!   is the map its updates make), for the AS and for anyone auditing the log.
//!
//! What a verified lookup means: the checkpoint's last entry is a map entry; the label is the
//! identity's; the map proof shows its leaf (version `v`, head `h`) under that root, or its
//! absence; `h` is the chain of the record shown over the previous head. So the record is the
//! identity's complete state as of that checkpoint, or the identity has none.

pub mod batch;
pub mod hash;
pub mod proof;
pub mod public_entry;
pub mod record;
pub mod tree;
pub mod vrf;
