//! Arm SMCCC (DEN 0028) and PSCI (DEN 0022) function identifiers and return codes: the one
//! place the hypervisor (as the guests' PSCI provider and as the firmware's client) and the
//! guests (as PSCI clients) take them from.
//!
//! A function id's bit 30 selects the SMC64 calling convention; PSCI functions with 64-bit
//! arguments exist in both forms, and a provider accepts both.

/// Bit 30 of a function id: the SMC64/HVC64 calling convention.
pub const SMC64: u32 = 1 << 30;

/// PSCI function identifiers (the SMC64 form where one exists; `| SMC64` is already in them).
pub mod psci {
    /// `PSCI_VERSION`.
    pub const VERSION: u32 = 0x8400_0000;
    /// `CPU_SUSPEND` (SMC64).
    pub const CPU_SUSPEND: u32 = 0xc400_0001;
    /// `CPU_OFF`.
    pub const CPU_OFF: u32 = 0x8400_0002;
    /// `CPU_ON` (SMC64).
    pub const CPU_ON: u32 = 0xc400_0003;
    /// `AFFINITY_INFO` (SMC64).
    pub const AFFINITY_INFO: u32 = 0xc400_0004;
    /// `MIGRATE_INFO_TYPE`.
    pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
    /// `SYSTEM_OFF`.
    pub const SYSTEM_OFF: u32 = 0x8400_0008;
    /// `SYSTEM_RESET`.
    pub const SYSTEM_RESET: u32 = 0x8400_0009;
    /// `PSCI_FEATURES`.
    pub const FEATURES: u32 = 0x8400_000a;
    /// The SMC32 range of PSCI function ids.
    pub const RANGE32: core::ops::RangeInclusive<u32> = 0x8400_0000..=0x8400_001f;
    /// The SMC64 range of PSCI function ids.
    pub const RANGE64: core::ops::RangeInclusive<u32> = 0xc400_0000..=0xc400_001f;

    /// The SMC32 form of a function that also has an SMC64 form.
    pub const fn smc32(fid: u32) -> u32 {
        fid & !super::SMC64
    }

    /// PSCI return codes.
    pub mod ret {
        pub const SUCCESS: i64 = 0;
        pub const NOT_SUPPORTED: i64 = -1;
        pub const INVALID_PARAMETERS: i64 = -2;
        pub const DENIED: i64 = -3;
        pub const ALREADY_ON: i64 = -4;
        pub const ON_PENDING: i64 = -5;
        pub const INTERNAL_FAILURE: i64 = -6;
        pub const NOT_PRESENT: i64 = -7;
        pub const DISABLED: i64 = -8;
        pub const INVALID_ADDRESS: i64 = -9;
    }
}

/// SMCCC architecture-service function identifiers.
pub mod arch {
    /// `SMCCC_VERSION`.
    pub const VERSION: u32 = 0x8000_0000;
    /// `SMCCC_ARCH_FEATURES`: is arch-service function x1 implemented?
    pub const FEATURES: u32 = 0x8000_0001;
    /// `SMCCC_ARCH_WORKAROUND_1`: branch predictor invalidation (Spectre v2).
    pub const WORKAROUND_1: u32 = 0x8000_8000;
    /// `SMCCC_ARCH_WORKAROUND_2`: speculative store bypass safe mode, x1 = 1 on / 0 off.
    pub const WORKAROUND_2: u32 = 0x8000_7fff;
    /// `SMCCC_ARCH_WORKAROUND_3`: branch history invalidation (Spectre-BHB).
    pub const WORKAROUND_3: u32 = 0x8000_3fff;
    /// The range of arch-service function ids.
    pub const RANGE: core::ops::RangeInclusive<u32> = 0x8000_0000..=0x8000_ffff;
    /// SMCCC's "not required" return (WORKAROUND_2).
    pub const NOT_REQUIRED: i64 = -2;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smc32_forms() {
        assert_eq!(psci::smc32(psci::CPU_ON), 0x8400_0003);
        assert_eq!(psci::smc32(psci::AFFINITY_INFO), 0x8400_0004);
        assert_eq!(psci::smc32(psci::VERSION), psci::VERSION);
        assert!(psci::RANGE64.contains(&psci::CPU_SUSPEND));
        assert!(psci::RANGE32.contains(&psci::smc32(psci::CPU_SUSPEND)));
        assert!(arch::RANGE.contains(&arch::WORKAROUND_3));
    }
}
