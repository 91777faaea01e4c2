//! The bodies of Tessera's fuzz targets. Each module's `run(data)` is what the cargo-fuzz
//! binary `fuzz/fuzz_targets/<target>.rs` calls on every input, and what the replay test
//! (`tests/corpus.rs`, stable, part of `cargo xtask test`) calls on every file of
//! `fuzz/corpus/<target>/`. A target fails by panicking (an assertion of an invariant, or a
//! panic inside the code under test).
#![forbid(unsafe_code)]

pub mod config;
pub mod dtb;
pub mod ring;
pub mod trap;
pub mod vgic;

/// A target's body: one input.
pub type Target = fn(&[u8]);

/// The targets by name, as `cargo xtask fuzz --target` and the corpus directories name them.
pub const TARGETS: [(&str, Target); 5] = [
    ("config", config::run),
    ("vgic", vgic::run),
    ("ring", ring::run),
    ("dtb", dtb::run),
    ("trap", trap::run),
];

/// Reads fuzz input as a stream of integers; past the end every read is 0.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// Whether every byte was consumed.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next `N` bytes (zero-padded at the end).
    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        let n = self.data.len().min(N);
        b[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        b
    }

    /// Up to `n` raw bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = self.data.len().min(n);
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }

    /// A byte.
    pub fn u8(&mut self) -> u8 {
        self.bytes::<1>()[0]
    }

    /// A little-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.bytes())
    }

    /// A little-endian u32.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes())
    }

    /// A little-endian u64.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.bytes())
    }
}
