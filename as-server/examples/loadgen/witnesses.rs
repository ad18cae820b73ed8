//! `--witnesses N`: N local `kt-witness` processes (test-support's [`Witness`]: the binary
//! beside the load generator, plain HTTP on loopback) witnessing the spawned server's log, and
//! the policy that asks all of them and needs a majority; so that issuance with witnesses is
//! measured against issuance without, in one run of the same binaries. With
//! `--audit-witnesses` they run in the auditing mode, fetching every entry from the server's
//! tiles.

use std::path::{Path, PathBuf};

use test_support::witness::Witness;

/// Running witnesses, SIGKILLed when dropped.
pub(crate) struct Witnesses {
    running: Vec<Witness>,
    /// The policy file naming them.
    pub(crate) policy: PathBuf,
}

/// Starts `n` witnesses in folders under `dir` for the log `origin` with key `log_vkey`, and
/// writes the policy "majority of them".
pub(crate) fn start(n: usize, dir: &Path, origin: &str, log_vkey: &str) -> Witnesses {
    let mut running = Vec::new();
    let mut policy = format!("log {log_vkey}\n");
    let mut names = Vec::new();
    for i in 0..n {
        let witness = Witness::start(dir, &format!("w{i}.bench.example/w"), origin, log_vkey);
        policy.push_str(&format!(
            "witness w{i} {} {}\n",
            witness.vkey(),
            witness.url()
        ));
        names.push(format!("w{i}"));
        running.push(witness);
    }
    policy.push_str(&format!(
        "group majority {} {}\nquorum majority\n",
        n / 2 + 1,
        names.join(" ")
    ));
    let path = dir.join("witness-policy");
    std::fs::write(&path, policy).unwrap();
    Witnesses {
        running,
        policy: path,
    }
}

impl Witnesses {
    /// Restarts every witness in the auditing mode over the tiles under `url`, trusting the
    /// certificate `tls_ca`.
    pub(crate) fn audit(&mut self, url: &str, tls_ca: &Path) {
        for witness in &mut self.running {
            witness.audit(url, Some(tls_ca));
        }
    }

    /// Each witness's `witness_audited_entries` metric.
    pub(crate) fn audited_entries(&self) -> Vec<u64> {
        self.running
            .iter()
            .map(|w| w.metric("witness_audited_entries").unwrap_or(0))
            .collect()
    }
}
