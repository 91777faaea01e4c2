//! The standing attack suite's modes (issue 7), chosen by `mode=<name>`:
//!
//! - `stage1`: the adversary builds its own stage-1 tables (a copy of the runtime's identity
//!   map plus a window at VA 511 GiB) mapping pages and a 2 MiB block onto every `probe=ADDR`
//!   (other VMs' host ranges, the hypervisor, unassigned MMIO), and table descriptors whose
//!   next-level table lies at those addresses (the walk itself reaches outside its RAM),
//!   switches TTBR0_EL1 to them and touches each. A page of the window aliases its own RAM
//!   to prove the tables are live. Then every page boundary just past its RAM (and just
//!   below it) through the identity map. Every foreign access must fault (stage 2); its own
//!   last word must not.
//! - `irq`: SGI storms (GICv3 `ICC_SGI1R_EL1` with every routing mode, nonexistent
//!   affinities, all 16 INTIDs; GICv2 `GICD_SGIR` with every filter, reserved included) to
//!   itself and to CPUs it does not have; distributor writes to every SPI it does not own
//!   (disable, clear/set pending and active, priority 0, targets/route anywhere) and read
//!   back of the `foreign=INTID` ones (must read 0). Self-targeted SGIs must still arrive.
//! - `hvc`: every Tessera ABI function id and PSCI/SMCCC id with boundary arguments (0, 1,
//!   u64::MAX, 1 << 63, u32::MAX, unaligned, just below and past its RAM); `CPU_ON` for
//!   vCPUs it does not have, for itself, with bad entry points, and twice for the same vCPU.
//!   Each call must come back with the PSCI/Tessera status the specification gives.
//! - `timer-storm`: `storm_ms=N` of the virtual timer firing continuously, IRQs unmasked: for
//!   100 ms its handler re-arms it with CVAL in the past (the level never drops), then
//!   `rearm_us` (default 2) ahead (a new interrupt every few microseconds).
//! - `spin`: `spin_ms=N` of spinning with IRQs masked (WFI never used).
//! - `level-irq`: the passed-through PL031 RTC (`arm,pl031` in its DT) asserts its level
//!   interrupt and is never cleared: `storm_ms/2` with IRQs masked (never acknowledged),
//!   then unmasked with a handler that never clears the device: 100 ms leaving its line
//!   raised, the rest dropping it (interrupt mask at the device) for the interrupted loop to
//!   raise again at once.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tessera_guest_rt::abi::{Call, Error};
use tessera_guest_rt::dt::parse_u64;
use tessera_guest_rt::exception::{catching_asm, probe_read, probe_write};
use tessera_guest_rt::gic::{
    self, GICD_ICENABLER, GICD_ICPENDR, GICD_IPRIORITYR, GICD_IROUTER, GICD_ISENABLER,
    GICD_ISPENDR, GICD_ITARGETSR, GICD_SGIR,
};
use tessera_guest_rt::smccc::{call_catching, Conduit};
use tessera_guest_rt::{cpu, irq, println, timer, BootInfo, GicVersion, MemRegion};

use crate::Report;

const PAGE: usize = 4096;
/// ESR_EL1.EC of a data abort taken at EL1.
const EC_DABT_CUR: u8 = 0x25;
/// GICD_ICACTIVER.
const GICD_ICACTIVER: usize = 0x380;
/// GICD_ISACTIVER.
const GICD_ISACTIVER: usize = 0x300;

/// `key=N` of the bootargs, or `default`.
fn arg_u64(info: &BootInfo, key: &str, default: u64) -> u64 {
    info.bootarg(key).and_then(parse_u64).unwrap_or(default)
}

fn own_ram(info: &BootInfo, addr: usize) -> bool {
    info.ram.iter().any(|r| r.contains(addr))
}

/// Spins for `ms` milliseconds of counter time.
fn spin_ms(ms: u64) {
    let end = timer::now() + timer::ticks_from_us(ms * 1000);
    while timer::now() < end {
        core::hint::spin_loop();
    }
}

// ---------------------------------------------------------------------------------------
// stage1

/// Block/page/table descriptor bits (VMSAv8-64, 4 KiB granule).
const DESC_TABLE: u64 = 0b11;
const DESC_PAGE: u64 = 0b11;
const DESC_BLOCK: u64 = 0b01;
const DESC_AF: u64 = 1 << 10;
const DESC_SH_INNER: u64 = 0b11 << 8;
const DESC_XN: u64 = (1 << 53) | (1 << 54);
/// MAIR indices of the runtime's map: 0 Device-nGnRE, 1 Normal WB.
const ATTR_DEVICE: u64 = 0;
const ATTR_NORMAL: u64 = 1;
/// The window: level-1 entry 511 (VA 511 GiB), outside anything the identity map needs.
const WINDOW_L1: usize = 511;
const WINDOW_VA: usize = WINDOW_L1 << 30;

fn leaf(pa: u64, kind: u64) -> u64 {
    let attr = if pa < 1 << 30 {
        ATTR_DEVICE
    } else {
        ATTR_NORMAL
    };
    (pa & !0xfff & ((1 << 48) - 1)) | kind | DESC_AF | DESC_SH_INNER | DESC_XN | (attr << 2)
}

fn ttbr0() -> u64 {
    let v: u64;
    // SAFETY: reading TTBR0_EL1 has no side effect.
    unsafe { asm!("mrs {}, ttbr0_el1", out(reg) v, options(nomem, nostack)) };
    v
}

/// Switches TTBR0_EL1 to `table` and invalidates this VM's stage-1 TLB entries.
///
/// # Safety
///
/// `table` must map everything this program touches (code, stacks, data, devices) as the
/// current table does.
unsafe fn set_ttbr0(table: u64) {
    // SAFETY: the caller guarantees the new table maps all live memory identically.
    unsafe {
        asm!(
            "dsb ish",
            "msr ttbr0_el1, {t}",
            "isb",
            "tlbi vmalle1",
            "dsb ish",
            "isb",
            t = in(reg) table,
            options(nostack)
        )
    };
}

/// One access through the window that must fault; logs it.
fn expect_fault(what: &str, va: usize, write: bool, report: &mut Report) -> bool {
    let r = if write {
        // SAFETY: `va` maps (if anything) memory outside this VM: a write that is not
        // refused is the isolation failure being reported, and touches nothing this
        // program uses.
        unsafe { probe_write(va, 0xadad_adad) }.map(|()| 0)
    } else {
        probe_read(va)
    };
    match r {
        Err(f) if !f.serror && f.ec() == EC_DABT_CUR => {
            println!(
                "adversary: stage1: {} {} at VA {:#x} faulted (ESR {:#x}, FSC {:#x})",
                what,
                if write { "write" } else { "read" },
                va,
                f.esr,
                f.fsc()
            );
            true
        }
        Err(f) => {
            println!(
                "adversary: stage1: {} at VA {:#x}: unexpected exception ESR {:#x}",
                what, va, f.esr
            );
            report.fail();
            false
        }
        Ok(v) => {
            println!(
                "adversary: stage1: {} at VA {:#x} NOT faulted (read {:#x}) — isolation broken",
                what, va, v
            );
            report.fail();
            false
        }
    }
}

pub fn stage1(info: &BootInfo, scratch: MemRegion, report: &mut Report) {
    let probes: heapless::Vec<u64, 8> = info
        .bootarg_values("probe")
        .filter_map(parse_u64)
        .take(8)
        .collect();
    if probes.is_empty() {
        println!("adversary: stage1: no probe=ADDR in bootargs");
        report.fail();
        return;
    }
    for &p in &probes {
        if own_ram(info, p as usize) {
            println!("adversary: stage1: probe {:#x} is its own RAM", p);
            report.fail();
            return;
        }
    }
    let base = scratch.base.next_multiple_of(PAGE);
    if base + 4 * PAGE > scratch.end() {
        println!("adversary: stage1: scratch too small");
        report.fail();
        return;
    }
    let (l1, l2, l3, alias) = (base, base + PAGE, base + 2 * PAGE, base + 3 * PAGE);
    let old = ttbr0();
    let old_l1 = (old & 0x0000_ffff_ffff_f000) as usize;
    // SAFETY: the four pages come from `scratch` (own RAM nothing else uses, identity
    // mapped); the old table is the runtime's, readable at its physical address (identity).
    unsafe {
        for i in 0..512 {
            let e = if i == WINDOW_L1 {
                l2 as u64 | DESC_TABLE
            } else {
                (old_l1 as *const u64).add(i).read_volatile()
            };
            (l1 as *mut u64).add(i).write_volatile(e);
            (l2 as *mut u64).add(i).write_volatile(0);
            (l3 as *mut u64).add(i).write_volatile(0);
        }
        // L2[0] -> L3: page 0 aliases own RAM, pages 1.. map the probes.
        (l2 as *mut u64).write_volatile(l3 as u64 | DESC_TABLE);
        (l3 as *mut u64).write_volatile(leaf(alias as u64, DESC_PAGE));
        for (i, &p) in probes.iter().enumerate() {
            (l3 as *mut u64)
                .add(1 + i)
                .write_volatile(leaf(p, DESC_PAGE));
        }
        // L2[1]: a 2 MiB block over the first probe's 2 MiB.
        (l2 as *mut u64)
            .add(1)
            .write_volatile(leaf(probes[0] & !0x1f_ffff, DESC_BLOCK));
        // L2[2..]: next-level tables that lie at the probes (the walk reads foreign memory).
        for (i, &p) in probes.iter().enumerate().take(4) {
            (l2 as *mut u64)
                .add(2 + i)
                .write_volatile((p & !0xfff) | DESC_TABLE);
        }
        (alias as *mut u64).write_volatile(0);
    }
    // SAFETY: the new L1 is a copy of the runtime's with only entry 511 (VA 511 GiB, which
    // nothing of this program uses) changed.
    unsafe { set_ttbr0(l1 as u64) };

    // The tables are live: the window's page 0 is own RAM.
    // SAFETY: WINDOW_VA maps `alias`, own scratch RAM.
    let seen = unsafe {
        (WINDOW_VA as *mut u64).write_volatile(0x5747_1e5a_11a5_0001);
        (alias as *const u64).read_volatile()
    };
    if seen == 0x5747_1e5a_11a5_0001 {
        println!(
            "adversary: stage1: alias through its own tables ok (VA {:#x})",
            WINDOW_VA
        );
    } else {
        println!(
            "adversary: stage1: own tables not in effect (alias read {:#x})",
            seen
        );
        report.fail();
    }

    let (mut tried, mut faulted) = (0, 0);
    for (i, &p) in probes.iter().enumerate() {
        let va = WINDOW_VA + (1 + i) * PAGE + (p as usize & 0xfff);
        for write in [false, true] {
            tried += 1;
            faulted += usize::from(expect_fault("page ->", va, write, report));
        }
    }
    let block_va = WINDOW_VA + (2 << 20) + (probes[0] as usize & 0x1f_ffff);
    tried += 1;
    faulted += usize::from(expect_fault("2 MiB block ->", block_va, false, report));
    for i in 0..probes.len().min(4) {
        let va = WINDOW_VA + ((2 + i) << 21);
        tried += 1;
        faulted += usize::from(expect_fault(
            "table walk via foreign table",
            va,
            false,
            report,
        ));
    }

    // SAFETY: back to the runtime's own table (still intact).
    unsafe { set_ttbr0(old) };
    println!(
        "adversary: stage1: {}/{} accesses through its own tables faulted",
        faulted, tried
    );

    // Every page boundary just past (and just below) its RAM, through the identity map.
    let (mut edge_tried, mut edge_faulted) = (0, 0);
    for r in &info.ram {
        for k in 0..8usize {
            for addr in [r.end() + k * PAGE, r.base.wrapping_sub((k + 1) * PAGE)] {
                if own_ram(info, addr) {
                    continue;
                }
                edge_tried += 1;
                match probe_read(addr) {
                    Err(_) => edge_faulted += 1,
                    Ok(v) => {
                        println!(
                            "adversary: stage1: {:#x} next to its RAM NOT faulted (read {:#x})",
                            addr, v
                        );
                        report.fail();
                    }
                }
            }
        }
        if let Err(f) = probe_read(r.end() - 4) {
            println!(
                "adversary: stage1: its own last word {:#x} faulted (ESR {:#x})",
                r.end() - 4,
                f.esr
            );
            report.fail();
        }
    }
    println!(
        "adversary: stage1: {}/{} page boundaries past its RAM faulted, own last word readable",
        edge_faulted, edge_tried
    );
}

// ---------------------------------------------------------------------------------------
// irq

static SGIS_TAKEN: AtomicU64 = AtomicU64::new(0);

fn on_sgi(_intid: u32) {
    SGIS_TAKEN.fetch_add(1, Ordering::Relaxed);
}

fn msr_sgi1r(value: u64) {
    // SAFETY: one MSR to ICC_SGI1R_EL1 (trapped by Tessera); it writes no memory, and an
    // exception is caught and skipped.
    let _ =
        unsafe { catching_asm(|| asm!("msr icc_sgi1r_el1, {}", in(reg) value, options(nostack))) };
}

pub fn irq(info: &BootInfo, report: &mut Report) {
    if let Err(e) = irq::init() {
        println!("adversary: irq: GIC init failed: {:?}", e);
        report.fail();
        return;
    }
    let version = irq::gic_version();
    let storm = arg_u64(info, "sgis", 20_000);
    for i in 0..16 {
        irq::set_handler(i, Some(on_sgi));
        let _ = gic::enable(i);
    }
    let me = cpu::mpidr() & 0xff;
    let start = timer::now();
    let mut sent = 0u64;
    for n in 0..storm {
        let intid = n % 16;
        match version {
            Some(GicVersion::V3) => {
                let v = match n % 5 {
                    0 => (intid << 24) | (1 << me),             // itself
                    1 => (intid << 24) | (1 << 40),             // IRM: all but itself
                    2 => (intid << 24) | (0xff << 16) | 0xffff, // Aff1 0xff: nobody
                    3 => (intid << 24) | (0xffu64 << 48) | (0xff << 32) | 0xfffe, // Aff3/Aff2
                    _ => (intid << 24) | 0xffff | (0xf << 44),  // RS 15 (Aff0 240..255)
                };
                msr_sgi1r(v);
            }
            _ => {
                let filter = (n % 4) as u32; // 0 list, 1 others, 2 self, 3 reserved
                let _ = gic::dist_write32(GICD_SGIR, (filter << 24) | (0xff << 16) | intid as u32);
            }
        }
        sent += 1;
    }
    let ticks = timer::now() - start;
    println!(
        "adversary: irq: {} SGIs sent in {} us ({:?})",
        sent,
        timer::us_from_ticks(ticks),
        version
    );
    // The ones to itself arrive.
    irq::enable_local();
    spin_ms(10);
    irq::disable_local();
    let taken = SGIS_TAKEN.load(Ordering::Relaxed);
    if taken == 0 {
        println!("adversary: irq: none of its own SGIs arrived");
        report.fail();
    } else {
        println!("adversary: irq: {} of its own SGIs taken", taken);
    }

    // The distributor: every SPI it does not own (its own: the virtual UART's 33).
    let lines = gic::lines().unwrap_or(64).min(1020);
    let mut writes = 0u32;
    for intid in (32..lines).step_by(32) {
        let word = (intid / 32) as usize * 4;
        let mask = if intid == 32 { !(1u32 << 1) } else { u32::MAX };
        for reg in [
            GICD_ICENABLER,
            GICD_ICPENDR,
            GICD_ISPENDR,
            GICD_ICACTIVER,
            GICD_ISACTIVER,
        ] {
            let _ = gic::dist_write32(reg + word, mask);
            writes += 1;
        }
    }
    for intid in 34..lines {
        let _ = gic::dist_write32(GICD_IPRIORITYR + (intid as usize & !3), 0);
        match version {
            Some(GicVersion::V3) => {
                let _ = gic::dist_write64(GICD_IROUTER + 8 * intid as usize, 1 << 31);
            }
            _ => {
                let _ = gic::dist_write32(GICD_ITARGETSR + (intid as usize & !3), 0xffff_ffff);
            }
        }
        writes += 2;
    }
    println!(
        "adversary: irq: {} distributor writes to SPIs it does not own",
        writes
    );
    let mut foreign = 0;
    for f in info.bootarg_values("foreign").filter_map(parse_u64) {
        let f = f as usize;
        foreign += 1;
        let bit = 1u32 << (f % 32);
        let en = gic::dist_read32(GICD_ISENABLER + f / 32 * 4).unwrap_or(0) & bit;
        let pend = gic::dist_read32(GICD_ISPENDR + f / 32 * 4).unwrap_or(0) & bit;
        let prio = gic::dist_read32(GICD_IPRIORITYR + (f & !3)).unwrap_or(0);
        if en != 0 || pend != 0 || prio != 0 {
            println!(
                "adversary: irq: foreign INTID {} reads enable {} pending {} priority {:#x}",
                f, en, pend, prio
            );
            report.fail();
        } else {
            println!("adversary: irq: foreign INTID {} reads as 0 (RAZ/WI)", f);
        }
    }
    if foreign == 0 {
        println!("adversary: irq: no foreign=INTID in bootargs");
        report.fail();
    }
}

// ---------------------------------------------------------------------------------------
// hvc

const PSCI_CPU_ON: u64 = 0xC400_0003;
const PSCI_AFFINITY_INFO: u64 = 0xC400_0004;
mod psci_ret {
    pub const INVALID_PARAMETERS: i64 = -2;
    pub const ALREADY_ON: i64 = -4;
    pub const ON_PENDING: i64 = -5;
    pub const INVALID_ADDRESS: i64 = -9;
}

fn hvc(id: u64, args: [u64; 6]) -> Option<i64> {
    call_catching(Conduit::Hvc, id, args)
        .ok()
        .map(|r| r[0] as i64)
}

fn secondary(_index: usize) {
    spin_ms(20);
}

pub fn hvc_abuse(info: &BootInfo, report: &mut Report) {
    let ram = info.ram.first().copied().unwrap_or_default();
    let (base, end) = (ram.base as u64, ram.end() as u64);
    let boundary = [
        0,
        1,
        u64::MAX,
        1 << 63,
        u64::from(u32::MAX),
        base + 1,
        base + 2,
        base - 1,
        base - 4096,
        end,
        end - 1,
        end - 4,
    ];
    let mut ids: heapless::Vec<u64, 128> = heapless::Vec::new();
    for c in [
        Call::Version,
        Call::Null,
        Call::ConsoleWrite,
        Call::Identity,
        Call::ResetCount,
        Call::Doorbell,
    ] {
        let _ = ids.push(c as u64);
        let _ = ids.push(c as u64 & !(1 << 30)); // SMC32 convention
    }
    for k in 7..16 {
        let _ = ids.push(0xC600_0000 + k); // unassigned Tessera ids
    }
    let _ = ids.push(0xC600_FFFF);
    // PSCI (minus OFF/RESET/SUSPEND-type calls and CPU_ON, tested below) and SMCCC arch.
    for k in [
        0u64, 4, 5, 6, 7, 0xa, 0xd, 0xf, 0x10, 0x11, 0x13, 0x14, 0x15, 0x1f,
    ] {
        let _ = ids.push(0x8400_0000 + k);
        let _ = ids.push(0xC400_0000 + k);
    }
    for id in [
        0x8000_0000,
        0x8000_0001,
        0x8000_8000,
        0x8000_3fff,
        0x8000_7fff,
        0x8000_ffff,
    ] {
        let _ = ids.push(id);
    }
    let (mut calls, mut came_back) = (0u32, 0u32);
    for &id in &ids {
        for &a in &boundary {
            for args in [
                [a, a, a, a, a, a],
                [a, 0, 0, 0, 0, 0],
                [base, a, 0, 0, 0, 0],
            ] {
                // Never a real buffer of its own: it would print junk.
                if id & 0xffff == 2
                    && id >> 24 & 0x3f == 6
                    && own_ram(info, args[0] as usize)
                    && args[1] < 4096
                {
                    continue;
                }
                calls += 1;
                if call_catching(Conduit::Hvc, id, args).is_ok() {
                    came_back += 1;
                }
            }
        }
    }
    println!(
        "adversary: hvc: {} boundary calls over {} function ids, {} returned",
        calls,
        ids.len(),
        came_back
    );
    if came_back != calls {
        println!("adversary: hvc: {} raised exceptions", calls - came_back);
        report.fail();
    }
    // ConsoleWrite at the edges must be refused.
    for (ipa, len) in [
        (end - 1, 2),
        (end, 1),
        (base - 1, 2),
        (u64::MAX, 1),
        (base + 1, u64::MAX),
    ] {
        match tessera_guest_rt::tessera::console_write_raw(ipa, len) {
            Err(Some(Error::InvalidParameters)) => {}
            other => {
                println!(
                    "adversary: hvc: ConsoleWrite({:#x}, {:#x}) returned {:?}",
                    ipa, len, other
                );
                report.fail();
            }
        }
    }

    // CPU_ON.
    let own = cpu::mpidr() & 0xff_00ff_ffff;
    let entry = base + 0x8_0000; // its image's start: a valid entry point
    for target in [
        0xffu64,
        0x100,
        0x1_0000,
        0xff_0000_0000,
        u64::MAX,
        0x8000_0000,
    ] {
        if info.cpus.contains(&(target & 0xff_00ff_ffff)) && target != u64::MAX {
            continue;
        }
        expect(
            "of a vCPU it does not have",
            hvc(PSCI_CPU_ON, [target, entry, 0, 0, 0, 0]),
            &[psci_ret::INVALID_PARAMETERS],
            report,
        );
    }
    expect(
        "of itself",
        hvc(PSCI_CPU_ON, [own, entry, 0, 0, 0, 0]),
        &[psci_ret::ALREADY_ON],
        report,
    );
    let Some(&second) = info.cpus.iter().find(|&&c| c != own) else {
        println!("adversary: hvc: one vCPU only: CPU_ON twice not tried");
        return;
    };
    for bad in [0, u64::MAX, base + 2, end, end - 2, base - 4, 0x4000_0000] {
        expect(
            "with a bad entry point",
            hvc(PSCI_CPU_ON, [second, bad, 0, 0, 0, 0]),
            &[psci_ret::INVALID_ADDRESS],
            report,
        );
    }
    let index = info.cpus.iter().position(|&c| c == second).unwrap_or(1);
    match cpu::start(index, secondary) {
        Ok(()) => println!("adversary: hvc: CPU_ON of vCPU {}: started", index),
        Err(e) => {
            println!("adversary: hvc: CPU_ON of vCPU {}: {:?}", index, e);
            report.fail();
        }
    }
    expect(
        "twice",
        hvc(PSCI_CPU_ON, [second, entry, 0, 0, 0, 0]),
        &[psci_ret::ALREADY_ON, psci_ret::ON_PENDING],
        report,
    );
    // It runs 20 ms, then turns itself off.
    spin_ms(100);
    match hvc(PSCI_AFFINITY_INFO, [second, 0, 0, 0, 0, 0]) {
        Some(1) => println!("adversary: hvc: vCPU {} off again", index),
        other => {
            println!(
                "adversary: hvc: AFFINITY_INFO after its CPU_OFF: {:?}",
                other
            );
            report.fail();
        }
    }
}

/// Checks a CPU_ON status against the ones the specification allows.
fn expect(what: &str, got: Option<i64>, want: &[i64], report: &mut Report) {
    match got {
        Some(r) if want.contains(&r) => println!("adversary: hvc: CPU_ON {}: {}", what, r),
        other => {
            println!(
                "adversary: hvc: CPU_ON {}: {:?}, expected one of {:?}",
                what, other, want
            );
            report.fail();
        }
    }
}

// ---------------------------------------------------------------------------------------
// time

static TIMER_FIRED: AtomicU64 = AtomicU64::new(0);
/// Counter value at which a storm ends (checked in its handler: an interrupt that is due
/// again at every EOI leaves the interrupted code no instruction to run).
static STORM_END: AtomicU64 = AtomicU64::new(0);

/// Phase of a storm: `true` while the handler leaves the line raised (timer CVAL re-armed in
/// the past, RTC never cleared), `false` once it re-raises it (CVAL one tick ahead, RTC
/// masked and unmasked at the device): a new interrupt every few instructions.
static LEAVE_RAISED: AtomicBool = AtomicBool::new(true);
/// Ticks between a timer-storm interrupt and the next deadline (`rearm_us`, default 2 µs).
static REARM_TICKS: AtomicU64 = AtomicU64::new(1);

fn rearm_in_past(_intid: u32) {
    TIMER_FIRED.fetch_add(1, Ordering::Relaxed);
    let now = timer::now();
    if now >= STORM_END.load(Ordering::Relaxed) {
        timer::stop_virt();
    } else if LEAVE_RAISED.load(Ordering::Relaxed) {
        timer::set_virt_deadline(now.saturating_sub(1000));
    } else {
        // Due again 2 µs from now: the level is low when the guest EOIs, so each deadline is
        // a new interrupt (a line still raised at EOI is not signalled again: see the
        // 100 ms with CVAL in the past).
        timer::set_virt_deadline(now + REARM_TICKS.load(Ordering::Relaxed));
    }
}

pub fn timer_storm(info: &BootInfo, report: &mut Report) {
    let ms = arg_u64(info, "storm_ms", 2000);
    if let Err(e) = irq::use_virtual_timer(rearm_in_past) {
        println!("adversary: timer-storm: {:?}", e);
        report.fail();
        return;
    }
    println!(
        "adversary: timer-storm: {} ms of a virtual timer always due",
        ms
    );
    let rearm_us = arg_u64(info, "rearm_us", 2);
    REARM_TICKS.store(timer::ticks_from_us(rearm_us).max(1), Ordering::Relaxed);
    LEAVE_RAISED.store(true, Ordering::Relaxed);
    timer::set_virt_deadline(0);
    irq::enable_local();
    spin_ms(100);
    println!(
        "adversary: timer-storm: CVAL re-armed in the past in its handler: {} interrupt(s) in 100 ms",
        TIMER_FIRED.load(Ordering::Relaxed)
    );
    LEAVE_RAISED.store(false, Ordering::Relaxed);
    timer::set_virt_deadline(timer::now() + REARM_TICKS.load(Ordering::Relaxed));
    spin_ms(ms.saturating_sub(100));
    irq::disable_local();
    timer::stop_virt();
    let n = TIMER_FIRED.load(Ordering::Relaxed);
    println!("adversary: timer-storm: done, {} timer interrupts taken", n);
    // Under QEMU a hardware-linked interrupt still raised when the guest deactivates it
    // is not delivered again, even after its line drops and rises (the storm collapses to
    // one or two interrupts): a finding for the vGIC, reported, not asserted here.
    if n == 0 {
        println!("adversary: timer-storm: the interrupt never arrived");
        report.fail();
    }
}

pub fn spin(info: &BootInfo) {
    let ms = arg_u64(info, "spin_ms", 2000);
    println!("adversary: spin: {} ms with interrupts masked", ms);
    irq::disable_local();
    spin_ms(ms);
    println!("adversary: spin: done");
}

// ---------------------------------------------------------------------------------------
// level-irq

static RTC_BASE: AtomicU64 = AtomicU64::new(0);
static RTC_IRQS: AtomicU64 = AtomicU64::new(0);
const RTCDR: usize = 0x00;
const RTCMR: usize = 0x04;
const RTCIMSC: usize = 0x10;
const RTCRIS: usize = 0x14;
const RTCICR: usize = 0x1c;

fn rtc(offset: usize) -> *mut u32 {
    (RTC_BASE.load(Ordering::Relaxed) as usize + offset) as *mut u32
}

/// The RTC's handler: never clears the device's interrupt (RTCICR); once `LEAVE_RAISED`
/// is off it masks it at the device (the level drops), and the interrupted loop unmasks it
/// again at once (the level rises: a new interrupt).
fn leave_asserted(_intid: u32) {
    RTC_IRQS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the RTC of its own DT (see `level_irq`).
    unsafe {
        if timer::now() >= STORM_END.load(Ordering::Relaxed) {
            rtc(RTCIMSC).write_volatile(0);
            rtc(RTCICR).write_volatile(1);
        } else if !LEAVE_RAISED.load(Ordering::Relaxed) {
            rtc(RTCIMSC).write_volatile(0);
        }
    }
}

pub fn level_irq(info: &BootInfo, report: &mut Report) {
    let ms = arg_u64(info, "storm_ms", 2000);
    let Some(dev) = info.device("arm,pl031") else {
        println!("adversary: level-irq: no arm,pl031 in its device tree");
        report.fail();
        return;
    };
    let Some(intid) = dev.irq.map(|i| i.intid) else {
        println!("adversary: level-irq: the RTC has no interrupt");
        report.fail();
        return;
    };
    RTC_BASE.store(dev.reg.base as u64, Ordering::Relaxed);
    if let Err(e) = irq::init() {
        println!("adversary: level-irq: {:?}", e);
        report.fail();
        return;
    }
    irq::set_handler(intid, Some(leave_asserted));
    let _ = gic::enable(intid);
    // SAFETY: the PL031 its DT gives it (passed through): match now + 1 s, interrupt on.
    unsafe {
        rtc(RTCICR).write_volatile(1);
        let now = rtc(RTCDR).read_volatile();
        rtc(RTCMR).write_volatile(now.wrapping_add(1));
        rtc(RTCIMSC).write_volatile(1);
    }
    let deadline = timer::now() + timer::ticks_from_us(3_000_000);
    // SAFETY: as above (read-only status register).
    while unsafe { rtc(RTCRIS).read_volatile() } & 1 == 0 && timer::now() < deadline {
        core::hint::spin_loop();
    }
    // SAFETY: as above.
    if unsafe { rtc(RTCRIS).read_volatile() } & 1 == 0 {
        println!("adversary: level-irq: the RTC never asserted its interrupt");
        report.fail();
        return;
    }
    println!(
        "adversary: level-irq: INTID {} asserted; {} ms never acknowledged",
        intid,
        ms / 2
    );
    spin_ms(ms / 2);
    println!(
        "adversary: level-irq: {} ms taken and never cleared at the device",
        ms / 2
    );
    LEAVE_RAISED.store(true, Ordering::Relaxed);
    irq::enable_local();
    spin_ms(100);
    println!(
        "adversary: level-irq: left raised after each EOI: {} interrupt(s) in 100 ms",
        RTC_IRQS.load(Ordering::Relaxed)
    );
    LEAVE_RAISED.store(false, Ordering::Relaxed);
    let end = timer::now() + timer::ticks_from_us((ms / 2).saturating_sub(100) * 1000);
    // SAFETY: as above: drop the line once, then raise it again whenever the handler
    // dropped it (interrupt enable at the device; the interrupt itself is never cleared).
    unsafe {
        rtc(RTCIMSC).write_volatile(0);
        while timer::now() < end {
            if rtc(RTCIMSC).read_volatile() == 0 {
                rtc(RTCIMSC).write_volatile(1);
            }
        }
    }
    irq::disable_local();
    // SAFETY: as above: interrupt off, cleared.
    unsafe {
        rtc(RTCIMSC).write_volatile(0);
        rtc(RTCICR).write_volatile(1);
    }
    let _ = gic::disable(intid);
    let n = RTC_IRQS.load(Ordering::Relaxed);
    println!("adversary: level-irq: done, {} interrupts taken", n);
    // Under QEMU a hardware-linked interrupt still raised when the guest deactivates it
    // is not delivered again, even after its line drops and rises (the storm collapses to
    // one or two interrupts): a finding for the vGIC, reported, not asserted here.
    if n == 0 {
        println!("adversary: level-irq: the interrupt never arrived");
        report.fail();
    }
}
