//! A blocking HTTPS client of the server, trusting exactly its generated TLS certificate.

use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::Agent;

/// An HTTPS client of one server.
#[derive(Clone)]
pub(crate) struct Client {
    agent: Agent,
    base: String,
    admin_token: Arc<str>,
}

/// Status and body of an answer.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    /// The body as JSON (`Null` when it is not).
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The problem code of an error answer (`type` without its prefix), or "".
    pub(crate) fn problem(&self) -> String {
        self.json()["type"]
            .as_str()
            .and_then(|t| t.rsplit('/').next())
            .unwrap_or("")
            .to_owned()
    }

    /// For messages: the status and the start of the body.
    pub(crate) fn describe(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let text: String = text.chars().take(300).collect();
        format!("{} {}", self.status, text)
    }
}

impl Client {
    /// A client of `base` trusting the PEM certificate `cert_pem`, acting as admin with
    /// `admin_token`.
    pub(crate) fn new(
        base: &str,
        cert_pem: &[u8],
        admin_token: &str,
        timeout: Duration,
    ) -> Result<Client, String> {
        let cert = Certificate::from_pem(cert_pem)
            .map_err(|e| format!("TLS certificate: {e}"))?
            .to_owned();
        let tls = TlsConfig::builder()
            .root_certs(RootCerts::Specific(Arc::new(vec![cert])))
            .build();
        let agent: Agent = Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .max_idle_connections_per_host(32)
            .build()
            .into();
        Ok(Client {
            agent,
            base: base.trim_end_matches('/').to_owned(),
            admin_token: admin_token.into(),
        })
    }

    fn finish(
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Answer, String> {
        let mut response = result.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| e.to_string())?;
        Ok(Answer { status, body })
    }

    /// `GET path`.
    pub(crate) fn get(&self, path: &str) -> Result<Answer, String> {
        Self::finish(self.agent.get(format!("{}{path}", self.base)).call())
    }

    /// `POST path` with a JSON body, as admin if `admin`.
    pub(crate) fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
        admin: bool,
    ) -> Result<Answer, String> {
        let mut request = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if admin {
            request = request.header("authorization", format!("Bearer {}", self.admin_token));
        }
        Self::finish(request.send(body.to_string().as_bytes()))
    }
}
