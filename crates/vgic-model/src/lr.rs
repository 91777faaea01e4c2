//! List-register contents and their GICv3 (`ICH_LR<n>_EL2`) and GICv2 (`GICH_LR<n>`) encodings.

/// One virtual interrupt as it sits (or will sit) in a list register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LrEntry {
    /// Virtual INTID the guest acknowledges.
    pub intid: u32,
    /// Priority, 8-bit scale (lower = more urgent). GICv2 LRs keep only the top 5 bits.
    pub priority: u8,
    /// Physical INTID of a hardware-linked interrupt: the guest's deactivation deactivates it.
    pub hw: Option<u32>,
    /// GICv2 SGIs only: the vCPU that sent it (`GICH_LR.CPUID`); 0 otherwise.
    pub source_cpu: u8,
    /// Group 1 (IRQ) rather than Group 0 (FIQ, or IRQ when the guest has not enabled FIQs).
    pub group1: bool,
    /// Ask for a maintenance interrupt when the guest EOIs it (`EOI` bit, only when `hw` is
    /// `None`). Set by [`Vgic::next_for_lr`](crate::Vgic::next_for_lr) when the model still
    /// holds more pending state for the same INTID that could not go into this LR (a GICv2 SGI
    /// sent by several vCPUs, or a re-trigger while active): at that maintenance interrupt the
    /// hypervisor returns the LR with [`Vgic::lr_returned`](crate::Vgic::lr_returned) and
    /// refills it.
    pub eoi: bool,
}

/// The state field of a list register (both GIC versions use the same two bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LrState {
    /// Free / the guest has finished with the interrupt.
    Invalid,
    /// Pending, not yet acknowledged.
    Pending,
    /// Acknowledged, not yet deactivated.
    Active,
    /// Active and pending again.
    PendingActive,
}

impl LrState {
    /// The 2-bit encoding (`0b00` invalid, `0b01` pending, `0b10` active, `0b11` both).
    pub const fn bits(self) -> u64 {
        match self {
            LrState::Invalid => 0,
            LrState::Pending => 1,
            LrState::Active => 2,
            LrState::PendingActive => 3,
        }
    }

    /// Decodes the low 2 bits of `bits`.
    pub const fn from_bits(bits: u64) -> Self {
        match bits & 3 {
            0 => LrState::Invalid,
            1 => LrState::Pending,
            2 => LrState::Active,
            _ => LrState::PendingActive,
        }
    }

    /// Has the pending bit.
    pub const fn is_pending(self) -> bool {
        matches!(self, LrState::Pending | LrState::PendingActive)
    }

    /// Has the active bit.
    pub const fn is_active(self) -> bool {
        matches!(self, LrState::Active | LrState::PendingActive)
    }
}

// ICH_LR<n>_EL2 (GICv3, IHI 0069 §12.4.6).
const V3_PINTID_SHIFT: u32 = 32;
const V3_PINTID_MASK: u64 = 0x1FFF; // pINTID[44:32]
const V3_EOI: u64 = 1 << 41; // when HW == 0
const V3_PRIORITY_SHIFT: u32 = 48;
const V3_GROUP: u64 = 1 << 60;
const V3_HW: u64 = 1 << 61;
const V3_STATE_SHIFT: u32 = 62;

/// Encodes an `ICH_LR<n>_EL2` value: `vINTID[31:0]`, `pINTID[44:32]` (HW) or EOI bit 41 (not
/// HW), `Priority[55:48]`, `Group[60]`, `HW[61]`, `State[63:62]`. A physical INTID is
/// truncated to 13 bits.
pub fn lr_v3_encode(e: &LrEntry, state: LrState) -> u64 {
    let mut v = u64::from(e.intid)
        | (u64::from(e.priority) << V3_PRIORITY_SHIFT)
        | (state.bits() << V3_STATE_SHIFT);
    if e.group1 {
        v |= V3_GROUP;
    }
    match e.hw {
        Some(p) => v |= V3_HW | ((u64::from(p) & V3_PINTID_MASK) << V3_PINTID_SHIFT),
        None if e.eoi => v |= V3_EOI,
        None => {}
    }
    v
}

/// Decodes an `ICH_LR<n>_EL2` value (the inverse of [`lr_v3_encode`]; `source_cpu` is 0).
pub fn lr_v3_decode(v: u64) -> (LrEntry, LrState) {
    let hw = v & V3_HW != 0;
    let entry = LrEntry {
        intid: v as u32,
        priority: (v >> V3_PRIORITY_SHIFT) as u8,
        hw: hw.then_some(((v >> V3_PINTID_SHIFT) & V3_PINTID_MASK) as u32),
        source_cpu: 0,
        group1: v & V3_GROUP != 0,
        eoi: !hw && v & V3_EOI != 0,
    };
    (entry, LrState::from_bits(v >> V3_STATE_SHIFT))
}

// GICH_LR<n> (GICv2, IHI 0048B §5.3.11).
const V2_VID_MASK: u32 = 0x3FF; // VirtualID[9:0]
const V2_PID_SHIFT: u32 = 10;
const V2_PID_MASK: u32 = 0x3FF; // PhysicalID[19:10] when HW == 1
const V2_CPUID_MASK: u32 = 0x7; // CPUID[12:10] when HW == 0
const V2_EOI: u32 = 1 << 19; // when HW == 0
const V2_PRIORITY_SHIFT: u32 = 23; // Priority[27:23]
const V2_STATE_SHIFT: u32 = 28;
const V2_GRP1: u32 = 1 << 30;
const V2_HW: u32 = 1 << 31;

/// Encodes a `GICH_LR<n>` value: `VirtualID[9:0]`, `PhysicalID[19:10]` (HW) or `CPUID[12:10]`
/// (SGI source) and EOI bit 19 (not HW), `Priority[27:23]` (top 5 bits of the 8-bit priority),
/// `State[29:28]`, `Grp1[30]`, `HW[31]`. INTIDs are truncated to 10 bits, the source to 3.
pub fn lr_v2_encode(e: &LrEntry, state: LrState) -> u32 {
    let mut v = (e.intid & V2_VID_MASK)
        | (u32::from(e.priority >> 3) << V2_PRIORITY_SHIFT)
        | ((state.bits() as u32) << V2_STATE_SHIFT);
    if e.group1 {
        v |= V2_GRP1;
    }
    match e.hw {
        Some(p) => v |= V2_HW | ((p & V2_PID_MASK) << V2_PID_SHIFT),
        None => {
            if e.intid < 16 {
                v |= (u32::from(e.source_cpu) & V2_CPUID_MASK) << V2_PID_SHIFT;
            }
            if e.eoi {
                v |= V2_EOI;
            }
        }
    }
    v
}

/// Decodes a `GICH_LR<n>` value (the inverse of [`lr_v2_encode`]; the priority comes back
/// with its low 3 bits zero).
pub fn lr_v2_decode(v: u32) -> (LrEntry, LrState) {
    let hw = v & V2_HW != 0;
    let intid = v & V2_VID_MASK;
    let entry = LrEntry {
        intid,
        priority: (((v >> V2_PRIORITY_SHIFT) & 0x1F) << 3) as u8,
        hw: hw.then_some((v >> V2_PID_SHIFT) & V2_PID_MASK),
        source_cpu: if !hw && intid < 16 {
            ((v >> V2_PID_SHIFT) & V2_CPUID_MASK) as u8
        } else {
            0
        },
        group1: v & V2_GRP1 != 0,
        eoi: !hw && v & V2_EOI != 0,
    };
    (entry, LrState::from_bits(u64::from(v >> V2_STATE_SHIFT)))
}
