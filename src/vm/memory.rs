//! A VM's memory: frames for its RAM regions, its stage-2 tables, and loading its image and
//! device tree.

use core::sync::atomic::Ordering;

use tessera_stage2::{GuestPhysAddr, MemAttrs, PageTable, PhysAddr, Stage2, Stage2Config};

use super::{desc, get, VmId, MAX_MEM_REGIONS};
use crate::arch::cache;
use crate::mm;

/// Why a VM could not be built.
#[derive(Clone, Copy, Debug)]
pub enum BuildError {
    TooManyRegions,
    OutOfMemory { size: u64 },
    PlacementTaken { pa: u64, size: u64 },
    Map { ipa: u64 },
    ImageOutsideRam,
    PayloadMissing,
    Channel(crate::channel::ChannelError),
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            BuildError::TooManyRegions => write!(f, "more than {} RAM regions", MAX_MEM_REGIONS),
            BuildError::OutOfMemory { size } => {
                write!(f, "out of physical memory allocating {:#x} bytes", size)
            }
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
        }
    }
}

/// Allocates VM `vm`'s memory, builds its stage-2 tables and loads its image and DTB.
pub fn build(vm: VmId, config: &Stage2Config) -> Result<(), BuildError> {
    let d = desc(vm);
    let r = get(vm);
    if d.mem.len() > MAX_MEM_REGIONS {
        return Err(BuildError::TooManyRegions);
    }
    let mut tables = mm::Tables;
    let mut s2 = PageTable::<Stage2>::new(&mut tables, config)
        .map_err(|_| BuildError::OutOfMemory { size: 4096 })?;
    for (i, m) in d.mem.iter().enumerate() {
        let pa = match m.phys {
            Some(pa) => mm::claim_zeroed(PhysAddr(pa), m.size)
                .ok_or(BuildError::PlacementTaken { pa, size: m.size })?,
            None => {
                // 2 MiB alignment lets the stage-2 use block mappings.
                let align = if m.size >= (2 << 20) { 2 << 20 } else { 4096 };
                mm::alloc_zeroed(m.size, align).ok_or(BuildError::OutOfMemory { size: m.size })?
            }
        };
        r.region_pa[i].store(pa.0, Ordering::Relaxed);
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
    load(vm)
}

/// Copies the image and the DTB into the VM's RAM and cleans it to the point of coherency
/// (the guest starts with its MMU and caches off).
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
    if !initrd.is_empty() {
        let pa = contiguous_pa(vm, GuestPhysAddr(d.initrd_ipa), d.initrd.size)
            .ok_or(BuildError::ImageOutsideRam)?;
        mm::copy_to_phys(pa, initrd);
    }
    let image_pa = contiguous_pa(vm, GuestPhysAddr(d.image_ipa), d.image.size)
        .ok_or(BuildError::ImageOutsideRam)?;
    let dtb_pa = contiguous_pa(vm, GuestPhysAddr(d.dtb_ipa), d.dtb.size)
        .ok_or(BuildError::ImageOutsideRam)?;
    mm::copy_to_phys(image_pa, image);
    mm::copy_to_phys(dtb_pa, dtb);
    for (i, m) in d.mem.iter().enumerate() {
        cache::clean_inval_dcache_range(get(vm).region_pa[i].load(Ordering::Relaxed), m.size);
    }
    Ok(())
}

/// Zeroes all of the VM's RAM (before a reset reloads it).
pub fn wipe(vm: VmId) {
    let d = desc(vm);
    for (i, m) in d.mem.iter().enumerate() {
        let pa = PhysAddr(get(vm).region_pa[i].load(Ordering::Relaxed));
        mm::copy_zero(pa, m.size);
    }
}

/// The physical address of guest-physical `ipa` in VM `vm`'s RAM.
pub fn ipa_to_pa(vm: VmId, ipa: GuestPhysAddr) -> Option<PhysAddr> {
    let ipa = ipa.0;
    desc(vm).mem.iter().enumerate().find_map(|(i, m)| {
        (ipa >= m.ipa && ipa - m.ipa < m.size)
            .then(|| PhysAddr(get(vm).region_pa[i].load(Ordering::Relaxed) + (ipa - m.ipa)))
    })
}

/// Whether `[ipa, ipa + len)` lies inside one RAM region of VM `vm`.
pub fn vm_ram_contains(vm: VmId, ipa: GuestPhysAddr, len: u64) -> bool {
    let ipa = ipa.0;
    desc(vm)
        .mem
        .iter()
        .any(|m| ipa >= m.ipa && len <= m.size && ipa - m.ipa <= m.size - len)
}

fn contiguous_pa(vm: VmId, ipa: GuestPhysAddr, len: u64) -> Option<PhysAddr> {
    vm_ram_contains(vm, ipa, len)
        .then(|| ipa_to_pa(vm, ipa))
        .flatten()
}
