//! The checks after a restart: the log key and the VRF key are the same; every acknowledged
//! checkpoint is consistent with the new one (RFC 9162 consistency proofs, verified with
//! kt-log); the map entry that ends each acknowledged checkpoint is served with its exact
//! bytes at its index; every identity with acknowledged changes shows, verified with
//! kt-verify, a version at least the highest acknowledged, a history holding exactly the
//! acknowledged record at each acknowledged version, and every acknowledged credential that
//! nothing acknowledged removed; unused acknowledged enrollment tokens still issue.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_log::checkpoint::{open_checkpoint, VerifiedCheckpoint};
use kt_log::tiles::{decode_entry_bundle, tile_width, TileId, TileKind, TILE_WIDTH};
use kt_protocol::api::{HistoryAnswer, IdentityProof};
use kt_protocol::directory::record::VersionRecord;
use kt_verify::monitor::advance;
use serde_json::Value;

use crate::ledger::{hashes, verify_proof, CredState, Kind, Shown};
use crate::workload::{issue, Ctx, Outcome, Rng};

/// How many tokens the restart checks use at most (the rest wait for a later restart).
const MAX_TOKENS_PER_CHECK: usize = 300;
/// How many identities changed in earlier cycles each restart checks besides those changed
/// since the last check (all of them at the last start).
const OLDER_IDENTITIES: usize = 300;
/// The same, at every 10th restart.
const OLDER_IDENTITIES_FULL: usize = 3000;
/// Threads of the identity and token checks.
const CHECK_THREADS: usize = 4;

fn error(ctx: &Ctx, message: String) {
    let mut ledger = ctx.ledger();
    ledger.counts.check_errors += 1;
    ledger.report(&message);
}

fn bad_answer(ctx: &Ctx, message: String) {
    let mut ledger = ctx.ledger();
    ledger.counts.bad_answers += 1;
    ledger.report(&message);
}

/// The body of `GET path` if 200, or an error counted and reported.
fn get_ok(ctx: &Ctx, path: &str) -> Option<Vec<u8>> {
    match ctx.client.get(path) {
        Ok(answer) if answer.status == 200 => Some(answer.body),
        Ok(answer) => {
            error(ctx, format!("GET {path}: {}", answer.describe()));
            None
        }
        Err(e) => {
            error(ctx, format!("GET {path}: no answer: {e}"));
            None
        }
    }
}

/// The JSON of `GET path`, or an error counted and reported.
fn get_json(ctx: &Ctx, path: &str) -> Option<Value> {
    get_ok(ctx, path).map(|body| serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Every check. With `full` (every 10th restart and the last): every acknowledged map entry
/// and a larger sample of older identities; else the map entries acknowledged since the last
/// check and a few random older tiles, and a sample of older identities. With `all` (the last
/// start): every identity and every unused token; else a random share of the unused tokens
/// (the others wait for a later power loss).
pub(crate) fn after_restart(
    ctx: &Ctx,
    vkey: &str,
    vrf_key: &str,
    full: bool,
    all: bool,
    rng: &mut Rng,
) {
    if let Some(key) = get_json(ctx, "/v1/log/key") {
        if key["verifier_key"].as_str().map(str::trim) != Some(vkey.trim())
            || key["vrf_key"].as_str().map(str::trim) != Some(vrf_key.trim())
        {
            let mut ledger = ctx.ledger();
            ledger.counts.inconsistent_checkpoints += 1;
            ledger.report(&format!("the log key or the VRF key changed: {key}"));
        }
    }
    let Some(new) = checkpoints(ctx) else {
        return;
    };
    map_entries(ctx, &new, full, rng);
    identities(ctx, &new, full, all, rng);
    tokens(ctx, all, rng);
}

/// The new checkpoint, after checking every acknowledged one against it.
fn checkpoints(ctx: &Ctx) -> Option<VerifiedCheckpoint> {
    let body = get_ok(ctx, "/v1/log/checkpoint")?;
    let new = match open_checkpoint(&body, &ctx.anchors.log_key) {
        Ok(new) => new,
        Err(e) => {
            let mut ledger = ctx.ledger();
            ledger.counts.inconsistent_checkpoints += 1;
            ledger.report(&format!("the new checkpoint does not verify: {e}"));
            return None;
        }
    };
    let acknowledged: Vec<VerifiedCheckpoint> = {
        let mut ledger = ctx.ledger();
        let mut list = std::mem::take(&mut ledger.checkpoints);
        list.extend(ledger.anchor.take());
        list
    };
    // One per size (two different roots of one size are a fork by themselves).
    let mut by_size: BTreeMap<u64, VerifiedCheckpoint> = BTreeMap::new();
    let mut failures = Vec::new();
    for cp in acknowledged {
        match by_size.get(&cp.size()) {
            Some(seen) if seen.root() != cp.root() => failures.push(format!(
                "two acknowledged checkpoints of size {} with different roots",
                cp.size()
            )),
            Some(_) => {}
            None => {
                by_size.insert(cp.size(), cp);
            }
        }
    }
    for (size, old) in &by_size {
        if *size > new.size() {
            failures.push(format!(
                "the log went back: acknowledged checkpoint of size {size}, now size {}",
                new.size()
            ));
        } else if *size == new.size() {
            if old.root() != new.root() {
                failures.push(format!("size {size} now has another root (a fork)"));
            }
        } else if *size > 0 {
            let path = format!("/v1/log/proof/consistency?from={size}&to={}", new.size());
            let Some(json) = get_json(ctx, &path) else {
                continue;
            };
            let verified = hashes(&json["proof"]).and_then(|proof| {
                old.verify_extended_by(&new, &proof)
                    .map_err(|e| e.to_string())
            });
            if let Err(e) = verified {
                failures.push(format!(
                    "acknowledged checkpoint of size {size} is not consistent with the new one of size {}: {e}",
                    new.size()
                ));
            }
        }
    }
    let mut ledger = ctx.ledger();
    for failure in failures {
        ledger.counts.inconsistent_checkpoints += 1;
        ledger.report(&failure);
    }
    ledger.anchor = Some(new.clone());
    Some(new)
}

/// Checks acknowledged map entries (each one the last entry of an acknowledged checkpoint):
/// those acknowledged since the last check one by one through `/v1/log/entries/{i}`; the
/// older ones (all with `full`, else those of 8 random tiles) against the entry tiles of the
/// new tree.
fn map_entries(ctx: &Ctx, new: &VerifiedCheckpoint, full: bool, rng: &mut Rng) {
    let (fresh, older): (BTreeMap<u64, Vec<u8>>, BTreeMap<u64, Vec<u8>>) = {
        let mut ledger = ctx.ledger();
        let fresh_set = std::mem::take(&mut ledger.fresh_map_entries);
        let last_tile = ledger
            .map_entries
            .keys()
            .next_back()
            .map_or(0, |i| i / TILE_WIDTH);
        let tiles: BTreeSet<u64> = (0..8).map(|_| rng.below(last_tile + 1)).collect();
        let mut fresh = BTreeMap::new();
        let mut older = BTreeMap::new();
        for (i, bytes) in &ledger.map_entries {
            if fresh_set.contains(i) {
                fresh.insert(*i, bytes.clone());
            } else if full || tiles.contains(&(i / TILE_WIDTH)) {
                older.insert(*i, bytes.clone());
            }
        }
        (fresh, older)
    };
    let failures = std::sync::Mutex::new(Vec::new());
    let fail = |index: u64, message: String| {
        failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((index, message));
    };
    // The documented single-entry read, for every fresh one (in a few threads).
    let fresh_list: Vec<(&u64, &Vec<u8>)> = fresh.iter().collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..CHECK_THREADS {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((&index, bytes)) = fresh_list.get(i) else {
                    break;
                };
                if index >= new.size() {
                    fail(
                        index,
                        format!(
                            "map entry {index} is gone: the log has {} entries",
                            new.size()
                        ),
                    );
                    continue;
                }
                if let Some(json) = get_json(ctx, &format!("/v1/log/entries/{index}")) {
                    let served = json["entry"].as_str().and_then(|e| B64.decode(e).ok());
                    if json["index"].as_u64() != Some(index) || served.as_ref() != Some(*bytes) {
                        fail(
                            index,
                            format!("/v1/log/entries/{index} serves other bytes than the acknowledged map entry"),
                        );
                    }
                }
            });
        }
    });
    // The older ones through the entry tiles.
    let mut tile: Option<(u64, Vec<Vec<u8>>)> = None;
    for (index, bytes) in &older {
        if *index >= new.size() {
            fail(
                *index,
                format!(
                    "map entry {index} is gone: the log has {} entries",
                    new.size()
                ),
            );
            continue;
        }
        let n = index / TILE_WIDTH;
        if tile.as_ref().map(|(t, _)| *t) != Some(n) {
            let width = tile_width(new.size(), None, n);
            let id = TileId {
                kind: TileKind::Entries,
                index: n,
                width,
            };
            let path = format!("/log/{}", id.path());
            let fetched = match ctx.client.get(&path) {
                Ok(answer) if answer.status == 200 => {
                    decode_entry_bundle(&answer.body, width.into())
                        .map(|list| list.into_iter().map(<[u8]>::to_vec).collect())
                        .map_err(|e| format!("{path}: {e}"))
                }
                Ok(answer) => Err(format!("{path}: {}", answer.describe())),
                Err(e) => Err(format!("{path}: no answer: {e}")),
            };
            match fetched {
                Ok(list) => tile = Some((n, list)),
                Err(e) => {
                    error(ctx, e);
                    tile = Some((n, Vec::new()));
                }
            }
        }
        let served = tile
            .as_ref()
            .and_then(|(_, list)| list.get((index % TILE_WIDTH) as usize));
        match served {
            Some(served) if served == bytes => {}
            Some(_) => fail(*index, format!("map entry {index} has changed")),
            None => {}
        }
    }
    let failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut ledger = ctx.ledger();
    for (_, failure) in failures {
        ledger.counts.changed_entries += 1;
        ledger.report(&failure);
    }
}

/// What the ledger holds about one identity, copied out for its check.
struct Acknowledged {
    /// Version → (change, serial, record, where: cycle and checkpoint size).
    versions: BTreeMap<u64, (Kind, String, VersionRecord, String)>,
    /// Its credentials: serial, public key, state, version that added it.
    creds: Vec<(String, [u8; 32], CredState, u64)>,
}

/// Checks the identities changed since the last check, a sample of the older ones (larger
/// with `full`), or all of them (`all`), in a few threads (see [`identity`]).
fn identities(ctx: &Ctx, new: &VerifiedCheckpoint, full: bool, all: bool, rng: &mut Rng) {
    let chosen: Vec<String> = {
        let mut ledger = ctx.ledger();
        let fresh = std::mem::take(&mut ledger.fresh_identities);
        let mut older: Vec<&String> = ledger
            .identities
            .iter()
            .filter(|(id, i)| !fresh.contains(*id) && !i.versions.is_empty())
            .map(|(id, _)| id)
            .collect();
        older.sort();
        let mut chosen: BTreeSet<String> = fresh;
        if all {
            chosen.extend(older.into_iter().cloned());
        } else {
            let n = if full {
                OLDER_IDENTITIES_FULL
            } else {
                OLDER_IDENTITIES
            };
            for _ in 0..older.len().min(n) {
                chosen.insert(older[rng.below(older.len() as u64) as usize].clone());
            }
        }
        chosen.into_iter().collect()
    };
    ctx.ledger().counts.identities_checked += chosen.len() as u64;
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..CHECK_THREADS {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(id) = chosen.get(i) else {
                    break;
                };
                identity(ctx, new, id);
            });
        }
    });
}

/// A verified identity proof from `path` (a lookup or a history answer), checked not older
/// than `new`, its checkpoint and map entry recorded as acknowledged.
fn verified_answer<T: serde::de::DeserializeOwned>(
    ctx: &Ctx,
    new: &VerifiedCheckpoint,
    id: &str,
    path: &str,
    proof: impl Fn(&T) -> &IdentityProof,
) -> Option<(T, Shown)> {
    let body = get_ok(ctx, path)?;
    let checked = serde_json::from_slice::<T>(&body)
        .map_err(|e| format!("answer does not parse: {e}"))
        .and_then(|answer| {
            let shown = verify_proof(proof(&answer), id, &ctx.anchors)?;
            let cp = &shown.checkpoint;
            if cp.size() < new.size() || (cp.size() == new.size() && cp.root() != new.root()) {
                return Err(format!(
                    "the proof's checkpoint (size {}) is not the new one (size {}) nor later",
                    cp.size(),
                    new.size()
                ));
            }
            Ok((answer, shown))
        });
    match checked {
        Ok((answer, shown)) => {
            ctx.ledger().record_shown(&shown);
            Some((answer, shown))
        }
        Err(e) => {
            bad_answer(ctx, format!("GET {path}: {e}"));
            None
        }
    }
}

/// One identity: its lookup (`GET /v1/identities/{id}`) verifies and shows a version at
/// least the highest acknowledged; its history from nothing (`…/history?after=0`) verifies
/// (kt-verify's monitor: every version chained to the map's head and each one following from
/// the one before by the transition and history rules) and holds, at each acknowledged
/// version, exactly the acknowledged record; its current credentials are every acknowledged
/// one that no acknowledged change removed, and none that one did remove.
///
/// Counted: each acknowledged version missing or changed is a changed entry, and a lost
/// credential too if that change added one; an acknowledged credential not current (its
/// version intact) a lost credential; a removed one current again a changed entry.
fn identity(ctx: &Ctx, new: &VerifiedCheckpoint, id: &str) {
    let Some(acked) = ({
        let ledger = ctx.ledger();
        ledger.identities.get(id).map(|i| Acknowledged {
            versions: i
                .versions
                .iter()
                .map(|(v, a)| {
                    let at = format!("cycle {}, checkpoint size {}", a.cycle, a.size);
                    (*v, (a.kind, a.serial.clone(), a.record.clone(), at))
                })
                .collect(),
            creds: i
                .creds
                .iter()
                .map(|&c| {
                    let c = &ledger.creds[c];
                    (
                        c.serial.clone(),
                        *c.key.verifying_key().as_bytes(),
                        c.state,
                        c.version,
                    )
                })
                .collect(),
        })
    }) else {
        return;
    };
    let highest = acked.versions.keys().next_back().copied().unwrap_or(0);
    if highest == 0 {
        return;
    }
    let lookup_path = format!("/v1/identities/{id}");
    let Some((_, lookup)) = verified_answer::<IdentityProof>(ctx, new, id, &lookup_path, |p| p)
    else {
        return;
    };
    let history_path = format!("/v1/identities/{id}/history?after=0");
    let Some((history_answer, history)) =
        verified_answer::<HistoryAnswer>(ctx, new, id, &history_path, |h| &h.proof)
    else {
        return;
    };
    let records = match advance(None, &history_answer, &history.identity) {
        Ok(progress) => progress.watch.records,
        Err(e) => {
            bad_answer(ctx, format!("history of {id} does not verify: {e}"));
            return;
        }
    };
    if history.version() < lookup.version() {
        bad_answer(
            ctx,
            format!(
                "history of {id} shows version {}, below version {} its lookup showed",
                history.version(),
                lookup.version()
            ),
        );
    }
    // Each acknowledged version: shown by the lookup (version ≥) and in the history, with
    // exactly the acknowledged record.
    let mut problems = Vec::new();
    let mut bad_versions = BTreeSet::new();
    let mut lost = 0;
    for (version, (kind, serial, record, at)) in &acked.versions {
        let problem = if lookup.version() < *version {
            Some(format!(
                "its lookup shows version {} (below the acknowledged {version}, {kind:?} of {serial}, {at})",
                lookup.version()
            ))
        } else {
            match records.get((*version - 1) as usize) {
                None => Some(format!(
                    "its history ends at version {} (below the acknowledged {version}, {kind:?} of {serial}, {at})",
                    records.len()
                )),
                Some(found) if found != record => Some(format!(
                    "version {version} ({kind:?} of {serial}, {at}) is now {} instead of the acknowledged {}",
                    found.to_json(),
                    record.to_json()
                )),
                Some(_) => None,
            }
        };
        if let Some(problem) = problem {
            bad_versions.insert(*version);
            if kind.adds_credential() {
                lost += 1;
            }
            problems.push(problem);
        }
    }
    let changed = bad_versions.len() as u64;
    // The credentials: those of intact versions that nothing acknowledged removed are current
    // (with our key); those an acknowledged rotation or revocation removed are not.
    let current = lookup.record().map_or(&[][..], |r| &r.credentials[..]);
    let mut undone = 0;
    for (serial, key, state, version) in &acked.creds {
        let found = current.iter().find(|c| c.serial.to_hex() == *serial);
        match state {
            CredState::Current if !bad_versions.contains(version) => match found {
                Some(c) if c.public_key == *key => {}
                Some(_) => {
                    lost += 1;
                    problems.push(format!("credential {serial} is current with another key"));
                }
                None => {
                    lost += 1;
                    problems.push(format!(
                        "acknowledged credential {serial} (version {version}) is not current"
                    ));
                }
            },
            CredState::Superseded | CredState::Revoked if found.is_some() => {
                undone += 1;
                problems.push(format!(
                    "credential {serial}, {} by an acknowledged change, is current again",
                    if *state == CredState::Revoked {
                        "revoked"
                    } else {
                        "replaced"
                    }
                ));
            }
            _ => {}
        }
    }
    if problems.is_empty() {
        return;
    }
    let mut ledger = ctx.ledger();
    ledger.counts.changed_entries += changed + undone;
    ledger.counts.lost_credentials += lost;
    ledger.report(&format!(
        "identity {id} (acknowledged up to version {highest}): {}",
        problems.join("; ")
    ));
}

/// Unused acknowledged tokens (all, or each with probability 1/2 up to a limit) must still
/// issue a credential; each one used leaves the ledger's unused set.
fn tokens(ctx: &Ctx, all: bool, rng: &mut Rng) {
    let chosen: Vec<(String, String, usize)> = {
        let mut ledger = ctx.ledger();
        ledger.pool.clear();
        let mut candidates: Vec<String> = ledger.unused.keys().cloned().collect();
        candidates.sort();
        let mut chosen = Vec::new();
        for token in candidates {
            if !all && (chosen.len() >= MAX_TOKENS_PER_CHECK || rng.below(2) == 0) {
                continue;
            }
            if let Some((token, entry)) = ledger.take_token(&token) {
                chosen.push((token, entry.identity, entry.cycle));
            }
        }
        chosen
    };
    ctx.ledger().counts.tokens_checked += chosen.len() as u64;
    std::thread::scope(|scope| {
        for part in 0..CHECK_THREADS {
            let chosen = &chosen;
            scope.spawn(move || {
                for (token, identity, cycle) in chosen.iter().skip(part).step_by(CHECK_THREADS) {
                    match issue(ctx, identity, token) {
                        Outcome::Acknowledged => {}
                        Outcome::Refused(_, problem, text)
                            if problem == "bad-token" || problem == "token-used" =>
                        {
                            let mut ledger = ctx.ledger();
                            ledger.counts.lost_enrollments += 1;
                            ledger.report(&format!(
                                "acknowledged enrollment of {identity} (cycle {cycle}) refused after the restart: {text}"
                            ));
                        }
                        Outcome::Refused(status, _, text) => error(
                            ctx,
                            format!("issuance with the token of {identity} ({status}): {text}"),
                        ),
                        Outcome::Unanswered(e) => {
                            error(ctx, format!("issuance with the token of {identity}: no answer: {e}"))
                        }
                    }
                }
            });
        }
    });
}
