//! Human and `--json` output.
//!
//! Every command prints one result. With `--json` it is one JSON object on stdout with at
//! least `command`, `ok` (bool), `status` (`ok`, `verification_failed`, `usage_error`,
//! `network_or_io_error`, `fork_detected`) and `exit_code`, plus the command's own fields; an
//! error adds `error` (message) and, for a fork, `evidence` (path). Without `--json`, results
//! go to stdout and errors to stderr.

use serde_json::{json, Map, Value};

use crate::error::{Error, ExitCode};

/// What a command established.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// Exit code (0, or 1 when the command's finding is a failure it reports in detail).
    pub(crate) code: ExitCode,
    /// The command's JSON fields.
    pub(crate) json: Map<String, Value>,
    /// The human-readable report.
    pub(crate) human: String,
}

impl Outcome {
    /// A success with these fields and this text.
    pub(crate) fn ok(json: Value, human: impl Into<String>) -> Outcome {
        Outcome::with_code(ExitCode::Ok, json, human)
    }

    /// A reported verification failure (exit 1) with details.
    pub(crate) fn failed(json: Value, human: impl Into<String>) -> Outcome {
        Outcome::with_code(ExitCode::VerificationFailed, json, human)
    }

    /// An outcome with an explicit code.
    pub(crate) fn with_code(code: ExitCode, json: Value, human: impl Into<String>) -> Outcome {
        let json = match json {
            Value::Object(map) => map,
            other => {
                let mut map = Map::new();
                map.insert("result".into(), other);
                map
            }
        };
        Outcome {
            code,
            json,
            human: human.into(),
        }
    }
}

/// Prints the result of `command` and returns its exit code.
pub(crate) fn emit(command: &str, result: Result<Outcome, Error>, json_mode: bool) -> ExitCode {
    match result {
        Ok(outcome) => {
            if json_mode {
                // The common fields win over a command's own of the same name, so that
                // `status` always means the outcome.
                let mut map = outcome.json;
                map.insert("command".into(), json!(command));
                map.insert("ok".into(), json!(outcome.code == ExitCode::Ok));
                map.insert("status".into(), json!(outcome.code.status()));
                map.insert("exit_code".into(), json!(outcome.code as i32));
                println!("{}", Value::Object(map));
            } else if outcome.code == ExitCode::Ok {
                println!("{}", outcome.human.trim_end());
            } else {
                println!("{}", outcome.human.trim_end());
                eprintln!("verification FAILED (exit {})", outcome.code as i32);
            }
            outcome.code
        }
        Err(error) => {
            let code = error.exit_code();
            if json_mode {
                let mut map = Map::new();
                map.insert("command".into(), json!(command));
                map.insert("ok".into(), json!(false));
                map.insert("status".into(), json!(code.status()));
                map.insert("exit_code".into(), json!(code as i32));
                map.insert("error".into(), json!(error.to_string()));
                if let Error::Fork { evidence, .. } = &error {
                    map.insert("evidence".into(), json!(evidence.display().to_string()));
                }
                println!("{}", Value::Object(map));
            } else if let Error::Fork { .. } = &error {
                eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
                eprintln!("{error}");
                eprintln!("Re-check it with: verifier-cli fork verify <evidence> --log-key <key>");
                eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
            } else {
                eprintln!("error: {error}");
            }
            code
        }
    }
}
