//! The Authentication Service's protocol as pure code: one definition that the server, the
//! verifier and MLS clients share, so that they cannot disagree. No I/O, no async, no storage.
//!
//! Today it holds the identity rules ([`identity`]); the entry format, the signed request
//! texts and the history rules move here next.
#![forbid(unsafe_code)]

pub mod identity;
