//! LLC geometry: from `CLIDR_EL1` / `CCSIDR_EL1` or given by the board.

use crate::{PhysAddr, MAX_COLORS};

/// The shape of a (last-level) cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheGeometry {
    /// Total size in bytes.
    pub size: u64,
    /// Associativity (number of ways).
    pub ways: u32,
    /// Line size in bytes.
    pub line: u32,
}

impl CacheGeometry {
    /// Number of page colors: `size / ways / page_size`, at least 1 and at most 64
    /// ([`MAX_COLORS`]). Clamping to 64 keeps coloring sound for power-of-two color counts:
    /// pages whose colors differ mod 64 also differ mod any multiple of 64.
    pub const fn colors(&self, page_size: u64) -> usize {
        if self.ways == 0 || page_size == 0 {
            return 1;
        }
        let n = self.size / self.ways as u64 / page_size;
        if n == 0 {
            1
        } else if n > MAX_COLORS as u64 {
            MAX_COLORS
        } else {
            n as usize
        }
    }

    /// Number of colors of 4 KiB pages.
    pub const fn page_colors(&self) -> usize {
        self.colors(crate::FRAME_SIZE)
    }

    /// The color of the 4 KiB page holding `pa`: `(pa / 4 KiB) mod page_colors()`.
    pub const fn color_of(&self, pa: PhysAddr) -> usize {
        ((pa.0 / crate::FRAME_SIZE) % self.page_colors() as u64) as usize
    }

    /// The geometry a `CCSIDR_EL1` value describes. `ccidx` says whether the CPU implements
    /// FEAT_CCIDX (64-bit format: Associativity \[23:3\], NumSets \[55:32\]; otherwise the 32-bit
    /// format: Associativity \[12:3\], NumSets \[27:13\]); LineSize \[2:0\] = log2(bytes) − 4 in
    /// both. See [`ccidx_from_mmfr2`].
    pub const fn from_ccsidr(ccsidr: u64, ccidx: bool) -> Self {
        let line = 1u32 << ((ccsidr & 0b111) + 4);
        let (ways, sets) = if ccidx {
            (
                ((ccsidr >> 3) & 0x1f_ffff) + 1,
                ((ccsidr >> 32) & 0xff_ffff) + 1,
            )
        } else {
            (((ccsidr >> 3) & 0x3ff) + 1, ((ccsidr >> 13) & 0x7fff) + 1)
        };
        Self {
            size: sets * ways * line as u64,
            ways: ways as u32,
            line,
        }
    }

    /// The last-level data or unified cache: finds its level in `clidr` ([`llc_level`]), has
    /// `read_ccsidr` select it and read `CCSIDR_EL1` (the argument is the `CSSELR_EL1` value
    /// to write first, see [`csselr_data`]), and decodes the result. `None` without any data
    /// or unified cache.
    pub fn from_registers(
        clidr: u64,
        ccidx: bool,
        read_ccsidr: impl FnOnce(u64) -> u64,
    ) -> Option<Self> {
        let level = llc_level(clidr)?;
        Some(Self::from_ccsidr(read_ccsidr(csselr_data(level)), ccidx))
    }
}

/// The highest cache level (1..=7) that `CLIDR_EL1` reports as a data, separate
/// instruction+data, or unified cache (`Ctype<n>` ∈ {0b010, 0b011, 0b100}); `None` if none.
pub const fn llc_level(clidr: u64) -> Option<u8> {
    let mut level = 7u8;
    while level >= 1 {
        let ctype = (clidr >> (3 * (level as u64 - 1))) & 0b111;
        if ctype == 0b010 || ctype == 0b011 || ctype == 0b100 {
            return Some(level);
        }
        level -= 1;
    }
    None
}

/// The `CSSELR_EL1` value selecting the data or unified cache of `level` (1..=7):
/// Level \[3:1\] = level − 1, InD = 0.
pub const fn csselr_data(level: u8) -> u64 {
    ((level as u64).saturating_sub(1) & 0b111) << 1
}

/// Whether `ID_AA64MMFR2_EL1` reports FEAT_CCIDX (CCIDX, bits \[23:20\], non-zero).
pub const fn ccidx_from_mmfr2(id_aa64mmfr2: u64) -> bool {
    (id_aa64mmfr2 >> 20) & 0xf != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes a CCSIDR value (the inverse of `from_ccsidr`).
    fn ccsidr(line: u32, ways: u64, sets: u64, ccidx: bool) -> u64 {
        let ls = (line.trailing_zeros() - 4) as u64;
        if ccidx {
            ls | (ways - 1) << 3 | (sets - 1) << 32
        } else {
            ls | (ways - 1) << 3 | (sets - 1) << 13
        }
    }

    #[test]
    fn cortex_a72_l2() {
        // RPi4: 1 MiB, 16 ways, 64-byte lines → 1024 sets; 64 KiB per way → 16 colors.
        for ccidx in [false, true] {
            let g = CacheGeometry::from_ccsidr(ccsidr(64, 16, 1024, ccidx), ccidx);
            assert_eq!(
                g,
                CacheGeometry {
                    size: 1 << 20,
                    ways: 16,
                    line: 64
                }
            );
            assert_eq!(g.page_colors(), 16);
            assert_eq!(g.color_of(PhysAddr(0x4001_5fff)), 5);
        }
    }

    #[test]
    fn qemu_cortex_a57_l2() {
        // QEMU's cortex-a57 CCSIDR for its L2: 2 MiB, 16 ways, 64-byte lines, 2048 sets.
        let g = CacheGeometry::from_ccsidr(0x70ff_e07a, false);
        assert_eq!(
            g,
            CacheGeometry {
                size: 2 << 20,
                ways: 16,
                line: 64
            }
        );
        assert_eq!(g.page_colors(), 32);
    }

    #[test]
    fn colors_clamped() {
        let g = CacheGeometry {
            size: 32 << 10,
            ways: 16,
            line: 64,
        };
        assert_eq!(g.page_colors(), 1);
        let g = CacheGeometry {
            size: 8 << 20,
            ways: 4,
            line: 64,
        };
        assert_eq!(g.page_colors(), 64);
        assert_eq!(
            CacheGeometry {
                size: 1 << 20,
                ways: 0,
                line: 64
            }
            .page_colors(),
            1
        );
        assert_eq!(
            CacheGeometry {
                size: 1 << 20,
                ways: 16,
                line: 64
            }
            .colors(16384),
            4
        );
    }

    #[test]
    fn clidr_levels() {
        // L1 separate I+D (0b011), L2 unified (0b100), L3 unified.
        assert_eq!(llc_level(0b100_100_011), Some(3));
        assert_eq!(llc_level(0b100_011), Some(2));
        // Only an instruction cache.
        assert_eq!(llc_level(0b001), None);
        assert_eq!(llc_level(0), None);
        // LoC/LoUU fields above Ctype7 are ignored.
        assert_eq!(llc_level(0x0a20_0023), Some(2));
        assert_eq!(csselr_data(1), 0);
        assert_eq!(csselr_data(2), 0b10);
        let g = CacheGeometry::from_registers(0b100_011, false, |sel| {
            assert_eq!(sel, 0b10);
            ccsidr(64, 16, 1024, false)
        });
        assert_eq!(g.unwrap().size, 1 << 20);
        assert!(ccidx_from_mmfr2(1 << 20) && !ccidx_from_mmfr2(0xf << 16));
    }
}
