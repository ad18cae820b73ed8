//! Everything a client or an auditor of the AS verifies, as plain functions: no network, no
//! file and no clock access (time comes in as a value, proofs and CRLs through the caller's
//! function). `verifier-cli` is a thin binary over it, and mls-demo's validator calls it, so
//! an MLS member makes exactly the checks `verifier-cli validate` makes.
//!
//! It trusts three anchors, all given by the caller: the log's note verifier key
//! (`kt_log::note::NoteVerifier`), the directory's VRF public key
//! (`kt_protocol::directory::vrf::VrfPublicKey`) and the CA certificate ([`credential::Ca`]).
//!
//! - [`credential`]: X.509 credentials and the CRL against the CA;
//! - [`wire`]: base64 forms of hashes and proofs in answers, and the consistency answer;
//! - [`bundle`]: a credential bundle (an issuance's or rotation's answer);
//! - [`lookup`]: an identity lookup, every credential checked under the CA;
//! - [`directory`]: an identity's complete state, or its absence, in a checkpoint;
//! - [`monitor`]: an owner's check of every change of its identity since its last run;
//! - [`validate`]: is this key a current, logged, unexpired, unrevoked key of this identity;
//! - [`consistency`]: a new checkpoint against the saved one;
//! - [`fork`]: fork evidence, made and re-checked;
//! - [`audit`]: the public audit of the whole log through the directory's public rules;
//! - [`witness_policy`]: C2SP tlog-policy files and the check that a checkpoint is cosigned
//!   by their quorum of witnesses (C2SP tlog-cosignature v1).
//!
//! Every error is a typed, non-exhaustive enum whose variant says what failed.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod audit;
pub mod bundle;
pub mod consistency;
pub mod credential;
pub mod directory;
pub mod fork;
pub mod lookup;
pub mod monitor;
pub mod validate;
pub mod wire;
pub mod witness_policy;
