//! The TOML schema of `boards/<board>/board.toml` and `boards/<board>/configs/<name>.toml`.
//!
//! Every table denies unknown fields, so a misspelt key is an error, not a silent default.
//! Addresses and sizes are integers (TOML allows `0x4000_0000`). **Interrupt numbers are GIC
//! INTIDs everywhere** (SGI 0–15, PPI 16–31, SPI 32–1019): SPI *n* of a device tree is INTID
//! *n* + 32, so QEMU virt's PL011 (DT `<0 1 4>`) is INTID 33.

use std::collections::BTreeMap;
use std::string::String;
use std::vec::Vec;

use serde::Deserialize;

// ---------------------------------------------------------------------------------------------
// board.toml

/// `boards/<board>/board.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardFile {
    /// Board name (shown in reports and banners).
    pub name: String,
    /// Largest number of cores the board can have.
    pub max_cpus: usize,
    /// The RAM the board has.
    pub ram: RangeSpec,
    /// Where the EL2 image is loaded and how much RAM the hypervisor keeps for itself.
    pub hypervisor: HypervisorSpec,
    /// How secondary cores start.
    pub smp: SmpSpec,
    /// The hypervisor's console.
    pub console: ConsoleSpec,
    /// A second UART for the hypervisor's binary log (defmt frames), if the board has one.
    #[serde(default)]
    pub log: Option<LogSpec>,
    /// The interrupt controller(s) the board can have.
    pub gic: GicSpec,
    /// Optional last-level-cache geometry **override**: the hypervisor uses it instead of
    /// what CLIDR/CCSIDR report, and the build validates colors against it.
    #[serde(default)]
    pub llc: Option<LlcSpec>,
    /// The CPU models the board may run with and the LLC each reports (what the build
    /// validates colors against when there is no `[llc]` override).
    #[serde(default)]
    pub cpu: Option<CpuSpec>,
    /// Which cores share which last-level cache (default: one cluster of every core). Colors
    /// are a per-cluster resource.
    #[serde(default)]
    pub llc_clusters: Vec<LlcClusterSpec>,
    /// Physical devices that may be passed through to a VM.
    #[serde(default)]
    pub devices: Vec<BoardDevice>,
    /// Hypervisor costs the schedulability analysis charges (optional table).
    #[serde(default)]
    pub scheduling: BoardScheduling,
}

/// `[scheduling]` of board.toml: the EL2 costs the analysis of shared cores accounts for.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BoardScheduling {
    /// EL2 cost charged per server activation (switch + timer), in µs: it inflates each
    /// server's budget in the core-level test. Default 10.
    #[serde(default = "default_overhead_us")]
    pub overhead_us: u64,
    /// Longest non-preemptible EL2 section, in µs: the blocking term B of every server.
    /// Default 20.
    #[serde(default = "default_max_el2_section_us")]
    pub max_el2_section_us: u64,
}

impl Default for BoardScheduling {
    fn default() -> Self {
        BoardScheduling {
            overhead_us: default_overhead_us(),
            max_el2_section_us: default_max_el2_section_us(),
        }
    }
}

fn default_overhead_us() -> u64 {
    10
}

fn default_max_el2_section_us() -> u64 {
    20
}

/// A physical range `{ base, size }`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RangeSpec {
    pub base: u64,
    pub size: u64,
}

/// `[hypervisor]`: the EL2 image is linked and loaded at `load_address` (QEMU `-kernel` puts a
/// raw arm64 Image 2 MiB into RAM). The hypervisor region is
/// `[ram.base, load_address + size)`: the part below `load_address` holds the firmware's DTB,
/// and `size` bytes from `load_address` hold the image, its bss and its per-core stacks (guest
/// payloads live in the payload bundle at the top of RAM instead). No VM memory may lie in it.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HypervisorSpec {
    pub load_address: u64,
    pub size: u64,
}

/// `[smp]`: `method = "psci-smc" | "psci-hvc" | "spin-table"`; spin tables need one release
/// address per core (`release_addrs`, indexed by core).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmpSpec {
    pub method: SmpMethod,
    #[serde(default)]
    pub release_addrs: Vec<u64>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SmpMethod {
    PsciSmc,
    PsciHvc,
    SpinTable,
}

/// `[console]`: a PL011 at physical `uart`; `irq` is its GIC INTID (informational: the
/// hypervisor polls its console).
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSpec {
    pub uart: u64,
    #[serde(default)]
    pub irq: Option<u32>,
}

/// `[log]`: a PL011 at physical `uart` that only the hypervisor uses, for its defmt log frames
/// (built with feature `defmt-uart`; QEMU `virt` creates its second UART, 0x0904_0000, when
/// given a second `-serial`). It is mapped at EL2 only and may not be passed through.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSpec {
    pub uart: u64,
}

/// `[gic]`: `default = 2 | 3` plus the frames of each version the board can have.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GicSpec {
    pub default: u8,
    #[serde(default)]
    pub v2: Option<GicV2Spec>,
    #[serde(default)]
    pub v3: Option<GicV3Spec>,
}

/// `[gic.v2]`: distributor, CPU interface, virtual interface control, virtual CPU interface.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GicV2Spec {
    pub gicd: u64,
    pub gicc: u64,
    pub gich: u64,
    pub gicv: u64,
}

/// `[gic.v3]`: distributor and first redistributor (128 KiB per core).
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GicV3Spec {
    pub gicd: u64,
    pub gicr: u64,
}

/// A last-level cache: `size` in bytes, associativity `ways`, `line` bytes per line (default
/// 64). Colors = size / ways / 4096 (one way's worth of 4 KiB pages).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LlcSpec {
    pub size: u64,
    pub ways: u32,
    #[serde(default = "default_llc_line")]
    pub line: u32,
}

fn default_llc_line() -> u32 {
    64
}

impl LlcSpec {
    /// Number of page colors (`size / ways / 4096`), 0 if the geometry is degenerate.
    pub fn colors(&self) -> u64 {
        self.size
            .checked_div(u64::from(self.ways))
            .map_or(0, |w| w / crate::PAGE_SIZE)
    }

    /// As a descriptor.
    pub fn desc(&self) -> crate::desc::LlcDesc {
        crate::desc::LlcDesc {
            size: self.size,
            ways: self.ways,
            line: self.line,
        }
    }
}

/// `[cpu]`: `default` = the CPU model a build assumes when `TESSERA_CPU` (xtask `--cpu`) is
/// not set; `[cpu.llc]` = per model name, the LLC that model reports:
/// `[cpu.llc] "cortex-a53" = { size = 0x10_0000, ways = 16 }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuSpec {
    pub default: String,
    #[serde(default)]
    pub llc: BTreeMap<String, LlcSpec>,
}

/// `[[llc_clusters]]`: physical cores `cores` share one last-level cache.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlcClusterSpec {
    pub cores: Vec<usize>,
}

/// `[[devices]]` of a board: a device that may be passed through.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardDevice {
    /// Name VMs use in their `devices` list (also the guest DT node name).
    pub name: String,
    /// Device-tree `compatible` strings, most specific first.
    pub compatible: Vec<String>,
    /// Physical MMIO base and size (page-aligned).
    pub base: u64,
    pub size: u64,
    /// Its interrupts as GIC INTIDs (SPI n of a DT = INTID n + 32).
    #[serde(default)]
    pub irqs: Vec<u32>,
    /// The device masters DMA. Tessera drives no IOMMU, so such a device sees physical
    /// addresses: it may not belong to a colored VM (whose memory is scattered). Default false.
    #[serde(default)]
    pub dma: bool,
    /// Extra properties for the guest DT node, e.g. `{ "gpio-controller" = true,
    /// "#gpio-cells" = 2 }`: `true` → empty property, integer → u32 cell, string, or arrays of
    /// those.
    #[serde(default)]
    pub dt: BTreeMap<String, DtValue>,
}

/// A value of an extra DT property.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum DtValue {
    Flag(bool),
    U32(u32),
    Str(String),
    U32s(Vec<u32>),
    Strs(Vec<String>),
}

// ---------------------------------------------------------------------------------------------
// configs/<name>.toml

/// `boards/<board>/configs/<name>.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The VMs, in VM-id order.
    #[serde(default)]
    pub vms: Vec<VmSpec>,
    /// Per-pCPU scheduling; a pCPU not listed runs its one vCPU `exclusive`ly (or idles).
    #[serde(default)]
    pub scheduling: Vec<SchedSpec>,
    /// Inter-VM channels (shared memory rings).
    #[serde(default)]
    pub channels: Vec<ChannelSpec>,
    /// The hypervisor's own coloring and checks.
    #[serde(default)]
    pub hypervisor: HypervisorConfig,
}

/// `[hypervisor]` of a config.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HypervisorConfig {
    /// LLC colors of the hypervisor's own memory (image, per-core data, stacks, page tables,
    /// heap). Absent: uncolored.
    #[serde(default)]
    pub colors: Option<Vec<u32>>,
    /// At boot, walk every VM's stage 2 and the hypervisor's own tables and check every page's
    /// color (prints `coloring verified: ...` or halts). Default false.
    #[serde(default)]
    pub verify_coloring: bool,
}

/// `[[vms]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmSpec {
    pub name: String,
    /// Physical cores: vCPU i runs on `cpus[i]`.
    pub cpus: Vec<usize>,
    /// Guest RAM regions; the first one holds the image and, at its top, the DTB.
    pub memory: Vec<MemSpec>,
    /// A guest name (`$TESSERA_GUEST_DIR/<name>.bin`) or a path relative to the repository
    /// root (contains `/` or ends in `.bin`/`.elf`/`.img`); `TESSERA_IMAGE_<VM>` overrides it.
    pub image: String,
    /// `/chosen/bootargs` of the guest DT (a Linux guest's kernel command line);
    /// `TESSERA_BOOTARGS_<VM>` (`cargo xtask run --cmdline VM=...`) overrides it.
    #[serde(default)]
    pub bootargs: String,
    /// An initramfs: a path relative to the repository root or absolute, or a guest name
    /// (`linux`: `$TESSERA_GUEST_DIR/linux.cpio`, which the guest's build makes); loaded at the top of
    /// the first RAM region below the DTB and described in `/chosen` (`linux,initrd-start`,
    /// `linux,initrd-end`); `TESSERA_INITRD_<VM>` (`--initrd VM=PATH`) overrides it.
    #[serde(default)]
    pub initrd: Option<String>,
    /// Names of board devices passed through (mapped at IPA = PA).
    #[serde(default)]
    pub devices: Vec<String>,
    /// What to do when the guest touches what it does not own.
    #[serde(default)]
    pub on_fault: OnFault,
    /// What a reset the guest asks for (PSCI SYSTEM_RESET: Linux's `reboot`, or its panic with
    /// `panic=-1`) does: restart the VM from its payloads (default), or stop it.
    #[serde(default)]
    pub on_reset: OnReset,
    /// LLC colors of the VM's memory (indices < the LLC's color count): its RAM and stage-2
    /// tables come only from pages of these colors. Absent: uncolored.
    #[serde(default)]
    pub colors: Option<Vec<u32>>,
    /// No other VM may share a color with this one within its LLC cluster (default: true for
    /// a colored VM, false for an uncolored one).
    #[serde(default)]
    pub isolated: Option<bool>,
    /// How the guest schedules its `tasks` (default `edf`).
    #[serde(default)]
    pub task_policy: Option<TaskPolicy>,
    /// The guest's declared real-time task set, checked against its server(s) with the
    /// periodic resource model (and used by `budget_us = "auto"`).
    #[serde(default)]
    pub tasks: Vec<TaskSpec>,
}

/// `task_policy`: the guest's own scheduler.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TaskPolicy {
    Edf,
    FixedPriority,
}

impl TaskPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskPolicy::Edf => "edf",
            TaskPolicy::FixedPriority => "fixed-priority",
        }
    }
}

/// One periodic guest task: `wcet_us` of work every `period_us`, due `deadline_us` after its
/// release (default: the period). Times in microseconds.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub name: String,
    pub period_us: u64,
    pub wcet_us: u64,
    #[serde(default)]
    pub deadline_us: Option<u64>,
    /// `task_policy = "fixed-priority"` only: lower value = higher priority.
    #[serde(default)]
    pub priority: Option<u32>,
    /// The vCPU that runs it (default 0).
    #[serde(default)]
    pub vcpu: usize,
}

/// `memory = [{ ipa, size, phys }]`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemSpec {
    /// Guest-physical base; default 0x4000_0000 (QEMU virt's RAM base).
    #[serde(default = "default_ipa")]
    pub ipa: u64,
    pub size: u64,
    /// Explicit physical backing; absent: the frame allocator chooses at boot.
    #[serde(default)]
    pub phys: Option<u64>,
}

fn default_ipa() -> u64 {
    crate::DEFAULT_RAM_IPA
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum OnFault {
    /// Inject a synchronous external abort (what bare hardware would do).
    #[default]
    Inject,
    /// Stop the VM (exit code 128).
    Stop,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum OnReset {
    /// Restart the VM: RAM wiped, image, initramfs and DTB reloaded, vCPU 0 at the entry.
    #[default]
    Restart,
    /// Stop the VM (exit code 128), as `on_fault = "stop"` does.
    Stop,
}

/// `[[scheduling]]`: the policy of physical core `cpu`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedSpec {
    pub cpu: usize,
    pub policy: SchedPolicy,
    /// Record scheduler events of this core in its trace buffer (shared cores only).
    #[serde(default)]
    pub trace: bool,
    /// One server per vCPU of an `edf` / `fixed-priority` core.
    #[serde(default)]
    pub servers: Vec<ServerSpec>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SchedPolicy {
    Exclusive,
    Edf,
    FixedPriority,
}

impl SchedPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            SchedPolicy::Exclusive => "exclusive",
            SchedPolicy::Edf => "edf",
            SchedPolicy::FixedPriority => "fixed-priority",
        }
    }
}

/// One server of a shared core: vCPU `vcpu` of VM `vm` gets `budget_us` every `period_us`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    pub vm: String,
    #[serde(default)]
    pub vcpu: usize,
    pub kind: ServerKind,
    pub budget_us: BudgetSpec,
    pub period_us: u64,
    /// `fixed-priority` cores only: lower value = higher priority.
    #[serde(default)]
    pub priority: Option<u32>,
}

/// `budget_us`: microseconds, or `"auto"` (the least budget that keeps the VM's declared
/// tasks on this vCPU schedulable at `period_us`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum BudgetSpec {
    Us(u64),
    /// Only `"auto"` is valid; anything else is reported by validation.
    Word(String),
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ServerKind {
    Deferrable,
    Periodic,
    Polling,
    Sporadic,
    Cbs,
}

impl ServerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::Deferrable => "deferrable",
            ServerKind::Periodic => "periodic",
            ServerKind::Polling => "polling",
            ServerKind::Sporadic => "sporadic",
            ServerKind::Cbs => "cbs",
        }
    }
}

/// `[[channels]]`: one direction of an inter-VM channel (a two-way link is two channels): a
/// ring region (crates/ring) written by `from` and read by `to`, mapped at guest-physical
/// `ipa_from` in the sender and `ipa_to` in the receiver. Its size follows from `classes`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSpec {
    pub name: String,
    /// The sending VM.
    pub from: String,
    /// The receiving VM.
    pub to: String,
    /// Guest-physical base of the region in the sender (page-aligned).
    pub ipa_from: u64,
    /// Guest-physical base of the region in the receiver (page-aligned).
    pub ipa_to: u64,
    /// The priority classes, 1 to 8; index = class = 802.1p priority (0 lowest).
    pub classes: Vec<ClassSpec>,
    /// LLC colors of the shared memory; default: the receiver's colors (an uncolored
    /// receiver: uncolored).
    #[serde(default)]
    pub colors: Option<Vec<u32>>,
}

/// One priority class of a channel.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassSpec {
    /// Number of slots (a power of two, at most 65536).
    pub slots: u32,
    /// Largest message in bytes (at least 1).
    pub slot_size: u32,
    /// When the receiver is interrupted.
    pub notify: NotifySpec,
    /// The doorbell: a virtual SPI (GIC INTID) of the receiver, owned by no device.
    pub irq: u32,
    /// Its GIC priority in the receiver (0 = most urgent .. 255), written in the receiver's
    /// DT; default 0xa0.
    #[serde(default = "default_class_priority")]
    pub priority: u32,
    /// The receiver's vCPU (index in its `cpus`) the doorbell is routed to at VM start and
    /// reset; default 0. The guest may re-route it afterwards.
    #[serde(default)]
    pub vcpu: u32,
}

fn default_class_priority() -> u32 {
    0xa0
}

/// `notify = "every" | "coalesced"`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum NotifySpec {
    /// A doorbell after every message.
    Every,
    /// A doorbell only when the receiver asked to be woken (event index).
    Coalesced,
}

impl NotifySpec {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifySpec::Every => "every",
            NotifySpec::Coalesced => "coalesced",
        }
    }
}
