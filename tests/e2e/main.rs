//! End-to-end tests: the real `as-server` and `verifier-cli` binaries over real HTTPS on
//! loopback, each test with its own temporary data and state folders. See tests/README.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod malicious;
mod online;
mod restart;
mod scenario;
mod schemas;
mod witness;
mod witnessed_log;
