//! TLS for the HTTPS service: rustls with the ring provider, TLS 1.2 and 1.3, safe defaults.
//!
//! The certificate is the operator's (`--tls-cert`/`--tls-key`) or, by default, a self-signed
//! ECDSA P-256 certificate for localhost, 127.0.0.1, ::1 and the configured names, created at
//! first start (key file mode 0600). Clients trust it by pinning `tls-cert.pem`.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::secret_file::write_atomic;

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
    let certified =
        rcgen::generate_simple_self_signed(all).map_err(|e| format!("TLS certificate: {e}"))?;
    write_atomic(
        key_path,
        certified.signing_key.serialize_pem().as_bytes(),
        true,
    )
    .map_err(|e| format!("{}: {e}", key_path.display()))?;
    write_atomic(cert_path, certified.cert.pem().as_bytes(), false)
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
