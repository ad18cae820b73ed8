//! The layer itself, mounted for real: what is fsynced survives a power loss (SIGUSR1), what
//! is not is gone, and the running program always sees its own writes. Needs root and
//! /dev/fuse; skipped (with a message) without them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

struct Mounted {
    child: Child,
    lines: Receiver<String>,
    backing: PathBuf,
    mnt: PathBuf,
    _dir: tempfile::TempDir,
}

impl Mounted {
    /// Mounts a fresh backing folder, or `None` (test skipped) where FUSE is not available.
    fn new() -> Option<Mounted> {
        if !Path::new("/dev/fuse").exists() || !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root and /dev/fuse");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let backing = dir.path().join("backing");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&backing).unwrap();
        std::fs::create_dir(&mnt).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_lazy-fs"))
            .arg(&backing)
            .arg(&mnt)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut mounted = Mounted {
            child,
            lines,
            backing,
            mnt,
            _dir: dir,
        };
        match mounted.lines.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line.starts_with("mounted") => Some(mounted),
            other => {
                let _ = mounted.child.kill();
                eprintln!("skipped: lazy-fs did not mount ({other:?})");
                None
            }
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.mnt.join(name)
    }

    fn signal(&self, signal: Signal, expect: &str) -> String {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
        let line = self.lines.recv_timeout(Duration::from_secs(20)).unwrap();
        assert!(line.starts_with(expect), "{line}");
        line
    }

    /// SIGUSR1: returns the `dropped …` line.
    fn lose_power(&self) -> String {
        self.signal(Signal::SIGUSR1, "dropped")
    }

    /// What is on the "disk" (the backing folder).
    fn durable(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.backing.join(name)).ok()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        for _ in 0..200 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = self.child.kill();
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
    }
}

fn open_rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap()
}

#[test]
fn unsynced_writes_are_lost_and_synced_ones_kept() {
    let Some(fs) = Mounted::new() else { return };

    // Written, never synced: the program reads it back, the power loss takes it.
    let mut lost = File::create(fs.path("lost")).unwrap();
    lost.write_all(b"never synced").unwrap();
    drop(lost);
    assert_eq!(std::fs::read(fs.path("lost")).unwrap(), b"never synced");

    // fsync, fdatasync: kept; later writes to the same file are not.
    let synced = open_rw(&fs.path("synced"));
    synced.write_all_at(b"first version", 0).unwrap();
    synced.sync_all().unwrap();
    synced.write_all_at(b"FIRST", 0).unwrap();
    synced.write_all_at(b" and more", 13).unwrap();
    let mut seen = String::new();
    File::open(fs.path("synced"))
        .unwrap()
        .read_to_string(&mut seen)
        .unwrap();
    assert_eq!(seen, "FIRST version and more");

    let datasynced = open_rw(&fs.path("datasynced"));
    datasynced.write_all_at(b"gap", 10).unwrap();
    assert_eq!(
        std::fs::read(fs.path("datasynced")).unwrap(),
        b"\0\0\0\0\0\0\0\0\0\0gap"
    );
    datasynced.sync_data().unwrap();

    // An fsync through another handle (as `File::open(path)?.sync_all()` does) counts too.
    let other = open_rw(&fs.path("other-handle"));
    other.write_all_at(b"via another handle", 0).unwrap();
    File::open(fs.path("other-handle"))
        .unwrap()
        .sync_all()
        .unwrap();

    // A truncation is data too: not synced, not durable.
    let cut = open_rw(&fs.path("cut"));
    cut.write_all_at(b"0123456789", 0).unwrap();
    cut.sync_all().unwrap();
    cut.set_len(3).unwrap();
    cut.write_all_at(b"x", 5).unwrap();
    assert_eq!(std::fs::read(fs.path("cut")).unwrap(), b"012\0\0x");

    // O_APPEND appends, and its synced bytes are kept.
    let mut log = OpenOptions::new()
        .append(true)
        .create(true)
        .open(fs.path("append"))
        .unwrap();
    log.write_all(b"one,").unwrap();
    log.write_all(b"two").unwrap();
    log.sync_all().unwrap();
    log.write_all(b",three").unwrap();

    // Metadata passes through at once: a synced file renamed into place is there.
    let tmp = fs.path("tmp");
    std::fs::write(&tmp, b"atomic").unwrap();
    File::open(&tmp).unwrap().sync_all().unwrap();
    std::fs::rename(&tmp, fs.path("renamed")).unwrap();
    File::open(&fs.mnt).unwrap().sync_all().unwrap();
    std::fs::create_dir(fs.path("dir")).unwrap();
    std::fs::write(fs.path("dir/inner"), b"unsynced").unwrap();

    let line = fs.lose_power();
    assert!(line.contains("files"), "{line}");

    assert_eq!(fs.durable("lost").unwrap(), b"");
    assert_eq!(fs.durable("synced").unwrap(), b"first version");
    assert_eq!(
        fs.durable("datasynced").unwrap(),
        b"\0\0\0\0\0\0\0\0\0\0gap"
    );
    assert_eq!(fs.durable("other-handle").unwrap(), b"via another handle");
    assert_eq!(fs.durable("cut").unwrap(), b"0123456789");
    assert_eq!(fs.durable("append").unwrap(), b"one,two");
    assert_eq!(fs.durable("renamed").unwrap(), b"atomic");
    assert!(fs.durable("tmp").is_none());
    assert_eq!(fs.durable("dir/inner").unwrap(), b"");
    // The mount shows the durable state too, and the machine is off: no more changes.
    assert_eq!(std::fs::read(fs.path("cut")).unwrap(), b"0123456789");
    let refused = synced.write_all_at(b"late", 0).unwrap_err();
    assert_eq!(refused.raw_os_error(), Some(nix::libc::EIO));
    assert!(File::create(fs.path("new-after-loss")).is_err());
}

#[test]
fn close_and_sync_file_range_are_not_durability() {
    let Some(fs) = Mounted::new() else { return };
    // close(2) is FUSE's flush: not durable.
    std::fs::write(fs.path("closed"), b"closed, never synced").unwrap();
    // sync_file_range(2) (what sled's flush uses on Linux) never reaches FUSE. std and nix do
    // not offer it (and this crate has no `unsafe`): Python calls it through ctypes.
    let python = Command::new("python3")
        .arg("-c")
        .arg(
            "import ctypes,os,sys; fd=os.open(sys.argv[1], os.O_CREAT|os.O_RDWR, 0o644); \
             os.write(fd, b'ranged'); libc=ctypes.CDLL(None, use_errno=True); \
             f=libc.sync_file_range; \
             f.argtypes=[ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]; \
             sys.exit(0 if f(fd, 0, 0, 7) == 0 else 1)",
        )
        .arg(fs.path("ranged"))
        .status();
    let ranged = matches!(python, Ok(status) if status.success());
    if !ranged {
        eprintln!("sync_file_range case skipped: python3 could not call it");
    }
    fs.lose_power();
    assert_eq!(fs.durable("closed").unwrap(), b"");
    if ranged {
        assert_eq!(fs.durable("ranged").unwrap(), b"");
    }
}

#[test]
fn sigusr2_syncs_everything_and_o_dsync_writes_are_durable() {
    let Some(fs) = Mounted::new() else { return };
    let dsync = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(nix::libc::O_DSYNC)
        .open(fs.path("dsync"))
        .unwrap();
    dsync.write_all_at(b"durable at once", 0).unwrap();
    std::fs::write(fs.path("later"), b"synced by SIGUSR2").unwrap();
    let line = fs.signal(Signal::SIGUSR2, "synced");
    assert!(line.contains("bytes"), "{line}");
    std::fs::write(fs.path("after"), b"not synced").unwrap();
    fs.lose_power();
    assert_eq!(fs.durable("dsync").unwrap(), b"durable at once");
    assert_eq!(fs.durable("later").unwrap(), b"synced by SIGUSR2");
    assert_eq!(fs.durable("after").unwrap(), b"");
}

#[test]
fn many_files_grow_and_shrink_under_concurrent_writers() {
    let Some(fs) = Mounted::new() else { return };
    let mnt = fs.mnt.clone();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let mnt = mnt.clone();
            std::thread::spawn(move || {
                let mut expected = Vec::new();
                for i in 0..50usize {
                    let path = mnt.join(format!("f{t}-{i}"));
                    let file = open_rw(&path);
                    let data: Vec<u8> = (0..(i * 97 + 1)).map(|b| (b * 7 + t) as u8).collect();
                    file.write_all_at(&data, (i * 13) as u64).unwrap();
                    file.set_len((i * 13 + data.len() / 2) as u64).unwrap();
                    let mut content = vec![0u8; i * 13];
                    content.extend_from_slice(&data[..data.len() / 2]);
                    assert_eq!(std::fs::read(&path).unwrap(), content);
                    if i % 2 == 0 {
                        file.sync_data().unwrap();
                        expected.push((path, content));
                    } else {
                        expected.push((path, Vec::new()));
                    }
                }
                expected
            })
        })
        .collect();
    let expected: Vec<_> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    fs.lose_power();
    for (path, content) in expected {
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(fs.durable(name).unwrap(), content, "{name}");
    }
}
