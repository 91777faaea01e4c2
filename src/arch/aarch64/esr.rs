//! Decoding of ESR_EL2 into what the trap dispatcher needs (Arm ARM D24.2.40, ESR_ELx).

/// Exception classes Tessera handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExceptionClass {
    Unknown,
    WfiWfe,
    Hvc64,
    Smc64,
    SysReg,
    InstrAbortLower,
    InstrAbortSame,
    DataAbortLower,
    DataAbortSame,
    Brk,
    Other(u8),
}

/// The fields of an ESR value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Esr(pub u64);

impl Esr {
    pub fn ec_raw(self) -> u8 {
        ((self.0 >> 26) & 0x3f) as u8
    }

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
