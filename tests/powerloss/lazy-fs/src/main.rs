//! `lazy-fs <backing-dir> <mountpoint>`: mounts a pass-through of `backing-dir` on `mountpoint`
//! whose file data reaches `backing-dir` only on `fsync`/`fdatasync` (see [`fs`]).
//!
//! Signals:
//! - `SIGUSR1`: power loss. Every unsynced write is dropped, every later change fails with
//!   `EIO`, and it prints `dropped <bytes> bytes in <files> files` once done.
//! - `SIGUSR2`: syncs everything unsynced, prints `synced <bytes> bytes in <files> files`.
//! - `SIGTERM`, `SIGINT`, `SIGHUP`: unmounts and exits (unsynced data is lost, as at a power
//!   loss). Unmounting from outside (`fusermount3 -u`, `umount`) ends it too.
//!
//! It prints `mounted <mountpoint>` once the file system answers. Lines go to stdout, flushed
//! at once; counters go to stderr at exit.
#![forbid(unsafe_code)]

mod fs;
mod unsynced;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use fuser::{Config, MountOption};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::Signals;

const USAGE: &str = "usage: lazy-fs [--no-backing-sync] [--threads N] [--ignore-fsync NAME]... <backing-dir> <mountpoint>

A FUSE pass-through file system that keeps written data in memory until the program fsyncs the
file. SIGUSR1 drops all unsynced data (a power loss; later changes fail with EIO), SIGUSR2 syncs
everything, SIGTERM unmounts and exits.

  --no-backing-sync  write synced data to the backing files without fsyncing them
  --threads N        FUSE worker threads (default 4)
  --ignore-fsync NAME  fsyncs of files whose path ends in NAME succeed without making
                     anything durable (a missing fsync: to check that a test catches it)";

struct Args {
    backing: PathBuf,
    mountpoint: PathBuf,
    sync_backing: bool,
    threads: usize,
    ignore_fsync: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut sync_backing = true;
    let mut threads = 4;
    let mut ignore_fsync = Vec::new();
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--no-backing-sync") => sync_backing = false,
            Some("--threads") => {
                threads = args
                    .next()
                    .and_then(|n| n.to_str()?.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or("--threads needs a positive number")?;
            }
            Some("--ignore-fsync") => ignore_fsync.push(
                args.next()
                    .and_then(|n| n.to_str().map(str::to_owned))
                    .ok_or("--ignore-fsync needs a name")?,
            ),
            Some("-h" | "--help") => return Err(String::new()),
            Some(flag) if flag.starts_with('-') => return Err(format!("unknown flag {flag}")),
            _ => positional.push(PathBuf::from(arg)),
        }
    }
    let [backing, mountpoint]: [PathBuf; 2] = positional
        .try_into()
        .map_err(|_| "expected <backing-dir> <mountpoint>".to_owned())?;
    Ok(Args {
        backing,
        mountpoint,
        sync_backing,
        threads,
        ignore_fsync,
    })
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ignored = writeln!(out, "{line}").and_then(|()| out.flush());
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("lazy-fs: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lazy-fs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    // Many files stay open (the server's, and one O_PATH descriptor per inode in use).
    if let Ok((_, hard)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    {
        let _best_effort =
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard);
    }
    // Before mounting: a signal sent right after `mounted` must not kill the process.
    let mut signals = Signals::new([SIGUSR1, SIGUSR2, SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| format!("signal handlers: {e}"))?;
    let lazy = Arc::new(
        fs::LazyFs::new(&args.backing, args.sync_backing, args.ignore_fsync.clone())
            .map_err(|e| format!("{}: {e}", args.backing.display()))?,
    );
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("lazy-fs".into()),
        MountOption::Subtype("lazy-fs".into()),
        MountOption::DefaultPermissions,
    ];
    config.n_threads = Some(args.threads);
    let session = fuser::spawn_mount(fs::Mounted(Arc::clone(&lazy)), &args.mountpoint, &config)
        .map_err(|e| format!("mount on {}: {e}", args.mountpoint.display()))?;
    say(&format!("mounted {}", args.mountpoint.display()));

    let mut unmount = false;
    while !unmount && !session.guard.is_finished() {
        for signal in signals.pending() {
            match signal {
                SIGUSR1 => {
                    let (bytes, files) = lazy.lose_power();
                    say(&format!("dropped {bytes} bytes in {files} files"));
                }
                SIGUSR2 => match lazy.sync_all() {
                    Ok((bytes, files)) => say(&format!("synced {bytes} bytes in {files} files")),
                    Err(e) => say(&format!("sync failed: {e}")),
                },
                _ => unmount = true,
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = &lazy.stats;
    eprintln!(
        "lazy-fs: {} writes ({} bytes), {} syncs ({} bytes made durable)",
        stats.writes.load(Ordering::Relaxed),
        stats.bytes_written.load(Ordering::Relaxed),
        stats.syncs.load(Ordering::Relaxed),
        stats.bytes_synced.load(Ordering::Relaxed),
    );
    let ended = if unmount {
        session.umount_and_join()
    } else {
        session.join()
    };
    ended.map_err(|e| format!("session: {e}"))
}
