//! `monitor`: an identity owner's check that the log binds only their own keys to them.
//!
//! Guarantee: with exit 0, every entry of the log up to the latest checkpoint was downloaded
//! (the recomputed root equals the signed one, which is consistent with the saved checkpoint),
//! every entry parsed, and every issue/rotate entry for a watched identity binds a key on the
//! expected list. Any other key is reported with its log index (exit 1). An entry that does
//! not parse also fails the run: it could be hiding a binding.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_log::checkpoint::open_checkpoint;
use kt_log::note::NoteVerifier;
use serde_json::{json, Value};

use crate::download::{progress_bar, scan, Edge, EntryWorker, TileSource};
use kt_verify::entry::{is_valid_identity, parse_entry, Entry};

use crate::error::{read_file, Error};
use crate::output::Outcome;
use crate::state::StateDir;
use crate::sync::{check_consistent, Advance, ProofSource};

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
                Some(i) if is_valid_identity(i) => {
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

struct MonitorWorker<'a> {
    watched: &'a HashSet<String>,
}

enum Seen {
    Event(u64, Entry),
    Unparseable(u64, String),
}

impl EntryWorker for MonitorWorker<'_> {
    type Out = Vec<Seen>;
    fn process(&self, first: u64, entries: &[&[u8]]) -> Vec<Seen> {
        let mut out = Vec::new();
        for (i, bytes) in entries.iter().enumerate() {
            let index = first + i as u64;
            match parse_entry(bytes) {
                Ok(entry) if self.watched.contains(entry.identity()) => {
                    out.push(Seen::Event(index, entry));
                }
                Ok(_) => {}
                Err(e) => out.push(Seen::Unparseable(index, e.to_string())),
            }
        }
        out
    }
}

fn event_json(index: u64, entry: &Entry, expected: Option<bool>) -> Value {
    let b = entry.binding();
    let (serials, scope, reason, admin) = match entry {
        Entry::Revoke(r) => (
            Some(r.serials.iter().map(|s| s.1.clone()).collect::<Vec<_>>()),
            Some(r.scope.clone()),
            Some(r.reason.clone()),
            Some(r.admin.clone()),
        ),
        Entry::Enable(e) => (None, None, None, Some(e.admin.clone())),
        _ => (None, None, None, None),
    };
    json!({
        "index": index,
        "type": entry.kind(),
        "time": entry.time(),
        "identity": entry.identity(),
        "serial": b.map(|b| b.serial_hex.clone()),
        "public_key": b.map(|b| B64.encode(b.public_key)),
        "replaces": b.and_then(|b| b.replaces.as_ref().map(|r| r.1.clone())),
        "serials": serials,
        "scope": scope,
        "reason": reason,
        "admin": admin,
        "expected": expected,
    })
}

/// Runs the monitor (see the module guarantee). JSON: `origin`, `size`, `root`,
/// `consistency`, `previous_size`, `identities`, `events` [{index, type, time, identity,
/// serial, public_key, replaces, serials, scope, reason, admin, expected}],
/// `unexpected` [same shape], `unparseable` [{index, problem}].
#[allow(clippy::too_many_arguments)]
pub(crate) fn monitor(
    source: &dyn TileSource,
    proofs: Option<&dyn ProofSource>,
    verifier: &NoteVerifier,
    state_dir: &StateDir,
    identities: &[String],
    expect_keys: &Path,
    threads: usize,
    progress: bool,
    witnesses: &crate::trust::Witnesses,
) -> Result<Outcome, Error> {
    for i in identities {
        if !is_valid_identity(i) {
            return Err(Error::Usage(format!("{i:?} is not a valid identity")));
        }
    }
    let text = String::from_utf8(read_file(expect_keys)?)
        .map_err(|_| Error::Usage("--expect-keys file is not UTF-8".into()))?;
    let expected = ExpectedKeys::parse(&text)
        .map_err(|e| Error::Usage(format!("--expect-keys {}: {e}", expect_keys.display())))?;
    let target = open_checkpoint(&source.checkpoint()?, verifier)
        .map_err(|e| Error::verify(format!("checkpoint: {e}")))?;
    witnesses.check(&target, verifier, "checkpoint")?;
    let saved = state_dir.load_checkpoint(verifier)?;
    let consistency = match proofs {
        Some(p) => check_consistent(state_dir, saved.as_ref(), &target, p)?,
        None => match &saved {
            None => Advance::First,
            Some(s) if s.size() > target.size() => {
                return Err(Error::Usage(format!(
                    "the tiles' checkpoint (size {}) is older than the saved one (size {})",
                    target.size(),
                    s.size()
                )))
            }
            Some(s) if s.size() == target.size() => Advance::Unchanged,
            Some(s) => Advance::Extended { from: s.size() },
        },
    };
    let watched: HashSet<String> = identities.iter().cloned().collect();
    let worker = MonitorWorker { watched: &watched };
    let bar = progress_bar(target.size(), progress);
    let mut edge = Edge::new();
    let mut events = Vec::new();
    let mut unexpected = Vec::new();
    let mut unparseable = Vec::new();
    let check = saved.as_ref().filter(|_| proofs.is_none());
    let result = scan(
        source,
        0,
        target.size(),
        threads,
        &worker,
        &bar,
        |(_, hashes, seen)| {
            for s in seen {
                match s {
                    Seen::Event(index, entry) => {
                        let ok = entry
                            .binding()
                            .map(|b| expected.expects(&b.identity, &b.public_key));
                        let j = event_json(index, &entry, ok);
                        if ok == Some(false) {
                            unexpected.push(j.clone());
                        }
                        events.push(j);
                    }
                    Seen::Unparseable(index, problem) => {
                        unparseable.push(json!({"index": index, "problem": problem}));
                    }
                }
            }
            for h in hashes {
                edge.push(h);
                if let Some(cp) = check {
                    if edge.size() == cp.size() && edge.root() != cp.root() {
                        let reason = format!(
                        "the entries that hash to the size-{} signed root give another root at size {}",
                        target.size(),
                        cp.size()
                    );
                        return Err(crate::fork::report(
                            crate::fork::evidence(cp, &target, &[], reason, None),
                            state_dir.root(),
                        ));
                    }
                }
            }
            Ok(())
        },
    );
    bar.finish_and_clear();
    result?;
    if edge.root() != target.root() {
        return Err(Error::verify(format!(
            "the downloaded entries give root {} at size {}, the signed checkpoint says {}",
            edge.root(),
            target.size(),
            target.root()
        )));
    }
    if matches!(consistency, Advance::First | Advance::Extended { .. }) {
        state_dir.save_checkpoint(&target)?;
    }
    let mut human = format!(
        "monitored {} identities in log {} up to size {} ({} with saved state): {} event(s)\n",
        identities.len(),
        target.checkpoint().origin,
        target.size(),
        consistency.word(),
        events.len()
    );
    for e in &events {
        human.push_str(&format!(
            "  [{}] {} {} {}{}\n",
            e["index"],
            e["type"].as_str().unwrap_or_default(),
            e["identity"].as_str().unwrap_or_default(),
            e["public_key"]
                .as_str()
                .or(e["serials"].as_array().map(|_| "serials"))
                .unwrap_or_default(),
            if e["expected"] == json!(false) {
                "  <-- UNEXPECTED"
            } else {
                ""
            }
        ));
    }
    for e in &unexpected {
        human.push_str(&format!(
            "UNEXPECTED KEY {} for {} at log index {} (serial {})\n",
            e["public_key"].as_str().unwrap_or_default(),
            e["identity"].as_str().unwrap_or_default(),
            e["index"],
            e["serial"].as_str().unwrap_or_default()
        ));
    }
    for u in &unparseable {
        human.push_str(&format!(
            "UNPARSEABLE entry {}: {}\n",
            u["index"], u["problem"]
        ));
    }
    let json = json!({
        "origin": target.checkpoint().origin,
        "size": target.size(),
        "root": B64.encode(target.root().0),
        "consistency": consistency.word(),
        "previous_size": consistency.previous_size(),
        "identities": identities,
        "events": events,
        "unexpected": unexpected,
        "unparseable": unparseable,
    });
    Ok(if unexpected.is_empty() && unparseable.is_empty() {
        Outcome::ok(json, human)
    } else {
        Outcome::failed(json, human)
    })
}
