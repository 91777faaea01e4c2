//! Inter-VM channels (DESIGN.md §6): for each `CHANNELS` entry, a ring region (crates/ring)
//! shared by its sender and its receiver, and the doorbells that signal the receiver.
//!
//! - **Memory**: at boot, the first time a VM with an end of the channel is built, the region
//!   is allocated and mapped into that VM's stage 2 (Normal write-back, read/write, never
//!   executable): an uncolored channel as one physically contiguous, zeroed run; a colored one
//!   (`ChannelDesc.colors`, the config's or the receiver's) as single zeroed frames of its
//!   colors mapped 4 KiB at a time (`tessera_colors::map_frames`). It is then initialised
//!   with the layout of its classes (`tessera_ring::Layout::initialise`) word by word through
//!   [`PagedRegion`], which finds each word's frame (contiguous: base + offset; colored: a walk
//!   of the first end's stage 2, which *is* the frame list) and reaches it through the
//!   hypervisor's one physical-to-pointer conversion, `mm::phys_to_ptr`; each page is cleaned
//!   to the point of coherency. The other end maps the same frames at its own IPA (colored:
//!   found page by page in the first end's stage 2). The hypervisor never reads the region
//!   again: everything in it is the two guests' business, and each of them validates what it
//!   reads (crates/ring).
//! - **Doorbells**: each class has a virtual SPI of the receiver, owned by it like a
//!   passed-through SPI but linked to no physical interrupt (`vgic::init_vm` registers them;
//!   the vGIC never mirrors their enables to the physical GIC). [`doorbell`] is the
//!   `Doorbell` hypercall: only the channel's sender may ring it; it makes the SPI pending in
//!   the receiver and kicks the vCPU it is routed to (an SGI to another core, or a wake-up of
//!   a vCPU waiting in WFI on a shared core). Each doorbell starts routed to the receiver's
//!   vCPU the config names for its class (`vgic::init_vm`, again at every reset: v3
//!   `GICD_IROUTER`, v2 `GICD_ITARGETSR` as their reset value); the receiver may re-route it
//!   like any SPI it owns, and the injection follows its routing. Ringing an SPI that is already pending does
//!   nothing, so a sender cannot create more work than one interrupt per receiver
//!   acknowledgement. The work runs on the sender's vCPU, hence on its server's budget.

use core::sync::atomic::AtomicU32;

use spin::Mutex;
use tessera_abi::Error;
use tessera_colors::{map_frames, MapFramesError};
use tessera_ring::{ClassGeometry, Layout, NotifyPolicy, SharedMem, MAX_CLASSES};
use tessera_stage2::{GuestPhysAddr, MapError, MemAttrs, PageTable, PhysAddr, Stage2};

use crate::arch::cache;
use crate::config::{ChannelDesc, ChannelNotify, CHANNELS, VMS};
use crate::llc::Colors;
use crate::vm::VmId;
use crate::{hprintln, mm};

/// Most channels a build supports.
pub const MAX_CHANNELS: usize = 32;

/// Where a channel's region is, once allocated.
#[derive(Clone, Copy, Debug)]
enum Backing {
    /// Not allocated yet.
    None,
    /// One physically contiguous run (an uncolored channel).
    Contiguous(PhysAddr),
    /// Single frames (a colored channel), mapped at `ipa` in VM `owner`'s stage 2 (the end
    /// built first), whose walk gives each page's frame.
    Paged { owner: VmId, ipa: GuestPhysAddr },
}

/// Each channel's region (boot core only, while VMs are built).
static REGIONS: Mutex<[Backing; MAX_CHANNELS]> = Mutex::new([Backing::None; MAX_CHANNELS]);

/// Why a channel end could not be set up (boot error).
#[derive(Clone, Copy, Debug)]
pub enum ChannelError {
    /// More channels than [`MAX_CHANNELS`].
    TooMany,
    /// The classes do not make a valid ring layout (the build-time check failed to catch it).
    Layout,
    /// No contiguous physical memory for the region.
    OutOfMemory { size: u64 },
    /// Not enough free frames of the channel's colors.
    OutOfColoredMemory { size: u64, colors: u64 },
    /// The stage-2 mapping failed.
    Map { ipa: u64 },
}

impl core::fmt::Display for ChannelError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            ChannelError::TooMany => write!(f, "more than {} channels", MAX_CHANNELS),
            ChannelError::Layout => write!(f, "invalid channel ring layout"),
            ChannelError::OutOfMemory { size } => {
                write!(
                    f,
                    "out of physical memory allocating a {:#x}-byte channel",
                    size
                )
            }
            ChannelError::OutOfColoredMemory { size, colors } => write!(
                f,
                "out of memory of colors {} allocating a {:#x}-byte channel",
                Colors(colors),
                size
            ),
            ChannelError::Map { ipa } => write!(f, "channel mapping failed at IPA {:#x}", ipa),
        }
    }
}

/// The ring layout of channel `c`'s classes.
fn layout(c: &ChannelDesc) -> Result<Layout, ChannelError> {
    let mut g = [ClassGeometry {
        slot_count: 1,
        slot_size: 1,
        notify: NotifyPolicy::EveryMessage,
    }; MAX_CLASSES];
    if c.classes.len() > MAX_CLASSES {
        return Err(ChannelError::Layout);
    }
    for (g, k) in g.iter_mut().zip(c.classes) {
        *g = ClassGeometry {
            slot_count: k.slot_count,
            slot_size: k.slot_size,
            notify: match k.notify {
                ChannelNotify::Every => NotifyPolicy::EveryMessage,
                ChannelNotify::Coalesced => NotifyPolicy::Coalesced,
            },
        };
    }
    let l = Layout::new(&g[..c.classes.len()]).map_err(|_| ChannelError::Layout)?;
    if u64::from(l.total_size()) != c.size {
        return Err(ChannelError::Layout);
    }
    Ok(l)
}

/// A channel region seen word by word through the physmap, page by page: the ring layout is
/// initialised through it without assuming the region is physically contiguous.
struct PagedRegion<'a> {
    size: usize,
    /// The frame of page `k` of the region.
    frame: &'a dyn Fn(u64) -> Option<PhysAddr>,
}

impl SharedMem for PagedRegion<'_> {
    fn size(&self) -> usize {
        self.size
    }

    fn word(&self, index: usize) -> Option<&AtomicU32> {
        let offset = index.checked_mul(4).filter(|&o| o < self.size)? as u64;
        let pa = (self.frame)(offset / 4096)?.add(offset % 4096);
        // SAFETY: `pa` is in a frame of the channel's region (allocated for it, zeroed, in the
        // physmap), 4-byte aligned (frames are 4 KiB aligned, the offset a multiple of 4); the
        // region is used only atomically here, by the boot core, before either guest runs, and
        // the reference lives no longer than `self`, while the frames stay allocated forever.
        Some(unsafe { AtomicU32::from_ptr(mm::phys_to_ptr(pa) as *mut u32) })
    }
}

/// Maps every channel VM `vm` has an end of into its stage 2 (from `vm::memory::build`),
/// allocating and initialising regions not built yet. `tables` are the VM's (colored VMs: in
/// its colors, whatever the channel's colors).
pub fn map_into(
    vm: VmId,
    s2: &mut PageTable<Stage2>,
    tables: &mut mm::Tables,
) -> Result<(), ChannelError> {
    if CHANNELS.len() > MAX_CHANNELS {
        return Err(ChannelError::TooMany);
    }
    let mut regions = REGIONS.lock();
    for (i, c) in CHANNELS.iter().enumerate() {
        for (end, ipa) in [(c.from_vm, c.ipa_from), (c.to_vm, c.ipa_to)] {
            if VmId(end) != vm {
                continue;
            }
            let ipa = GuestPhysAddr(ipa);
            let map_err = |e: MapFramesError<GuestPhysAddr>| match e {
                MapFramesError::OutOfFrames { .. } | MapFramesError::Map(MapError::OutOfMemory) => {
                    ChannelError::OutOfColoredMemory {
                        size: c.size,
                        colors: c.colors,
                    }
                }
                MapFramesError::Map(_) => ChannelError::Map { ipa: ipa.0 },
            };
            let pages = c.size / 4096;
            match regions[i] {
                Backing::None => {
                    let l = layout(c)?;
                    regions[i] = if c.colors == 0 {
                        let pa = mm::alloc_zeroed(c.size, 4096)
                            .ok_or(ChannelError::OutOfMemory { size: c.size })?;
                        s2.map(tables, ipa, pa, c.size, MemAttrs::RAM_RW)
                            .map_err(|_| ChannelError::Map { ipa: ipa.0 })?;
                        Backing::Contiguous(pa)
                    } else {
                        map_frames(s2, tables, ipa, pages, MemAttrs::RAM_RW, |_| {
                            mm::alloc_colored_zeroed(c.colors)
                        })
                        .map_err(map_err)?;
                        Backing::Paged { owner: vm, ipa }
                    };
                    initialise(c, &l, s2, regions[i])?;
                }
                Backing::Contiguous(pa) => s2
                    .map(tables, ipa, pa, c.size, MemAttrs::RAM_RW)
                    .map_err(|_| ChannelError::Map { ipa: ipa.0 })?,
                Backing::Paged { owner, ipa: at } => {
                    // The first end's tree (this one if both ends are this VM).
                    let first = if owner == vm {
                        *s2
                    } else {
                        crate::vm::stage2_of(owner).ok_or(ChannelError::Layout)?
                    };
                    let mut k = 0u64;
                    map_frames(s2, tables, ipa, pages, MemAttrs::RAM_RW, |_| {
                        let pa = frame_at(&first, at, k);
                        k += 1;
                        pa
                    })
                    .map_err(map_err)?;
                }
            }
        }
    }
    Ok(())
}

/// The frame of page `k` of a paged region mapped at `ipa` in `s2`.
fn frame_at(s2: &PageTable<Stage2>, ipa: GuestPhysAddr, k: u64) -> Option<PhysAddr> {
    s2.translate(&mm::Tables::READ, ipa.add(k * 4096))
        .map(|t| t.pa)
}

/// Writes channel `c`'s ring header and indices into its new region, cleans it to the point of
/// coherency (the guests may look at it with their caches off) and reports it.
fn initialise(
    c: &ChannelDesc,
    l: &Layout,
    s2: &PageTable<Stage2>,
    backing: Backing,
) -> Result<(), ChannelError> {
    let frame = |k: u64| match backing {
        Backing::Contiguous(pa) => (k < c.size / 4096).then(|| pa.add(k * 4096)),
        Backing::Paged { ipa, .. } => frame_at(s2, ipa, k),
        Backing::None => None,
    };
    let mem = PagedRegion {
        size: c.size as usize,
        frame: &frame,
    };
    l.initialise(&mem, 0).map_err(|_| ChannelError::Layout)?;
    for k in 0..c.size / 4096 {
        let pa = frame(k).ok_or(ChannelError::Layout)?;
        cache::clean_inval_dcache_lines(mm::phys_to_ptr(pa) as u64, 4096);
    }
    match backing {
        Backing::Contiguous(pa) => hprintln!(
            "channel {}: {} -> {}, {} class(es), {} KiB at PA {:#x} (IPA {:#x} / {:#x})",
            c.name,
            VMS[c.from_vm].name,
            VMS[c.to_vm].name,
            c.classes.len(),
            c.size >> 10,
            pa.0,
            c.ipa_from,
            c.ipa_to
        ),
        _ => hprintln!(
            "channel {}: {} -> {}, {} class(es), {} KiB in pages of colors {} (IPA {:#x} / {:#x})",
            c.name,
            VMS[c.from_vm].name,
            VMS[c.to_vm].name,
            c.classes.len(),
            c.size >> 10,
            Colors(c.colors),
            c.ipa_from,
            c.ipa_to
        ),
    }
    Ok(())
}

/// The doorbell SPIs VM `vm` receives (owned by it in its virtual GIC, no physical link).
pub fn doorbells_of(vm: VmId) -> impl Iterator<Item = u32> {
    CHANNELS
        .iter()
        .filter(move |c| VmId(c.to_vm) == vm)
        .flat_map(|c| c.classes.iter().map(|k| k.irq))
}

/// The doorbells VM `vm` receives with the vCPU each one is routed to at VM start and reset
/// (`classes[k].vcpu` of the config; the guest may re-route them later).
pub fn doorbell_routes_of(vm: VmId) -> impl Iterator<Item = (u32, usize)> {
    CHANNELS
        .iter()
        .filter(move |c| VmId(c.to_vm) == vm)
        .flat_map(|c| c.classes.iter().map(|k| (k.irq, k.vcpu as usize)))
}

/// Whether `intid` is a doorbell of VM `vm` (a purely virtual SPI).
pub fn is_doorbell(vm: VmId, intid: u32) -> bool {
    doorbells_of(vm).any(|i| i == intid)
}

/// The `Doorbell` hypercall from VM `vm`: class `class` of channel `channel`. `Ok(true)`: the
/// receiver's SPI became pending; `Ok(false)`: it was pending already.
pub fn doorbell(vm: VmId, channel: u64, class: u64) -> Result<bool, Error> {
    let c = usize::try_from(channel)
        .ok()
        .and_then(|i| CHANNELS.get(i))
        .ok_or(Error::InvalidParameters)?;
    if VmId(c.from_vm) != vm {
        return Err(Error::Denied);
    }
    let k = usize::try_from(class)
        .ok()
        .and_then(|i| c.classes.get(i))
        .ok_or(Error::InvalidParameters)?;
    Ok(crate::vgic::inject_virtual(VmId(c.to_vm), k.irq))
}
