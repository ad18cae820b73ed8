//! `kt-log`: an RFC 9162 Merkle transparency log.
//!
//! The crate has two halves.
//!
//! **Verification (always built, pure: no I/O, no storage, no async).** What an auditor needs
//! and can read in one sitting:
//! - [`hash`]: RFC 9162 §2.1 leaf and node hashing;
//! - [`tree`]: tree geometry, the append frontier, and proof generation over any node source;
//! - [`verify`]: inclusion and consistency proof verification with typed errors;
//! - [`note`]: C2SP signed notes with Ed25519 keys;
//! - [`checkpoint`]: C2SP tlog-checkpoint bodies, signing and verification;
//! - [`cosignature`]: C2SP tlog-cosignature v1 Ed25519 cosignatures (witnesses' signatures
//!   on checkpoints), signing and verification;
//! - [`tiles`]: C2SP tlog-tiles paths, entry bundles and hash tiles;
//! - [`witness_request`]: C2SP tlog-witness add-checkpoint bodies, written and parsed.
//!
//! **Storage (feature `storage`, on by default).** The durable log the server runs:
//! - [`store`]: the storage contract and its implementations (files + sled, sled, memory);
//! - [`log`]: appending batches, signing checkpoints, serving proofs and tiles.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod checkpoint;
pub mod cosignature;
pub mod hash;
pub mod note;
pub mod tiles;
pub mod tree;
pub mod verify;
pub mod witness_request;

#[cfg(feature = "storage")]
pub mod log;
#[cfg(feature = "storage")]
pub mod store;

pub use hash::Hash;
