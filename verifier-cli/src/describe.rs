//! How verified credentials and states are shown: their JSON fields and one-line summaries
//! (the checks themselves are `kt_verify`'s).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_log::checkpoint::VerifiedCheckpoint;
use kt_protocol::directory::record::{Change, Status, VersionRecord};
use kt_protocol::entry::Binding;
use kt_verify::bundle::VerifiedBundle;
use serde_json::{json, Value};

/// JSON fields of a credential of `identity`: `identity`, `serial`, `public_key`,
/// `not_before`, `not_after`.
pub(crate) fn credential_json(identity: &str, binding: &Binding) -> Value {
    json!({
        "identity": identity,
        "serial": binding.serial.to_hex(),
        "public_key": B64.encode(binding.public_key),
        "not_before": binding.not_before,
        "not_after": binding.not_after,
    })
}

/// JSON fields of a verified bundle: those of [`credential_json`] plus `version` (of the
/// identity's state that holds it), `checkpoint_size`, `checkpoint_root` (base64), `origin`,
/// `chain_has_ca`.
pub(crate) fn bundle_json(bundle: &VerifiedBundle) -> Value {
    let identity = &bundle.identity;
    let mut v = credential_json(&identity.identity, &bundle.binding);
    if let Value::Object(map) = &mut v {
        let checkpoint = &identity.checkpoint;
        let version = identity.state.as_ref().map(|s| s.record.version);
        map.insert("version".into(), json!(version));
        map.insert("checkpoint_size".into(), json!(checkpoint.size()));
        map.insert(
            "checkpoint_root".into(),
            json!(B64.encode(checkpoint.root().0)),
        );
        map.insert(
            "origin".into(),
            json!(checkpoint.checkpoint().origin.clone()),
        );
        map.insert("chain_has_ca".into(), json!(bundle.chain_has_ca));
    }
    v
}

/// Human summary of a credential of `identity`.
pub(crate) fn describe(identity: &str, binding: &Binding) -> String {
    format!(
        "{identity} serial {} key {} valid {}..{}",
        binding.serial.to_hex(),
        B64.encode(binding.public_key),
        binding.not_before,
        binding.not_after,
    )
}

/// The status word of a record (`active`, `revoked`).
pub(crate) fn status_word(status: Status) -> &'static str {
    match status {
        Status::Active => "active",
        Status::Revoked => "revoked",
    }
}

/// JSON of a version record's change: `type` and its fields.
pub(crate) fn change_json(record: &VersionRecord) -> Value {
    match &record.change {
        Change::Issue { serial, enrollment } => {
            json!({"type": "issue", "serial": serial.to_hex(), "enrollment": enrollment.to_hex()})
        }
        Change::Rotate { serial, replaces } => {
            json!({"type": "rotate", "serial": serial.to_hex(), "replaces": replaces.to_hex()})
        }
        Change::Revoke {
            serials,
            scope,
            reason,
            admin,
        } => {
            json!({"type": "revoke", "serials": serials.iter().map(|s| s.to_hex()).collect::<Vec<_>>(),
                    "scope": scope.name(), "reason": reason.name(), "admin": admin})
        }
        Change::Enable { admin } => json!({"type": "enable", "admin": admin}),
    }
}

/// Lowercase hex of a serial's bytes (for serials known only from a certificate).
pub(crate) fn serial_hex(serial: &[u8]) -> String {
    kt_protocol::entry::encode_hex(serial)
}

/// JSON fields of a verified CRL: `this_update`, `next_update`, `revoked_count`.
pub(crate) fn crl_json(crl: &kt_verify::credential::Crl) -> Value {
    json!({
        "this_update": crl.this_update,
        "next_update": crl.next_update,
        "revoked_count": crl.revoked_count(),
    })
}

/// JSON of a checkpoint: `origin`, `size`, `root` (base64).
pub(crate) fn checkpoint_json(cp: &VerifiedCheckpoint) -> serde_json::Value {
    json!({
        "origin": cp.checkpoint().origin,
        "size": cp.size(),
        "root": B64.encode(cp.root().0),
    })
}
