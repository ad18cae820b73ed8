//! The witness's configuration file (TOML): its name and the logs it witnesses.
//!
//! ```toml
//! # The cosigner name: a schema-less URL that identifies this witness.
//! name = "witness.example.com/w1"
//!
//! [[log]]
//! origin = "example.com/log"
//! # Signed-note verifier keys (Ed25519, type 0x01) trusted for this origin; any one suffices.
//! keys = ["example.com/log+1c997c7b+AQ..."]
//!
//! # Optional, only for logs of this project's directory format (see `crate::auditor`):
//! # before cosigning, fetch the new entries from the log's tiles and check the directory's
//! # rules for them.
//! [log.audit]
//! # The tlog-tiles prefix: `<url>/tile/entries/...` are the entry bundles.
//! url = "https://as.example.com/log"
//! # PEM roots trusted for an HTTPS url (default: the Web PKI roots).
//! tls_ca = "/etc/kt-witness/as-ca.pem"
//! ```
//!
//! Guarantee of [`Config::parse`]: unknown fields are refused; every origin is non-empty, has
//! no control characters and appears once; every log has at least one key and every key
//! parses (its key id matches its name and key), with no key listed twice for one log; an
//! audit url is `http://` or `https://`.

use std::collections::HashSet;

use kt_log::note::NoteVerifier;
use serde::Deserialize;

/// The parsed, checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The witness's cosigner name.
    pub name: String,
    /// The logs it witnesses.
    pub logs: Vec<LogConfig>,
}

/// One witnessed log.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// The checkpoint origin line that identifies the log.
    pub origin: String,
    /// The log's note verifier keys.
    pub keys: Vec<NoteVerifier>,
    /// Whether and where to audit the directory's rules before cosigning.
    pub audit: Option<AuditConfig>,
}

/// The auditing mode of one log: where its tiles are.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The tlog-tiles URL prefix (no trailing slash needed).
    pub url: String,
    /// PEM roots trusted for an HTTPS url; the Web PKI roots without it.
    pub tls_ca: Option<std::path::PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    name: String,
    #[serde(default)]
    log: Vec<RawLog>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    origin: String,
    keys: Vec<String>,
    audit: Option<AuditConfig>,
}

impl Config {
    /// Parses and checks a configuration file's text (see the module guarantees).
    pub fn parse(text: &str) -> Result<Config, String> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        if raw.name.is_empty()
            || raw.name.contains('+')
            || raw.name.chars().any(char::is_whitespace)
        {
            return Err(format!("invalid witness name {:?}", raw.name));
        }
        let mut origins = HashSet::new();
        let mut logs = Vec::with_capacity(raw.log.len());
        for log in raw.log {
            if log.origin.is_empty() || log.origin.chars().any(char::is_control) {
                return Err(format!("invalid origin {:?}", log.origin));
            }
            if !origins.insert(log.origin.clone()) {
                return Err(format!("origin {:?} is configured twice", log.origin));
            }
            if log.keys.is_empty() {
                return Err(format!("log {:?} has no keys", log.origin));
            }
            let mut keys: Vec<NoteVerifier> = Vec::with_capacity(log.keys.len());
            for key in &log.keys {
                let key = NoteVerifier::parse(key)
                    .map_err(|e| format!("log {:?}: key {key:?}: {e}", log.origin))?;
                if keys.contains(&key) {
                    return Err(format!("log {:?}: a key is listed twice", log.origin));
                }
                keys.push(key);
            }
            if let Some(audit) = &log.audit {
                let url = audit.url.as_str();
                let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
                if !scheme_ok || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(format!("log {:?}: invalid audit url {url:?}", log.origin));
                }
            }
            logs.push(LogConfig {
                origin: log.origin,
                keys,
                audit: log.audit,
            });
        }
        Ok(Config {
            name: raw.name,
            logs,
        })
    }

    /// Reads and parses the file at `path`.
    pub fn load(path: &std::path::Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Config::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kt_log::note::NoteSigner;

    #[test]
    fn parses_and_checks() {
        let key = NoteSigner::generate("example.com/log")
            .unwrap()
            .verifier()
            .to_vkey();
        let good = format!(
            "name = \"w.example/w1\"\n[[log]]\norigin = \"example.com/log\"\nkeys = [\"{key}\"]\n"
        );
        let config = Config::parse(&good).unwrap();
        assert_eq!(config.logs[0].keys[0].to_vkey(), key);
        assert_eq!(config.logs[0].audit, None);
        let audited = format!("{good}[log.audit]\nurl = \"https://as.example/log\"\n");
        let config = Config::parse(&audited).unwrap();
        assert_eq!(
            config.logs[0].audit.as_ref().map(|a| a.url.as_str()),
            Some("https://as.example/log")
        );
        for bad in [
            good.replace("w.example/w1", "w 1"),
            format!("{good}[[log]]\norigin = \"example.com/log\"\nkeys = [\"{key}\"]\n"),
            good.replace(&format!("\"{key}\""), ""),
            good.replace(&format!("\"{key}\""), &format!("\"{key}\", \"{key}\"")),
            good.replace(&key, "example.com/log+00000000+AQ=="),
            format!("{good}extra = 1\n"),
            good.replace("origin = \"example.com/log\"", "origin = \"\""),
            format!("{good}[log.audit]\nurl = \"ftp://as.example/log\"\n"),
            format!("{good}[log.audit]\nurl = \"https://as.example/log\"\nother = 1\n"),
        ] {
            assert!(Config::parse(&bad).is_err(), "{bad}");
        }
    }
}
