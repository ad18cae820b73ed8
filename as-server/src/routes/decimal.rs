//! The one parser of numbers in paths and queries: canonical decimal only.
//!
//! A number has exactly one spelling: ASCII digits, no sign, no leading zero (but `0` itself),
//! no spaces. So `/v1/log/entries/7` is the only name of entry 7, and caches, logs and
//! monitors that compare URLs byte for byte see one resource, not `+7`, `07` and `0007`.

/// Why a text is not a number this API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalError {
    /// Not canonical decimal digits at all (empty, a sign, a leading zero, other characters).
    NotCanonical,
    /// Canonical, but beyond `u64`: no log has such an index or size.
    TooLarge,
}

/// Parses canonical decimal digits into a `u64`.
pub fn parse_canonical(text: &str) -> Result<u64, DecimalError> {
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (text.len() > 1 && text.starts_with('0')) {
        return Err(DecimalError::NotCanonical);
    }
    text.parse().map_err(|_| DecimalError::TooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spelling_per_number() {
        assert_eq!(parse_canonical("0"), Ok(0));
        assert_eq!(parse_canonical("7"), Ok(7));
        assert_eq!(parse_canonical("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse_canonical("18446744073709551616"),
            Err(DecimalError::TooLarge)
        );
        for bad in [
            "", "+0", "+7", "-0", "00000", "07", " 7", "7 ", "0x7", "7.0", "٧",
        ] {
            assert_eq!(
                parse_canonical(bad),
                Err(DecimalError::NotCanonical),
                "{bad:?}"
            );
        }
    }
}
