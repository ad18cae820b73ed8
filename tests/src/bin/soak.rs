//! The crash soak (issue 14, part 4): sustained concurrent issuance while the server is
//! SIGKILLed at random moments, again and again, on one data folder.
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
//! With `--postgres` it runs two frontends of one log on a PostgreSQL cluster of its own
//! (scripts/pg-cluster), and each round kills one frontend or, every fourth round, the
//! database itself (SIGKILL of every PostgreSQL process: it recovers from its WAL when
//! started again, and the frontends reconnect by themselves); both frontends are checked.
//!
//! `cargo build -p as-server --bins && cargo run -p e2e-tests --bin soak -- --kills 100`
//! (the full run; add `--postgres` for the PostgreSQL one; `.ci/run` makes short ones). It
//! runs the as-server binary of its own target folder (`--release` for both for a faster
//! soak).
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
    /// Two frontends on a PostgreSQL cluster of the soak's own, instead of the embedded store.
    postgres: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        kills: 100,
        clients: 8,
        per_round: 4_000,
        min_ms: 200,
        max_ms: 1_500,
        postgres: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--postgres" {
            args.postgres = true;
            continue;
        }
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
                "usage: soak [--postgres] [--kills N] [--clients N] [--per-round N] [--min-ms MS] \
                 [--max-ms MS]"
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

/// Issues credentials for `work` from `clients` threads spread over `servers`, and after
/// `kill_after` calls `kill` and stops them; returns what was acknowledged.
fn issue_until_killed(
    servers: &[&Server],
    work: Vec<(String, String)>,
    clients: usize,
    kill_after: Duration,
    kill: impl FnOnce(),
) -> Vec<Acknowledged> {
    let acknowledged: Arc<Mutex<Vec<Acknowledged>>> = Arc::default();
    let dead = Arc::new(AtomicBool::new(false));
    let chunk = work.len().div_ceil(clients).max(1);
    let mut threads = Vec::new();
    for (client, part) in work.chunks(chunk).enumerate() {
        let http = servers[client % servers.len()].client.clone();
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
                        // Back-pressure, or the database is down: not acknowledged; this
                        // client tries its next one.
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
    kill();
    dead.store(true, Ordering::SeqCst);
    for thread in threads {
        thread.join().expect("a client thread");
    }
    Arc::try_unwrap(acknowledged)
        .map(|m| m.into_inner().unwrap())
        .unwrap_or_default()
}

/// `GET path`, asked again for up to 30 s while it answers 503 (a frontend whose database
/// was just started again may fail a read or two on connections the restart closed).
fn get_retrying(server: &Server, path: &str) -> as_server::admin_client::Answer {
    while_unavailable(|| server.get(path))
}

/// The answer of `request`, made again for up to 30 s while it is 503.
fn while_unavailable(
    mut request: impl FnMut() -> as_server::admin_client::Answer,
) -> as_server::admin_client::Answer {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = request();
        if answer.status != 503 || Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `old` is consistent with `new` (the server's consistency proof, verified).
fn consistent(server: &Server, old: &VerifiedCheckpoint, new: &VerifiedCheckpoint) -> bool {
    if old.size() > new.size() {
        return false;
    }
    if old.size() == new.size() {
        return old.root() == new.root();
    }
    let answer = get_retrying(
        server,
        &format!(
            "/v1/log/proof/consistency?from={}&to={}",
            old.size(),
            new.size()
        ),
    );
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
    let answer = get_retrying(server, &path);
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
    let entry = get_retrying(server, &format!("/v1/log/entries/{index}"));
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

/// The newest checkpoint any answer of `round` carried, if newer than `newest`.
fn newest_of(server: &Server, round: &[Acknowledged], newest: &mut Option<VerifiedCheckpoint>) {
    for (_, credential) in round {
        let cp = open_checkpoint(credential.directory.checkpoint.as_bytes(), &server.log_key)
            .expect("an acknowledged answer's checkpoint verifies");
        if newest.as_ref().is_none_or(|n| cp.size() > n.size()) {
            *newest = Some(cp);
        }
    }
}

/// `count` fresh identities from `next` on, enrolled at `server`, with their tokens.
fn enroll(server: &Server, next: &mut usize, count: usize) -> Vec<(String, String)> {
    let identities: Vec<String> = (*next..*next + count)
        .map(|i| format!("soak{i}@example.com"))
        .collect();
    *next += count;
    let names: Vec<&str> = identities.iter().map(String::as_str).collect();
    // Asked again while 503: a frontend whose database just came back may refuse once.
    let answer = while_unavailable(|| {
        server.admin_post(
            "/v1/admin/enrollments",
            &test_support::requests::enrollment_request(&names),
        )
    });
    assert_eq!(
        answer.status,
        201,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let tokens = test_support::requests::enrollment_tokens(&answer.json());
    identities.into_iter().zip(tokens).collect()
}

/// The whole run's tally.
struct Tally {
    started: Instant,
    findings: Findings,
    all: Vec<Acknowledged>,
    database_kills: usize,
}

impl Tally {
    /// Nothing yet, started now.
    fn new() -> Tally {
        Tally {
            started: Instant::now(),
            findings: Findings::default(),
            all: Vec::new(),
            database_kills: 0,
        }
    }

    /// Checks everything acknowledged once more at each of `servers`, prints the figures,
    /// and exits 1 on any loss or fork.
    fn finish(mut self, servers: &[&Server], store: &str, kills: usize) {
        for server in servers {
            for (identity, credential) in &self.all {
                if let Err(e) = served(server, identity, credential) {
                    self.findings
                        .lost
                        .push(format!("{identity} (final check at {}): {e}", server.base));
                }
            }
        }
        for line in self.findings.lost.iter().chain(&self.findings.forks) {
            eprintln!("  {line}");
        }
        let database = if self.database_kills > 0 {
            format!(" ({} of the database)", self.database_kills)
        } else {
            String::new()
        };
        println!(
            "soak ({store}): kills {kills}{database}, acknowledged {}, lost {}, forks {}, in {:.0} s",
            self.all.len(),
            self.findings.lost.len(),
            self.findings.forks.len(),
            self.started.elapsed().as_secs_f64()
        );
        if !self.findings.lost.is_empty() || !self.findings.forks.is_empty() {
            std::process::exit(1);
        }
    }
}

fn main() {
    let args = parse_args();
    if args.postgres {
        soak_postgres(&args);
    } else {
        soak_embedded(&args);
    }
}

/// One server on its data folder, SIGKILLed and restarted each round.
fn soak_embedded(args: &Args) {
    let dir = TestDir::new();
    let data = dir.join("as-data");
    let mut server = Server::start(&data, None, &[]);
    let mut tally = Tally::new();
    let mut newest: Option<VerifiedCheckpoint> = None;
    let mut next_identity = 0usize;
    for kill in 1..=args.kills {
        let work = enroll(&server, &mut next_identity, args.per_round);
        let kill_after = Duration::from_millis(random_between(args.min_ms, args.max_ms));
        let pid = server.pid();
        let round = issue_until_killed(&[&server], work, args.clients, kill_after, || sigkill(pid));
        newest_of(&server, &round, &mut newest);
        server.restart(&[]);
        let now = check_round(&server, &round, newest.as_ref(), &mut tally.findings);
        eprintln!(
            "kill {kill}/{}: after {} ms, {} acknowledged this round, log size {}, lost {}, forks {}",
            args.kills,
            kill_after.as_millis(),
            round.len(),
            now.size(),
            tally.findings.lost.len(),
            tally.findings.forks.len()
        );
        newest = Some(now);
        tally.all.extend(round);
    }
    tally.finish(&[&server], "embedded store", args.kills);
}

/// SIGKILLs process `pid` (the server's), if it runs.
fn sigkill(pid: Option<u32>) {
    // A server that died already has nothing to kill.
    let _ = test_support::signal("KILL", pid.as_slice());
}

/// Waits until `server` publishes a checkpoint of at least `size` (it follows the shared log
/// and the database by itself), and returns it.
fn caught_up(server: &Server, size: u64) -> VerifiedCheckpoint {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = server.get("/log/checkpoint");
        if answer.status == 200 {
            let now = open_checkpoint(&answer.body, &server.log_key)
                .expect("the server's checkpoint verifies");
            if now.size() >= size {
                return now;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} did not reach size {size} in 60 s",
            server.base
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Two frontends of one log on a PostgreSQL cluster of the soak's own. Each round one of
/// them, or (every fourth round) the database itself, is SIGKILLed at a random moment while
/// clients issue at both; a killed frontend is restarted, a killed database is started again
/// (it recovers from its WAL) and the frontends reconnect by themselves. After each round
/// both frontends must serve everything acknowledged, with checkpoints consistent with
/// everything seen.
fn soak_postgres(args: &Args) {
    let cluster = test_support::postgres::OwnCluster::start();
    let url = cluster.url.clone();
    let flags = ["--store", url.as_str()];
    let dir = TestDir::new();
    let (data_a, data_b) = (dir.join("a"), dir.join("b"));
    let mut a = Server::start(&data_a, None, &flags);
    e2e_tests::copy_keys(&data_a, &data_b);
    let mut b = Server::start(&data_b, Some(&a.admin_token), &flags);
    let mut tally = Tally::new();
    let mut newest: Option<VerifiedCheckpoint> = None;
    let mut next_identity = 0usize;
    for kill in 1..=args.kills {
        let work = enroll(&a, &mut next_identity, args.per_round);
        let kill_after = Duration::from_millis(random_between(args.min_ms, args.max_ms));
        let victim = match kill % 4 {
            0 => "database",
            1 | 3 => "frontend a",
            _ => "frontend b",
        };
        let pids = (a.pid(), b.pid());
        let round =
            issue_until_killed(&[&a, &b], work, args.clients, kill_after, || match victim {
                "database" => cluster.kill(),
                "frontend a" => sigkill(pids.0),
                _ => sigkill(pids.1),
            });
        newest_of(&a, &round, &mut newest);
        match victim {
            "database" => {
                tally.database_kills += 1;
                cluster.start_again();
            }
            "frontend a" => a.restart(&flags),
            _ => b.restart(&flags),
        }
        let wanted = newest.as_ref().map_or(0, VerifiedCheckpoint::size);
        caught_up(&a, wanted);
        caught_up(&b, wanted);
        let now = check_round(&a, &round, newest.as_ref(), &mut tally.findings);
        for (identity, credential) in &round {
            if let Err(e) = served(&b, identity, credential) {
                tally.findings.lost.push(format!("{identity} (at b): {e}"));
            }
        }
        let at_b = caught_up(&b, now.size());
        if !consistent(&b, &now, &at_b) {
            tally.findings.forks.push(format!(
                "a's checkpoint of size {} is not consistent with b's of size {}",
                now.size(),
                at_b.size()
            ));
        }
        eprintln!(
            "kill {kill}/{} ({victim}): after {} ms, {} acknowledged this round, log size {}, lost {}, forks {}",
            args.kills,
            kill_after.as_millis(),
            round.len(),
            now.size(),
            tally.findings.lost.len(),
            tally.findings.forks.len()
        );
        newest = Some(at_b);
        tally.all.extend(round);
    }
    tally.finish(&[&a, &b], "PostgreSQL, two frontends", args.kills);
}
