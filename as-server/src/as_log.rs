//! The log as the AS stores it: kt-log's `Log` over the store the configuration chose — the
//! durable `FileStore` in the data folder, or a `PostgresStore` that several frontends share.
//! Its own module so that the sequencer (its only writer in this process) and the readers
//! (directory, recovery, witnessing) name it without depending on one another.

use kt_log::log::Log;
use kt_log::store::LogStore;

/// The log type the AS runs on.
pub type AsLog = Log<Box<dyn LogStore>>;

/// Opens the store `choice` names: the `FileStore` in `log_folder`, or the PostgreSQL
/// database (its schema created or checked, see kt-log's `PostgresStore`), its TLS
/// certificate verified against `database_roots` ([`database_roots`]). The URL is not
/// repeated in an error: it may hold a password.
pub fn open_store(
    choice: &crate::config::StoreChoice,
    log_folder: &std::path::Path,
    database_roots: &rustls::RootCertStore,
) -> Result<Box<dyn LogStore>, String> {
    use crate::config::StoreChoice;
    match choice {
        StoreChoice::Embedded => kt_log::store::FileStore::open(log_folder)
            .map(|store| Box::new(store) as Box<dyn LogStore>)
            .map_err(|e| format!("log store: {e}")),
        StoreChoice::Postgres(url) => {
            warn_if_tls_is_not_required(url);
            kt_log::store::PostgresStore::open_tls(url, database_roots.clone())
                .map(|store| Box::new(store) as Box<dyn LogStore>)
                .map_err(|e| format!("log store on PostgreSQL: {e}"))
        }
    }
}

/// The roots a database's TLS certificate must chain to: the PEM certificates of `store_ca`,
/// or the Web PKI roots without it (as for HTTPS witnesses).
pub fn database_roots(store_ca: Option<&std::path::Path>) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let Some(path) = store_ca else {
        return Ok(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    };
    let read = |e: &dyn std::fmt::Display| format!("store_ca {}: {e}", path.display());
    let pem = std::fs::read(path).map_err(|e| read(&e))?;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        roots
            .add(certificate.map_err(|e| read(&e))?)
            .map_err(|e| read(&e))?;
    }
    if roots.is_empty() {
        return Err(read(&"no PEM certificate"));
    }
    Ok(roots)
}

/// Warns at start if the database is reached over TCP without `sslmode=require`: with
/// `prefer` (libpq's and the client's default) an attacker on the path can answer that the
/// server has no TLS, and the connection goes on in plain text. (A certificate that does not
/// verify always fails the connection.)
fn warn_if_tls_is_not_required(url: &str) {
    let Ok(config) = url.parse::<tokio_postgres::Config>() else {
        return; // The open reports it.
    };
    let over_tcp = config
        .get_hosts()
        .iter()
        .any(|host| matches!(host, tokio_postgres::config::Host::Tcp(_)));
    if over_tcp && config.get_ssl_mode() != tokio_postgres::config::SslMode::Require {
        tracing::warn!(
            "the database is reached over TCP without sslmode=require: an attacker on the path \
             could keep the connection in plain text; add sslmode=require to the store URL"
        );
    }
}
