//! `memtest`: a Tessera test guest that tests all of its RAM (also boots bare on QEMU `virt`).
//!
//! It takes its RAM from the device tree's `/memory` node(s) and tests every 4 KiB page of it
//! except those holding its own image (code, data, BSS and stacks: `__image_start..
//! __image_end`) and the DTB. The passes, each over all of that memory:
//!
//! 1. to 4. fill with `0x00..`, `0xff..`, `0x55..`, `0xaa..`, then read everything back;
//! 5. walking ones and walking zeros (the 64 one-hot and one-cold values) on a sample: one word
//!    of every page, at an offset that moves from page to page;
//! 6. address-in-address: every 8-byte word holds its own address (bits 48-63: a tag, the
//!    VM's id + 1 under Tessera, 0 bare), then, after `hold_ms` (default 20 ms) in which a
//!    neighbour that wrongly shares a page would overwrite it, every word is checked;
//! 7. the same with every value inverted.
//!
//! The tag makes two VMs running this guest at once write different values at the same
//! guest-physical addresses, so a page mapped into both is caught.
//!
//! Console: `memtest: ...` progress lines, one per pass (`memtest: pass 3/7 fill
//! 0x5555555555555555 ok (...)`), then `memtest: <N> KiB ok` and exit status 0, or
//! `memtest: FAILED pass <name> at <address>: expected <value>, got <value>` (the first
//! mismatch) and exit status 1; status 2 when there is nothing to test or a bootarg is bad.
//!
//! Bootargs (all optional): `rounds=N` (run the passes N times, default 1), `hold_ms=N`,
//! `limit=BYTES` (test at most that many bytes, lowest addresses first; for bare runs with
//! large RAM), `corrupt=ADDR` (a self-test of the checks: during the first address-in-address
//! hold the guest itself flips the word at ADDR, as a neighbour sharing the page would; the
//! run must then fail naming ADDR).
//!
//! The runtime (guests/rt) runs the guest with its EL1 MMU on and RAM mapped normal
//! write-back cacheable (with the MMU off every access would be uncached and a full test much
//! slower under QEMU's TCG); nothing here depends on it: every access is an aligned 8-byte
//! volatile load or store at the address tested (the map is the identity).
#![no_std]
#![no_main]

use heapless::Vec;
use tessera_guest_rt::dt::parse_u64;
use tessera_guest_rt::{entry, println, tessera, timer, BootInfo, MemRegion};

entry!(main);

/// Granule of what is skipped and of the walking-ones sample.
const PAGE: usize = 4096;
/// Most tested ranges: every RAM region cut by the image and the DTB.
const MAX_RANGES: usize = 3 * tessera_guest_rt::dt::MAX_RAM_REGIONS;
/// Default wait between writing and checking an address-in-address pass.
const DEFAULT_HOLD_MS: u64 = 20;
/// Number of passes of a round.
const PASSES: usize = 7;
/// Where the tag sits in address-in-address values.
const TAG_SHIFT: u32 = 48;

/// Exit status: a word did not read back as written.
const EXIT_MISMATCH: u32 = 1;
/// Exit status: nothing to test, or bad bootargs.
const EXIT_SETUP: u32 = 2;

/// The memory under test.
type Ranges = Vec<MemRegion, MAX_RANGES>;

/// The first word that did not read back as written.
struct Mismatch {
    addr: usize,
    expected: u64,
    got: u64,
}

/// One pass over the tested memory.
#[derive(Clone, Copy)]
enum Pass {
    /// Every word the same value.
    Fill(u64),
    /// One-hot and one-cold values on one word per page.
    WalkingOnes,
    /// Every word its own address with the tag (inverted: all bits flipped).
    AddressInAddress { inverted: bool },
}

impl Pass {
    /// The value pass `self` expects at `addr` (fills and address-in-address).
    #[inline(always)]
    fn value(self, addr: usize, tag: u64) -> u64 {
        match self {
            Pass::Fill(v) => v,
            Pass::AddressInAddress { inverted } => {
                let v = addr as u64 ^ (tag << TAG_SHIFT);
                if inverted {
                    !v
                } else {
                    v
                }
            }
            Pass::WalkingOnes => 0,
        }
    }
}

/// The passes of a round, in order.
const ROUND: [Pass; PASSES] = [
    Pass::Fill(0),
    Pass::Fill(u64::MAX),
    Pass::Fill(0x5555_5555_5555_5555),
    Pass::Fill(0xaaaa_aaaa_aaaa_aaaa),
    Pass::WalkingOnes,
    Pass::AddressInAddress { inverted: false },
    Pass::AddressInAddress { inverted: true },
];

impl core::fmt::Display for Pass {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Pass::Fill(v) => write!(f, "fill {v:#018x}"),
            Pass::WalkingOnes => write!(f, "walking-ones"),
            Pass::AddressInAddress { inverted: false } => write!(f, "address-in-address"),
            Pass::AddressInAddress { inverted: true } => {
                write!(f, "address-in-address-inverted")
            }
        }
    }
}

fn main(info: &'static BootInfo) -> u32 {
    match run(info) {
        Ok(kib) => {
            println!("memtest: {} KiB ok", kib);
            0
        }
        Err(status) => status,
    }
}

/// Prints `memtest: FAILED <why>` and returns `Err(EXIT_SETUP)` from the enclosing function.
macro_rules! setup_failed {
    ($($arg:tt)*) => {{
        println!("memtest: FAILED {}", format_args!($($arg)*));
        return Err(EXIT_SETUP);
    }};
}

/// A numeric bootarg, `default` when absent.
fn numeric_bootarg(info: &BootInfo, key: &str, default: u64) -> Result<u64, u32> {
    match info.bootarg(key) {
        None => Ok(default),
        Some(v) => match parse_u64(v) {
            Some(n) => Ok(n),
            None => setup_failed!("bad {}={} in bootargs", key, v),
        },
    }
}

/// The whole test: the number of KiB tested, or the exit status.
fn run(info: &'static BootInfo) -> Result<usize, u32> {
    if let Some(e) = info.dt_error {
        setup_failed!("cannot read the device tree at {:#x}: {}", info.dtb.base, e);
    }
    if info.ram.is_empty() {
        setup_failed!("no memory in the device tree");
    }
    let rounds = numeric_bootarg(info, "rounds", 1)?.max(1);
    let hold_ms = numeric_bootarg(info, "hold_ms", DEFAULT_HOLD_MS)?;
    let limit = numeric_bootarg(info, "limit", u64::MAX)?;
    let corrupt = match info.bootarg("corrupt") {
        None => None,
        Some(_) => Some(numeric_bootarg(info, "corrupt", 0)? as usize),
    };
    let tag = if info.tessera {
        match tessera::identity() {
            Ok(id) => (id.vm + 1) & 0xffff,
            Err(e) => setup_failed!("Identity hypercall failed: {:?}", e),
        }
    } else {
        0
    };

    for r in &info.ram {
        println!("memtest: RAM {} ({} KiB)", r, r.size >> 10);
    }
    println!(
        "memtest: skipping image {} and dtb {}",
        info.image, info.dtb
    );
    let ranges = free_ranges(info, usize::try_from(limit).unwrap_or(usize::MAX));
    let total: usize = ranges.iter().map(|r| r.size).sum();
    if total == 0 {
        setup_failed!("no RAM left to test");
    }
    if let Some(addr) = corrupt {
        if addr % 8 != 0 || !ranges.iter().any(|r| r.contains(addr)) {
            setup_failed!(
                "corrupt={:#x} is not an aligned word of the tested RAM",
                addr
            );
        }
        println!("memtest: self-test: will flip the word at {:#x}", addr);
    }
    for r in &ranges {
        println!("memtest:   testing {} ({} KiB)", r, r.size >> 10);
    }
    println!(
        "memtest: {} KiB in {} range(s), tag {:#x}, {} round(s) of {} passes, hold {} ms",
        total >> 10,
        ranges.len(),
        tag,
        rounds,
        PASSES,
        hold_ms
    );

    for round in 1..=rounds {
        for (i, pass) in ROUND.iter().enumerate() {
            let t0 = timer::now();
            // The self-test's flip happens once, in the first address-in-address pass.
            let first_address_pass = matches!(pass, Pass::AddressInAddress { inverted: false });
            let flip = corrupt.filter(|_| round == 1 && first_address_pass);
            if let Err(m) = run_pass(&ranges, *pass, tag, hold_ms, flip) {
                println!(
                    "memtest: FAILED pass {} (round {}) at {:#x}: expected {:#018x}, got {:#018x}",
                    pass, round, m.addr, m.expected, m.got
                );
                return Err(EXIT_MISMATCH);
            }
            let ms = timer::us_from_ticks(timer::now().wrapping_sub(t0)) / 1000;
            println!(
                "memtest: round {}/{} pass {}/{} {} ok ({} KiB, {} ms)",
                round,
                rounds,
                i + 1,
                PASSES,
                pass,
                total >> 10,
                ms
            );
        }
    }
    Ok(total >> 10)
}

/// `r` grown to whole pages.
fn page_cover(r: MemRegion) -> MemRegion {
    if r.size == 0 {
        return r;
    }
    let base = r.base & !(PAGE - 1);
    let end = r.end().checked_next_multiple_of(PAGE).unwrap_or(usize::MAX);
    MemRegion::new(base, end - base)
}

/// The RAM's whole pages without the image and the DTB, lowest first, at most `limit` bytes
/// (rounded down to pages).
fn free_ranges(info: &BootInfo, limit: usize) -> Ranges {
    let busy = [page_cover(info.image), page_cover(info.dtb)];
    let mut left = limit & !(PAGE - 1);
    let mut ram: Vec<MemRegion, { tessera_guest_rt::dt::MAX_RAM_REGIONS }> =
        info.ram.iter().copied().collect();
    ram.sort_unstable_by_key(|r| r.base);
    let mut out = Ranges::new();
    for r in &ram {
        let Some(mut cursor) = r.base.checked_next_multiple_of(PAGE) else {
            continue;
        };
        let end = r.end() & !(PAGE - 1);
        while cursor < end && left > 0 {
            let rest = MemRegion::new(cursor, end - cursor);
            // The lowest busy region overlapping what is left of this RAM region.
            let next_busy = busy
                .iter()
                .filter(|b| b.overlaps(&rest))
                .min_by_key(|b| b.base);
            let (piece_end, next) = match next_busy {
                None => (end, end),
                Some(b) => (b.base.max(cursor), b.end().min(end)),
            };
            if piece_end > cursor {
                let size = (piece_end - cursor).min(left);
                // MAX_RANGES covers every RAM region cut twice; more cannot happen.
                let _ = out.push(MemRegion::new(cursor, size));
                left -= size;
            }
            // A busy region overlapping `rest` ends above `cursor`: progress.
            cursor = next;
        }
    }
    out
}

/// One pass over every range.
/// `flip`: a word to invert during an address-in-address hold (the `corrupt=` self-test).
fn run_pass(
    ranges: &Ranges,
    pass: Pass,
    tag: u64,
    hold_ms: u64,
    flip: Option<usize>,
) -> Result<(), Mismatch> {
    match pass {
        Pass::WalkingOnes => ranges.iter().try_for_each(|r| walking_ones(*r)),
        Pass::Fill(_) => {
            ranges.iter().for_each(|r| fill(*r, pass, tag));
            ranges.iter().try_for_each(|r| check(*r, pass, tag))
        }
        Pass::AddressInAddress { .. } => {
            ranges.iter().for_each(|r| fill(*r, pass, tag));
            let until = timer::now() + timer::ticks_from_us(hold_ms * 1000);
            while timer::now() < until {
                core::hint::spin_loop();
            }
            if let Some(addr) = flip {
                let p = addr as *mut u64;
                // SAFETY: `run` checked that `addr` is an aligned word of one of `ranges`
                // (as in `fill`).
                unsafe { p.write_volatile(!p.read_volatile()) };
            }
            ranges.iter().try_for_each(|r| check(*r, pass, tag))
        }
    }
}

/// Writes pass `pass`'s value into every word of `r`.
fn fill(r: MemRegion, pass: Pass, tag: u64) {
    let words = r.size / 8;
    let p = r.base as *mut u64;
    for i in 0..words {
        // SAFETY: `r` comes from `free_ranges`: whole pages of this guest's RAM (its DT
        // `/memory`) that hold neither the image (code, data, BSS, stacks) nor the DTB, and
        // nothing else in this program refers to them; `i < words` keeps the 8-byte aligned
        // store inside `r`.
        unsafe { p.add(i).write_volatile(pass.value(r.base + 8 * i, tag)) };
    }
}

/// Reads every word of `r` back: the first that differs from pass `pass`'s value.
fn check(r: MemRegion, pass: Pass, tag: u64) -> Result<(), Mismatch> {
    let words = r.size / 8;
    let p = r.base as *const u64;
    for i in 0..words {
        let addr = r.base + 8 * i;
        // SAFETY: as in `fill`.
        let got = unsafe { p.add(i).read_volatile() };
        let expected = pass.value(addr, tag);
        if got != expected {
            return Err(Mismatch {
                addr,
                expected,
                got,
            });
        }
    }
    Ok(())
}

/// Walking ones and zeros on one word of every page of `r` (the word's offset moves by 8
/// bytes from page to page).
fn walking_ones(r: MemRegion) -> Result<(), Mismatch> {
    for page in (r.base..r.end()).step_by(PAGE) {
        let addr = page + ((page / PAGE) % (PAGE / 8)) * 8;
        let p = addr as *mut u64;
        for bit in 0..64 {
            for expected in [1u64 << bit, !(1u64 << bit)] {
                // SAFETY: `addr` is an 8-byte aligned word of a page of `r` (as in `fill`).
                let got = unsafe {
                    p.write_volatile(expected);
                    p.read_volatile()
                };
                if got != expected {
                    return Err(Mismatch {
                        addr,
                        expected,
                        got,
                    });
                }
            }
        }
    }
    Ok(())
}
