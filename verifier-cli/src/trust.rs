//! The tool's trust anchors: the log's note verifier key and the CA certificate.
//!
//! These are the only things the tool trusts. They come from the command line (or files it
//! names), never from the server: a key fetched from `GET /v1/log/key` or `GET /v1/ca` would
//! be trusting the party under audit.

use std::path::Path;

use kt_log::note::NoteVerifier;
pub(crate) use kt_verify::credential::Ca;

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
