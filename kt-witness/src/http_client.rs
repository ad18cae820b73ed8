//! The HTTP(S) client both sides of witnessing use: a log submitting checkpoints to its
//! witnesses, and a witness fetching a log's tiles in the auditing mode.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use ureq::Agent;

/// A client whose requests fail after `timeout` and answer any status as a response (not an
/// error), trusting for HTTPS the PEM certificates of `tls_ca`, or the Web PKI roots without
/// it. `what` names the roots in errors.
pub fn agent(timeout: Duration, tls_ca: Option<&Path>, what: &str) -> Result<Agent, String> {
    let roots = match tls_ca {
        None => RootCerts::WebPki,
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
            let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(PemItem::Certificate(c)) => Some(c.to_owned()),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(format!("{what} {}: no PEM certificate", path.display()));
            }
            RootCerts::Specific(Arc::new(certs))
        }
    };
    Ok(Agent::config_builder()
        .tls_config(TlsConfig::builder().root_certs(roots).build())
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into())
}
