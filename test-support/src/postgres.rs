//! A PostgreSQL database for a test: the server at `KT_TEST_POSTGRES_URL` if that is set,
//! otherwise a throw-away cluster that `scripts/pg-cluster` installs (Debian's `postgresql`
//! package, if missing), creates and starts once per test process.
//!
//! **Nothing is left running.** The cluster lives in a fresh folder under the temporary
//! directory and is started with `--owner-pid <this process>`: the script leaves a detached
//! watcher that stops the server and removes the folder as soon as this process is gone,
//! however it ends (all tests passed, a panic, `exit`, SIGKILL). A `static` is never dropped
//! in Rust and a test harness may exit without running destructors, so the watcher, not a
//! `Drop`, is what stops the cluster; it needs no cooperation from the test process.
//!
//! **Parallel tests.** [`test_database`] creates a database of its own (`CREATE DATABASE`
//! with a unique name) for each call, so tests running in parallel never share tables. On a
//! server given by `KT_TEST_POSTGRES_URL` the database is dropped when the [`TestDatabase`]
//! is; a cluster of our own is removed whole.
//!
//! **Never skipped.** If PostgreSQL cannot be installed, started or reached, the test panics
//! with the reason (the script's error output).

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable naming an existing server to use instead of a cluster of our own
/// (any libpq-style URL, `postgresql://user@host:port/db` or `…?host=/socket/dir`; the
/// database in it is where the tests' databases are created from).
pub const URL_VARIABLE: &str = "KT_TEST_POSTGRES_URL";

/// The server this test process uses, found or started once.
struct Server {
    /// Connection URL of a database to run `CREATE DATABASE` in.
    url: String,
    /// Whether the server was given from outside (its databases are dropped after use).
    external: bool,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh, empty database of its own for one test.
pub struct TestDatabase {
    /// Its connection URL.
    pub url: String,
    /// Its name.
    pub name: String,
    /// Where to drop it from when this is dropped (a server given from outside only).
    drop_through: Option<String>,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(admin) = &self.drop_through {
            // Best effort: a database left behind on an outside server is only clutter.
            let _ = script().arg("dropdb").arg(admin).arg(&self.name).output();
        }
    }
}

/// The path of `scripts/pg-cluster` in this workspace.
pub fn script_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scripts")
        .join("pg-cluster")
}

fn script() -> Command {
    let mut command = Command::new("bash");
    command.arg(script_path());
    command
}

fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn start_server() -> Result<Server, String> {
    if let Some(url) = std::env::var(URL_VARIABLE).ok().filter(|u| !u.is_empty()) {
        return Ok(Server {
            url,
            external: true,
        });
    }
    let dir = std::env::temp_dir().join(format!("kt-pg-{}", unique_suffix()));
    Ok(Server {
        url: start_cluster(&dir, true, None)?,
        external: false,
    })
}

/// Starts (creates or restarts) the cluster in `dir` with `scripts/pg-cluster` and returns the
/// URL it prints; `watched`: with a watcher that removes it when this process exits.
fn start_cluster(
    dir: &std::path::Path,
    watched: bool,
    tls: Option<&std::path::Path>,
) -> Result<String, String> {
    let mut command = script();
    command.arg("start").arg(dir);
    if let Some(certificates) = tls {
        command.arg("--tls").arg(certificates);
    }
    if watched {
        command
            .arg("--owner-pid")
            .arg(std::process::id().to_string());
    }
    let output = command
        .output()
        .map_err(|e| format!("could not run {}: {e}", script_path().display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "{} start {} failed ({}): {}",
            script_path().display(),
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    stdout
        .lines()
        .last()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| format!("pg-cluster start printed no URL (stdout: {stdout:?})"))
}

/// A cluster of one test's own, which the test may stop and start again: for what a client
/// does while its database is unreachable, and after it restarted. Like the shared cluster it
/// is removed when the test process exits, however it exits.
pub struct OwnCluster {
    dir: PathBuf,
    /// Connection URL of its `postgres` database.
    pub url: String,
}

impl OwnCluster {
    /// Creates and starts a cluster of its own (panics with the reason if it cannot).
    pub fn start() -> OwnCluster {
        Self::start_with(None)
    }

    /// [`start`](Self::start), with TLS on a loopback TCP port too, serving `tls`'s
    /// certificate; [`url`](Self::url) is then `postgresql://kt@localhost:PORT/postgres`.
    pub fn start_tls(tls: &TlsFiles) -> OwnCluster {
        Self::start_with(Some(tls.dir.path()))
    }

    fn start_with(tls: Option<&std::path::Path>) -> OwnCluster {
        let dir = std::env::temp_dir().join(format!("kt-pg-own-{}", unique_suffix()));
        match start_cluster(&dir, true, tls) {
            Ok(url) => OwnCluster { dir, url },
            Err(reason) => panic!("no PostgreSQL for this test: {reason}"),
        }
    }

    /// Stops the server (a fast shutdown: connections are closed, committed data is kept).
    pub fn stop(&self) {
        let output = script()
            .arg("stop")
            .arg(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("could not run {}: {e}", script_path().display()));
        assert!(
            output.status.success(),
            "pg-cluster stop failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }

    /// SIGKILLs the server and its backends, as a crash or power loss would end them: no
    /// shutdown checkpoint, so the next start recovers from the WAL. Returns once they are
    /// gone.
    pub fn kill(&self) {
        let pid_file = self.dir.join("data").join("postmaster.pid");
        let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|text| text.lines().next()?.trim().parse::<u32>().ok())
        else {
            panic!("no running cluster at {}", self.dir.display());
        };
        // The backends first noted, then the postmaster killed before them, so that it cannot
        // notice a backend's death and start new ones.
        let children: Vec<u32> = Command::new("pgrep")
            .args(["-P", &pid.to_string()])
            .output()
            .map(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        crate::signal("KILL", &[pid]);
        crate::signal("KILL", &children);
        // A zombie (killed, not reaped yet) is dead too.
        let alive = |pid: &u32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().next())
                    .is_some_and(|state| state != "Z")
            })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while alive(&pid) || children.iter().any(&alive) {
            assert!(
                std::time::Instant::now() < deadline,
                "PostgreSQL did not die"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // Its lock files name a dead process, which may be a zombie not reaped yet: pg_ctl and
        // PostgreSQL would take that for a running server and not start.
        let _ = std::fs::remove_file(&pid_file);
        if let Ok(entries) = std::fs::read_dir(self.dir.join("socket")) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().ends_with(".lock") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }

    /// Starts the stopped server again, on the same data and socket.
    pub fn start_again(&self) {
        let url = start_cluster(&self.dir, false, None)
            .unwrap_or_else(|reason| panic!("restarting PostgreSQL failed: {reason}"));
        assert_eq!(url, self.url, "the cluster came back at another URL");
    }
}

/// A test CA and a certificate it issued to `localhost` (and 127.0.0.1), for a
/// TLS-enabled cluster ([`OwnCluster::start_tls`]): `server.crt` and `server.key` in a folder
/// of their own, and the CA's certificate for clients to trust.
pub struct TlsFiles {
    dir: tempfile::TempDir,
    /// The CA's certificate, PEM.
    pub ca_pem: String,
    /// Its path (`ca.pem` in the same folder).
    pub ca_path: PathBuf,
}

impl TlsFiles {
    /// Makes them (panics if it cannot: a test fixture).
    pub fn generate() -> TlsFiles {
        let dir = tempfile::tempdir().expect("a folder for the certificates");
        let ca_key = rcgen::KeyPair::generate().expect("a CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::new()).expect("CA parameters");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kt test database CA");
        let ca = ca_params.self_signed(&ca_key).expect("a CA certificate");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let server_key = rcgen::KeyPair::generate().expect("a server key");
        let server_params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server parameters");
        let server = server_params
            .signed_by(&server_key, &issuer)
            .expect("a server certificate");
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text).expect("a certificate file");
        };
        write("server.crt", &server.pem());
        write("server.key", &server_key.serialize_pem());
        write("ca.pem", &ca.pem());
        TlsFiles {
            ca_path: dir.path().join("ca.pem"),
            ca_pem: ca.pem(),
            dir,
        }
    }
}

/// A fresh database of its own for the calling test, on the server of `KT_TEST_POSTGRES_URL`
/// or on this process's own cluster (started on the first call). Panics with the reason if
/// PostgreSQL cannot be installed, started or reached: the test fails, it is never skipped.
pub fn test_database() -> TestDatabase {
    let server = match SERVER.get_or_init(start_server) {
        Ok(server) => server,
        Err(reason) => panic!("no PostgreSQL for this test: {reason}"),
    };
    let name = format!("kt_test_{}", unique_suffix());
    let output = script()
        .arg("createdb")
        .arg(&server.url)
        .arg(&name)
        .output()
        .unwrap_or_else(|e| panic!("could not run {}: {e}", script_path().display()));
    if !output.status.success() {
        panic!(
            "CREATE DATABASE {name} through {} failed: {}",
            server.url,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    TestDatabase {
        url: with_database(&server.url, &name),
        name,
        drop_through: server.external.then(|| server.url.clone()),
    }
}

/// `url` with its database replaced by `name`: the path of a `postgres://` or `postgresql://`
/// URL, or a `dbname=` appended to a key=value connection string.
pub fn with_database(url: &str, name: &str) -> String {
    for scheme in ["postgresql://", "postgres://"] {
        if let Some(rest) = url.strip_prefix(scheme) {
            let (main, query) = match rest.find('?') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            let authority = main.split('/').next().unwrap_or("");
            return format!("{scheme}{authority}/{name}{query}");
        }
    }
    format!("{url} dbname={name}")
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_of_a_url_is_replaced() {
        assert_eq!(
            with_database("postgresql://kt@/postgres?host=/tmp/x/socket", "t1"),
            "postgresql://kt@/t1?host=/tmp/x/socket"
        );
        assert_eq!(
            with_database("postgres://u:p@127.0.0.1:5433", "t2"),
            "postgres://u:p@127.0.0.1:5433/t2"
        );
        assert_eq!(
            with_database("postgres://u@h/db?sslmode=disable", "t3"),
            "postgres://u@h/t3?sslmode=disable"
        );
        assert_eq!(
            with_database("host=/run/postgresql user=u", "t4"),
            "host=/run/postgresql user=u dbname=t4"
        );
    }
}
