//! as_server::entry::LogEntry::parse (kt_protocol::entry) on raw bytes: since the directory
//! (issue 12) this v1 format is no longer the log's entries but the *change* each update entry
//! seals to the AS (schemas/change.schema.json), which the AS parses when it rebuilds its state
//! from its log and a monitor's records re-derive. Properties: never panics; an entry that
//! parses re-serialises (to_bytes) to bytes that parse to an equal entry, and to_bytes is a
//! fixed point; and, as the module promises one byte form per entry, those bytes are exactly
//! the input.
//!
//! Also `LogEntry::from_json`, which reads the changes of a history answer (untrusted, what
//! an owner's monitor receives): on any input that is JSON it never panics, and an entry it
//! accepts is one `parse` accepts in its byte form (`from_json` applies the same field rules,
//! only without a byte form); every parsed entry reads back from its `to_json` unchanged.
#![no_main]

use as_server::entry::LogEntry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = LogEntry::parse(data) {
        let bytes = entry.to_bytes();
        assert!(!bytes.is_empty(), "to_bytes gave nothing for {entry:?}");
        let again = LogEntry::parse(&bytes).unwrap_or_else(|e| {
            panic!(
                "re-serialised entry does not parse: {e}: {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(again, entry, "round trip changed the entry");
        assert_eq!(again.to_bytes(), bytes, "to_bytes is not a fixed point");
        assert_eq!(bytes, data, "parse accepted a non-canonical byte form");
        let _ = (entry.body.identity(), entry.body.kind(), entry.body.time());
        assert_eq!(
            LogEntry::from_json(&entry.to_json()).as_ref(),
            Ok(&entry),
            "to_json does not read back"
        );
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(entry) = LogEntry::from_json(&value) {
            let bytes = entry.to_bytes();
            assert_eq!(
                LogEntry::parse(&bytes).as_ref(),
                Ok(&entry),
                "from_json accepted what parse refuses in its byte form"
            );
        }
    }
});
