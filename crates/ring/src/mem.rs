//! Access to the shared region without Rust references to it.
//!
//! The region is shared with an untrusted peer that may change any byte at any time, so the
//! protocol never holds a `&T` or `&[u8]` into it: it asks a [`SharedMem`] for one word or one
//! copy at a time, reads each value it needs once, and validates it before use.

use core::sync::atomic::{fence, AtomicU32, Ordering};

/// A region of memory shared with an untrusted peer, addressed by byte offset from its start.
///
/// Implementations must not panic and must stay memory-safe whatever the peer does. The
/// protocol only uses in-range offsets (a [`Layout`](crate::Layout) is checked against
/// [`size`](SharedMem::size) before use) and 4-byte aligned ones for words; an implementation
/// may ignore out-of-range writes and return zeros for out-of-range reads.
pub trait SharedMem {
    /// Size of the region in bytes.
    fn size(&self) -> usize;
    /// Reads the 32-bit word at `offset` (4-byte aligned) with acquire ordering.
    fn load_u32(&self, offset: usize) -> u32;
    /// Writes the 32-bit word at `offset` (4-byte aligned) with release ordering.
    fn store_u32(&self, offset: usize, value: u32);
    /// Copies `buf.len()` bytes starting at `offset` into `buf` (no ordering of its own: it is
    /// ordered by the `load_u32` that precedes it).
    fn read_bytes(&self, offset: usize, buf: &mut [u8]);
    /// Copies `data` to the region starting at `offset` (ordered by the `store_u32` that
    /// follows it).
    fn write_bytes(&self, offset: usize, data: &[u8]);
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

/// Word-granular access, from which the byte copies of [`SharedMem`] are built.
pub(crate) trait WordAccess {
    /// Number of 32-bit words in the region.
    fn word_count(&self) -> usize;
    /// The `index`-th word, or `None` past the end.
    fn word(&self, index: usize) -> Option<&AtomicU32>;
}

pub(crate) fn load_word<W: WordAccess + ?Sized>(w: &W, offset: usize) -> u32 {
    debug_assert!(offset.is_multiple_of(4) && offset / 4 < w.word_count());
    if !offset.is_multiple_of(4) {
        return 0;
    }
    w.word(offset / 4).map_or(0, |a| a.load(Ordering::Acquire))
}

pub(crate) fn store_word<W: WordAccess + ?Sized>(w: &W, offset: usize, value: u32) {
    debug_assert!(offset.is_multiple_of(4) && offset / 4 < w.word_count());
    if !offset.is_multiple_of(4) {
        return;
    }
    if let Some(a) = w.word(offset / 4) {
        a.store(value, Ordering::Release);
    }
}

pub(crate) fn read_bytes_by_word<W: WordAccess + ?Sized>(w: &W, offset: usize, buf: &mut [u8]) {
    debug_assert!(offset
        .checked_add(buf.len())
        .is_some_and(|end| end <= w.word_count() * 4));
    let mut off = offset;
    let mut done = 0;
    while done < buf.len() {
        let Some(word) = w.word(off / 4) else {
            buf[done..].fill(0);
            return;
        };
        let first = off % 4;
        let n = (4 - first).min(buf.len() - done);
        let bytes = word.load(Ordering::Relaxed).to_ne_bytes();
        buf[done..done + n].copy_from_slice(&bytes[first..first + n]);
        done += n;
        off += n;
    }
}

pub(crate) fn write_bytes_by_word<W: WordAccess + ?Sized>(w: &W, offset: usize, data: &[u8]) {
    debug_assert!(offset
        .checked_add(data.len())
        .is_some_and(|end| end <= w.word_count() * 4));
    let mut off = offset;
    let mut done = 0;
    while done < data.len() {
        let Some(word) = w.word(off / 4) else {
            return;
        };
        let first = off % 4;
        let n = (4 - first).min(data.len() - done);
        if n == 4 {
            let v = [data[done], data[done + 1], data[done + 2], data[done + 3]];
            word.store(u32::from_ne_bytes(v), Ordering::Relaxed);
        } else {
            // Part of a word: replace only our bytes, leaving the others intact. Two wait-free
            // read-modify-writes rather than a compare-exchange loop, which a peer writing the
            // same word continuously could keep failing.
            let mut mask = [0u8; 4];
            let mut val = [0u8; 4];
            mask[first..first + n].fill(0xff);
            val[first..first + n].copy_from_slice(&data[done..done + n]);
            word.fetch_and(!u32::from_ne_bytes(mask), Ordering::Relaxed);
            word.fetch_or(u32::from_ne_bytes(val), Ordering::Relaxed);
        }
        done += n;
        off += n;
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

impl WordAccess for AtomicSliceMem<'_> {
    fn word_count(&self) -> usize {
        self.words.len()
    }
    fn word(&self, index: usize) -> Option<&AtomicU32> {
        self.words.get(index)
    }
}

impl SharedMem for AtomicSliceMem<'_> {
    fn size(&self) -> usize {
        self.words.len() * 4
    }
    fn load_u32(&self, offset: usize) -> u32 {
        load_word(self, offset)
    }
    fn store_u32(&self, offset: usize, value: u32) {
        store_word(self, offset, value)
    }
    fn read_bytes(&self, offset: usize, buf: &mut [u8]) {
        read_bytes_by_word(self, offset, buf)
    }
    fn write_bytes(&self, offset: usize, data: &[u8]) {
        write_bytes_by_word(self, offset, data)
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
