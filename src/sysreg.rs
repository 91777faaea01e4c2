//! Emulation of the system-register accesses that `arch::el2ctl` makes trap (ESR class 0x18):
//! the PMU, debug, trace, activity-monitor, ACTLR_EL1 and error-record registers read as zero
//! and ignore writes; set/way cache maintenance becomes maintenance by address of the VM's own
//! RAM. Everything else (implementation-defined registers, EL2/EL3 registers) is left to the
//! caller, which makes it UNDEFINED.

use aarch64_cpu::registers::ID_AA64MMFR2_EL1;
use tessera_stage2::GuestPhysAddr;
use tock_registers::interfaces::Readable;

use crate::arch::esr::Esr;
use crate::arch::TrapFrame;
use crate::vm::{self, GuestMemory, VcpuRef, VmId};

/// What [`handle`] did with a trapped access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emulated {
    /// A read-as-zero / write-ignored register.
    RazWi,
    /// A set/way cache maintenance instruction, done by address on the VM's RAM.
    SetWay,
}

/// The fields of a trapped MSR/MRS/SYS instruction (ISS of ESR class 0x18).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysRegAccess {
    pub op0: u8,
    pub op1: u8,
    pub crn: u8,
    pub crm: u8,
    pub op2: u8,
    /// The general register (31 = XZR).
    pub rt: usize,
    /// MRS (a read) rather than MSR/SYS.
    pub read: bool,
}

impl SysRegAccess {
    /// Decodes the ISS of a class-0x18 syndrome.
    pub fn decode(iss: u32) -> Self {
        SysRegAccess {
            op0: ((iss >> 20) & 3) as u8,
            op2: ((iss >> 17) & 7) as u8,
            op1: ((iss >> 14) & 7) as u8,
            crn: ((iss >> 10) & 0xf) as u8,
            rt: ((iss >> 5) & 0x1f) as usize,
            crm: ((iss >> 1) & 0xf) as u8,
            read: iss & 1 == 1,
        }
    }

    fn is(&self, op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> bool {
        (self.op0, self.op1, self.crn, self.crm, self.op2) == (op0, op1, crn, crm, op2)
    }

    /// DC ISW / DC CSW / DC CISW (op0 1, op1 0, CRn 7, CRm 6/10/14, op2 2).
    pub fn is_set_way(&self) -> bool {
        self.op0 == 1
            && self.op1 == 0
            && self.crn == 7
            && matches!(self.crm, 6 | 10 | 14)
            && self.op2 == 2
            && !self.read
    }

    /// Registers a guest reads as zero and whose writes are ignored.
    pub fn is_raz_wi(&self) -> bool {
        let (op0, op1, crn, crm) = (self.op0, self.op1, self.crn, self.crm);
        // Debug (op0 2: breakpoints, watchpoints, MDSCR, OS lock, MDRAR, DCC, claim tags)
        // and trace (op0 2, op1 1: ETM system registers).
        op0 == 2
            // PMU, EL0 view: PMCR..PMCEID1 (CRm 12), PMCCNTR/PMXEV* (CRm 13),
            // PMUSERENR/PMOVSSET (CRm 14).
            || (op0 == 3 && op1 == 3 && crn == 9 && (12..=14).contains(&crm))
            // PMU event counters and types, PMCCFILTR (op1 3, CRn 14, CRm 8..=15).
            || (op0 == 3 && op1 == 3 && crn == 14 && crm >= 8)
            // PMINTENSET/CLR_EL1, PMMIR_EL1 (op1 0, CRn 9, CRm 14); statistical profiling
            // PMS*_EL1 (CRm 9, 10) and the trace buffer TRB*_EL1 (CRm 11).
            || (op0 == 3 && op1 == 0 && crn == 9 && matches!(crm, 9 | 10 | 11 | 14))
            // Activity monitors (op1 3, CRn 13, CRm 2..=7).
            || (op0 == 3 && op1 == 3 && crn == 13 && (2..=7).contains(&crm))
            // ACTLR_EL1.
            || self.is(3, 0, 1, 0, 1)
            // TRFCR_EL1.
            || self.is(3, 0, 1, 2, 1)
            // Error records: ERRIDR/ERRSELR (CRm 3), ERX* (CRm 4, 5).
            || (op0 == 3 && op1 == 0 && crn == 5 && matches!(crm, 3..=5))
    }
}

/// Emulates the trapped system-register access `esr` (class 0x18) of vCPU `vcpu` of `vm`:
/// on success the access is complete (the result register written for a read) and `frame.elr`
/// is past the instruction. `None`: not an access this module emulates; nothing was changed
/// (the caller injects UNDEFINED).
pub fn handle(frame: &mut TrapFrame, caller: VcpuRef, esr: Esr) -> Option<Emulated> {
    let vm = caller.vm;
    let a = SysRegAccess::decode(esr.iss());
    let done = if a.is_set_way() {
        set_way(vm, frame.reg(a.rt));
        Emulated::SetWay
    } else if a.is_raz_wi() {
        if a.read {
            frame.set_reg(a.rt, 0);
        }
        Emulated::RazWi
    } else {
        return None;
    };
    frame.elr += 4;
    Some(done)
}

/// Geometry of one data or unified cache level: log2 of the line size in bytes, sets, ways.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheGeometry {
    pub log2_line: u32,
    pub sets: u64,
    pub ways: u64,
}

impl CacheGeometry {
    /// From a CCSIDR_EL1 value; `ccidx`: the FEAT_CCIDX (64-bit) layout.
    pub fn from_ccsidr(ccsidr: u64, ccidx: bool) -> Self {
        let log2_line = (ccsidr & 7) as u32 + 4;
        let (ways, sets) = if ccidx {
            (
                ((ccsidr >> 3) & 0x1f_ffff) + 1,
                ((ccsidr >> 32) & 0xff_ffff) + 1,
            )
        } else {
            (((ccsidr >> 3) & 0x3ff) + 1, ((ccsidr >> 13) & 0x7fff) + 1)
        };
        CacheGeometry {
            log2_line,
            sets,
            ways,
        }
    }

    /// The operand of a set/way instruction, split as `(set, way)` (DDI 0487 D7.4.x: Way in
    /// the top `A = ceil(log2(ways))` bits of the 32, Set from bit `log2(line)`).
    pub fn decode(&self, xt: u64) -> (u64, u64) {
        let a = ceil_log2(self.ways);
        let s = ceil_log2(self.sets);
        let set = (xt >> self.log2_line) & ((1u64 << s) - 1);
        let way = if a == 0 {
            0
        } else {
            ((xt & 0xffff_ffff) >> (32 - a)) & ((1u64 << a) - 1)
        };
        (set, way)
    }

    /// Which of `sets * ways` equal slices of a VM's RAM the operation on `(set, way)` cleans
    /// (`None` for a set or way the cache does not have).
    pub fn slice(&self, set: u64, way: u64) -> Option<(u64, u64)> {
        (set < self.sets && way < self.ways).then(|| (way * self.sets + set, self.sets * self.ways))
    }
}

fn ceil_log2(n: u64) -> u32 {
    if n <= 1 {
        0
    } else {
        64 - (n - 1).leading_zeros()
    }
}

/// `[start, end)` byte offsets of slice `index` of `count` over `total` bytes, in whole lines.
pub fn slice_bounds(total: u64, index: u64, count: u64, log2_line: u32) -> (u64, u64) {
    let line = 1u64 << log2_line;
    let at = |k: u64| {
        let b = ((total as u128 * k as u128) / count.max(1) as u128) as u64;
        b & !(line - 1)
    };
    let end = if index + 1 >= count {
        total
    } else {
        at(index + 1)
    };
    (at(index), end)
}

/// A trapped DC ISW/CSW/CISW with operand `xt`: cleans and invalidates, by address, one slice
/// of the VM's RAM: the RAM split into `sets * ways` equal slices of the named cache level,
/// slice `way * sets + set`. A guest's full sweep over a level (every set and way, the only
/// use set/way operations have: cache flushes at power-down or MMU changes) therefore cleans
/// and invalidates all of its RAM exactly once, each trap doing a bounded share of the work,
/// and never touches any other VM's or the hypervisor's lines. (Invalidate-only DC ISW is
/// done as clean + invalidate, as HCR_EL2.SWIO asks of hardware.)
fn set_way(vm: VmId, xt: u64) {
    let level = (xt >> 1) & 7;
    let Some(g) = geometry(level) else { return };
    let (set, way) = g.decode(xt);
    let Some((index, count)) = g.slice(set, way) else {
        return;
    };
    let regions = vm::desc(vm).mem;
    let total: u64 = regions.iter().map(|m| m.size).sum();
    let (mut start, end) = slice_bounds(total, index, count, g.log2_line);
    let mem = GuestMemory::of(vm);
    let mut base = 0u64;
    for m in regions {
        let (lo, hi) = (base, base + m.size);
        base = hi;
        if start >= end {
            break;
        }
        if start >= hi {
            continue;
        }
        let to = end.min(hi);
        // Page by page through the VM's stage 2 (its RAM need not be physically contiguous);
        // the range is the VM's own RAM by construction, so this cannot be refused.
        let _ = mem.clean_inval(GuestPhysAddr(m.ipa + (start - lo)), to - start);
        start = to;
    }
}

/// The geometry of data/unified cache level `level` (0-based), from CCSIDR_EL1; the guest's
/// CSSELR_EL1 is restored. `None` when the level has no data or unified cache.
fn geometry(level: u64) -> Option<CacheGeometry> {
    let clidr = crate::arch::regs::clidr_el1();
    // Ctype<n>: 2 data, 3 separate I+D, 4 unified.
    if !matches!((clidr >> (3 * level)) & 7, 2..=4) {
        return None;
    }
    let ccsidr = crate::arch::regs::read_ccsidr(level << 1);
    let ccidx = tessera_colors::ccidx_from_mmfr2(ID_AA64MMFR2_EL1.get());
    Some(CacheGeometry::from_ccsidr(ccsidr, ccidx))
}
