//! `powerloss`: runs `as-server` with its data folder on `lazy-fs` through many simulated
//! power losses, and checks after each restart that nothing the server acknowledged is lost
//! (see `tests/powerloss/README.md`). Normally started by `tests/powerloss/run`.
//!
//! Each cycle: mount lazy-fs, start the server, check what earlier cycles acknowledged, run a
//! concurrent client for 0.5–3 s, then the power loss (SIGSTOP the server, SIGUSR1 lazy-fs:
//! every unsynced write dropped, SIGKILL the server) and the unmount; every `--damage-every`
//! cycles the state store is also damaged in the backing folder. A last start checks the last
//! cycle. Exits 1 if anything acknowledged was lost, changed or forked, or a restart failed.
#![forbid(unsafe_code)]

mod checks;
mod http;
mod ledger;
mod procs;
mod workload;

use std::io::Write as _;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kt_log::note::NoteVerifier;
use kt_protocol::directory::vrf::VrfPublicKey;
use kt_verify::credential::Ca;
use nix::sys::signal::Signal;

use crate::http::Client;
use crate::ledger::{Anchors, Ledger};
use crate::procs::{Mount, Server};
use crate::workload::{Ctx, Rng};

const USAGE: &str = "usage: powerloss --server BIN --lazy-fs BIN --work DIR [options]

  --cycles N          power losses to simulate (default 100)
  --quick             6 cycles, the state store damaged every 2nd (each damage once)
  --mode M            drop: power loss on lazy-fs (default)
                      kill: SIGKILL only on lazy-fs (unsynced data is kept: a process crash)
                      plain: SIGKILL only, no lazy-fs (the data folder in a plain folder)
  --damage-every N    damage the state store every N cycles (default 10, 0: never)
  --damage CASES      which damages, taken in turn (default garbage,truncate,delete)
  --seed S            the run's randomness (default: random)
  --load-ms MIN:MAX   client load per cycle in ms (default 500:3000)
  --threads N         client threads (default 6)
  --start-timeout S   seconds a start may take before it counts as failed (default 60)
  --port P            the server's port (default 0: any free one)
  --lazy-fs-arg ARG   an extra argument for lazy-fs (repeatable), e.g. --ignore-fsync NAME
                      to check that the test catches a missing fsync";

/// How the state store is damaged.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Damage {
    /// Random bytes over the first 4 KiB of each file.
    Garbage,
    /// Each file cut to nothing.
    Truncate,
    /// The folder deleted.
    Delete,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Drop,
    Kill,
    Plain,
}

struct Args {
    server: PathBuf,
    lazy_fs: PathBuf,
    work: PathBuf,
    cycles: usize,
    mode: Mode,
    damage_every: usize,
    damages: Vec<Damage>,
    seed: u64,
    load_ms: (u64, u64),
    threads: usize,
    start_timeout: Duration,
    port: u16,
    lazy_fs_args: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut server = None;
    let mut lazy_fs = None;
    let mut work = None;
    let mut cycles = 100;
    let mut mode = Mode::Drop;
    let mut damage_every = None;
    let mut quick = false;
    let mut damages = vec![Damage::Garbage, Damage::Truncate, Damage::Delete];
    let mut seed = None;
    let mut load_ms = (500, 3000);
    let mut threads = 6;
    let mut start_timeout = 60;
    let mut port = 0;
    let mut lazy_fs_args = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--server" => server = Some(PathBuf::from(value()?)),
            "--lazy-fs" => lazy_fs = Some(PathBuf::from(value()?)),
            "--work" => work = Some(PathBuf::from(value()?)),
            "--cycles" => cycles = number(value()?)? as usize,
            "--quick" => quick = true,
            "--mode" => {
                mode = match value()?.as_str() {
                    "drop" => Mode::Drop,
                    "kill" => Mode::Kill,
                    "plain" => Mode::Plain,
                    other => return Err(format!("--mode: drop, kill or plain, not {other}")),
                }
            }
            "--damage-every" => damage_every = Some(number(value()?)? as usize),
            "--damage" => {
                damages = value()?
                    .split(',')
                    .map(|case| match case {
                        "garbage" => Ok(Damage::Garbage),
                        "truncate" => Ok(Damage::Truncate),
                        "delete" => Ok(Damage::Delete),
                        other => Err(format!(
                            "--damage: garbage, truncate or delete, not {other}"
                        )),
                    })
                    .collect::<Result<_, _>>()?;
                if damages.is_empty() {
                    return Err("--damage: no case".into());
                }
            }
            "--seed" => seed = Some(number(value()?)?),
            "--load-ms" => {
                let v = value()?;
                let (lo, hi) = v.split_once(':').ok_or("--load-ms MIN:MAX")?;
                load_ms = (number(lo.into())?, number(hi.into())?);
                if load_ms.0 > load_ms.1 {
                    return Err("--load-ms: MIN above MAX".into());
                }
            }
            "--threads" => threads = number(value()?)?.max(1) as usize,
            "--start-timeout" => start_timeout = number(value()?)?,
            "--port" => port = u16::try_from(number(value()?)?).map_err(|_| "--port: too large")?,
            "--lazy-fs-arg" => lazy_fs_args.push(value()?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if quick {
        cycles = 6;
    }
    let damage_every = damage_every.unwrap_or(if quick { 2 } else { 10 });
    let seed = seed.unwrap_or_else(|| {
        let mut bytes = [0u8; 8];
        let _ = getrandom::fill(&mut bytes);
        u64::from_le_bytes(bytes) % 1_000_000_000
    });
    Ok(Args {
        server: server.ok_or("--server is required")?,
        lazy_fs: lazy_fs.ok_or("--lazy-fs is required")?,
        work: work.ok_or("--work is required")?,
        cycles,
        mode,
        damage_every,
        damages,
        seed,
        load_ms,
        threads,
        start_timeout: Duration::from_secs(start_timeout),
        port,
        lazy_fs_args,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("powerloss: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("powerloss: {e}");
            ExitCode::from(2)
        }
    }
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Every regular file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(list) = std::fs::read_dir(&dir) else {
            continue;
        };
        for item in list.flatten() {
            match item.file_type() {
                Ok(t) if t.is_dir() => stack.push(item.path()),
                Ok(t) if t.is_file() => files.push(item.path()),
                _ => {}
            }
        }
    }
    files.sort();
    files
}

/// Damages the state store (`state`, in the backing folder, while nothing is mounted or
/// running).
fn damage(state: &Path, case: Damage, rng: &mut Rng) -> Result<String, String> {
    let files = files_under(state);
    let io = |e: std::io::Error| format!("damaging {}: {e}", state.display());
    match case {
        Damage::Garbage => {
            for file in &files {
                let garbage: Vec<u8> = (0..4096).map(|_| rng.next() as u8).collect();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(file)
                    .and_then(|f| f.write_all_at(&garbage, 0))
                    .map_err(io)?;
            }
            Ok(format!(
                "garbage over the first 4 KiB of {} files in state/",
                files.len()
            ))
        }
        Damage::Truncate => {
            for file in &files {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(file)
                    .and_then(|f| f.set_len(0))
                    .map_err(io)?;
            }
            Ok(format!("{} files in state/ truncated to 0", files.len()))
        }
        Damage::Delete => {
            if state.exists() {
                std::fs::remove_dir_all(state).map_err(io)?;
            }
            Ok(format!("state/ deleted ({} files)", files.len()))
        }
    }
}

/// The trust anchors of the first start, from its data folder (copies go to the work
/// folder): `log-key.pub`, `vrf-key.pub` and `ca-cert.pem`; with the two keys' text.
fn read_anchors(data: &Path, work: &Path) -> Result<((String, String), Anchors), String> {
    let read = |name: &str| {
        let text = std::fs::read_to_string(data.join(name)).map_err(|e| format!("{name}: {e}"))?;
        let _ = std::fs::write(work.join(name), &text);
        Ok::<_, String>(text)
    };
    let log_text = read("log-key.pub")?;
    let vrf_text = read("vrf-key.pub")?;
    let ca_pem = read("ca-cert.pem")?;
    let log_key = NoteVerifier::parse(log_text.trim()).map_err(|e| format!("log-key.pub: {e}"))?;
    let vrf_key = B64
        .decode(vrf_text.trim())
        .map_err(|e| e.to_string())
        .and_then(|bytes| VrfPublicKey::from_bytes(&bytes).map_err(|e| e.to_string()))
        .map_err(|e| format!("vrf-key.pub: {e}"))?;
    let ca = Ca::from_bytes(ca_pem.as_bytes()).map_err(|e| format!("ca-cert.pem: {e}"))?;
    Ok((
        (log_text, vrf_text),
        Anchors {
            log_key,
            vrf_key,
            ca,
        },
    ))
}

/// Starts the server and waits until `/healthz` answers; the client for it.
fn boot(args: &Args, data: &Path, log: &Path) -> Result<(Server, Client), String> {
    let started = Instant::now();
    let server = Server::start(
        &args.server,
        data,
        args.port,
        &args.work,
        log,
        args.start_timeout,
    )?;
    let cert =
        std::fs::read(data.join("tls-cert.pem")).map_err(|e| format!("tls-cert.pem: {e}"))?;
    let token = std::fs::read_to_string(args.work.join("admin-token"))
        .map_err(|e| format!("admin token file: {e}"))?;
    let client = Client::new(&server.base, &cert, token.trim(), Duration::from_secs(30))?;
    loop {
        match client.get("/healthz") {
            Ok(answer) if answer.status == 200 => return Ok((server, client)),
            _ if started.elapsed() > args.start_timeout => {
                return Err(format!(
                    "/healthz did not answer within {:?}",
                    args.start_timeout
                ))
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn run(args: &Args) -> Result<bool, String> {
    let work = &args.work;
    let backing = work.join("backing");
    let mountpoint = work.join("mnt");
    for dir in [&backing, &mountpoint, &work.join("logs")] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let data = if args.mode == Mode::Plain {
        backing.join("as-data")
    } else {
        mountpoint.join("as-data")
    };
    let state_on_disk = backing.join("as-data").join("state");
    let mut rng = Rng::new(args.seed);
    let run_id = format!("{:x}", rng.below(0x1000));
    let ledger = Arc::new(Mutex::new(Ledger::new(&work.join("ledger.jsonl"), &run_id)));
    println!(
        "powerloss: {} cycles, mode {:?}, state damage every {} cycles ({:?}), seed {}, work folder {}",
        args.cycles,
        args.mode,
        args.damage_every,
        args.damages,
        args.seed,
        work.display()
    );
    let run_started = Instant::now();
    // The first start's keys (log note key and VRF key, as text) and trust anchors.
    let mut anchors: Option<((String, String), Anchors)> = None;
    let mut cycle_times = Vec::new();

    for boot_no in 1..=args.cycles + 1 {
        let cycle_started = Instant::now();
        let last = boot_no == args.cycles + 1;
        let mut mount = match args.mode {
            Mode::Plain => None,
            _ => Some(Mount::new(
                &args.lazy_fs,
                &args.lazy_fs_args,
                &backing,
                &mountpoint,
                work,
            )?),
        };
        let log = work.join("logs").join(format!("server-{boot_no:03}.log"));
        let restart = Instant::now();
        let (mut server, client) = match boot(args, &data, &log) {
            Ok(booted) => booted,
            Err(e) => {
                let mut ledger = ledger.lock().unwrap_or_else(|p| p.into_inner());
                ledger.counts.failed_restarts += 1;
                ledger.report(&format!(
                    "start {boot_no} failed: {e}\n--- as-server stderr ({}), last lines ---\n{}\n---",
                    log.display(),
                    tail(&log, 40)
                ));
                break;
            }
        };
        let restart_time = restart.elapsed();
        let (keys, anchors) = match &anchors {
            Some(known) => known.clone(),
            None => {
                let known = read_anchors(&data, work)?;
                anchors = Some(known.clone());
                known
            }
        };
        let ctx = Ctx {
            client,
            anchors,
            ledger: Arc::clone(&ledger),
        };
        if boot_no > 1 {
            checks::after_restart(
                &ctx,
                &keys.0,
                &keys.1,
                last || boot_no % 10 == 1,
                last,
                &mut rng,
            );
        }
        if last {
            let _ = server.proc.signal(Signal::SIGTERM);
            if server.proc.wait_exit(Duration::from_secs(15)).is_none() {
                server.proc.kill();
            }
            if let Some(mount) = mount.take() {
                mount.unmount()?;
            }
            break;
        }

        let before = {
            let mut l = ctx.ledger();
            l.cycle = boot_no;
            l.counts.cycles += 1;
            (
                l.counts.acknowledged_credentials,
                l.counts.acknowledged_enrollments,
                l.counts.unanswered,
            )
        };
        let load = Duration::from_millis(rng.between(args.load_ms.0, args.load_ms.1));
        let stop = AtomicBool::new(false);
        let crash = std::thread::scope(|scope| {
            for _ in 0..args.threads {
                let worker_rng = rng.fork();
                let (ctx, stop) = (&ctx, &stop);
                scope.spawn(move || workload::worker(ctx, worker_rng, stop));
            }
            std::thread::sleep(load);
            let crash = match (&mut mount, args.mode) {
                (Some(mount), Mode::Drop) => {
                    let stopped = server.proc.signal(Signal::SIGSTOP);
                    let dropped = stopped.and_then(|()| mount.lose_power());
                    server.proc.kill();
                    dropped
                }
                _ => {
                    server.proc.kill();
                    Ok("SIGKILL".to_owned())
                }
            };
            stop.store(true, Ordering::SeqCst);
            crash
        });
        let crash = crash?;
        if let Some(mut mount) = mount.take() {
            if args.mode == Mode::Kill {
                mount.sync_all()?;
            }
            mount.unmount()?;
        }
        let mut notes = vec![crash];
        let mut l = ctx.ledger();
        if args.mode == Mode::Drop {
            l.counts.power_losses += 1;
        }
        if args.damage_every > 0 && boot_no.is_multiple_of(args.damage_every) {
            let case = args.damages[(boot_no / args.damage_every - 1) % args.damages.len()];
            notes.push(damage(&state_on_disk, case, &mut rng)?);
            l.counts.damages += 1;
        }
        l.flush();
        let time = cycle_started.elapsed();
        cycle_times.push(time);
        println!(
            "cycle {boot_no}/{}: restart {:.2}s, load {:.1}s: +{} credentials, +{} enrollments, {} unanswered; {}; {:.1}s; failures so far {}",
            args.cycles,
            restart_time.as_secs_f64(),
            load.as_secs_f64(),
            l.counts.acknowledged_credentials - before.0,
            l.counts.acknowledged_enrollments - before.1,
            l.counts.unanswered - before.2,
            notes.join("; "),
            time.as_secs_f64(),
            l.counts.failures(),
        );
        let _ = std::io::stdout().flush();
    }

    let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
    l.flush();
    let c = &l.counts;
    let mean = if cycle_times.is_empty() {
        0.0
    } else {
        cycle_times.iter().map(Duration::as_secs_f64).sum::<f64>() / cycle_times.len() as f64
    };
    println!(
        "details: {} changes (versions), {} map entries, {} checkpoints, {} rotations, {} revocations acknowledged; {} verified lookups during load; {} identities and {} tokens checked after restarts; {} requests unanswered at crashes; {} bad answers; {} check errors; {:.1} s per cycle, {:.0} s in all",
        c.acknowledged_changes,
        c.acknowledged_map_entries,
        c.acknowledged_checkpoints,
        c.rotations,
        c.revocations,
        c.lookups,
        c.identities_checked,
        c.tokens_checked,
        c.unanswered,
        c.bad_answers,
        c.check_errors,
        mean,
        run_started.elapsed().as_secs_f64(),
    );
    let pass = c.failures() == 0;
    println!(
        "powerloss summary: cycles={} power_losses={} state_damages={} acknowledged_credentials={} acknowledged_enrollments={} lost_credentials={} lost_enrollments={} changed_entries={} inconsistent_checkpoints={} failed_restarts={} bad_answers={} check_errors={} result={}",
        c.cycles,
        c.power_losses,
        c.damages,
        c.acknowledged_credentials,
        c.acknowledged_enrollments,
        c.lost_credentials,
        c.lost_enrollments,
        c.changed_entries,
        c.inconsistent_checkpoints,
        c.failed_restarts,
        c.bad_answers,
        c.check_errors,
        if pass { "PASS" } else { "FAIL" },
    );
    Ok(pass)
}
