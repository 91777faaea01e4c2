//! The payload bundle (crates/bundle): guest images and DTBs, loaded beside the EL2 image
//! (QEMU: `-device loader`) at the RAM region the build chose (`BUNDLE.region`, the top of
//! RAM). Checked once at boot, before any VM is built: header, that it is this build's bundle
//! (identity), every payload's SHA-256. VMs' images and DTBs are copied from it at every VM
//! start and reset; no VM maps it.

use spin::Once;
use tessera_bundle::Bundle;
use tessera_stage2::PhysAddr;

use crate::config::{PayloadRef, BUNDLE};
use crate::mm;

static CHECKED: Once<Bundle<'static>> = Once::new();

/// The bundle's bytes: the whole reserved region.
fn region() -> &'static [u8] {
    let r = BUNDLE.region;
    // SAFETY: `BUNDLE.region` is RAM the build reserved for the bundle (validated to lie inside
    // the board's RAM, outside the hypervisor and every VM's explicit range); the boot core
    // keeps it out of the frame allocator before anything is allocated, no VM maps it, and
    // nothing in the hypervisor writes it, so it is immutable for the rest of the run. The EL2
    // identity map covers all RAM.
    unsafe {
        core::slice::from_raw_parts(
            mm::phys_to_ptr(PhysAddr(r.base)) as *const u8,
            r.size as usize,
        )
    }
}

/// Checks the bundle; on success every [`bytes`] call is valid.
pub fn init() -> Result<&'static Bundle<'static>, tessera_bundle::Error> {
    let b = Bundle::open(region(), BUNDLE.region.base, &BUNDLE.identity)?;
    Ok(CHECKED.call_once(|| b))
}

/// The bytes of payload `p` (empty before [`init`] succeeded, or for a reference the build
/// did not make: neither happens once VMs exist).
pub fn bytes(p: PayloadRef) -> &'static [u8] {
    CHECKED
        .get()
        .and_then(|b| b.payload(usize::from(p.entry)))
        .unwrap_or(&[])
}
