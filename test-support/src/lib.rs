//! The workspace's one test harness, shared by every suite so that each thing a test needs is
//! written once: running the real `as-server` ([`ServerProcess`], and [`server::TestServer`]
//! with the trust anchors of its data folder) and `kt-witness` ([`witness`]) binaries, the API
//! requests a client signs ([`requests`], from kt-protocol's texts), the JSON Schemas of
//! `schemas/` ([`schemas`]), the in-memory log, directory and CA of the pure tests
//! ([`fixtures`]), a static file server ([`file_server`]), a PostgreSQL database of its own
//! ([`postgres`]), free ports and a clean environment for the binaries.
//!
//! It depends on kt-log's pure half and kt-protocol, never on as-server: as-server's own tests
//! use it, and mls-demo's, which keep their HTTPS clients (each suite tests its own).
#![forbid(unsafe_code)]
// Test code: a panic is how a test fails, with its message.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod binary;
pub mod cli;
pub mod file_server;
pub mod fixtures;
mod port;
pub mod postgres;
mod process;
pub mod requests;
pub mod schemas;
pub mod server;
pub mod witness;

pub use binary::workspace_binary;
pub use port::free_port;
pub use process::{signal, ServerProcess};
