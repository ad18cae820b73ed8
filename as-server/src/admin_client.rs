//! `as-server admin …`: the admin's HTTPS client of a running server, and the small HTTPS
//! client it is built on (also used by the integration tests and the load generator).
//!
//! TLS trust is pinned: the client trusts exactly the certificate file it is given (by default
//! the server's generated `tls-cert.pem`), never the system roots by accident. The admin token
//! is read from a file or the environment, never from the command line, where other users
//! could see it in the process list.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::Agent;

use crate::entry::RevocationReason;
use kt_protocol::api::{EnableRequest, EnrollmentRequest, RevocationRequest};
use kt_protocol::identity::path_segment;

/// An HTTPS client pinned to one server certificate.
#[derive(Clone)]
pub struct HttpsClient {
    agent: Agent,
    base: String,
}

/// A response: status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Content type, if any.
    pub content_type: String,
    /// Body bytes.
    pub body: Vec<u8>,
    /// `Retry-After`, if any.
    pub retry_after: Option<String>,
}

impl Answer {
    /// The body as JSON (Null if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

impl HttpsClient {
    /// A client of `base` (e.g. `https://127.0.0.1:8443`) trusting the PEM certificate `ca_pem`.
    pub fn new(base: &str, ca_pem: &[u8]) -> Result<HttpsClient, String> {
        let cert = Certificate::from_pem(ca_pem)
            .map_err(|e| format!("TLS trust certificate: {e}"))?
            .to_owned();
        let tls = TlsConfig::builder()
            .root_certs(RootCerts::Specific(Arc::new(vec![cert])))
            .build();
        let agent: Agent = Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .max_idle_connections_per_host(64)
            .build()
            .into();
        Ok(HttpsClient {
            agent,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    fn finish(
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Answer, String> {
        let mut response = result.map_err(|e| e.to_string())?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type").unwrap_or_default();
        let retry_after = header("retry-after");
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| e.to_string())?;
        Ok(Answer {
            status,
            content_type,
            body,
            retry_after,
        })
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Result<Answer, String> {
        Self::finish(self.agent.get(format!("{}{path}", self.base)).call())
    }

    /// `GET path` with `Accept: accept`.
    pub fn get_accepting(&self, path: &str, accept: &str) -> Result<Answer, String> {
        let url = format!("{}{path}", self.base);
        Self::finish(self.agent.get(url).header("accept", accept).call())
    }

    /// `POST path` with a JSON body and an optional bearer token.
    pub fn post(&self, path: &str, body: &[u8], bearer: Option<&str>) -> Result<Answer, String> {
        let mut request = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        Self::finish(request.send(body))
    }
}

/// Where the server is and how to trust and authenticate to it.
#[derive(Args, Debug, Clone)]
pub struct AdminArgs {
    /// Base URL of the server.
    #[arg(long, env = "AS_SERVER", default_value = "https://127.0.0.1:8443")]
    pub server: String,
    /// The server's TLS certificate (or its CA), PEM (default: tls-cert.pem in the data folder).
    #[arg(long, env = "AS_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Data folder, to find tls-cert.pem when --tls-ca is not given.
    #[arg(long, env = "AS_DATA", default_value = "as-data")]
    pub data: PathBuf,
    /// File holding the admin token (or set AS_ADMIN_TOKEN).
    #[arg(long, env = "AS_ADMIN_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// Admin actions.
#[derive(Subcommand, Debug, Clone)]
pub enum AdminCommand {
    /// Enroll identities: prints one single-use token per identity (JSON).
    Enroll {
        /// Identities (email addresses or URIs); or use --file.
        identities: Vec<String>,
        /// File with one identity per line (for bulk enrollment).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Token lifetime in seconds.
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// Revoke an identity and all its current credentials.
    RevokeIdentity {
        /// The identity.
        identity: String,
        /// RFC 5280 reason (keyCompromise, affiliationChanged, …).
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
    /// Revoke one credential by serial.
    RevokeCredential {
        /// The serial (32 hex digits).
        serial: String,
        /// RFC 5280 reason.
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
    /// Enable a revoked identity again.
    Enable {
        /// The identity.
        identity: String,
    },
}

fn read_token(file: Option<&Path>) -> Result<String, String> {
    let token = match file {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => std::env::var("AS_ADMIN_TOKEN")
            .map_err(|_| "give --token-file or set AS_ADMIN_TOKEN".to_string())?,
    };
    Ok(token.trim().to_owned())
}

fn reason(text: &str) -> Result<RevocationReason, String> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| format!("unknown reason {text:?}"))
}

/// A request body's JSON bytes.
fn to_json<T: serde::Serialize>(body: &T) -> Vec<u8> {
    serde_json::to_vec(body).unwrap_or_default()
}

/// The path and JSON body of `command`'s request; identities and serials are percent-encoded
/// as one path segment each, so that a URI identity's `/`, `?` and `%` stay in it.
fn request(command: &AdminCommand) -> Result<(String, Vec<u8>), String> {
    Ok(match command {
        AdminCommand::Enroll {
            identities,
            file,
            ttl,
        } => {
            let mut all = identities.clone();
            if let Some(file) = file {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
                all.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned),
                );
            }
            let body = EnrollmentRequest {
                identities: all,
                ttl_seconds: ttl.map(serde_json::Number::from),
            };
            ("/v1/admin/enrollments".to_owned(), to_json(&body))
        }
        AdminCommand::RevokeIdentity {
            identity,
            reason: r,
        } => (
            format!("/v1/admin/identities/{}/revoke", path_segment(identity)),
            to_json(&RevocationRequest {
                reason: Some(reason(r)?),
            }),
        ),
        AdminCommand::RevokeCredential { serial, reason: r } => (
            format!("/v1/admin/credentials/{}/revoke", path_segment(serial)),
            to_json(&RevocationRequest {
                reason: Some(reason(r)?),
            }),
        ),
        AdminCommand::Enable { identity } => (
            format!("/v1/admin/identities/{}/enable", path_segment(identity)),
            to_json(&EnableRequest {}),
        ),
    })
}

/// Runs an admin command; prints the server's JSON answer. Returns the process exit code:
/// 0 success, 1 refused by the server, 3 network or I/O failure.
pub fn run(args: AdminArgs) -> Result<i32, String> {
    let token = read_token(args.token_file.as_deref())?;
    let tls_ca = args
        .tls_ca
        .clone()
        .unwrap_or_else(|| args.data.join("tls-cert.pem"));
    let pem = std::fs::read(&tls_ca).map_err(|e| format!("{}: {e}", tls_ca.display()))?;
    let client = HttpsClient::new(&args.server, &pem)?;
    let (path, body) = request(&args.command)?;
    let answer = match client.post(&path, &body, Some(&token)) {
        Ok(answer) => answer,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(3);
        }
    };
    println!("{}", String::from_utf8_lossy(&answer.body));
    Ok(if (200..300).contains(&answer.status) {
        0
    } else {
        1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_and_serials_are_one_path_segment() {
        let revoke = AdminCommand::RevokeIdentity {
            identity: "https://example.com/u/alice?x=1".into(),
            reason: "keyCompromise".into(),
        };
        let (path, body) = request(&revoke).unwrap();
        assert_eq!(
            path,
            "/v1/admin/identities/https%3A%2F%2Fexample.com%2Fu%2Falice%3Fx%3D1/revoke"
        );
        assert_eq!(body, br#"{"reason":"keyCompromise"}"#);
        let enable = AdminCommand::Enable {
            identity: "alice@example.com".into(),
        };
        assert_eq!(
            request(&enable).unwrap(),
            (
                "/v1/admin/identities/alice@example.com/enable".to_owned(),
                b"{}".to_vec()
            )
        );
        let serial = AdminCommand::RevokeCredential {
            serial: "../x".into(),
            reason: "unspecified".into(),
        };
        assert_eq!(
            request(&serial).unwrap().0,
            "/v1/admin/credentials/..%2Fx/revoke"
        );
        let bad = AdminCommand::RevokeCredential {
            serial: "00".into(),
            reason: "sleepy".into(),
        };
        assert!(request(&bad).is_err());
    }

    #[test]
    fn enrollment_bodies_name_the_lifetime_only_when_given() {
        let enroll = |ttl| AdminCommand::Enroll {
            identities: vec!["a@example.com".into(), "im:b@example.com".into()],
            file: None,
            ttl,
        };
        assert_eq!(
            request(&enroll(None)).unwrap().1,
            br#"{"identities":["a@example.com","im:b@example.com"]}"#
        );
        assert_eq!(
            request(&enroll(Some(600))).unwrap().1,
            br#"{"identities":["a@example.com","im:b@example.com"],"ttl_seconds":600}"#
        );
    }
}
