//! The crash soak of the embedded store (issue 14, part 4): sustained concurrent issuance
//! while the server is SIGKILLed at random moments, again and again, on one data folder.
//!
//! Each round starts the server (a restart after the first), enrolls a fresh chunk of
//! identities, and lets `--clients` threads issue credentials until the server is killed
//! after a random delay. A credential counts as acknowledged when its 201 answer arrived;
//! nothing is claimed about requests the kill cut off. After every restart:
//! - every credential acknowledged in the round before is served: the lookup of its identity
//!   verifies (kt-verify: checkpoint under the log key, VRF, map proof, record) and its
//!   complete state holds the credential with the same certificate bytes;
//! - the map entry its answer's checkpoint ended in is still the log's entry at that index,
//!   byte for byte;
//! - every checkpoint an answer carried, and the newest one seen before the kill, is
//!   consistent with the new checkpoint (RFC 9162 consistency proof from the server, verified
//!   here); one that is not counts as a fork.
//!
//! At the end every credential acknowledged in the whole run is looked up and checked once
//! more. It prints what it measured — kills, acknowledged, lost, forks — and exits 1 if
//! anything acknowledged was lost or any checkpoint forked.
//!
//! `cargo build -p as-server --bins && cargo run -p e2e-tests --bin soak -- --kills 100`
//! (the full run; `.ci/run` makes a short one). It runs the as-server binary of its own
//! target folder (`--release` for both for a faster soak).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use e2e_tests::{Server, TestDir};
use kt_log::checkpoint::{open_checkpoint, VerifiedCheckpoint};
use kt_protocol::api::{CredentialAnswer, IdentityProof};
use kt_verify::directory::{answer_checkpoint, verify_identity};
use kt_verify::wire::decode_hashes;
use test_support::requests::{issue_request, new_key};

/// One acknowledged credential: the identity and the server's answer.
type Acknowledged = (String, CredentialAnswer);

struct Args {
    kills: usize,
    clients: usize,
    per_round: usize,
    min_ms: u64,
    max_ms: u64,
}

fn parse_args() -> Args {
    let mut args = Args {
        kills: 100,
        clients: 8,
        per_round: 4_000,
        min_ms: 200,
        max_ms: 1_500,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || -> u64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{flag} takes a whole number"))
        };
        match flag.as_str() {
            "--kills" => args.kills = value() as usize,
            "--clients" => args.clients = value() as usize,
            "--per-round" => args.per_round = value() as usize,
            "--min-ms" => args.min_ms = value(),
            "--max-ms" => args.max_ms = value(),
            _ => panic!(
                "usage: soak [--kills N] [--clients N] [--per-round N] [--min-ms MS] [--max-ms MS]"
            ),
        }
    }
    assert!(args.min_ms <= args.max_ms, "--min-ms above --max-ms");
    args
}

/// A random whole number in `low..=high` from the OS source.
fn random_between(low: u64, high: u64) -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("randomness");
    low + u64::from_le_bytes(bytes) % (high - low + 1)
}

/// What the checks after a restart found.
#[derive(Default)]
struct Findings {
    lost: Vec<String>,
    forks: Vec<String>,
}

/// Issues credentials for `work` from `clients` threads until the server stops answering;
/// returns what was acknowledged.
fn issue_until_killed(
    server: &mut Server,
    work: Vec<(String, String)>,
    clients: usize,
    kill_after: Duration,
) -> Vec<Acknowledged> {
    let acknowledged: Arc<Mutex<Vec<Acknowledged>>> = Arc::default();
    let dead = Arc::new(AtomicBool::new(false));
    let chunk = work.len().div_ceil(clients).max(1);
    let mut threads = Vec::new();
    for part in work.chunks(chunk) {
        let http = server.client.clone();
        let acknowledged = Arc::clone(&acknowledged);
        let dead = Arc::clone(&dead);
        let part = part.to_vec();
        threads.push(std::thread::spawn(move || {
            for (identity, token) in part {
                if dead.load(Ordering::SeqCst) {
                    break;
                }
                let body = issue_request(&identity, &token, &new_key()).to_string();
                match http.post("/v1/credentials", body.as_bytes(), None) {
                    Ok(answer) if answer.status == 201 => {
                        let credential: CredentialAnswer =
                            serde_json::from_slice(&answer.body).expect("a credential answer");
                        acknowledged.lock().unwrap().push((identity, credential));
                    }
                    Ok(answer) if answer.status == 503 => {
                        // Back-pressure: not acknowledged; this client tries its next one.
                    }
                    Ok(answer) => panic!(
                        "issuance answered {}: {}",
                        answer.status,
                        String::from_utf8_lossy(&answer.body)
                    ),
                    // Killed mid-request: not acknowledged, no claim either way.
                    Err(_) => break,
                }
            }
        }));
    }
    std::thread::sleep(kill_after);
    server.kill();
    dead.store(true, Ordering::SeqCst);
    for thread in threads {
        thread.join().expect("a client thread");
    }
    Arc::try_unwrap(acknowledged)
        .map(|m| m.into_inner().unwrap())
        .unwrap_or_default()
}

/// `old` is consistent with `new` (the server's consistency proof, verified).
fn consistent(server: &Server, old: &VerifiedCheckpoint, new: &VerifiedCheckpoint) -> bool {
    if old.size() > new.size() {
        return false;
    }
    if old.size() == new.size() {
        return old.root() == new.root();
    }
    let answer = server.get(&format!(
        "/v1/log/proof/consistency?from={}&to={}",
        old.size(),
        new.size()
    ));
    if answer.status != 200 {
        return false;
    }
    let Ok(hashes) = serde_json::from_value::<Vec<String>>(answer.json()["proof"].clone()) else {
        return false;
    };
    decode_hashes(&hashes, "proof").is_ok_and(|proof| old.verify_extended_by(new, &proof).is_ok())
}

/// Whether `identity`'s verified complete state holds the credential `credential`
/// acknowledged, with the same certificate.
fn served(server: &Server, identity: &str, credential: &CredentialAnswer) -> Result<(), String> {
    let path = format!(
        "/v1/identities/{}",
        kt_protocol::identity::path_segment(identity)
    );
    let answer = server.get(&path);
    if answer.status != 200 {
        return Err(format!("lookup answered {}", answer.status));
    }
    let proof: IdentityProof =
        serde_json::from_slice(&answer.body).map_err(|e| format!("lookup answer: {e}"))?;
    let checkpoint =
        answer_checkpoint(&proof, identity, &server.log_key).map_err(|e| e.to_string())?;
    let verified =
        verify_identity(&proof, &checkpoint, &server.vrf_key).map_err(|e| e.to_string())?;
    let state = verified.state.ok_or("the identity is absent")?;
    let pem = credential.certificate.trim();
    let der = B64
        .decode(
            pem.lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .map_err(|e| format!("acknowledged certificate: {e}"))?;
    let held = state
        .record
        .credentials
        .iter()
        .find(|c| c.serial.to_hex() == credential.serial)
        .ok_or(format!("credential {} is not current", credential.serial))?;
    if held.certificate != der {
        return Err(format!(
            "credential {} has another certificate",
            credential.serial
        ));
    }
    Ok(())
}

/// What became of an acknowledged answer's checkpoint after a restart.
enum Outcome {
    /// Consistent with the new checkpoint, its map entry unchanged.
    Kept,
    /// Not consistent with the new checkpoint.
    Fork(String),
    /// Consistent, but the map entry it ended in is gone or changed.
    Lost(String),
}

/// Checks an acknowledged answer's checkpoint against the restarted server's `now`.
fn check_checkpoint(server: &Server, proof: &IdentityProof, now: &VerifiedCheckpoint) -> Outcome {
    let old = open_checkpoint(proof.checkpoint.as_bytes(), &server.log_key)
        .expect("an acknowledged answer's checkpoint verifies");
    if !consistent(server, &old, now) {
        return Outcome::Fork(format!(
            "its answer's checkpoint of size {} is not consistent with size {}",
            old.size(),
            now.size()
        ));
    }
    let index = old.size() - 1;
    let entry = server.get(&format!("/v1/log/entries/{index}"));
    if entry.status != 200 || entry.json()["entry"] != proof.map_entry {
        return Outcome::Lost(format!("the map entry at index {index} changed"));
    }
    Outcome::Kept
}

/// Checks the round's acknowledged credentials and checkpoints against the restarted
/// server (see the module documentation).
fn check_round(
    server: &Server,
    round: &[Acknowledged],
    newest_before: Option<&VerifiedCheckpoint>,
    findings: &mut Findings,
) -> VerifiedCheckpoint {
    let answer = server.get("/log/checkpoint");
    let now = open_checkpoint(&expect_status_text(&answer), &server.log_key)
        .expect("the restarted server's checkpoint verifies");
    if let Some(old) = newest_before {
        if !consistent(server, old, &now) {
            findings.forks.push(format!(
                "checkpoint of size {} seen before a kill is not consistent with size {}",
                old.size(),
                now.size()
            ));
        }
    }
    // Answers of one batch share their checkpoint: each checkpoint is checked once.
    let mut checked: std::collections::HashMap<&str, Outcome> = Default::default();
    for (identity, credential) in round {
        let proof = &credential.directory;
        let outcome = checked
            .entry(proof.checkpoint.as_str())
            .or_insert_with(|| check_checkpoint(server, proof, &now));
        match outcome {
            Outcome::Fork(e) => findings.forks.push(format!("{identity}: {e}")),
            Outcome::Lost(e) => findings.lost.push(format!("{identity}: {e}")),
            Outcome::Kept => {
                if let Err(e) = served(server, identity, credential) {
                    findings.lost.push(format!("{identity}: {e}"));
                }
            }
        }
    }
    now
}

/// The body of a 200 answer.
fn expect_status_text(answer: &as_server::admin_client::Answer) -> Vec<u8> {
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.body.clone()
}

fn main() {
    let args = parse_args();
    let dir = TestDir::new();
    let data = dir.join("as-data");
    let mut server = Server::start(&data, None, &[]);
    let started = Instant::now();
    let mut findings = Findings::default();
    let mut all: Vec<Acknowledged> = Vec::new();
    let mut newest: Option<VerifiedCheckpoint> = None;
    let mut next_identity = 0usize;
    for kill in 1..=args.kills {
        let identities: Vec<String> = (next_identity..next_identity + args.per_round)
            .map(|i| format!("soak{i}@example.com"))
            .collect();
        next_identity += args.per_round;
        let names: Vec<&str> = identities.iter().map(String::as_str).collect();
        let tokens = server.enroll(&names);
        let work = identities.into_iter().zip(tokens).collect();
        let kill_after = Duration::from_millis(random_between(args.min_ms, args.max_ms));
        let round = issue_until_killed(&mut server, work, args.clients, kill_after);
        // The newest checkpoint any answer of the round carried.
        for (_, credential) in &round {
            let cp = open_checkpoint(credential.directory.checkpoint.as_bytes(), &server.log_key)
                .expect("an acknowledged answer's checkpoint verifies");
            if newest.as_ref().is_none_or(|n| cp.size() > n.size()) {
                newest = Some(cp);
            }
        }
        server.restart(&[]);
        let now = check_round(&server, &round, newest.as_ref(), &mut findings);
        eprintln!(
            "kill {kill}/{}: after {} ms, {} acknowledged this round, log size {}, lost {}, forks {}",
            args.kills,
            kill_after.as_millis(),
            round.len(),
            now.size(),
            findings.lost.len(),
            findings.forks.len()
        );
        newest = Some(now);
        all.extend(round);
    }
    // Everything acknowledged, once more, against the last restart.
    for (identity, credential) in &all {
        if let Err(e) = served(&server, identity, credential) {
            findings.lost.push(format!("{identity} (final check): {e}"));
        }
    }
    for line in findings.lost.iter().chain(&findings.forks) {
        eprintln!("  {line}");
    }
    println!(
        "soak (embedded store): kills {}, acknowledged {}, lost {}, forks {}, in {:.0} s",
        args.kills,
        all.len(),
        findings.lost.len(),
        findings.forks.len(),
        started.elapsed().as_secs_f64()
    );
    if !findings.lost.is_empty() || !findings.forks.is_empty() {
        std::process::exit(1);
    }
}
