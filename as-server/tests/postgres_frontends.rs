//! Several as-server frontends on one PostgreSQL database (issue 14, `--store postgres://…`):
//! any of them takes any request, their writes go into one log in one order with no fork, a
//! token given out by one is redeemed at another exactly once, a frontend stopped at any
//! moment (SIGSTOP) and resumed never overwrites what the others appended, and the database
//! going away is answered with 503 problems until it is back.
//!
//! The frontends share the key material (copied from the first one's data folder, as
//! docs/operations.md says) and nothing else on disk.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use as_server::admin_client::Answer;
use common::{assert_problem, Server};
use kt_log::checkpoint::VerifiedCheckpoint;
use kt_protocol::api::IdentityProof;
use kt_verify::directory;
use rustls::pki_types::pem::PemObject as _;
use serde_json::Value;
use test_support::postgres::{test_database, OwnCluster, TestDatabase, TlsFiles};
use test_support::requests::new_key;
use test_support::schemas::Schemas;
use test_support::server::copy_keys;

/// A first frontend on `url`, with a fresh data folder.
fn first_frontend(url: &str) -> Server {
    Server::start_with(&["--store", url])
}

/// Another frontend of `first`'s log: a data folder of its own holding `first`'s keys.
fn another_frontend(first: &Server, url: &str, folder: &Path) -> Server {
    let data = folder.join("data");
    copy_keys(&first.data, &data);
    Server::start_in(&data, Some(first.admin_token.clone()), &["--store", url])
}

/// Two frontends of one log on a fresh database, and what must outlive them (the second's
/// folder, the database), declared after them so that they are dropped first.
fn two_frontends() -> (Server, Server, (tempfile::TempDir, TestDatabase)) {
    let db = test_database();
    let a = first_frontend(&db.url);
    let folder = tempfile::tempdir().unwrap();
    let b = another_frontend(&a, &db.url, folder.path());
    (a, b, (folder, db))
}

/// The checkpoint an answer's directory proof is in, verified with the log key.
fn answer_checkpoint(server: &Server, answer: &Value) -> VerifiedCheckpoint {
    let proof: IdentityProof = serde_json::from_value(answer["directory"].clone()).unwrap();
    server.verify_directory(&answer["directory"]);
    directory::answer_checkpoint(&proof, &proof.identity, &server.log_key).unwrap()
}

/// Checks that every checkpoint in `seen` is consistent with `latest`, through `server`'s
/// consistency proofs: no frontend ever signed a fork.
fn assert_consistent(server: &Server, seen: &[VerifiedCheckpoint], latest: &VerifiedCheckpoint) {
    for old in seen {
        if old.size() == latest.size() {
            assert_eq!(
                old.root(),
                latest.root(),
                "two roots at size {}",
                old.size()
            );
            continue;
        }
        let answer = server.get(&format!(
            "/v1/log/proof/consistency?from={}&to={}",
            old.size(),
            latest.size()
        ));
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        let items: Vec<String> = serde_json::from_value(answer.json()["proof"].clone()).unwrap();
        let proof = kt_verify::wire::decode_hashes(&items, "proof").unwrap();
        kt_log::verify::verify_consistency(
            old.size(),
            latest.size(),
            &old.root(),
            &latest.root(),
            &proof,
        )
        .unwrap_or_else(|e| panic!("checkpoint {} is not in the log: {e}", old.size()));
    }
}

/// Waits until both frontends publish the same checkpoint, and returns it.
fn same_checkpoint(a: &Server, b: &Server) -> VerifiedCheckpoint {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (x, y) = (a.checkpoint(), b.checkpoint());
        if x.size() == y.size() {
            assert_eq!(
                x.root(),
                y.root(),
                "the frontends disagree at size {}",
                x.size()
            );
            return x;
        }
        assert!(
            Instant::now() < deadline,
            "sizes {} and {}",
            x.size(),
            y.size()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status_and_body(answer: &Answer) -> (u16, String) {
    (
        answer.status,
        String::from_utf8_lossy(&answer.body).into_owned(),
    )
}

#[test]
fn two_frontends_share_one_log_and_redeem_each_others_tokens() {
    let (a, b, _keep) = two_frontends();
    let from_a: Vec<String> = (0..24).map(|i| format!("a{i}@example.com")).collect();
    let from_b: Vec<String> = (0..24).map(|i| format!("b{i}@example.com")).collect();
    let tokens_a = a.enroll(&names(&from_a));
    let tokens_b = b.enroll(&names(&from_b));

    // Each frontend redeems the other's tokens, both at once, several requests in flight.
    let issued: Vec<(String, Value)> = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for (server, identities, tokens) in [(&b, &from_a, &tokens_a), (&a, &from_b, &tokens_b)] {
            for part in 0..4 {
                handles.push(scope.spawn(move || {
                    let mut answers = Vec::new();
                    for (identity, token) in identities.iter().zip(tokens).skip(part).step_by(4) {
                        let answer = server.issue(identity, token, &new_key());
                        assert_eq!(answer.status, 201, "{:?}", status_and_body(&answer));
                        answers.push((identity.clone(), answer.json()));
                    }
                    answers
                }));
            }
        }
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(issued.len(), 48);

    let latest = same_checkpoint(&a, &b);
    let seen: Vec<VerifiedCheckpoint> = issued
        .iter()
        .map(|(_, answer)| answer_checkpoint(&a, answer))
        .collect();
    assert_consistent(&a, &seen, &latest);
    assert_consistent(&b, &seen, &latest);
    // One update entry per credential: nothing lost, nothing written twice.
    assert_eq!(a.changes(), 48);
    // Both frontends show every credential, as its answer gave it.
    for (identity, answer) in &issued {
        let serial = answer["serial"].as_str().unwrap().to_owned();
        assert_eq!(a.current_serials(identity), vec![serial.clone()]);
        assert_eq!(b.current_serials(identity), vec![serial]);
    }
}

#[test]
fn a_token_raced_across_frontends_yields_exactly_one_credential() {
    let (a, b, _keep) = two_frontends();
    let schemas = Schemas::load();
    let identities: Vec<String> = (0..12).map(|i| format!("race{i}@example.com")).collect();
    let tokens = a.enroll(&identities.iter().map(String::as_str).collect::<Vec<_>>());
    for (identity, token) in identities.iter().zip(&tokens) {
        let answers: Vec<Answer> = std::thread::scope(|scope| {
            let handles: Vec<_> = [&a, &b]
                .map(|server| scope.spawn(move || server.issue(identity, token, &new_key())))
                .into_iter()
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [201, 409],
            "{:?}",
            answers.iter().map(status_and_body).collect::<Vec<_>>()
        );
        let refused = answers.iter().find(|a| a.status == 409).unwrap();
        assert_problem(refused, 409, "token-used", &schemas);
        let winner = answers.iter().find(|a| a.status == 201).unwrap().json();
        let serial = winner["serial"].as_str().unwrap().to_owned();
        same_checkpoint(&a, &b);
        assert_eq!(a.current_serials(identity), vec![serial.clone()]);
        assert_eq!(b.current_serials(identity), vec![serial]);
    }
    assert_eq!(a.changes(), identities.len());
}

fn names(identities: &[String]) -> Vec<&str> {
    identities.iter().map(String::as_str).collect()
}

/// SIGSTOPs or SIGCONTs `pid`.
fn signal(pid: u32, name: &str) {
    assert!(test_support::signal(name, &[pid]), "kill -{name} {pid}");
}

#[test]
fn a_frontend_stopped_at_any_moment_never_overwrites_the_others_entries() {
    let (a, b, _keep) = two_frontends();
    let identities: Vec<String> = (0..120).map(|i| format!("s{i}@example.com")).collect();
    let tokens = a.enroll(&identities.iter().map(String::as_str).collect::<Vec<_>>());
    let pid = a.pid().unwrap();
    let issue_range = |server: &Server, range: std::ops::Range<usize>| {
        let mut issued = Vec::new();
        for i in range {
            let answer = server.issue(&identities[i], &tokens[i], &new_key());
            assert_eq!(answer.status, 201, "{:?}", status_and_body(&answer));
            let serial = answer.json()["serial"].as_str().unwrap().to_owned();
            issued.push((identities[i].clone(), serial));
        }
        issued
    };
    let issued: BTreeMap<String, String> = std::thread::scope(|scope| {
        let handles = [
            scope.spawn(|| issue_range(&a, 0..60)),
            scope.spawn(|| issue_range(&b, 60..120)),
        ];
        // Stop the first frontend at arbitrary moments of its work, while the second appends.
        for round in 0..8u64 {
            std::thread::sleep(Duration::from_millis(15 + 11 * round));
            signal(pid, "STOP");
            std::thread::sleep(Duration::from_millis(40));
            signal(pid, "CONT");
        }
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(issued.len(), 120);
    let latest = same_checkpoint(&a, &b);
    assert_eq!(a.changes(), 120);
    for (identity, serial) in &issued {
        assert_eq!(&a.current_serials(identity), &vec![serial.clone()]);
        assert_eq!(&b.current_serials(identity), &vec![serial.clone()]);
    }
    // Entries are contiguous and each update is a different credential.
    let serials: BTreeSet<&String> = issued.values().collect();
    assert_eq!(serials.len(), 120);
    assert!(latest.size() > 120);
}

#[test]
fn an_unreachable_database_is_answered_503_and_the_frontend_recovers_by_itself() {
    let cluster = OwnCluster::start();
    let a = first_frontend(&cluster.url);
    let schemas = Schemas::load();
    let tokens = a.enroll(&["before@example.com", "during@example.com"]);
    let before = a.issue("before@example.com", &tokens[0], &new_key());
    assert_eq!(before.status, 201);
    let acknowledged = answer_checkpoint(&a, &before.json());

    cluster.stop();
    let refused = a.issue("during@example.com", &tokens[1], &new_key());
    assert_problem(&refused, 503, "storage-unavailable", &schemas);
    assert!(refused.retry_after.is_some());
    let enrolling = a.admin_post(
        "/v1/admin/enrollments",
        &test_support::requests::enrollment_request(&["late@example.com"]),
    );
    assert_problem(&enrolling, 503, "storage-unavailable", &schemas);
    // What the frontend holds is still served.
    assert_eq!(
        a.lookup("before@example.com")
            .state
            .unwrap()
            .record
            .credentials
            .len(),
        1
    );

    cluster.start_again();
    // The refused request changed nothing: the same token is redeemed now.
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        let answer = a.issue("during@example.com", &tokens[1], &new_key());
        if answer.status != 503 || Instant::now() > deadline {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(after.status, 201, "{:?}", status_and_body(&after));
    let latest = answer_checkpoint(&a, &after.json());
    assert_consistent(&a, &[acknowledged], &latest);
    assert_eq!(a.changes(), 2);
}

/// `as-server serve` on `data` and `url`, expected to refuse to start: its stderr.
fn refused_start(data: &Path, url: &str) -> String {
    refused_start_with(data, url, &[])
}

/// [`refused_start`] with `extra` arguments.
fn refused_start_with(data: &Path, url: &str, extra: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_as-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--store", url])
        .args(extra)
        .arg("--data")
        .arg(data)
        .env("AS_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains(url), "the URL was printed: {stderr}");
    stderr
}

#[test]
fn a_newer_schema_or_another_log_key_is_refused_at_start_with_a_clear_message() {
    let db = test_database();
    let first = first_frontend(&db.url);
    let data = first.data.clone();
    drop(first);
    // A frontend with keys of its own (not copied from the first) is not of this log.
    let stranger = tempfile::tempdir().unwrap();
    let stderr = refused_start(&stranger.path().join("data"), &db.url);
    assert!(stderr.contains("log:"), "{stderr}");
    // A table written by a newer build.
    let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    client
        .execute(
            "UPDATE schema_version SET version = 3 WHERE component = 'as-enrollments'",
            &[],
        )
        .unwrap();
    let stderr = refused_start(&data, &db.url);
    assert!(stderr.contains("enrollment table is version 3"), "{stderr}");
    client
        .execute(
            "UPDATE schema_version SET version = 2 WHERE component = 'log'",
            &[],
        )
        .unwrap();
    let stderr = refused_start(&data, &db.url);
    assert!(stderr.contains("log schema is version 2"), "{stderr}");
}

#[test]
fn frontends_reach_their_database_over_tls_and_refuse_a_certificate_they_cannot_verify() {
    let tls = TlsFiles::generate();
    let cluster = OwnCluster::start_tls(&tls);
    let url = format!("{}?sslmode=require", cluster.url);
    let ca = tls.ca_path.to_str().unwrap();
    let a = Server::start_with(&["--store", &url, "--store-ca", ca]);
    let folder = tempfile::tempdir().unwrap();
    let data = folder.path().join("data");
    copy_keys(&a.data, &data);
    let b = Server::start_in(
        &data,
        Some(a.admin_token.clone()),
        &["--store", &url, "--store-ca", ca],
    );
    // A token given out by one frontend, redeemed at the other: the enrollment table and the
    // log both went through the database.
    let tokens = a.enroll(&["tls@example.com"]);
    let answer = b.issue("tls@example.com", &tokens[0], &new_key());
    assert_eq!(answer.status, 201, "{:?}", status_and_body(&answer));
    // Every connection the frontends hold is encrypted.
    let mut roots = rustls::RootCertStore::empty();
    for certificate in rustls::pki_types::CertificateDer::pem_slice_iter(tls.ca_pem.as_bytes()) {
        roots.add(certificate.unwrap()).unwrap();
    }
    let mut client = url
        .parse::<postgres::Config>()
        .unwrap()
        .connect(kt_log::store::tls_connector(roots).unwrap())
        .unwrap();
    let row = client
        .query_one(
            "SELECT count(*), bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a \
             USING (pid) WHERE a.application_name IN ('as-server', 'kt-log')",
            &[],
        )
        .unwrap();
    let (connections, encrypted): (i64, Option<bool>) = (row.get(0), row.get(1));
    assert!(connections >= 4, "{connections} connections");
    assert_eq!(encrypted, Some(true));
    // Without the CA (the Web PKI roots), or with another one, a frontend does not start:
    // the certificate is refused, and nothing goes in plain text.
    let other = TlsFiles::generate();
    let other_ca = other.ca_path.to_str().unwrap();
    for extra in [&[][..], &["--store-ca", other_ca][..]] {
        let stranger = tempfile::tempdir().unwrap();
        let data = stranger.path().join("data");
        copy_keys(&a.data, &data);
        let stderr = refused_start_with(&data, &url, extra);
        assert!(
            stderr.contains("certificate") || stderr.contains("UnknownIssuer"),
            "{stderr}"
        );
    }
}

#[test]
fn a_frontend_takes_in_the_enrollments_another_announces_as_they_are_made() {
    let (a, b, keep) = two_frontends();
    let identities = ["announced1@example.com", "announced2@example.com"];
    let tokens = a.enroll(&identities);
    // b takes them in as a announces them; then the table loses them (as if b had looked
    // nothing up), and b still redeems them: from what it took in.
    std::thread::sleep(Duration::from_secs(2));
    let mut client = postgres::Client::connect(&keep.1.url, postgres::NoTls).unwrap();
    let deleted = client
        .execute(
            "DELETE FROM as_enrollments WHERE identity = ANY($1)",
            &[&identities.to_vec()],
        )
        .unwrap();
    assert_eq!(deleted, 2);
    for (identity, token) in identities.iter().zip(&tokens) {
        let answer = b.issue(identity, token, &new_key());
        assert_eq!(answer.status, 201, "{:?}", status_and_body(&answer));
    }
}

#[test]
fn an_enrollment_table_of_version_1_is_migrated_and_carries_prepared_labels() {
    let db = test_database();
    // Killed, not dropped: its data folder lives as long as it does.
    let mut first = first_frontend(&db.url);
    first.kill();
    // The table as version 1 made it: no label column.
    let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    client
        .batch_execute(
            "ALTER TABLE as_enrollments DROP COLUMN label; \
             UPDATE schema_version SET version = 1 WHERE component = 'as-enrollments'",
        )
        .unwrap();
    let a = Server::start_in(
        &first.data,
        Some(first.admin_token.clone()),
        &["--store", &db.url],
    );
    let version: i32 = client
        .query_one(
            "SELECT version FROM schema_version WHERE component = 'as-enrollments'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(version, 2);

    // An enrollment stores its identity's label and VRF proof, which the frontend that
    // redeems the token takes (an issuance whose answer verifies), and null for one logged.
    let folder = tempfile::tempdir().unwrap();
    let b = another_frontend(&a, &db.url, folder.path());
    let tokens = a.enroll(&["migrated@example.com"]);
    let mut label = |identity: &str| -> Vec<Option<Vec<u8>>> {
        client
            .query(
                "SELECT label FROM as_enrollments WHERE identity = $1",
                &[&identity],
            )
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect()
    };
    let stored = label("migrated@example.com");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].as_ref().map(Vec::len), Some(32 + 80));
    let answer = b.issue("migrated@example.com", &tokens[0], &new_key());
    assert_eq!(answer.status, 201, "{:?}", status_and_body(&answer));
    b.verify_directory(&answer.json()["directory"]);
    // b, whose state has the issuance, enrolls it again with no label (a would prepare one
    // until its state follows the log there).
    b.enroll(&["migrated@example.com"]);
    let stored = label("migrated@example.com");
    assert_eq!(stored.len(), 2);
    assert_eq!(stored.iter().filter(|l| l.is_none()).count(), 1);
}
