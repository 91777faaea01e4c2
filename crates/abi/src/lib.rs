//! The Tessera hypercall ABI, shared by the hypervisor and its guests.
//!
//! Calls follow the SMC Calling Convention (SMCCC 1.1) over `HVC #0`: the function identifier
//! goes in `x0`, arguments in `x1..=x6`; the status comes back in `x0` (0 = success, a negative
//! [`Error`] otherwise) and results in `x1..=x3`. Tessera's calls live in the SMCCC range owned
//! by "vendor specific hypervisor service" (owner 6), as fast 64-bit calls: `0xC600_xxxx`.
//!
//! PSCI is *not* part of this ABI: guests reach PSCI through `SMC` (the conduit their device
//! tree names), exactly as on bare hardware.
#![no_std]
#![forbid(unsafe_code)]

pub mod smccc;
pub mod status;

/// Base of Tessera's function identifiers: SMCCC fast call, SMC64, owner 6.
pub const TESSERA_BASE: u32 = 0xC600_0000;

/// A Tessera hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Call {
    /// `x0 ← 0`, `x1 ← (major << 16) | minor` of the ABI.
    Version = TESSERA_BASE,
    /// Does nothing and returns 0: the null hypercall measured by `cargo xtask bench`.
    Null = TESSERA_BASE + 1,
    /// Write bytes to the VM's console. `x1` = guest-physical address, `x2` = length
    /// (at most [`CONSOLE_WRITE_MAX`]). Returns the number of bytes written in `x1`.
    ConsoleWrite = TESSERA_BASE + 2,
    /// `x1 ← VM id`, `x2 ← vCPU index within the VM`, `x3 ← number of vCPUs of the VM`.
    Identity = TESSERA_BASE + 3,
    /// Power this VM off with an exit code in `x1` (0 = success). Does not return.
    Shutdown = TESSERA_BASE + 4,
    /// `x1 ← how many times this VM was reset (PSCI SYSTEM_RESET) since the machine booted`:
    /// the one thing a VM keeps across its own reset, like a reset-reason register.
    ResetCount = TESSERA_BASE + 5,
    /// Ring the doorbell of class `x2` of channel `x1` (its index in the config, which the
    /// guest's device tree gives as `tessera,channel`): the hypervisor makes the class's
    /// virtual SPI pending in the receiving VM. Only the channel's sender may call it
    /// ([`Error::Denied`] otherwise); an unknown channel or class is
    /// [`Error::InvalidParameters`]. `x1 ← 1` if the interrupt became pending, `0` if it was
    /// pending already (the call then did nothing).
    Doorbell = TESSERA_BASE + 6,
}

impl Call {
    /// Decodes a function identifier; `None` for anything Tessera does not implement.
    pub fn from_id(id: u64) -> Option<Self> {
        let id = u32::try_from(id).ok()?;
        Some(match id {
            x if x == Call::Version as u32 => Call::Version,
            x if x == Call::Null as u32 => Call::Null,
            x if x == Call::ConsoleWrite as u32 => Call::ConsoleWrite,
            x if x == Call::Identity as u32 => Call::Identity,
            x if x == Call::Shutdown as u32 => Call::Shutdown,
            x if x == Call::ResetCount as u32 => Call::ResetCount,
            x if x == Call::Doorbell as u32 => Call::Doorbell,
            _ => return None,
        })
    }
}

/// ABI version reported by [`Call::Version`].
pub const VERSION_MAJOR: u16 = 0;
/// ABI version reported by [`Call::Version`].
pub const VERSION_MINOR: u16 = 2;

/// Largest buffer one [`Call::ConsoleWrite`] accepts.
pub const CONSOLE_WRITE_MAX: u64 = 4096;

/// Error codes returned in `x0` (SMCCC values where SMCCC defines one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i64)]
pub enum Error {
    /// The function identifier is not implemented (SMCCC `NOT_SUPPORTED`).
    NotSupported = -1,
    /// An argument is out of range or names memory the VM does not own.
    InvalidParameters = -2,
    /// The caller may not do this.
    Denied = -3,
}

impl Error {
    /// The register value of this error.
    pub const fn as_reg(self) -> u64 {
        self as i64 as u64
    }

    /// Decodes a status register; `Ok(())` for 0, `Err(None)` for an unknown negative value.
    pub fn from_reg(x0: u64) -> Result<(), Option<Self>> {
        match x0 as i64 {
            0 => Ok(()),
            -1 => Err(Some(Error::NotSupported)),
            -2 => Err(Some(Error::InvalidParameters)),
            -3 => Err(Some(Error::Denied)),
            _ => Err(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for c in [
            Call::Version,
            Call::Null,
            Call::ConsoleWrite,
            Call::Identity,
            Call::Shutdown,
            Call::ResetCount,
            Call::Doorbell,
        ] {
            assert_eq!(Call::from_id(c as u32 as u64), Some(c));
        }
        assert_eq!(Call::from_id(0xC600_00FF), None);
        assert_eq!(Call::from_id(u64::MAX), None);
        assert_eq!(Call::from_id(0x8400_0000), None);
    }

    #[test]
    fn errors_round_trip() {
        for e in [Error::NotSupported, Error::InvalidParameters, Error::Denied] {
            assert_eq!(Error::from_reg(e.as_reg()), Err(Some(e)));
        }
        assert_eq!(Error::from_reg(0), Ok(()));
        assert_eq!(Error::from_reg(-77i64 as u64), Err(None));
    }
}
