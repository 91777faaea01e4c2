//! Splitting 1/2/4/8-byte MMIO accesses into 32-bit register words with byte lanes.
//!
//! Every register is handled as 32-bit words; a 64-bit register (IROUTER, GICR_TYPER) is two
//! words. A narrower access passes the mask of the bytes it covers, so byte-per-interrupt
//! registers (IPRIORITYR, ITARGETSR, [CS]PENDSGIR) touch only those bytes and read-write
//! registers merge. Accesses not aligned to their size, or of another size, are RAZ/WI.

fn valid(offset: u64, size: usize) -> bool {
    matches!(size, 1 | 2 | 4 | 8) && offset.is_multiple_of(size as u64)
}

fn lanes(size: usize, offset: u64) -> (u32, u32) {
    let shift = ((offset & 3) * 8) as u32;
    let mask = if size >= 4 {
        u32::MAX
    } else {
        ((1u32 << (size * 8)) - 1) << shift
    };
    (mask, shift)
}

/// Reads through `read32(word_offset, byte_mask)`.
pub(crate) fn read(offset: u64, size: usize, mut read32: impl FnMut(u64, u32) -> u32) -> u64 {
    if !valid(offset, size) {
        return 0;
    }
    if size == 8 {
        return u64::from(read32(offset, u32::MAX))
            | (u64::from(read32(offset + 4, u32::MAX)) << 32);
    }
    let (mask, shift) = lanes(size, offset);
    u64::from((read32(offset & !3, mask) & mask) >> shift)
}

/// Writes through `write32(word_offset, value, byte_mask)`; `value` bits outside the mask
/// are zero.
pub(crate) fn write(offset: u64, size: usize, value: u64, mut write32: impl FnMut(u64, u32, u32)) {
    if !valid(offset, size) {
        return;
    }
    if size == 8 {
        write32(offset, value as u32, u32::MAX);
        write32(offset + 4, (value >> 32) as u32, u32::MAX);
        return;
    }
    let (mask, shift) = lanes(size, offset);
    write32(offset & !3, ((value as u32) << shift) & mask, mask);
}

/// The new value of a read-write register word after a masked write.
pub(crate) fn merge(old: u32, value: u32, mask: u32) -> u32 {
    (old & !mask) | (value & mask)
}

/// Offset of the first byte a mask covers within its word.
pub(crate) fn first_byte(word: u64, mask: u32) -> u64 {
    word + u64::from(mask.trailing_zeros() / 8)
}
