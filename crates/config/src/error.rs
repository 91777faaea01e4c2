//! Configuration errors: one line each, naming who (VM, channel, pCPU, board), which field, and
//! the conflict.

use core::fmt;
use std::path::PathBuf;
use std::string::String;

/// What a problem is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A file as a whole (read or parse errors).
    File(PathBuf),
    /// board.toml.
    Board,
    /// The config as a whole (e.g. no VM at all, RAM demand).
    Config,
    /// One VM, by name.
    Vm(String),
    /// One channel, by name.
    Channel(String),
    /// One physical core's `[[scheduling]]` entry.
    Cpu(usize),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::File(p) => write!(f, "{}", p.display()),
            Subject::Board => f.write_str("board"),
            Subject::Config => f.write_str("config"),
            Subject::Vm(n) => write!(f, "vm `{n}`"),
            Subject::Channel(n) => write!(f, "channel `{n}`"),
            Subject::Cpu(c) => write!(f, "scheduling cpu {c}"),
        }
    }
}

/// The kind of a problem (what tests and tools match on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A file could not be read.
    Io,
    /// TOML syntax, a wrong type, a missing or unknown field.
    Parse,
    /// A board.toml fact is inconsistent.
    Board,
    /// The config has no VM.
    NoVms,
    /// Two VMs (or channels) share a name.
    DuplicateName,
    /// A region of size zero.
    ZeroSize,
    /// A region not 4 KiB aligned.
    Unaligned,
    /// Explicit physical ranges of two VMs overlap.
    PhysOverlap,
    /// An explicit physical range overlaps the hypervisor region.
    HypOverlap,
    /// An explicit physical range lies (partly) outside the board's RAM.
    OutsideRam,
    /// Two guest-physical windows of one VM overlap (RAM, vUART, vGIC, devices).
    IpaOverlap,
    /// A guest-physical window overflows or ends above the IPA space the cores translate.
    IpaRange,
    /// A device is passed through to two VMs.
    DeviceTwice,
    /// A device the board does not list.
    UnknownDevice,
    /// Several vCPUs on a core that is not `edf` / `fixed-priority`.
    PcpuTwice,
    /// A pCPU index not below the board's `max_cpus`.
    PcpuRange,
    /// More vCPUs than the board has cores, or none.
    VcpuCount,
    /// The guest image is missing.
    MissingImage,
    /// The guest image cannot be parsed.
    BadImage,
    /// The guest image (or its entry) does not fit the VM's RAM below the DTB.
    ImageFit,
    /// All VMs together want more RAM than the board has outside the hypervisor region.
    RamDemand,
    /// A feature parsed but not implemented yet.
    NotSupported,
    /// A scheduling entry is inconsistent with the VMs (servers, priorities, budgets).
    Scheduling,
    /// A VM's declared `tasks` are malformed.
    Tasks,
    /// The schedulability analysis rejects a core's servers or a VM's tasks.
    Unschedulable,
    /// An LLC color problem (range, geometry, sharing with an isolated VM, a DMA device).
    Colors,
    /// Not enough free pages of a color for what uses it.
    ColorsExhausted,
    /// A channel problem (unknown end, too few ends, ...).
    Channel,
    /// The generated guest DTB is invalid or too large.
    Dtb,
    /// The hypervisor's own image, bss and stacks do not fit the hypervisor region.
    HypTooSmall,
    /// The payload bundle (guest images, DTBs) does not fit the RAM left at the top of the
    /// board's RAM, or an explicit VM range lies where it is loaded.
    Payloads,
}

/// One configuration problem. `Display` is one line: `<subject>: `<field>`: <detail>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub kind: ErrorKind,
    pub subject: Subject,
    /// The field, as a TOML path (`memory[0].phys`, `cpus`, `devices`); empty when the
    /// subject is a whole file.
    pub field: String,
    pub detail: String,
}

impl ConfigError {
    pub fn new(
        kind: ErrorKind,
        subject: Subject,
        field: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        ConfigError {
            kind,
            subject,
            field: field.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn vm(
        kind: ErrorKind,
        vm: &str,
        field: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(kind, Subject::Vm(vm.into()), field, detail)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.subject, self.detail)
        } else {
            write!(f, "{}: `{}`: {}", self.subject, self.field, self.detail)
        }
    }
}

impl std::error::Error for ConfigError {}

/// `[base, base + size)` as `0x…..0x…` for messages.
pub(crate) fn range(base: u64, size: u64) -> String {
    std::format!("{:#x}..{:#x}", base, base.saturating_add(size))
}
