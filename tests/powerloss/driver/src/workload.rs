//! The concurrent client: admins enroll (one by one and in bulk), clients get credentials with
//! their tokens (Ed25519 proof of possession), rotate them, admins revoke some, monitors read
//! the checkpoint and look identities up. Every answer is verified as a client would
//! (kt-verify: the bundle of an issuance or rotation, the identity proof of a revocation or a
//! lookup) and must show exactly the change asked for; everything acknowledged goes into the
//! ledger.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use kt_log::checkpoint::open_checkpoint;
use kt_protocol::api::{CredentialAnswer, IdentityProof, RevocationAnswer};
use kt_protocol::directory::record::Change;
use kt_protocol::entry::{RevocationScope, Serial};
use kt_verify::bundle::verify_bundle;
use serde_json::json;

use crate::http::{Answer, Client};
use crate::ledger::{verify_proof, Anchors, CredState, Kind, Ledger, Shown};

/// What the workers and the checks share.
pub(crate) struct Ctx {
    pub(crate) client: Client,
    pub(crate) anchors: Anchors,
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

fn refused(answer: &Answer) -> Outcome {
    Outcome::Refused(answer.status, answer.problem(), answer.describe())
}

/// Now, Unix seconds (the validity of credentials is checked at it).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Verifies an issuance's or rotation's answer as a client keeps it (kt-verify's
/// `verify_bundle`: the identity proof, the credential in the identity's state, its
/// certificate under the CA, the answer's fields) and that it is ours: our identity, the
/// serial the answer names, our key, and the state's latest change is exactly this one
/// (`replaces`: the serial a rotation replaced). The proof's state as it showed it.
fn check_bundle(
    ctx: &Ctx,
    body: &[u8],
    identity: &str,
    key: &SigningKey,
    replaces: Option<&str>,
) -> Result<(String, Shown), String> {
    let answer: CredentialAnswer =
        serde_json::from_slice(body).map_err(|e| format!("answer does not parse: {e}"))?;
    let a = &ctx.anchors;
    let bundle = verify_bundle(&answer, &a.log_key, &a.vrf_key, &a.ca, unix_now())
        .map_err(|e| format!("bundle does not verify: {e}"))?;
    if answer.identity != identity {
        return Err(format!("answer is about {}", answer.identity));
    }
    if bundle.binding.serial.to_hex() != answer.serial
        || bundle.binding.public_key != *key.verifying_key().as_bytes()
    {
        return Err(format!("credential {} is not for our key", answer.serial));
    }
    if answer.replaces.as_deref() != replaces {
        return Err(format!(
            "answer replaces {:?}, not {replaces:?}",
            answer.replaces
        ));
    }
    let serial = bundle.binding.serial;
    let ours = match (
        &bundle.identity.state.as_ref().map(|s| &s.record.change),
        replaces,
    ) {
        (Some(Change::Issue { serial: s, .. }), None) => *s == serial,
        (
            Some(Change::Rotate {
                serial: s,
                replaces: r,
            }),
            Some(old),
        ) => *s == serial && r.to_hex() == old,
        _ => false,
    };
    if !ours {
        return Err(format!(
            "the state shown is not the one this change made: its change is {:?}",
            bundle.identity.state.as_ref().map(|s| &s.record.change)
        ));
    }
    // The map entry's bytes, which verify_bundle proved included at size − 1.
    let map_entry = B64
        .decode(&answer.directory.map_entry)
        .map_err(|e| format!("map_entry is not base64: {e}"))?;
    Ok((
        answer.serial,
        Shown {
            checkpoint: bundle.identity.checkpoint.clone(),
            map_entry,
            identity: bundle.identity,
        },
    ))
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
    let checked = check_bundle(ctx, &answer.body, identity, &key, None);
    let mut ledger = ctx.ledger();
    match checked {
        Ok((serial, shown)) => {
            if ledger.record_change(identity, Kind::Issue, &serial, &shown) {
                ledger.record_cred(&serial, identity, key, shown.version());
            }
            Outcome::Acknowledged
        }
        Err(e) => {
            ledger.counts.bad_answers += 1;
            ledger.set_uncertain(identity);
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
    let checked = check_bundle(ctx, &answer.body, &identity, &new, Some(&serial));
    let mut ledger = ctx.ledger();
    match checked {
        Ok((new_serial, shown)) => {
            ledger.counts.rotations += 1;
            if ledger.record_change(&identity, Kind::Rotate, &new_serial, &shown) {
                ledger.record_cred(&new_serial, &identity, new, shown.version());
                ledger.set_state(&serial, CredState::Superseded);
            } else {
                ledger.set_state(&serial, CredState::Uncertain);
            }
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
    let checked = check_revocation(ctx, &answer.body, &identity, &serial);
    let mut ledger = ctx.ledger();
    match checked {
        Ok(shown) => {
            ledger.counts.revocations += 1;
            if ledger.record_change(&identity, Kind::Revoke, &serial, &shown) {
                ledger.set_state(&serial, CredState::Revoked);
            } else {
                ledger.set_state(&serial, CredState::Uncertain);
            }
        }
        Err(e) => {
            ledger.counts.bad_answers += 1;
            ledger.report(&format!("revocation answer for {serial}: {e}"));
            ledger.set_state(&serial, CredState::Uncertain);
        }
    }
    true
}

/// Verifies a revocation's answer: about our identity, revoking exactly `serial`, and its
/// identity proof verifies (kt-verify) and shows the identity's state after exactly this
/// revocation, which no longer holds `serial`.
fn check_revocation(ctx: &Ctx, body: &[u8], identity: &str, serial: &str) -> Result<Shown, String> {
    let answer: RevocationAnswer =
        serde_json::from_slice(body).map_err(|e| format!("answer does not parse: {e}"))?;
    if answer.identity != identity || answer.revoked != [serial] {
        return Err(format!(
            "answer revokes {:?} of {}, not {serial} of {identity}",
            answer.revoked, answer.identity
        ));
    }
    let shown = verify_proof(&answer.directory, identity, &ctx.anchors)?;
    let Some(state) = shown.identity.state.as_ref() else {
        return Err("the proof shows the identity absent".into());
    };
    if state
        .record
        .credentials
        .iter()
        .any(|c| c.serial.to_hex() == serial)
    {
        return Err(format!("the state shown still holds {serial}"));
    }
    let ours = matches!(
        &state.record.change,
        Change::Revoke { serials, scope: RevocationScope::Credential, .. }
            if serials.iter().map(Serial::to_hex).collect::<Vec<_>>() == [serial]
    );
    if !ours {
        return Err(format!(
            "the state shown is not the one this revocation made: its change is {:?}",
            state.record.change
        ));
    }
    Ok(shown)
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
    match open_checkpoint(&answer.body, &ctx.anchors.log_key) {
        Ok(checkpoint) => ledger.record_checkpoint(checkpoint),
        Err(e) => {
            ledger.counts.bad_answers += 1;
            ledger.report(&format!("published checkpoint does not verify: {e}"));
        }
    }
}

/// A monitor's lookup of a random identity with acknowledged changes: the answer verifies
/// (kt-verify; a bad answer if not), its checkpoint and map entry are acknowledged, and it
/// shows at least the version acknowledged before it was sent (the server publishes a
/// change's map before it answers the change), with exactly the acknowledged record at that
/// version.
fn lookup(ctx: &Ctx, rng: &mut Rng) -> bool {
    let (identity, acknowledged) = {
        let ledger = ctx.ledger();
        if ledger.creds.is_empty() {
            return false;
        }
        let identity = ledger.creds[rng.below(ledger.creds.len() as u64) as usize]
            .identity
            .clone();
        let acknowledged = ledger
            .identities
            .get(&identity)
            .and_then(|i| i.versions.iter().next_back())
            .map(|(v, a)| (*v, a.kind, a.record.clone()));
        (identity, acknowledged)
    };
    let Ok(answer) = ctx.client.get(&format!("/v1/identities/{identity}")) else {
        ctx.ledger().counts.unanswered += 1;
        return true;
    };
    if answer.status == 503 {
        return true;
    }
    let checked = if answer.status == 200 {
        serde_json::from_slice::<IdentityProof>(&answer.body)
            .map_err(|e| format!("answer does not parse: {e}"))
            .and_then(|proof| verify_proof(&proof, &identity, &ctx.anchors))
    } else {
        Err(answer.describe())
    };
    let mut ledger = ctx.ledger();
    let shown = match checked {
        Ok(shown) => shown,
        Err(e) => {
            ledger.counts.bad_answers += 1;
            ledger.report(&format!("lookup of {identity}: {e}"));
            return true;
        }
    };
    ledger.counts.lookups += 1;
    ledger.record_shown(&shown);
    // Counted as the restart checks count it: an acknowledged version not shown is a changed
    // entry, and a lost credential too if its change added one.
    if let Some((version, kind, record)) = acknowledged {
        let problem = if shown.version() < version {
            Some(format!(
                "shows version {}, below version {version} ({kind:?}) acknowledged before the lookup",
                shown.version()
            ))
        } else if shown.version() == version && shown.record() != Some(&record) {
            Some(format!(
                "shows another record at acknowledged version {version} ({kind:?})"
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            ledger.counts.changed_entries += 1;
            if kind.adds_credential() {
                ledger.counts.lost_credentials += 1;
            }
            ledger.report(&format!("lookup of {identity} {problem}"));
        }
    }
    true
}

/// One client thread: random actions until `stop`.
pub(crate) fn worker(ctx: &Ctx, mut rng: Rng, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        // Per mille. About as many tokens are enrolled as used; a fifth of them are kept
        // unused for the checks after the power loss. Monitors read the checkpoint and look
        // identities up.
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
            820..=849 => {
                read_checkpoint(ctx);
                true
            }
            _ => lookup(ctx, &mut rng),
        };
        if !done {
            let n = rng.between(1, 4) as usize;
            enroll(ctx, &mut rng, n);
        }
    }
}
