//! The last-level cache the colors refer to: its geometry from `CLIDR_EL1`/`CCSIDR_EL1`, or
//! from board.toml's `[llc]` override, checked at boot against the geometry the build
//! validated the config's colors with.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use tessera_colors::CacheGeometry;
use tock_registers::interfaces::Readable;

use crate::config::{LlcDesc, BOARD};

static SIZE: AtomicU64 = AtomicU64::new(0);
static WAYS: AtomicU32 = AtomicU32::new(0);
static LINE: AtomicU32 = AtomicU32::new(0);

/// Where the geometry came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `CLIDR_EL1`/`CCSIDR_EL1` of the boot core, cache level `level` (1-based).
    Registers { level: u8 },
    /// board.toml `[llc]`.
    BoardOverride,
}

/// Why the LLC geometry cannot be used.
#[derive(Clone, Copy, Debug)]
pub enum LlcError {
    /// The CPU reports no data or unified cache and the board gives no override.
    NoCache,
    /// The detected geometry gives another color count than the one the build checked the
    /// config's colors against.
    Mismatch {
        detected: CacheGeometry,
        expected: CacheGeometry,
    },
}

impl core::fmt::Display for LlcError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LlcError::NoCache => f.write_str(
                "the CPU reports no data or unified cache (CLIDR_EL1) and board.toml has no [llc] override",
            ),
            LlcError::Mismatch { detected, expected } => write!(
                f,
                "this CPU's LLC ({} KiB, {}-way: {} colors) is not the one the image was built for \
                 (CPU model `{}`: {} KiB, {}-way: {} colors); rebuild with --cpu <model> for this \
                 CPU (QEMU: run with the -cpu the image was built for)",
                detected.size >> 10,
                detected.ways,
                detected.page_colors(),
                BOARD.cpu,
                expected.size >> 10,
                expected.ways,
                expected.page_colors()
            ),
        }
    }
}

fn from_desc(d: LlcDesc) -> CacheGeometry {
    CacheGeometry {
        size: d.size,
        ways: d.ways,
        line: d.line,
    }
}

/// Reads the boot core's LLC geometry (or takes the board's override), checks it against the
/// build's, and records it for [`geometry`]. Boot core, once.
pub fn init() -> Result<(CacheGeometry, Source), LlcError> {
    let (g, source) = match BOARD.llc_override {
        Some(d) => (from_desc(d), Source::BoardOverride),
        None => detect().ok_or(LlcError::NoCache)?,
    };
    if let Some(expected) = BOARD.llc_expected.map(from_desc) {
        // Only colors checked against another color count are wrong; an uncolored config runs
        // on any CPU.
        if colors_used() && expected.page_colors() != g.page_colors() {
            return Err(LlcError::Mismatch {
                detected: g,
                expected,
            });
        }
    }
    SIZE.store(g.size, Ordering::Relaxed);
    WAYS.store(g.ways, Ordering::Relaxed);
    LINE.store(g.line, Ordering::Relaxed);
    Ok((g, source))
}

/// Whether the config colors anything (a VM, a channel or the hypervisor).
pub fn colors_used() -> bool {
    crate::config::HYPERVISOR.colors != 0
        || crate::config::VMS.iter().any(|v| v.colors != 0)
        || crate::config::CHANNELS.iter().any(|c| c.colors != 0)
}

/// The LLC geometry colors refer to (after [`init`]).
pub fn geometry() -> CacheGeometry {
    CacheGeometry {
        size: SIZE.load(Ordering::Relaxed),
        ways: WAYS.load(Ordering::Relaxed),
        line: LINE.load(Ordering::Relaxed),
    }
}

fn detect() -> Option<(CacheGeometry, Source)> {
    let clidr = crate::arch::regs::clidr_el1();
    let level = tessera_colors::llc_level(clidr)?;
    let ccidx = tessera_colors::ccidx_from_mmfr2(aarch64_cpu::registers::ID_AA64MMFR2_EL1.get());
    let g = CacheGeometry::from_registers(clidr, ccidx, crate::arch::regs::read_ccsidr)?;
    Some((g, Source::Registers { level }))
}

/// A color set printed compactly: `0-7,12` (the config crate's `ColorList`).
pub use crate::config::ColorList as Colors;

/// A page of the hypervisor outside its colors.
pub struct ColoringError {
    kind: &'static str,
    va: u64,
    pa: u64,
    color: usize,
    colors: u64,
}

impl core::fmt::Display for ColoringError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "coloring check FAILED: hypervisor {} page VA {:#x} PA {:#x} has color {}, not in {}",
            self.kind,
            self.va,
            self.pa,
            self.color,
            Colors(self.colors)
        )
    }
}

/// The boot-time self-check of the hypervisor's own coloring (`[hypervisor]
/// verify_coloring`): walks the EL2 map over the whole image and checks every page, and every
/// table page of the map, against `[hypervisor] colors`. Prints the verdict line.
pub fn verify_hypervisor() -> Result<(), ColoringError> {
    let colors = crate::config::HYPERVISOR.colors;
    if colors == 0 {
        crate::hprintln!("coloring: hypervisor uncolored (image where it was loaded)");
        return Ok(());
    }
    let g = geometry();
    let mut n = 0usize;
    let mut bad: Option<ColoringError> = None;
    let complete = crate::arch::for_each_own_page(|kind, va, pa| {
        n += 1;
        let color = g.color_of(tessera_colors::PhysAddr(pa));
        if bad.is_none() && (pa == u64::MAX || colors & (1 << color) == 0) {
            bad = Some(ColoringError {
                kind,
                va,
                pa,
                color,
                colors,
            });
        }
    });
    if let Some(e) = bad {
        return Err(e);
    }
    crate::hprintln!(
        "coloring verified: hypervisor {} pages, all in colors {}{}",
        n,
        Colors(colors),
        if complete {
            ""
        } else {
            " (table list incomplete)"
        }
    );
    Ok(())
}
