//! Harness of the end-to-end tests (see `e2e/`): finds the built binaries, runs servers and
//! the verifier. Filled in with the scenarios.
#![forbid(unsafe_code)]
