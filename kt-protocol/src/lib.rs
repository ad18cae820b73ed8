//! The Authentication Service's protocol as pure code: one definition that the server, the
//! verifier and MLS clients share, so that they cannot disagree. No I/O, no async, no storage.
//!
//! - [`identity`]: which names the AS binds keys to;
//! - [`entry`]: the log entry format, one strict parser and one serializer;
//! - [`pop`]: the texts a client signs to prove possession of a key, and enrollment ids;
//! - [`history`]: which entry may follow which, for the server's admission and the auditor;
//! - [`api`]: the API's requests and answers;
//! - [`directory`]: the private, verifiable map of every identity's complete state (VRF labels,
//!   commitments, the prefix tree and its proofs, the log's entries and their public rules).
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod api;
pub mod directory;
pub mod entry;
pub mod history;
pub mod identity;
pub mod pop;
mod reader;
