//! Test helpers: a log written from RFC 6962 §2.1 (independent of kt-log's tree code), and a
//! second implementation of the cosignature/v1 format written from the C2SP text.
#![allow(dead_code, unreachable_pub, missing_docs)]

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use kt_log::checkpoint::Checkpoint;
use kt_log::note::NoteSigner;
use kt_log::Hash;
use sha2::{Digest, Sha256};

fn sha(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// RFC 6962 MTH over leaf hashes.
fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => sha(&[]),
        1 => leaves[0],
        n => {
            let k = (n.next_power_of_two() / 2).max(1);
            let k = if k == n { n / 2 } else { k };
            sha(&[&[1], &mth(&leaves[..k]), &mth(&leaves[k..])])
        }
    }
}

/// RFC 6962 SUBPROOF(m, D[n], b).
fn subproof(m: usize, leaves: &[[u8; 32]], b: bool) -> Vec<[u8; 32]> {
    let n = leaves.len();
    if m == n {
        return if b { vec![] } else { vec![mth(leaves)] };
    }
    let k = {
        let k = n.next_power_of_two() / 2;
        if k == n {
            n / 2
        } else {
            k
        }
    };
    if m <= k {
        let mut p = subproof(m, &leaves[..k], b);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = subproof(m - k, &leaves[k..], false);
        p.push(mth(&leaves[..k]));
        p
    }
}

/// A log under test: entries, a note key named after its origin.
pub struct TestLog {
    pub origin: String,
    pub signer: NoteSigner,
    /// The entries, when the log was made from them ([`TestLog::from_entries`]).
    pub entries: Vec<Vec<u8>>,
    leaves: Vec<[u8; 32]>,
    /// A second history: the same first entry, then others.
    fork: Vec<[u8; 32]>,
}

impl TestLog {
    pub fn new(origin: &str, size: usize) -> TestLog {
        let leaves: Vec<[u8; 32]> = (0..size)
            .map(|i| sha(&[&[0], format!("entry {i}").as_bytes()]))
            .collect();
        let fork: Vec<[u8; 32]> = (0..size)
            .map(|i| {
                let text = if i == 0 {
                    format!("entry {i}")
                } else {
                    format!("forged {i}")
                };
                sha(&[&[0], text.as_bytes()])
            })
            .collect();
        TestLog {
            origin: origin.to_owned(),
            signer: NoteSigner::generate(origin).unwrap(),
            entries: vec![],
            leaves,
            fork,
        }
    }

    /// A log of these entries (leaf hash SHA-256(0 ‖ entry)); its fork is itself.
    pub fn from_entries(origin: &str, entries: Vec<Vec<u8>>) -> TestLog {
        let leaves: Vec<[u8; 32]> = entries.iter().map(|e| sha(&[&[0], e])).collect();
        TestLog {
            origin: origin.to_owned(),
            signer: NoteSigner::generate(origin).unwrap(),
            fork: leaves.clone(),
            leaves,
            entries,
        }
    }

    /// Writes the entry bundles of the tree of `size` entries under `dir` as tlog-tiles
    /// lays them out (`tile/entries/…`), written here from the C2SP text: 256 entries per
    /// bundle, each with a 16-bit big-endian length; the index in 3-digit groups, all but the
    /// last prefixed with `x`; a partial bundle's path ends in `.p/<width>`.
    pub fn write_bundles(&self, dir: &std::path::Path, size: usize) {
        for (index, chunk) in self.entries[..size].chunks(256).enumerate() {
            let mut bytes = Vec::new();
            for entry in chunk {
                bytes.extend_from_slice(&(entry.len() as u16).to_be_bytes());
                bytes.extend_from_slice(entry);
            }
            let mut groups = vec![format!("{:03}", index % 1000)];
            let mut rest = index / 1000;
            while rest > 0 {
                groups.push(format!("x{:03}", rest % 1000));
                rest /= 1000;
            }
            groups.reverse();
            let mut path = format!("tile/entries/{}", groups.join("/"));
            if chunk.len() < 256 {
                path.push_str(&format!(".p/{}", chunk.len()));
            }
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    }

    pub fn vkey(&self) -> String {
        self.signer.verifier().to_vkey()
    }

    pub fn root(&self, n: usize) -> Hash {
        Hash(mth(&self.leaves[..n]))
    }

    pub fn fork_root(&self, n: usize) -> Hash {
        Hash(mth(&self.fork[..n]))
    }

    /// The RFC 6962 consistency proof from `m` to `n` (empty for m = 0 or m = n).
    pub fn proof(&self, m: usize, n: usize) -> Vec<Hash> {
        if m == 0 || m == n {
            return vec![];
        }
        subproof(m, &self.leaves[..n], true)
            .into_iter()
            .map(Hash)
            .collect()
    }

    pub fn note_with_root(&self, n: usize, root: Hash, signer: &NoteSigner) -> Vec<u8> {
        let cp = Checkpoint {
            origin: self.origin.clone(),
            size: n as u64,
            root,
            extensions: vec![],
        };
        signer.sign(&cp.to_body()).unwrap().into_bytes()
    }

    pub fn note(&self, n: usize) -> Vec<u8> {
        self.note_with_root(n, self.root(n), &self.signer)
    }

    pub fn fork_note(&self, n: usize) -> Vec<u8> {
        self.note_with_root(n, self.fork_root(n), &self.signer)
    }

    /// The add-checkpoint body of old size `old`, `proof`, and `note`.
    pub fn body(old: u64, proof: &[Hash], note: &[u8]) -> Vec<u8> {
        let mut out = format!("old {old}\n");
        for h in proof {
            out.push_str(&B64.encode(h.0));
            out.push('\n');
        }
        out.push('\n');
        let mut out = out.into_bytes();
        out.extend_from_slice(note);
        out
    }

    /// The request a log sends to move the witness from `m` to `n`.
    pub fn request(&self, m: usize, n: usize) -> Vec<u8> {
        TestLog::body(m as u64, &self.proof(m, n), &self.note(n))
    }
}

/// The checkpoint body (note text) of a note.
pub fn note_text(note: &[u8]) -> String {
    let note = std::str::from_utf8(note).unwrap();
    let split = note.rfind("\n\n").unwrap();
    note[..split + 1].to_owned()
}

/// A second implementation of tlog-cosignature v1 (Ed25519) verification, from the C2SP text:
/// the vkey `name+hex(keyid)+base64(0x04 || pub)`, the line `— name base64(keyid || u64be
/// timestamp || sig)`, key id `SHA-256(name || "\n" || 0x04 || pub)[:4]`, signed message
/// `"cosignature/v1\n" || "time " || decimal(t) || "\n" || body`. Returns the timestamp.
pub fn independent_verify(vkey: &str, body: &str, line: &str) -> Result<u64, String> {
    let parts: Vec<&str> = vkey.trim().splitn(3, '+').collect();
    let [name, id_hex, key_b64] = parts[..] else {
        return Err("vkey form".into());
    };
    let key = B64.decode(key_b64).map_err(|e| e.to_string())?;
    if key.len() != 33 || key[0] != 0x04 {
        return Err("not a 0x04 key".into());
    }
    let public: [u8; 32] = key[1..].try_into().unwrap();
    let id = &sha(&[name.as_bytes(), b"\n", &[0x04], &public])[..4];
    if hex::encode(id) != id_hex {
        return Err("vkey id".into());
    }
    let line = line
        .strip_suffix('\n')
        .ok_or("line must end in a newline")?;
    let rest = line.strip_prefix("\u{2014} ").ok_or("em dash")?;
    let (line_name, sig_b64) = rest.split_once(' ').ok_or("name")?;
    if line_name != name {
        return Err("name".into());
    }
    let raw = B64.decode(sig_b64).map_err(|e| e.to_string())?;
    if raw.len() != 4 + 8 + 64 || &raw[..4] != id {
        return Err("length or key id".into());
    }
    let t = u64::from_be_bytes(raw[4..12].try_into().unwrap());
    if t == 0 || t >= 1 << 63 {
        return Err("timestamp".into());
    }
    let message = format!("cosignature/v1\ntime {t}\n{body}");
    VerifyingKey::from_bytes(&public)
        .map_err(|e| e.to_string())?
        .verify(
            message.as_bytes(),
            &Signature::from_slice(&raw[12..]).unwrap(),
        )
        .map_err(|e| e.to_string())?;
    Ok(t)
}

/// A configuration file text for `name` witnessing `logs`.
pub fn config_text(name: &str, logs: &[&TestLog]) -> String {
    let mut out = format!("name = \"{name}\"\n");
    for log in logs {
        out.push_str(&format!(
            "\n[[log]]\norigin = \"{}\"\nkeys = [\"{}\"]\n",
            log.origin,
            log.vkey()
        ));
    }
    out
}
