//! The concurrent client: admins enroll (one by one and in bulk), clients get credentials with
//! their tokens (Ed25519 proof of possession), rotate them, admins revoke some, monitors read
//! the checkpoint. Everything acknowledged goes into the ledger.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use kt_log::checkpoint::open_checkpoint;
use kt_log::note::NoteVerifier;
use kt_protocol::entry::{EntryBody, LogEntry, Serial};
use serde_json::{json, Value};

use crate::http::{Answer, Client};
use crate::ledger::{check_logged, CredState, Ledger};

/// What the workers and the checks share.
pub(crate) struct Ctx {
    pub(crate) client: Client,
    pub(crate) log_key: NoteVerifier,
    pub(crate) ledger: Arc<Mutex<Ledger>>,
}

impl Ctx {
    pub(crate) fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// xorshift64*: the run's randomness, reproducible from `--seed`.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `0..n` (0 if `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    /// Uniform in `lo..=hi`.
    pub(crate) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    /// A fresh generator for another thread.
    pub(crate) fn fork(&mut self) -> Rng {
        Rng::new(self.next() | 1)
    }
}

/// A new Ed25519 key (from the OS's randomness: keys need no reproducibility).
pub(crate) fn new_key() -> SigningKey {
    let mut seed = [0u8; 32];
    if getrandom::fill(&mut seed).is_err() {
        // Not secret here: a test key. Fall back to the clock rather than fail.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        seed[..16].copy_from_slice(&nanos.to_le_bytes());
    }
    SigningKey::from_bytes(&seed)
}

fn key_b64(key: &SigningKey) -> String {
    B64.encode(key.verifying_key().as_bytes())
}

/// How a request ended.
pub(crate) enum Outcome {
    /// 2xx, checked and recorded.
    Acknowledged,
    /// An answer refusing it: (status, problem code, description).
    Refused(u16, String, String),
    /// No answer (the server died under it, or a timeout).
    Unanswered(String),
}

/// Checks that `entry` is a binding of `identity`'s `key` under `serial` (of kind `kind`).
fn check_binding(
    entry: &[u8],
    kind: &str,
    identity: &str,
    serial: &str,
    key: &SigningKey,
) -> Result<(), String> {
    let parsed = LogEntry::parse(entry).map_err(|e| format!("entry does not parse: {e}"))?;
    let binding = parsed.body.binding().ok_or("entry is not a binding")?;
    if parsed.body.kind() != kind
        || parsed.body.identity() != identity
        || binding.serial.to_hex() != serial
        || binding.public_key != *key.verifying_key().as_bytes()
    {
        return Err(format!(
            "entry is not the {kind} of {identity} {serial} for our key"
        ));
    }
    Ok(())
}

fn refused(answer: &Answer) -> Outcome {
    Outcome::Refused(answer.status, answer.problem(), answer.describe())
}

/// Issues a credential for `identity` with `token` (already taken out of the ledger).
pub(crate) fn issue(ctx: &Ctx, identity: &str, token: &str) -> Outcome {
    let key = new_key();
    let public = key_b64(&key);
    let message = kt_protocol::pop::issuance_message(
        identity,
        &public,
        &kt_protocol::pop::enrollment_id(token),
    );
    let body = json!({
        "identity": identity,
        "token": token,
        "public_key": public,
        "signature": B64.encode(key.sign(message.as_bytes()).to_bytes()),
    });
    let answer = match ctx.client.post("/v1/credentials", &body, false) {
        Ok(answer) => answer,
        Err(e) => return Outcome::Unanswered(e),
    };
    if answer.status != 201 {
        return refused(&answer);
    }
    let json = answer.json();
    let serial = json["serial"].as_str().unwrap_or_default().to_owned();
    let checked = check_logged(&json, &ctx.log_key).and_then(|logged| {
        check_binding(&logged.entry, "issue", identity, &serial, &key).map(|()| logged)
    });
    let mut ledger = ctx.ledger();
    match checked {
        Ok(logged) => {
            ledger.record_cred(&serial, identity, key, &logged);
            Outcome::Acknowledged
        }
        Err(e) => {
            ledger.counts.bad_answers += 1;
            ledger.report(&format!("issuance answer for {identity}: {e}"));
            Outcome::Acknowledged
        }
    }
}

fn enroll(ctx: &Ctx, rng: &mut Rng, count: usize) {
    let identities = ctx.ledger().new_identities(count);
    // The longest lifetime (30 days): no token expires during a run.
    let body = json!({"identities": identities, "ttl_seconds": 2_592_000});
    let answer = match ctx.client.post("/v1/admin/enrollments", &body, true) {
        Ok(answer) => answer,
        Err(_) => {
            ctx.ledger().counts.unanswered += 1;
            return;
        }
    };
    let mut ledger = ctx.ledger();
    if answer.status == 503 {
        return;
    }
    if answer.status != 201 {
        ledger.counts.bad_answers += 1;
        ledger.report(&format!("enrollment refused: {}", answer.describe()));
        return;
    }
    let json = answer.json();
    let tokens: Vec<(String, String)> = json["enrollments"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|e| {
                    Some((
                        e["identity"].as_str()?.to_owned(),
                        e["token"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    if tokens.len() != identities.len()
        || tokens
            .iter()
            .zip(&identities)
            .any(|((got, _), asked)| got != asked)
    {
        ledger.counts.bad_answers += 1;
        ledger.report(&format!(
            "enrollment answer does not match its request: {}",
            answer.describe()
        ));
        return;
    }
    // 80 % to the workers now; the rest stay unused until after the power loss.
    let mut shares: Vec<bool> = (0..tokens.len()).map(|_| rng.below(10) < 8).collect();
    ledger.record_tokens(tokens, || shares.pop().unwrap_or(false));
}

fn issue_from_pool(ctx: &Ctx, rng: &mut Rng) -> bool {
    let taken = {
        let mut ledger = ctx.ledger();
        if ledger.pool.is_empty() {
            return false;
        }
        let i = rng.below(ledger.pool.len() as u64) as usize;
        let token = ledger.pool.swap_remove(i);
        ledger.take_token(&token)
    };
    let Some((token, entry)) = taken else {
        return true;
    };
    match issue(ctx, &entry.identity, &token) {
        Outcome::Acknowledged => {}
        Outcome::Unanswered(_) => ctx.ledger().counts.unanswered += 1,
        Outcome::Refused(503, _, _) => {
            // Not taken in: the token is still unused.
            let mut ledger = ctx.ledger();
            ledger.pool.push(token.clone());
            ledger.unused.insert(token, entry);
        }
        Outcome::Refused(status, problem, text) => {
            let mut ledger = ctx.ledger();
            if problem == "bad-token" || problem == "token-used" {
                ledger.counts.lost_enrollments += 1;
                ledger.report(&format!(
                    "acknowledged enrollment of {} (cycle {}) refused: {text}",
                    entry.identity, entry.cycle
                ));
            } else {
                ledger.counts.bad_answers += 1;
                ledger.report(&format!(
                    "issuance for {} refused ({status}): {text}",
                    entry.identity
                ));
            }
        }
    }
    true
}

/// Picks a current credential that nobody is working on, and marks it busy.
fn pick_current(ctx: &Ctx, rng: &mut Rng) -> Option<(String, String, SigningKey)> {
    let mut ledger = ctx.ledger();
    let n = ledger.creds.len() as u64;
    if n == 0 {
        return None;
    }
    for _ in 0..20 {
        let i = rng.below(n) as usize;
        let cred = &mut ledger.creds[i];
        if cred.state == CredState::Current && !cred.busy {
            cred.busy = true;
            return Some((cred.serial.clone(), cred.identity.clone(), cred.key.clone()));
        }
    }
    None
}

/// The answer refused an action on a credential the ledger holds as current.
fn refused_current(ctx: &Ctx, what: &str, serial: &str, identity: &str, answer: &Answer) {
    let mut ledger = ctx.ledger();
    let problem = answer.problem();
    match answer.status {
        429 | 503 => {
            if let Some(&i) = ledger.by_serial.get(serial) {
                ledger.creds[i].busy = false;
            }
            return;
        }
        404 => {
            ledger.counts.lost_credentials += 1;
            ledger.report(&format!(
                "{what} of acknowledged credential {serial} of {identity}: unknown to the server: {}",
                answer.describe()
            ));
        }
        409 if problem == "credential-not-current" => {
            ledger.counts.lost_credentials += 1;
            ledger.report(&format!(
                "{what} of acknowledged current credential {serial} of {identity}: {}",
                answer.describe()
            ));
        }
        _ => {
            ledger.counts.bad_answers += 1;
            ledger.report(&format!(
                "{what} of {serial} of {identity}: {}",
                answer.describe()
            ));
        }
    }
    // Counted once: from now on the driver makes no claim about it.
    ledger.set_state(serial, CredState::Uncertain);
}

fn rotate(ctx: &Ctx, rng: &mut Rng) -> bool {
    let Some((serial, identity, current)) = pick_current(ctx, rng) else {
        return false;
    };
    let new = new_key();
    let public = key_b64(&new);
    let Some(replaced) = Serial::parse_hex(&serial) else {
        ctx.ledger().set_state(&serial, CredState::Uncertain);
        return true;
    };
    let message = kt_protocol::pop::rotation_message(&identity, &replaced, &public);
    let body = json!({
        "identity": identity,
        "serial": serial,
        "public_key": public,
        "signature_current": B64.encode(current.sign(message.as_bytes()).to_bytes()),
        "signature_new": B64.encode(new.sign(message.as_bytes()).to_bytes()),
    });
    let answer = match ctx.client.post("/v1/credentials/rotate", &body, false) {
        Ok(answer) => answer,
        Err(_) => {
            let mut ledger = ctx.ledger();
            ledger.counts.unanswered += 1;
            ledger.set_state(&serial, CredState::Uncertain);
            return true;
        }
    };
    if answer.status != 201 {
        refused_current(ctx, "rotation", &serial, &identity, &answer);
        return true;
    }
    let json = answer.json();
    let new_serial = json["serial"].as_str().unwrap_or_default().to_owned();
    let checked = check_logged(&json, &ctx.log_key).and_then(|logged| {
        check_binding(&logged.entry, "rotate", &identity, &new_serial, &new)?;
        if json["replaces"].as_str() != Some(serial.as_str()) {
            return Err("answer does not name the replaced serial".into());
        }
        Ok(logged)
    });
    let mut ledger = ctx.ledger();
    match checked {
        Ok(logged) => {
            ledger.counts.rotations += 1;
            ledger.record_cred(&new_serial, &identity, new, &logged);
            ledger.set_state(&serial, CredState::Superseded);
        }
        Err(e) => {
            ledger.counts.bad_answers += 1;
            ledger.report(&format!("rotation answer for {identity}: {e}"));
            ledger.set_state(&serial, CredState::Uncertain);
        }
    }
    true
}

fn revoke(ctx: &Ctx, rng: &mut Rng) -> bool {
    let Some((serial, identity, _)) = pick_current(ctx, rng) else {
        return false;
    };
    let path = format!("/v1/admin/credentials/{serial}/revoke");
    let answer = match ctx
        .client
        .post(&path, &json!({"reason": "keyCompromise"}), true)
    {
        Ok(answer) => answer,
        Err(_) => {
            let mut ledger = ctx.ledger();
            ledger.counts.unanswered += 1;
            ledger.set_state(&serial, CredState::Uncertain);
            return true;
        }
    };
    if answer.status != 200 {
        refused_current(ctx, "revocation", &serial, &identity, &answer);
        return true;
    }
    let json = answer.json();
    let checked = check_logged(&json, &ctx.log_key).and_then(|logged| {
        let parsed = LogEntry::parse(&logged.entry).map_err(|e| format!("entry: {e}"))?;
        match &parsed.body {
            EntryBody::Revoke { serials, .. }
                if serials.iter().map(Serial::to_hex).collect::<Vec<_>>() == [serial.clone()] =>
            {
                Ok(logged)
            }
            _ => Err(format!("entry is not the revocation of {serial}")),
        }
    });
    let mut ledger = ctx.ledger();
    match checked {
        Ok(logged) => {
            ledger.counts.revocations += 1;
            ledger.record_entry(logged.index, &logged.entry);
            ledger.record_checkpoint(logged.checkpoint);
            ledger.set_state(&serial, CredState::Revoked);
        }
        Err(e) => {
            ledger.counts.bad_answers += 1;
            ledger.report(&format!("revocation answer for {serial}: {e}"));
            ledger.set_state(&serial, CredState::Uncertain);
        }
    }
    true
}

fn read_checkpoint(ctx: &Ctx) {
    let Ok(answer) = ctx.client.get("/v1/log/checkpoint") else {
        ctx.ledger().counts.unanswered += 1;
        return;
    };
    let mut ledger = ctx.ledger();
    if answer.status != 200 {
        ledger.counts.bad_answers += 1;
        ledger.report(&format!("checkpoint: {}", answer.describe()));
        return;
    }
    match open_checkpoint(&answer.body, &ctx.log_key) {
        Ok(checkpoint) => ledger.record_checkpoint(checkpoint),
        Err(e) => {
            ledger.counts.bad_answers += 1;
            ledger.report(&format!("published checkpoint does not verify: {e}"));
        }
    }
}

/// One client thread: random actions until `stop`.
pub(crate) fn worker(ctx: &Ctx, mut rng: Rng, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        // Per mille. About as many tokens are enrolled as used; a fifth of them are kept
        // unused for the checks after the power loss.
        let done = match rng.below(1000) {
            0..=449 | 880..=999 => issue_from_pool(ctx, &mut rng),
            450..=559 => {
                let n = rng.between(1, 4) as usize;
                enroll(ctx, &mut rng, n);
                true
            }
            // Bulk enrollments.
            560..=564 => {
                let n = rng.between(20, 150) as usize;
                enroll(ctx, &mut rng, n);
                true
            }
            565..=759 => rotate(ctx, &mut rng),
            760..=819 => revoke(ctx, &mut rng),
            _ => {
                read_checkpoint(ctx);
                true
            }
        };
        if !done {
            let n = rng.between(1, 4) as usize;
            enroll(ctx, &mut rng, n);
        }
    }
}

/// The JSON of a lookup's credential list entry with `serial`, if listed.
pub(crate) fn listed<'a>(lookup: &'a Value, serial: &str) -> Option<&'a Value> {
    lookup["credentials"]
        .as_array()?
        .iter()
        .find(|c| c["serial"].as_str() == Some(serial))
}
