//! Inter-VM channels (DESIGN.md §6): for each `CHANNELS` entry, a ring region (crates/ring)
//! shared by its sender and its receiver, and the doorbells that signal the receiver.
//!
//! - **Memory**: at boot, the first time a VM with an end of the channel is built, the region
//!   is allocated (physically contiguous, zeroed), initialised with the layout of its classes
//!   (`tessera_ring::Layout::initialise`, through the hypervisor's one physical-to-pointer
//!   conversion, `mm::phys_to_ptr`) and cleaned to the point of coherency; each end maps it in
//!   its stage 2 (Normal write-back, read/write, never executable) at its own IPA. The
//!   hypervisor never reads the region again: everything in it is the two guests' business,
//!   and each of them validates what it reads (crates/ring).
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

use core::sync::atomic::{AtomicU64, Ordering};

use tessera_abi::Error;
use tessera_ring::{ClassGeometry, Layout, NotifyPolicy, RawSharedMem, MAX_CLASSES};
use tessera_stage2::{GuestPhysAddr, MemAttrs, PageTable, PhysAddr, Stage2};

use crate::arch::cache;
use crate::config::{ChannelDesc, ChannelNotify, CHANNELS, VMS};
use crate::vm::VmId;
use crate::{hprintln, mm};

/// Most channels a build supports.
pub const MAX_CHANNELS: usize = 32;

/// Physical base of each channel's region (0 until allocated).
static REGION_PA: [AtomicU64; MAX_CHANNELS] = [const { AtomicU64::new(0) }; MAX_CHANNELS];

/// Why a channel end could not be set up (boot error).
#[derive(Clone, Copy, Debug)]
pub enum ChannelError {
    /// More channels than [`MAX_CHANNELS`].
    TooMany,
    /// The classes do not make a valid ring layout (the build-time check failed to catch it).
    Layout,
    /// No contiguous physical memory for the region.
    OutOfMemory { size: u64 },
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

/// The region of channel `index`, allocated and initialised on first use (boot core only,
/// before any vCPU runs).
fn region(index: usize) -> Result<PhysAddr, ChannelError> {
    let slot = REGION_PA.get(index).ok_or(ChannelError::TooMany)?;
    let pa = slot.load(Ordering::Relaxed);
    if pa != 0 {
        return Ok(PhysAddr(pa));
    }
    let c = &CHANNELS[index];
    let l = layout(c)?;
    let pa = mm::alloc_zeroed(c.size, 4096).ok_or(ChannelError::OutOfMemory { size: c.size })?;
    // SAFETY: [pa, pa + size) was just handed out by the frame allocator (identity-mapped,
    // 4 KiB aligned, owned by nobody else), and no guest runs yet; afterwards the hypervisor
    // never touches it again except through this value, which is dropped below.
    let mem = unsafe { RawSharedMem::new(mm::phys_to_ptr(pa), c.size as usize) }
        .ok_or(ChannelError::Layout)?;
    l.initialise(&mem, 0).map_err(|_| ChannelError::Layout)?;
    // The guests may look at it with their caches off (before their MMU is on).
    cache::clean_inval_dcache_range(pa.0, c.size);
    slot.store(pa.0, Ordering::Relaxed);
    hprintln!(
        "channel {}: {} -> {}, {} class(es), {} KiB at PA {:#x} (IPA {:#x} / {:#x})",
        c.name,
        VMS[c.from_vm].name,
        VMS[c.to_vm].name,
        c.classes.len(),
        c.size >> 10,
        pa.0,
        c.ipa_from,
        c.ipa_to
    );
    Ok(pa)
}

/// Maps every channel VM `vm` has an end of into its stage 2 (from `vm::memory::build`),
/// allocating regions not built yet.
pub fn map_into(
    vm: VmId,
    s2: &mut PageTable<Stage2>,
    tables: &mut mm::Tables,
) -> Result<(), ChannelError> {
    if CHANNELS.len() > MAX_CHANNELS {
        return Err(ChannelError::TooMany);
    }
    for (i, c) in CHANNELS.iter().enumerate() {
        for (end, ipa) in [(c.from_vm, c.ipa_from), (c.to_vm, c.ipa_to)] {
            if VmId(end) != vm {
                continue;
            }
            let pa = region(i)?;
            s2.map(tables, GuestPhysAddr(ipa), pa, c.size, MemAttrs::RAM_RW)
                .map_err(|_| ChannelError::Map { ipa })?;
        }
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
