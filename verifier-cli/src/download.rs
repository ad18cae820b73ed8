//! Downloading entries through C2SP tlog-tiles and recomputing the tree from them.
//!
//! [`scan`] fetches the entry bundles holding entries `from..to` of a tree of `to` entries,
//! with a few threads, hands each tile's entries to a [`EntryWorker`] (in parallel), and
//! gives the results to the caller's sink *in log order* together with the leaf hashes, so
//! the sink can extend a [`kt_log::tree::Frontier`] and compare the root with a signed one.
//! Memory stays bounded: at most a fixed window of tiles is in flight.
//!
//! Tiles come from a server (`/log/tile/entries/…`) or a local folder with the same layout
//! (`DIR/checkpoint`, `DIR/tile/entries/…`). Nothing in them is trusted: entries are checked
//! by the worker and the recomputed root must equal the signed checkpoint's.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};

use indicatif::ProgressBar;
use kt_log::hash::leaf_hash;
use kt_log::tiles::{
    decode_entry_bundle, fetch_entry_bundle, tile_width, TileId, TileKind, TILE_WIDTH,
};
use kt_log::Hash;

use crate::client::{Client, Fetched, TILE_LIMIT};
use crate::error::Error;

/// Where tiles and the checkpoint come from.
pub(crate) trait TileSource: Sync {
    /// The latest checkpoint note, unverified.
    fn checkpoint(&self) -> Result<Vec<u8>, Error>;
    /// The bytes at `tile/…` below the log prefix, or `None` if absent.
    fn tile(&self, path: &str) -> Result<Option<Vec<u8>>, Error>;
}

/// Tiles served by the AS under `/log/`.
pub(crate) struct HttpTiles<'a>(pub(crate) &'a Client);

impl TileSource for HttpTiles<'_> {
    fn checkpoint(&self) -> Result<Vec<u8>, Error> {
        self.0.get_bytes("/log/checkpoint", 64 << 10)
    }
    fn tile(&self, path: &str) -> Result<Option<Vec<u8>>, Error> {
        match self.0.get(&format!("/log/{path}"), TILE_LIMIT)? {
            Fetched::Body(b) => Ok(Some(b)),
            Fetched::NotFound => Ok(None),
        }
    }
}

/// Tiles in a local folder laid out like `/log/`.
pub(crate) struct DirTiles(pub(crate) PathBuf);

impl TileSource for DirTiles {
    fn checkpoint(&self) -> Result<Vec<u8>, Error> {
        let path = self.0.join("checkpoint");
        std::fs::read(&path).map_err(|e| Error::io("cannot read", &path, e))
    }
    fn tile(&self, path: &str) -> Result<Option<Vec<u8>>, Error> {
        let path = self.0.join(path);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("cannot read", &path, e)),
        }
    }
}

/// Fetches entry bundle `index` as it is in a tree of `size` entries and returns its bytes
/// and entry count. A missing partial bundle falls back to the full one (the log may have
/// grown since), of which only the first `width` entries are used.
fn fetch_bundle(source: &dyn TileSource, index: u64, size: u64) -> Result<(Vec<u8>, usize), Error> {
    fetch_entry_bundle(size, index, |path| source.tile(path))?.ok_or_else(|| {
        let width = tile_width(size, None, index);
        let id = TileId {
            kind: TileKind::Entries,
            index,
            width,
        };
        Error::Network(format!("entry bundle {} is missing", id.path()))
    })
}

/// Per-tile work done in parallel: checks entries and extracts what the in-order pass needs.
pub(crate) trait EntryWorker: Sync {
    /// What one tile's work produces.
    type Out: Send;
    /// Processes entries `first .. first + entries.len()`.
    fn process(&self, first: u64, entries: &[&[u8]]) -> Self::Out;
}

/// One tile's result: its first index, its leaf hashes, the worker's output.
type TileResult<T> = (u64, Vec<Hash>, T);

/// Downloads entries `from..to` of the tree of size `to` (see the module doc). `sink` gets
/// every tile's result in order; its error stops the scan.
pub(crate) fn scan<W: EntryWorker>(
    source: &dyn TileSource,
    from: u64,
    to: u64,
    threads: usize,
    worker: &W,
    progress: &ProgressBar,
    mut sink: impl FnMut(TileResult<W::Out>) -> Result<(), Error>,
) -> Result<(), Error> {
    if from >= to {
        return Ok(());
    }
    let first_tile = from / TILE_WIDTH;
    let end_tile = to.div_ceil(TILE_WIDTH);
    let threads = threads.clamp(1, 64);
    let window = threads * 4;
    let next = AtomicU64::new(first_tile);
    let stop = AtomicBool::new(false);
    let (permit_tx, permit_rx) = mpsc::sync_channel::<()>(window);
    for _ in 0..window {
        let _ = permit_tx.send(());
    }
    let permit_rx = Mutex::new(permit_rx);
    let (next, stop, permit_rx) = (&next, &stop, &permit_rx);

    let work = |tile: u64| -> Result<TileResult<W::Out>, Error> {
        let (bytes, count) = fetch_bundle(source, tile, to)?;
        let entries = decode_entry_bundle(&bytes, count)
            .map_err(|e| Error::verify(format!("entry bundle {tile}: {e}")))?;
        let base = tile * TILE_WIDTH;
        let start = from.max(base);
        let end = to.min(base + TILE_WIDTH);
        let slice = &entries[(start - base) as usize..(end - base) as usize];
        let hashes = slice.iter().map(|e| leaf_hash(e)).collect();
        Ok((start, hashes, worker.process(start, slice)))
    };
    let work = &work;

    std::thread::scope(move |s| {
        let (tx, rx) = mpsc::sync_channel::<(u64, Result<TileResult<W::Out>, Error>)>(window);
        for _ in 0..threads {
            let tx = tx.clone();
            s.spawn(move || loop {
                let permit = match permit_rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => break,
                };
                if permit.is_err() || stop.load(Ordering::Relaxed) {
                    break;
                }
                let tile = next.fetch_add(1, Ordering::Relaxed);
                if tile >= end_tile {
                    break;
                }
                if tx.send((tile, work(tile))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let permit_tx = permit_tx;
        let mut pending = BTreeMap::new();
        let mut want = first_tile;
        let result = (|| {
            while want < end_tile {
                let (tile, result) = rx
                    .recv()
                    .map_err(|_| Error::Network("download workers stopped".into()))?;
                pending.insert(tile, result);
                while let Some(result) = pending.remove(&want) {
                    let result = result?;
                    let n = result.1.len() as u64;
                    sink(result)?;
                    progress.inc(n);
                    let _ = permit_tx.send(());
                    want += 1;
                }
            }
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        drop(permit_tx);
        drop(rx);
        result
    })
}

/// A progress bar on stderr when it is a terminal and output is for humans; hidden otherwise.
pub(crate) fn progress_bar(len: u64, visible: bool) -> ProgressBar {
    use std::io::IsTerminal as _;
    if !visible || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{elapsed_precise} [{bar:40}] {pos}/{len} entries ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// The right edge of the tree being recomputed: kt-log's [`Frontier`] plus a copy of its
/// hashes (kept from the nodes `Frontier::push` reports) so that it can be saved and resumed.
///
/// [`Frontier`]: kt_log::tree::Frontier
#[derive(Clone, Debug)]
pub(crate) struct Edge {
    frontier: kt_log::tree::Frontier,
    hashes: Vec<Hash>,
}

impl Edge {
    /// The empty tree.
    #[cfg(test)]
    pub(crate) fn new() -> Edge {
        Edge {
            frontier: kt_log::tree::Frontier::new(),
            hashes: Vec::new(),
        }
    }

    /// Rebuilds the edge of `size` leaves from saved hashes; `None` if they do not fit.
    pub(crate) fn from_parts(size: u64, hashes: Vec<Hash>) -> Option<Edge> {
        let frontier = kt_log::tree::Frontier::from_parts(size, hashes.clone())?;
        Some(Edge { frontier, hashes })
    }

    /// Appends one leaf hash.
    pub(crate) fn push(&mut self, leaf: Hash) {
        // `push` reports the leaf, then each parent it completes; each parent consumed one
        // saved hash (its left child). The last node reported is the new top of the edge.
        let hashes = &mut self.hashes;
        let mut top = leaf;
        let mut first = true;
        self.frontier.push(leaf, |h| {
            if !first {
                hashes.pop();
            }
            first = false;
            top = h;
        });
        hashes.push(top);
    }

    /// Number of leaves.
    pub(crate) fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The root of the leaves so far.
    pub(crate) fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// The hashes to save (those of `Frontier::node_ids(size)`).
    pub(crate) fn hashes(&self) -> &[Hash] {
        &self.hashes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_hashes_rebuild_the_same_frontier() {
        let mut edge = Edge::new();
        for i in 0..1000u64 {
            edge.push(leaf_hash(&i.to_be_bytes()));
            let rebuilt = Edge::from_parts(edge.size(), edge.hashes().to_vec()).unwrap();
            assert_eq!(rebuilt.root(), edge.root(), "size {}", edge.size());
        }
    }
}
