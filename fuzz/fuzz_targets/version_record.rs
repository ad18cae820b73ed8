//! kt_protocol::directory::record::VersionRecord: an identity's complete state, which answers
//! carry as JSON and commitments cover in canonical bytes. The first byte picks what the rest
//! is (`mode % 3`):
//! 0. canonical bytes, given to `VersionRecord::parse`;
//! 1. any JSON, given to `VersionRecord::from_json` (how `kt_verify` reads records from
//!    answers);
//! 2. `record bytes ‖ NUL ‖ change bytes` (the record empty: none before), given to
//!    `VersionRecord::next` with the change parsed by `LogEntry::parse` (the transition rule
//!    a monitor re-derives every version with).
//!
//! Properties: never panics; `parse(b)` succeeding means `to_bytes(parse(b)) == b`, and a
//! record that parses or comes from JSON passes `check`, writes back to bytes that `parse`
//! returns it from and to JSON that `from_json` returns it from, and its change (`entry`) is
//! a change of that identity at that time; `next` makes, when it succeeds, a valid record of
//! the change's identity, one version on, whose change is exactly the change given.
#![no_main]

use as_server::entry::LogEntry;
use kt_fuzz::{split_mode, split_nul};
use kt_protocol::directory::record::VersionRecord;
use libfuzzer_sys::fuzz_target;

/// What every record a parser returns must satisfy.
fn check(record: &VersionRecord) {
    assert_eq!(record.check(), Ok(()));
    let bytes = record.to_bytes();
    assert_eq!(
        VersionRecord::parse(&bytes).as_ref(),
        Ok(record),
        "to_bytes does not parse back"
    );
    assert_eq!(
        VersionRecord::from_json(&record.to_json()).as_ref(),
        Ok(record)
    );
    let value: serde_json::Value = serde_json::from_slice(&bytes).expect("to_bytes is JSON");
    assert_eq!(value, record.to_json(), "to_bytes and to_json disagree");
    // `check` promises the change's new serial among the credentials: the change is there.
    let entry = record.entry().expect("a checked record has its change");
    assert_eq!(entry.body.identity(), record.identity);
    assert_eq!(entry.body.time(), record.time);
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = split_mode(data) else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Ok(record) = VersionRecord::parse(rest) {
                assert_eq!(
                    record.to_bytes(),
                    rest,
                    "parse accepted a non-canonical form"
                );
                check(&record);
            }
        }
        1 => {
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(rest) else {
                return;
            };
            if let Ok(record) = VersionRecord::from_json(&value) {
                check(&record);
            }
        }
        _ => {
            let (record, change) = split_nul(rest);
            let previous = if record.is_empty() {
                None
            } else {
                match VersionRecord::parse(record) {
                    Ok(previous) => Some(previous),
                    Err(_) => return,
                }
            };
            let Ok(entry) = LogEntry::parse(change) else {
                return;
            };
            if let Ok(next) = VersionRecord::next(previous.as_ref(), &entry) {
                check(&next);
                assert_eq!(next.identity, entry.body.identity());
                assert_eq!(next.version, previous.as_ref().map_or(1, |p| p.version + 1));
                assert_eq!(
                    next.entry().as_ref(),
                    Ok(&entry),
                    "the record's change is not the change"
                );
            }
        }
    }
});
