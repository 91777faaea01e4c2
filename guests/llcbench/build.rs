//! Links the guest with the shared runtime linker script (guests/rt/link.ld) at its load address.

include!("../rt/link_guest.rs");

/// Where the image is linked and must be loaded: RAM base (0x4000_0000) + text_offset (0x8_0000).
const LOAD_BASE: u64 = 0x4008_0000;

fn main() {
    link_guest(LOAD_BASE);
}
