//! Writing a bundle (the build side).

use std::vec;
use std::vec::Vec;

use crate::{
    identity_of, sha256, Digest256, Kind, ENTRY_SIZE, HEADER_SIZE, MAGIC, PAYLOAD_ALIGN, VERSION,
};

/// Collects payloads, then writes the bundle.
#[derive(Clone, Debug, Default)]
pub struct Builder {
    items: Vec<(u16, Kind, Vec<u8>)>,
}

/// A finished bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Built {
    pub bytes: Vec<u8>,
    pub identity: Digest256,
}

fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

impl Builder {
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Adds a payload; returns its entry index.
    pub fn push(&mut self, vm: u16, kind: Kind, bytes: &[u8]) -> usize {
        self.items.push((vm, kind, bytes.to_vec()));
        self.items.len() - 1
    }

    /// Number of payloads so far.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The size [`finish`](Self::finish) will produce.
    pub fn total_size(&self) -> u64 {
        let mut off = align_up(
            (HEADER_SIZE + self.items.len() * ENTRY_SIZE) as u64,
            PAYLOAD_ALIGN,
        );
        for (_, _, b) in &self.items {
            off = align_up(off + b.len() as u64, PAYLOAD_ALIGN);
        }
        off
    }

    /// The bundle, to be loaded at physical `load_address`. Panics only if more than
    /// [`crate::MAX_ENTRIES`] payloads were pushed (a build-side bug; the config allows fewer).
    pub fn finish(&self, load_address: u64) -> Built {
        assert!(self.items.len() <= crate::MAX_ENTRIES, "too many payloads");
        let total = self.total_size();
        let mut out = vec![0u8; total as usize];
        out[..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&(self.items.len() as u32).to_le_bytes());
        out[16..24].copy_from_slice(&total.to_le_bytes());
        out[24..32].copy_from_slice(&load_address.to_le_bytes());
        let mut off = align_up(
            (HEADER_SIZE + self.items.len() * ENTRY_SIZE) as u64,
            PAYLOAD_ALIGN,
        );
        for (i, (vm, kind, bytes)) in self.items.iter().enumerate() {
            let e = HEADER_SIZE + i * ENTRY_SIZE;
            out[e..e + 2].copy_from_slice(&vm.to_le_bytes());
            out[e + 2] = kind.code();
            out[e + 8..e + 16].copy_from_slice(&off.to_le_bytes());
            out[e + 16..e + 24].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
            out[e + 24..e + 56].copy_from_slice(&sha256(bytes));
            let o = off as usize;
            out[o..o + bytes.len()].copy_from_slice(bytes);
            off = align_up(off + bytes.len() as u64, PAYLOAD_ALIGN);
        }
        let table_end = HEADER_SIZE + self.items.len() * ENTRY_SIZE;
        let identity = identity_of(&out[..32], &out[HEADER_SIZE..table_end]);
        out[32..64].copy_from_slice(&identity);
        Built {
            bytes: out,
            identity,
        }
    }
}
