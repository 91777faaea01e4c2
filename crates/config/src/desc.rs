//! The `no_std` descriptor types the EL2 image is built from.
//!
//! `build.rs` of the hypervisor validates a board + config (with the `std` feature of this
//! crate) and generates Rust source that defines, in the image:
//!
//! ```ignore
//! pub static BOARD: BoardDesc = ...;
//! pub static VMS: [VmDesc; N] = [...];
//! pub static PCPUS: [PcpuDesc; M] = [...];   // one per physical core the board may have
//! pub static CHANNELS: [ChannelDesc; K] = [...]; // inter-VM channels (one direction each)
//! pub static HYPERVISOR: HypervisorDesc = ...;   // the hypervisor's own coloring
//! ```
//!
//! Color sets are `u64` masks: bit *c* = color *c*; 0 = uncolored (validation keeps every
//! color below 64).
//!
//! Everything here is plain data with `'static` references, so the generated tables live in
//! `.rodata` and nothing is parsed at run time.

/// Interrupt controller generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicVersion {
    V2,
    V3,
}

/// The physical GIC frames of the board for one GIC version (absent frames are 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GicDesc {
    pub version: GicVersion,
    /// Distributor.
    pub gicd: u64,
    /// v3: first redistributor (each is 128 KiB: RD + SGI frames).
    pub gicr: u64,
    /// v2: CPU interface.
    pub gicc: u64,
    /// v2: virtual interface control.
    pub gich: u64,
    /// v2: virtual CPU interface.
    pub gicv: u64,
}

/// How secondary cores are started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmpBoot {
    /// PSCI CPU_ON through SMC.
    PsciSmc,
    /// PSCI CPU_ON through HVC (only when Tessera itself runs under another EL2, unusual).
    PsciHvc,
    /// Spin table: write the entry address to `release_addrs[core]`, then `sev`.
    SpinTable { release_addrs: &'static [u64] },
}

/// A physical memory range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysRange {
    pub base: u64,
    pub size: u64,
}

/// A last-level cache geometry. Colors = `size / ways / 4096`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LlcDesc {
    /// Bytes.
    pub size: u64,
    pub ways: u32,
    /// Bytes per line.
    pub line: u32,
}

impl LlcDesc {
    /// Number of 4 KiB page colors (0 for a degenerate geometry).
    pub const fn colors(&self) -> u64 {
        if self.ways == 0 {
            0
        } else {
            self.size / self.ways as u64 / 4096
        }
    }
}

/// A color mask printed as a compact list: `0-7,12` (`none` for 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColorList(pub u64);

impl core::fmt::Display for ColorList {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.0 == 0 {
            return f.write_str("none");
        }
        let mut first = true;
        let mut c = 0u32;
        while c < 64 {
            if self.0 & (1u64 << c) == 0 {
                c += 1;
                continue;
            }
            let start = c;
            while c + 1 < 64 && self.0 & (1u64 << (c + 1)) != 0 {
                c += 1;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if c == start {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{c}")?;
            }
            c += 1;
        }
        Ok(())
    }
}

/// The hypervisor's own coloring (config `[hypervisor]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HypervisorDesc {
    /// Colors of its image, per-core data, stacks, page tables and heap (bit c = color c);
    /// 0 = uncolored.
    pub colors: u64,
    /// Walk every VM's stage 2 and the hypervisor's own tables at boot and check each page's
    /// color.
    pub verify_coloring: bool,
}

/// The board, from `boards/<board>/board.toml`.
#[derive(Clone, Copy, Debug)]
pub struct BoardDesc {
    pub name: &'static str,
    /// The RAM the board has (at least; the DTB may report more).
    pub ram: PhysRange,
    /// Largest number of cores the board can have; the DTB must report at least
    /// `used_cpus` of them.
    pub max_cpus: usize,
    /// Number of physical cores the config uses (highest pCPU index + 1).
    pub used_cpus: usize,
    pub smp_boot: SmpBoot,
    /// The hypervisor's console: a PL011 at this physical address.
    pub console_uart: u64,
    /// Its interrupt (GIC INTID), if board.toml names one: input then interrupts the
    /// hypervisor instead of waiting for a poll.
    pub console_irq: Option<u32>,
    /// The hypervisor's log UART (board.toml `[log]`), a PL011 no guest can reach; `None`: the
    /// defmt log stays in a RAM ring.
    pub log_uart: Option<u64>,
    /// The GIC the image was built for (`--gic`, default from board.toml); the hypervisor
    /// refuses to boot when the DTB reports another version.
    pub gic: GicDesc,
    /// RAM the hypervisor keeps for itself: `[ram.base, load address + board.toml's
    /// `hypervisor.size`)`, i.e. the firmware's DTB below the image, the image, bss and
    /// stacks (guest payloads are not in it: see [`BundleDesc`]). Validation guarantees no VM's explicit
    /// `phys` memory lies in it; the frame allocator must hand out only RAM outside it (and
    /// outside every explicit `MemDesc::phys` range).
    pub hyp_region: PhysRange,
    /// Every MMIO range the hypervisor itself may touch (console, GIC frames), for its own
    /// stage-1 map (Device-nGnRE); page-aligned.
    pub hyp_mmio: &'static [PhysRange],
    /// The CPU model the image was built for (`TESSERA_CPU` / `--cpu`, default board.toml's
    /// `[cpu] default`; empty when the board names none).
    pub cpu: &'static str,
    /// board.toml's `[llc]`: when present the hypervisor uses it instead of CLIDR/CCSIDR.
    pub llc_override: Option<LlcDesc>,
    /// The LLC geometry the build validated colors against (the override, else what `cpu`
    /// reports per board.toml's `[cpu.llc]`); `None` when neither is known (then no color is
    /// used). At boot a detected geometry different from this one is refused.
    pub llc_expected: Option<LlcDesc>,
}

/// What the hypervisor does when a guest touches what it does not own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultPolicy {
    /// Inject a synchronous external abort into the guest (what bare hardware would do).
    InjectAbort,
    /// Stop the whole VM and report it as failed.
    Stop,
}

/// What the hypervisor does when a guest asks for a reset of its VM (PSCI SYSTEM_RESET).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetPolicy {
    /// Restart the VM from its payloads.
    Restart,
    /// Stop the VM and report it as failed.
    Stop,
}

/// A guest RAM region: `size` bytes at guest-physical `ipa`. When `phys` is `Some`, the region
/// is backed by exactly that physical range (identity-like placement the config asked for);
/// otherwise the frame allocator picks frames at boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemDesc {
    pub ipa: u64,
    pub size: u64,
    pub phys: Option<u64>,
}

/// A physical device passed through to a VM: `size` bytes of MMIO at physical `pa`, mapped at
/// guest-physical `ipa` (Device-nGnRE), and its interrupts (GIC INTIDs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceDesc {
    pub name: &'static str,
    pub pa: u64,
    pub ipa: u64,
    pub size: u64,
    pub irqs: &'static [u32],
}

/// One virtual CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuDesc {
    /// Physical core it runs on.
    pub pcpu: usize,
    /// The MPIDR the guest sees (VMPIDR_EL2), Aff0 = vCPU index; bit 31 (RES1) included.
    pub mpidr: u64,
    /// Its index in `PCPUS[pcpu]`'s server list when that core is `Shared` (0 on an exclusive
    /// core).
    pub slot: usize,
}

/// One VM.
#[derive(Clone, Copy, Debug)]
pub struct VmDesc {
    /// Index in `VMS` (also used as VMID + 1).
    pub id: usize,
    pub name: &'static str,
    pub vcpus: &'static [VcpuDesc],
    pub mem: &'static [MemDesc],
    pub devices: &'static [DeviceDesc],
    /// Guest-physical base of its virtual PL011 (4 KiB, trapped and emulated).
    pub vuart_ipa: u64,
    /// The guest image: a payload of the bundle ([`BundleDesc`]).
    pub image: PayloadRef,
    /// Where the image is copied (inside `mem`).
    pub image_ipa: u64,
    /// Where vCPU 0 starts (EL1h, MMU off, x0 = `dtb_ipa`).
    pub entry_ipa: u64,
    /// The VM's device tree, generated at build time: a payload of the bundle.
    pub dtb: PayloadRef,
    /// Where the DTB is copied (inside `mem`, 8-byte aligned, not overlapping the image).
    pub dtb_ipa: u64,
    /// The initramfs (size 0: none), copied to `initrd_ipa` (below the DTB, above the image).
    pub initrd: PayloadRef,
    pub initrd_ipa: u64,
    pub on_fault: FaultPolicy,
    pub on_reset: ResetPolicy,
    /// The VM's GIC frames as the guest sees them (same version as `BOARD.gic`).
    pub vgic: GicDesc,
    /// LLC colors of its RAM and stage-2 tables (bit c = color c); 0 = uncolored (block
    /// mappings from any RAM).
    pub colors: u64,
}

/// The payload bundle of this build (crates/bundle): guest images and DTBs, loaded beside the
/// EL2 image (QEMU: `-device loader`), checked at boot before any VM is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BundleDesc {
    /// Where the bundle is loaded: RAM no VM and no allocation may use. `size` is the bundle's
    /// size rounded up to 2 MiB.
    pub region: PhysRange,
    /// The bundle's exact size in bytes.
    pub total_size: u64,
    /// The bundle's identity (SHA-256 over its header and entry table): the hypervisor
    /// refuses any other bundle.
    pub identity: [u8; 32],
}

/// One payload of the bundle: entry `entry` of its table, `size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayloadRef {
    pub entry: u16,
    pub size: u64,
}

/// Scheduling policy of one physical core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PcpuPolicy {
    /// No vCPU: the core is parked.
    Idle,
    /// Exactly one vCPU, WFI not trapped, no hypervisor timer: `(vm index, vcpu index)`.
    Exclusive { vm: usize, vcpu: usize },
    /// Several vCPUs as real-time servers (one per vCPU), scheduled by `policy`; WFI/WFE
    /// trapped; budgets enforced with the EL2 physical timer. The build-time analysis has
    /// accepted this server set.
    Shared {
        policy: SchedPolicy,
        servers: &'static [ServerDesc],
    },
}

/// How a shared core orders its eligible servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedPolicy {
    /// Earliest deadline (end of the server's current period) first.
    Edf,
    /// Fixed priority: a LOWER `ServerDesc::priority` value is a HIGHER priority.
    FixedPriority,
}

/// What a server does with budget its vCPU leaves unused (RT-THEORY.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// Unused budget is kept until the period ends, then refilled.
    Deferrable,
    /// Budget is consumed while the vCPU idles, as if an idle task ran.
    Periodic,
    /// Remaining budget is dropped as soon as the vCPU idles.
    Polling,
    /// Consumed budget comes back one period after its consumption began.
    Sporadic,
    /// Constant-bandwidth server (Linux SCHED_DEADLINE's rule).
    Cbs,
}

/// One server: vCPU `vcpu` of VM `vm` gets `budget_us` of its core every `period_us`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerDesc {
    pub vm: usize,
    pub vcpu: usize,
    pub kind: ServerKind,
    /// Microseconds (the image converts to counter ticks with CNTFRQ at boot). When the config
    /// said `budget_us = "auto"`, this is the derived budget.
    pub budget_us: u64,
    pub period_us: u64,
    /// Fixed-priority only (lower value = higher priority); 0 under EDF.
    pub priority: u32,
}

/// One physical core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcpuDesc {
    pub policy: PcpuPolicy,
    /// Record scheduler events (switch, release, deplete, replenish, wake, block, inject) in
    /// this core's trace buffer and print them when the machine stops (`[[scheduling]] trace`).
    pub trace: bool,
}

/// When a channel class's sender rings the receiver's doorbell (crates/ring `NotifyPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelNotify {
    /// After every message.
    Every,
    /// Only when the receiver asked to be woken (event index).
    Coalesced,
}

/// One priority class of a channel (class = index in [`ChannelDesc::classes`], 0 lowest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassDesc {
    /// Number of slots (a power of two).
    pub slot_count: u32,
    /// Largest message in bytes.
    pub slot_size: u32,
    pub notify: ChannelNotify,
    /// The doorbell: a purely virtual SPI (GIC INTID) of the receiver VM.
    pub irq: u32,
    /// Its GIC priority in the receiver (as written in the receiver's DT).
    pub priority: u8,
    /// The receiver's vCPU the doorbell is routed to when the VM starts or is reset (the
    /// validator made it one of the receiver's vCPUs); the guest may re-route it.
    pub vcpu: u32,
}

/// One direction of an inter-VM channel: a ring region (crates/ring) of `size` bytes that the
/// hypervisor allocates, initialises and maps at `ipa_from` in VM `from_vm` (the only sender)
/// and at `ipa_to` in VM `to_vm` (the only receiver). Its index in `CHANNELS` is the channel
/// number of the doorbell hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelDesc {
    pub name: &'static str,
    pub from_vm: usize,
    pub to_vm: usize,
    pub ipa_from: u64,
    pub ipa_to: u64,
    /// Bytes (`tessera_ring::Layout::total_size` of `classes`; a multiple of 4 KiB).
    pub size: u64,
    pub classes: &'static [ClassDesc],
    /// LLC colors of the region (the config's, else the receiver's); 0 = uncolored.
    pub colors: u64,
}
