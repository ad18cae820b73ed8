//! The real binary on a loopback port: every answer code over HTTP, HTTPS by default,
//! SIGKILL and restart, 100 concurrent add-checkpoints for one log, a witness that lost its
//! state.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{config_text, independent_verify, note_text, TestLog};
use kt_log::Hash;
use test_support::free_port;
use test_support::witness::serve_command;
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::Agent;

const NAME: &str = "witness.example/w1";

struct Server {
    child: Child,
    base: String,
    data: PathBuf,
    agent: Agent,
}

struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

impl Server {
    fn start(config: &Path, data: &Path, https: bool) -> Server {
        let port = free_port();
        let binary = Path::new(env!("CARGO_BIN_EXE_kt-witness"));
        let mut command = serve_command(binary, config, data, port);
        command.args(["--workers", "2"]);
        if !https {
            command.arg("--plain-http");
        }
        let scheme = if https { "https" } else { "http" };
        // Owned by a Server at once: a failed start still kills and reaps the process.
        let mut server = Server {
            child: command.spawn().unwrap(),
            base: format!("{scheme}://127.0.0.1:{port}"),
            data: data.to_owned(),
            agent: Agent::new_with_defaults(),
        };
        let started = Instant::now();
        loop {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the witness did not start"
            );
            let cert = data.join("tls-cert.pem");
            if https && !cert.exists() {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            let mut tls = TlsConfig::builder();
            if https {
                let pem = std::fs::read(&cert).unwrap();
                let cert = Certificate::from_pem(&pem).unwrap().to_owned();
                tls = tls.root_certs(RootCerts::Specific(Arc::new(vec![cert])));
            }
            server.agent = Agent::config_builder()
                .tls_config(tls.build())
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(60)))
                .build()
                .into();
            let up = server.agent.get(format!("{}/healthz", server.base)).call();
            if up.is_ok_and(|r| r.status() == 200) {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn post(&self, body: &[u8]) -> Answer {
        let response = self
            .agent
            .post(format!("{}/add-checkpoint", self.base))
            .send(body)
            .unwrap();
        Server::answer(response)
    }

    fn get(&self, path: &str) -> Answer {
        Server::answer(
            self.agent
                .get(format!("{}{path}", self.base))
                .call()
                .unwrap(),
        )
    }

    fn answer(mut response: ureq::http::Response<ureq::Body>) -> Answer {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.body_mut().read_to_string().unwrap();
        Answer {
            status,
            content_type,
            body,
        }
    }

    fn witness_key(&self) -> String {
        std::fs::read_to_string(self.data.join("witness-key.pub"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// SIGKILL: no chance to flush anything.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn setup(logs: &[&TestLog]) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("witness.toml");
    std::fs::write(&config, config_text(NAME, logs)).unwrap();
    let data = dir.path().join("data");
    (dir, config, data)
}

fn monitor_path(origin: &str) -> String {
    format!("/{}/checkpoint", kt_witness::witness::origin_hash(origin))
}

#[test]
fn every_answer_code_over_http() {
    let log = TestLog::new("example.com/log", 16);
    let (_dir, config, data) = setup(&[&log]);
    let w = Server::start(&config, &data, false);
    let key = w.witness_key();

    // 404 before anything is cosigned, on the monitoring API.
    assert_eq!(w.get(&monitor_path(&log.origin)).status, 404);
    // 400: malformed, and old > new.
    for body in [&b"old 1\n"[..], b"", b"old 01\n\nx\n", b"\xff\xfe"] {
        let a = w.post(body);
        assert_eq!(a.status, 400, "{body:?}: {}", a.body);
        assert!(a.content_type.starts_with("text/plain"));
    }
    let a = w.post(&TestLog::body(9, &[], &log.note(5)));
    assert_eq!(a.status, 400);
    assert!(
        a.body.contains("larger than the checkpoint size"),
        "{}",
        a.body
    );
    // 404: unknown origin.
    let stranger = TestLog::new("stranger.example/log", 3);
    let a = w.post(&stranger.request(0, 3));
    assert_eq!(a.status, 404);
    assert!(a.body.contains("unknown log origin"), "{}", a.body);
    // 403: no trusted signature; a trusted key's signature that fails.
    let impostor = kt_log::note::NoteSigner::generate(&log.origin).unwrap();
    let a = w.post(&TestLog::body(
        0,
        &[],
        &log.note_with_root(5, log.root(5), &impostor),
    ));
    assert_eq!(a.status, 403, "{}", a.body);
    let tampered = String::from_utf8(log.note(5))
        .unwrap()
        .replacen("\n5\n", "\n6\n", 1);
    let a = w.post(&TestLog::body(0, &[], tampered.as_bytes()));
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(a.body.contains("invalid signature"), "{}", a.body);
    // 422: a size-0 checkpoint without the empty root; a proof with old 0.
    let a = w.post(&TestLog::body(
        0,
        &[],
        &log.note_with_root(0, log.root(2), &log.signer),
    ));
    assert_eq!(a.status, 422);
    assert!(a.body.contains("empty tree"), "{}", a.body);
    let a = w.post(&TestLog::body(0, &[log.root(1)], &log.note(5)));
    assert_eq!(a.status, 422);
    assert!(
        a.body.contains("must be empty when the old size is 0"),
        "{}",
        a.body
    );
    // 200: the cosignature line, checked by the independent implementation.
    let a = w.post(&log.request(0, 5));
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.starts_with(&format!("\u{2014} {NAME} ")) && a.body.ends_with('\n'));
    assert_eq!(a.body.lines().count(), 1);
    independent_verify(&key, &note_text(&log.note(5)), &a.body).unwrap();
    // 409: the stored size in text/x.tlog.size.
    let a = w.post(&log.request(0, 9));
    assert_eq!(a.status, 409);
    assert_eq!(a.content_type, "text/x.tlog.size");
    assert_eq!(a.body, "5\n");
    let a = w.post(&log.request(7, 9));
    assert_eq!((a.status, a.body.as_str()), (409, "5\n"));
    // 422: a bad proof; the same size with another root.
    let mut bad = log.proof(5, 9);
    bad[1] = Hash([1; 32]);
    let a = w.post(&TestLog::body(5, &bad, &log.note(9)));
    assert_eq!(a.status, 422);
    assert!(
        a.body.contains("consistency proof does not verify"),
        "{}",
        a.body
    );
    let a = w.post(&TestLog::body(5, &[], &log.fork_note(5)));
    assert_eq!(a.status, 422);
    assert!(a.body.contains("another root"), "{}", a.body);
    // Both are kept as evidence files, which `check-evidence` re-checks offline.
    let mut findings = Vec::new();
    for file in std::fs::read_dir(data.join("evidence")).unwrap() {
        let out = Command::new(env!("CARGO_BIN_EXE_kt-witness"))
            .arg("check-evidence")
            .arg("--config")
            .arg(&config)
            .arg(file.unwrap().path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        findings.push(String::from_utf8(out.stdout).unwrap());
    }
    findings.sort();
    assert_eq!(
        findings,
        [
            "example.com/log: ProofFails { old: 5, new: 9 }\n",
            "example.com/log: SplitView { size: 5 }\n"
        ]
    );
    // 200 onwards; the monitoring GET serves the log's signature and the cosignature.
    assert_eq!(w.post(&log.request(5, 9)).status, 200);
    assert_eq!(w.post(&log.request(9, 16)).status, 200);
    let m = w.get(&monitor_path(&log.origin));
    assert_eq!(m.status, 200);
    assert!(m.body.starts_with(&note_text(&log.note(16))));
    let own = m
        .body
        .lines()
        .find(|l| l.starts_with(&format!("\u{2014} {NAME} ")))
        .unwrap();
    independent_verify(&key, &note_text(&log.note(16)), &format!("{own}\n")).unwrap();
    assert!(m.body.contains(&format!("\u{2014} {} ", log.origin)));
    assert_eq!(w.get(&monitor_path("stranger.example/log")).status, 404);

    // Limits and methods: a body over 64 KiB, a GET of add-checkpoint.
    assert_eq!(w.post(&vec![b'a'; 70 * 1024]).status, 413);
    assert_eq!(w.get("/add-checkpoint").status, 405);
    // Health and metrics.
    assert_eq!(w.get("/healthz").body, "ok\n");
    let metrics = w.get("/metrics").body;
    for code in [200, 400, 403, 404, 409, 422] {
        assert!(
            metrics.contains(&format!("witness_add_checkpoint_total{{code=\"{code}\"}}")),
            "{code}: {metrics}"
        );
    }
    assert!(metrics.contains("witness_evidence_files 2"), "{metrics}");
}

#[test]
fn https_with_a_generated_certificate_by_default() {
    let log = TestLog::new("example.com/log", 3);
    let (_dir, config, data) = setup(&[&log]);
    let w = Server::start(&config, &data, true);
    assert!(w.base.starts_with("https://"));
    let a = w.post(&log.request(0, 3));
    assert_eq!(a.status, 200, "{}", a.body);
    independent_verify(&w.witness_key(), &note_text(&log.note(3)), &a.body).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    for (file, mode) in [("tls-key.pem", 0o600), ("witness-key", 0o600)] {
        let m = std::fs::metadata(data.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(m & 0o777, mode, "{file}");
    }
}

#[test]
fn sigkill_then_restart_keeps_the_latest_checkpoint() {
    let log = TestLog::new("example.com/log", 20);
    let (_dir, config, data) = setup(&[&log]);
    let w = Server::start(&config, &data, false);
    let key = w.witness_key();
    assert_eq!(w.post(&log.request(0, 5)).status, 200);
    assert_eq!(w.post(&log.request(5, 12)).status, 200);
    w.kill();

    let w = Server::start(&config, &data, false);
    assert_eq!(w.witness_key(), key, "the key survives");
    let a = w.post(&log.request(5, 20));
    assert_eq!((a.status, a.body.as_str()), (409, "12\n"));
    let m = w.get(&monitor_path(&log.origin));
    assert!(m.body.starts_with(&note_text(&log.note(12))));
    assert_eq!(w.post(&log.request(12, 20)).status, 200);
    w.kill();
    let w = Server::start(&config, &data, false);
    assert_eq!(w.post(&log.request(12, 20)).body, "20\n");
}

#[test]
fn a_witness_that_lost_its_state_answers_409_with_size_0() {
    let log = TestLog::new("example.com/log", 9);
    let (_dir, config, data) = setup(&[&log]);
    let w = Server::start(&config, &data, false);
    assert_eq!(w.post(&log.request(0, 5)).status, 200);
    w.kill();
    for file in std::fs::read_dir(data.join("logs")).unwrap() {
        std::fs::remove_file(file.unwrap().path()).unwrap();
    }
    let w = Server::start(&config, &data, false);
    let a = w.post(&log.request(5, 9));
    assert_eq!(
        (a.status, a.content_type.as_str(), a.body.as_str()),
        (409, "text/x.tlog.size", "0\n")
    );
    // The log adopts size 0 and carries on.
    assert_eq!(w.post(&log.request(0, 9)).status, 200);
}

#[test]
fn concurrent_add_checkpoints_never_roll_back() {
    const CLIENTS: usize = 100;
    let log = Arc::new(TestLog::new("example.com/log", CLIENTS));
    let (_dir, config, data) = setup(&[&log]);
    let w = Arc::new(Server::start(&config, &data, false));
    let key = w.witness_key();
    let barrier = Arc::new(Barrier::new(CLIENTS));
    // Client i wants size i + 1 cosigned. It starts from old 0 (all at once, the spec's race),
    // adopts the size a 409 returns, and gives up once the witness is past its size.
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (w, log, barrier) = (w.clone(), log.clone(), barrier.clone());
            std::thread::spawn(move || {
                let target = i + 1;
                let mut old = 0;
                barrier.wait();
                loop {
                    let a = w.post(&log.request(old, target));
                    match a.status {
                        200 => return Some((old, target, a.body)),
                        409 => {
                            old = a.body.trim().parse().unwrap();
                            if old > target {
                                return None;
                            }
                        }
                        other => panic!("{other}: {}", a.body),
                    }
                }
            })
        })
        .collect();
    let mut accepted: Vec<(usize, usize, String)> = threads
        .into_iter()
        .filter_map(|t| t.join().unwrap())
        .collect();
    assert!(!accepted.is_empty());
    // Every 200 extends the previous one: sorted by size, each old size is the size of the
    // one before (0 for the first). A rollback would show as two 200s from one old size.
    accepted.sort_by_key(|a| a.1);
    let mut previous = 0;
    for (old, new, line) in &accepted {
        assert_eq!(*old, previous, "{accepted:?}");
        assert!(new > old || (*old == *new && *new == previous));
        independent_verify(&key, &note_text(&log.note(*new)), line).unwrap();
        previous = *new;
    }
    // The witness holds the largest size acknowledged.
    let a = w.post(&log.request(0, CLIENTS));
    assert_eq!(a.body, format!("{previous}\n"));
    assert!(w
        .get(&monitor_path(&log.origin))
        .body
        .starts_with(&note_text(&log.note(previous))));
}

/// Throughput of valid add-checkpoints (each durable before its answer) over many logs:
/// `cargo test --release --test server -- --ignored --nocapture throughput`.
#[test]
#[ignore = "a measurement, not a check"]
fn throughput() {
    const LOGS: usize = 64;
    const CLIENTS: usize = 16;
    const STEPS: usize = 60;
    let logs: Vec<Arc<TestLog>> = (0..LOGS)
        .map(|i| Arc::new(TestLog::new(&format!("example.com/log{i}"), STEPS + 1)))
        .collect();
    let refs: Vec<&TestLog> = logs.iter().map(|l| l.as_ref()).collect();
    let (_dir, config, data) = setup(&refs);
    let w = Arc::new(Server::start(&config, &data, false));
    // Requests made in advance: the clients only send.
    let bodies: Vec<Vec<Vec<u8>>> = logs
        .iter()
        .map(|l| (0..STEPS).map(|s| l.request(s, s + 1)).collect())
        .collect();
    let bodies = Arc::new(bodies);
    let started = Instant::now();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (w, bodies) = (w.clone(), bodies.clone());
            std::thread::spawn(move || {
                for step in 0..STEPS {
                    for log in (c..LOGS).step_by(CLIENTS) {
                        assert_eq!(w.post(&bodies[log][step]).status, 200);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    let n = LOGS * STEPS;
    println!(
        "{n} add-checkpoints over {LOGS} logs, {CLIENTS} clients: {seconds:.2} s, {:.0}/s",
        n as f64 / seconds
    );
}
