//! How verified credentials are shown: their JSON fields and one-line summaries (the checks
//! themselves are `kt_verify::bundle`).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_verify::bundle::{LoggedCredential, VerifiedBundle};
use serde_json::{json, Value};

/// JSON fields of a logged credential: `identity`, `serial`, `public_key`, `not_before`,
/// `not_after`, `log_index`, `type`, `replaces`.
pub(crate) fn logged_json(logged: &LoggedCredential) -> Value {
    json!({
        "identity": logged.binding.identity,
        "serial": logged.binding.serial_hex,
        "public_key": B64.encode(logged.binding.public_key),
        "not_before": logged.binding.not_before,
        "not_after": logged.binding.not_after,
        "log_index": logged.log_index,
        "type": logged.kind,
        "replaces": logged.binding.replaces.as_ref().map(|r| r.1.clone()),
    })
}

/// JSON fields of a verified bundle: those of [`logged_json`] plus `checkpoint_size`,
/// `checkpoint_root` (base64), `origin`, `chain_has_ca`.
pub(crate) fn bundle_json(bundle: &VerifiedBundle) -> Value {
    let mut v = logged_json(&bundle.logged);
    if let Value::Object(map) = &mut v {
        map.insert("checkpoint_size".into(), json!(bundle.checkpoint.size()));
        map.insert(
            "checkpoint_root".into(),
            json!(B64.encode(bundle.checkpoint.root().0)),
        );
        map.insert(
            "origin".into(),
            json!(bundle.checkpoint.checkpoint().origin.clone()),
        );
        map.insert("chain_has_ca".into(), json!(bundle.chain_has_ca));
    }
    v
}

/// Human summary of a verified credential.
pub(crate) fn describe(logged: &LoggedCredential) -> String {
    format!(
        "{} serial {} key {} valid {}..{} logged at index {} ({})",
        logged.binding.identity,
        logged.binding.serial_hex,
        B64.encode(logged.binding.public_key),
        logged.binding.not_before,
        logged.binding.not_after,
        logged.log_index,
        logged.kind
    )
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
