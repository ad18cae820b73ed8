//! Load generator for the AS: durable credential issuance and lookups over HTTPS keep-alive.
//!
//! By default it starts the release `as-server` next to it on a loopback port with a fresh data
//! folder, so one command measures a cold, default server:
//!
//! ```sh
//! cargo build --release -p as-server --bins --examples
//! target/release/examples/loadgen --clients 64 --credentials 20000 --lookups 100000
//! ```
//!
//! Each credential request uses its own Ed25519 key and proof of possession, made before the
//! clock starts (so the figures measure the server, not the client's signing). The requests are
//! sent by a light async client ([`light_client`]): one tokio thread drives every connection.
//! Latency is per request, from send to the full answer. `--server URL --tls-ca PEM --admin-token-file F`
//! targets a running server instead. Requests are bounded in count; only loopback is targeted.
//! `--postgres --frontends 2` spawns two frontends of one log on a fresh PostgreSQL database
//! (the project's throw-away cluster) and spreads the clients over them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod light_client;
mod witnesses;

use std::path::PathBuf;
use std::time::Duration;

use as_server::admin_client::HttpsClient;
use clap::Parser;
use test_support::requests::{issue_request, new_key};
use test_support::ServerProcess;

#[derive(Parser)]
struct Args {
    /// Concurrent clients (each one HTTPS keep-alive connection).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Credentials to issue (identities enrolled first, in one bulk call per 50,000).
    #[arg(long, default_value_t = 20_000)]
    credentials: usize,
    /// Lookups to make after issuance.
    #[arg(long, default_value_t = 100_000)]
    lookups: usize,
    /// Ask for lookup answers in their binary form (`Accept: application/vnd.kt.identity-proof`)
    /// instead of JSON.
    #[arg(long)]
    binary_lookups: bool,
    /// A running server instead of spawning one.
    #[arg(long)]
    server: Option<String>,
    /// Its TLS certificate (with --server).
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Its admin token file (with --server).
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// Only prepare: enroll and write one signed credential request per line to this file, for
    /// a lighter client such as wrk (bench/issue.lua), then stop.
    #[arg(long)]
    write_requests: Option<PathBuf>,
    /// Extra flags for the spawned server, e.g. "--max-batch 512".
    #[arg(long, allow_hyphen_values = true)]
    server_flags: Option<String>,
    /// Local kt-witness processes for the spawned server, with a policy needing a majority
    /// of them (`cargo build --release -p kt-witness` first); 0 for none.
    #[arg(long, default_value_t = 0)]
    witnesses: usize,
    /// Run the witnesses in the auditing mode (they fetch every entry from the server's
    /// tiles and check the directory's rules before cosigning).
    #[arg(long, requires = "witnesses")]
    audit_witnesses: bool,
    /// Spawn the servers on PostgreSQL (`--store`): a fresh database on the project's own
    /// throw-away cluster (scripts/pg-cluster), or on the server of `KT_TEST_POSTGRES_URL`.
    #[arg(long, conflicts_with = "server")]
    postgres: bool,
    /// Frontends to spawn on that one database (with --postgres); the clients are spread
    /// evenly over them.
    #[arg(long, default_value_t = 1, requires = "postgres")]
    frontends: usize,
}

/// A server this generator started, on a fresh data folder removed with it, and its
/// witnesses if any; with --frontends, the other frontends of its log.
struct Spawned {
    process: ServerProcess,
    witnesses: Option<witnesses::Witnesses>,
    others: Vec<ServerProcess>,
    _database: Option<test_support::postgres::TestDatabase>,
    dir: tempfile::TempDir,
}

impl Spawned {
    /// Every frontend's (base URL, TLS certificate PEM), the first one's first.
    fn frontends(&self) -> Vec<(String, Vec<u8>)> {
        std::iter::once(&self.process)
            .chain(&self.others)
            .enumerate()
            .map(|(i, process)| {
                let data = self.dir.path().join(if i == 0 {
                    "data".into()
                } else {
                    format!("data{i}")
                });
                (
                    process.base.clone(),
                    std::fs::read(data.join("tls-cert.pem")).unwrap(),
                )
            })
            .collect()
    }

    /// The process ids of every frontend, for the CPU meter.
    fn pids(&self) -> Vec<String> {
        std::iter::once(&self.process)
            .chain(&self.others)
            .filter_map(|p| p.pid().map(|pid| pid.to_string()))
            .collect()
    }
}

/// CPU seconds (user + system) used so far by process `pid` ("self" for this one).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

fn spawn(args: &Args) -> (Spawned, String, Vec<u8>, String) {
    let (witness_count, audit) = (args.witnesses, args.audit_witnesses);
    let exe = std::env::current_exe().unwrap();
    let binary = test_support::workspace_binary("as-server");
    let dir = tempfile::tempdir_in(exe.parent().unwrap()).unwrap();
    let data = dir.path().join("data");
    let database = args.postgres.then(test_support::postgres::test_database);
    let mut flags: Vec<&str> = args
        .server_flags
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    if let Some(database) = &database {
        flags.extend(["--store", &database.url]);
    }
    let mut process = ServerProcess::start(&binary, &data, &flags);
    let token = process.printed_admin_token.clone().expect("an admin token");
    let witnesses = (witness_count > 0).then(|| {
        // The witnesses need the log's key, made at the first start: stop, start them,
        // start again with the policy.
        process.kill();
        let vkey = std::fs::read_to_string(data.join("log-key.pub")).unwrap();
        let origin = vkey.split('+').next().unwrap().to_owned();
        let started = witnesses::start(witness_count, dir.path(), &origin, vkey.trim());
        let policy = started.policy.display().to_string();
        let mut with_policy = flags.clone();
        with_policy.extend(["--witness-policy", &policy]);
        process = ServerProcess::start(&binary, &data, &with_policy);
        started
    });
    let base = process.base.clone();
    let mut witnesses = witnesses;
    if let Some(witnesses) = witnesses.as_mut().filter(|_| audit) {
        witnesses.audit(&format!("{base}/log"), &data.join("tls-cert.pem"));
    }
    let pem = std::fs::read(data.join("tls-cert.pem")).unwrap();
    let others = (1..args.frontends)
        .map(|i| {
            let other = dir.path().join(format!("data{i}"));
            test_support::server::copy_keys(&data, &other);
            ServerProcess::start(&binary, &other, &flags)
        })
        .collect();
    (
        Spawned {
            process,
            witnesses,
            others,
            _database: database,
            dir,
        },
        base,
        pem,
        token,
    )
}

/// The size of the log-signed checkpoint a lookup answer carries.
fn answer_size(client: &HttpsClient, identity: &str) -> u64 {
    let answer = client.get(&format!("/v1/identities/{identity}")).unwrap();
    let note = answer.json()["checkpoint"].as_str().unwrap().to_owned();
    note.lines().nth(1).unwrap().parse().unwrap()
}

/// With witnesses: how long after issuance ends until `/log/checkpoint` is cosigned at least
/// up to the newest lookup answer's checkpoint.
fn report_cosigning_lag(client: &HttpsClient, identity: &str) {
    let started = std::time::Instant::now();
    let size = answer_size(client, identity);
    loop {
        let status = client.get("/v1/log/witnesses").unwrap().json();
        if status["cosigned"]["size"]
            .as_u64()
            .is_some_and(|s| s >= size)
        {
            println!(
                "cosigned checkpoint covering size {size}: {:.0} ms after issuance ended (by {})",
                started.elapsed().as_secs_f64() * 1e3,
                status["cosigned"]["cosigners"]
            );
            return;
        }
        if started.elapsed() > Duration::from_secs(30) {
            println!("no cosigned checkpoint covering size {size} after 30 s: {status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// CPU use of the servers (all frontends together) and of this load generator during one
/// phase.
struct CpuMeter {
    servers: Vec<String>,
    server_start: f64,
    own_start: f64,
}

impl CpuMeter {
    fn start(servers: Vec<String>) -> CpuMeter {
        CpuMeter {
            server_start: servers.iter().map(|pid| cpu_seconds(pid)).sum(),
            servers,
            own_start: cpu_seconds("self"),
        }
    }

    fn report(&self, count: usize) {
        let own = cpu_seconds("self") - self.own_start;
        match self.servers.is_empty() {
            false => {
                let server = self.servers.iter().map(|pid| cpu_seconds(pid)).sum::<f64>()
                    - self.server_start;
                println!(
                    "  CPU: server {:.1} s ({:.0} us per request), load generator {:.1} s ({:.0} us per request)",
                    server,
                    server * 1e6 / count as f64,
                    own,
                    own * 1e6 / count as f64
                );
            }
            true => println!("  CPU: load generator {own:.1} s"),
        }
    }
}

fn report(
    name: &str,
    count: usize,
    errors: usize,
    elapsed: Duration,
    mut latencies: Vec<Duration>,
) {
    latencies.sort();
    println!(
        "{name}: {count} in {:.2} s = {:.0}/s; errors {errors}; latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        percentile(&latencies, 0.999).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

fn main() {
    let args = Args::parse();
    let (_spawned, base, pem, token) = match &args.server {
        Some(server) => {
            let pem = std::fs::read(args.tls_ca.as_ref().expect("--tls-ca")).unwrap();
            let token = std::fs::read_to_string(
                args.admin_token_file.as_ref().expect("--admin-token-file"),
            )
            .unwrap();
            (None, server.clone(), pem, token.trim().to_owned())
        }
        None => {
            let (spawned, base, pem, token) = spawn(&args);
            (Some(spawned), base, pem, token)
        }
    };
    let client = HttpsClient::new(&base, &pem).unwrap();
    let run_id: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();

    // Enroll, then prepare every request (key, proof) before the clock starts.
    let identities: Vec<String> = (0..args.credentials)
        .map(|i| format!("load{i}.{run_id}@bench.example"))
        .collect();
    let mut requests = Vec::with_capacity(args.credentials);
    let server_pids = _spawned.as_ref().map(Spawned::pids).unwrap_or_default();
    let mut enrolling = std::time::Duration::ZERO;
    let mut answers = Vec::new();
    let enrollment_cpu = CpuMeter::start(server_pids.clone());
    for chunk in identities.chunks(50_000) {
        let sent = std::time::Instant::now();
        let answer = client
            .post(
                "/v1/admin/enrollments",
                serde_json::json!({"identities": chunk})
                    .to_string()
                    .as_bytes(),
                Some(&token),
            )
            .unwrap();
        assert_eq!(
            answer.status,
            201,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        enrolling += sent.elapsed();
        answers.push(answer.json());
    }
    println!(
        "enrollments (admin bulk calls): {} in {:.2} s",
        identities.len(),
        enrolling.as_secs_f64()
    );
    enrollment_cpu.report(identities.len());
    for answer in answers {
        for enrollment in answer["enrollments"].as_array().unwrap() {
            let identity = enrollment["identity"].as_str().unwrap();
            let token = enrollment["token"].as_str().unwrap();
            let body = issue_request(identity, token, &new_key());
            requests.push(body.to_string().into_bytes());
        }
    }
    if let Some(path) = &args.write_requests {
        let mut lines = Vec::new();
        for request in &requests {
            lines.extend_from_slice(request);
            lines.push(b'\n');
        }
        std::fs::write(path, lines).unwrap();
        println!(
            "wrote {} requests to {} (run id {run_id})",
            requests.len(),
            path.display()
        );
        return;
    }
    let frontends = match &_spawned {
        Some(spawned) => spawned.frontends(),
        None => vec![(base.clone(), pem.clone())],
    };
    println!(
        "server {base}{}; {} clients",
        match (args.postgres, frontends.len()) {
            (false, _) => String::new(),
            (true, 1) => " on PostgreSQL".into(),
            (true, n) => format!(" and {} more frontends, on PostgreSQL", n - 1),
        },
        args.clients
    );
    let phase = Phase {
        frontends: &frontends,
        clients: args.clients,
        server_pids,
    };
    let issue = requests
        .into_iter()
        .map(|body| light_client::Request {
            method: "POST",
            path: "/v1/credentials".into(),
            body,
            accept: None,
        })
        .collect();
    phase.measure("credentials issued (durable, with proof)", issue, 201);
    if let Some(witnesses) = _spawned.as_ref().and_then(|s| s.witnesses.as_ref()) {
        report_cosigning_lag(&client, &identities[identities.len() - 1]);
        if args.audit_witnesses {
            println!(
                "entries audited by each witness: {:?}",
                witnesses.audited_entries()
            );
        }
    }
    let lookups = (0..args.lookups)
        .map(|i| light_client::Request {
            method: "GET",
            path: format!("/v1/identities/{}", identities[i % identities.len().max(1)]),
            body: Vec::new(),
            accept: args
                .binary_lookups
                .then_some(kt_protocol::api::IDENTITY_PROOF_MEDIA_TYPE),
        })
        .collect();
    let form = if args.binary_lookups {
        "binary"
    } else {
        "JSON"
    };
    phase.measure(
        &format!("lookups (with their proofs, {form})"),
        lookups,
        200,
    );
}

/// What every measured phase shares.
struct Phase<'a> {
    /// Each frontend's base URL and TLS certificate.
    frontends: &'a [(String, Vec<u8>)],
    clients: usize,
    /// The spawned frontends' pids, to report their CPU.
    server_pids: Vec<String>,
}

impl Phase<'_> {
    /// Sends `requests` over fresh connections and prints throughput, latency and CPU; answers
    /// other than `expected` are errors.
    fn measure(&self, name: &str, requests: Vec<light_client::Request>, expected: u16) {
        let count = requests.len();
        let meter = CpuMeter::start(self.server_pids.clone());
        let targets = self
            .frontends
            .iter()
            .map(|(base, pem)| light_client::Target::new(base, pem))
            .collect();
        let (elapsed, latencies, errors) =
            light_client::run(targets, self.clients, requests, expected);
        report(name, latencies.len(), errors, elapsed, latencies);
        meter.report(count);
    }
}
