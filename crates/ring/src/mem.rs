//! Access to the shared region without Rust references to it.
//!
//! The region is shared with an untrusted peer that may change any byte at any time, so the
//! protocol never holds a `&T` or `&[u8]` into it: it asks a [`SharedMem`] for one word or one
//! copy at a time, reads each value it needs once, and validates it before use.

use core::sync::atomic::{fence, AtomicU32, Ordering};

/// A region of memory shared with an untrusted peer, addressed by byte offset from its start.
///
/// An implementation gives the region's [`size`](SharedMem::size) and its 32-bit words as
/// atomics ([`word`](SharedMem::word)); the word and byte accesses the protocol uses are
/// default methods built on those two, so every implementation copies bytes the same way.
/// Implementations must not panic and must stay memory-safe whatever the peer does. The
/// protocol only uses in-range offsets (a [`Layout`](crate::Layout) is checked against
/// [`size`](SharedMem::size) before use) and 4-byte aligned ones for words; out-of-range writes
/// are ignored and out-of-range reads return zeros.
pub trait SharedMem {
    /// Size of the region in bytes (a multiple of 4: whole words).
    fn size(&self) -> usize;

    /// The `index`-th 32-bit word of the region, or `None` past the end.
    fn word(&self, index: usize) -> Option<&AtomicU32>;

    /// Reads the 32-bit word at `offset` (4-byte aligned) with acquire ordering.
    fn load_u32(&self, offset: usize) -> u32 {
        debug_assert!(offset.is_multiple_of(4) && offset < self.size());
        if !offset.is_multiple_of(4) {
            return 0;
        }
        self.word(offset / 4)
            .map_or(0, |a| a.load(Ordering::Acquire))
    }

    /// Writes the 32-bit word at `offset` (4-byte aligned) with release ordering.
    fn store_u32(&self, offset: usize, value: u32) {
        debug_assert!(offset.is_multiple_of(4) && offset < self.size());
        if !offset.is_multiple_of(4) {
            return;
        }
        if let Some(a) = self.word(offset / 4) {
            a.store(value, Ordering::Release);
        }
    }

    /// Copies `buf.len()` bytes starting at `offset` into `buf` (no ordering of its own: it is
    /// ordered by the `load_u32` that precedes it). Bytes past the end read as 0.
    fn read_bytes(&self, offset: usize, buf: &mut [u8]) {
        debug_assert!(offset
            .checked_add(buf.len())
            .is_some_and(|end| end <= self.size()));
        // A partial first word, whole words, a partial last word.
        let head = ((4 - offset % 4) % 4).min(buf.len());
        let (first, rest) = buf.split_at_mut(head);
        let (words, tail) = rest.as_chunks_mut::<4>();
        let word_at = |i: usize| self.word(i).map_or(0, |w| w.load(Ordering::Relaxed));
        if !first.is_empty() {
            let bytes = word_at(offset / 4).to_ne_bytes();
            let at = offset % 4;
            first.copy_from_slice(&bytes[at..at + head]);
        }
        let mut i = (offset + head) / 4;
        for c in words {
            *c = word_at(i).to_ne_bytes();
            i += 1;
        }
        if !tail.is_empty() {
            let n = tail.len();
            tail.copy_from_slice(&word_at(i).to_ne_bytes()[..n]);
        }
    }

    /// Copies `data` to the region starting at `offset` (ordered by the `store_u32` that
    /// follows it). Bytes past the end are dropped.
    fn write_bytes(&self, offset: usize, data: &[u8]) {
        debug_assert!(offset
            .checked_add(data.len())
            .is_some_and(|end| end <= self.size()));
        // Part of a word: replace only our bytes, leaving the others intact. Two wait-free
        // read-modify-writes rather than a compare-exchange loop, which a peer writing the same
        // word continuously could keep failing.
        let partial = |index: usize, at: usize, bytes: &[u8]| {
            if let Some(word) = self.word(index) {
                let mut mask = [0u8; 4];
                let mut val = [0u8; 4];
                mask[at..at + bytes.len()].fill(0xff);
                val[at..at + bytes.len()].copy_from_slice(bytes);
                word.fetch_and(!u32::from_ne_bytes(mask), Ordering::Relaxed);
                word.fetch_or(u32::from_ne_bytes(val), Ordering::Relaxed);
            }
        };
        let head = ((4 - offset % 4) % 4).min(data.len());
        let (first, rest) = data.split_at(head);
        if !first.is_empty() {
            partial(offset / 4, offset % 4, first);
        }
        let mut i = (offset + head) / 4;
        let (words, tail) = rest.as_chunks::<4>();
        for c in words {
            if let Some(word) = self.word(i) {
                word.store(u32::from_ne_bytes(*c), Ordering::Relaxed);
            }
            i += 1;
        }
        if !tail.is_empty() {
            partial(i, 0, tail);
        }
    }

    /// A full (sequentially consistent) fence between an earlier store and a later load, as
    /// needed around the event index so that no wake-up is lost. On AArch64: `dmb ish`.
    fn fence(&self) {
        fence(Ordering::SeqCst);
    }
}

impl<T: SharedMem + ?Sized> SharedMem for &T {
    fn size(&self) -> usize {
        (**self).size()
    }
    fn word(&self, index: usize) -> Option<&AtomicU32> {
        (**self).word(index)
    }
    fn load_u32(&self, offset: usize) -> u32 {
        (**self).load_u32(offset)
    }
    fn store_u32(&self, offset: usize, value: u32) {
        (**self).store_u32(offset, value)
    }
    fn read_bytes(&self, offset: usize, buf: &mut [u8]) {
        (**self).read_bytes(offset, buf)
    }
    fn write_bytes(&self, offset: usize, data: &[u8]) {
        (**self).write_bytes(offset, data)
    }
    fn fence(&self) {
        (**self).fence()
    }
}

/// A [`SharedMem`] over a slice of atomic words: safe code, no heap. Host tests use it over a
/// `Vec<AtomicU32>`; a guest that can turn its mapping into `&[AtomicU32]` may use it too.
#[derive(Clone, Copy, Debug)]
pub struct AtomicSliceMem<'a> {
    words: &'a [AtomicU32],
}

impl<'a> AtomicSliceMem<'a> {
    /// The region made of `words` (its size is `4 * words.len()` bytes).
    pub const fn new(words: &'a [AtomicU32]) -> Self {
        AtomicSliceMem { words }
    }

    /// The words of the region.
    pub const fn words(&self) -> &'a [AtomicU32] {
        self.words
    }
}

impl SharedMem for AtomicSliceMem<'_> {
    fn size(&self) -> usize {
        self.words.len() * 4
    }
    fn word(&self, index: usize) -> Option<&AtomicU32> {
        self.words.get(index)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn byte_copies_at_every_alignment() {
        let words: Vec<AtomicU32> = (0..8).map(|_| AtomicU32::new(0xAAAA_AAAA)).collect();
        let m = AtomicSliceMem::new(&words);
        assert_eq!(m.size(), 32);
        for start in 0..8 {
            for len in 0..(32 - start).min(13) {
                let data: Vec<u8> = (0..len).map(|i| (i * 7 + start) as u8).collect();
                m.write_bytes(start, &data);
                let mut back = std::vec![0u8; len];
                m.read_bytes(start, &mut back);
                assert_eq!(back, data);
                // Bytes around the copy are untouched.
                let mut all = [0u8; 32];
                m.read_bytes(0, &mut all);
                assert!(all[..start].iter().all(|&b| b == 0xAA));
                assert!(all[start + len..].iter().all(|&b| b == 0xAA));
                m.write_bytes(0, &[0xAA; 32]);
            }
        }
        m.store_u32(4, 0x1234_5678);
        assert_eq!(m.load_u32(4), 0x1234_5678);
        let mut b = [0u8; 4];
        m.read_bytes(4, &mut b);
        assert_eq!(b, 0x1234_5678u32.to_ne_bytes());
    }
}
