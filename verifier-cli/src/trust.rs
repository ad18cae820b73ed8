//! The tool's trust anchors: the log's note verifier key and the CA certificate.
//!
//! These are the only things the tool trusts. They come from the command line (or files it
//! names), never from the server: a key fetched from `GET /v1/log/key` or `GET /v1/ca` would
//! be trusting the party under audit.

use std::path::Path;

use ed25519_dalek::VerifyingKey;
use kt_log::note::NoteVerifier;

use crate::credential::{self, ED25519_OID};
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

/// The CA that signs credentials: its certificate (as given) and Ed25519 public key.
#[derive(Clone, Debug)]
pub(crate) struct Ca {
    /// The exact DER of the CA certificate.
    pub(crate) der: Vec<u8>,
    /// The CA's Ed25519 key, which must have signed every credential and CRL.
    pub(crate) key: VerifyingKey,
    /// DER of the CA's subject name; credentials and CRLs must name it as issuer.
    pub(crate) subject_der: Vec<u8>,
}

impl Ca {
    /// Builds the trust anchor from a certificate in PEM or DER. The certificate is trusted
    /// as given (it is the anchor); it must carry an Ed25519 key.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Ca, String> {
        let parsed = credential::parse_certificate(bytes).map_err(|e| e.to_string())?;
        let tbs = parsed.cert.tbs_certificate();
        let spki = tbs.subject_public_key_info();
        if spki.algorithm.oid != ED25519_OID {
            return Err("the CA key is not Ed25519".into());
        }
        let raw: [u8; 32] = spki
            .subject_public_key
            .as_bytes()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or("the CA key is not 32 bytes")?;
        let key = VerifyingKey::from_bytes(&raw).map_err(|_| "the CA key is not a valid point")?;
        let subject_der =
            der::Encode::to_der(tbs.subject()).map_err(|e| format!("CA subject: {e}"))?;
        Ok(Ca {
            der: parsed.der,
            key,
            subject_der,
        })
    }

    /// Loads `--ca FILE`. An unreadable file is exit 3, an unusable certificate exit 2.
    pub(crate) fn load(path: &Path) -> Result<Ca, Error> {
        let bytes = read_file(path)?;
        Ca::from_bytes(&bytes).map_err(|e| Error::Usage(format!("--ca {}: {e}", path.display())))
    }
}
