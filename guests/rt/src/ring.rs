//! Tessera's inter-VM channels (`[[channels]]` of the config; DESIGN.md §6) over the protocol
//! of crates/ring.
//!
//! Each channel end is a device-tree node compatible with `"tessera,channel-v1"`: `reg` (the
//! shared region in this VM), `label` (the channel's name), `tessera,channel` (its number for
//! the doorbell hypercall), `tessera,direction` (`"tx"` or `"rx"`), `tessera,classes` (four
//! cells per class: slots, slot size, notify 0 = every / 1 = coalesced, GIC priority) and, on
//! the receiving side, `interrupts` (each class's doorbell) and `tessera,class-vcpus` (per
//! class, the CPU index its doorbell is routed to; the hypervisor routes it there at VM start
//! and reset, and [`Receiver::enable_doorbells`] routes it there again).
//!
//! ```ignore
//! let mut tx = ring::Sender::open(&ring::find("link").unwrap())?;
//! tx.send(7, b"urgent")?;                 // class 7 = highest of 8; rings the doorbell if asked
//! let mut rx = ring::Receiver::open(&ring::find("back").unwrap())?;
//! rx.enable_doorbells()?;                  // handlers, priorities, routing to the DT's CPUs
//! let mut buf = [0u8; 256];
//! loop {
//!     match rx.try_recv(&mut buf) {          // highest class first
//!         Ok(Some(m)) => { /* buf[..m.len] */ }
//!         Ok(None) => ring::wait(&mut [&mut rx]), // arm, WFI, take the doorbell
//!         Err(e) => { /* a violation by the peer: counted, go on */ }
//!     }
//! }
//! ```
//!
//! The region must be Normal memory in this VM's stage 1: the runtime maps `[1 GiB, 512 GiB)`
//! as Normal write-back, so channel IPAs lie at or above 0x4000_0000.

use core::sync::atomic::{AtomicU64, Ordering};

use heapless::{String, Vec};
pub use tessera_ring::{
    Armed, Consumer, ConsumerStats, Doorbell, Layout, LayoutError, Producer, ProducerStats,
    RawSharedMem, Received, RecvError, SendError, SharedMem, ViolationKind, MAX_CLASSES,
};

use crate::boot::MAX_CPUS;
use crate::dt::{self, GicVersion, MemRegion};
use crate::gic;
use crate::irq::{self, GicError, Trigger};

/// Most channel ends recorded.
pub const MAX_CHANNELS: usize = 16;

/// One class as the DT describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassInfo {
    pub slots: u32,
    pub slot_size: u32,
    /// Coalesced notification (else: a doorbell per message).
    pub coalesced: bool,
    /// The doorbell's GIC priority.
    pub priority: u8,
    /// The doorbell's INTID (receiving end only).
    pub irq: Option<u32>,
    /// The CPU (index of [`crate::BootInfo::cpus`]) the doorbell goes to (receiving end
    /// only; 0 when the DT has no `tessera,class-vcpus`).
    pub vcpu: Option<usize>,
}

/// One channel end of this VM.
#[derive(Clone, Debug)]
pub struct ChannelInfo {
    /// The channel's number (the doorbell hypercall's argument).
    pub index: u32,
    pub name: String<32>,
    /// The shared region as this VM sees it.
    pub region: MemRegion,
    /// This VM receives (else it sends).
    pub rx: bool,
    /// Lowest priority first.
    pub classes: Vec<ClassInfo, MAX_CLASSES>,
}

/// Every channel end the device tree describes (malformed nodes are skipped).
pub fn channels() -> Vec<ChannelInfo, MAX_CHANNELS> {
    let mut out = Vec::new();
    let info = crate::boot_info();
    let cells = info.gic.as_ref().map_or(3, |g| g.interrupt_cells);
    let Ok((fdt, _)) = dt::open(info.dtb.base) else {
        return out;
    };
    let Ok(root) = fdt.root() else { return out };
    let Ok(nodes) = root.all_nodes() else {
        return out;
    };
    for (_, node) in nodes.filter_map(Result::ok) {
        if !dt::is_compatible(&node, "tessera,channel-v1").unwrap_or(false) {
            continue;
        }
        if let Some(c) = parse(&node, cells) {
            let _ = out.push(c);
        }
    }
    out
}

fn parse(node: &dt::DtNode<'static>, cells: usize) -> Option<ChannelInfo> {
    let region = dt::regs(node).ok()?.next()?;
    let index = dt::u32_property(node, "tessera,channel").ok()??;
    let dir = node.raw_property("tessera,direction").ok()??.value;
    let rx = match dir.strip_suffix(b"\0").unwrap_or(dir) {
        b"rx" => true,
        b"tx" => false,
        _ => return None,
    };
    let mut name = String::new();
    if let Some(l) = node.raw_property("label").ok()? {
        let text = l.value.split(|&b| b == 0).next().unwrap_or_default();
        let _ = name.push_str(core::str::from_utf8(text).ok()?);
    }
    let raw = node.raw_property("tessera,classes").ok()??.value;
    let mut irqs = dt::interrupts(node, cells).ok()?;
    let vcpus = match node.raw_property("tessera,class-vcpus").ok()? {
        Some(p) => p.value,
        None => &[],
    };
    let mut vcpus = vcpus
        .as_chunks::<4>()
        .0
        .iter()
        .map(|c| u32::from_be_bytes(*c) as usize);
    let mut classes = Vec::new();
    for c in raw.as_chunks::<16>().0 {
        let w = |i: usize| u32::from_be_bytes([c[4 * i], c[4 * i + 1], c[4 * i + 2], c[4 * i + 3]]);
        classes
            .push(ClassInfo {
                slots: w(0),
                slot_size: w(1),
                coalesced: w(2) == 1,
                priority: w(3).min(255) as u8,
                irq: if rx {
                    irqs.next().map(|i| i.intid)
                } else {
                    None
                },
                vcpu: rx.then(|| vcpus.next().unwrap_or(0)),
            })
            .ok()?;
    }
    Some(ChannelInfo {
        index,
        name,
        region,
        rx,
        classes,
    })
}

/// The channel end named `name`, if this VM has one.
pub fn find(name: &str) -> Option<ChannelInfo> {
    channels().into_iter().find(|c| c.name.as_str() == name)
}

/// Why a channel end could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Opening a receiving end as a sender or the reverse.
    Direction,
    /// The region's base is not usable.
    Region,
    /// The header in the region is not a valid ring (`tessera_ring::Layout::read_header`),
    /// or does not match the DT's classes.
    Layout(Option<LayoutError>),
    /// A doorbell could not be set up.
    Gic(GicError),
}

/// The region of `c` as shared memory.
fn mem(c: &ChannelInfo) -> Result<RawSharedMem, OpenError> {
    // SAFETY: the DT says the hypervisor mapped `region` into this VM (Normal memory in the
    // runtime's identity map for addresses >= 1 GiB) for the VM's whole life; this program
    // only accesses it through `RawSharedMem`, i.e. atomically.
    unsafe { RawSharedMem::new(c.region.base as *mut u8, c.region.size) }.ok_or(OpenError::Region)
}

/// Reads the region's header and checks it against the DT's classes.
fn checked_layout(c: &ChannelInfo, m: &RawSharedMem) -> Result<Layout, OpenError> {
    let l = Layout::read_header(m).map_err(|e| OpenError::Layout(Some(e)))?;
    let same = l.classes().len() == c.classes.len()
        && l.classes()
            .iter()
            .zip(&c.classes)
            .all(|(a, b)| a.geometry.slot_count == b.slots && a.geometry.slot_size == b.slot_size);
    if same {
        Ok(l)
    } else {
        Err(OpenError::Layout(None))
    }
}

/// The sending end of a channel.
pub struct Sender {
    tx: Producer<RawSharedMem>,
    info: ChannelInfo,
    /// Doorbell hypercalls made.
    pub doorbells: u64,
    /// Of those, the ones that found the receiver's interrupt already pending.
    pub doorbells_already_pending: u64,
}

impl Sender {
    /// Opens the sending end `c`.
    pub fn open(c: &ChannelInfo) -> Result<Self, OpenError> {
        if c.rx {
            return Err(OpenError::Direction);
        }
        let m = mem(c)?;
        let l = checked_layout(c, &m)?;
        Ok(Sender {
            tx: Producer::attach(m, l).map_err(|e| OpenError::Layout(Some(e)))?,
            info: c.clone(),
            doorbells: 0,
            doorbells_already_pending: 0,
        })
    }

    /// Sends `data` on `class` (0 = lowest priority) and rings the doorbell when the class's
    /// policy asks for it. Never blocks: [`SendError::Full`] when the class is full.
    pub fn send(&mut self, class: u8, data: &[u8]) -> Result<(), SendError> {
        if self.tx.send(class, data)? == Doorbell::Ring {
            self.ring(class);
        }
        Ok(())
    }

    /// Rings the doorbell of `class` (the hypercall).
    pub fn ring(&mut self, class: u8) {
        self.doorbells += 1;
        if let Ok(false) = crate::tessera::doorbell(self.info.index, class) {
            self.doorbells_already_pending += 1;
        }
    }

    /// The protocol's producer (counters, free slots).
    pub fn producer(&mut self) -> &mut Producer<RawSharedMem> {
        &mut self.tx
    }

    /// The channel.
    pub fn info(&self) -> &ChannelInfo {
        &self.info
    }
}

/// Doorbell interrupts taken by this VM.
static DOORBELLS_TAKEN: AtomicU64 = AtomicU64::new(0);
/// Doorbell interrupts taken by each CPU.
static DOORBELLS_TAKEN_ON: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Per CPU, a bit per doorbell INTID (0..=255) it has taken.
static DOORBELLS_SEEN_ON: [[AtomicU64; 4]; MAX_CPUS] =
    [const { [const { AtomicU64::new(0) }; 4] }; MAX_CPUS];
/// Serialises this module's read-modify-writes of GICv2 `GICD_ITARGETSR` words.
static ROUTE_LOCK: spin::Mutex<()> = spin::Mutex::new(());

fn on_doorbell(intid: u32) {
    DOORBELLS_TAKEN.fetch_add(1, Ordering::Relaxed);
    let cpu = crate::cpu::index();
    if let Some(n) = DOORBELLS_TAKEN_ON.get(cpu) {
        n.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(w) = DOORBELLS_SEEN_ON
        .get(cpu)
        .and_then(|s| s.get(intid as usize / 64))
    {
        w.fetch_or(1 << (intid % 64), Ordering::Relaxed);
    }
}

/// Doorbell interrupts this VM has taken so far.
pub fn doorbells_taken() -> u64 {
    DOORBELLS_TAKEN.load(Ordering::Relaxed)
}

/// Doorbell interrupts CPU `cpu` has taken so far.
pub fn doorbells_taken_on(cpu: usize) -> u64 {
    DOORBELLS_TAKEN_ON
        .get(cpu)
        .map_or(0, |n| n.load(Ordering::Relaxed))
}

/// Whether CPU `cpu` has taken the doorbell `intid` at least once.
pub fn doorbell_seen_on(cpu: usize, intid: u32) -> bool {
    DOORBELLS_SEEN_ON
        .get(cpu)
        .and_then(|s| s.get(intid as usize / 64))
        .is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (intid % 64)) != 0)
}

/// The CPU SPI `intid` is routed to now, as the distributor says (v3 `GICD_IROUTER`
/// affinity, v2 the lowest `GICD_ITARGETSR` bit); `None` if it names no CPU of this VM (or
/// v3 1-of-N routing).
pub fn route_of(intid: u32) -> Result<Option<usize>, GicError> {
    match irq::gic_version() {
        Some(GicVersion::V3) => {
            let r = gic::dist_read64(gic::GICD_IROUTER + 8 * intid as usize)?;
            if r & (1 << 31) != 0 {
                return Ok(None);
            }
            let aff = r & 0xff_00ff_ffff;
            Ok(crate::boot_info()
                .cpus
                .iter()
                .position(|&m| m & 0xff_00ff_ffff == aff))
        }
        Some(GicVersion::V2) => {
            let word = gic::dist_read32(gic::GICD_ITARGETSR + (intid as usize & !3))?;
            let t = (word >> (8 * (intid % 4))) & 0xff;
            Ok((t != 0).then(|| t.trailing_zeros() as usize))
        }
        None => Err(GicError::BadIntid(intid)),
    }
}

/// Routes SPI `intid` to CPU `cpu` (puts it in group 1 on v3 as well).
fn route_to(intid: u32, cpu: usize) -> Result<(), GicError> {
    // Group 1 and a route to the calling CPU, under the runtime's distributor lock.
    irq::route_here(intid)?;
    if cpu == crate::cpu::index() {
        return Ok(());
    }
    let &mpidr = crate::boot_info()
        .cpus
        .get(cpu)
        .ok_or(GicError::BadCpu(cpu))?;
    match irq::gic_version() {
        Some(GicVersion::V3) => gic::dist_write64(
            gic::GICD_IROUTER + 8 * intid as usize,
            mpidr & 0xff_00ff_ffff,
        ),
        Some(GicVersion::V2) => {
            // Tessera's virtual GICv2 gives CPU i the CPU-interface bit i.
            let bit = 1u32.checked_shl(cpu as u32).filter(|&b| b <= 0x80);
            let bit = bit.ok_or(GicError::BadCpu(cpu))?;
            let offset = gic::GICD_ITARGETSR + (intid as usize & !3);
            let shift = 8 * (intid % 4);
            let _guard = ROUTE_LOCK.lock();
            let old = gic::dist_read32(offset)?;
            gic::dist_write32(offset, (old & !(0xff << shift)) | (bit << shift))
        }
        None => Err(GicError::BadCpu(cpu)),
    }
}

/// The receiving end of a channel.
pub struct Receiver {
    rx: Consumer<RawSharedMem>,
    info: ChannelInfo,
}

impl Receiver {
    /// Opens the receiving end `c`.
    pub fn open(c: &ChannelInfo) -> Result<Self, OpenError> {
        if !c.rx {
            return Err(OpenError::Direction);
        }
        let m = mem(c)?;
        let l = checked_layout(c, &m)?;
        Ok(Receiver {
            rx: Consumer::attach(m, l).map_err(|e| OpenError::Layout(Some(e)))?,
            info: c.clone(),
        })
    }

    /// Sets up the doorbells of every class (`irq::init` must have run): handler, edge
    /// trigger, the DT's priority, routing to the CPU the DT names for the class
    /// (`tessera,class-vcpus`, the config's `classes[k].vcpu`), enabled. A receiver running
    /// on that CPU then takes the class's doorbells; that CPU's GIC interface is set up when
    /// [`crate::cpu::start`] starts it. On GICv2, call it from one CPU at a time (routing
    /// read-modify-writes a distributor word shared by four interrupts).
    pub fn enable_doorbells(&self) -> Result<(), OpenError> {
        for c in &self.info.classes {
            let Some(i) = c.irq else { continue };
            irq::set_handler(i, Some(on_doorbell));
            irq::set_trigger(i, Trigger::Edge).map_err(OpenError::Gic)?;
            irq::set_priority(i, c.priority).map_err(OpenError::Gic)?;
            route_to(i, c.vcpu.unwrap_or(0)).map_err(OpenError::Gic)?;
            // Not `irq::enable`: it would route the SPI to the calling CPU again. ISENABLER
            // is write-one-to-set: no read-modify-write.
            gic::dist_write32(gic::GICD_ISENABLER + 4 * (i as usize / 32), 1 << (i % 32))
                .map_err(OpenError::Gic)?;
        }
        Ok(())
    }

    /// The next message, highest class first (see `tessera_ring::Consumer::try_recv`).
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<Received>, RecvError> {
        self.rx.try_recv(buf)
    }

    /// The protocol's consumer (counters, arming).
    pub fn consumer(&mut self) -> &mut Consumer<RawSharedMem> {
        &mut self.rx
    }

    /// The channel.
    pub fn info(&self) -> &ChannelInfo {
        &self.info
    }

    /// The highest class of the channel (what orders channels in a receive loop).
    pub fn top_class(&self) -> u8 {
        self.info.classes.len().saturating_sub(1) as u8
    }
}

/// Sleeps until a doorbell comes, unless a message is already pending on one of `rxs`:
/// with IRQs masked, arms every receiver (coalesced classes ask for a doorbell), waits in WFI
/// only if all are idle, then unmasks so the doorbell's handler runs.
pub fn wait(rxs: &mut [&mut Receiver]) {
    irq::disable_local();
    let mut idle = true;
    for r in rxs.iter_mut() {
        if r.rx.arm_notification() == Armed::Pending {
            idle = false;
        }
    }
    if idle {
        irq::wait();
    }
    irq::enable_local();
}
