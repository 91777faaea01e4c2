//! A VM's memory: frames for its RAM regions, its stage-2 tables, and loading its image,
//! initramfs and device tree (all through [`GuestMemory`]).
//!
//! - **Uncolored VM** (`colors == 0`): each RAM region is one physically contiguous run
//!   (2 MiB aligned when large enough, or the config's explicit `phys`), mapped with the
//!   largest blocks the alignment allows; its tables come from anywhere.
//! - **Colored VM**: each RAM region is single 4 KiB frames of the VM's colors
//!   (`mm::alloc_colored_zeroed`, one per page, lowest free frame of each color in turn),
//!   mapped at contiguous IPAs with 4 KiB pages only (`tessera_colors::map_frames`; frames
//!   that happen to be physically consecutive go in one `map_pages` call); every stage-2
//!   table page, the root included, is a frame of the VM's colors too (`mm::Tables::colored`).
//!   The root must be a single page: [`stage2_config`] picks an IPA size whose start level
//!   needs no concatenated root when the config colors anything (a 2-page root would need two
//!   consecutive colors `2k, 2k + 1` of the VM; it is still tried if the configuration in use
//!   asks for one).

use core::sync::atomic::Ordering;

use spin::Once;
use tessera_colors::{map_frames, MapFramesError};
use tessera_stage2::{GuestPhysAddr, MemAttrs, PageTable, PhysAddr, Stage2, Stage2Config};

use super::guestmem::GuestMemory;
use super::{desc, get, VmId, MAX_MEM_REGIONS};
use crate::config::{CHANNELS, VMS};
use crate::llc::Colors;
use crate::mm;

/// Why a VM could not be built.
#[derive(Clone, Copy, Debug)]
pub enum BuildError {
    TooManyRegions,
    OutOfMemory {
        size: u64,
    },
    /// Not enough free frames of the VM's colors (RAM and stage-2 tables).
    OutOfColoredMemory {
        colors: u64,
        /// RAM pages the VM needs in all.
        pages: u64,
        /// Free frames of those colors when the VM's build started.
        free: u64,
    },
    /// The stage-2 root is 2+ concatenated tables, and no aligned run of frames with
    /// consecutive colors of the VM is free.
    ColoredRoot {
        colors: u64,
        tables: usize,
    },
    /// A colored VM's region with an explicit `phys` (the config rejects it).
    ColoredPlacement {
        ipa: u64,
    },
    PlacementTaken {
        pa: u64,
        size: u64,
    },
    Map {
        ipa: u64,
    },
    ImageOutsideRam,
    PayloadMissing,
    Channel(crate::channel::ChannelError),
    /// The coloring self-check found a page outside the VM's colors (printed above).
    Coloring,
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            BuildError::TooManyRegions => write!(f, "more than {} RAM regions", MAX_MEM_REGIONS),
            BuildError::OutOfMemory { size } => {
                write!(f, "out of physical memory allocating {:#x} bytes", size)
            }
            BuildError::OutOfColoredMemory {
                colors,
                pages,
                free,
            } => write!(
                f,
                "out of memory of colors {}: {} RAM pages plus stage-2 tables needed, {} free pages of those colors",
                Colors(colors),
                pages,
                free
            ),
            BuildError::ColoredRoot { colors, tables } => write!(
                f,
                "the stage-2 root is {} concatenated tables, and no aligned run of that many free pages of consecutive colors in {} exists",
                tables,
                Colors(colors)
            ),
            BuildError::ColoredPlacement { ipa } => write!(
                f,
                "RAM at IPA {:#x}: a colored VM cannot have an explicit physical placement",
                ipa
            ),
            BuildError::PlacementTaken { pa, size } => write!(
                f,
                "explicit placement {:#x}+{:#x} is not free RAM (hypervisor image, DTB or another VM)",
                pa, size
            ),
            BuildError::Map { ipa } => write!(f, "stage-2 mapping failed at IPA {:#x}", ipa),
            BuildError::ImageOutsideRam => {
                write!(f, "image, initramfs or DTB outside the VM's RAM")
            }
            BuildError::PayloadMissing => {
                write!(f, "the payload bundle lacks this VM's image, initramfs or DTB")
            }
            BuildError::Channel(e) => write!(f, "{}", e),
            BuildError::Coloring => write!(f, "stage-2 coloring self-check failed"),
        }
    }
}

/// The stage-2 configuration every VM's tables are built with (recorded by the first
/// [`build`]).
static STAGE2: Once<Stage2Config> = Once::new();

/// The stage-2 configuration in use (after the first VM was built).
pub fn stage2_config_in_use() -> Option<Stage2Config> {
    STAGE2.get().copied()
}

/// The stage-2 configuration (hence `VTCR_EL2`) for a CPU with `pa_bits` of physical address.
///
/// The largest IPA space the CPU allows, except when the config colors a VM or a channel and
/// that space needs a concatenated root (40..=43 IPA bits, e.g. cortex-a53's 40-bit PA: a root
/// of 2+ tables aligned to its size, which in colored frames needs consecutive colors): then 39
/// bits (start level 1, a single root page), provided every IPA the config uses fits below
/// 2^39 (512 GiB).
pub fn stage2_config(pa_bits: u32) -> Stage2Config {
    let full = Stage2Config::new(pa_bits);
    let colored = VMS.iter().any(|v| v.colors != 0) || CHANNELS.iter().any(|c| c.colors != 0);
    if !colored || full.root_tables() == 1 {
        return full;
    }
    let single = Stage2Config::with_ipa_bits(pa_bits, 39);
    if highest_ipa() <= 1 << single.ipa_bits() {
        single
    } else {
        full
    }
}

/// One past the highest IPA any VM's config maps (RAM, devices, vUART, GIC, channels).
fn highest_ipa() -> u64 {
    let vms = VMS.iter().flat_map(|v| {
        let mem = v.mem.iter().map(|m| m.ipa.saturating_add(m.size));
        let dev = v.devices.iter().map(|d| d.ipa.saturating_add(d.size));
        let gic = [
            v.vgic.gicd.saturating_add(0x1_0000),
            v.vgic.gicr.saturating_add(0x2_0000 * v.vcpus.len() as u64),
            v.vgic.gicc.saturating_add(0x2000),
            v.vuart_ipa.saturating_add(0x1000),
        ];
        mem.chain(dev).chain(gic)
    });
    let channels = CHANNELS.iter().flat_map(|c| {
        [
            c.ipa_from.saturating_add(c.size),
            c.ipa_to.saturating_add(c.size),
        ]
    });
    vms.chain(channels).max().unwrap_or(0)
}

/// Allocates VM `vm`'s memory, builds its stage-2 tables and loads its image and DTB; with
/// `HYPERVISOR.verify_coloring`, then checks its coloring (`colorcheck`).
pub fn build(vm: VmId, config: &Stage2Config) -> Result<(), BuildError> {
    let d = desc(vm);
    let r = get(vm);
    if d.mem.len() > MAX_MEM_REGIONS {
        return Err(BuildError::TooManyRegions);
    }
    let config = *STAGE2.call_once(|| *config);
    let colors = d.colors;
    let pages: u64 = d.mem.iter().map(|m| m.size / 4096).sum();
    let free = if colors != 0 {
        mm::free_frames_colored(colors) as u64
    } else {
        0
    };
    let out_of_colored = BuildError::OutOfColoredMemory {
        colors,
        pages,
        free,
    };
    let mut tables = mm::Tables::colored(colors);
    let mut s2 = PageTable::<Stage2>::new(&mut tables, &config).map_err(|_| {
        if colors == 0 {
            BuildError::OutOfMemory {
                size: config.root_tables() as u64 * 4096,
            }
        } else if config.root_tables() > 1 {
            BuildError::ColoredRoot {
                colors,
                tables: config.root_tables(),
            }
        } else {
            out_of_colored
        }
    })?;
    // From here on the tree can be walked (channels' second ends, GuestMemory).
    r.s2_root.store(s2.root().0, Ordering::Release);
    for m in d.mem {
        if colors != 0 {
            if m.phys.is_some() {
                return Err(BuildError::ColoredPlacement { ipa: m.ipa });
            }
            map_frames(
                &mut s2,
                &mut tables,
                GuestPhysAddr(m.ipa),
                m.size / 4096,
                MemAttrs::RAM_RWX,
                |_| mm::alloc_colored_zeroed(colors),
            )
            .map_err(|e| match e {
                MapFramesError::OutOfFrames { .. } => out_of_colored,
                MapFramesError::Map(tessera_stage2::MapError::OutOfMemory) => out_of_colored,
                MapFramesError::Map(_) => BuildError::Map { ipa: m.ipa },
            })?;
            continue;
        }
        let pa = match m.phys {
            Some(pa) => mm::claim_zeroed(PhysAddr(pa), m.size)
                .ok_or(BuildError::PlacementTaken { pa, size: m.size })?,
            None => {
                // 2 MiB alignment lets the stage-2 use block mappings.
                let align = if m.size >= (2 << 20) { 2 << 20 } else { 4096 };
                mm::alloc_zeroed(m.size, align).ok_or(BuildError::OutOfMemory { size: m.size })?
            }
        };
        s2.map(
            &mut tables,
            GuestPhysAddr(m.ipa),
            pa,
            m.size,
            MemAttrs::RAM_RWX,
        )
        .map_err(|_| BuildError::Map { ipa: m.ipa })?;
    }
    for dev in d.devices {
        s2.map(
            &mut tables,
            GuestPhysAddr(dev.ipa),
            PhysAddr(dev.pa),
            dev.size,
            MemAttrs::DEVICE_RW,
        )
        .map_err(|_| BuildError::Map { ipa: dev.ipa })?;
    }
    crate::channel::map_into(vm, &mut s2, &mut tables).map_err(BuildError::Channel)?;
    if d.vgic.version == crate::config::GicVersion::V2 {
        // The guest's GICC window is the hardware virtual CPU interface (GICV).
        let gicv = crate::config::BOARD.gic.gicv;
        s2.map(
            &mut tables,
            GuestPhysAddr(d.vgic.gicc),
            PhysAddr(gicv),
            0x2000,
            MemAttrs::DEVICE_RW,
        )
        .map_err(|_| BuildError::Map { ipa: d.vgic.gicc })?;
    }
    let vmid = (vm.index() + 1) as u16;
    r.vttbr
        .store(Stage2Config::vttbr_el2(s2.root(), vmid), Ordering::Release);
    if crate::config::HYPERVISOR.verify_coloring {
        super::colorcheck::verify(vm, &s2).map_err(|_| BuildError::Coloring)?;
    }
    load(vm)
}

/// Copies the image, the initramfs and the DTB into the VM's RAM and cleans all of its RAM to
/// the point of coherency (the guest starts with its MMU and caches off).
pub fn load(vm: VmId) -> Result<(), BuildError> {
    let d = desc(vm);
    let (image, dtb) = (crate::payload::bytes(d.image), crate::payload::bytes(d.dtb));
    let initrd = if d.initrd.size == 0 {
        &[][..]
    } else {
        crate::payload::bytes(d.initrd)
    };
    if image.len() as u64 != d.image.size
        || dtb.len() as u64 != d.dtb.size
        || initrd.len() as u64 != d.initrd.size
    {
        return Err(BuildError::PayloadMissing);
    }
    let mem = GuestMemory::of(vm);
    let parts = [
        (d.initrd_ipa, initrd),
        (d.image_ipa, image),
        (d.dtb_ipa, dtb),
    ];
    // All three validated before anything is written.
    if parts.iter().any(|(ipa, bytes)| {
        !bytes.is_empty() && !mem.is_ram(GuestPhysAddr(*ipa), bytes.len() as u64)
    }) {
        return Err(BuildError::ImageOutsideRam);
    }
    for (ipa, bytes) in parts {
        if !bytes.is_empty() {
            mem.write(GuestPhysAddr(ipa), bytes)
                .map_err(|_| BuildError::ImageOutsideRam)?;
        }
    }
    mem.clean_all().map_err(|_| BuildError::ImageOutsideRam)
}

/// Zeroes all of the VM's RAM (before a reset reloads it).
pub fn wipe(vm: VmId) {
    if let Err(e) = GuestMemory::of(vm).zero_all() {
        crate::hprintln!("vm {}: wiping its RAM failed: {}", desc(vm).name, e);
    }
}

/// The physical address of guest-physical `ipa` in VM `vm`'s RAM (one byte: guest RAM is not
/// physically contiguous; reach it through [`GuestMemory`]).
pub fn ipa_to_pa(vm: VmId, ipa: GuestPhysAddr) -> Option<PhysAddr> {
    GuestMemory::of(vm).translate(ipa)
}

/// Whether `[ipa, ipa + len)` lies in VM `vm`'s RAM regions.
pub fn vm_ram_contains(vm: VmId, ipa: GuestPhysAddr, len: u64) -> bool {
    super::guestmem::is_ram(vm, ipa, len)
}
