//! Storage faults (issue 14): the data folder on a small tmpfs, loaded until the disk is full.
//! Writes then answer `503 storage-unavailable` with `Retry-After` and change nothing, reads
//! keep answering, and every acknowledged credential keeps its proof; once the file system is
//! grown, the same process takes writes again by itself, with everything acknowledged still
//! there and every refused token still unused. And a read-only file system (ext4 on a loop
//! device, turned read-only by an error as `errors=remount-ro` does): 503, reads served, and
//! nothing acknowledged lost.
//!
//! Mounting needs root. Without it, or where mounting is refused (a container without
//! CAP_SYS_ADMIN or loop devices), each test prints why it cannot run and passes, unless
//! `KT_REQUIRE_MOUNT_TESTS=1` makes that a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use as_server::admin_client::Answer;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::{assert_problem, Server};
use ed25519_dalek::SigningKey;
use kt_log::checkpoint::VerifiedCheckpoint;
use kt_log::Hash;
use serde_json::json;
use test_support::requests::new_key;
use test_support::schemas::Schemas;

/// Says why a test cannot run; a failure if `KT_REQUIRE_MOUNT_TESTS=1`.
fn cannot_run(why: &str) {
    if std::env::var("KT_REQUIRE_MOUNT_TESTS").is_ok_and(|v| v == "1") {
        panic!("KT_REQUIRE_MOUNT_TESTS=1, and {why}");
    }
    eprintln!("storage_faults: not run: {why} (KT_REQUIRE_MOUNT_TESTS=1 makes this a failure)");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?.to_owned();
            Some(line.split_whitespace().nth(1)? == "0")
        })
        .unwrap_or(false)
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// A file system mounted on a folder, unmounted when dropped (also when a test panics).
struct Mount {
    point: PathBuf,
}

impl Mount {
    /// A tmpfs of `size` (`mount -o size=` syntax) on `point`.
    fn tmpfs(point: &Path, size: &str) -> Result<Mount, String> {
        std::fs::create_dir_all(point).unwrap();
        let options = format!("size={size},mode=0700");
        let point_str = point.to_str().unwrap();
        run(
            "mount",
            &["-t", "tmpfs", "-o", &options, "tmpfs", point_str],
        )?;
        Ok(Mount {
            point: point.to_path_buf(),
        })
    }

    /// A new ext4 file system in `image` on `point` ([`Mount::ext4_existing`]).
    fn ext4(image: &Path, point: &Path) -> Result<Mount, String> {
        run("mkfs.ext4", &["-q", "-F", image.to_str().unwrap()])?;
        Mount::ext4_existing(image, point)
    }

    /// The ext4 file system in `image` on `point`, through a loop device, turned read-only by
    /// an error.
    fn ext4_existing(image: &Path, point: &Path) -> Result<Mount, String> {
        std::fs::create_dir_all(point).unwrap();
        let image_str = image.to_str().unwrap();
        let point_str = point.to_str().unwrap();
        run(
            "mount",
            &["-o", "loop,errors=remount-ro", image_str, point_str],
        )?;
        Ok(Mount {
            point: point.to_path_buf(),
        })
    }

    /// Changes the tmpfs's size.
    fn resize(&self, size: &str) {
        let options = format!("remount,size={size}");
        run("mount", &["-o", &options, self.point.to_str().unwrap()]).unwrap();
    }

    /// The block device it is mounted from (`/dev/loop3`).
    fn device(&self) -> String {
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
        let point = self.point.to_str().unwrap();
        mounts
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(point))
            .and_then(|l| l.split_whitespace().next())
            .unwrap()
            .to_owned()
    }

    /// Fills what is left of it with a file.
    fn fill(&self) {
        let mut file = std::fs::File::create(self.point.join("filler")).unwrap();
        let chunk = vec![0x5a; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let small = vec![0x5a; 512];
        while file.write_all(&small).is_ok() {}
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let point = self.point.to_str().unwrap_or_default();
        if run("umount", &[point]).is_err() {
            let _ = run("umount", &["-l", point]);
        }
    }
}

/// A credential the server acknowledged.
struct Acknowledged {
    identity: String,
    serial: String,
    key: SigningKey,
}

/// A request refused 503: its identity and token, and whether the server said the change is
/// in the log anyway.
struct Refused {
    identity: String,
    token: String,
    logged: bool,
}

/// Asserts a `storage-unavailable` answer: 503, the problem document (schema), `Retry-After`
/// of 1 to 5 seconds.
fn assert_storage_unavailable(answer: &Answer, schemas: &Schemas) {
    assert_problem(answer, 503, "storage-unavailable", schemas);
    let wait: u64 = answer
        .retry_after
        .as_deref()
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=5).contains(&wait), "Retry-After {wait}");
}

/// Whether `answer` says the refused change is in the log anyway.
fn says_logged(answer: &Answer) -> bool {
    answer.json()["detail"]
        .as_str()
        .is_some_and(|d| d.contains("is in the log"))
}

/// Issues a credential to each of `identities` (with their `tokens`) from `threads` clients;
/// returns what was acknowledged and what was refused 503. Any other answer fails the test.
fn issue_all(
    server: &Arc<Server>,
    identities: Vec<(String, String)>,
    threads: usize,
    schemas: &Arc<Schemas>,
) -> (Vec<Acknowledged>, Vec<Refused>) {
    let work = Arc::new(Mutex::new(identities));
    let results = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (server, work, results, schemas) = (
                Arc::clone(server),
                Arc::clone(&work),
                Arc::clone(&results),
                Arc::clone(schemas),
            );
            std::thread::spawn(move || loop {
                let Some((identity, token)) = work.lock().unwrap().pop() else {
                    return;
                };
                let key = new_key();
                let answer = server.issue(&identity, &token, &key);
                if answer.status == 201 {
                    let serial = answer.json()["serial"].as_str().unwrap().to_owned();
                    results.lock().unwrap().0.push(Acknowledged {
                        identity,
                        serial,
                        key,
                    });
                } else {
                    assert_storage_unavailable(&answer, &schemas);
                    let logged = says_logged(&answer);
                    results.lock().unwrap().1.push(Refused {
                        identity,
                        token,
                        logged,
                    });
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let results = std::mem::take(&mut *results.lock().unwrap());
    results
}

/// Looks every acknowledged credential up and checks its proof (kt-verify) shows it, from 4
/// clients.
fn assert_all_served(server: &Server, acknowledged: &[Acknowledged]) {
    let chunk = acknowledged.len().div_ceil(4).max(1);
    std::thread::scope(|scope| {
        for part in acknowledged.chunks(chunk) {
            scope.spawn(move || {
                for credential in part {
                    let verified = server.lookup(&credential.identity);
                    let state = verified.state.expect("a state");
                    assert!(
                        state.record.credentials.iter().any(|c| {
                            c.serial.to_hex() == credential.serial
                                && c.public_key == credential.key.verifying_key().to_bytes()
                        }),
                        "{} lost {}",
                        credential.identity,
                        credential.serial
                    );
                }
            });
        }
    });
}

/// The reads that need no write: checkpoint, an entry, a hash tile, the CRL, the CA.
fn assert_reads_answer(server: &Server) -> VerifiedCheckpoint {
    let checkpoint = server.checkpoint();
    assert_eq!(server.get("/v1/log/entries/0").status, 200);
    let width = checkpoint.size().min(256);
    let tile = if width == 256 {
        "/log/tile/0/000".to_owned()
    } else {
        format!("/log/tile/0/000.p/{width}")
    };
    let tile = server.get(&tile);
    assert_eq!((tile.status, tile.body.len() as u64), (200, 32 * width));
    let crl = server.get("/v1/crl");
    assert_eq!(
        (crl.status, crl.content_type.as_str()),
        (200, "application/pkix-crl")
    );
    assert_eq!(server.get("/v1/ca").status, 200);
    checkpoint
}

/// Checks that `after` extends `before` (a consistency proof from the server).
fn assert_extends(server: &Server, before: &VerifiedCheckpoint, after: &VerifiedCheckpoint) {
    let answer = server.get(&format!(
        "/v1/log/proof/consistency?from={}&to={}",
        before.size(),
        after.size()
    ));
    let proof: Vec<Hash> = answer.json()["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_slice(&B64.decode(h.as_str().unwrap()).unwrap()).unwrap())
        .collect();
    before.verify_extended_by(after, &proof).unwrap();
}

fn storage_unavailable_gauge(server: &Server) -> String {
    let metrics = String::from_utf8(server.get("/metrics").body).unwrap();
    metrics
        .lines()
        .find(|l| l.starts_with("as_storage_unavailable "))
        .expect("the gauge")
        .to_owned()
}

/// Every write refused 503 `storage-unavailable`: issuance (`spare` holds an unused token),
/// enrollment, rotation and revocation of `credential`.
fn assert_writes_refused(
    server: &Server,
    spare: &Refused,
    credential: &Acknowledged,
    schemas: &Schemas,
) {
    let issued = server.issue(&spare.identity, &spare.token, &new_key());
    assert_storage_unavailable(&issued, schemas);
    let names: Vec<String> = (0..100).map(|i| format!("late{i}@example.com")).collect();
    let enrolled = server.admin_post("/v1/admin/enrollments", &json!({ "identities": names }));
    assert_storage_unavailable(&enrolled, schemas);
    let rotated = server.rotate(
        &credential.identity,
        &credential.serial,
        &credential.key,
        &new_key(),
    );
    assert_storage_unavailable(&rotated, schemas);
    let revoked = server.admin_post(
        &format!("/v1/admin/credentials/{}/revoke", credential.serial),
        &json!({}),
    );
    assert_storage_unavailable(&revoked, schemas);
}

#[test]
fn a_full_disk_answers_503_keeps_reads_and_recovers_without_a_restart() {
    if !is_root() {
        return cannot_run("mounting a tmpfs needs root");
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mount = match Mount::tmpfs(&dir.path().join("disk"), "1536k") {
        Ok(mount) => mount,
        Err(e) => return cannot_run(&format!("mounting a tmpfs failed: {e}")),
    };
    let server = Arc::new(Server::start_in(&mount.point.join("data"), None, &[]));
    let schemas = Arc::new(Schemas::load());

    // Load until writes fail: enroll 100 identities at a time, issue to each from 4 clients.
    let mut acknowledged = Vec::new();
    let mut refused: Vec<Refused> = Vec::new();
    for round in 0.. {
        let names: Vec<String> = (0..100)
            .map(|i| format!("user{round}-{i}@example.com"))
            .collect();
        let enrolled = server.admin_post("/v1/admin/enrollments", &json!({ "identities": names }));
        if enrolled.status != 201 {
            assert_storage_unavailable(&enrolled, &schemas);
            break;
        }
        let tokens = enrolled.json()["enrollments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["token"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>();
        let (ok, failed) = issue_all(
            &server,
            names.into_iter().zip(tokens).collect(),
            4,
            &schemas,
        );
        acknowledged.extend(ok);
        refused.extend(failed);
        if !refused.is_empty() {
            break;
        }
        assert!(round < 100, "the disk never filled");
    }
    eprintln!(
        "full after {} credentials, {} refused ({} of them logged), {:?}",
        acknowledged.len(),
        refused.len(),
        refused.iter().filter(|r| r.logged).count(),
        started.elapsed()
    );
    assert!(!acknowledged.is_empty());
    // Whatever room is left goes too, so that every write fails from now on.
    mount.fill();
    let spare = match refused.iter().find(|r| !r.logged) {
        Some(spare) => spare,
        // Every refused request was logged anyway: none can show that a token stays unused.
        None => panic!("no refusal before the log: {} logged", refused.len()),
    };
    assert_writes_refused(&server, spare, &acknowledged[0], &schemas);
    assert_eq!(
        storage_unavailable_gauge(&server),
        "as_storage_unavailable 1"
    );

    // Reads keep answering from what is durable.
    let during = assert_reads_answer(&server);
    let t = Instant::now();
    assert_all_served(&server, &acknowledged);
    eprintln!("all served in {:?}", t.elapsed());

    // The disk grows: the same process takes writes again, by itself.
    mount.resize("64m");
    let deadline = Instant::now() + Duration::from_secs(30);
    let recovered = loop {
        let answer = server.issue(&spare.identity, &spare.token, &new_key());
        if answer.status == 201 {
            break answer;
        }
        assert_storage_unavailable(&answer, &schemas);
        assert!(Instant::now() < deadline, "writes never came back");
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("writes taken again after {:?}", started.elapsed());
    assert_eq!(
        storage_unavailable_gauge(&server),
        "as_storage_unavailable 0"
    );
    let verified = server.verify_directory(&recovered.json()["directory"]);
    assert_eq!(verified.identity, spare.identity);

    // Everything acknowledged is still there, the log extends what it showed during the
    // fault, and a refusal before the log left nothing behind: its token is unused.
    let after = assert_reads_answer(&server);
    assert_extends(&server, &during, &after);
    assert_all_served(&server, &acknowledged);
    let mut reissued = 0;
    for other in refused.iter().filter(|r| r.identity != spare.identity) {
        let lookup = server.get(&format!("/v1/identities/{}", other.identity));
        assert_eq!(lookup.status, 200);
        if other.logged {
            let credentials = &lookup.json()["state"]["record"]["credentials"];
            assert_eq!(
                credentials.as_array().map(Vec::len),
                Some(1),
                "{}",
                other.identity
            );
        } else {
            assert!(
                lookup.json()["state"].is_null(),
                "{} changed",
                other.identity
            );
            if reissued < 10 {
                let again = server.issue(&other.identity, &other.token, &new_key());
                assert_eq!(
                    again.status,
                    201,
                    "{}",
                    String::from_utf8_lossy(&again.body)
                );
                reissued += 1;
            }
        }
    }
    // Every kind of write works again.
    server.enroll(&["after@example.com"]);
    let credential = &acknowledged[0];
    let rotated = server.rotate(
        &credential.identity,
        &credential.serial,
        &credential.key,
        &new_key(),
    );
    assert_eq!(
        rotated.status,
        201,
        "{}",
        String::from_utf8_lossy(&rotated.body)
    );
    let other = &acknowledged[acknowledged.len() - 1];
    let revoked = server.admin_post(
        &format!("/v1/admin/credentials/{}/revoke", other.serial),
        &json!({}),
    );
    assert_eq!(
        revoked.status,
        200,
        "{}",
        String::from_utf8_lossy(&revoked.body)
    );
    eprintln!("done after {:?}", started.elapsed());
    drop(server);
    drop(mount);
}

#[test]
fn a_read_only_disk_answers_503_keeps_reads_and_loses_nothing() {
    if !is_root() {
        return cannot_run("mounting a loop device needs root");
    }
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("ext4.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let mount = match Mount::ext4(&image, &dir.path().join("disk")) {
        Ok(mount) => mount,
        Err(e) => return cannot_run(&format!("mounting ext4 on a loop device failed: {e}")),
    };
    let data = mount.point.join("data");
    let server = Arc::new(Server::start_in(&data, None, &[]));
    let admin = server.admin_token.clone();
    let schemas = Arc::new(Schemas::load());
    let names: Vec<String> = (0..24).map(|i| format!("ro{i}@example.com")).collect();
    let as_str: Vec<&str> = names.iter().map(String::as_str).collect();
    let tokens = server.enroll(&as_str);
    let mut work: Vec<(String, String)> = names.into_iter().zip(tokens).collect();
    let spare = work.pop().unwrap();
    let (acknowledged, refused) = issue_all(&server, work, 4, &schemas);
    assert!(refused.is_empty());

    // ext4's reaction to an error with errors=remount-ro: the file system turns read-only
    // under the running server (a plain `mount -o remount,ro` is refused while files are
    // open for writing).
    let device = mount.device();
    let name = device.trim_start_matches("/dev/");
    let trigger = format!("/sys/fs/ext4/{name}/trigger_fs_error");
    if let Err(e) = std::fs::write(&trigger, "1") {
        return cannot_run(&format!("{trigger}: {e}"));
    }
    let spare = Refused {
        identity: spare.0,
        token: spare.1,
        logged: false,
    };
    // The first write may still pass (nothing written yet notices); then all are refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = server.issue(&spare.identity, &spare.token, &new_key());
        assert_ne!(answer.status, 201, "a write on a read-only disk");
        if answer.status == 503 {
            assert_storage_unavailable(&answer, &schemas);
            assert!(
                answer.json()["detail"]
                    .as_str()
                    .unwrap()
                    .contains("read-only"),
                "{}",
                String::from_utf8_lossy(&answer.body)
            );
            break;
        }
        assert!(Instant::now() < deadline);
    }
    assert_writes_refused(&server, &spare, &acknowledged[0], &schemas);
    assert_reads_answer(&server);
    assert_all_served(&server, &acknowledged);
    let during = server.checkpoint();

    // An emergency read-only ext4 cannot be made writable again while it is mounted (its
    // journal is aborted): the operator stops the server, checks the file system and starts
    // it again. Everything acknowledged is there, and the refused token is unused.
    drop(server);
    drop(mount);
    let _ = run("e2fsck", &["-f", "-y", image.to_str().unwrap()]);
    let mount = Mount::ext4_existing(&image, &dir.path().join("disk")).unwrap();
    let server = Server::start_in(&mount.point.join("data"), Some(admin), &[]);
    let after = server.checkpoint();
    assert_extends(&server, &during, &after);
    assert_all_served(&server, &acknowledged);
    let issued = server.issue(&spare.identity, &spare.token, &new_key());
    assert_eq!(
        issued.status,
        201,
        "{}",
        String::from_utf8_lossy(&issued.body)
    );
    drop(server);
    drop(mount);
}
