//! The virtual GIC a Tessera VM sees, as pure logic: the distributor (GICv2 and GICv3) and
//! the GICv3 redistributors as reached through trapped MMIO, `ICC_SGI1R_EL1` / `GICD_SGIR`
//! SGI generation, hypervisor-side injection, and which interrupt goes into a list register
//! next, with the LR encodings of both versions. The guest's CPU interface is the hardware
//! virtual interface (`ICV_*` / GICV) and is not modelled here.
//!
//! References: GICv3/v4 architecture specification IHI 0069, GICv2 IHI 0048B.
//!
//! ```
//! use tessera_vgic_model::*;
//! // In the image: `static VGIC: Mutex<Vgic<8, 256>> = Mutex::new(Vgic::empty());`
//! let mut vgic: Vgic<4, 128> = Vgic::empty();
//! let mpidr = [0x8000_0000, 0x8000_0001];
//! let spis = [33, 40];
//! let cfg = VgicConfig { version: Version::V3, vcpus: 2, owned_spis: &spis, vcpu_mpidr: &mpidr };
//! vgic.init(&cfg).unwrap();
//! let mut fx = Effects::new();
//! vgic.gicd_write(0, 0x0000, 4, 0b11, &mut fx); // GICD_CTLR: enable both groups
//! vgic.gicd_write(0, 0x0084, 4, 1 << 1, &mut fx); // IGROUPR1: INTID 33 → Group 1
//! vgic.gicd_write(0, 0x0104, 4, 1 << 1, &mut fx); // ISENABLER1: enable INTID 33
//! assert_eq!(fx.phys_enable.as_slice(), &[33]);
//! vgic.gicd_write(0, 0x6000 + 8 * 33, 8, 1, &mut fx); // IROUTER33 → Aff0 = 1 (vCPU 1)
//! assert_eq!(vgic.inject(0, 33, None), Some(1));
//! let (entry, state) = vgic.next_for_lr(1).unwrap();
//! assert_eq!((entry.intid, state), (33, LrState::Pending));
//! let lr = lr_v3_encode(&entry, state); // → ICH_LR<n>_EL2
//! // ... the guest takes it; at the next exit the LR reads back as invalid:
//! let (entry, state) = lr_v3_decode(lr & !(3 << 62));
//! vgic.lr_returned(1, entry, state);
//! assert!(!vgic.has_pending(1));
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod access;
mod config;
mod effects;
mod fields;
mod gicd;
mod gicr;
mod irq;
mod lr;
mod vgic;

pub use config::{ConfigError, RouteError, Version, VgicConfig};
pub use effects::{Effects, MAX_PHYS_CHANGES};
pub use gicr::GICR_STRIDE;
pub use lr::{lr_v2_decode, lr_v2_encode, lr_v3_decode, lr_v3_encode, LrEntry, LrState};
pub use vgic::Vgic;
