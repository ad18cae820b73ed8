//! A small blocking HTTPS client pinned to one trust certificate (ureq 3 with
//! `RootCerts::Specific`): the TLS connection is accepted only if the server's certificate
//! chains to the PEM it is given, never to the system roots.

use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::Agent;

/// An HTTPS client of one AS, trusting exactly one certificate.
#[derive(Clone)]
pub struct HttpsClient {
    agent: Agent,
    base: String,
}

/// An HTTP answer: status and body (non-2xx statuses are answers, not errors).
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The media type of the body (`Content-Type` without parameters), or empty.
    pub media_type: String,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON, or `None` if it is not JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as (lossy) text, for error messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
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
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Ok(HttpsClient {
            agent,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn finish(
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Answer, String> {
        let mut response = result.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let media_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| e.to_string())?;
        Ok(Answer {
            status,
            media_type,
            body,
        })
    }

    /// `GET path` (path starts with `/`).
    pub fn get(&self, path: &str) -> Result<Answer, String> {
        Self::finish(self.agent.get(format!("{}{path}", self.base)).call())
    }

    /// `GET path` with `Accept: accept`.
    pub fn get_accepting(&self, path: &str, accept: &str) -> Result<Answer, String> {
        let url = format!("{}{path}", self.base);
        Self::finish(self.agent.get(url).header("accept", accept).call())
    }

    /// `POST path` with a JSON body and an optional bearer token.
    pub fn post_json(
        &self,
        path: &str,
        body: &impl serde::Serialize,
        bearer: Option<&str>,
    ) -> Result<Answer, String> {
        let body = serde_json::to_vec(body).map_err(|e| format!("request body: {e}"))?;
        let mut request = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        Self::finish(request.send(&body[..]))
    }
}
