//! Errors and the exit codes they map to.
//!
//! Every failure of the tool is one [`Error`]; its [`Error::exit_code`] is what the process
//! returns. The codes are part of the interface (documented in `--help` and
//! docs/auditing.md) and never change meaning:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | verified / ok |
//! | 1 | verification failed: bad signature, bad proof, not in the log, revoked, expired, unexpected key, malformed data to verify |
//! | 2 | usage error: bad flags, unparseable trust anchors (log key, CA) |
//! | 3 | network or I/O error: file unreadable, server unreachable or refusing |
//! | 4 | fork detected: two checkpoints that cannot both be true; evidence written |

use std::path::PathBuf;

use thiserror::Error;

/// Process exit codes (see the module table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExitCode {
    /// Everything checked verified.
    Ok = 0,
    /// Something failed verification.
    VerificationFailed = 1,
    /// The command line or a trust anchor given on it is unusable.
    Usage = 2,
    /// A file could not be read or written, or the server could not be used.
    NetworkOrIo = 3,
    /// The log showed two views that cannot both be honest.
    Fork = 4,
}

impl ExitCode {
    /// The machine-readable status word printed in `--json` output.
    pub(crate) fn status(self) -> &'static str {
        match self {
            ExitCode::Ok => "ok",
            ExitCode::VerificationFailed => "verification_failed",
            ExitCode::Usage => "usage_error",
            ExitCode::NetworkOrIo => "network_or_io_error",
            ExitCode::Fork => "fork_detected",
        }
    }
}

/// Why a command stopped.
#[derive(Debug, Error)]
#[non_exhaustive]
pub(crate) enum Error {
    /// Bad flags or unusable trust anchors.
    #[error("usage: {0}")]
    Usage(String),
    /// Data that was to be verified did not verify (or could not even be parsed).
    #[error("verification failed: {0}")]
    Verification(String),
    /// A local file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The server could not be reached, or answered with an error.
    #[error("network: {0}")]
    Network(String),
    /// A fork was detected and its evidence written to `evidence`.
    #[error("FORK DETECTED: {detail}; evidence written to {}", evidence.display())]
    Fork {
        /// What is inconsistent with what.
        detail: String,
        /// Where the evidence file was written.
        evidence: PathBuf,
    },
}

impl Error {
    /// The exit code this error ends the process with.
    pub(crate) fn exit_code(&self) -> ExitCode {
        match self {
            Error::Usage(_) => ExitCode::Usage,
            Error::Verification(_) => ExitCode::VerificationFailed,
            Error::Io { .. } | Error::Network(_) => ExitCode::NetworkOrIo,
            Error::Fork { .. } => ExitCode::Fork,
        }
    }

    /// Shorthand for a verification failure.
    pub(crate) fn verify(msg: impl std::fmt::Display) -> Error {
        Error::Verification(msg.to_string())
    }

    /// Shorthand for an I/O failure on `path`.
    pub(crate) fn io(what: &str, path: &std::path::Path, source: std::io::Error) -> Error {
        Error::Io {
            context: format!("{what} {}", path.display()),
            source,
        }
    }
}

/// Reads a whole file, mapping failure to [`Error::Io`] (exit code 3).
pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))
}
