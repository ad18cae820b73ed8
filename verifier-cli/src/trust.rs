//! The tool's trust anchors: the log's note verifier key and the CA certificate, and
//! optionally a witness policy (C2SP tlog-policy) that every checkpoint must satisfy.
//!
//! These are the only things the tool trusts. They come from the command line (or files it
//! names), never from the server: a key fetched from `GET /v1/log/key` or `GET /v1/ca` would
//! be trusting the party under audit.

use std::path::Path;

use kt_log::checkpoint::VerifiedCheckpoint;
use kt_log::note::NoteVerifier;
pub(crate) use kt_verify::credential::Ca;
use kt_verify::witness_policy::{check_witnessed, WitnessPolicy};

use crate::error::{read_file, Error};

/// Parses `--log-key`: either the verifier key text itself (`name+keyid+base64`) or the path
/// of a file holding it. A value that is neither is a usage error (exit 2).
pub(crate) fn load_log_key(arg: &str) -> Result<NoteVerifier, Error> {
    let direct = NoteVerifier::parse(arg.trim());
    if let Ok(key) = direct {
        return Ok(key);
    }
    let path = Path::new(arg);
    if !path.exists() {
        return Err(Error::Usage(format!(
            "--log-key {arg:?} is neither a note verifier key (name+keyid+base64) nor a file"
        )));
    }
    let text = read_file(path)?;
    let text = String::from_utf8(text)
        .map_err(|_| Error::Usage(format!("log key file {} is not UTF-8", path.display())))?;
    NoteVerifier::parse(text.trim())
        .map_err(|e| Error::Usage(format!("log key file {}: {e}", path.display())))
}

/// Loads `--ca FILE`. An unreadable file is exit 3, an unusable certificate exit 2.
pub(crate) fn load_ca(path: &Path) -> Result<Ca, Error> {
    let bytes = read_file(path)?;
    Ca::from_bytes(&bytes).map_err(|e| Error::Usage(format!("--ca {}: {e}", path.display())))
}

/// The witness policy of `--witness-policy`, or none (then checkpoints need only the log's
/// signature, as without the option).
#[derive(Debug, Default)]
pub(crate) struct Witnesses(Option<WitnessPolicy>);

impl Witnesses {
    /// No policy: only the log's signature is required.
    pub(crate) fn none() -> Witnesses {
        Witnesses(None)
    }

    /// Loads `--witness-policy FILE`. An unreadable file is exit 3, an unusable policy
    /// exit 2.
    pub(crate) fn load(path: Option<&Path>) -> Result<Witnesses, Error> {
        let Some(path) = path else {
            return Ok(Witnesses::none());
        };
        let text = read_file(path)?;
        WitnessPolicy::parse(&text)
            .map(|p| Witnesses(Some(p)))
            .map_err(|e| Error::Usage(format!("--witness-policy {}: {e}", path.display())))
    }

    /// Refuses `cp` (a checkpoint verified under `log`) unless it satisfies the policy:
    /// cosigned by its quorum, no bad cosignature by a policy witness, the log listed (see
    /// `kt_verify::witness_policy::check_witnessed`). Without a policy, always `Ok`. The
    /// error (exit 1) names `what` and the witnesses and groups missing.
    pub(crate) fn check(
        &self,
        cp: &VerifiedCheckpoint,
        log: &NoteVerifier,
        what: &str,
    ) -> Result<(), Error> {
        match &self.0 {
            None => Ok(()),
            Some(policy) => check_witnessed(cp.clone(), log, policy)
                .map(|_| ())
                .map_err(|e| Error::verify(format!("{what}: witness policy: {e}"))),
        }
    }
}
