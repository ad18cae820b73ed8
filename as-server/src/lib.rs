//! `as-server`: the Authentication Service (AS) of an MLS-style messaging system, with a
//! key-transparency log.
//!
//! Admins enroll identities; clients prove possession of an Ed25519 key and receive an X.509
//! credential signed by the CA key; anyone looks up an identity's current credentials. Every
//! issuance, rotation, revocation and re-enabling is an entry of the `kt-log` transparency log,
//! and every answer that shows an entry carries its inclusion proof and the signed checkpoint.
//!
//! Layout, one job per module:
//! - [`config`], [`setup`]: configuration and first-start key material in the data folder;
//! - `kt_protocol::identity`, [`pop`], [`tokens`]: the rules for untrusted input (identities,
//!   proofs of possession, enrollment and admin tokens); [`rotation`]: the rotation budget;
//! - [`ca`]: X.509 credentials, the CA certificate and the CRL;
//! - [`entry`] (`kt_protocol::entry`): the log entry format; [`encoding`]: base64 and hex on
//!   the wire;
//! - [`state`]: the AS's view of identities and credentials, a cache derived from the log and
//!   the [`enrollment_journal`]; [`recovery`]: opening it, and rebuilding it when it must;
//!   [`shared_enrollments`]: enrollments that several frontends on PostgreSQL share;
//! - [`storage`]: what a storage fault is (a data disk that does not take writes, an
//!   unreachable database);
//!   [`resync`]: coming back from one without a restart;
//! - [`admission`]: the rules an action must pass to become a log entry, decided in log order;
//!   [`refusal`]: why an action is refused, in the domain's terms (problems only at the edge);
//! - [`as_log`]: the log type the AS runs on, on the data folder or a shared PostgreSQL
//!   database; [`sequencer`]: the group-committing writer of the log and the state, which
//!   follows other frontends' appends to a shared log;
//! - [`witnessing`]: sending checkpoints to the witness policy's witnesses, serving the
//!   newest one its quorum cosigned;
//! - [`operations`]: enrollment, issuance, rotation, revocation and enabling as the domain's
//!   operations, which any frontend calls;
//! - [`app`]: the state every handler shares; [`server`], [`routes`], [`problem`],
//!   [`metrics`], [`tls`], [`logging`], [`unread_body`]: the HTTPS service over it;
//! - [`admin_client`]: the `as-server admin …` subcommands.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod admin_client;
pub mod admission;
pub mod app;
pub mod as_log;
pub mod ca;
pub mod config;
pub mod directory;
pub mod encoding;
pub mod enrollment_journal;
/// The log entry format, from the protocol crate (one definition for server and verifiers).
pub use kt_protocol::entry;
pub mod logging;
pub mod metrics;
pub mod operations;
pub mod pop;
pub mod problem;
pub mod recovery;
pub mod refusal;
pub mod resync;
pub mod rotation;
pub mod routes;
pub mod secret_file;
pub mod sequencer;
pub mod server;
pub mod setup;
pub mod shared_enrollments;
pub mod state;
pub mod storage;
pub mod tls;
pub mod tokens;
pub mod unread_body;
pub mod witnessing;

/// Seconds since the Unix epoch, now. A clock before 1970 reads as 0.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
