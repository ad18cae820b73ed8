//! The change format against `schemas/change.schema.json`: every entry the serializer makes
//! is valid under the schema and parses back to itself byte for byte, and schema-invalid
//! objects are refused by the parser.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use kt_protocol::entry::{
    Binding, EnrollmentId, EntryBody, LogEntry, RevocationReason, RevocationScope, Serial,
};
use proptest::prelude::*;
use serde_json::Value;

fn validator() -> jsonschema::Validator {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let load = |name: &str| -> Value {
        serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap()
    };
    let common = load("common.schema.json");
    let id = common["$id"].as_str().unwrap().to_owned();
    jsonschema::options()
        .with_resource(id, jsonschema::Resource::from_contents(common).unwrap())
        .build(&load("change.schema.json"))
        .unwrap()
}

fn identity() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("alice@example.com".to_owned()),
        "[a-z0-9][a-z0-9._+-]{0,20}@[a-z0-9]{1,10}\\.(com|org|example)",
    ]
}

fn binding() -> impl Strategy<Value = Binding> {
    (
        any::<[u8; 16]>(),
        any::<[u8; 32]>(),
        0u64..1 << 40,
        0u64..1 << 30,
        proptest::collection::vec(any::<u8>(), 1..200),
    )
        .prop_map(
            |(serial, public_key, not_before, span, certificate)| Binding {
                serial: Serial(serial),
                public_key,
                not_before,
                not_after: not_before + span,
                certificate,
            },
        )
}

fn reason() -> impl Strategy<Value = RevocationReason> {
    prop_oneof![
        Just(RevocationReason::Unspecified),
        Just(RevocationReason::KeyCompromise),
        Just(RevocationReason::AffiliationChanged),
        Just(RevocationReason::Superseded),
        Just(RevocationReason::CessationOfOperation),
        Just(RevocationReason::PrivilegeWithdrawn),
    ]
}

fn entry() -> impl Strategy<Value = LogEntry> {
    let time = 0u64..1 << 40;
    prop_oneof![
        (time.clone(), identity(), binding(), any::<[u8; 32]>()).prop_map(
            |(time, identity, binding, e)| EntryBody::Issue {
                time,
                identity,
                binding,
                enrollment: EnrollmentId(e),
            }
        ),
        (time.clone(), identity(), binding(), any::<[u8; 16]>()).prop_map(
            |(time, identity, binding, r)| EntryBody::Rotate {
                time,
                identity,
                binding,
                replaces: Serial(r),
            }
        ),
        (
            time.clone(),
            identity(),
            proptest::collection::hash_set(any::<[u8; 16]>(), 0..4),
            reason(),
            "[a-zA-Z0-9 é\"\\\\-]{1,12}"
        )
            .prop_map(|(time, identity, serials, reason, admin)| {
                let serials: Vec<Serial> = serials.into_iter().map(Serial).collect();
                EntryBody::Revoke {
                    time,
                    identity,
                    scope: if serials.len() == 1 {
                        RevocationScope::Credential
                    } else {
                        RevocationScope::Identity
                    },
                    serials,
                    reason,
                    admin,
                }
            }),
        (time, identity(), "[a-z]{1,8}").prop_map(|(time, identity, admin)| EntryBody::Enable {
            time,
            identity,
            admin
        }),
    ]
    .prop_map(LogEntry::new)
}

proptest! {
    #[test]
    fn every_entry_is_schema_valid_and_round_trips(entry in entry()) {
        let bytes = entry.to_bytes();
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        let validator = validator();
        let errors: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).collect();
        prop_assert!(errors.is_empty(), "{errors:?}: {value}");
        let parsed = LogEntry::parse(&bytes).unwrap();
        prop_assert_eq!(&parsed, &entry);
        prop_assert_eq!(parsed.to_bytes(), bytes);
    }
}

#[test]
fn schema_invalid_objects_are_refused_by_the_parser() {
    let validator = validator();
    let serial = "ab".repeat(16);
    let key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let good = format!(
        r#"{{"v":1,"type":"issue","time":5,"identity":"alice@example.com","serial":"{serial}","public_key":"{key}","not_before":1,"not_after":2,"certificate":"MAA=","enrollment":"{}"}}"#,
        "cd".repeat(32)
    );
    assert!(validator.is_valid(&serde_json::from_str(&good).unwrap()));
    assert!(LogEntry::parse(good.as_bytes()).is_ok());
    for bad in [
        good.replace(r#""v":1"#, r#""v":2"#),
        good.replace(&serial, "abc"),
        good.replace(key, "AAAA"),
        good.replace(r#""time":5"#, r#""time":5,"extra":1"#),
        good.replace("alice@example.com", "Alice@example.com"),
        good.replace(r#""certificate":"MAA=""#, r#""certificate":"MA=""#),
        good.replace(&"cd".repeat(32), "cd"),
        good.replace(r#""type":"issue""#, r#""type":"enable""#),
    ] {
        let value: Value = serde_json::from_str(&bad).unwrap();
        assert!(!validator.is_valid(&value), "schema accepts {bad}");
        assert!(
            LogEntry::parse(bad.as_bytes()).is_err(),
            "parser accepts {bad}"
        );
    }
}

/// A validator of `name` with every schema of `schemas/` as a resource.
fn validator_of(name: &str) -> jsonschema::Validator {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let mut options = jsonschema::options();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".schema.json") {
            let schema: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let id = schema["$id"].as_str().unwrap().to_owned();
            options =
                options.with_resource(id, jsonschema::Resource::from_contents(schema).unwrap());
        }
    }
    let schema: Value = serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap();
    options.build(&schema).unwrap()
}

proptest! {
    /// The log's entries and the version records, as the directory makes them, are valid
    /// under `log-entry.schema.json` and `version-record.schema.json`.
    #[test]
    fn public_entries_and_records_are_schema_valid(
        label in any::<[u8; 32]>(),
        version in 1u64..1 << 40,
        commitment in any::<[u8; 32]>(),
        sealed in proptest::collection::vec(any::<u8>(), 1..300),
        labels in any::<u64>(),
        entries in proptest::collection::vec(entry(), 1..6),
    ) {
        use kt_protocol::directory::public_entry::{MapRoot, PublicEntry, Update};
        use kt_protocol::directory::record::VersionRecord;
        use kt_protocol::directory::vrf::Label;
        let entries_schema = validator_of("log-entry.schema.json");
        for entry in [
            PublicEntry::Update(Update { label: Label(label), version, commitment, sealed }),
            PublicEntry::Map(MapRoot { root: commitment, labels }),
        ] {
            let value: Value = serde_json::from_slice(&entry.to_bytes()).unwrap();
            prop_assert!(entries_schema.is_valid(&value), "{value}");
        }
        // Every record a run of changes makes that the transition rule accepts.
        let records_schema = validator_of("version-record.schema.json");
        let mut previous: Option<VersionRecord> = None;
        for e in entries {
            let Ok(next) = VersionRecord::next(previous.as_ref(), &e) else { continue };
            let value = next.to_json();
            prop_assert!(records_schema.is_valid(&value), "{value}");
            previous = Some(next);
        }
    }
}
