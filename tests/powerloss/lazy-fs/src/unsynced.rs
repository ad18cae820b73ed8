//! What one file holds that is not durable yet: the program's writes and size changes since the
//! file's last `fsync`, kept in memory (the "page cache" of the simulation).
//!
//! The file the program sees is the backing file merged with this: bytes written since the
//! last sync come from here, the rest from the backing file, except past a truncation (a file
//! cut to 10 bytes and grown again reads zeros after byte 10, whatever the backing file still
//! holds there). [`Unsynced::apply`] writes it all to the backing file (an `fsync`);
//! dropping the value loses it (a power loss).

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The unsynced writes and size of one file. See the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct Unsynced {
    /// The file's size as the program sees it.
    size: u64,
    /// Backing bytes at and past this offset are no longer the file's: it was truncated to
    /// this size (its smallest since the last sync). `None`: the backing file is valid up to
    /// its own length.
    cut: Option<u64>,
    /// Written bytes not yet synced: non-overlapping ranges keyed by their offset.
    extents: BTreeMap<u64, Vec<u8>>,
    /// Whether anything changed since the last sync (a size change alone counts).
    changed: bool,
}

impl Unsynced {
    /// Nothing unsynced, over a backing file of `size` bytes.
    pub(crate) fn new(size: u64) -> Unsynced {
        Unsynced {
            size,
            cut: None,
            extents: BTreeMap::new(),
            changed: false,
        }
    }

    /// The size the program sees.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Whether a sync has anything to write.
    pub(crate) fn is_dirty(&self) -> bool {
        self.changed
    }

    /// Bytes written and not synced.
    pub(crate) fn dirty_bytes(&self) -> u64 {
        self.extents.values().map(|data| data.len() as u64).sum()
    }

    /// `write(2)` of `data` at `offset` (the file grows if it ends past its size).
    pub(crate) fn write(&mut self, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let end = offset + data.len() as u64;
        self.changed = true;
        self.size = self.size.max(end);
        // The extents that overlap or touch [offset, end], last first.
        let touching: Vec<u64> = self
            .extents
            .range(..=end)
            .rev()
            .take_while(|(start, bytes)| **start + bytes.len() as u64 >= offset)
            .map(|(start, _)| *start)
            .collect();
        match touching.as_slice() {
            [] => {
                self.extents.insert(offset, data.to_vec());
            }
            // One extent starting at or before the write (the common case: an append right
            // after the previous write, or an overwrite inside it): grow it in place.
            [start] if *start <= offset => {
                if let Some(bytes) = self.extents.get_mut(start) {
                    let need = (end - start) as usize;
                    if bytes.len() < need {
                        bytes.resize(need, 0);
                    }
                    let at = (offset - start) as usize;
                    bytes[at..need].copy_from_slice(data);
                }
            }
            _ => {
                let first = touching.iter().copied().min().unwrap_or(offset).min(offset);
                let mut merged_end = end;
                for start in &touching {
                    if let Some(bytes) = self.extents.get(start) {
                        merged_end = merged_end.max(start + bytes.len() as u64);
                    }
                }
                let mut merged = vec![0u8; (merged_end - first) as usize];
                for start in &touching {
                    if let Some(bytes) = self.extents.remove(start) {
                        let at = (start - first) as usize;
                        merged[at..at + bytes.len()].copy_from_slice(&bytes);
                    }
                }
                let at = (offset - first) as usize;
                merged[at..at + data.len()].copy_from_slice(data);
                self.extents.insert(first, merged);
            }
        }
    }

    /// `ftruncate(2)` to `size`: shrinking forgets everything past it, growing reads zeros.
    pub(crate) fn set_size(&mut self, size: u64) {
        if size == self.size {
            return;
        }
        self.changed = true;
        if size < self.size {
            let beyond: Vec<u64> = self.extents.range(size..).map(|(s, _)| *s).collect();
            for start in beyond {
                self.extents.remove(&start);
            }
            if let Some((start, bytes)) = self.extents.range_mut(..size).next_back() {
                let keep = (size - start) as usize;
                bytes.truncate(keep);
            }
            self.cut = Some(self.cut.map_or(size, |cut| cut.min(size)));
        }
        self.size = size;
    }

    /// `fallocate(2)` mode 0: the file is at least `end` bytes long afterwards.
    pub(crate) fn allocate(&mut self, end: u64) {
        if end > self.size {
            self.set_size(end);
        }
    }

    /// Up to `len` bytes at `offset` as the program sees them; `read_backing(buf, at)` reads
    /// the backing file (`pread`), returning fewer bytes (0) at its end.
    pub(crate) fn read(
        &self,
        offset: u64,
        len: u64,
        mut read_backing: impl FnMut(&mut [u8], u64) -> io::Result<usize>,
    ) -> io::Result<Vec<u8>> {
        if offset >= self.size {
            return Ok(Vec::new());
        }
        let end = self.size.min(offset.saturating_add(len));
        let mut buf = vec![0u8; (end - offset) as usize];
        let backing_end = self.cut.map_or(end, |cut| cut.min(end));
        if backing_end > offset {
            let want = (backing_end - offset) as usize;
            let mut done = 0;
            while done < want {
                let n = read_backing(&mut buf[done..want], offset + done as u64)?;
                if n == 0 {
                    break;
                }
                done += n;
            }
        }
        for (start, bytes) in self.extents.range(..end).rev() {
            let extent_end = start + bytes.len() as u64;
            if extent_end <= offset {
                break;
            }
            let from = offset.max(*start);
            let to = end.min(extent_end);
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&bytes[(from - start) as usize..(to - start) as usize]);
        }
        Ok(buf)
    }

    /// Writes everything unsynced to `backing` (not synced to its disk: the caller decides),
    /// after which nothing is unsynced. Returns the bytes written.
    pub(crate) fn apply(&mut self, backing: &File) -> io::Result<u64> {
        if !self.changed {
            return Ok(0);
        }
        if let Some(cut) = self.cut {
            backing.set_len(cut)?;
        }
        let mut written = 0;
        for (start, bytes) in &self.extents {
            backing.write_all_at(bytes, *start)?;
            written += bytes.len() as u64;
        }
        if backing.metadata()?.len() != self.size {
            backing.set_len(self.size)?;
        }
        self.extents.clear();
        self.cut = None;
        self.changed = false;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: deterministic, no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn read_all(unsynced: &Unsynced, backing: &File) -> Vec<u8> {
        unsynced
            .read(0, u64::MAX, |buf, at| backing.read_at(buf, at))
            .unwrap()
    }

    /// Random writes, truncations, reads, syncs and power losses against a plain model: the
    /// program always reads what it wrote, a sync makes the backing file equal to it, and a
    /// power loss brings back exactly the last synced contents.
    #[test]
    fn matches_a_simple_model() {
        for seed in 1..=40u64 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f");
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let initial: Vec<u8> = (0..rng.below(5000)).map(|i| i as u8).collect();
            std::fs::write(&path, &initial).unwrap();
            let backing = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap();
            let mut durable = initial.clone();
            let mut seen = initial.clone();
            let mut unsynced = Unsynced::new(initial.len() as u64);
            for step in 0..400 {
                match rng.below(10) {
                    0..=4 => {
                        let at = rng.below(seen.len() as u64 + 3000) as usize;
                        let max = if rng.below(4) == 0 { 9000 } else { 300 };
                        let len = 1 + rng.below(max);
                        let byte = (step % 250 + 1) as u8;
                        let data = vec![byte; len as usize];
                        unsynced.write(at as u64, &data);
                        if seen.len() < at + data.len() {
                            seen.resize(at + data.len(), 0);
                        }
                        seen[at..at + data.len()].copy_from_slice(&data);
                    }
                    5 => {
                        let size = rng.below(seen.len() as u64 + 2000) as usize;
                        unsynced.set_size(size as u64);
                        seen.resize(size, 0);
                    }
                    6 => {
                        let at = rng.below(seen.len() as u64 + 100);
                        let len = rng.below(5000);
                        let got = unsynced
                            .read(at, len, |buf, off| backing.read_at(buf, off))
                            .unwrap();
                        let from = (at as usize).min(seen.len());
                        let to = (at.saturating_add(len) as usize).min(seen.len());
                        assert_eq!(got, &seen[from..to], "seed {seed} step {step}");
                    }
                    7 => {
                        unsynced.apply(&backing).unwrap();
                        durable = seen.clone();
                        assert_eq!(std::fs::read(&path).unwrap(), durable);
                        assert!(!unsynced.is_dirty());
                    }
                    8 => {
                        // Power loss: the unsynced state is gone, the file is what was synced.
                        unsynced = Unsynced::new(backing.metadata().unwrap().len());
                        seen = durable.clone();
                        assert_eq!(std::fs::read(&path).unwrap(), durable);
                    }
                    _ => {
                        let end = rng.below(seen.len() as u64 + 1000);
                        unsynced.allocate(end);
                        if seen.len() < end as usize {
                            seen.resize(end as usize, 0);
                        }
                    }
                }
                assert_eq!(unsynced.size(), seen.len() as u64);
                assert_eq!(
                    read_all(&unsynced, &backing),
                    seen,
                    "seed {seed} step {step}"
                );
                // Extents never overlap or touch out of order.
                let mut last_end = 0;
                for (start, bytes) in &unsynced.extents {
                    assert!(*start >= last_end, "overlapping extents");
                    assert!(!bytes.is_empty());
                    last_end = start + bytes.len() as u64;
                }
            }
        }
    }

    #[test]
    fn appends_grow_one_extent() {
        let mut unsynced = Unsynced::new(0);
        for i in 0..1000u64 {
            unsynced.write(i * 10, &[i as u8; 10]);
        }
        assert_eq!(unsynced.extents.len(), 1);
        assert_eq!(unsynced.dirty_bytes(), 10_000);
    }
}
