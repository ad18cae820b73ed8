//! TLS for the HTTPS service: rustls with the ring provider, TLS 1.2 and 1.3, safe defaults.
//!
//! The certificate is the operator's (`--tls-cert`/`--tls-key`) or, by default, a self-signed
//! ECDSA P-256 certificate for localhost, 127.0.0.1, ::1 and the configured names, created at
//! first start (key file mode 0600), valid for [`GENERATED_VALIDITY`] from an hour before. Its
//! subject names the server. Clients trust it by pinning `tls-cert.pem`; the server warns at
//! start from [`RENEW_WARNING`] before it expires (renewal: docs/operations.md).

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::secret_file::write_atomic;

/// How long a generated certificate is valid: 825 days, as local development CAs give.
pub const GENERATED_VALIDITY: u64 = 825 * 86_400;
/// How long before a certificate expires the server starts warning at each start.
pub const RENEW_WARNING: u64 = 30 * 86_400;

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
    let subject = names.first().map_or("localhost", String::as_str);
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, subject);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "kt-as (self-signed)");
    let now = crate::unix_now();
    let at = |seconds: u64| {
        time::OffsetDateTime::from_unix_timestamp(i64::try_from(seconds).unwrap_or(i64::MAX))
            .map_err(|e| format!("TLS certificate validity: {e}"))
    };
    params.not_before = at(now.saturating_sub(3_600))?;
    params.not_after = at(now + GENERATED_VALIDITY)?;
    let signing_key = rcgen::KeyPair::generate().map_err(failed)?;
    let cert = params.self_signed(&signing_key).map_err(failed)?;
    write_atomic(key_path, signing_key.serialize_pem().as_bytes(), true)
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    write_atomic(cert_path, cert.pem().as_bytes(), false)
        .map_err(|e| format!("{}: {e}", cert_path.display()))
}

/// When the first certificate in the PEM file `cert_path` expires, Unix seconds.
pub fn expires_at(cert_path: &Path) -> Result<u64, String> {
    use der::Decode as _;
    let pem = std::fs::read(cert_path).map_err(|e| format!("{}: {e}", cert_path.display()))?;
    let first = CertificateDer::pem_slice_iter(&pem)
        .next()
        .ok_or_else(|| format!("no certificate in {}", cert_path.display()))?
        .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    let cert = x509_cert::Certificate::from_der(first.as_ref())
        .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    Ok(cert
        .tbs_certificate()
        .validity()
        .not_after
        .to_unix_duration()
        .as_secs())
}

/// Warns in the log if the certificate at `cert_path` has expired or expires soon.
pub fn warn_if_expiring(cert_path: &Path) {
    let now = crate::unix_now();
    match expires_at(cert_path) {
        Ok(not_after) if not_after <= now => tracing::warn!(
            file = %cert_path.display(),
            not_after,
            "the TLS certificate HAS EXPIRED: clients will refuse it; renew it (docs/operations.md)"
        ),
        Ok(not_after) if not_after <= now + RENEW_WARNING => tracing::warn!(
            file = %cert_path.display(),
            days_left = (not_after - now) / 86_400,
            "the TLS certificate expires soon; renew it (docs/operations.md)"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the TLS certificate's validity"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use der::Decode as _;

    #[test]
    fn the_generated_certificate_names_the_server_and_expires() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        generate_self_signed(&["as.example.test".into()], &cert, &key).unwrap();
        let pem = std::fs::read(&cert).unwrap();
        let der = CertificateDer::pem_slice_iter(&pem)
            .next()
            .unwrap()
            .unwrap();
        let parsed = x509_cert::Certificate::from_der(der.as_ref()).unwrap();
        let subject = parsed.tbs_certificate().subject().to_string();
        assert!(subject.contains("CN=as.example.test"), "{subject}");
        assert!(subject.contains("kt-as"), "{subject}");
        assert!(!subject.contains("rcgen"), "{subject}");
        let validity = parsed.tbs_certificate().validity();
        let now = crate::unix_now();
        let not_before = validity.not_before.to_unix_duration().as_secs();
        assert!((now - 3_700..=now).contains(&not_before), "{not_before}");
        let not_after = expires_at(&cert).unwrap();
        assert!(
            (now + GENERATED_VALIDITY - 60..=now + GENERATED_VALIDITY + 60).contains(&not_after),
            "{not_after}"
        );
        // And rustls serves it.
        assert!(server_config(&cert, &key).is_ok());
    }
}
