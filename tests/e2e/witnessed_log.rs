//! The log's side of witnessing, end to end: a real `as-server` with a 2-of-3 witness policy
//! and three real `kt-witness` processes. The server sends every new checkpoint to the
//! witnesses and serves at `/log/checkpoint` the newest one the quorum cosigned; issuance
//! goes on with witnesses down; it recovers when they come back, one of them with its state
//! lost; and a second server with the same keys and another log (a split view) gets no
//! cosignature, so a client requiring the quorum refuses its answers.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e_tests::{copy_keys, forge_log, Server, TestDir, Trust, Verifier};
use kt_log::checkpoint::open_checkpoint;
use kt_verify::witness_policy::{verify_witnessed_checkpoint, WitnessPolicy};
use serde_json::Value;
use test_support::requests::new_key;
use test_support::server::log_verifier;
use test_support::witness::Witness;

const ORIGIN: &str = e2e_tests::ORIGIN;
const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";

/// A server (first started without a policy, to create its keys), three witnesses of its
/// log, and the policy "any 2 of A, B, C" naming them.
struct Witnessed {
    dir: TestDir,
    server: Server,
    witnesses: Vec<Witness>,
    policy: PathBuf,
}

/// The flags that turn witnessing on, with a fast cadence for the tests.
fn policy_flags(policy: &Path) -> Vec<String> {
    vec![
        "--witness-policy".into(),
        policy.display().to_string(),
        "--witness-cadence-ms".into(),
        "200".into(),
        "--witness-timeout-ms".into(),
        "3000".into(),
    ]
}

fn flags(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

impl Witnessed {
    fn start() -> Witnessed {
        let dir = TestDir::new();
        let mut server = Server::start(&dir.join("as-data"), None, &[]);
        let log_vkey = log_verifier(&server.data).to_vkey();
        let witnesses: Vec<Witness> = ["a", "b", "c"]
            .iter()
            .map(|n| {
                Witness::start(
                    dir.path(),
                    &format!("witness-{n}.example/w"),
                    ORIGIN,
                    &log_vkey,
                )
            })
            .collect();
        let policy = dir.join("policy");
        let mut text = format!("log {log_vkey}\n");
        for (w, name) in witnesses.iter().zip(["A", "B", "C"]) {
            text.push_str(&format!("witness {name} {} {}\n", w.vkey(), w.url()));
        }
        text.push_str("group two 2 A B C\nquorum two\n");
        std::fs::write(&policy, text).unwrap();
        server.restart(&flags(&policy_flags(&policy)));
        Witnessed {
            dir,
            server,
            witnesses,
            policy,
        }
    }

    fn parsed_policy(&self) -> WitnessPolicy {
        WitnessPolicy::parse(&std::fs::read(&self.policy).unwrap()).unwrap()
    }

    /// The served cosigned checkpoint's size and cosigners (`None` while there is none: 503).
    fn cosigned(&self) -> Option<(u64, Vec<String>)> {
        cosigned_of(&self.server, &self.parsed_policy())
    }

    /// Waits up to `within` for a cosigned checkpoint of at least `size`.
    fn wait_cosigned(&self, size: u64, within: Duration) -> Option<(u64, Vec<String>)> {
        let started = Instant::now();
        loop {
            if let Some(c) = self.cosigned().filter(|c| c.0 >= size) {
                return Some(c);
            }
            if started.elapsed() > within {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn party(&self, name: &str) -> Verifier {
        let trust = Trust::copy_from(&self.server.data, &self.dir.join(&format!("{name}-trust")));
        Verifier::new(&trust, &self.dir.join(name)).requiring(&self.policy)
    }

    /// Enrolls and issues a credential for `identity`; returns the size of the checkpoint the
    /// answer carries (signed by the log alone).
    fn issue(&self, identity: &str) -> u64 {
        let token = self.server.enroll(&[identity]).remove(0);
        let answer = self.server.issue(identity, &token, &new_key());
        answer_size(&self.server, &answer)
    }
}

fn cosigned_of(server: &Server, policy: &WitnessPolicy) -> Option<(u64, Vec<String>)> {
    let answer = server.get("/log/checkpoint");
    if answer.status == 503 {
        assert_eq!(
            answer.json()["type"],
            "https://kt-as.dev/problems/not-yet-available"
        );
        assert_eq!(answer.retry_after.as_deref(), Some("1"));
        return None;
    }
    assert_eq!(answer.status, 200);
    let witnessed = verify_witnessed_checkpoint(&answer.body, &log_verifier(&server.data), policy)
        .expect("the served checkpoint satisfies the policy");
    Some((
        witnessed.checkpoint().size(),
        witnessed
            .cosignatures()
            .iter()
            .map(|c| c.witness.clone())
            .collect(),
    ))
}

/// The size of the log-signed checkpoint in a credential answer.
fn answer_size(server: &Server, answer: &Value) -> u64 {
    let note = answer["directory"]["checkpoint"].as_str().unwrap();
    open_checkpoint(note.as_bytes(), &log_verifier(&server.data))
        .unwrap()
        .size()
}

fn witness_status(server: &Server) -> Value {
    let answer = server.get("/v1/log/witnesses");
    assert_eq!(answer.status, 200);
    let status = answer.json();
    test_support::schemas::schemas().check("witnesses.schema.json", &status);
    status
}

#[test]
fn a_two_of_three_policy_cosigns_with_two_witnesses_not_with_one_and_recovers() {
    let mut w = Witnessed::start();
    let size = w.issue(ALICE);
    let started = Instant::now();
    let (cosigned, by) = w
        .wait_cosigned(size, Duration::from_secs(10))
        .expect("a cosigned checkpoint covering the issuance");
    assert!(cosigned >= size);
    assert_eq!(by, ["A", "B", "C"]);
    // Well within the 10 s a verifier waits (cadence 200 ms here, about 1 s by default).
    assert!(started.elapsed() < Duration::from_secs(5));
    let status = witness_status(&w.server);
    assert_eq!(status["quorum"], "two");
    assert_eq!(status["cosigned"]["size"], cosigned);
    assert_eq!(status["witnesses"][1]["size"], cosigned);

    // A client requiring the policy accepts alice's answer (log-signed, covered by the
    // cosigned checkpoint) and saves the cosigned checkpoint.
    let client = w.party("client");
    let (run, out) = client.lookup(&w.server.base, ALICE);
    run.code(0);
    assert_eq!(out["found"], true);
    assert!(client.saved_size().unwrap() >= size);

    // Two witnesses down: issuance goes on, nothing new is cosigned, the old one is served.
    w.witnesses[1].kill();
    w.witnesses[2].kill();
    let bob = w.issue(BOB);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(w.cosigned().unwrap().0, cosigned);
    let status = witness_status(&w.server);
    assert!(status["witnesses"][1]["last_error"].is_string(), "{status}");
    assert!(status["witnesses"][0]["last_error"].is_null(), "{status}");
    // …and the client cannot get bob's answer covered: refused, naming why.
    let (run, out) = client.lookup(&w.server.base, BOB);
    run.code(1);
    let error = out["error"].as_str().unwrap();
    assert!(
        error.contains("not covered by a checkpoint the witness quorum cosigned"),
        "{error}"
    );

    // B back (its state kept): cosigned again, by A and B.
    w.witnesses[1].restart(false);
    let (_, by) = w
        .wait_cosigned(bob, Duration::from_secs(10))
        .expect("cosigned again with two witnesses up");
    assert_eq!(by, ["A", "B"]);
    client.lookup(&w.server.base, BOB).0.code(0);

    // A down, C back with its state lost (it answers 409 with size 0, then cosigns).
    w.witnesses[0].kill();
    w.witnesses[2].restart(true);
    let carol = w.issue(CAROL);
    let (carol_cosigned, by) = w
        .wait_cosigned(carol, Duration::from_secs(10))
        .expect("cosigned by B and C, C having lost its state");
    assert_eq!(by, ["B", "C"]);
    assert_eq!(
        witness_status(&w.server)["witnesses"][2]["size"],
        carol_cosigned
    );

    // A restart serves the saved cosigned checkpoint at once, before any round.
    let flags_now = policy_flags(&w.policy);
    w.witnesses[1].kill();
    w.witnesses[2].kill();
    w.server.restart(&flags(&flags_now));
    assert_eq!(w.cosigned().unwrap().0, carol_cosigned);
}

#[test]
fn a_split_view_gets_no_cosignature_and_a_client_requiring_the_quorum_refuses_it() {
    let w = Witnessed::start();
    let size = w.issue(ALICE);
    let bob = w.issue(BOB);
    assert!(bob > size);
    let (honest, _) = w
        .wait_cosigned(bob, Duration::from_secs(10))
        .expect("the honest view cosigned");

    // The dishonest AS: the same keys, another log, larger than the cosigned one.
    let other = w.dir.join("other-data");
    copy_keys(&w.server.data, &other);
    forge_log(
        &other,
        &[
            "mallory@example.com".into(),
            "trent@example.com".into(),
            "victor@example.com".into(),
        ],
    );
    let forked = Server::start(
        &other,
        Some(&w.server.admin_token),
        &flags(&policy_flags(&w.policy)),
    );
    // Every witness refuses it (they hold the honest view); nothing is ever cosigned.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(cosigned_of(&forked, &w.parsed_policy()), None);
    let status = witness_status(&forked);
    for i in 0..3 {
        let error = status["witnesses"][i]["last_error"].as_str().unwrap_or("");
        assert!(error.contains("422"), "{status}");
    }
    // Each witness kept the refused checkpoint as evidence, re-checkable offline.
    for witness in &w.witnesses {
        let files: Vec<_> = std::fs::read_dir(witness.data.join("evidence"))
            .unwrap()
            .collect();
        assert!(!files.is_empty(), "no evidence kept");
        let file = files[0].as_ref().unwrap().path();
        e2e_tests::Run::of(
            &e2e_tests::binary("kt-witness"),
            &[
                "check-evidence".into(),
                "--config".into(),
                witness.config.clone().into(),
                file.into(),
            ],
        )
        .code(0);
    }

    // A client requiring the quorum refuses the forked view's answers; one without a policy
    // is shown it (and could catch it only by comparing with other parties).
    let client = w.party("victim");
    let (run, out) = client.lookup(&forked.base, "mallory@example.com");
    run.code(1);
    let error = out["error"].as_str().unwrap();
    assert!(error.contains("witness quorum"), "{error}");
    assert_eq!(client.saved_size(), None, "nothing of the fork was saved");
    let mut unprotected = w.party("unprotected");
    unprotected.policy = None;
    unprotected
        .lookup(&forked.base, "mallory@example.com")
        .0
        .code(0);
    // The honest view is still the one cosigned.
    assert_eq!(w.cosigned().unwrap().0, honest);
}

/// The size of the latest checkpoint `witness` cosigned, by its monitoring API.
fn witness_size(witness: &Witness) -> u64 {
    let hash = kt_witness_origin_hash(ORIGIN);
    let (status, note) =
        test_support::witness::http(witness.port, "GET", &format!("/{hash}/checkpoint"), b"")
            .unwrap();
    assert_eq!(status, 200, "{note}");
    note.lines().nth(1).unwrap().parse().unwrap()
}

fn kt_witness_origin_hash(origin: &str) -> String {
    use sha2::{Digest as _, Sha256};
    Sha256::digest(origin.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn an_auditing_witness_cosigns_the_directory_it_checked_and_refuses_one_that_breaks_the_rules() {
    use kt_log::witness_request::AddCheckpointRequest;
    use kt_protocol::directory::public_entry::{PublicEntry, Update};

    let mut w = Witnessed::start();
    // A audits the server's directory through its tiles, over HTTPS pinned to its certificate.
    let tls_cert = w.server.tls_cert();
    let tiles_url = format!("{}/log", w.server.base);
    w.witnesses[0].audit(&tiles_url, Some(&tls_cert));
    w.issue(ALICE);
    let size = w.issue(BOB);
    let started = Instant::now();
    loop {
        let cosigned = w.cosigned();
        if cosigned
            .as_ref()
            .is_some_and(|(s, by)| *s >= size && by.iter().any(|n| n == "A"))
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the auditing witness never cosigned: {cosigned:?}, {}",
            witness_status(&w.server)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let audited = w.witnesses[0].metric("witness_audited_entries").unwrap();
    assert!(audited >= size, "audited {audited} of {size}");
    assert_eq!(w.witnesses[0].metric("witness_audit_refusals"), Some(0));

    // The AS turns dishonest: Bob's label skips a version (a change hidden between two
    // shown), then a map entry ends the batch; the log stays consistent and is signed.
    w.server.kill();
    let mut evil = e2e_tests::EvilAs::open(&w.server.data, None);
    let (label, leaf) = evil.leaf(BOB);
    let skipped = PublicEntry::Update(Update {
        label,
        version: leaf.unwrap().version + 2,
        commitment: [9; 32],
        sealed: vec![1],
    })
    .to_bytes();
    let before = evil.log.size();
    evil.append_raw(&[skipped]);
    let (range, checkpoint) = evil.append(&[]);
    assert!(range.end > before);
    // Its tiles, served as a mirror would: the witnesses fetch from there from now on.
    let tiles = w.dir.join("evil-tiles");
    evil.write_tiles(&tiles);
    let mirror = test_support::file_server::FileServer::start(&tiles);
    w.witnesses[0].audit(&mirror.url, None);

    // Each witness is asked exactly as the AS would ask it.
    let new_size = checkpoint.checkpoint.size;
    let ask = |witness: &Witness| {
        let old = witness_size(witness);
        let request = AddCheckpointRequest {
            old_size: old,
            proof: evil.log.consistency_proof(old, new_size).unwrap(),
            note: checkpoint.note.clone(),
        };
        (old, witness.add_checkpoint(&request.to_body()))
    };
    // A plain witness cosigns it: the log is consistent, and that is all it checks.
    let (_, (status, body)) = ask(&w.witnesses[1]);
    assert_eq!(status, 200, "{body}");
    // The auditing witness refuses it, says why, and keeps its cosigned size.
    let (old, (status, body)) = ask(&w.witnesses[0]);
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("directory's rules"), "{body}");
    assert_eq!(witness_size(&w.witnesses[0]), old);
    assert_eq!(w.witnesses[0].metric("witness_audit_refusals"), Some(1));
}
