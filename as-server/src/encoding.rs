//! The wire encodings of binary values: standard base64 with padding, lowercase hex serials.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_log::Hash;

/// Standard base64 with padding.
pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// Decodes standard base64 with padding; `None` for anything else.
pub fn from_b64(text: &str) -> Option<Vec<u8>> {
    B64.decode(text).ok()
}

/// A proof as a list of base64 hashes.
pub fn proof_b64(proof: &[Hash]) -> Vec<String> {
    proof.iter().map(|h| b64(&h.0)).collect()
}

/// Lowercase hex (on every request's path: serials and enrollment ids, so no `format!` per
/// byte).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(2 * bytes.len());
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// Decodes lowercase hex of exactly `len` bytes.
pub fn from_hex(text: &str, len: usize) -> Option<Vec<u8>> {
    if text.len() != 2 * len || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    (0..len)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_is_strict() {
        assert_eq!(
            from_hex(&hex(&[0, 0xab, 0xff]), 3),
            Some(vec![0, 0xab, 0xff])
        );
        assert_eq!(
            hex(&[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]),
            "0123456789abcdef"
        );
        assert_eq!(from_hex("ABCD", 2), None);
        assert_eq!(from_hex("abc", 2), None);
        assert_eq!(from_hex("zz", 1), None);
    }

    #[test]
    fn base64_is_standard_padded() {
        assert_eq!(b64(b"ab"), "YWI=");
        assert_eq!(from_b64("YWI="), Some(b"ab".to_vec()));
        assert_eq!(from_b64("YWI"), None);
        assert_eq!(from_b64("YW-="), None);
    }
}
