//! Client of the Tessera hypercall ABI (`HVC #0`, see the `tessera-abi` crate).
//!
//! Only meaningful under Tessera ([`crate::BootInfo::tessera`]); elsewhere an `HVC` goes to
//! whatever is at EL2 (QEMU's PSCI emulation answers `NOT_SUPPORTED`).

use tessera_abi::{Call, Error};

use crate::smccc::hvc;

/// The VM's view of itself ([`Call::Identity`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The VM's id.
    pub vm: u64,
    /// The calling vCPU's index within the VM.
    pub vcpu: u64,
    /// Number of vCPUs of the VM.
    pub vcpus: u64,
}

/// Makes a Tessera call with up to three arguments; `Err` for a negative status
/// (`Err(None)`: a status the ABI does not define).
pub fn call(call: Call, a1: u64, a2: u64, a3: u64) -> Result<[u64; 4], Option<Error>> {
    let r = hvc(u64::from(call as u32), [a1, a2, a3, 0, 0, 0]);
    Error::from_reg(r[0]).map(|()| r)
}

/// [`Call::Version`]: `(major, minor)`.
pub fn version() -> Result<(u16, u16), Option<Error>> {
    let r = call(Call::Version, 0, 0, 0)?;
    Ok(((r[1] >> 16) as u16, r[1] as u16))
}

/// [`Call::Identity`].
pub fn identity() -> Result<Identity, Option<Error>> {
    let r = call(Call::Identity, 0, 0, 0)?;
    Ok(Identity {
        vm: r[1],
        vcpu: r[2],
        vcpus: r[3],
    })
}

/// [`Call::ResetCount`]: how many times this VM was reset since the machine booted.
pub fn reset_count() -> Result<u64, Option<Error>> {
    call(Call::ResetCount, 0, 0, 0).map(|r| r[1])
}

/// [`Call::Null`].
pub fn null() -> Result<(), Option<Error>> {
    call(Call::Null, 0, 0, 0).map(drop)
}

/// [`Call::ConsoleWrite`] of `bytes` (at most [`tessera_abi::CONSOLE_WRITE_MAX`]): the number
/// of bytes written. The buffer's address is its guest-physical address (identity map).
pub fn console_write(bytes: &[u8]) -> Result<usize, Option<Error>> {
    console_write_raw(bytes.as_ptr() as u64, bytes.len() as u64)
}

/// [`Call::ConsoleWrite`] with any address and length (for testing the hypervisor's checks).
pub fn console_write_raw(ipa: u64, len: u64) -> Result<usize, Option<Error>> {
    call(Call::ConsoleWrite, ipa, len, 0).map(|r| r[1] as usize)
}

/// [`Call::Shutdown`] with `code`. Returns only if the hypervisor refused.
pub fn shutdown(code: u32) -> Option<Error> {
    call(Call::Shutdown, u64::from(code), 0, 0).err().flatten()
}

/// [`Call::Doorbell`]: ring the doorbell of `class` of channel `channel` (this VM must be its
/// sender). `Ok(true)`: the receiver's interrupt became pending; `Ok(false)`: it already was.
pub fn doorbell(channel: u32, class: u8) -> Result<bool, Option<Error>> {
    call(Call::Doorbell, u64::from(channel), u64::from(class), 0).map(|r| r[1] != 0)
}
