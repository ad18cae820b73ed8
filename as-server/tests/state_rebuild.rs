//! The state store is a cache: whatever happened to it while the server was down (damaged,
//! emptied, removed, or taken from another server), the server starts by itself, rebuilds it
//! from the log and the enrollment journal, and loses nothing: every credential is still
//! served, used tokens stay used, and tokens not yet used still work.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::Server;
use test_support::requests::new_key;

/// What is done to `state/` while the server is down.
#[derive(Clone, Copy, Debug)]
enum Damage {
    /// Garbage over the first 4 KB of every file in it.
    Garbage,
    /// Every file in it cut to zero bytes.
    Truncated,
    /// The folder removed.
    Removed,
    /// Replaced by the state of another server (a store that disagrees with this log).
    Foreign,
    /// Intact, but the enrollment journal ends in a torn record.
    TornJournal,
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn damage(data: &Path, damage: Damage, foreign: &Path) {
    let state = data.join("state");
    match damage {
        Damage::Garbage => {
            for file in files_under(&state) {
                let len = std::fs::metadata(&file).unwrap().len().max(4096);
                let mut bytes = std::fs::read(&file).unwrap();
                bytes.resize(len as usize, 0);
                for (i, b) in bytes.iter_mut().take(4096).enumerate() {
                    *b = (i as u8).wrapping_mul(151).wrapping_add(7);
                }
                std::fs::write(&file, bytes).unwrap();
            }
        }
        Damage::Truncated => {
            for file in files_under(&state) {
                std::fs::File::create(&file).unwrap();
            }
        }
        Damage::Removed => std::fs::remove_dir_all(&state).unwrap(),
        Damage::Foreign => {
            std::fs::remove_dir_all(&state).unwrap();
            std::fs::create_dir(&state).unwrap();
            for file in files_under(foreign) {
                let to = state.join(file.strip_prefix(foreign).unwrap());
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                std::fs::copy(&file, to).unwrap();
            }
        }
        Damage::TornJournal => {
            use std::io::Write as _;
            let mut journal = std::fs::OpenOptions::new()
                .append(true)
                .open(data.join("enrollments"))
                .unwrap();
            journal.write_all(&[0, 0, 0, 90, 1, 2, 3]).unwrap();
        }
    }
}

/// The state folder of a server that issued a few credentials of its own.
fn foreign_state(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("foreign");
    let mut server = Server::start_in(&data, None, &[]);
    for identity in ["x@example.com", "y@example.com", "z@example.com"] {
        let token = server.enroll(&[identity]).remove(0);
        assert_eq!(server.issue(identity, &token, &new_key()).status, 201);
    }
    server.kill();
    data.join("state")
}

#[test]
fn a_damaged_lost_or_foreign_state_store_is_rebuilt_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = foreign_state(dir.path());
    for (n, case) in [
        Damage::Garbage,
        Damage::Truncated,
        Damage::Removed,
        Damage::Foreign,
        Damage::TornJournal,
    ]
    .into_iter()
    .enumerate()
    {
        let data = dir.path().join(format!("data{n}"));
        let mut server = Server::start_in(&data, None, &[]);
        let admin = server.admin_token.clone();
        let identities = [
            "a@example.com",
            "b@example.com",
            "c@example.com",
            "d@example.com",
        ];
        let tokens = server.enroll(&identities);
        let first = server.issue(identities[0], &tokens[0], &new_key()).json();
        let second = server.issue(identities[1], &tokens[1], &new_key()).json();
        // A revocation, so that the rebuilt store must also reproduce a CRL entry and an epoch.
        let revoked = server.admin_post(
            &format!(
                "/v1/admin/credentials/{}/revoke",
                second["serial"].as_str().unwrap()
            ),
            &serde_json::json!({}),
        );
        assert_eq!(revoked.status, 200, "{case:?}");
        // Enrolled after the last log entry: only the journal knows these.
        let late = server.enroll(&["e@example.com"]);
        server.kill();

        damage(&data, case, &foreign);
        let server = Server::start_in(&data, Some(admin), &[]);
        let kept_aside = std::fs::read_dir(&data)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().starts_with("state.broken-")
            })
            .count();
        match case {
            // sled cannot read its files, or holds another log's state: moved aside.
            Damage::Garbage | Damage::Foreign => assert_eq!(kept_aside, 1, "{case:?}"),
            // Nothing to keep, or nothing wrong with it.
            Damage::Truncated | Damage::Removed | Damage::TornJournal => {
                assert_eq!(kept_aside, 0, "{case:?}")
            }
        }

        assert_eq!(
            server.current_serials("a@example.com"),
            [first["serial"].as_str().unwrap()],
            "{case:?}"
        );
        assert!(
            server.current_serials("b@example.com").is_empty(),
            "{case:?}"
        );
        let crl = server.get("/v1/crl");
        assert_eq!(crl.status, 200);
        let serial = hex_bytes(second["serial"].as_str().unwrap());
        assert!(
            crl.body.windows(serial.len()).any(|w| w == serial),
            "{case:?}: the CRL lists the revoked credential"
        );
        // Used tokens stay used; the others, logged before the crash or not, still work.
        assert_eq!(
            server.issue(identities[0], &tokens[0], &new_key()).status,
            409,
            "{case:?}"
        );
        assert_eq!(
            server.issue(identities[2], &tokens[2], &new_key()).status,
            201,
            "{case:?}"
        );
        assert_eq!(
            server.issue(identities[3], &tokens[3], &new_key()).status,
            201,
            "{case:?}"
        );
        assert_eq!(
            server.issue("e@example.com", &late[0], &new_key()).status,
            201,
            "{case:?}"
        );
        // A foreign store's identities are not this server's.
        assert!(server.lookup("x@example.com").state.is_none(), "{case:?}");
    }
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}
