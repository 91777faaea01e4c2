//! The payload bundle: every guest payload (image, device tree, initramfs) of one Tessera build,
//! in one file loaded beside the EL2 image, so that the image stays small and guest bytes are
//! not part of the hypervisor.
//!
//! The build (crates/config) writes the bundle and compiles its [identity](Bundle::identity)
//! into the image; at boot the hypervisor reads the bundle where the build placed it, checks
//! its header, that its identity is the compiled-in one (it is the bundle of *this* build),
//! and every payload's SHA-256 before any VM is built. Nothing in a bundle is trusted before
//! those checks: every offset and size is validated and no input makes the reader panic.
//!
//! # Format (all integers little-endian)
//! ```text
//! header, 64 bytes:
//!   0  magic          "TSRPAYLD"
//!   8  version        u32 = 1
//!  12  count          u32   entries (at most MAX_ENTRIES)
//!  16  total_size     u64   bytes of the whole bundle
//!  24  load_address   u64   physical address the bundle must be loaded at
//!  32  identity       [u8; 32]  SHA-256 of header bytes 0..32 followed by the entry table
//! entry table, count x 64 bytes:
//!   0  vm u16, kind u8, 0 u8, 0 u32
//!   8  offset u64 (from the bundle's start, PAYLOAD_ALIGN-aligned, after the table)
//!  16  size u64
//!  24  sha256 [u8; 32] of the payload's bytes
//!  56  0 u64
//! payloads, each at its offset; padding bytes are zero.
//! ```
//! The identity covers every entry's digest, so a bundle whose identity matches and whose
//! payloads match their digests is byte for byte the one the build made.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

#[cfg(all(not(test), feature = "std"))]
extern crate std;

use sha2::{Digest, Sha256};

/// First bytes of every bundle.
pub const MAGIC: [u8; 8] = *b"TSRPAYLD";
/// The format version this crate reads and writes.
pub const VERSION: u32 = 1;
/// Header bytes.
pub const HEADER_SIZE: usize = 64;
/// Bytes per entry.
pub const ENTRY_SIZE: usize = 64;
/// Most entries a bundle may have.
pub const MAX_ENTRIES: usize = 256;
/// Alignment of every payload inside the bundle (and of the bundle itself in memory).
pub const PAYLOAD_ALIGN: u64 = 4096;

/// A SHA-256 digest.
pub type Digest256 = [u8; 32];

/// What a payload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A guest image (flattened: copied to its load address as it is).
    Image,
    /// A guest's device tree blob.
    Dtb,
    /// A guest's initramfs.
    Initrd,
}

impl Kind {
    /// The entry's kind byte.
    pub fn code(self) -> u8 {
        match self {
            Kind::Image => 1,
            Kind::Dtb => 2,
            Kind::Initrd => 3,
        }
    }
    fn from_code(c: u8) -> Option<Kind> {
        match c {
            1 => Some(Kind::Image),
            2 => Some(Kind::Dtb),
            3 => Some(Kind::Initrd),
            _ => None,
        }
    }
    /// Lower-case name, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Dtb => "dtb",
            Kind::Initrd => "initrd",
        }
    }
}

/// One payload's description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The VM (index in the config) the payload belongs to.
    pub vm: u16,
    pub kind: Kind,
    /// From the bundle's start.
    pub offset: u64,
    pub size: u64,
    pub sha256: Digest256,
}

/// Why a bundle was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Fewer bytes than a header.
    Truncated,
    /// The first 8 bytes are not [`MAGIC`] (they are given: all zero usually means nothing
    /// was loaded there).
    BadMagic([u8; 8]),
    UnsupportedVersion(u32),
    TooManyEntries(u32),
    /// The header's total size is smaller than header + table, or larger than the bytes
    /// available.
    BadTotalSize {
        total: u64,
        available: u64,
    },
    /// The header names another load address than the one it was found at.
    WrongAddress {
        header: u64,
        found_at: u64,
    },
    /// The identity in the header does not match the header and table.
    Corrupt,
    /// A well-formed bundle of another build (its identity is not the expected one).
    OtherBuild,
    /// An entry's kind is unknown, or its reserved bytes are not zero.
    BadEntry {
        index: u16,
    },
    /// An entry's bytes lie outside the bundle, overlap the table or are misaligned.
    EntryOutOfBounds {
        index: u16,
    },
    /// An entry's bytes do not hash to its digest.
    DigestMismatch {
        index: u16,
    },
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Error::Truncated => write!(f, "shorter than a bundle header"),
            Error::BadMagic(m) if m == [0; 8] => {
                write!(f, "no bundle there (the memory is zero: was it loaded?)")
            }
            Error::BadMagic(m) => write!(f, "not a Tessera payload bundle (starts {:02x?})", m),
            Error::UnsupportedVersion(v) => {
                write!(f, "bundle format version {v}, this build reads {VERSION}")
            }
            Error::TooManyEntries(n) => write!(f, "{n} entries (at most {MAX_ENTRIES})"),
            Error::BadTotalSize { total, available } => write!(
                f,
                "header says {total:#x} bytes, but {available:#x} are available (or fewer than its own table)"
            ),
            Error::WrongAddress { header, found_at } => write!(
                f,
                "built to be loaded at {header:#x}, found at {found_at:#x}"
            ),
            Error::Corrupt => write!(f, "header or entry table corrupt (identity mismatch)"),
            Error::OtherBuild => write!(
                f,
                "a valid bundle, but of another build (config, guests or board differ)"
            ),
            Error::BadEntry { index } => write!(f, "entry {index} is malformed"),
            Error::EntryOutOfBounds { index } => {
                write!(f, "entry {index} lies outside the bundle or is misaligned")
            }
            Error::DigestMismatch { index } => {
                write!(f, "payload {index} does not match its SHA-256")
            }
        }
    }
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[off..off + 2]);
    u16::from_le_bytes(a)
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}
fn digest_at(b: &[u8], off: usize) -> Digest256 {
    let mut a = [0u8; 32];
    a.copy_from_slice(&b[off..off + 32]);
    a
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> Digest256 {
    Sha256::digest(bytes).into()
}

/// The identity of a header (its first 32 bytes) and entry table.
fn identity_of(header32: &[u8], table: &[u8]) -> Digest256 {
    let mut h = Sha256::new();
    h.update(header32);
    h.update(table);
    h.finalize().into()
}

/// A bundle whose header, table and entry bounds were checked ([`Bundle::parse`]); payload
/// digests are checked by [`Bundle::verify_payloads`].
#[derive(Clone, Copy, Debug)]
pub struct Bundle<'a> {
    bytes: &'a [u8],
    count: usize,
    identity: Digest256,
    load_address: u64,
}

impl<'a> Bundle<'a> {
    /// Reads the header of a bundle that may be up to `available.len()` bytes long and was
    /// found at physical address `found_at`: checks magic, version, sizes, the load address,
    /// the identity against the header and table, and every entry's kind and bounds. Returns
    /// the bundle over exactly its `total_size` bytes.
    pub fn parse(available: &'a [u8], found_at: u64) -> Result<Bundle<'a>, Error> {
        let h = available.get(..HEADER_SIZE).ok_or(Error::Truncated)?;
        let mut magic = [0u8; 8];
        magic.copy_from_slice(&h[..8]);
        if magic != MAGIC {
            return Err(Error::BadMagic(magic));
        }
        let version = u32_at(h, 8);
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let count = u32_at(h, 12);
        if count as usize > MAX_ENTRIES {
            return Err(Error::TooManyEntries(count));
        }
        let count = count as usize;
        let total = u64_at(h, 16);
        let table_end = HEADER_SIZE + count * ENTRY_SIZE;
        let available_len = available.len() as u64;
        if total > available_len || total < table_end as u64 {
            return Err(Error::BadTotalSize {
                total,
                available: available_len,
            });
        }
        let load_address = u64_at(h, 24);
        if load_address != found_at {
            return Err(Error::WrongAddress {
                header: load_address,
                found_at,
            });
        }
        let bytes = &available[..total as usize];
        let table = &bytes[HEADER_SIZE..table_end];
        let identity = digest_at(h, 32);
        if identity_of(&h[..32], table) != identity {
            return Err(Error::Corrupt);
        }
        let b = Bundle {
            bytes,
            count,
            identity,
            load_address,
        };
        for i in 0..count {
            let index = i as u16;
            let e = b.entry(i).ok_or(Error::BadEntry { index })?;
            let end = e.offset.checked_add(e.size);
            let ok = e.offset >= table_end as u64
                && e.offset % PAYLOAD_ALIGN == 0
                && end.is_some_and(|end| end <= total);
            if !ok {
                return Err(Error::EntryOutOfBounds { index });
            }
        }
        Ok(b)
    }

    /// [`parse`](Self::parse), then the identity must be `expected` (the one compiled into the
    /// image), then every payload's digest is checked.
    pub fn open(available: &'a [u8], found_at: u64, expected: &Digest256) -> Result<Self, Error> {
        let b = Bundle::parse(available, found_at)?;
        if &b.identity != expected {
            return Err(Error::OtherBuild);
        }
        b.verify_payloads()?;
        Ok(b)
    }

    /// Checks every payload against its SHA-256.
    pub fn verify_payloads(&self) -> Result<(), Error> {
        for i in 0..self.count {
            let index = i as u16;
            let e = self.entry(i).ok_or(Error::BadEntry { index })?;
            let bytes = self.payload(i).ok_or(Error::EntryOutOfBounds { index })?;
            if sha256(bytes) != e.sha256 {
                return Err(Error::DigestMismatch { index });
            }
        }
        Ok(())
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Total bytes.
    pub fn total_size(&self) -> u64 {
        self.bytes.len() as u64
    }

    pub fn identity(&self) -> &Digest256 {
        &self.identity
    }

    pub fn load_address(&self) -> u64 {
        self.load_address
    }

    /// Entry `i` (`None` past the end or when malformed).
    pub fn entry(&self, i: usize) -> Option<Entry> {
        if i >= self.count {
            return None;
        }
        let off = HEADER_SIZE + i * ENTRY_SIZE;
        let e = self.bytes.get(off..off + ENTRY_SIZE)?;
        let kind = Kind::from_code(e[2])?;
        if e[3] != 0 || u32_at(e, 4) != 0 || u64_at(e, 56) != 0 {
            return None;
        }
        Some(Entry {
            vm: u16_at(e, 0),
            kind,
            offset: u64_at(e, 8),
            size: u64_at(e, 16),
            sha256: digest_at(e, 24),
        })
    }

    /// The bytes of entry `i`.
    pub fn payload(&self, i: usize) -> Option<&'a [u8]> {
        let e = self.entry(i)?;
        let start = usize::try_from(e.offset).ok()?;
        let end = start.checked_add(usize::try_from(e.size).ok()?)?;
        self.bytes.get(start..end)
    }

    /// The index of VM `vm`'s payload of kind `kind`.
    pub fn find(&self, vm: u16, kind: Kind) -> Option<usize> {
        (0..self.count).find(|&i| self.entry(i).is_some_and(|e| e.vm == vm && e.kind == kind))
    }
}

#[cfg(any(test, feature = "std"))]
mod builder;
#[cfg(any(test, feature = "std"))]
pub use builder::{Builder, Built};

#[cfg(test)]
mod tests;
