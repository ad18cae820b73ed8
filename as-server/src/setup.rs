//! The data folder and first-start key material.
//!
//! Layout of the data folder (mode 0700), secrets mode 0600:
//!
//! | file | what |
//! |---|---|
//! | `ca-key.pem` (secret) | the CA's Ed25519 key, PKCS#8 |
//! | `ca-cert.pem` | the self-signed CA certificate |
//! | `log-key` (secret) | the log's note signing key, `PRIVATE+KEY+<origin>+…` |
//! | `log-key.pub` | the log's note verifier key, what auditors trust |
//! | `directory-key` (secret) | the directory's secret: VRF labels, openings, sealing ([`crate::directory::keys`]) |
//! | `vrf-key.pub` | the directory's VRF public key, what clients trust beside the log key |
//! | `tls-key.pem` (secret), `tls-cert.pem` | generated TLS key and certificate |
//! | `admin-tokens.json` (secret) | labels and SHA-256 hashes of the admin tokens |
//! | `log/` | the transparency log (kt-log `FileStore`) |
//! | `state/` | the AS state (sled) |
//! | `lock` | empty; its exclusive `flock` is held by the running server |
//!
//! **One server per folder.** A start takes the folder's lock before it reads or creates
//! anything, and holds it until the process ends (the kernel drops it however the process
//! ends, so a crash leaves no stale lock). A second server on the same folder is refused at
//! once: without the lock it would append to the log beside the first, and take the first's
//! locked state store for a broken one and move it aside.
//!
//! Each file is created only if missing and written atomically, so an interrupted first start
//! is finished by the next one. A new admin token is shown once (stdout or
//! `--admin-token-out`) and only its hash is kept.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use kt_log::note::NoteSigner;

use crate::ca::Ca;
use crate::config::Config;
use crate::encoding::hex;
use crate::secret_file::write_atomic;
use crate::tls;
use crate::tokens::{generate_token, token_hash, AdminTokens, StoredAdminToken};
use crate::unix_now;

/// Lifetime of a CA certificate made at first start: 10 years.
const CA_LIFETIME: u64 = 10 * 365 * 24 * 3600;

/// Everything loaded from (or created in) the data folder.
pub struct Material {
    /// The CA.
    pub ca: Ca,
    /// The log's checkpoint signer.
    pub log_signer: NoteSigner,
    /// The directory's keys.
    pub directory_keys: crate::directory::keys::DirectoryKeys,
    /// TLS certificate and key files to serve.
    pub tls_files: (PathBuf, PathBuf),
    /// Accepted admin tokens.
    pub admin_tokens: AdminTokens,
    /// An admin token created now, to show once (None if tokens existed, or if it was written
    /// to `--admin-token-out`).
    pub new_admin_token: Option<String>,
    /// Whether an admin token was created now and written to `--admin-token-out`.
    pub admin_token_written: bool,
    /// The data folder's lock (see the module doc); keep it for as long as the server runs.
    pub folder_lock: fs::File,
}

/// Takes the data folder's exclusive lock (see the module doc).
fn lock_data_folder(paths: &DataPaths) -> Result<fs::File, String> {
    let path = paths.file("lock");
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(format!(
            "the data folder {} is in use by another as-server (it holds {}); stop that one \
             first, or give this one another --data",
            paths.root.display(),
            path.display()
        )),
        Err(fs::TryLockError::Error(e)) => Err(io_err(&path)(e)),
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

/// The data folder's files.
pub struct DataPaths {
    root: PathBuf,
}

impl DataPaths {
    /// Paths under `root`.
    pub fn new(root: &Path) -> DataPaths {
        DataPaths {
            root: root.to_path_buf(),
        }
    }
    /// A file or folder of the data folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

/// Loads the key material for `config`, creating what is missing.
pub fn load_or_create(config: &Config) -> Result<Material, String> {
    let existed = config.data.exists();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.data)
        .map_err(io_err(&config.data))?;
    if !existed {
        // A new folder must survive a crash too: sync the folder that names it.
        let parent = config
            .data
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::File::open(parent)
            .and_then(|f| f.sync_all())
            .map_err(io_err(parent))?;
    }
    let paths = DataPaths::new(&config.data);
    let folder_lock = lock_data_folder(&paths)?;

    let ca = load_or_create_ca(&paths, &config.ca_name)?;
    let log_signer = load_or_create_log_key(&paths, &config.origin)?;
    let directory_keys = crate::directory::keys::DirectoryKeys::load_or_create(&config.data)?;
    let tls_files = match &config.tls_files {
        Some(files) => files.clone(),
        None => {
            let cert = paths.file("tls-cert.pem");
            let key = paths.file("tls-key.pem");
            if !cert.exists() || !key.exists() {
                tls::generate_self_signed(&config.tls_names, &cert, &key)?;
            }
            (cert, key)
        }
    };
    let tokens_existed = paths.file("admin-tokens.json").exists();
    let (admin_tokens, new_admin_token) =
        load_or_create_admin_tokens(&paths, config.admin_token_out.as_deref())?;
    let admin_token_written = !tokens_existed && config.admin_token_out.is_some();
    Ok(Material {
        ca,
        log_signer,
        directory_keys,
        tls_files,
        admin_tokens,
        new_admin_token,
        admin_token_written,
        folder_lock,
    })
}

fn load_or_create_ca(paths: &DataPaths, name: &str) -> Result<Ca, String> {
    let key_path = paths.file("ca-key.pem");
    let cert_path = paths.file("ca-cert.pem");
    if !key_path.exists() {
        let ca = Ca::generate(name, unix_now(), CA_LIFETIME).map_err(|e| e.to_string())?;
        let key_pem = ca.key_pem().map_err(|e| e.to_string())?;
        // The certificate first: the key's presence marks a finished CA, so a crash in between
        // makes the next start create both again.
        write_atomic(&cert_path, ca.cert_pem().as_bytes(), false).map_err(io_err(&cert_path))?;
        write_atomic(&key_path, key_pem.as_bytes(), true).map_err(io_err(&key_path))?;
        return Ok(ca);
    }
    let key_pem = fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
    let cert_pem = fs::read_to_string(&cert_path).map_err(io_err(&cert_path))?;
    Ca::load(&key_pem, &cert_pem).map_err(|e| e.to_string())
}

fn load_or_create_log_key(paths: &DataPaths, origin: &str) -> Result<NoteSigner, String> {
    let key_path = paths.file("log-key");
    let pub_path = paths.file("log-key.pub");
    let signer = if key_path.exists() {
        let text = fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
        let signer = NoteSigner::parse(text.trim()).map_err(|e| format!("log-key: {e}"))?;
        if signer.name() != origin {
            return Err(format!(
                "the log key is for origin {:?}, but the configured origin is {origin:?}; the \
                 origin is fixed at first start",
                signer.name()
            ));
        }
        signer
    } else {
        let signer = NoteSigner::generate(origin).map_err(|e| format!("origin {origin:?}: {e}"))?;
        write_atomic(
            &key_path,
            format!("{}\n", signer.to_skey()).as_bytes(),
            true,
        )
        .map_err(io_err(&key_path))?;
        signer
    };
    let vkey = format!("{}\n", signer.verifier().to_vkey());
    if fs::read_to_string(&pub_path).ok().as_deref() != Some(vkey.as_str()) {
        write_atomic(&pub_path, vkey.as_bytes(), false).map_err(io_err(&pub_path))?;
    }
    Ok(signer)
}

fn load_or_create_admin_tokens(
    paths: &DataPaths,
    out: Option<&Path>,
) -> Result<(AdminTokens, Option<String>), String> {
    let path = paths.file("admin-tokens.json");
    if path.exists() {
        let text = fs::read(&path).map_err(io_err(&path))?;
        let stored: Vec<StoredAdminToken> =
            serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        return Ok((AdminTokens::new(&stored), None));
    }
    let (tokens, token) = new_admin_token(&path, "admin", out)?;
    Ok((tokens, token))
}

/// Replaces the admin tokens in the data folder `data` with one new token labelled `label`,
/// written to `out` (mode 0600) or returned to be shown once. A running server picks it up at
/// its next start.
pub fn reset_admin_token(
    data: &Path,
    label: &str,
    out: Option<&Path>,
) -> Result<Option<String>, String> {
    let path = DataPaths::new(data).file("admin-tokens.json");
    Ok(new_admin_token(&path, label, out)?.1)
}

fn new_admin_token(
    path: &Path,
    label: &str,
    out: Option<&Path>,
) -> Result<(AdminTokens, Option<String>), String> {
    let token = generate_token().map_err(|e| e.to_string())?;
    // The token reaches its file before its hash is kept, so a crash in between never leaves a
    // hash whose token nobody has.
    if let Some(out) = out {
        write_atomic(out, format!("{token}\n").as_bytes(), true).map_err(io_err(out))?;
    }
    let stored = vec![StoredAdminToken {
        label: label.to_owned(),
        sha256: hex(&token_hash(&token)),
    }];
    let json = serde_json::to_vec_pretty(&stored).map_err(|e| e.to_string())?;
    write_atomic(path, &json, true).map_err(io_err(path))?;
    let shown = if out.is_some() { None } else { Some(token) };
    Ok((AdminTokens::new(&stored), shown))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServeArgs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn first_start_creates_secrets_0600_and_second_start_reuses_them() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let config = ServeArgs {
            data: Some(data.clone()),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        let first = load_or_create(&config).unwrap();
        let token = first.new_admin_token.clone().unwrap();
        assert_eq!(first.admin_tokens.check(&token), Some("admin"));
        for secret in ["ca-key.pem", "log-key", "tls-key.pem", "admin-tokens.json"] {
            let mode = fs::metadata(data.join(secret))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{secret}");
        }
        let stored = fs::read_to_string(data.join("admin-tokens.json")).unwrap();
        assert!(!stored.contains(&token), "the token itself is never stored");

        // While one start holds the folder, another is refused.
        let Err(in_use) = load_or_create(&config) else {
            panic!("a second start on a held folder must be refused");
        };
        assert!(in_use.contains("in use by another as-server"), "{in_use}");
        let (first_cert, first_key) = (first.ca.cert_der().to_vec(), first.log_signer.to_skey());
        drop(first);

        let second = load_or_create(&config).unwrap();
        assert!(second.new_admin_token.is_none());
        assert_eq!(second.ca.cert_der(), first_cert);
        assert_eq!(second.log_signer.to_skey(), first_key);
        assert_eq!(second.admin_tokens.check(&token), Some("admin"));
        drop(second);

        let other_origin = Config {
            origin: "other.example/log".into(),
            ..config
        };
        let Err(refused) = load_or_create(&other_origin) else {
            panic!("a different origin must be refused");
        };
        assert!(refused.contains("origin"));
    }
}
