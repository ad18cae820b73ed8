//! The checks after a restart: the log key is the same; every acknowledged checkpoint is
//! consistent with the new one (RFC 9162 consistency proofs, verified with kt-log); every
//! acknowledged entry is served with its exact bytes at its index; current credentials are
//! listed by their identity's lookup; unused acknowledged enrollment tokens still issue.

use std::collections::{BTreeMap, BTreeSet};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_log::checkpoint::{open_checkpoint, VerifiedCheckpoint};
use kt_log::tiles::{decode_entry_bundle, tile_width, TileId, TileKind, TILE_WIDTH};
use serde_json::Value;

use crate::ledger::{hashes, CredState};
use crate::workload::{issue, listed, Ctx, Outcome, Rng};

/// How many tokens the restart checks use at most (the rest wait for a later restart).
const MAX_TOKENS_PER_CHECK: usize = 300;

fn error(ctx: &Ctx, message: String) {
    let mut ledger = ctx.ledger();
    ledger.counts.check_errors += 1;
    ledger.report(&message);
}

/// The JSON of `GET path`, or an error counted and reported.
fn get_json(ctx: &Ctx, path: &str) -> Option<Value> {
    match ctx.client.get(path) {
        Ok(answer) if answer.status == 200 => Some(answer.json()),
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

/// Every check. With `full` (every 10th restart and the last): every acknowledged entry and
/// every unused token; else the entries acknowledged since the last check and a few random
/// older tiles, and a random share of the unused tokens (the others wait for a later power
/// loss).
pub(crate) fn after_restart(ctx: &Ctx, vkey: &str, full: bool, all_tokens: bool, rng: &mut Rng) {
    if let Some(key) = get_json(ctx, "/v1/log/key") {
        if key["verifier_key"].as_str().map(str::trim) != Some(vkey.trim()) {
            let mut ledger = ctx.ledger();
            ledger.counts.inconsistent_checkpoints += 1;
            ledger.report(&format!("the log key changed: {key}"));
        }
    }
    let Some(new) = checkpoints(ctx) else {
        return;
    };
    let bad = entries(ctx, &new, full, rng);
    lookups(ctx, &bad, rng);
    tokens(ctx, all_tokens, rng);
}

/// The new checkpoint, after checking every acknowledged one against it.
fn checkpoints(ctx: &Ctx) -> Option<VerifiedCheckpoint> {
    let answer = match ctx.client.get("/v1/log/checkpoint") {
        Ok(answer) if answer.status == 200 => answer,
        Ok(answer) => {
            error(ctx, format!("checkpoint: {}", answer.describe()));
            return None;
        }
        Err(e) => {
            error(ctx, format!("checkpoint: no answer: {e}"));
            return None;
        }
    };
    let new = match open_checkpoint(&answer.body, &ctx.log_key) {
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

/// Checks acknowledged entries (all with `full`; else those since the last check and those of
/// a few random older tiles) against the entry tiles of the new tree, and a sample through
/// `/v1/log/entries/{i}`. Returns the indices that failed.
fn entries(ctx: &Ctx, new: &VerifiedCheckpoint, full: bool, rng: &mut Rng) -> BTreeSet<u64> {
    let (acknowledged, credential_at): (BTreeMap<u64, Vec<u8>>, BTreeMap<u64, String>) = {
        let mut ledger = ctx.ledger();
        let fresh = std::mem::take(&mut ledger.fresh_entries);
        let mut tiles: BTreeSet<u64> = fresh.iter().map(|i| i / TILE_WIDTH).collect();
        let last_tile = ledger
            .entries
            .keys()
            .next_back()
            .map_or(0, |i| i / TILE_WIDTH);
        for _ in 0..8 {
            tiles.insert(rng.below(last_tile + 1));
        }
        let chosen: BTreeMap<u64, Vec<u8>> = ledger
            .entries
            .iter()
            .filter(|(i, _)| full || tiles.contains(&(**i / TILE_WIDTH)))
            .map(|(i, e)| (*i, e.clone()))
            .collect();
        let credentials = ledger
            .creds
            .iter()
            .filter(|c| chosen.contains_key(&c.log_index))
            .map(|c| (c.log_index, c.serial.clone()))
            .collect();
        (chosen, credentials)
    };
    let mut bad = BTreeSet::new();
    let mut failures = Vec::new();
    let mut tile: Option<(u64, Vec<Vec<u8>>)> = None;
    for (index, bytes) in &acknowledged {
        if *index >= new.size() {
            bad.insert(*index);
            failures.push((
                *index,
                format!("entry {index} is gone: the log has {} entries", new.size()),
            ));
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
            Some(_) => {
                bad.insert(*index);
                failures.push((*index, format!("entry {index} has changed")));
            }
            None => {}
        }
    }
    // The documented single-entry read, for a sample.
    let indices: Vec<u64> = acknowledged.keys().copied().collect();
    for _ in 0..indices.len().min(20) {
        let index = indices[rng.below(indices.len() as u64) as usize];
        if index >= new.size() {
            continue;
        }
        if let Some(json) = get_json(ctx, &format!("/v1/log/entries/{index}")) {
            let served = json["entry"].as_str().and_then(|e| B64.decode(e).ok());
            if served.as_deref() != acknowledged.get(&index).map(Vec::as_slice) && bad.insert(index)
            {
                failures.push((index, format!("/v1/log/entries/{index} serves other bytes")));
            }
        }
    }
    let mut ledger = ctx.ledger();
    for (index, failure) in failures {
        ledger.counts.changed_entries += 1;
        if let Some(serial) = credential_at.get(&index) {
            ledger.counts.lost_credentials += 1;
            ledger.report(&format!("credential {serial}: {failure}"));
        } else {
            ledger.report(&failure);
        }
    }
    bad
}

/// A sample of the current credentials (200 of the last cycle, 30 older ones): their
/// identity's lookup lists them, at their index.
fn lookups(ctx: &Ctx, bad: &BTreeSet<u64>, rng: &mut Rng) {
    let sample: Vec<(String, String, u64)> = {
        let ledger = ctx.ledger();
        let current: Vec<_> = ledger
            .creds
            .iter()
            .filter(|c| c.state == CredState::Current && !bad.contains(&c.log_index))
            .collect();
        let last = ledger.cycle;
        let recent: Vec<_> = current.iter().filter(|c| c.cycle >= last).collect();
        let older: Vec<_> = current.iter().filter(|c| c.cycle < last).collect();
        let mut chosen = Vec::new();
        for (list, n) in [(&recent, 200), (&older, 30)] {
            for _ in 0..list.len().min(n) {
                let c = list[rng.below(list.len() as u64) as usize];
                chosen.push((c.identity.clone(), c.serial.clone(), c.log_index));
            }
        }
        chosen
    };
    for (identity, serial, index) in sample {
        let answer = match ctx.client.get(&format!("/v1/identities/{identity}")) {
            Ok(answer) => answer,
            Err(e) => {
                error(ctx, format!("lookup of {identity}: no answer: {e}"));
                continue;
            }
        };
        let problem = match answer.status {
            200 => match listed(&answer.json(), &serial) {
                Some(c) if c["log_index"].as_u64() == Some(index) => None,
                Some(c) => Some(format!("lists {serial} at another index: {c}")),
                None => Some(format!("does not list its current credential {serial}")),
            },
            404 => Some(format!("answers 404; its current credential is {serial}")),
            _ => {
                error(ctx, format!("lookup of {identity}: {}", answer.describe()));
                None
            }
        };
        if let Some(problem) = problem {
            let mut ledger = ctx.ledger();
            ledger.counts.lost_credentials += 1;
            ledger.report(&format!("lookup of {identity} {problem}"));
        }
    }
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
    let threads = 4;
    std::thread::scope(|scope| {
        for part in 0..threads {
            let chosen = &chosen;
            scope.spawn(move || {
                for (token, identity, cycle) in chosen.iter().skip(part).step_by(threads) {
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
