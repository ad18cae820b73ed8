//! SIGKILL while clients are being answered: after a restart on the same data folder every
//! acknowledged credential is still there (same index, same entry bytes), proofs verify, the
//! auditor's saved checkpoint is consistent with the new ones, and unused enrollments still
//! work.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use e2e_tests::{expect_status, Server, TestDir, Trust, Verifier};
use serde_json::{json, Value};
use test_support::requests::{issue_request, key_b64, new_key};

const CLIENTS: usize = 4;
/// More than the clients get through before the kill, so that some enrollments stay unused.
const PER_CLIENT: usize = 50;

#[test]
fn sigkill_during_issuance_loses_nothing_acknowledged() {
    let dir = TestDir::new();
    let mut server = Server::start(&dir.join("as-data"), None, &[]);
    let trust = Trust::copy_from(&server.data, &dir.join("trust"));
    let auditor = Verifier::new(&trust, &dir.join("auditor"));
    let identities: Vec<String> = (0..CLIENTS * PER_CLIENT)
        .map(|i| format!("device{i}@example.com"))
        .collect();
    let names: Vec<&str> = identities.iter().map(String::as_str).collect();
    let tokens = server.enroll(&names);

    // Clients issue until the server dies under them; they keep what was acknowledged.
    let acknowledged: Arc<Mutex<Vec<(String, String, Value)>>> = Arc::default();
    let attempted: Arc<Mutex<Vec<String>>> = Arc::default();
    let dead = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let http = server.client.clone();
        let acknowledged = Arc::clone(&acknowledged);
        let attempted = Arc::clone(&attempted);
        let dead = Arc::clone(&dead);
        let work: Vec<(String, String)> = (0..PER_CLIENT)
            .map(|i| {
                let n = c * PER_CLIENT + i;
                (identities[n].clone(), tokens[n].clone())
            })
            .collect();
        clients.push(std::thread::spawn(move || {
            for (identity, token) in work {
                if dead.load(Ordering::SeqCst) {
                    break;
                }
                attempted.lock().unwrap().push(identity.clone());
                let key = new_key();
                let body = issue_request(&identity, &token, &key).to_string();
                match http.post("/v1/credentials", body.as_bytes(), None) {
                    Ok(answer) if answer.status == 201 => acknowledged.lock().unwrap().push((
                        identity,
                        key_b64(&key.verifying_key()),
                        answer.json(),
                    )),
                    // Killed mid-request: not acknowledged, no claim either way.
                    _ => break,
                }
            }
        }));
    }
    // An audit while the log grows, then the kill once some answers went out.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < CLIENTS * 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no credentials issued"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    auditor.audit(&server.base).0.code(0);
    while acknowledged.lock().unwrap().len() < CLIENTS * 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "too few credentials issued"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    server.kill();
    dead.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let audited = auditor.saved_size().unwrap();

    server.restart(&[]);
    let checkpoint = server.checkpoint();
    let verifier = test_support::server::log_verifier(&server.data);
    let answered_in = |credential: &Value| {
        kt_log::checkpoint::open_checkpoint(
            credential["directory"]["checkpoint"]
                .as_str()
                .unwrap()
                .as_bytes(),
            &verifier,
        )
        .unwrap()
    };
    let max_size = acknowledged
        .iter()
        .map(|(_, _, c)| answered_in(c).size())
        .max()
        .unwrap();
    assert!(
        checkpoint.size() >= max_size,
        "the log lost acknowledged entries"
    );
    assert!(checkpoint.size() >= audited);

    let client = Verifier::new(&trust, &dir.join("client"));
    for (n, (identity, key, credential)) in acknowledged.iter().enumerate() {
        // The checkpoint its answer carried (signed before the kill) ends in the same map
        // entry, byte for byte, and is consistent with the new one.
        let old = answered_in(credential);
        let index = old.size() - 1;
        let entry = expect_status(&server.get(&format!("/v1/log/entries/{index}")), 200);
        assert_eq!(
            entry["entry"], credential["directory"]["map_entry"],
            "{identity}"
        );
        let answer = server.get(&format!(
            "/v1/log/proof/consistency?from={}&to={}",
            old.size(),
            checkpoint.size()
        ));
        let proof: Vec<kt_log::Hash> = expect_status(&answer, 200)["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| kt_log::Hash::from_slice(&B64.decode(h.as_str().unwrap()).unwrap()).unwrap())
            .collect();
        if old.size() < checkpoint.size() {
            old.verify_extended_by(&checkpoint, &proof)
                .unwrap_or_else(|e| {
                    panic!(
                        "checkpoint of size {} inconsistent after restart: {e}",
                        old.size()
                    )
                });
        }
        // And the verifier still finds it current (a sample: one process per check).
        if n % 8 != 0 && old.size() != max_size {
            continue;
        }
        let (run, valid) = client.validate(&server.base, identity, key);
        run.code(0);
        assert_eq!(valid["credential"]["serial"], credential["serial"]);
    }

    // The auditor's pre-kill state extends to the restarted log.
    let (run, audit) = auditor.audit(&server.base);
    run.code(0);
    assert_eq!(audit["previous_size"], json!(audited));
    assert_eq!(audit["size"], json!(checkpoint.size()));

    // Acknowledged tokens are used; enrollments nobody got to still work.
    let (identity, _, _) = &acknowledged[0];
    let n = identities.iter().position(|i| i == identity).unwrap();
    let answer = server.post(
        "/v1/credentials",
        &issue_request(identity, &tokens[n], &new_key()),
    );
    assert_eq!(
        answer.status,
        409,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let attempted = attempted.lock().unwrap().clone();
    let untouched = identities
        .iter()
        .position(|i| !attempted.contains(i))
        .expect("an identity no client got to");
    let credential = server.issue(&identities[untouched], &tokens[untouched], &new_key());
    let issued_in = kt_log::checkpoint::open_checkpoint(
        credential["directory"]["checkpoint"]
            .as_str()
            .unwrap()
            .as_bytes(),
        &verifier,
    )
    .unwrap();
    assert!(issued_in.size() > checkpoint.size());
    auditor.audit(&server.base).0.code(0);
}
