//! Sets of colors.

/// Most colors a [`ColorMask`] (and so the allocator) distinguishes.
pub const MAX_COLORS: usize = 64;

/// A set of colors `0..64` (bit `c` = color `c`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ColorMask(pub u64);

impl ColorMask {
    /// No color.
    pub const EMPTY: Self = Self(0);

    /// Colors `0..n` (`n` is clamped to 64).
    pub const fn all(n: usize) -> Self {
        if n >= MAX_COLORS {
            Self(u64::MAX)
        } else {
            Self((1u64 << n) - 1)
        }
    }

    /// The mask with bits `bits`.
    pub const fn from_bits(bits: u64) -> Self {
        Self(bits)
    }

    /// The raw bits.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether color `c` is in the set (`false` for `c >= 64`).
    pub const fn contains(self, c: usize) -> bool {
        c < MAX_COLORS && self.0 & (1 << c) != 0
    }

    /// The set plus color `c` (`c < 64`; larger values are ignored).
    pub const fn with(self, c: usize) -> Self {
        if c < MAX_COLORS {
            Self(self.0 | 1 << c)
        } else {
            self
        }
    }

    /// Number of colors in the set.
    pub const fn count(self) -> u32 {
        self.0.count_ones()
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether the two sets share a color.
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// The colors of both sets.
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// The colors in increasing order.
    pub const fn iter(self) -> ColorIter {
        ColorIter(self.0)
    }
}

/// Iterator over the colors of a [`ColorMask`], in increasing order.
#[derive(Clone, Debug)]
pub struct ColorIter(u64);

impl Iterator for ColorIter {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let c = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn masks() {
        assert_eq!(ColorMask::all(0), ColorMask::EMPTY);
        assert_eq!(ColorMask::all(4).bits(), 0b1111);
        assert_eq!(ColorMask::all(64).bits(), u64::MAX);
        assert_eq!(ColorMask::all(100).count(), 64);
        let m = ColorMask::EMPTY.with(3).with(63).with(64);
        assert!(m.contains(3) && m.contains(63) && !m.contains(64) && !m.contains(0));
        assert_eq!(m.iter().collect::<Vec<_>>(), [3, 63]);
        assert!(m.intersects(ColorMask::all(4)) && !m.intersects(ColorMask::all(3)));
    }
}
