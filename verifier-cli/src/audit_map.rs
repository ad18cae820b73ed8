//! The audit's saved map: the directory's map as the entries audited so far made it, kept
//! across runs so that an audit resumes where it stopped.
//!
//! A file holds the map's leaves (`kt_protocol::directory::tree::Map::write_leaves`) followed
//! by the SHA-256 of them, written atomically. A file that does not read back whole is an
//! error of the state (the audit starts over), never a map to trust.

use std::path::Path;

use kt_protocol::directory::tree::Map;
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::state::write_atomic;

/// Saves `map` to `path`.
pub(crate) fn save(path: &Path, map: &Map) -> Result<(), Error> {
    let mut bytes = Vec::with_capacity(map.len() as usize * 72 + 32);
    map.write_leaves(&mut bytes)
        .map_err(|e| Error::io("cannot encode the audit's map", path, e))?;
    let digest = Sha256::digest(&bytes);
    bytes.extend_from_slice(&digest);
    write_atomic(path, &bytes)
}

/// Loads the map saved at `path`; `None` if there is none or it is not whole.
pub(crate) fn load(path: &Path) -> Result<Option<Map>, Error> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("cannot read", path, e)),
    };
    let Some(body_len) = bytes.len().checked_sub(32) else {
        return Ok(None);
    };
    let (leaves, digest) = bytes.split_at(body_len);
    if Sha256::digest(leaves).as_slice() != digest {
        return Ok(None);
    }
    Ok(Map::read_leaves(leaves))
}
