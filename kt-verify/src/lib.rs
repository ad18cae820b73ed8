//! Everything a client or an auditor of the AS verifies, as plain functions: no network, no
//! file and no clock access (time comes in as a value, proofs and CRLs through the caller's
//! function). `verifier-cli` is a thin binary over it, and mls-demo's validator calls it, so
//! an MLS member makes exactly the checks `verifier-cli validate` makes.
//!
//! It trusts two anchors, both given by the caller: the log's note verifier key
//! (`kt_log::note::NoteVerifier`) and the CA certificate ([`credential::Ca`]).
//!
//! - [`credential`]: X.509 credentials and the CRL against the CA;
//! - [`entry`]: the verifier's view of a log entry (`kt_protocol::entry`) and its match with
//!   its certificate;
//! - [`wire`]: the server's answers that carry proofs;
//! - [`bundle`]: a logged credential (certificate + entry + inclusion), a `Credential` bundle;
//! - [`lookup`]: an identity lookup;
//! - [`validate`]: is this key a current, logged, unexpired, unrevoked key of this identity;
//! - [`consistency`]: a new checkpoint against the saved one;
//! - [`fork`]: fork evidence, made and re-checked;
//! - [`audit`]: the audit's rules for one entry (then `kt_protocol::history`);
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
pub mod entry;
pub mod fork;
pub mod lookup;
pub mod validate;
pub mod wire;
pub mod witness_policy;
