//! `enroll` and `rotate`: the client side of enrollment and key rotation.
//!
//! Generates an Ed25519 key, writes it as PKCS#8 PEM to a new file created with mode 0600,
//! proves possession by signing the credential-request text of docs/api.md, sends it with
//! the enrollment token, and saves the returned credential only after it verified exactly as
//! `bundle verify` does (and binds our identity and our key), and after its checkpoint was
//! proven consistent with the saved one. The key is written first so that a credential the
//! server issued is never left without its key.
//!
//! `rotate` replaces the key of a credential the client holds: it verifies the current
//! credential file (as `bundle verify`) and that it binds the current key, writes a new key
//! the same way, signs the rotation text of docs/api.md with both keys, and saves the answer
//! only after it verified, binds our identity and new key, and is a `rotate` entry replacing
//! exactly the current serial.

use std::io::Write as _;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::pkcs8::{
    spki::der::pem::LineEnding, DecodePrivateKey as _, EncodePrivateKey as _,
};
use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::json;

use kt_verify::bundle::{verify_bundle, VerifiedBundle};

use crate::describe::{bundle_json, describe};
use crate::error::Error;
use crate::offline::read_bundle;
use crate::online::Online;
use crate::output::Outcome;
use crate::state::write_atomic;
use crate::trust::Ca;
use crate::wire::CredentialAnswer;
use kt_protocol::api::{IssueRequest, RotateRequest};

/// Refuses to run when an output file exists.
fn check_new_files(paths: &[&Path]) -> Result<(), Error> {
    for path in paths {
        if path.exists() {
            return Err(Error::Usage(format!(
                "{} already exists; refusing to overwrite",
                path.display()
            )));
        }
    }
    Ok(())
}

/// A new Ed25519 key, written first to `key_out` (PKCS#8 PEM, mode 0600, never overwriting).
fn new_key_file(key_out: &Path) -> Result<SigningKey, Error> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| Error::Network(format!("no randomness: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| Error::Network(format!("cannot encode the key: {e}")))?;
    write_secret(key_out, pem.as_bytes())?;
    Ok(key)
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
    crate::online::check_identity_arg(identity)?;
    check_new_files(&[key_out, out])?;
    let key = new_key_file(key_out)?;

    let public_key = key.verifying_key().to_bytes();
    let text = kt_protocol::pop::issuance_message(
        identity,
        &B64.encode(public_key),
        &kt_protocol::pop::enrollment_id(token),
    );
    let request = IssueRequest {
        identity: identity.to_owned(),
        token: token.to_owned(),
        public_key: Some(B64.encode(public_key)),
        signature: Some(B64.encode(key.sign(text.as_bytes()).to_bytes())),
        csr: None,
    };
    let bundle: CredentialAnswer = online.client.post_json("/v1/credentials", &request)?;
    let verified = verify_bundle(&bundle, &online.verifier, &online.vrf()?, ca, crate::now())
        .map_err(Error::verify)?;
    if verified.identity.identity != identity {
        return Err(Error::verify("the credential is for another identity"));
    }
    if verified.binding.public_key != public_key {
        return Err(Error::verify("the credential binds another key than ours"));
    }
    save_verified(online, &bundle, &verified, key_out, out, "enrolled")
}

/// Saves a verified credential and describes it; JSON: the `bundle verify` fields plus
/// `key_file`, `credential_file`, `consistency`, `previous_size`.
fn save_verified(
    online: &Online,
    bundle: &CredentialAnswer,
    verified: &VerifiedBundle,
    key_out: &Path,
    out: &Path,
    what: &str,
) -> Result<Outcome, Error> {
    let consistency = online.accept(&verified.identity.checkpoint, "checkpoint of the answer")?;
    let json_bytes = serde_json::to_vec_pretty(bundle)
        .map_err(|e| Error::Network(format!("cannot encode the credential: {e}")))?;
    write_atomic(out, &json_bytes)?;
    let mut json = bundle_json(verified);
    json["key_file"] = json!(key_out.display().to_string());
    json["credential_file"] = json!(out.display().to_string());
    json["consistency"] = json!(consistency.word());
    json["previous_size"] = json!(consistency.previous_size());
    let human = format!(
        "{what} and verified: {}\nkey written to {} (mode 0600), credential to {}",
        describe(&verified.identity.identity, &verified.binding),
        key_out.display(),
        out.display()
    );
    Ok(Outcome::ok(json, human))
}

/// Runs a rotation of the credential in `credential_file`, held by the key in `key_file`.
/// JSON: as `enroll`.
pub(crate) fn rotate(
    online: &Online,
    ca: &Ca,
    key_file: &Path,
    credential_file: &Path,
    key_out: &Path,
    out: &Path,
) -> Result<Outcome, Error> {
    check_new_files(&[key_out, out])?;
    let pem = String::from_utf8(crate::error::read_file(key_file)?)
        .map_err(|_| Error::Usage(format!("{} is not a PEM key", key_file.display())))?;
    let current = SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
        Error::Usage(format!(
            "{} is not a PKCS#8 Ed25519 private key: {e}",
            key_file.display()
        ))
    })?;
    let held = read_bundle(credential_file)?;
    let held_verified = verify_bundle(&held, &online.verifier, &online.vrf()?, ca, crate::now())
        .map_err(Error::verify)?;
    let identity = held_verified.identity.identity.clone();
    let serial = held_verified.binding.serial.to_hex();
    if held_verified.binding.public_key != current.verifying_key().to_bytes() {
        return Err(Error::Usage(format!(
            "{} does not hold the key of the credential in {}",
            key_file.display(),
            credential_file.display()
        )));
    }

    let new = new_key_file(key_out)?;
    let new_public = new.verifying_key().to_bytes();
    let current_serial = kt_protocol::entry::Serial::parse_hex(&serial).ok_or_else(|| {
        Error::verify(format!("credential serial {serial:?} is not 32 hex digits"))
    })?;
    let text =
        kt_protocol::pop::rotation_message(&identity, &current_serial, &B64.encode(new_public));
    let request = RotateRequest {
        identity: identity.clone(),
        serial: serial.clone(),
        public_key: B64.encode(new_public),
        signature_current: B64.encode(current.sign(text.as_bytes()).to_bytes()),
        signature_new: B64.encode(new.sign(text.as_bytes()).to_bytes()),
    };
    let bundle: CredentialAnswer = online
        .client
        .post_json("/v1/credentials/rotate", &request)?;
    let verified = verify_bundle(&bundle, &online.verifier, &online.vrf()?, ca, crate::now())
        .map_err(Error::verify)?;
    if verified.identity.identity != identity {
        return Err(Error::verify("the credential is for another identity"));
    }
    if verified.binding.public_key != new_public {
        return Err(Error::verify(
            "the credential binds another key than our new one",
        ));
    }
    // verify_bundle checked that `replaces` is no longer current in the state.
    if bundle.replaces.as_deref() != Some(serial.as_str()) {
        return Err(Error::verify(format!(
            "the answer is not a logged rotation replacing {serial}"
        )));
    }
    save_verified(online, &bundle, &verified, key_out, out, "rotated")
}
