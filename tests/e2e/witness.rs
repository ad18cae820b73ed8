//! Witness cosigning end to end: two real `kt-witness` processes (plain HTTP on loopback)
//! cosign a log's checkpoint through `POST /add-checkpoint`, and the real `verifier-cli`
//! with `--witness-policy` accepts the checkpoint cosigned by both (the quorum) and refuses
//! the one missing a witness, naming it.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use e2e_tests::{binary, Run};
use kt_log::checkpoint::Checkpoint;
use kt_log::hash::leaf_hash;
use kt_log::note::NoteSigner;

const ORIGIN: &str = "e2e.example/witnessed-log";

/// A running kt-witness, SIGKILLed and reaped when dropped.
struct Witness {
    child: Child,
    port: u16,
    data: PathBuf,
}

impl Drop for Witness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One plain HTTP/1.1 request; returns (status, body).
fn http(port: u16, method: &str, path: &str, body: &[u8]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8(answer).ok()?;
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    let (_, body) = answer.split_once("\r\n\r\n")?;
    Some((status, body.to_owned()))
}

impl Witness {
    fn start(dir: &Path, name: &str, log_vkey: &str) -> Witness {
        let folder = dir.join(name.replace('/', "_"));
        std::fs::create_dir_all(&folder).unwrap();
        let config = folder.join("witness.toml");
        std::fs::write(
            &config,
            format!(
                "name = \"{name}\"\n\n[[log]]\norigin = \"{ORIGIN}\"\nkeys = [\"{log_vkey}\"]\n"
            ),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let data = folder.join("data");
        let child = Command::new(binary("kt-witness"))
            .args(["serve", "--workers", "1", "--plain-http", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--config")
            .arg(&config)
            .arg("--data")
            .arg(&data)
            .env("RUST_LOG", "warn")
            .env_remove("WITNESS_CONFIG")
            .env_remove("WITNESS_DATA")
            .env_remove("WITNESS_LISTEN")
            .env_remove("WITNESS_PLAIN_HTTP")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let witness = Witness { child, port, data };
        let started = Instant::now();
        while http(port, "GET", "/healthz", b"").map(|a| a.0) != Some(200) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "kt-witness {name} did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        witness
    }

    fn vkey(&self) -> String {
        std::fs::read_to_string(self.data.join("witness-key.pub"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Submits `note` as the first checkpoint (old size 0, no proof); returns the line.
    fn cosign(&self, note: &str) -> String {
        let body = format!("old 0\n\n{note}");
        let (status, line) = http(self.port, "POST", "/add-checkpoint", body.as_bytes()).unwrap();
        assert_eq!(status, 200, "{line}");
        line
    }
}

#[test]
fn a_quorum_cosigned_checkpoint_passes_and_one_missing_a_witness_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = NoteSigner::from_seed(ORIGIN, &[21; 32]).unwrap();
    let log_vkey = log.verifier().to_vkey();
    let note = Checkpoint {
        origin: ORIGIN.into(),
        size: 7,
        root: leaf_hash(b"any root: the witness checks consistency, not contents"),
        extensions: vec![],
    }
    .sign(&log)
    .unwrap()
    .note;
    let note = String::from_utf8(note).unwrap();

    let a = Witness::start(dir.path(), "witness-a.example/w", &log_vkey);
    let b = Witness::start(dir.path(), "witness-b.example/w", &log_vkey);
    let line_a = a.cosign(&note);
    let line_b = b.cosign(&note);

    let policy = dir.path().join("policy");
    std::fs::write(
        &policy,
        format!(
            "log {log_vkey}\nwitness A {} http://127.0.0.1:{}/\nwitness B {}\ngroup both all A B\nquorum both\n",
            a.vkey(),
            a.port,
            b.vkey()
        ),
    )
    .unwrap();
    let verify = |name: &str, text: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        Run::of(
            &binary("verifier-cli"),
            &[
                "checkpoint".into(),
                "verify".into(),
                "--log-key".into(),
                log_vkey.clone().into(),
                "--witness-policy".into(),
                policy.clone().into(),
                file.into(),
            ],
        )
    };
    // Both witnesses (the quorum): verified.
    verify("both", &format!("{note}{line_a}{line_b}")).code(0);
    // Only A: refused (exit 1), naming B.
    let run = verify("only-a", &format!("{note}{line_a}"));
    run.code(1);
    assert!(
        run.stderr.contains("missing cosignatures by B") && !run.stderr.contains("by A"),
        "{}",
        run.stderr
    );
    // Only the log's signature: refused, naming both.
    let run = verify("none", &note);
    run.code(1);
    assert!(
        run.stderr.contains("missing cosignatures by A, B"),
        "{}",
        run.stderr
    );
    // B's cosignature with its key id but a tampered signature: refused as a bad cosignature.
    let (head, sig) = line_b.trim_end().rsplit_once(' ').unwrap();
    let mut raw = B64.decode(sig).unwrap();
    raw[40] ^= 0x01;
    let tampered = format!("{head} {}", B64.encode(raw));
    let run = verify("tampered", &format!("{note}{line_a}{tampered}\n"));
    run.code(1);
    assert!(
        run.stderr.contains("bad cosignature by witness \"B\""),
        "{}",
        run.stderr
    );
}
