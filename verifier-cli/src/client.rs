//! HTTPS access to the server (blocking, ureq with rustls/ring).
//!
//! Transport security only authenticates *who* answers, not *what* they say: nothing fetched
//! here is trusted until the verification functions have checked it against the log key and
//! the CA. TLS is still verified by default (Mozilla's roots, or `--tls-ca` for the server's
//! own self-signed certificate); `--insecure-skip-tls-verify` turns that off and is named
//! `danger_…` in the code.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use ureq::http::Response;
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::{Agent, Body};

use crate::error::{read_file, Error};
use crate::wire::Problem;

/// How to authenticate the server's TLS certificate.
#[derive(Clone, Debug)]
pub(crate) enum TlsTrust {
    /// The built-in Mozilla roots.
    WebPki,
    /// Only these certificates (PEM), e.g. the server's self-signed one.
    Roots(Vec<Certificate<'static>>),
    /// No verification at all: anyone on the path can answer. Only the log key and the CA
    /// still protect the results.
    DangerSkipVerification,
}

impl TlsTrust {
    /// Reads `--tls-ca FILE` (one or more PEM certificates).
    pub(crate) fn from_pem_file(path: &std::path::Path) -> Result<TlsTrust, Error> {
        let pem = read_file(path)?;
        let certs = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Usage(format!("--tls-ca {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(Error::Usage(format!(
                "--tls-ca {}: no PEM certificate found",
                path.display()
            )));
        }
        Ok(TlsTrust::Roots(certs))
    }
}

/// Largest body accepted for JSON answers and the CRL.
const JSON_LIMIT: u64 = 64 << 20;
/// Largest tile: 256 entries of at most 65,535 bytes with their 2-byte lengths.
pub(crate) const TILE_LIMIT: u64 = 256 * 65_537;
/// Attempts per GET before giving up on a transient failure.
const ATTEMPTS: u32 = 4;

/// A client of one server.
#[derive(Clone)]
pub(crate) struct Client {
    agent: Agent,
    base: String,
}

/// What a GET found.
pub(crate) enum Fetched {
    /// 200 with this body.
    Body(Vec<u8>),
    /// 404.
    NotFound,
}

impl Client {
    /// A client for `server` (`https://host:port`, or `http://` for a plain mirror).
    pub(crate) fn new(server: &str, trust: TlsTrust) -> Result<Client, Error> {
        let base = server.trim_end_matches('/').to_owned();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(Error::Usage(format!(
                "--server {server:?} must start with https:// (or http://)"
            )));
        }
        let tls = match trust {
            TlsTrust::WebPki => TlsConfig::builder().build(),
            TlsTrust::Roots(certs) => TlsConfig::builder()
                .root_certs(RootCerts::Specific(Arc::new(certs)))
                .build(),
            TlsTrust::DangerSkipVerification => danger_unverified_tls(),
        };
        let agent: Agent = Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(120)))
            .max_idle_connections_per_host(16)
            .build()
            .into();
        Ok(Client { agent, base })
    }

    /// The server's base URL.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// GETs `path`; 200 → body (at most `limit` bytes), 404 → [`Fetched::NotFound`], anything
    /// else → [`Error::Network`]. Transient failures (connection errors, 5xx) are retried.
    pub(crate) fn get(&self, path: &str, limit: u64) -> Result<Fetched, Error> {
        self.get_accepting(path, limit, None)
            .map(|(fetched, _)| fetched)
    }

    /// [`Client::get`] with an `Accept` header; also returns the answer's content type.
    pub(crate) fn get_accepting(
        &self,
        path: &str,
        limit: u64,
        accept: Option<&str>,
    ) -> Result<(Fetched, String), Error> {
        let url = format!("{}{path}", self.base);
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(200 << attempt));
            }
            let mut request = self.agent.get(&url);
            if let Some(accept) = accept {
                request = request.header("accept", accept);
            }
            match request.call() {
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    let content_type = response
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    match status {
                        200 => {
                            return read_body(&mut response, limit, &url)
                                .map(|body| (Fetched::Body(body), content_type))
                        }
                        404 => return Ok((Fetched::NotFound, content_type)),
                        500..=599 => {
                            last = describe(&mut response, &url);
                            if let Some(wait) = retry_after(&response) {
                                std::thread::sleep(wait);
                            }
                        }
                        _ => return Err(Error::Network(describe(&mut response, &url))),
                    }
                }
                Err(e) => last = format!("GET {url}: {e}"),
            }
        }
        Err(Error::Network(last))
    }

    /// GETs `path` and requires a 200.
    pub(crate) fn get_bytes(&self, path: &str, limit: u64) -> Result<Vec<u8>, Error> {
        match self.get(path, limit)? {
            Fetched::Body(body) => Ok(body),
            Fetched::NotFound => Err(Error::Network(format!("GET {}{path}: 404", self.base))),
        }
    }

    /// POSTs a JSON body once (never retried: the server acts on it) and parses a 2xx answer.
    pub(crate) fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, Error> {
        let url = format!("{}{path}", self.base);
        let body = serde_json::to_vec(body)
            .map_err(|e| Error::Network(format!("cannot encode request: {e}")))?;
        let mut response = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(&body[..])
            .map_err(|e| Error::Network(format!("POST {url}: {e}")))?;
        if !response.status().is_success() {
            return Err(Error::Network(describe(&mut response, &url)));
        }
        let bytes = read_body(&mut response, JSON_LIMIT, &url)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::verify(format!("answer of POST {path} is malformed: {e}")))
    }
}

/// A TLS configuration that accepts any server certificate.
fn danger_unverified_tls() -> TlsConfig {
    TlsConfig::builder().disable_verification(true).build()
}

fn read_body(response: &mut Response<Body>, limit: u64, url: &str) -> Result<Vec<u8>, Error> {
    response
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| Error::Network(format!("reading {url}: {e}")))
}

/// A one-line description of an error answer, using its problem document if it has one.
fn describe(response: &mut Response<Body>, url: &str) -> String {
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 << 10)
        .read_to_vec()
        .unwrap_or_default();
    match serde_json::from_slice::<Problem>(&body) {
        Ok(p) => {
            let code = p.kind.rsplit('/').next().unwrap_or_default().to_owned();
            let detail = p.detail.map(|d| format!(": {d}")).unwrap_or_default();
            format!("{url}: HTTP {status} {code} ({}){detail}", p.title)
        }
        Err(_) => format!("{url}: HTTP {status}"),
    }
}

/// The `Retry-After` delay in seconds, capped at 10 s.
fn retry_after(response: &Response<Body>) -> Option<Duration> {
    let secs: u64 = response
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.min(10)))
}
