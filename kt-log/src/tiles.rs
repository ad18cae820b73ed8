//! C2SP tlog-tiles (<https://c2sp.org/tlog-tiles>): the static read API's formats and paths.
//!
//! - A hash tile at level `L`, index `N` holds up to 256 consecutive hashes of tree level
//!   `8·L` (subtrees of `256^L` leaves), starting at hash `256·N`; a *full* tile has 256, a
//!   partial one `W` in 1..=255 and is named with the suffix `.p/<W>`.
//! - An entry bundle `N` holds entries `256·N ..`, each prefixed by its length as a
//!   big-endian `u16` (so an entry is at most 65,535 bytes).
//! - `N` is written as 3-digit groups, all but the last prefixed with `x`:
//!   1234067 → `x001/x234/067`.
//!
//! Parsers here take untrusted bytes and return errors, never panic.

use thiserror::Error;

use crate::hash::{Hash, HASH_LEN};

/// Hashes (or entries) in a full tile.
pub const TILE_WIDTH: u64 = 256;
/// Tree levels per tile level.
pub const TILE_HEIGHT: u32 = 8;
/// Largest entry an entry bundle can carry.
pub const MAX_ENTRY_LEN: usize = u16::MAX as usize;
/// Highest tile level the spec allows.
pub const MAX_TILE_LEVEL: u8 = 63;

/// Why tile bytes or a tile path were rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TileError {
    /// An entry is too long for the 16-bit length prefix.
    #[error("entry of {0} bytes exceeds the 65535-byte limit of tlog-tiles entry bundles")]
    EntryTooLarge(usize),
    /// A hash tile is not a whole number (1..=256) of 32-byte hashes.
    #[error("hash tile of {0} bytes is not 1 to 256 hashes")]
    BadHashTile(usize),
    /// An entry bundle is truncated, has trailing bytes, or the wrong number of entries.
    #[error("malformed entry bundle: {0}")]
    BadBundle(&'static str),
    /// A path is not a canonical tile path.
    #[error("not a tile path")]
    BadPath,
}

/// Which tile a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TileKind {
    /// A hash tile at this tile level.
    Hashes {
        /// Tile level `L` (tree level `8·L`).
        level: u8,
    },
    /// An entry bundle.
    Entries,
}

/// A tile named by a path: kind, index and width (256 for a full tile).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileId {
    /// Hash tile or entry bundle.
    pub kind: TileKind,
    /// Tile index `N`.
    pub index: u64,
    /// Number of hashes or entries, 1..=256.
    pub width: u16,
}

impl TileId {
    /// The tile's path below the log prefix: `tile/<L>/<N>[.p/<W>]` or
    /// `tile/entries/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        let kind = match self.kind {
            TileKind::Hashes { level } => level.to_string(),
            TileKind::Entries => "entries".to_string(),
        };
        let mut path = format!("tile/{kind}/{}", encode_index(self.index));
        if u64::from(self.width) < TILE_WIDTH {
            path.push_str(&format!(".p/{}", self.width));
        }
        path
    }

    /// Parses a canonical tile path (as [`TileId::path`] writes it).
    pub fn parse(path: &str) -> Result<TileId, TileError> {
        let rest = path.strip_prefix("tile/").ok_or(TileError::BadPath)?;
        let (kind, rest) = rest.split_once('/').ok_or(TileError::BadPath)?;
        let kind = if kind == "entries" {
            TileKind::Entries
        } else {
            let canonical = !kind.is_empty()
                && kind.len() <= 2
                && kind.bytes().all(|b| b.is_ascii_digit())
                && (kind == "0" || !kind.starts_with('0'));
            let level: u8 = kind.parse().map_err(|_| TileError::BadPath)?;
            if !canonical || level > MAX_TILE_LEVEL {
                return Err(TileError::BadPath);
            }
            TileKind::Hashes { level }
        };
        let (index_part, width) = match rest.split_once(".p/") {
            Some((index_part, w)) => {
                let canonical =
                    !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()) && !w.starts_with('0');
                let width: u16 = w.parse().map_err(|_| TileError::BadPath)?;
                if !canonical || !(1..TILE_WIDTH as u16).contains(&width) {
                    return Err(TileError::BadPath);
                }
                (index_part, width)
            }
            None => (rest, TILE_WIDTH as u16),
        };
        let index = decode_index(index_part)?;
        Ok(TileId { kind, index, width })
    }
}

/// `N` as `x001/x234/067`: 3-digit groups, every one but the last prefixed with `x`.
pub fn encode_index(mut index: u64) -> String {
    let mut groups = vec![format!("{:03}", index % 1000)];
    index /= 1000;
    while index > 0 {
        groups.push(format!("x{:03}", index % 1000));
        index /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

/// Inverse of [`encode_index`]; only the canonical form (no leading zero groups) is accepted.
pub fn decode_index(text: &str) -> Result<u64, TileError> {
    let groups: Vec<&str> = text.split('/').collect();
    let mut index: u64 = 0;
    for (i, group) in groups.iter().enumerate() {
        let last = i + 1 == groups.len();
        let digits = if last {
            *group
        } else {
            group.strip_prefix('x').ok_or(TileError::BadPath)?
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TileError::BadPath);
        }
        if i == 0 && !last && digits == "000" {
            return Err(TileError::BadPath);
        }
        let value: u64 = digits.parse().map_err(|_| TileError::BadPath)?;
        index = index
            .checked_mul(1000)
            .and_then(|v| v.checked_add(value))
            .ok_or(TileError::BadPath)?;
    }
    Ok(index)
}

/// Number of hashes (or entries, for `level = None`) that tile `index` holds in a tree of
/// `size` leaves: 256 for a full tile, 1..=255 for the partial right-edge tile, 0 when the
/// tile does not exist yet.
pub fn tile_width(size: u64, level: Option<u8>, index: u64) -> u16 {
    let shift = u32::from(level.unwrap_or(0)) * TILE_HEIGHT;
    let count = if shift >= 64 { 0 } else { size >> shift };
    let start = index.saturating_mul(TILE_WIDTH);
    count.saturating_sub(start).min(TILE_WIDTH) as u16
}

/// Encodes entries into an entry bundle, refusing any entry over 65,535 bytes.
pub fn encode_entry_bundle<E: AsRef<[u8]>>(entries: &[E]) -> Result<Vec<u8>, TileError> {
    let total: usize = entries.iter().map(|e| 2 + e.as_ref().len()).sum();
    let mut out = Vec::with_capacity(total);
    for entry in entries {
        let entry = entry.as_ref();
        let len = u16::try_from(entry.len()).map_err(|_| TileError::EntryTooLarge(entry.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Ok(out)
}

/// Decodes an entry bundle that must hold exactly `count` entries.
pub fn decode_entry_bundle(bytes: &[u8], count: usize) -> Result<Vec<&[u8]>, TileError> {
    let mut entries = Vec::with_capacity(count.min(TILE_WIDTH as usize));
    let mut rest = bytes;
    while !rest.is_empty() {
        let [hi, lo, tail @ ..] = rest else {
            return Err(TileError::BadBundle("truncated length prefix"));
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        if tail.len() < len {
            return Err(TileError::BadBundle("truncated entry"));
        }
        entries.push(&tail[..len]);
        rest = &tail[len..];
    }
    if entries.len() != count {
        return Err(TileError::BadBundle("wrong number of entries"));
    }
    Ok(entries)
}

/// Entry bundle `index` as it is in a tree of `size` entries, read through `fetch` (a tile
/// path → its bytes, `None` when there is no such tile): the bundle of that width, or, when
/// it is a partial one that is gone — C2SP tlog-tiles lets a log delete partial tiles once the
/// full one exists, so a reader of an older tree meets this whenever the log grew since — the
/// full bundle. Returns the bytes and the number of entries they hold (decode them with
/// [`decode_entry_bundle`]), of which only the first `tile_width(size, None, index)` belong to
/// the tree of `size`; `None` when neither bundle is there. Nothing fetched is trusted: the
/// caller hashes the entries into the tree and compares its root with a signed checkpoint.
pub fn fetch_entry_bundle<E>(
    size: u64,
    index: u64,
    mut fetch: impl FnMut(&str) -> Result<Option<Vec<u8>>, E>,
) -> Result<Option<(Vec<u8>, usize)>, E> {
    let width = tile_width(size, None, index);
    let id = TileId {
        kind: TileKind::Entries,
        index,
        width,
    };
    if let Some(bytes) = fetch(&id.path())? {
        return Ok(Some((bytes, usize::from(width))));
    }
    if u64::from(width) < TILE_WIDTH {
        let full = TileId {
            width: TILE_WIDTH as u16,
            ..id
        };
        if let Some(bytes) = fetch(&full.path())? {
            return Ok(Some((bytes, TILE_WIDTH as usize)));
        }
    }
    Ok(None)
}

/// Splits a hash tile into its hashes (1 to 256 of them).
pub fn decode_hash_tile(bytes: &[u8]) -> Result<Vec<Hash>, TileError> {
    let n = bytes.len() / HASH_LEN;
    if !bytes.len().is_multiple_of(HASH_LEN) || n == 0 || n as u64 > TILE_WIDTH {
        return Err(TileError::BadHashTile(bytes.len()));
    }
    Ok(bytes
        .chunks_exact(HASH_LEN)
        .filter_map(Hash::from_slice)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_encoding_matches_spec_examples() {
        assert_eq!(encode_index(1234067), "x001/x234/067");
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(999), "999");
        assert_eq!(encode_index(1000), "x001/000");
        for n in [0u64, 7, 999, 1000, 1234067, u64::MAX] {
            assert_eq!(decode_index(&encode_index(n)), Ok(n));
        }
        for bad in [
            "", "1", "0001", "x000/001", "001/001", "x001", "x1/001", "x001/00a",
        ] {
            assert!(decode_index(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_gone_partial_bundle_falls_back_to_the_full_one() {
        use std::collections::HashMap;
        let tiles: HashMap<&str, Vec<u8>> = [
            ("tile/entries/000", vec![0u8]),
            ("tile/entries/001.p/5", vec![1u8]),
        ]
        .into_iter()
        .collect();
        let mut asked = Vec::new();
        let mut fetch = |path: &str| -> Result<Option<Vec<u8>>, ()> {
            asked.push(path.to_owned());
            Ok(tiles.get(path).cloned())
        };
        // The partial bundle of the tree of 261 entries is there.
        assert_eq!(
            fetch_entry_bundle(261, 1, &mut fetch),
            Ok(Some((vec![1], 5)))
        );
        // Of the tree of 100, bundle 0 was partial and is gone: the full one stands in.
        assert_eq!(
            fetch_entry_bundle(100, 0, &mut fetch),
            Ok(Some((vec![0], 256)))
        );
        // Neither is there.
        assert_eq!(fetch_entry_bundle(300, 1, &mut fetch), Ok(None));
        // A full bundle that is missing is not looked for twice.
        assert_eq!(fetch_entry_bundle(1000, 2, &mut fetch), Ok(None));
        assert_eq!(
            asked,
            [
                "tile/entries/001.p/5",
                "tile/entries/000.p/100",
                "tile/entries/000",
                "tile/entries/001.p/44",
                "tile/entries/001",
                "tile/entries/002",
            ]
        );
        // Errors pass through.
        assert_eq!(
            fetch_entry_bundle(10, 0, |_| Err::<Option<Vec<u8>>, _>(7)),
            Err(7)
        );
    }

    #[test]
    fn paths_round_trip() {
        for id in [
            TileId {
                kind: TileKind::Hashes { level: 0 },
                index: 1234067,
                width: 256,
            },
            TileId {
                kind: TileKind::Hashes { level: 2 },
                index: 0,
                width: 3,
            },
            TileId {
                kind: TileKind::Entries,
                index: 5,
                width: 255,
            },
        ] {
            assert_eq!(TileId::parse(&id.path()), Ok(id));
        }
        assert_eq!(
            TileId::parse("tile/0/x001/x234/067.p/8").map(|t| t.path()),
            Ok("tile/0/x001/x234/067.p/8".to_string())
        );
        for bad in [
            "tile/0/000.p/0",
            "tile/0/000.p/256",
            "tile/0/000.p/08",
            "tile/00/000",
            "tile/64/000",
            "tile/-1/000",
            "tile/entries/000.p/",
            "tiles/0/000",
            "tile/0/",
        ] {
            assert!(TileId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn widths() {
        assert_eq!(tile_width(0, None, 0), 0);
        assert_eq!(tile_width(1, None, 0), 1);
        assert_eq!(tile_width(256, None, 0), 256);
        assert_eq!(tile_width(300, None, 1), 44);
        assert_eq!(tile_width(300, Some(1), 0), 1);
        assert_eq!(tile_width(65536 * 3 + 5, Some(1), 0), 256);
        assert_eq!(tile_width(65536 * 3 + 5, Some(1), 2), 256);
        assert_eq!(tile_width(65536 * 3 + 5, Some(1), 3), 0);
        assert_eq!(tile_width(u64::MAX, Some(63), 0), 0);
    }

    #[test]
    fn bundles() {
        let entries: Vec<&[u8]> = vec![b"", b"a", &[7u8; 300]];
        let bundle = encode_entry_bundle(&entries).unwrap();
        assert_eq!(decode_entry_bundle(&bundle, 3).unwrap(), entries);
        assert!(decode_entry_bundle(&bundle, 2).is_err());
        assert!(decode_entry_bundle(&bundle[..bundle.len() - 1], 3).is_err());
        assert!(decode_entry_bundle(&[0], 0).is_err());
        let big = vec![0u8; MAX_ENTRY_LEN + 1];
        assert_eq!(
            encode_entry_bundle(&[&big[..]]),
            Err(TileError::EntryTooLarge(MAX_ENTRY_LEN + 1))
        );
        assert!(encode_entry_bundle(&[&big[..MAX_ENTRY_LEN]]).is_ok());
    }

    #[test]
    fn hash_tiles() {
        assert!(decode_hash_tile(&[]).is_err());
        assert!(decode_hash_tile(&[0; 33]).is_err());
        assert!(decode_hash_tile(&[0; 32 * 257]).is_err());
        assert_eq!(decode_hash_tile(&[1; 64]).unwrap().len(), 2);
    }
}
