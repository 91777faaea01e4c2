//! GICv2 and GICv3 driver (the parts a guest uses), found through the device tree.
//!
//! Works bare on QEMU `virt` and under Tessera, where the distributor and redistributors are
//! emulated by trapping: every register access here is one plain load or store of the
//! register's exact width (32 bits; 64 bits only for `GICD_IROUTER<n>` and `GICR_TYPER`),
//! issued from inline assembly so that the compiler can neither merge, split nor use
//! write-back addressing (which would leave the hypervisor without a syndrome to emulate).
//! Byte-wide registers (priorities, targets) are updated by 32-bit read-modify-write under a
//! lock.
//!
//! - v3: the CPU interface is the `ICC_*` system registers (group 1, `ICC_IAR1/EOIR1`);
//!   SGIs and PPIs are configured in this CPU's redistributor SGI frame (found by matching
//!   `GICR_TYPER` affinity with `MPIDR`), SPIs in the distributor, routed with `GICD_IROUTER`.
//! - v2: the CPU interface is memory-mapped (`GICC`); SGIs and PPIs use the distributor's
//!   banked registers, SPIs are targeted with `GICD_ITARGETSR`, SGIs are sent with `GICD_SGIR`.
//!
//! All interrupts signal IRQ (never FIQ); EOImode 0 (the EOI write both drops the priority and
//! deactivates).

use core::arch::asm;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use spin::{Mutex, Once};

use crate::boot::MAX_CPUS;
use crate::dt::{GicDesc, GicVersion, MemRegion, Trigger};

/// Number of INTIDs below the special range (1020..=1023).
pub const MAX_INTID: u32 = 1020;
/// First PPI.
pub const PPI_BASE: u32 = 16;
/// First SPI.
pub const SPI_BASE: u32 = 32;
/// INTID returned by an acknowledge with nothing pending.
pub const SPURIOUS: u32 = 1023;
/// Priority given to every interrupt by [`init`] (lower value = higher priority).
pub const DEFAULT_PRIORITY: u8 = 0xa0;

// Distributor register offsets (common to v2 and v3 unless noted; see `dist_read32`).
/// `GICD_CTLR`: Distributor control.
pub const GICD_CTLR: usize = 0x000;
/// `GICD_TYPER`: Distributor type (ITLinesNumber in bits 4:0).
pub const GICD_TYPER: usize = 0x004;
/// `GICD_IGROUPR`: Group bits, one per INTID (v3: 1 = group 1).
pub const GICD_IGROUPR: usize = 0x080;
/// `GICD_ISENABLER`: Set-enable bits, one per INTID.
pub const GICD_ISENABLER: usize = 0x100;
/// `GICD_ICENABLER`: Clear-enable bits, one per INTID.
pub const GICD_ICENABLER: usize = 0x180;
/// `GICD_ISPENDR`: Set-pending bits, one per INTID.
pub const GICD_ISPENDR: usize = 0x200;
/// `GICD_ICPENDR`: Clear-pending bits, one per INTID.
pub const GICD_ICPENDR: usize = 0x280;
/// `GICD_IPRIORITYR`: Priority bytes, one per INTID.
pub const GICD_IPRIORITYR: usize = 0x400;
/// `GICD_ITARGETSR`: v2: CPU target bytes, one per INTID (offset 0: the reading CPU's own bit).
pub const GICD_ITARGETSR: usize = 0x800;
/// `GICD_ICFGR`: Trigger configuration, two bits per INTID.
pub const GICD_ICFGR: usize = 0xc00;
/// `GICD_SGIR`: v2: software-generated interrupt register.
pub const GICD_SGIR: usize = 0xf00;
/// `GICD_IROUTER`: v3: 64-bit routing register of SPI n at `+ 8 * n`.
pub const GICD_IROUTER: usize = 0x6000;
/// `GICD_CTLR.RWP` (v3): register write pending.
const GICD_CTLR_RWP: u32 = 1 << 31;
/// v3 `GICD_CTLR`: ARE (bit 4) | EnableGrp1 (bit 1) | EnableGrp0 (bit 0) with one security
/// state; ARE_NS | EnableGrp1A | EnableGrp1 in the non-secure view. Either way: affinity
/// routing on, the interrupts this driver uses enabled.
const GICD_CTLR_V3_ENABLE: u32 = 0x13;
const GICD_CTLR_V3_ARE: u32 = 0x10;
/// v2 `GICD_CTLR`: EnableGrp0 | EnableGrp1.
const GICD_CTLR_V2_ENABLE: u32 = 0x3;

// Redistributor: RD_base frame.
const GICR_TYPER: usize = 0x008;
const GICR_WAKER: usize = 0x014;
const GICR_TYPER_VLPIS: u64 = 1 << 1;
const GICR_TYPER_LAST: u64 = 1 << 4;
const GICR_WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const GICR_WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// Size of the RD_base + SGI_base frame pair (v3); v4 adds two more frames (VLPIS).
const GICR_FRAMES: usize = 0x2_0000;
/// Offset of the SGI_base frame in a redistributor.
const GICR_SGI_BASE: usize = 0x1_0000;
/// Size of one 64 KiB frame.
const FRAME: usize = 0x1_0000;

// GICv2 CPU interface.
const GICC_CTLR: usize = 0x00;
const GICC_PMR: usize = 0x04;
const GICC_BPR: usize = 0x08;
const GICC_IAR: usize = 0x0c;
const GICC_EOIR: usize = 0x10;
/// EnableGrp0 | EnableGrp1 | AckCtl: whatever group the interrupts are in (bare: group 0;
/// under a hypervisor: its list-register choice), they are signalled as IRQ and acknowledged.
const GICC_CTLR_ENABLE: u32 = 0x7;

/// How many polls of a "write pending" / "asleep" bit before giving up.
const POLL_LIMIT: usize = 1_000_000;

/// Why the GIC could not be set up or used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicError {
    /// The device tree has no (usable) GICv2/GICv3 node.
    NoGic,
    /// [`init`] has not been called.
    NotInitialized,
    /// v3: no redistributor's `GICR_TYPER` affinity matches this CPU's MPIDR.
    NoRedistributor,
    /// v3: `ICC_SRE_EL1.SRE` does not stick (the system-register interface is disabled).
    SystemRegistersDisabled,
    /// A register did not settle (`GICD_CTLR.RWP`, `GICR_WAKER.ChildrenAsleep`).
    Timeout,
    /// The INTID is out of range (or the operation does not apply to it).
    BadIntid(u32),
    /// The target CPU index is unknown.
    BadCpu(usize),
}

/// A block of memory-mapped registers: accesses are bounds-checked against its size.
#[derive(Clone, Copy, Debug)]
struct Regs {
    base: usize,
    size: usize,
}

impl Regs {
    /// # Safety
    ///
    /// `[base, base + size)` must be device registers (or a trap-emulated range) mapped as
    /// Device memory for the rest of the program, where 32-bit loads and stores at any 4-byte
    /// aligned offset (and 64-bit ones at the offsets this module uses them) have no effect on
    /// memory the program uses.
    const unsafe fn new(base: usize, size: usize) -> Self {
        Self { base, size }
    }

    fn addr(&self, offset: usize, width: usize) -> usize {
        assert!(
            offset.is_multiple_of(width) && offset + width <= self.size,
            "GIC register offset out of range"
        );
        self.base + offset
    }

    fn read32(&self, offset: usize) -> u32 {
        let addr = self.addr(offset, 4);
        let value: u32;
        // SAFETY: `addr` lies inside the register block (checked above), aligned; by the
        // contract of `Regs::new` a 32-bit load there touches no program memory.
        unsafe {
            asm!("ldr {v:w}, [{a}]", a = in(reg) addr, v = out(reg) value, options(nostack, preserves_flags))
        };
        value
    }

    fn write32(&self, offset: usize, value: u32) {
        let addr = self.addr(offset, 4);
        // SAFETY: as for `read32`: a single aligned 32-bit store inside the register block.
        unsafe {
            asm!("str {v:w}, [{a}]", a = in(reg) addr, v = in(reg) value, options(nostack, preserves_flags))
        };
    }

    fn read64(&self, offset: usize) -> u64 {
        let addr = self.addr(offset, 8);
        let value: u64;
        // SAFETY: as for `read32`, with a 64-bit register (GICR_TYPER, GICD_IROUTER).
        unsafe {
            asm!("ldr {v}, [{a}]", a = in(reg) addr, v = out(reg) value, options(nostack, preserves_flags))
        };
        value
    }

    fn write64(&self, offset: usize, value: u64) {
        let addr = self.addr(offset, 8);
        // SAFETY: as for `read64`.
        unsafe {
            asm!("str {v}, [{a}]", a = in(reg) addr, v = in(reg) value, options(nostack, preserves_flags))
        };
    }
}

/// The GIC in use.
struct Gic {
    version: GicVersion,
    dist: Regs,
    /// v2 CPU interface.
    cpu_if: Option<Regs>,
    /// v3 redistributor regions.
    redist: heapless::Vec<MemRegion, { crate::dt::MAX_REDIST_REGIONS }>,
    /// Number of INTIDs the distributor implements (32 * (ITLinesNumber + 1), at most 1020).
    lines: u32,
}

static GIC: Once<Result<Gic, GicError>> = Once::new();
/// Serializes read-modify-write of shared distributor registers.
static DIST_LOCK: Mutex<()> = Mutex::new(());
/// v3: base of each CPU's redistributor (0 = not found yet).
static RD_BASE: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];
/// v2: each CPU's interface bit (from its banked `GICD_ITARGETSR0`; 0 = unknown).
static CPU_MASK: [AtomicU8; MAX_CPUS] = [const { AtomicU8::new(0) }; MAX_CPUS];

/// Sets the distributor up (once, from the device tree). Later calls return the first result.
pub(crate) fn init(desc: Option<&GicDesc>) -> Result<(), GicError> {
    GIC.call_once(|| probe(desc))
        .as_ref()
        .map(drop)
        .map_err(|e| *e)
}

fn probe(desc: Option<&GicDesc>) -> Result<Gic, GicError> {
    let desc = desc.ok_or(GicError::NoGic)?;
    if desc.dist.size < 0x1000 {
        return Err(GicError::NoGic);
    }
    // SAFETY: the device tree names this range as the GIC distributor; it lies in the
    // runtime's Device-memory identity map (below 1 GiB on QEMU virt and Tessera VMs) and only
    // this module accesses it.
    let dist = unsafe { Regs::new(desc.dist.base, desc.dist.size) };
    let lines = (32 * ((dist.read32(GICD_TYPER) & 0x1f) + 1)).min(MAX_INTID);
    let cpu_if = match desc.version {
        GicVersion::V2 => {
            if desc.cpu_if.size < 0x1000 {
                return Err(GicError::NoGic);
            }
            // SAFETY: as above, for the range the device tree names as the CPU interface.
            Some(unsafe { Regs::new(desc.cpu_if.base, desc.cpu_if.size) })
        }
        GicVersion::V3 => {
            if desc.redist.is_empty() {
                return Err(GicError::NoGic);
            }
            None
        }
    };
    let gic = Gic {
        version: desc.version,
        dist,
        cpu_if,
        redist: desc.redist.clone(),
        lines,
    };
    match gic.version {
        GicVersion::V3 => {
            gic.dist.write32(GICD_CTLR, 0);
            gic.wait_rwp()?;
            gic.dist.write32(GICD_CTLR, GICD_CTLR_V3_ARE);
            gic.wait_rwp()?;
            gic.dist.write32(GICD_CTLR, GICD_CTLR_V3_ENABLE);
            gic.wait_rwp()?;
        }
        GicVersion::V2 => gic.dist.write32(GICD_CTLR, GICD_CTLR_V2_ENABLE),
    }
    Ok(gic)
}

fn gic() -> Result<&'static Gic, GicError> {
    match GIC.get() {
        Some(Ok(g)) => Ok(g),
        Some(Err(e)) => Err(*e),
        None => Err(GicError::NotInitialized),
    }
}

/// Whether [`init`] succeeded.
pub(crate) fn ready() -> bool {
    matches!(GIC.get(), Some(Ok(_)))
}

/// The GIC version in use, once initialized.
pub fn version() -> Option<GicVersion> {
    gic().ok().map(|g| g.version)
}

/// Number of INTIDs the distributor implements (SGIs, PPIs and SPIs), once initialized.
pub fn lines() -> Option<u32> {
    gic().ok().map(|g| g.lines)
}

/// `MPIDR`-style affinity (Aff3 in bits 39:32) packed as in `GICR_TYPER[63:32]`.
fn affinity32(mpidr: u64) -> u64 {
    ((mpidr >> 8) & 0xff00_0000) | (mpidr & 0x00ff_ffff)
}

/// `MPIDR`-style affinity packed as in `GICD_IROUTER` (Aff3 in bits 39:32, IRM = 0).
fn irouter_affinity(mpidr: u64) -> u64 {
    mpidr & 0xff_00ff_ffff
}

/// Sets up the calling CPU's side: v3 redistributor (found and woken) and `ICC_*`; v2 banked
/// distributor registers and `GICC`. Every SGI/PPI gets [`DEFAULT_PRIORITY`] and group 1 (v3).
pub(crate) fn init_cpu() -> Result<(), GicError> {
    let gic = gic()?;
    let cpu = crate::cpu::index();
    if cpu >= MAX_CPUS {
        return Err(GicError::BadCpu(cpu));
    }
    let prio_word = u32::from_ne_bytes([DEFAULT_PRIORITY; 4]);
    match gic.version {
        GicVersion::V3 => {
            let rd = gic.find_redistributor(crate::cpu::mpidr())?;
            RD_BASE[cpu].store(rd.base, Ordering::SeqCst);
            let waker = rd.read32(GICR_WAKER);
            rd.write32(GICR_WAKER, waker & !GICR_WAKER_PROCESSOR_SLEEP);
            poll(|| rd.read32(GICR_WAKER) & GICR_WAKER_CHILDREN_ASLEEP == 0)?;
            let sgi = gic.sgi_frame(cpu)?;
            sgi.write32(GICD_IGROUPR, u32::MAX);
            for i in 0..8 {
                sgi.write32(GICD_IPRIORITYR + 4 * i, prio_word);
            }
            icc::enable_sre();
            if icc::sre() & 1 == 0 {
                return Err(GicError::SystemRegistersDisabled);
            }
            icc::init();
        }
        GicVersion::V2 => {
            let mask = gic.dist.read32(GICD_ITARGETSR) as u8;
            let mask = if mask == 0 {
                1u8.checked_shl(cpu as u32).unwrap_or(0)
            } else {
                mask
            };
            CPU_MASK[cpu].store(mask, Ordering::SeqCst);
            for i in 0..8 {
                gic.dist.write32(GICD_IPRIORITYR + 4 * i, prio_word);
            }
            let cpu_if = gic.cpu_if.ok_or(GicError::NoGic)?;
            cpu_if.write32(GICC_PMR, 0xff);
            cpu_if.write32(GICC_BPR, 0);
            cpu_if.write32(GICC_CTLR, GICC_CTLR_ENABLE);
        }
    }
    Ok(())
}

fn poll(mut done: impl FnMut() -> bool) -> Result<(), GicError> {
    for _ in 0..POLL_LIMIT {
        if done() {
            return Ok(());
        }
        core::hint::spin_loop();
    }
    Err(GicError::Timeout)
}

impl Gic {
    fn wait_rwp(&self) -> Result<(), GicError> {
        poll(|| self.dist.read32(GICD_CTLR) & GICD_CTLR_RWP == 0)
    }

    /// v3: the redistributor whose `GICR_TYPER.Affinity` matches `mpidr`.
    fn find_redistributor(&self, mpidr: u64) -> Result<Regs, GicError> {
        let want = affinity32(mpidr);
        for region in &self.redist {
            let mut offset = 0;
            while offset + GICR_FRAMES <= region.size {
                // SAFETY: a redistributor's two 64 KiB frames inside a region the device tree
                // names as GICR (Device memory in the identity map; only this module uses it).
                let rd = unsafe { Regs::new(region.base + offset, GICR_FRAMES) };
                let typer = rd.read64(GICR_TYPER);
                if typer >> 32 == want {
                    return Ok(rd);
                }
                if typer & GICR_TYPER_LAST != 0 {
                    break;
                }
                offset += if typer & GICR_TYPER_VLPIS != 0 {
                    2 * GICR_FRAMES
                } else {
                    GICR_FRAMES
                };
            }
        }
        Err(GicError::NoRedistributor)
    }

    /// v3: the SGI_base frame of CPU `cpu`'s redistributor.
    fn sgi_frame(&self, cpu: usize) -> Result<Regs, GicError> {
        let rd = RD_BASE
            .get(cpu)
            .map(|b| b.load(Ordering::SeqCst))
            .filter(|&b| b != 0)
            .ok_or(GicError::BadCpu(cpu))?;
        // SAFETY: `rd` was found by `find_redistributor` inside a GICR region of the device
        // tree; its SGI frame is the second 64 KiB frame of the pair.
        Ok(unsafe { Regs::new(rd + GICR_SGI_BASE, FRAME) })
    }

    /// The register block holding the per-INTID bits of `intid`, and whether it is banked
    /// (SGI/PPI: this CPU's redistributor SGI frame on v3, the banked GICD on v2).
    fn bank(&self, intid: u32) -> Result<Regs, GicError> {
        if intid >= self.lines.max(SPI_BASE) {
            return Err(GicError::BadIntid(intid));
        }
        if intid < SPI_BASE && self.version == GicVersion::V3 {
            self.sgi_frame(crate::cpu::index())
        } else {
            Ok(self.dist)
        }
    }

    /// Writes the bit of `intid` in a write-1-to-set/clear register array at `base`.
    fn write_bit(&self, base: usize, intid: u32) -> Result<(), GicError> {
        let regs = self.bank(intid)?;
        regs.write32(base + 4 * (intid as usize / 32), 1 << (intid % 32));
        Ok(())
    }

    /// Reads the bit of `intid` in a bit-per-INTID register array at `base`.
    fn read_bit(&self, base: usize, intid: u32) -> Result<bool, GicError> {
        let regs = self.bank(intid)?;
        Ok(regs.read32(base + 4 * (intid as usize / 32)) & (1 << (intid % 32)) != 0)
    }

    /// Read-modify-write of the `width`-bit field of `intid` in an array at `base`.
    fn write_field(&self, base: usize, intid: u32, width: u32, value: u32) -> Result<(), GicError> {
        let regs = self.bank(intid)?;
        let per_word = 32 / width;
        let offset = base + 4 * (intid / per_word) as usize;
        let shift = (intid % per_word) * width;
        let mask = ((1u64 << width) - 1) as u32;
        let _guard = DIST_LOCK.lock();
        let old = regs.read32(offset);
        regs.write32(offset, (old & !(mask << shift)) | ((value & mask) << shift));
        Ok(())
    }
}

/// Enables `intid` (SGI/PPI: on the calling CPU). An SPI is first put in group 1 (v3) and
/// routed to the calling CPU (v3 `GICD_IROUTER`, v2 `GICD_ITARGETSR`).
pub fn enable(intid: u32) -> Result<(), GicError> {
    let gic = gic()?;
    if intid >= SPI_BASE {
        route_here(intid)?;
    }
    gic.write_bit(GICD_ISENABLER, intid)
}

/// Disables `intid` (SGI/PPI: on the calling CPU).
pub fn disable(intid: u32) -> Result<(), GicError> {
    gic()?.write_bit(GICD_ICENABLER, intid)
}

/// Whether `intid` is enabled (SGI/PPI: on the calling CPU).
pub fn is_enabled(intid: u32) -> Result<bool, GicError> {
    gic()?.read_bit(GICD_ISENABLER, intid)
}

/// Makes `intid` pending (SGI/PPI: on the calling CPU; an SGI is better sent with
/// [`send_sgi`]).
pub fn set_pending(intid: u32) -> Result<(), GicError> {
    gic()?.write_bit(GICD_ISPENDR, intid)
}

/// Clears the pending state of `intid`.
pub fn clear_pending(intid: u32) -> Result<(), GicError> {
    gic()?.write_bit(GICD_ICPENDR, intid)
}

/// Whether `intid` is pending.
pub fn is_pending(intid: u32) -> Result<bool, GicError> {
    gic()?.read_bit(GICD_ISPENDR, intid)
}

/// Sets the priority of `intid` (lower = more urgent; the GIC may implement only the top
/// 4 or 5 bits, so use multiples of 0x10 for distinct levels).
pub fn set_priority(intid: u32, priority: u8) -> Result<(), GicError> {
    gic()?.write_field(GICD_IPRIORITYR, intid, 8, u32::from(priority))
}

/// Sets `intid` edge-triggered or level-sensitive (SGIs are always edge; PPIs may be fixed).
pub fn set_trigger(intid: u32, trigger: Trigger) -> Result<(), GicError> {
    let edge = matches!(trigger, Trigger::Edge);
    gic()?.write_field(GICD_ICFGR, intid, 2, if edge { 0b10 } else { 0 })
}

/// Routes SPI `intid` to the calling CPU (and, on v3, puts it in group 1).
pub fn route_here(intid: u32) -> Result<(), GicError> {
    let gic = gic()?;
    if intid < SPI_BASE || intid >= gic.lines {
        return Err(GicError::BadIntid(intid));
    }
    let cpu = crate::cpu::index();
    match gic.version {
        GicVersion::V3 => {
            gic.write_field(GICD_IGROUPR, intid, 1, 1)?;
            let _guard = DIST_LOCK.lock();
            let aff = irouter_affinity(crate::cpu::mpidr());
            gic.dist.write64(GICD_IROUTER + 8 * intid as usize, aff);
        }
        GicVersion::V2 => {
            let mask = CPU_MASK
                .get(cpu)
                .map(|m| m.load(Ordering::SeqCst))
                .filter(|&m| m != 0)
                .ok_or(GicError::BadCpu(cpu))?;
            gic.write_field(GICD_ITARGETSR, intid, 8, u32::from(mask))?;
        }
    }
    Ok(())
}

/// Sends SGI `intid` (0..=15) to CPU `cpu` (an index of [`crate::BootInfo::cpus`]).
///
/// v3: `ICC_SGI1R_EL1` with the target's affinity from the device tree. v2: `GICD_SGIR` with
/// the target's CPU-interface bit (read from its banked `GICD_ITARGETSR0` when it set up its
/// interrupts; `1 << cpu` before that).
pub fn send_sgi(cpu: usize, intid: u32) -> Result<(), GicError> {
    let gic = gic()?;
    if intid >= PPI_BASE {
        return Err(GicError::BadIntid(intid));
    }
    let mpidr = *crate::boot_info()
        .cpus
        .get(cpu)
        .ok_or(GicError::BadCpu(cpu))?;
    match gic.version {
        GicVersion::V3 => {
            let aff0 = mpidr & 0xff;
            let value = (1u64 << (aff0 & 0xf))
                | (((mpidr >> 8) & 0xff) << 16)
                | (u64::from(intid) << 24)
                | (((mpidr >> 16) & 0xff) << 32)
                | ((aff0 >> 4) << 44)
                | (((mpidr >> 32) & 0xff) << 48);
            icc::send_sgi1(value);
        }
        GicVersion::V2 => {
            let known = CPU_MASK[cpu % MAX_CPUS].load(Ordering::SeqCst);
            let mask = if known != 0 {
                u32::from(known)
            } else {
                1u32.checked_shl(cpu as u32).ok_or(GicError::BadCpu(cpu))? & 0xff
            };
            // SGIR is write-only and one write sends: no read-modify-write, no lock.
            // Make earlier stores (the data the SGI announces) visible first.
            barrier();
            gic.dist.write32(GICD_SGIR, (mask << 16) | intid);
        }
    }
    Ok(())
}

/// An acknowledged interrupt: the raw `IAR` value (to give back to [`eoi`]) and its INTID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// Raw `IAR` value (v2: includes the source CPU of an SGI in bits 12:10).
    pub raw: u32,
    /// The INTID ([`SPURIOUS`] if nothing was pending).
    pub intid: u32,
}

/// Acknowledges the highest-priority pending interrupt (`ICC_IAR1_EL1` / `GICC_IAR`).
pub(crate) fn ack() -> Option<Ack> {
    let gic = gic().ok()?;
    let raw = match gic.version {
        GicVersion::V3 => icc::iar1() as u32,
        GicVersion::V2 => gic.cpu_if?.read32(GICC_IAR),
    };
    let intid = match gic.version {
        GicVersion::V3 => raw & 0xff_ffff,
        GicVersion::V2 => raw & 0x3ff,
    };
    Some(Ack { raw, intid })
}

/// Ends an interrupt (EOImode 0: priority drop and deactivation).
pub(crate) fn eoi(ack: Ack) {
    let Ok(gic) = gic() else { return };
    match gic.version {
        GicVersion::V3 => icc::eoir1(u64::from(ack.raw)),
        GicVersion::V2 => {
            if let Some(c) = gic.cpu_if {
                c.write32(GICC_EOIR, ack.raw);
            }
        }
    }
}

/// 32-bit read of the distributor register at `offset` (for tests of the emulation).
pub fn dist_read32(offset: usize) -> Result<u32, GicError> {
    Ok(gic()?.dist.read32(offset))
}

/// 32-bit write of the distributor register at `offset` (for tests of the emulation).
pub fn dist_write32(offset: usize, value: u32) -> Result<(), GicError> {
    gic()?.dist.write32(offset, value);
    Ok(())
}

/// 64-bit read of the distributor register at `offset` (`GICD_IROUTER<n>` only).
pub fn dist_read64(offset: usize) -> Result<u64, GicError> {
    Ok(gic()?.dist.read64(offset))
}

/// 64-bit write of the distributor register at `offset` (`GICD_IROUTER<n>` only).
pub fn dist_write64(offset: usize, value: u64) -> Result<(), GicError> {
    gic()?.dist.write64(offset, value);
    Ok(())
}

/// `dsb ish`: stores before it are visible to other CPUs before the writes after it.
fn barrier() {
    // SAFETY: a barrier touches no memory or registers.
    unsafe { asm!("dsb ish", options(nostack, preserves_flags)) };
}

/// The GICv3 CPU interface system registers (`S3_0_C12_*` encodings, so that any assembler
/// accepts them).
mod icc {
    use core::arch::asm;

    /// `ICC_SRE_EL1`.
    pub(super) fn sre() -> u64 {
        let v: u64;
        // SAFETY: reading ICC_SRE_EL1 has no side effect; only called on a GICv3 system.
        unsafe {
            asm!("mrs {}, S3_0_C12_C12_5", out(reg) v, options(nomem, nostack, preserves_flags))
        };
        v
    }

    /// Sets `ICC_SRE_EL1.SRE` (system-register interface on).
    pub(super) fn enable_sre() {
        let v = sre() | 1;
        // SAFETY: enabling the system-register interface of the CPU's own GIC interface
        // changes no memory; the isb makes it effective for the accesses that follow.
        unsafe {
            asm!("msr S3_0_C12_C12_5, {}", "isb", in(reg) v, options(nostack, preserves_flags))
        };
    }

    /// PMR = 0xff (no masking by priority), BPR1 = 0, EOImode 0, group 1 enabled.
    pub(super) fn init() {
        let ctlr: u64;
        // SAFETY: ICC_CTLR_EL1 read, no side effect.
        unsafe {
            asm!("mrs {}, S3_0_C12_C12_4", out(reg) ctlr, options(nomem, nostack, preserves_flags))
        };
        let ctlr = ctlr & !(1 << 1);
        // SAFETY: configures this CPU's own GIC CPU interface (priority mask, binary point,
        // EOI mode, group 1 enable); no memory is touched.
        unsafe {
            asm!(
                "msr S3_0_C4_C6_0, {pmr}",    // ICC_PMR_EL1
                "msr S3_0_C12_C12_3, xzr",    // ICC_BPR1_EL1
                "msr S3_0_C12_C12_4, {ctlr}", // ICC_CTLR_EL1
                "msr S3_0_C12_C12_7, {one}",  // ICC_IGRPEN1_EL1
                "isb",
                pmr = in(reg) 0xffu64,
                ctlr = in(reg) ctlr,
                one = in(reg) 1u64,
                options(nostack, preserves_flags)
            )
        };
    }

    /// `ICC_IAR1_EL1` (acknowledge).
    pub(super) fn iar1() -> u64 {
        let v: u64;
        // SAFETY: acknowledging an interrupt changes only GIC state, which the caller then
        // ends with `eoir1`; no memory is touched.
        unsafe { asm!("mrs {}, S3_0_C12_C12_0", out(reg) v, options(nostack, preserves_flags)) };
        v
    }

    /// `ICC_EOIR1_EL1` (end of interrupt).
    pub(super) fn eoir1(v: u64) {
        // SAFETY: ends an interrupt acknowledged by `iar1`; no memory is touched.
        unsafe { asm!("msr S3_0_C12_C12_1, {}", in(reg) v, options(nostack, preserves_flags)) };
    }

    /// `ICC_SGI1R_EL1` (generate a group 1 SGI), after a barrier so that earlier stores are
    /// visible to the target before its handler runs.
    pub(super) fn send_sgi1(v: u64) {
        // SAFETY: sending an SGI changes no memory; the barriers only order accesses.
        unsafe {
            asm!("dsb ish", "msr S3_0_C12_C11_5, {}", "isb", in(reg) v, options(nostack, preserves_flags))
        };
    }
}
