//! Decoding of ESR_EL2 into what Tessera's trap dispatcher needs (Arm ARM D24.2.40, ESR_ELx):
//! the exception class and ISS fields ([`Esr`]), the exit a trap means ([`decode`] →
//! [`Trap`]), a fault report's words ([`AbortDetail`]) and the syndromes injected into EL1.
//!
//! Pure logic on integers, so the host tests and the fuzz target (`fuzz/`, target `trap`)
//! can reach every value a guest can make the hardware report.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

/// Exception classes Tessera handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExceptionClass {
    /// EC 0x00: unknown reason (e.g. an UNDEFINED instruction routed to EL2).
    Unknown,
    /// EC 0x01: a trapped WFI or WFE.
    WfiWfe,
    /// EC 0x16: HVC from AArch64.
    Hvc64,
    /// EC 0x17: a trapped SMC from AArch64.
    Smc64,
    /// EC 0x18: a trapped MSR, MRS or system instruction.
    SysReg,
    /// EC 0x20: instruction abort from a lower EL.
    InstrAbortLower,
    /// EC 0x21: instruction abort at EL2.
    InstrAbortSame,
    /// EC 0x24: data abort from a lower EL.
    DataAbortLower,
    /// EC 0x25: data abort at EL2.
    DataAbortSame,
    /// EC 0x3c: BRK.
    Brk,
    /// Any other class (its raw EC).
    Other(u8),
}

/// An ESR_EL2 value and its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Esr(pub u64);

impl Esr {
    /// The raw exception class (bits 31:26).
    pub fn ec_raw(self) -> u8 {
        ((self.0 >> 26) & 0x3f) as u8
    }

    /// The exception class.
    pub fn class(self) -> ExceptionClass {
        match self.ec_raw() {
            0x00 => ExceptionClass::Unknown,
            0x01 => ExceptionClass::WfiWfe,
            0x16 => ExceptionClass::Hvc64,
            0x17 => ExceptionClass::Smc64,
            0x18 => ExceptionClass::SysReg,
            0x20 => ExceptionClass::InstrAbortLower,
            0x21 => ExceptionClass::InstrAbortSame,
            0x24 => ExceptionClass::DataAbortLower,
            0x25 => ExceptionClass::DataAbortSame,
            0x3c => ExceptionClass::Brk,
            other => ExceptionClass::Other(other),
        }
    }

    /// Human name of the exception class, for fault reports.
    pub fn class_name(self) -> &'static str {
        match self.ec_raw() {
            0x00 => "unknown reason",
            0x01 => "WFI/WFE",
            0x07 => "FP/SIMD access",
            0x0e => "illegal execution state",
            0x15 => "SVC",
            0x16 => "HVC",
            0x17 => "SMC",
            0x18 => "system register access",
            0x20 => "instruction abort (lower EL)",
            0x21 => "instruction abort (EL2)",
            0x22 => "PC alignment",
            0x24 => "data abort (lower EL)",
            0x25 => "data abort (EL2)",
            0x26 => "SP alignment",
            0x2f => "SError",
            0x3c => "BRK",
            _ => "other",
        }
    }

    /// The instruction-specific syndrome (bits 24:0).
    pub fn iss(self) -> u32 {
        (self.0 & 0x1ff_ffff) as u32
    }

    /// Fault status code of an abort (DFSC/IFSC).
    pub fn fsc(self) -> u8 {
        (self.0 & 0x3f) as u8
    }

    /// An abort caused by a translation fault (no mapping) at any level.
    pub fn is_translation_fault(self) -> bool {
        matches!(self.fsc(), 0x04..=0x07)
    }

    /// An abort that happened during a stage-1 table walk.
    pub fn s1ptw(self) -> bool {
        self.0 & (1 << 7) != 0
    }

    /// Data abort: ISS holds a valid syndrome for the access (ISV).
    pub fn isv(self) -> bool {
        self.0 & (1 << 24) != 0
    }

    /// Data abort: access size in bytes (SAS).
    pub fn access_size(self) -> usize {
        1 << ((self.0 >> 22) & 3)
    }

    /// Data abort: sign-extend the loaded value (SSE).
    pub fn sign_extend(self) -> bool {
        self.0 & (1 << 21) != 0
    }

    /// Data abort: the register transferred (SRT).
    pub fn srt(self) -> usize {
        ((self.0 >> 16) & 0x1f) as usize
    }

    /// Data abort: 64-bit register (SF).
    pub fn sixty_four(self) -> bool {
        self.0 & (1 << 15) != 0
    }

    /// Data abort: a write (WnR).
    pub fn is_write(self) -> bool {
        self.0 & (1 << 6) != 0
    }

    /// HVC/SMC: the 16-bit immediate.
    pub fn imm16(self) -> u16 {
        (self.0 & 0xffff) as u16
    }

    /// For an instruction or data abort (any EL), its fault status and access in words, for
    /// fault reports (`translation fault, level 1, read`); None for other classes.
    pub fn abort_detail(self) -> Option<AbortDetail> {
        matches!(self.ec_raw(), 0x20 | 0x21 | 0x24 | 0x25).then_some(AbortDetail(self))
    }
}

/// What an abort's ISS says (Arm ARM D24.2.40: DFSC/IFSC, WnR, CM, S1PTW, FnV).
pub struct AbortDetail(Esr);

impl core::fmt::Display for AbortDetail {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let esr = self.0;
        let fsc = esr.fsc();
        let level = fsc & 3;
        match fsc {
            0x00..=0x03 => write!(f, "address size fault, level {level}")?,
            0x04..=0x07 => write!(f, "translation fault, level {level}")?,
            0x08..=0x0b => write!(f, "access flag fault, level {level}")?,
            0x0c..=0x0f => write!(f, "permission fault, level {level}")?,
            0x10 => f.write_str("synchronous external abort")?,
            0x11 => f.write_str("tag check fault")?,
            0x14..=0x17 => write!(f, "external abort on a table walk, level {level}")?,
            0x18 => f.write_str("parity/ECC error")?,
            0x1c..=0x1f => write!(f, "parity/ECC error on a table walk, level {level}")?,
            0x21 => f.write_str("alignment fault")?,
            0x30 => f.write_str("TLB conflict abort")?,
            0x31 => f.write_str("unsupported atomic hardware update")?,
            other => write!(f, "fault status {other:#04x}")?,
        }
        let data = matches!(esr.ec_raw(), 0x24 | 0x25);
        if data {
            // CM: a cache maintenance instruction (which also sets WnR).
            f.write_str(if esr.0 & (1 << 8) != 0 {
                ", cache maintenance"
            } else if esr.is_write() {
                ", write"
            } else {
                ", read"
            })?;
        }
        if esr.s1ptw() {
            f.write_str(", on a stage-1 table walk")?;
        }
        // FnV: FAR does not hold the faulting address (data aborts only).
        if data && esr.0 & (1 << 10) != 0 {
            f.write_str(", FAR not valid")?;
        }
        Ok(())
    }
}

/// Builds the ESR of a synchronous external abort to inject into EL1 (data or instruction,
/// taken from EL0 or EL1), with IL set.
pub fn injected_abort_esr(instruction: bool, from_el0: bool) -> u64 {
    let ec: u64 = match (instruction, from_el0) {
        (true, true) => 0x20,
        (true, false) => 0x21,
        (false, true) => 0x24,
        (false, false) => 0x25,
    };
    // FSC 0b010000: synchronous external abort, not on a translation table walk.
    (ec << 26) | (1 << 25) | 0x10
}

/// ESR of an Undefined Instruction exception (EC 0) to inject into EL1.
pub fn injected_undef_esr() -> u64 {
    1 << 25
}

/// `MSR ICC_SGI1R_EL1, Xt` in a system-register trap's ISS (Op0 3, Op1 0, CRn 12, CRm 11,
/// Op2 5, direction write).
const ISS_SGI1R_WRITE: u32 = (3 << 20) | (5 << 17) | (12 << 10) | (11 << 1);
/// The ISS bits that name the register and the direction (Op0, Op2, Op1, CRn, CRm, read).
const ISS_SYSREG_MASK: u32 = (3 << 20) | (7 << 17) | (7 << 14) | (0xf << 10) | (0xf << 1) | 1;

/// What a synchronous exit from a lower EL asks of the hypervisor, decoded from ESR_EL2 alone
/// (the dispatcher then reads FAR/HPFAR and the guest's registers as each case needs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trap {
    /// HVC with immediate `imm` (Tessera serves only `HVC #0`).
    Hvc {
        /// The 16-bit immediate of the instruction.
        imm: u16,
    },
    /// A trapped SMC (the dispatcher steps over it: ELR points at the SMC itself).
    Smc,
    /// A data abort from the guest: MMIO emulation or a stage-2 fault.
    DataAbort {
        /// The full syndrome, for the emulation's ISV/SAS/SRT/WnR fields and reports.
        esr: Esr,
        /// A translation fault not taken on a stage-1 table walk: the only kind an emulated
        /// device can be behind (anything else is a stage-2 fault to report).
        may_be_mmio: bool,
    },
    /// An instruction abort from the guest: always a stage-2 fault.
    InstrAbort,
    /// A trapped WFI (`wfe == false`) or WFE.
    Wfx {
        /// WFE rather than WFI (ISS bit 0).
        wfe: bool,
    },
    /// `MSR ICC_SGI1R_EL1, X<rt>` with the GICv3 interface (SGI generation traps with IMO);
    /// `rt` 31 is XZR.
    Sgi1rWrite {
        /// The source register number (0..=31).
        rt: usize,
    },
    /// Another trapped system-register access or instruction: emulated or UNDEFINED.
    SysReg,
    /// Anything else (unknown reason, BRK, aborts "at EL2" with a lower-EL vector, ...): the
    /// guest gets an UNDEFINED instruction exception.
    Undefined,
}

/// The exit `esr` means, for a synchronous exception taken from a lower EL; `gic_v3`: the
/// board's GIC is version 3 (only then is an `ICC_SGI1R_EL1` write an SGI request).
pub fn decode(esr: Esr, gic_v3: bool) -> Trap {
    match esr.class() {
        ExceptionClass::Hvc64 => Trap::Hvc { imm: esr.imm16() },
        ExceptionClass::Smc64 => Trap::Smc,
        ExceptionClass::DataAbortLower => Trap::DataAbort {
            esr,
            may_be_mmio: !esr.s1ptw() && esr.is_translation_fault(),
        },
        ExceptionClass::InstrAbortLower => Trap::InstrAbort,
        ExceptionClass::WfiWfe => Trap::Wfx {
            wfe: esr.iss() & 1 != 0,
        },
        ExceptionClass::SysReg if gic_v3 && esr.iss() & ISS_SYSREG_MASK == ISS_SGI1R_WRITE => {
            Trap::Sgi1rWrite {
                rt: ((esr.iss() >> 5) & 0x1f) as usize,
            }
        }
        ExceptionClass::SysReg => Trap::SysReg,
        _ => Trap::Undefined,
    }
}

/// Invariants of [`decode`] for any ESR value; panics on a violation. Shared by the property
/// test and the fuzz target (`fuzz/`, target `trap`).
#[cfg(any(test, feature = "check"))]
pub fn check(raw: u64, gic_v3: bool) {
    let e = Esr(raw);
    let t = decode(e, gic_v3);
    let ec = e.ec_raw();
    assert!(ec < 64);
    assert!(e.iss() < 1 << 25);
    assert!(matches!(e.access_size(), 1 | 2 | 4 | 8));
    assert!(e.srt() < 32);
    match t {
        Trap::Hvc { imm } => assert!(ec == 0x16 && u64::from(imm) == raw & 0xffff),
        Trap::Smc => assert_eq!(ec, 0x17),
        Trap::DataAbort { esr, may_be_mmio } => {
            assert!(ec == 0x24 && esr == e);
            assert_eq!(may_be_mmio, !e.s1ptw() && (4..=7).contains(&e.fsc()));
        }
        Trap::InstrAbort => assert_eq!(ec, 0x20),
        Trap::Wfx { wfe } => assert!(ec == 0x01 && wfe == (raw & 1 != 0)),
        Trap::Sgi1rWrite { rt } => assert!(gic_v3 && ec == 0x18 && rt < 32 && raw & 1 == 0),
        Trap::SysReg => assert_eq!(ec, 0x18),
        Trap::Undefined => assert!(!matches!(ec, 0x01 | 0x16 | 0x17 | 0x18 | 0x20 | 0x24)),
    }
    assert_eq!(
        e.abort_detail().is_some(),
        matches!(ec, 0x20 | 0x21 | 0x24 | 0x25)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::format;

    fn esr(ec: u64, iss: u64) -> Esr {
        Esr((ec << 26) | (1 << 25) | iss)
    }

    #[test]
    fn classes() {
        assert_eq!(decode(esr(0x16, 0), true), Trap::Hvc { imm: 0 });
        assert_eq!(decode(esr(0x16, 0x1234), true), Trap::Hvc { imm: 0x1234 });
        assert_eq!(decode(esr(0x17, 0), false), Trap::Smc);
        assert_eq!(decode(esr(0x20, 0x04), true), Trap::InstrAbort);
        assert_eq!(decode(esr(0x01, 0), true), Trap::Wfx { wfe: false });
        assert_eq!(decode(esr(0x01, 1), true), Trap::Wfx { wfe: true });
        assert_eq!(decode(esr(0x00, 0), true), Trap::Undefined);
        assert_eq!(decode(esr(0x21, 0x04), true), Trap::Undefined);
        assert_eq!(decode(esr(0x25, 0x04), true), Trap::Undefined);
        assert_eq!(decode(esr(0x3c, 0), true), Trap::Undefined);
    }

    #[test]
    fn data_aborts() {
        // Translation fault level 3, write, ISV, 4 bytes, X5.
        let e = esr(0x24, (1 << 24) | (2 << 22) | (5 << 16) | (1 << 6) | 0x07);
        assert_eq!(
            decode(e, true),
            Trap::DataAbort {
                esr: e,
                may_be_mmio: true
            }
        );
        assert_eq!((e.access_size(), e.srt(), e.is_write()), (4, 5, true));
        // On a stage-1 walk, or a permission fault: never MMIO.
        let walk = esr(0x24, (1 << 7) | 0x07);
        assert!(matches!(
            decode(walk, true),
            Trap::DataAbort {
                may_be_mmio: false,
                ..
            }
        ));
        let perm = esr(0x24, 0x0f);
        assert!(matches!(
            decode(perm, true),
            Trap::DataAbort {
                may_be_mmio: false,
                ..
            }
        ));
    }

    #[test]
    fn sgi1r_only_as_a_gicv3_write() {
        let write_x7 = esr(0x18, ISS_SGI1R_WRITE as u64 | (7 << 5));
        assert_eq!(decode(write_x7, true), Trap::Sgi1rWrite { rt: 7 });
        assert_eq!(decode(write_x7, false), Trap::SysReg);
        // The read direction, and ICC_ASGI1R_EL1 (Op2 6): not an SGI request.
        let read = esr(0x18, ISS_SGI1R_WRITE as u64 | 1);
        assert_eq!(decode(read, true), Trap::SysReg);
        let asgi = esr(0x18, ((ISS_SGI1R_WRITE & !(7 << 17)) | (6 << 17)) as u64);
        assert_eq!(decode(asgi, true), Trap::SysReg);
    }

    #[test]
    fn injected_syndromes() {
        assert_eq!(Esr(injected_undef_esr()).class(), ExceptionClass::Unknown);
        let e = Esr(injected_abort_esr(false, false));
        assert_eq!((e.class(), e.fsc()), (ExceptionClass::DataAbortSame, 0x10));
        let e = Esr(injected_abort_esr(true, true));
        assert_eq!(e.class(), ExceptionClass::InstrAbortLower);
    }

    proptest! {
        /// Every ESR decodes to one trap whose fields are in range, and its report renders.
        #[test]
        fn any_esr(raw in any::<u64>(), v3 in any::<bool>()) {
            check(raw, v3);
            let e = Esr(raw);
            if let Some(detail) = e.abort_detail() {
                let text = format!("{}", detail);
                prop_assert!(!text.is_empty());
            }
        }
    }
}
