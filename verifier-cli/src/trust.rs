//! The tool's trust anchors: the log's note verifier key, the directory's VRF public key and
//! the CA certificate, and optionally a witness policy (C2SP tlog-policy) that every
//! checkpoint must satisfy.
//!
//! These are the only things the tool trusts. They come from the command line (or files it
//! names), never from the server: a key fetched from `GET /v1/log/key` or `GET /v1/ca` would
//! be trusting the party under audit.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_log::checkpoint::VerifiedCheckpoint;
use kt_log::note::NoteVerifier;
use kt_protocol::directory::vrf::VrfPublicKey;
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

/// Parses `--vrf-key`: the VRF public key as base64 of 32 bytes, or the path of a file holding
/// it (as the AS writes `vrf-key.pub`). Without it, `vrf-key.pub` in the folder of the
/// `--log-key` file (where the AS keeps both). A value that is none of these is a usage error.
pub(crate) fn load_vrf_key(arg: Option<&str>, log_key_arg: &str) -> Result<VrfPublicKey, Error> {
    let parse = |text: &str| {
        B64.decode(text.trim())
            .ok()
            .and_then(|bytes| VrfPublicKey::from_bytes(&bytes).ok())
    };
    let path = match arg {
        Some(arg) => {
            if let Some(key) = parse(arg) {
                return Ok(key);
            }
            Path::new(arg).to_path_buf()
        }
        None => {
            let beside = Path::new(log_key_arg)
                .parent()
                .map(|dir| dir.join("vrf-key.pub"))
                .filter(|p| Path::new(log_key_arg).is_file() && p.is_file());
            beside.ok_or_else(|| {
                Error::Usage(
                    "--vrf-key is required (the directory's VRF public key, base64 or a file; \
                     by default vrf-key.pub beside the --log-key file)"
                        .into(),
                )
            })?
        }
    };
    if !path.exists() {
        return Err(Error::Usage(format!(
            "--vrf-key {} is neither a VRF public key (base64 of 32 bytes) nor a file",
            path.display()
        )));
    }
    let text = String::from_utf8(read_file(&path)?)
        .map_err(|_| Error::Usage(format!("VRF key file {} is not UTF-8", path.display())))?;
    parse(&text).ok_or_else(|| {
        Error::Usage(format!(
            "VRF key file {}: not a VRF public key (base64 of 32 bytes)",
            path.display()
        ))
    })
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

    /// The policy, if any.
    pub(crate) fn policy(&self) -> Option<&WitnessPolicy> {
        self.0.as_ref()
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
