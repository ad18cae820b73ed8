//! `--witnesses N`: N local `kt-witness` processes (the release binary beside the load
//! generator, plain HTTP on loopback) witnessing the spawned server's log, and the policy
//! that asks all of them and needs a majority; so that issuance with witnesses is measured
//! against issuance without, in one run of the same binaries.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Running witnesses, SIGKILLed when dropped.
pub(crate) struct Witnesses {
    children: Vec<Child>,
    /// The policy file naming them.
    pub(crate) policy: PathBuf,
}

impl Drop for Witnesses {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `n` witnesses in folders under `dir` for the log `origin` with key `log_vkey`, and
/// writes the policy "majority of them".
pub(crate) fn start(n: usize, dir: &Path, origin: &str, log_vkey: &str) -> Witnesses {
    let exe = std::env::current_exe().unwrap();
    let binary = exe.parent().unwrap().parent().unwrap().join("kt-witness");
    assert!(
        binary.is_file(),
        "{} is missing: cargo build --release -p kt-witness",
        binary.display()
    );
    let mut children = Vec::new();
    let mut policy = format!("log {log_vkey}\n");
    let mut names = Vec::new();
    for i in 0..n {
        let folder = dir.join(format!("witness-{i}"));
        std::fs::create_dir_all(&folder).unwrap();
        let config = folder.join("witness.toml");
        std::fs::write(
            &config,
            format!(
                "name = \"w{i}.bench.example/w\"\n[[log]]\norigin = \"{origin}\"\nkeys = [\"{log_vkey}\"]\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let data = folder.join("data");
        children.push(
            Command::new(&binary)
                .args(["serve", "--plain-http", "--workers", "1", "--listen"])
                .arg(format!("127.0.0.1:{port}"))
                .arg("--config")
                .arg(&config)
                .arg("--data")
                .arg(&data)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let key_file = data.join("witness-key.pub");
        let started = Instant::now();
        while !key_file.is_file() || std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "witness {i} did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let vkey = std::fs::read_to_string(&key_file).unwrap();
        policy.push_str(&format!(
            "witness w{i} {} http://127.0.0.1:{port}\n",
            vkey.trim()
        ));
        names.push(format!("w{i}"));
    }
    policy.push_str(&format!(
        "group majority {} {}\nquorum majority\n",
        n / 2 + 1,
        names.join(" ")
    ));
    let path = dir.join("witness-policy");
    std::fs::write(&path, policy).unwrap();
    Witnesses {
        children,
        policy: path,
    }
}
