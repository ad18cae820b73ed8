//! Configuration: flags and environment variables over an optional TOML file over defaults.
//!
//! Every setting can be given as a flag (`--listen`), an environment variable (`AS_LISTEN`),
//! or a key of the file named by `--config` (`listen = "…"`); a flag or variable wins over the
//! file, the file over the default. Unknown keys in the file are refused, so a typo is an error
//! rather than a silently ignored setting.

use std::path::{Path, PathBuf};

use clap::Args;
use kt_protocol::identity::IdentityPolicy;
use serde::Deserialize;

use crate::rotation::RotationBudget;

/// Default listen address: loopback only until an operator chooses otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";
/// Default log origin (the checkpoint's first line and the note key's name).
pub const DEFAULT_ORIGIN: &str = "localhost/kt-as";
/// Default data folder.
pub const DEFAULT_DATA: &str = "as-data";
/// Longest credential lifetime accepted: 10 years.
pub const MAX_CREDENTIAL_LIFETIME: u64 = 10 * 365 * 24 * 3600;
/// Default credential lifetime: 30 days.
pub const DEFAULT_CREDENTIAL_LIFETIME: u64 = 30 * 24 * 3600;

/// Default least time between two rotations of one identity: a minute.
pub const DEFAULT_ROTATION_MIN_INTERVAL: u64 = 60;
/// Default most rotations of one identity in 24 hours.
pub const DEFAULT_ROTATIONS_PER_DAY: u32 = 24;
/// Default deadline for a request body: 5 seconds.
pub const DEFAULT_BODY_TIMEOUT: u64 = 5;
/// Default most open connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default time between two rounds of witness cosigning, milliseconds (Tessera's: about 1 s).
pub const DEFAULT_WITNESS_CADENCE_MS: u64 = 1000;
/// Default time one witness has to answer, milliseconds.
pub const DEFAULT_WITNESS_TIMEOUT_MS: u64 = 1000;
const DAY: u64 = 86_400;

/// `as-server serve` settings as flags and environment variables.
#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (flags and environment win over it).
    #[arg(long, env = "AS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data folder: keys, certificates, the log and the state [default: as-data].
    #[arg(long, env = "AS_DATA")]
    pub data: Option<PathBuf>,
    /// Address to listen on, host:port (port 0 picks a free one) [default: 127.0.0.1:8443].
    #[arg(long, env = "AS_LISTEN")]
    pub listen: Option<String>,
    /// Log origin, e.g. `as.example.com/log` [default: localhost/kt-as]. Fixed at first start.
    #[arg(long, env = "AS_ORIGIN")]
    pub origin: Option<String>,
    /// Common name of the CA certificate created at first start [default: KT-AS Credential CA].
    #[arg(long, env = "AS_CA_NAME")]
    pub ca_name: Option<String>,
    /// Credential lifetime in seconds [default: 2592000, 30 days].
    #[arg(long, env = "AS_CREDENTIAL_LIFETIME")]
    pub credential_lifetime: Option<u64>,
    /// Most live credentials (devices) per identity [default: 10].
    #[arg(long, env = "AS_MAX_CREDENTIALS")]
    pub max_credentials: Option<usize>,
    /// TLS certificate chain (PEM) to use instead of the generated self-signed one.
    #[arg(long, env = "AS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) that goes with --tls-cert.
    #[arg(long, env = "AS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Extra DNS names or IPs for the generated TLS certificate (besides localhost, 127.0.0.1, ::1).
    #[arg(long = "tls-name", env = "AS_TLS_NAMES", value_delimiter = ',')]
    pub tls_names: Vec<String>,
    /// Write the admin token created at first start to this file (mode 0600) instead of stdout.
    #[arg(long, env = "AS_ADMIN_TOKEN_OUT")]
    pub admin_token_out: Option<PathBuf>,
    /// Most actions waiting for the sequencer before 503 [default: 16384].
    #[arg(long, env = "AS_QUEUE_CAPACITY")]
    pub queue_capacity: Option<usize>,
    /// Most entries per group commit [default: 1024].
    #[arg(long, env = "AS_MAX_BATCH")]
    pub max_batch: Option<usize>,
    /// HTTP worker threads [default: one per core].
    #[arg(long, env = "AS_WORKERS")]
    pub workers: Option<usize>,
    /// Enroll domains with punycode (xn--) labels, which can look like other domains when
    /// shown as Unicode [default: false].
    #[arg(long, env = "AS_ALLOW_PUNYCODE")]
    pub allow_punycode: Option<bool>,
    /// Enroll `+` sub-addresses such as alice+work@example.com [default: true].
    #[arg(long, env = "AS_ALLOW_SUBADDRESS")]
    pub allow_subaddress: Option<bool>,
    /// URI schemes of the URI identities it enrolls, comma-separated; "" for mailboxes only
    /// [default: im,xmpp,tel,https].
    #[arg(long, env = "AS_IDENTITY_SCHEMES", value_delimiter = ',')]
    pub identity_schemes: Option<Vec<String>>,
    /// Least time between two rotations of one identity, seconds; 0 for none [default: 60].
    #[arg(long, env = "AS_ROTATION_MIN_INTERVAL")]
    pub rotation_min_interval: Option<u64>,
    /// Most rotations of one identity in any 24 hours [default: 24].
    #[arg(long, env = "AS_ROTATIONS_PER_DAY")]
    pub rotations_per_day: Option<u32>,
    /// Seconds a client has to send a request body once its head arrived; 408 after
    /// [default: 5].
    #[arg(long, env = "AS_BODY_TIMEOUT")]
    pub body_timeout: Option<u64>,
    /// Most open client connections, all workers together; more wait to be accepted. Keep it
    /// well below the process's file descriptor limit [default: 1024].
    #[arg(long, env = "AS_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Witness policy (C2SP tlog-policy): send every new checkpoint to its witnesses and
    /// serve at /log/checkpoint the newest one its quorum cosigned (docs/witness.md)
    /// [default: none, checkpoints are signed by the log only].
    #[arg(long, env = "AS_WITNESS_POLICY")]
    pub witness_policy: Option<PathBuf>,
    /// Milliseconds between two rounds of cosigning [default: 1000].
    #[arg(long, env = "AS_WITNESS_CADENCE_MS")]
    pub witness_cadence_ms: Option<u64>,
    /// Milliseconds one witness has to answer an add-checkpoint [default: 1000].
    #[arg(long, env = "AS_WITNESS_TIMEOUT_MS")]
    pub witness_timeout_ms: Option<u64>,
    /// PEM certificates to trust for HTTPS witnesses instead of the Web PKI roots.
    #[arg(long, env = "AS_WITNESS_TLS_CA")]
    pub witness_tls_ca: Option<PathBuf>,
    /// Where the log is: `postgres://…` (a libpq URL) for a PostgreSQL database that several
    /// frontends share (docs/operations.md, "Running on PostgreSQL") [default: the data folder].
    #[arg(long, env = "AS_STORE", hide_env_values = true)]
    pub store: Option<String>,
    /// PEM certificates to trust for the database's TLS certificate instead of the Web PKI
    /// roots (`--store postgres://…` over TCP).
    #[arg(long, env = "AS_STORE_CA")]
    pub store_ca: Option<PathBuf>,
}

/// The settings file, every key optional.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data: Option<PathBuf>,
    listen: Option<String>,
    origin: Option<String>,
    ca_name: Option<String>,
    credential_lifetime: Option<u64>,
    max_credentials: Option<usize>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_names: Option<Vec<String>>,
    admin_token_out: Option<PathBuf>,
    queue_capacity: Option<usize>,
    max_batch: Option<usize>,
    workers: Option<usize>,
    allow_punycode: Option<bool>,
    allow_subaddress: Option<bool>,
    identity_schemes: Option<Vec<String>>,
    rotation_min_interval: Option<u64>,
    rotations_per_day: Option<u32>,
    body_timeout: Option<u64>,
    max_connections: Option<usize>,
    witness_policy: Option<PathBuf>,
    witness_cadence_ms: Option<u64>,
    witness_timeout_ms: Option<u64>,
    witness_tls_ca: Option<PathBuf>,
    store: Option<String>,
    store_ca: Option<PathBuf>,
}

/// Where the log is stored.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// kt-log's `FileStore` in the data folder: one server, no database.
    Embedded,
    /// kt-log's `PostgresStore` at this URL, which several frontends may share. The URL may
    /// hold a password: it is never printed (see the `Debug` impl).
    Postgres(String),
}

impl std::fmt::Debug for StoreChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreChoice::Embedded => f.write_str("Embedded"),
            StoreChoice::Postgres(_) => f.write_str("Postgres(<url>)"),
        }
    }
}

impl StoreChoice {
    /// `postgres://…` or `postgresql://…`; anything else is refused (the embedded store is
    /// chosen by giving none).
    fn parse(given: Option<String>) -> Result<StoreChoice, String> {
        match given {
            None => Ok(StoreChoice::Embedded),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(StoreChoice::Postgres(url))
            }
            Some(_) => Err(
                "store: expected a postgres:// or postgresql:// URL (leave it unset for the \
                 embedded store in the data folder)"
                    .into(),
            ),
        }
    }
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Data folder.
    pub data: PathBuf,
    /// Listen address.
    pub listen: String,
    /// Log origin.
    pub origin: String,
    /// CA common name (first start only).
    pub ca_name: String,
    /// Credential lifetime, seconds.
    pub credential_lifetime: u64,
    /// Live credentials per identity.
    pub max_credentials: usize,
    /// Operator-supplied TLS certificate and key, if any.
    pub tls_files: Option<(PathBuf, PathBuf)>,
    /// Extra names for the generated TLS certificate.
    pub tls_names: Vec<String>,
    /// Where to write a newly created admin token.
    pub admin_token_out: Option<PathBuf>,
    /// Sequencer queue capacity.
    pub queue_capacity: usize,
    /// Group commit size limit.
    pub max_batch: usize,
    /// HTTP workers.
    pub workers: Option<usize>,
    /// What new enrollments may name.
    pub identity_policy: IdentityPolicy,
    /// How often one identity may rotate.
    pub rotation_budget: RotationBudget,
    /// Deadline for a request body, seconds.
    pub body_timeout: u64,
    /// Open connections, all workers together.
    pub max_connections: usize,
    /// Witness cosigning, if a policy is given.
    pub witnessing: Option<WitnessingConfig>,
    /// Where the log is.
    pub store: StoreChoice,
    /// The CA certificates the database's TLS certificate must chain to (the Web PKI roots
    /// without).
    pub store_ca: Option<PathBuf>,
}

/// Where the witness policy is and how the log talks to its witnesses.
#[derive(Debug, Clone)]
pub struct WitnessingConfig {
    /// The C2SP tlog-policy file.
    pub policy: PathBuf,
    /// Time between two rounds of cosigning.
    pub cadence: std::time::Duration,
    /// Time one witness has to answer.
    pub timeout: std::time::Duration,
    /// PEM roots for HTTPS witnesses (`None`: the Web PKI roots).
    pub tls_ca: Option<PathBuf>,
}

/// The URI schemes setting: the default list unless given; empty names dropped, so that ""
/// means mailboxes only; each must be a scheme as URI identities spell it.
fn uri_schemes(given: Option<Vec<String>>) -> Result<Vec<String>, String> {
    let Some(given) = given else {
        return Ok(kt_protocol::identity::DEFAULT_URI_SCHEMES
            .map(String::from)
            .to_vec());
    };
    let schemes: Vec<String> = given.into_iter().filter(|s| !s.is_empty()).collect();
    for scheme in &schemes {
        if !kt_protocol::identity::is_scheme(scheme) {
            return Err(format!(
                "identity_schemes: {scheme:?} is not a lowercase URI scheme"
            ));
        }
    }
    Ok(schemes)
}

impl ServeArgs {
    /// Resolves the flags over the file (if any) over the defaults.
    pub fn resolve(&self) -> Result<Config, String> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let tls_cert = self.tls_cert.clone().or(file.tls_cert);
        let tls_key = self.tls_key.clone().or(file.tls_key);
        let tls_files = match (tls_cert, tls_key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => return Err("tls_cert and tls_key go together".into()),
        };
        let config = Config {
            data: self
                .data
                .clone()
                .or(file.data)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA)),
            listen: self
                .listen
                .clone()
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.into()),
            origin: self
                .origin
                .clone()
                .or(file.origin)
                .unwrap_or_else(|| DEFAULT_ORIGIN.into()),
            ca_name: self
                .ca_name
                .clone()
                .or(file.ca_name)
                .unwrap_or_else(|| "KT-AS Credential CA".into()),
            credential_lifetime: self
                .credential_lifetime
                .or(file.credential_lifetime)
                .unwrap_or(DEFAULT_CREDENTIAL_LIFETIME),
            max_credentials: self.max_credentials.or(file.max_credentials).unwrap_or(10),
            tls_files,
            tls_names: if self.tls_names.is_empty() {
                file.tls_names.unwrap_or_default()
            } else {
                self.tls_names.clone()
            },
            admin_token_out: self.admin_token_out.clone().or(file.admin_token_out),
            queue_capacity: self.queue_capacity.or(file.queue_capacity).unwrap_or(16384),
            max_batch: self.max_batch.or(file.max_batch).unwrap_or(1024),
            workers: self.workers.or(file.workers),
            identity_policy: IdentityPolicy {
                allow_punycode: self.allow_punycode.or(file.allow_punycode).unwrap_or(false),
                allow_subaddress: self
                    .allow_subaddress
                    .or(file.allow_subaddress)
                    .unwrap_or(true),
                uri_schemes: uri_schemes(self.identity_schemes.clone().or(file.identity_schemes))?,
            },
            rotation_budget: RotationBudget {
                min_interval: self
                    .rotation_min_interval
                    .or(file.rotation_min_interval)
                    .unwrap_or(DEFAULT_ROTATION_MIN_INTERVAL),
                per_day: self
                    .rotations_per_day
                    .or(file.rotations_per_day)
                    .unwrap_or(DEFAULT_ROTATIONS_PER_DAY),
            },
            body_timeout: self
                .body_timeout
                .or(file.body_timeout)
                .unwrap_or(DEFAULT_BODY_TIMEOUT),
            max_connections: self
                .max_connections
                .or(file.max_connections)
                .unwrap_or(DEFAULT_MAX_CONNECTIONS),
            witnessing: match self.witness_policy.clone().or(file.witness_policy) {
                None => None,
                Some(policy) => Some(WitnessingConfig {
                    policy,
                    cadence: std::time::Duration::from_millis(
                        self.witness_cadence_ms
                            .or(file.witness_cadence_ms)
                            .unwrap_or(DEFAULT_WITNESS_CADENCE_MS),
                    ),
                    timeout: std::time::Duration::from_millis(
                        self.witness_timeout_ms
                            .or(file.witness_timeout_ms)
                            .unwrap_or(DEFAULT_WITNESS_TIMEOUT_MS),
                    ),
                    tls_ca: self.witness_tls_ca.clone().or(file.witness_tls_ca),
                }),
            },
            store: StoreChoice::parse(self.store.clone().or(file.store))?,
            store_ca: self.store_ca.clone().or(file.store_ca),
        };
        if !(60..=MAX_CREDENTIAL_LIFETIME).contains(&config.credential_lifetime) {
            return Err("credential_lifetime must be between 60 seconds and 10 years".into());
        }
        if config.max_credentials == 0 || config.max_batch == 0 || config.queue_capacity == 0 {
            return Err("max_credentials, max_batch and queue_capacity must be positive".into());
        }
        if !(1..=crate::rotation::MAX_PER_DAY).contains(&config.rotation_budget.per_day) {
            return Err("rotations_per_day must be between 1 and 1000".into());
        }
        if config.rotation_budget.min_interval > DAY {
            return Err("rotation_min_interval must be at most a day (86400)".into());
        }
        if !(1..=300).contains(&config.body_timeout) {
            return Err("body_timeout must be between 1 and 300 seconds".into());
        }
        if config.max_connections == 0 {
            return Err("max_connections must be positive".into());
        }
        if let Some(w) = &config.witnessing {
            let ms = |d: std::time::Duration| d.as_millis();
            if !(10..=60_000).contains(&ms(w.cadence)) || !(10..=60_000).contains(&ms(w.timeout)) {
                return Err(
                    "witness_cadence_ms and witness_timeout_ms must be between 10 and 60000".into(),
                );
            }
        }
        Ok(config)
    }
}

fn read_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("as.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9\"\norigin = \"f.example/log\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(file.clone()),
            origin: Some("flag.example/log".into()),
            ..ServeArgs::default()
        };
        let config = args.resolve().unwrap();
        assert_eq!(config.listen, "127.0.0.1:9");
        assert_eq!(config.origin, "flag.example/log");
        assert_eq!(config.data, PathBuf::from(DEFAULT_DATA));

        std::fs::write(&file, "lsiten = \"x\"\n").unwrap();
        assert!(args.resolve().unwrap_err().contains("lsiten"));
    }

    #[test]
    fn the_store_is_embedded_unless_a_postgres_url_is_given_and_the_url_is_never_printed() {
        assert_eq!(
            ServeArgs::default().resolve().unwrap().store,
            StoreChoice::Embedded
        );
        let url = "postgres://as:s3cret@db.example/as";
        let config = ServeArgs {
            store: Some(url.into()),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(config.store, StoreChoice::Postgres(url.into()));
        assert!(!format!("{config:?}").contains("s3cret"));
        let refused = ServeArgs {
            store: Some("mysql://db.example/as".into()),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap_err();
        assert!(refused.contains("postgres://"), "{refused}");
    }
}
