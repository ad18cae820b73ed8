//! kt_log::tiles: TileId::parse, decode_index, decode_hash_tile and decode_entry_bundle (the
//! count read from the input). Properties: never panics; what parses re-encodes to the same
//! bytes (paths and bundles are canonical), hash tiles split into len/32 hashes.
#![no_main]

use kt_fuzz::{split_mode, take_u64};
use kt_log::tiles::{
    decode_entry_bundle, decode_hash_tile, decode_index, encode_entry_bundle, encode_index,
    TileId, TileKind, MAX_TILE_LEVEL, TILE_WIDTH,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = split_mode(data) else {
        return;
    };
    match mode % 4 {
        0 => {
            let Ok(path) = std::str::from_utf8(rest) else {
                return;
            };
            if let Ok(id) = TileId::parse(path) {
                assert_eq!(id.path(), path, "tile path is not canonical");
                assert!((1..=TILE_WIDTH as u16).contains(&id.width));
                if let TileKind::Hashes { level } = id.kind {
                    assert!(level <= MAX_TILE_LEVEL);
                }
            }
        }
        1 => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            if let Ok(n) = decode_index(text) {
                assert_eq!(encode_index(n), text);
            }
        }
        2 => {
            if let Ok(hashes) = decode_hash_tile(rest) {
                assert_eq!(hashes.len() * 32, rest.len());
                assert_eq!(hashes.concat_bytes(), rest);
            }
        }
        _ => {
            // The count: its width (0..=8 bytes) in the first byte, then that many bytes,
            // big-endian, so huge counts (capacity hints) are tried too; the bundle follows.
            let Some((&width, rest)) = rest.split_first() else {
                return;
            };
            let width = usize::from(width % 9).min(rest.len());
            let (count, _) = take_u64(&rest[..width]);
            let bundle_bytes = &rest[width..];
            let count = usize::try_from(count).unwrap_or(usize::MAX);
            if let Ok(entries) = decode_entry_bundle(bundle_bytes, count) {
                assert_eq!(entries.len(), count);
                let again = encode_entry_bundle(&entries).expect("entries came from a bundle");
                assert_eq!(again, bundle_bytes);
            }
        }
    }
});

trait ConcatBytes {
    fn concat_bytes(&self) -> Vec<u8>;
}

impl ConcatBytes for Vec<kt_log::Hash> {
    fn concat_bytes(&self) -> Vec<u8> {
        self.iter().flat_map(|h| h.0).collect()
    }
}
