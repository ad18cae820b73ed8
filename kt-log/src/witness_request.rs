//! The add-checkpoint request body of C2SP tlog-witness (<https://c2sp.org/tlog-witness>),
//! parsed strictly (what a witness receives) and written (what a log sends), and the size a
//! witness answers with its 409.
//!
//! ```text
//! old <size>\n
//! <base64 hash>\n        (0 to 63 consistency proof lines)
//! \n
//! <signed checkpoint note>
//! ```
//!
//! Guarantee of [`AddCheckpointRequest::parse`]: it accepts only that form, with the old
//! size in canonical decimal (no leading zeros, `0` for zero), each proof line exactly one
//! 32-byte hash in standard padded base64, at most [`MAX_PROOF_LINES`] of them, and a
//! non-empty note after the blank line. It never panics on any input. The note itself is
//! parsed and verified later, against the log's keys.

use crate::hash::Hash;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use thiserror::Error;

/// Most consistency proof lines a client may send (the spec's limit).
pub const MAX_PROOF_LINES: usize = 63;

/// Why a request body is malformed (answered 400).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The body is not UTF-8 text.
    #[error("request body is not UTF-8")]
    NotUtf8,
    /// The first line is not `old <canonical decimal>`.
    #[error("first line must be \"old <size>\" in canonical decimal")]
    BadOldLine,
    /// A proof line is not the base64 of a 32-byte hash.
    #[error("consistency proof line {0} is not a base64 32-byte hash")]
    BadProofLine(usize),
    /// More than [`MAX_PROOF_LINES`] proof lines.
    #[error("more than {MAX_PROOF_LINES} consistency proof lines")]
    TooManyProofLines,
    /// No blank line ends the proof, or nothing follows it.
    #[error("no blank line followed by a checkpoint")]
    NoCheckpoint,
}

/// A parsed add-checkpoint request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpointRequest {
    /// The size of the checkpoint the client believes the witness holds.
    pub old_size: u64,
    /// The consistency proof from `old_size` to the new checkpoint.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, byte for byte.
    pub note: Vec<u8>,
}

/// Parses a canonical decimal: digits only, no leading zero unless it is `0`, fits a u64.
pub fn parse_canonical_u64(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if canonical {
        text.parse().ok()
    } else {
        None
    }
}

/// The body of a witness's 409 answer (`Content-Type: text/x.tlog.size`): the size of the
/// checkpoint it holds for the log, in canonical decimal and a newline.
pub fn size_body(size: u64) -> String {
    format!("{size}\n")
}

/// Parses a 409 answer's body ([`size_body`]); `None` unless it is exactly that form.
pub fn parse_size_body(body: &[u8]) -> Option<u64> {
    std::str::from_utf8(body)
        .ok()?
        .strip_suffix('\n')
        .and_then(parse_canonical_u64)
}

impl AddCheckpointRequest {
    /// Parses a request body (see the module guarantees).
    pub fn parse(body: &[u8]) -> Result<AddCheckpointRequest, RequestError> {
        let text = std::str::from_utf8(body).map_err(|_| RequestError::NotUtf8)?;
        let (first, mut rest) = text.split_once('\n').ok_or(RequestError::BadOldLine)?;
        let old_size = first
            .strip_prefix("old ")
            .and_then(parse_canonical_u64)
            .ok_or(RequestError::BadOldLine)?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = rest.split_once('\n').ok_or(RequestError::NoCheckpoint)?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(RequestError::TooManyProofLines);
            }
            let hash = B64
                .decode(line)
                .ok()
                .and_then(|raw| Hash::from_slice(&raw))
                .ok_or(RequestError::BadProofLine(proof.len() + 1))?;
            proof.push(hash);
        }
        if rest.is_empty() {
            return Err(RequestError::NoCheckpoint);
        }
        Ok(AddCheckpointRequest {
            old_size,
            proof,
            note: rest.as_bytes().to_vec(),
        })
    }

    /// The request body text of this request (what a log sends).
    pub fn to_body(&self) -> Vec<u8> {
        let mut out = format!("old {}\n", self.old_size);
        for hash in &self.proof {
            out.push_str(&B64.encode(hash.0));
            out.push('\n');
        }
        out.push('\n');
        let mut out = out.into_bytes();
        out.extend_from_slice(&self.note);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTE: &str = "o\n1\nKgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u{2014} o AAAA\n";

    #[test]
    fn parses_the_spec_form() {
        let h = "KgEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let body = format!("old 3\n{h}\n{h}\n\n{NOTE}");
        let req = AddCheckpointRequest::parse(body.as_bytes()).unwrap();
        assert_eq!(req.old_size, 3);
        assert_eq!(req.proof.len(), 2);
        assert_eq!(req.note, NOTE.as_bytes());
        assert_eq!(req.to_body(), body.as_bytes());
        let zero = AddCheckpointRequest::parse(format!("old 0\n\n{NOTE}").as_bytes()).unwrap();
        assert_eq!((zero.old_size, zero.proof.len()), (0, 0));
    }

    #[test]
    fn size_bodies_round_trip_and_nothing_else_parses() {
        for size in [0, 1, 12_345, u64::MAX] {
            assert_eq!(parse_size_body(size_body(size).as_bytes()), Some(size));
        }
        for bad in [
            "",
            "1",
            "01\n",
            "1 \n",
            "-1\n",
            "1\n\n",
            "18446744073709551616\n",
        ] {
            assert_eq!(parse_size_body(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn rejects_malformed_bodies() {
        let h = "KgEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let many = format!("old 1\n{}\n{NOTE}", format!("{h}\n").repeat(64));
        let cases: Vec<(Vec<u8>, RequestError)> = vec![
            (b"\xff\n\n".to_vec(), RequestError::NotUtf8),
            (b"".to_vec(), RequestError::BadOldLine),
            (format!("old 01\n\n{NOTE}").into(), RequestError::BadOldLine),
            (format!("old -1\n\n{NOTE}").into(), RequestError::BadOldLine),
            (format!("old  1\n\n{NOTE}").into(), RequestError::BadOldLine),
            (format!("old 1 \n\n{NOTE}").into(), RequestError::BadOldLine),
            (format!("Old 1\n\n{NOTE}").into(), RequestError::BadOldLine),
            (
                format!("old 18446744073709551616\n\n{NOTE}").into(),
                RequestError::BadOldLine,
            ),
            (
                format!("old 1\nAAAA\n\n{NOTE}").into(),
                RequestError::BadProofLine(1),
            ),
            (
                format!("old 1\n{h} \n\n{NOTE}").into(),
                RequestError::BadProofLine(1),
            ),
            (many.into(), RequestError::TooManyProofLines),
            (format!("old 1\n{h}\n").into(), RequestError::NoCheckpoint),
            (b"old 1\n\n".to_vec(), RequestError::NoCheckpoint),
            (b"old 1".to_vec(), RequestError::BadOldLine),
        ];
        for (body, want) in cases {
            assert_eq!(AddCheckpointRequest::parse(&body), Err(want), "{body:?}");
        }
        let max = format!("old 1\n{}\n{NOTE}", format!("{h}\n").repeat(63));
        assert_eq!(
            AddCheckpointRequest::parse(max.as_bytes())
                .unwrap()
                .proof
                .len(),
            63
        );
    }
}
