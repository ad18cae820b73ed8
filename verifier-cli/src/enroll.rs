//! `enroll`: the client side of enrollment.
//!
//! Generates an Ed25519 key, writes it as PKCS#8 PEM to a new file created with mode 0600,
//! proves possession by signing the credential-request text of docs/api.md, sends it with
//! the enrollment token, and saves the returned credential only after it verified exactly as
//! `bundle verify` does (and binds our identity and our key), and after its checkpoint was
//! proven consistent with the saved one. The key is written first so that a credential the
//! server issued is never left without its key.

use std::io::Write as _;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePrivateKey as _};
use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::bundle::{describe, verify_bundle};
use crate::credential::hex;
use crate::entry::is_valid_identity;
use crate::error::Error;
use crate::online::Online;
use crate::output::Outcome;
use crate::state::write_atomic;
use crate::trust::Ca;
use crate::wire::{Credential, CredentialRequest};

/// The proof-of-possession text of an issuance request (docs/api.md).
pub(crate) fn credential_request_text(
    identity: &str,
    public_key: &[u8; 32],
    token: &str,
) -> String {
    format!(
        "kt-as/v1 credential-request\nidentity: {identity}\npublic-key: {}\nenrollment: {}\n",
        B64.encode(public_key),
        hex(&Sha256::digest(token.as_bytes()))
    )
}

/// Creates `path` with mode 0600 (never overwriting) and writes `bytes`.
fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| Error::io("cannot create key file", path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io("cannot write key file", path, e))
}

/// Runs the enrollment. JSON: the `bundle verify` fields plus `key_file`, `credential_file`,
/// `consistency`, `previous_size`.
pub(crate) fn enroll(
    online: &Online,
    ca: &Ca,
    identity: &str,
    token: &str,
    key_out: &Path,
    out: &Path,
) -> Result<Outcome, Error> {
    if !is_valid_identity(identity) {
        return Err(Error::Usage(format!(
            "{identity:?} is not a valid identity"
        )));
    }
    for path in [key_out, out] {
        if path.exists() {
            return Err(Error::Usage(format!(
                "{} already exists; refusing to overwrite",
                path.display()
            )));
        }
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| Error::Network(format!("no randomness: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| Error::Network(format!("cannot encode the key: {e}")))?;
    write_secret(key_out, pem.as_bytes())?;

    let public_key = key.verifying_key().to_bytes();
    let text = credential_request_text(identity, &public_key, token);
    let request = CredentialRequest {
        identity,
        token,
        public_key: B64.encode(public_key),
        signature: B64.encode(key.sign(text.as_bytes()).to_bytes()),
    };
    let bundle: Credential = online.client.post_json("/v1/credentials", &request)?;
    let verified = verify_bundle(&bundle, &online.verifier, ca, crate::now())?;
    if verified.logged.binding.identity != identity {
        return Err(Error::verify("the credential is for another identity"));
    }
    if verified.logged.binding.public_key != public_key {
        return Err(Error::verify("the credential binds another key than ours"));
    }
    let consistency = online.sync(&verified.checkpoint)?;
    let json_bytes = serde_json::to_vec_pretty(&bundle)
        .map_err(|e| Error::Network(format!("cannot encode the credential: {e}")))?;
    write_atomic(out, &json_bytes)?;
    let mut json = verified.to_json();
    json["key_file"] = json!(key_out.display().to_string());
    json["credential_file"] = json!(out.display().to_string());
    json["consistency"] = json!(consistency.word());
    json["previous_size"] = json!(consistency.previous_size());
    let human = format!(
        "enrolled and verified: {}\nkey written to {} (mode 0600), credential to {}",
        describe(&verified.logged),
        key_out.display(),
        out.display()
    );
    Ok(Outcome::ok(json, human))
}
