//! PSCI client (Arm DEN 0022), over the conduit the device tree names.

use core::fmt;

use crate::smccc::{call, Conduit};

use tessera_abi::smccc::psci;

/// `PSCI_VERSION`.
pub const VERSION: u32 = psci::VERSION;
/// `CPU_SUSPEND` (SMC64).
pub const CPU_SUSPEND64: u32 = psci::CPU_SUSPEND;
/// `CPU_OFF`.
pub const CPU_OFF: u32 = psci::CPU_OFF;
/// `CPU_ON` (SMC64).
pub const CPU_ON64: u32 = psci::CPU_ON;
/// `AFFINITY_INFO` (SMC64).
pub const AFFINITY_INFO64: u32 = psci::AFFINITY_INFO;
/// `SYSTEM_OFF`.
pub const SYSTEM_OFF: u32 = psci::SYSTEM_OFF;
/// `SYSTEM_RESET`.
pub const SYSTEM_RESET: u32 = psci::SYSTEM_RESET;
/// `PSCI_FEATURES`.
pub const FEATURES: u32 = psci::FEATURES;

/// PSCI error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciError {
    /// -1
    NotSupported,
    /// -2
    InvalidParameters,
    /// -3
    Denied,
    /// -4
    AlreadyOn,
    /// -5
    OnPending,
    /// -6
    InternalFailure,
    /// -7
    NotPresent,
    /// -8
    Disabled,
    /// -9
    InvalidAddress,
    /// Any other value.
    Unknown(i64),
}

impl PsciError {
    /// Decodes a status; `Ok(value)` for values ≥ 0.
    pub fn check(x0: u64) -> Result<u64, PsciError> {
        Err(match x0 as i64 {
            v if v >= 0 => return Ok(x0),
            -1 => PsciError::NotSupported,
            -2 => PsciError::InvalidParameters,
            -3 => PsciError::Denied,
            -4 => PsciError::AlreadyOn,
            -5 => PsciError::OnPending,
            -6 => PsciError::InternalFailure,
            -7 => PsciError::NotPresent,
            -8 => PsciError::Disabled,
            -9 => PsciError::InvalidAddress,
            v => PsciError::Unknown(v),
        })
    }
}

impl fmt::Display for PsciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A CPU's state as `AFFINITY_INFO` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AffinityState {
    /// 0
    On,
    /// 1
    Off,
    /// 2
    OnPending,
}

fn call0(conduit: Conduit, id: u32, a1: u64, a2: u64, a3: u64) -> u64 {
    call(conduit, u64::from(id), [a1, a2, a3, 0, 0, 0])[0]
}

/// `PSCI_VERSION`: `(major, minor)`.
pub fn version(conduit: Conduit) -> (u16, u16) {
    let v = call0(conduit, VERSION, 0, 0, 0) as u32;
    ((v >> 16) as u16, v as u16)
}

/// `CPU_ON`: start the CPU with MPIDR affinity `target` at physical address `entry`, with
/// `context_id` in its `x0`.
pub fn cpu_on(conduit: Conduit, target: u64, entry: u64, context_id: u64) -> Result<(), PsciError> {
    PsciError::check(call0(conduit, CPU_ON64, target, entry, context_id)).map(drop)
}

/// `CPU_OFF`: power this CPU off. Returns only if PSCI refused.
pub fn cpu_off(conduit: Conduit) -> PsciError {
    match PsciError::check(call0(conduit, CPU_OFF, 0, 0, 0)) {
        Ok(_) => PsciError::InternalFailure,
        Err(e) => e,
    }
}

/// `AFFINITY_INFO` at level 0 for the CPU with MPIDR affinity `target`.
pub fn affinity_info(conduit: Conduit, target: u64) -> Result<AffinityState, PsciError> {
    match PsciError::check(call0(conduit, AFFINITY_INFO64, target, 0, 0))? {
        0 => Ok(AffinityState::On),
        1 => Ok(AffinityState::Off),
        2 => Ok(AffinityState::OnPending),
        v => Err(PsciError::Unknown(v as i64)),
    }
}

/// `SYSTEM_OFF`. Returns only if PSCI refused.
pub fn system_off(conduit: Conduit) -> PsciError {
    match PsciError::check(call0(conduit, SYSTEM_OFF, 0, 0, 0)) {
        Ok(_) => PsciError::InternalFailure,
        Err(e) => e,
    }
}

/// `SYSTEM_RESET`. Returns only if PSCI refused.
pub fn system_reset(conduit: Conduit) -> PsciError {
    match PsciError::check(call0(conduit, SYSTEM_RESET, 0, 0, 0)) {
        Ok(_) => PsciError::InternalFailure,
        Err(e) => e,
    }
}
