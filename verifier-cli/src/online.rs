//! Online commands: `checkpoint fetch`, `lookup`, `validate`, `credential`.
//!
//! They are thin: fetch, then run the same verification functions the offline commands use.
//! Every answer's checkpoint is verified with the log key and proven consistent with the
//! saved one (sync.rs), and refused if it is older than the saved one (a stale or replayed
//! answer is true only as of then: exactly how a revocation or a new key gets hidden), before
//! anything in it is reported.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_log::checkpoint::{open_checkpoint, VerifiedCheckpoint};
use kt_log::note::NoteVerifier;
use serde_json::{json, Value};

use kt_protocol::api::IDENTITY_PROOF_MEDIA_TYPE;
use kt_protocol::directory::vrf::VrfPublicKey;
use kt_verify::credential::{parse_certificate, CredentialError, Crl};
use kt_verify::directory::{answer_checkpoint, verify_identity};
use kt_verify::lookup::{verify_lookup, VerifiedLookup};
use kt_verify::validate::ValidateError;

use crate::client::{Client, Fetched};
use crate::describe::{
    checkpoint_json, credential_json, crl_json, describe, serial_hex, status_word,
};
use crate::error::{read_file, Error};
use crate::output::Outcome;
use crate::state::StateDir;
use crate::sync::{advance, Advance};
use crate::trust::{Ca, Witnesses};
use crate::wire::IdentityProof;

/// Largest checkpoint note accepted.
const NOTE_LIMIT: u64 = 64 << 10;

/// What online commands share: the server, the log key, the state folder.
pub(crate) struct Online {
    /// The server.
    pub(crate) client: Client,
    /// The log's key.
    pub(crate) verifier: NoteVerifier,
    /// Where the directory's VRF key comes from: `--vrf-key`, and `--log-key` (beside which
    /// `vrf-key.pub` is looked for); loaded by the commands that need it ([`Online::vrf`]).
    pub(crate) vrf_arg: (Option<String>, String),
    /// The state folder.
    pub(crate) state: StateDir,
    /// The witness policy every checkpoint of the server must satisfy (if any).
    pub(crate) witnesses: Witnesses,
}

impl Online {
    /// The directory's VRF key (a usage error if it cannot be had).
    pub(crate) fn vrf(&self) -> Result<VrfPublicKey, Error> {
        crate::trust::load_vrf_key(self.vrf_arg.0.as_deref(), &self.vrf_arg.1)
    }

    /// Fetches `/log/checkpoint` and verifies it under the log key.
    pub(crate) fn fetch_checkpoint(&self) -> Result<VerifiedCheckpoint, Error> {
        let note = self.client.get_bytes("/log/checkpoint", NOTE_LIMIT)?;
        let cp = open_checkpoint(&note, &self.verifier)
            .map_err(|e| Error::verify(format!("server checkpoint: {e}")))?;
        self.witnesses
            .check(&cp, &self.verifier, "server checkpoint")?;
        Ok(cp)
    }

    /// Proves `cp` consistent with the saved checkpoint and saves it if it is newer.
    pub(crate) fn sync(&self, cp: &VerifiedCheckpoint) -> Result<Advance, Error> {
        let saved = self.state.load_checkpoint(&self.verifier)?;
        advance(&self.state, saved.as_ref(), cp, &self.client)
    }

    /// Fetches the CRL, unverified.
    fn fetch_crl_der(&self) -> Result<Vec<u8>, Error> {
        self.client.get_bytes("/v1/crl", 64 << 20)
    }

    /// Fetches and verifies the CRL.
    pub(crate) fn fetch_crl(&self, ca: &Ca) -> Result<Crl, Error> {
        let der = self.fetch_crl_der()?;
        ca.verify_crl(&der, crate::now()).map_err(Error::verify)
    }

    /// Fetches an identity's proof and verifies everything in it ([`Online::verify_answer`]).
    pub(crate) fn verified_identity(
        &self,
        ca: &Ca,
        identity: &str,
    ) -> Result<VerifiedAnswer, Error> {
        let path = format!(
            "/v1/identities/{}",
            kt_protocol::identity::path_segment(identity)
        );
        // The binary form is about a quarter smaller; a server without it answers JSON.
        let accept = format!("{IDENTITY_PROOF_MEDIA_TYPE}, application/json;q=0.5");
        let (body, content_type) =
            match self.client.get_accepting(&path, 64 << 20, Some(&accept))? {
                (Fetched::Body(body), content_type) => (body, content_type),
                (Fetched::NotFound, _) => {
                    return Err(Error::verify(format!(
                        "GET {path} answered 404: a directory proves absence, it does not deny"
                    )))
                }
            };
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        let answer = if essence.eq_ignore_ascii_case(IDENTITY_PROOF_MEDIA_TYPE) {
            IdentityProof::from_binary(&body).map_err(|e| e.to_string())
        } else {
            serde_json::from_slice(&body).map_err(|e| e.to_string())
        }
        .map_err(|e| Error::verify(format!("answer of GET {path} is malformed: {e}")))?;
        self.verify_answer(ca, identity, answer)
    }

    /// Verifies an identity proof: its checkpoint under the log key (and covered by a
    /// checkpoint the witness policy's quorum cosigned, with a policy), consistent with the
    /// saved one and not older than it, then the state or absence it
    /// proves, and every credential under the CA.
    pub(crate) fn verify_answer(
        &self,
        ca: &Ca,
        identity: &str,
        answer: IdentityProof,
    ) -> Result<VerifiedAnswer, Error> {
        let checkpoint =
            answer_checkpoint(&answer, identity, &self.verifier).map_err(Error::verify)?;
        let consistency = self.accept(&checkpoint, "checkpoint of the answer")?;
        if let Advance::Behind { saved } = consistency {
            return Err(Error::verify(format!(
                "the answer is proven in a checkpoint of size {}, older than the newest one \
                 verified (size {saved}): a stale or replayed answer is refused",
                checkpoint.size()
            )));
        }
        let verified =
            verify_identity(&answer, &checkpoint, &self.vrf()?).map_err(Error::verify)?;
        let lookup = verify_lookup(verified, ca).map_err(Error::verify)?;
        Ok(VerifiedAnswer {
            answer,
            lookup,
            consistency,
        })
    }
}

/// An identity proof whose every part verified.
pub(crate) struct VerifiedAnswer {
    /// The raw answer (for handing on the proof).
    pub(crate) answer: IdentityProof,
    /// What verified in it.
    pub(crate) lookup: VerifiedLookup,
    /// How its checkpoint relates to the saved checkpoint.
    pub(crate) consistency: Advance,
}

fn consistency_json(a: Advance) -> Value {
    json!({ "consistency": a.word(), "previous_size": a.previous_size() })
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Value::Object(a), Value::Object(b)) = (&mut a, b) {
        a.extend(b);
    }
    a
}

/// `checkpoint fetch`: JSON `origin`, `size`, `root`, `consistency`
/// (`first`|`unchanged`|`extended`|`behind`), `previous_size`.
pub(crate) fn checkpoint_fetch(online: &Online) -> Result<Outcome, Error> {
    let cp = online.fetch_checkpoint()?;
    let advance = online.sync(&cp)?;
    let human = format!(
        "checkpoint verified: origin {} size {} root {}\nconsistency with saved state: {}{}",
        cp.checkpoint().origin,
        cp.size(),
        B64.encode(cp.root().0),
        advance.word(),
        advance
            .previous_size()
            .map(|s| format!(" (from size {s})"))
            .unwrap_or_default()
    );
    Ok(Outcome::ok(
        merge(checkpoint_json(&cp), consistency_json(advance)),
        human,
    ))
}

pub(crate) fn check_identity_arg(identity: &str) -> Result<(), Error> {
    if kt_protocol::identity::check_syntax(identity).is_ok() {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{identity:?} is not a valid identity"
        )))
    }
}

/// What `lookup` prints of a verified lookup: JSON `identity`, `found`, `identity_status`,
/// `version`, `checkpoint` {origin,size,root}, `credentials` [{identity, serial, public_key,
/// not_before, not_after}]; and the human text.
pub(crate) fn lookup_report(identity: &str, lookup: &VerifiedLookup) -> (Value, String) {
    let checkpoint = &lookup.identity.checkpoint;
    let Some(state) = &lookup.identity.state else {
        return (
            json!({"identity": identity, "found": false, "identity_status": null,
                   "version": null, "checkpoint": checkpoint_json(checkpoint),
                   "credentials": []}),
            format!(
                "{identity}: not enrolled: the directory proves it absent in checkpoint size {}",
                checkpoint.size()
            ),
        );
    };
    let record = &state.record;
    let mut human = format!(
        "{identity}: {} (version {}, {} current credential(s)), complete as of checkpoint size {}\n",
        status_word(record.status),
        record.version,
        lookup.credentials.len(),
        checkpoint.size(),
    );
    for c in &lookup.credentials {
        human.push_str(&format!("  {}\n", describe(identity, &c.binding)));
    }
    let json = json!({
        "identity": identity,
        "found": true,
        // Not `status`: that common field is the command's outcome (output.rs).
        "identity_status": status_word(record.status),
        "version": record.version,
        "checkpoint": checkpoint_json(checkpoint),
        "credentials": lookup.credentials.iter().map(|c| credential_json(identity, &c.binding)).collect::<Vec<_>>(),
    });
    (json, human)
}

/// `lookup IDENTITY`: the identity's complete state (exit 0) or its proven absence (exit 1);
/// JSON as [`lookup_report`] plus `consistency`, `previous_size`. With `save`, the verified
/// answer is written there, for `lookup verify`.
pub(crate) fn lookup(
    online: &Online,
    ca: &Ca,
    identity: &str,
    save: Option<&Path>,
) -> Result<Outcome, Error> {
    check_identity_arg(identity)?;
    let v = online.verified_identity(ca, identity)?;
    if let Some(path) = save {
        let bytes = serde_json::to_vec_pretty(&v.answer)
            .map_err(|e| Error::Network(format!("cannot encode the answer: {e}")))?;
        crate::state::write_atomic(path, &bytes)?;
    }
    let (json, mut human) = lookup_report(identity, &v.lookup);
    human.push_str(&format!(" ({} with saved state)", v.consistency.word()));
    let json = merge(json, consistency_json(v.consistency));
    Ok(if v.lookup.identity.state.is_some() {
        Outcome::ok(json, human)
    } else {
        Outcome::failed(json, human)
    })
}

/// `validate IDENTITY KEY`: exit 0 iff `KEY` is the key of a current, unexpired, unrevoked
/// credential in `IDENTITY`'s complete state. JSON `identity`, `public_key`, `valid` (bool),
/// `reason`, `credential` (as in lookup, or null), `proof` (the verified identity proof, or
/// null), `consistency`, `previous_size`, `crl` (when valid).
pub(crate) fn validate(
    online: &Online,
    ca: &Ca,
    identity: &str,
    public_key: &str,
) -> Result<Outcome, Error> {
    check_identity_arg(identity)?;
    let key: [u8; 32] = B64
        .decode(public_key.trim())
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| Error::Usage("PUBLIC_KEY must be base64 of 32 bytes".into()))?;
    let fail = |reason: String, extra: Value| {
        let json = merge(
            json!({"identity": identity, "public_key": public_key, "valid": false,
                   "reason": reason, "credential": null, "proof": null}),
            extra,
        );
        Outcome::failed(
            json,
            format!("NOT VALID: {identity} key {public_key}: {reason}"),
        )
    };
    let v = online.verified_identity(ca, identity)?;
    let extra = consistency_json(v.consistency);
    let valid = match kt_verify::validate::validate(&v.lookup, &key, ca, crate::now(), || {
        online.fetch_crl_der()
    }) {
        Ok(valid) => valid,
        Err(ValidateError::Invalid(invalid)) => return Ok(fail(invalid.to_string(), extra)),
        Err(ValidateError::CrlUnavailable(e)) => return Err(e),
        Err(e) => return Err(Error::verify(e)),
    };
    let c = valid.credential;
    let json = merge(
        json!({
            "identity": identity,
            "public_key": public_key,
            "valid": true,
            "reason": "current, logged, unexpired, unrevoked",
            "crl": crl_json(&valid.crl),
            "credential": credential_json(identity, &c.binding),
            "proof": v.answer,
        }),
        extra,
    );
    Ok(Outcome::ok(
        json,
        format!(
            "VALID: {}\nin the identity's complete state, proven in checkpoint of size {}",
            describe(identity, &c.binding),
            v.lookup.identity.checkpoint.size()
        ),
    ))
}

/// `credential CERT`: chain, validity, CRL, presence in the identity's complete current state,
/// and checkpoint consistency. JSON `identity`, `serial`, `public_key`, `not_before`,
/// `not_after`, `state` (`current`|`expired`|`not_yet_valid`|`revoked`|`not_current`|
/// `not_enrolled`), `version` (of the identity's state, or null), `checkpoint`,
/// `consistency`, `previous_size`.
pub(crate) fn credential(online: &Online, ca: &Ca, cert_path: &Path) -> Result<Outcome, Error> {
    let parsed = parse_certificate(&read_file(cert_path)?).map_err(Error::verify)?;
    let facts = ca.verify_certificate(&parsed.der).map_err(Error::verify)?;
    let base = json!({
        "identity": facts.identity,
        "serial": serial_hex(&facts.serial),
        "public_key": B64.encode(facts.public_key),
        "not_before": facts.not_before,
        "not_after": facts.not_after,
    });
    let crl = online.fetch_crl(ca)?;
    let v = online.verified_identity(ca, &facts.identity)?;
    let consistency = consistency_json(v.consistency);
    let checkpoint = checkpoint_json(&v.lookup.identity.checkpoint);
    let found = v.lookup.identity.state.as_ref();
    let logged = v
        .lookup
        .credentials
        .iter()
        .find(|c| c.binding.certificate == parsed.der);
    let time = facts.check_time(crate::now());
    let state = match (&time, crl.is_revoked(&facts.serial), logged, &found) {
        (Err(CredentialError::Expired { .. }), _, _, _) => "expired",
        (Err(_), _, _, _) => "not_yet_valid",
        (Ok(()), true, _, _) => "revoked",
        (Ok(()), false, _, None) => "not_enrolled",
        (Ok(()), false, None, Some(_)) => "not_current",
        (Ok(()), false, Some(_), Some(_)) => "current",
    };
    let json = merge(
        merge(
            base,
            json!({
                "state": state,
                "version": found.map(|s| s.record.version),
                "checkpoint": checkpoint,
                "crl": crl_json(&crl),
            }),
        ),
        consistency,
    );
    let who = format!(
        "{} serial {} (CA signature verified)",
        facts.identity,
        serial_hex(&facts.serial)
    );
    Ok(match (state, logged) {
        ("current", Some(c)) => Outcome::ok(
            json,
            format!(
                "credential is CURRENT: {}",
                describe(&facts.identity, &c.binding)
            ),
        ),
        ("expired", _) | ("not_yet_valid", _) => Outcome::failed(
            json,
            format!(
                "credential {who}: {}",
                time.err().map(|e| e.to_string()).unwrap_or_default()
            ),
        ),
        ("revoked", _) => {
            Outcome::failed(json, format!("credential {who} is REVOKED (on the CRL)"))
        }
        ("not_enrolled", _) => Outcome::failed(
            json,
            format!("credential {who} is NOT IN THE DIRECTORY: the identity is proven absent"),
        ),
        _ => Outcome::failed(
            json,
            format!(
                "credential {who} is NOT CURRENT: not in the identity's complete current state"
            ),
        ),
    })
}
