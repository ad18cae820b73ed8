//! The state folder: what this auditor has already verified, per log.
//!
//! Layout (one folder per log origin, its name percent-escaped):
//! ```text
//! STATE/<origin>/checkpoint   last verified checkpoint (signed note, exact bytes)
//! STATE/<origin>/audit.json   audit progress (see audit.rs)
//! STATE/<origin>/serials.bin  serials seen by the audit (see audit.rs)
//! STATE/fork-*.json           fork evidence
//! ```
//! Guarantees: every file is replaced atomically ([`write_atomic`]: temp file, fsync, rename,
//! fsync of the folder), so a crash leaves the old or the new version, never a torn one. A
//! saved checkpoint is re-verified with the log key when loaded, so a corrupted or foreign
//! state file is an error, never a silently trusted root.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use kt_log::checkpoint::{open_checkpoint, VerifiedCheckpoint};
use kt_log::note::NoteVerifier;

use crate::error::Error;

/// A state folder.
#[derive(Clone, Debug)]
pub(crate) struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Opens (creating if needed) the state folder at `root`.
    pub(crate) fn open(root: &Path) -> Result<StateDir, Error> {
        fs::create_dir_all(root).map_err(|e| Error::io("cannot create state folder", root, e))?;
        Ok(StateDir {
            root: root.to_path_buf(),
        })
    }

    /// Opens an existing state folder without creating it.
    pub(crate) fn existing(root: &Path) -> Result<StateDir, Error> {
        if !root.is_dir() {
            return Err(Error::io(
                "not a state folder",
                root,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        Ok(StateDir {
            root: root.to_path_buf(),
        })
    }

    /// The state folder itself.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of one log, created if needed.
    pub(crate) fn log_dir(&self, origin: &str) -> Result<PathBuf, Error> {
        let dir = self.root.join(escape_origin(origin));
        fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
        Ok(dir)
    }

    /// The last verified checkpoint of the verifier's log, re-verified; `None` if there is
    /// none yet. A file that no longer verifies is a verification failure (exit 1).
    pub(crate) fn load_checkpoint(
        &self,
        verifier: &NoteVerifier,
    ) -> Result<Option<VerifiedCheckpoint>, Error> {
        let path = self
            .root
            .join(escape_origin(verifier.name()))
            .join("checkpoint");
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("cannot read", &path, e)),
        };
        open_checkpoint(&bytes, verifier).map(Some).map_err(|e| {
            Error::verify(format!(
                "saved checkpoint {} does not verify: {e}",
                path.display()
            ))
        })
    }

    /// Saves `checkpoint` as the last verified one of its log. The caller must have proven
    /// it consistent with the previous one (see `sync::advance`).
    pub(crate) fn save_checkpoint(&self, checkpoint: &VerifiedCheckpoint) -> Result<(), Error> {
        let dir = self.log_dir(&checkpoint.checkpoint().origin)?;
        write_atomic(&dir.join("checkpoint"), checkpoint.note())
    }
}

/// A log origin as a single safe file name: ASCII letters, digits, `.`, `_` and `-` are kept,
/// every other byte becomes `%XX`; a leading `.` is escaped too.
pub(crate) fn escape_origin(origin: &str) -> String {
    let mut out = String::with_capacity(origin.len());
    for (i, b) in origin.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-') || (b == b'.' && i > 0);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Replaces `path` with `bytes` atomically: write a temp file in the same folder, fsync it,
/// rename it over `path`, fsync the folder.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io("cannot write", path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_escape_to_one_safe_name() {
        assert_eq!(escape_origin("example.com/log"), "example.com%2Flog");
        assert_eq!(escape_origin(".."), "%2E.");
        assert_eq!(escape_origin("a b"), "a%20b");
    }
}
