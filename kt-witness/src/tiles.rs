//! Fetching a log's entries through C2SP tlog-tiles (<https://c2sp.org/tlog-tiles>), for the
//! auditing mode.
//!
//! Nothing fetched is trusted: the caller recomputes the tree from the entries and compares
//! its root with the log-signed checkpoint's before it uses them.

use std::path::Path;
use std::time::Duration;

use kt_log::tiles::{
    decode_entry_bundle, fetch_entry_bundle, tile_width, TileId, TileKind, TILE_WIDTH,
};
use ureq::Agent;

/// Most bytes read of one entry bundle: 256 entries of at most 64 KiB each, with their
/// length prefixes.
const BUNDLE_LIMIT: u64 = TILE_WIDTH * (64 * 1024 + 2);

/// A tile could not be fetched, or was not an entry bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError(pub String);

/// A client of one log's tiles.
pub struct TileClient {
    agent: Agent,
    prefix: String,
}

impl TileClient {
    /// A client of the tiles under `prefix`, trusting the PEM certificates of `tls_ca` for
    /// HTTPS, or the Web PKI roots without it; each request fails after `timeout`.
    pub fn new(prefix: &str, tls_ca: Option<&Path>, timeout: Duration) -> Result<Self, String> {
        let agent = crate::http_client::agent(timeout, tls_ca, "audit TLS roots")?;
        Ok(TileClient {
            agent,
            prefix: prefix.trim_end_matches('/').to_owned(),
        })
    }

    /// The bytes at `<prefix>/<path>`; `None` for a 404.
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, FetchError> {
        let url = format!("{}/{path}", self.prefix);
        let mut response = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| FetchError(format!("{url}: {e}")))?;
        match response.status().as_u16() {
            200 => response
                .body_mut()
                .with_config()
                .limit(BUNDLE_LIMIT)
                .read_to_vec()
                .map(Some)
                .map_err(|e| FetchError(format!("{url}: {e}"))),
            404 => Ok(None),
            status => Err(FetchError(format!("{url}: HTTP {status}"))),
        }
    }

    /// Calls `each` with every entry `from..to` of the tree of `to` entries, in order. A
    /// partial bundle that is gone falls back to the full one (the log grew since), of which
    /// only the entries of the tree of `to` are used.
    pub fn entries<E: From<FetchError>>(
        &self,
        from: u64,
        to: u64,
        mut each: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut index = from / TILE_WIDTH;
        while index * TILE_WIDTH < to {
            let width = tile_width(to, None, index);
            let id = TileId {
                kind: TileKind::Entries,
                index,
                width,
            };
            let (bytes, count) = fetch_entry_bundle(to, index, |path| self.get(path))?
                .ok_or_else(|| FetchError(format!("entry bundle {} is missing", id.path())))?;
            let first = index * TILE_WIDTH;
            let entries = decode_entry_bundle(&bytes, count)
                .map_err(|e| FetchError(format!("entry bundle {}: {e}", id.path())))?;
            for (offset, entry) in entries.iter().enumerate().take(usize::from(width)) {
                if first + offset as u64 >= from {
                    each(entry)?;
                }
            }
            index += 1;
        }
        Ok(())
    }
}
