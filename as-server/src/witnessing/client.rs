//! One add-checkpoint request to one witness (C2SP tlog-witness, the log's side): the HTTP
//! exchange and what its answer means. Nothing here is trusted: a cosignature the witness
//! returns is checked by the caller against the policy's key before it is used.

use std::path::Path;
use std::time::Duration;

use kt_log::witness_request::{parse_size_body, AddCheckpointRequest};
use ureq::Agent;

/// Most bytes read of a witness's answer: cosignature lines are about 100 bytes each.
const ANSWER_LIMIT: u64 = 64 * 1024;

/// What a witness answered to an add-checkpoint.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200: its signature lines (unchecked).
    Cosigned(String),
    /// 409: the size of the checkpoint it holds for the log.
    Conflict(u64),
    /// Any other status, with the first line of its body.
    Refused(u16, String),
}

/// An HTTP(S) client for witnesses, with a deadline per request.
#[derive(Clone)]
pub struct WitnessClient {
    agent: Agent,
}

impl WitnessClient {
    /// A client whose requests fail after `timeout`, trusting the PEM certificates of
    /// `tls_ca` for HTTPS witnesses, or the Web PKI roots without it.
    pub fn new(timeout: Duration, tls_ca: Option<&Path>) -> Result<WitnessClient, String> {
        let agent = kt_witness::http_client::agent(timeout, tls_ca, "witness TLS roots")?;
        Ok(WitnessClient { agent })
    }

    /// Sends `request` to the witness whose submission prefix is `url`. An `Err` is a
    /// failure to talk to it (connection, timeout, an unreadable answer).
    pub fn add_checkpoint(
        &self,
        url: &str,
        request: &AddCheckpointRequest,
    ) -> Result<Answer, String> {
        let endpoint = format!("{}/add-checkpoint", url.trim_end_matches('/'));
        let mut response = self
            .agent
            .post(&endpoint)
            .header("content-type", "text/plain; charset=utf-8")
            .send(&request.to_body()[..])
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(ANSWER_LIMIT)
            .read_to_vec()
            .map_err(|e| e.to_string())?;
        Ok(match status {
            200 => Answer::Cosigned(
                String::from_utf8(body).map_err(|_| "a 200 answer that is not UTF-8")?,
            ),
            409 => Answer::Conflict(
                parse_size_body(&body)
                    .ok_or("a 409 answer whose body is not a text/x.tlog.size")?,
            ),
            _ => Answer::Refused(
                status,
                String::from_utf8_lossy(&body)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(200)
                    .collect(),
            ),
        })
    }
}
