//! `kt-witness`: a C2SP tlog-witness (<https://c2sp.org/tlog-witness>) for any C2SP log.
//!
//! It cosigns a log's checkpoint only if the checkpoint is signed by the log and consistent
//! with every checkpoint of that log it cosigned before, so that a log cannot show two
//! parties two different histories (a split view) and get both cosigned by it.
//!
//! - [`request`]: the add-checkpoint body, parsed strictly (pure), re-exported from
//!   [`kt_log::witness_request`] (shared with the logs that submit);
//! - [`cosignature`]: C2SP tlog-cosignature v1 Ed25519 cosignatures, re-exported from
//!   [`kt_log::cosignature`] (pure, shared with the verifiers);
//! - [`evidence`]: evidence files of inconsistent checkpoints, re-checkable offline (pure);
//! - [`auditor`], [`tiles`]: the auditing mode (beyond the spec): the directory's rules
//!   checked on the log's entries before cosigning;
//! - [`config`]: the TOML file of the witness's name and its logs;
//! - [`witness`]: the check-and-update per log, durable state, the spec's answers;
//! - [`files`]: durable atomic file writes;
//! - [`http`], [`metrics`], [`tls`]: the HTTP(S) server;
//! - [`http_client`]: the HTTP(S) client of both sides (as-server submits with it).
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod auditor;
pub mod config;
pub use kt_log::cosignature;
pub mod evidence;
pub mod files;
pub mod http;
pub mod http_client;
pub mod metrics;
pub use kt_log::witness_request as request;
pub mod tiles;
pub mod tls;
pub mod witness;
