//! TLS: rustls with the ring provider and its safe default protocol versions.
//!
//! The certificate is the operator's (`--tls-cert`/`--tls-key`) or, by default, a self-signed
//! certificate for localhost, 127.0.0.1, ::1 and the `--tls-name`s, created at first start in
//! the data folder (key mode 0600, written atomically) and valid for [`GENERATED_VALIDITY`].
//! Logs pin it (`tls-cert.pem`), or the operator puts the witness behind a proxy and runs it
//! with `--plain-http`.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::files::write_atomic;

/// How long a generated certificate is valid: 825 days.
pub const GENERATED_VALIDITY: u64 = 825 * 86_400;

/// Creates a self-signed certificate and key for `names` at `cert_path` and `key_path`.
pub fn generate_self_signed(
    names: &[String],
    cert_path: &Path,
    key_path: &Path,
) -> Result<(), String> {
    let mut all = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    all.extend(names.iter().cloned());
    let failed = |e: rcgen::Error| format!("TLS certificate: {e}");
    let mut params = rcgen::CertificateParams::new(all).map_err(failed)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        names.first().map_or("localhost", String::as_str),
    );
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "kt-witness (self-signed)");
    let now = crate::witness::system_clock();
    let at = |seconds: u64| {
        time::OffsetDateTime::from_unix_timestamp(i64::try_from(seconds).unwrap_or(i64::MAX))
            .map_err(|e| format!("TLS certificate validity: {e}"))
    };
    params.not_before = at(now.saturating_sub(3_600))?;
    params.not_after = at(now + GENERATED_VALIDITY)?;
    let key = rcgen::KeyPair::generate().map_err(failed)?;
    let cert = params.self_signed(&key).map_err(failed)?;
    write_atomic(key_path, key.serialize_pem().as_bytes(), true)
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    write_atomic(cert_path, cert.pem().as_bytes(), false)
        .map_err(|e| format!("{}: {e}", cert_path.display()))
}

/// The rustls configuration serving the chain in `cert_path` with the key in `key_path`.
pub fn server_config(cert_path: &Path, key_path: &Path) -> Result<ServerConfig, String> {
    let certs = CertificateDer::pem_file_iter(cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("TLS certificate {}: {e}", cert_path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", cert_path.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| format!("TLS key {}: {e}", key_path.display()))?;
    ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS certificate and key: {e}"))
}
