//! `monitor`: an identity owner's check of every change of its identities since the last run,
//! from the directory's proofs alone: O(log n) per identity, never the whole log.
//!
//! Per identity it fetches `GET /v1/identities/{identity}/history?after=V` (V: the version it
//! saw last), verifies the latest state as `lookup` does (checkpoint signed, consistent with
//! and not older than the saved one, the state proven in its map, every credential the CA's),
//! then checks every version since with `kt_verify::monitor::advance`: they chain from the
//! saved chain head to the map's (so none was hidden, and a change made and undone between two
//! runs still shows as its two versions), each follows from the one before by the directory's
//! transition rule, and each change passes the history rules over the identity's own history.
//!
//! Guarantee: with exit 0, for every watched identity, every version since the last run was
//! shown and checked, and every key bound by one of them is on the expected list. A key that is
//! not, or a broken history, fails the run (exit 1). What it saw is saved per identity
//! (`STATE/<origin>/watch/<SHA-256 of the identity>.json`) only when the identity's check
//! passed and bound no unexpected key, so that an alarm is raised again by every run until the
//! owner adds the key to the expected list.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_protocol::directory::record::{Change, VersionRecord};
use kt_verify::monitor::{advance, Watch};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::client::Fetched;
use crate::describe::change_json;
use crate::error::{read_file, Error};
use crate::online::{check_identity_arg, Online};
use crate::output::Outcome;
use crate::state::write_atomic;
use crate::trust::Ca;
use crate::wire::HistoryAnswer;
use sha2::Digest as _;

/// The keys an owner expects: per identity, or for every watched identity.
#[derive(Clone, Debug, Default)]
pub(crate) struct ExpectedKeys {
    any: HashSet<[u8; 32]>,
    per_identity: HashMap<String, HashSet<[u8; 32]>>,
}

impl ExpectedKeys {
    /// Parses the `--expect-keys` file: one key per line (base64 of 32 bytes), optionally
    /// preceded by the identity it is for (`alice@example.com <key>`); `#` starts a comment.
    pub(crate) fn parse(text: &str) -> Result<ExpectedKeys, String> {
        let mut keys = ExpectedKeys::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let (identity, key) = match (words.next(), words.next(), words.next()) {
                (Some(k), None, None) => (None, k),
                (Some(i), Some(k), None) => (Some(i), k),
                _ => return Err(format!("line {}: expected [IDENTITY] KEY", n + 1)),
            };
            let key: [u8; 32] = B64
                .decode(key)
                .ok()
                .and_then(|k| k.try_into().ok())
                .ok_or_else(|| format!("line {}: key is not base64 of 32 bytes", n + 1))?;
            match identity {
                None => {
                    keys.any.insert(key);
                }
                Some(i) if kt_protocol::identity::check_syntax(i).is_ok() => {
                    keys.per_identity
                        .entry(i.to_owned())
                        .or_default()
                        .insert(key);
                }
                Some(i) => return Err(format!("line {}: {i:?} is not an identity", n + 1)),
            }
        }
        Ok(keys)
    }

    fn expects(&self, identity: &str, key: &[u8; 32]) -> bool {
        self.any.contains(key)
            || self
                .per_identity
                .get(identity)
                .is_some_and(|keys| keys.contains(key))
    }
}

/// A watch as saved between runs (`watch/<identity>.json`).
#[derive(Serialize, Deserialize)]
struct SavedWatch {
    identity: String,
    /// The chain head after the last version, base64.
    head: String,
    /// Every version record so far, version 1 first.
    records: Vec<Value>,
}

fn load_watch(path: &Path, identity: &str) -> Result<Option<Watch>, Error> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("cannot read", path, e)),
    };
    let corrupt = |why: String| Error::verify(format!("watch state {}: {why}", path.display()));
    let saved: SavedWatch = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if saved.identity != identity {
        return Err(corrupt("it is another identity's".into()));
    }
    let head = B64
        .decode(&saved.head)
        .ok()
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| corrupt("bad head".into()))?;
    let records = saved
        .records
        .iter()
        .map(VersionRecord::from_json)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(Some(Watch { records, head }))
}

fn save_watch(path: &Path, identity: &str, watch: &Watch) -> Result<(), Error> {
    let saved = SavedWatch {
        identity: identity.to_owned(),
        head: B64.encode(watch.head),
        records: watch.records.iter().map(VersionRecord::to_json).collect(),
    };
    let bytes = serde_json::to_vec_pretty(&saved)
        .map_err(|e| Error::Network(format!("cannot encode the watch state: {e}")))?;
    write_atomic(path, &bytes)
}

/// The event of one new version: its change and, for a new credential, its key and whether
/// it is expected.
fn event_json(record: &VersionRecord, expected: &ExpectedKeys) -> (Value, bool) {
    let new = match &record.change {
        Change::Issue { serial, .. } | Change::Rotate { serial, .. } => {
            record.credentials.iter().find(|c| c.serial == *serial)
        }
        _ => None,
    };
    let ok = new.is_none_or(|c| expected.expects(&record.identity, &c.public_key));
    let mut event = json!({
        "identity": record.identity,
        "version": record.version,
        "time": record.time,
        "public_key": new.map(|c| B64.encode(c.public_key)),
        "expected": new.map(|_| ok),
        "current_serials": record.credentials.iter().map(|c| c.serial.to_hex()).collect::<Vec<_>>(),
    });
    if let (Value::Object(e), Value::Object(c)) = (&mut event, change_json(record)) {
        e.extend(c);
    }
    (event, ok)
}

/// Runs the monitor (see the module guarantee). JSON: `origin`, `size`, `root`,
/// `consistency`, `previous_size` (of the last answer), `identities`, `events` [{identity,
/// version, time, type, serial, public_key, replaces, serials, scope, reason, admin,
/// enrollment, current_serials, expected}], `unexpected` [same shape], `bytes_fetched`.
pub(crate) fn monitor(
    online: &Online,
    ca: &Ca,
    identities: &[String],
    expect_keys: &Path,
) -> Result<Outcome, Error> {
    for i in identities {
        check_identity_arg(i)?;
    }
    let text = String::from_utf8(read_file(expect_keys)?)
        .map_err(|_| Error::Usage("--expect-keys file is not UTF-8".into()))?;
    let expected = ExpectedKeys::parse(&text)
        .map_err(|e| Error::Usage(format!("--expect-keys {}: {e}", expect_keys.display())))?;
    let dir = online.state.log_dir(online.verifier.name())?.join("watch");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
    let mut events = Vec::new();
    let mut unexpected = Vec::new();
    let mut fetched = 0usize;
    let mut last = None;
    for identity in identities {
        // Named by hash: an escaped identity can exceed a file name's 255 bytes.
        let name = kt_protocol::entry::encode_hex(&sha2::Sha256::digest(identity.as_bytes()));
        let path = dir.join(format!("{name}.json"));
        let watch = load_watch(&path, identity)?;
        let after = watch.as_ref().map_or(0, Watch::version);
        let request = format!(
            "/v1/identities/{}/history?after={after}",
            kt_protocol::identity::path_segment(identity)
        );
        let body = match online.client.get(&request, 64 << 20)? {
            Fetched::Body(body) => body,
            Fetched::NotFound => {
                return Err(Error::verify(format!("GET {request} answered 404")));
            }
        };
        fetched += body.len();
        let answer: HistoryAnswer = serde_json::from_slice(&body)
            .map_err(|e| Error::verify(format!("answer of GET {request} is malformed: {e}")))?;
        let verified = online.verify_answer(ca, identity, answer.proof.clone())?;
        let progress = advance(watch.as_ref(), &answer, &verified.lookup.identity)
            .map_err(|e| Error::verify(format!("{identity}: {e}")))?;
        let mut alarm = false;
        for record in &progress.changes {
            let (event, ok) = event_json(record, &expected);
            if !ok {
                alarm = true;
                unexpected.push(event.clone());
            }
            events.push(event);
        }
        // An unexpected key is reported again by every run until the owner expects it.
        if !alarm {
            save_watch(&path, identity, &progress.watch)?;
        }
        last = Some(verified);
    }
    let Some(last) = last else {
        return Err(Error::Usage("no identity to monitor".into()));
    };
    let checkpoint = &last.lookup.identity.checkpoint;
    let mut human = format!(
        "monitored {} identities in log {} at size {} ({} with saved state): {} new version(s), {} bytes fetched\n",
        identities.len(),
        checkpoint.checkpoint().origin,
        checkpoint.size(),
        last.consistency.word(),
        events.len(),
        fetched,
    );
    for e in &events {
        human.push_str(&format!(
            "  {} v{} {} {}{}\n",
            e["identity"].as_str().unwrap_or_default(),
            e["version"],
            e["type"].as_str().unwrap_or_default(),
            e["public_key"].as_str().unwrap_or_default(),
            if e["expected"] == json!(false) {
                "  <-- UNEXPECTED"
            } else {
                ""
            }
        ));
    }
    for e in &unexpected {
        human.push_str(&format!(
            "UNEXPECTED KEY {} for {} at version {} (serial {})\n",
            e["public_key"].as_str().unwrap_or_default(),
            e["identity"].as_str().unwrap_or_default(),
            e["version"],
            e["serial"].as_str().unwrap_or_default()
        ));
    }
    let json = json!({
        "origin": checkpoint.checkpoint().origin,
        "size": checkpoint.size(),
        "root": B64.encode(checkpoint.root().0),
        "consistency": last.consistency.word(),
        "previous_size": last.consistency.previous_size(),
        "identities": identities,
        "events": events,
        "unexpected": unexpected,
        "bytes_fetched": fetched,
    });
    Ok(if unexpected.is_empty() {
        Outcome::ok(json, human)
    } else {
        Outcome::failed(json, human)
    })
}
