//! Writing files atomically, and secret files with mode 0600.
//!
//! Guarantee: [`write_atomic`] leaves either the old file or the complete new one at `path`,
//! never a torn one (a new temp file in the same folder, fsync, rename, fsync of the folder).
//! With `secret` the file is created with mode 0600 from the start, so a key is never readable
//! by others, not even for a moment; the temp file has a random name and is created
//! exclusively, so a file or symlink planted in the folder cannot capture the secret.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Atomically writes `contents` to `path`; with `secret`, mode 0600.
pub fn write_atomic(path: &Path, contents: &[u8], secret: bool) -> io::Result<()> {
    write_atomic_with(path, secret, |file| file.write_all(contents))
}

/// Like [`write_atomic`], with the contents written by `write` (buffered), for files too
/// large to build in memory first. A failed `write` leaves `path` as it was and no temp file.
pub fn write_atomic_with(
    path: &Path,
    secret: bool,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no folder"))?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| io::Error::other(e.to_string()))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        crate::encoding::hex(&nonce)
    ));
    // A fresh name created exclusively: never an existing file or symlink that someone else
    // prepared, so the mode below is the file's mode.
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    options.mode(if secret { 0o600 } else { 0o644 });
    let written = (|| {
        let mut file = io::BufWriter::new(options.open(&tmp)?);
        write(&mut file)?;
        file.into_inner().map_err(|e| e.into_error())?.sync_all()
    })();
    if let Err(e) = written {
        let _gone = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secret_files_are_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        write_atomic(&path, b"secret", true).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"secret");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        write_atomic(&path, b"public", false).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"public");
    }
}
