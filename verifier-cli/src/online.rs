//! Online commands: `checkpoint fetch`, `lookup`, `validate`, `credential`.
//!
//! They are thin: fetch, then run the same verification functions the offline commands use.
//! Every answer's checkpoint is verified with the log key and proven consistent with the
//! saved one (sync.rs) before anything in it is reported.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_log::checkpoint::{open_checkpoint, VerifiedCheckpoint};
use kt_log::note::NoteVerifier;
use serde_json::{json, Value};

use kt_verify::credential::{parse_certificate, CredentialError, Crl};
use kt_verify::entry::is_valid_identity;
use kt_verify::lookup::{answer_checkpoint, verify_lookup, VerifiedLookup};
use kt_verify::validate::ValidateError;

use crate::client::{Client, Fetched};
use crate::describe::{crl_json, describe, logged_json, serial_hex};
use crate::error::{read_file, Error};
use crate::offline::checkpoint_json;
use crate::output::Outcome;
use crate::state::StateDir;
use crate::sync::{advance, Advance};
use crate::trust::{Ca, Witnesses};
use crate::wire::IdentityAnswer;

/// Largest checkpoint note accepted.
const NOTE_LIMIT: u64 = 64 << 10;

/// What online commands share: the server, the log key, the state folder.
pub(crate) struct Online {
    /// The server.
    pub(crate) client: Client,
    /// The log's key.
    pub(crate) verifier: NoteVerifier,
    /// The state folder.
    pub(crate) state: StateDir,
    /// The witness policy every checkpoint of the server must satisfy (if any).
    pub(crate) witnesses: Witnesses,
}

impl Online {
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

    /// Fetches an identity and verifies everything in the answer: its checkpoint (and its
    /// consistency with the saved one), and every credential (see bundle.rs). `None` when the
    /// server says the identity was never enrolled.
    pub(crate) fn verified_identity(
        &self,
        ca: &Ca,
        identity: &str,
    ) -> Result<Option<VerifiedIdentity>, Error> {
        let path = format!(
            "/v1/identities/{}",
            kt_protocol::identity::path_segment(identity)
        );
        let body = match self.client.get(&path, 64 << 20)? {
            Fetched::Body(body) => body,
            Fetched::NotFound => return Ok(None),
        };
        let answer: IdentityAnswer = serde_json::from_slice(&body)
            .map_err(|e| Error::verify(format!("answer of GET {path} is malformed: {e}")))?;
        let checkpoint =
            answer_checkpoint(&answer, identity, &self.verifier).map_err(Error::verify)?;
        self.witnesses
            .check(&checkpoint, &self.verifier, "checkpoint of the answer")?;
        let consistency = self.sync(&checkpoint)?;
        let lookup = verify_lookup(&answer, identity, checkpoint, ca).map_err(Error::verify)?;
        Ok(Some(VerifiedIdentity {
            answer,
            lookup,
            consistency,
        }))
    }
}

/// An identity answer whose every proof verified.
pub(crate) struct VerifiedIdentity {
    /// The raw answer (for handing on the proofs).
    pub(crate) answer: IdentityAnswer,
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

fn check_identity_arg(identity: &str) -> Result<(), Error> {
    if is_valid_identity(identity) {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{identity:?} is not a valid identity"
        )))
    }
}

/// `lookup IDENTITY`: JSON `identity`, `found`, `identity_status`, `checkpoint` {origin,size,root},
/// `consistency`, `previous_size`, `credentials` [{identity, serial, public_key, not_before,
/// not_after, log_index, type, replaces}].
pub(crate) fn lookup(online: &Online, ca: &Ca, identity: &str) -> Result<Outcome, Error> {
    check_identity_arg(identity)?;
    let Some(v) = online.verified_identity(ca, identity)? else {
        return Ok(Outcome::failed(
            json!({"identity": identity, "found": false, "identity_status": null,
                   "checkpoint": null, "consistency": null, "previous_size": null,
                   "credentials": []}),
            format!("{identity}: not enrolled (the server does not know it)"),
        ));
    };
    let mut human = format!(
        "{identity}: {} ({} current credential(s)), proofs verified against checkpoint size {} ({} with saved state)\n",
        v.lookup.status,
        v.lookup.credentials.len(),
        v.lookup.checkpoint.size(),
        v.consistency.word()
    );
    for c in &v.lookup.credentials {
        human.push_str(&format!("  {}\n", describe(c)));
    }
    let json = merge(
        json!({
            "identity": identity,
            "found": true,
            // Not `status`: that common field is the command's outcome (output.rs).
            "identity_status": v.lookup.status,
            "checkpoint": checkpoint_json(&v.lookup.checkpoint),
            "credentials": v.lookup.credentials.iter().map(logged_json).collect::<Vec<_>>(),
        }),
        consistency_json(v.consistency),
    );
    Ok(Outcome::ok(json, human))
}

/// `validate IDENTITY KEY`: exit 0 iff `KEY` is the key of a current, logged, unexpired,
/// unrevoked credential of `IDENTITY`. JSON `identity`, `public_key`, `valid` (bool), `reason`,
/// `credential` (as in lookup, or null), `proof` {`log_index`, `entry`, `inclusion_proof`,
/// `checkpoint`} (or null), `consistency`, `previous_size` (null when the identity is not
/// enrolled), `crl` (when valid).
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
    let Some(v) = online.verified_identity(ca, identity)? else {
        // No checkpoint was compared: null, as `lookup` and `credential` say it.
        return Ok(fail(
            kt_verify::validate::Invalid::NotEnrolled.to_string(),
            json!({"consistency": null, "previous_size": null}),
        ));
    };
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
    let raw = &v.answer.credentials[valid.index];
    let json = merge(
        json!({
            "identity": identity,
            "public_key": public_key,
            "valid": true,
            "reason": "current, logged, unexpired, unrevoked",
            "crl": crl_json(&valid.crl),
            "credential": logged_json(c),
            "proof": {
                "log_index": raw.log_index,
                "entry": raw.entry,
                "inclusion_proof": raw.inclusion_proof,
                "checkpoint": v.answer.checkpoint,
            },
        }),
        extra,
    );
    Ok(Outcome::ok(
        json,
        format!(
            "VALID: {}\nproven in checkpoint of size {}",
            describe(c),
            v.lookup.checkpoint.size()
        ),
    ))
}

/// `credential CERT`: chain, validity, CRL, presence among the identity's current logged
/// credentials, and checkpoint consistency. JSON `identity`, `serial`, `public_key`,
/// `not_before`, `not_after`, `state` (`current`|`expired`|`not_yet_valid`|`revoked`|
/// `not_current`|`not_enrolled`), `log_index` (or null), `checkpoint` (or null),
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
    let found = online.verified_identity(ca, &facts.identity)?;
    let (consistency, checkpoint) = match &found {
        Some(v) => (
            consistency_json(v.consistency),
            checkpoint_json(&v.lookup.checkpoint),
        ),
        None => (
            json!({"consistency": null, "previous_size": null}),
            Value::Null,
        ),
    };
    let logged = found.as_ref().and_then(|v| {
        v.lookup
            .credentials
            .iter()
            .find(|c| c.binding.certificate == parsed.der)
    });
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
                "log_index": logged.map(|c| c.log_index),
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
            format!("credential is CURRENT: {}", describe(c)),
        ),
        ("expired", _) | ("not_yet_valid", _) => Outcome::failed(
            json,
            format!("credential {who}: {}", time.err().map(|e| e.to_string()).unwrap_or_default()),
        ),
        ("revoked", _) => Outcome::failed(json, format!("credential {who} is REVOKED (on the CRL)")),
        ("not_enrolled", _) => Outcome::failed(
            json,
            format!("credential {who} is NOT IN THE LOG: the identity is unknown to the server"),
        ),
        _ => Outcome::failed(
            json,
            format!("credential {who} is NOT CURRENT: not among the identity's current logged credentials"),
        ),
    })
}
