//! What the device tree tells the guest, copied out of the DTB once at boot ([`BootInfo`]).

use core::fmt;

use fdt::nodes::Node;
use fdt::parsing::{unaligned::UnalignedParser, NoPanic};
use fdt::properties::Compatible;
use fdt::{Fdt, FdtError};
use heapless::{String, Vec};

use crate::boot::MAX_CPUS;
use crate::smccc::Conduit;

/// The fdt parser mode: byte-aligned input, errors instead of panics.
pub(crate) type Mode<'a> = (UnalignedParser<'a>, NoPanic);
pub(crate) type Dt<'a> = Fdt<'a, Mode<'a>>;
pub(crate) type DtNode<'a> = Node<'a, Mode<'a>>;

/// Largest DTB the runtime accepts (QEMU's `virt` DTB is 1 MiB, padded).
const DTB_MAX: usize = 4 << 20;
/// The FDT header magic.
const FDT_MAGIC: u32 = 0xd00d_feed;
/// Console address assumed when the DTB names none (QEMU `virt` and Tessera VMs).
pub const DEFAULT_CONSOLE: usize = 0x0900_0000;

/// Most RAM regions recorded.
pub const MAX_RAM_REGIONS: usize = 8;
/// Longest bootargs recorded (longer ones are cut at a word boundary).
pub const BOOTARGS_MAX: usize = 1024;

/// A range of physical (guest-physical under Tessera) addresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemRegion {
    /// First address.
    pub base: usize,
    /// Length in bytes.
    pub size: usize,
}

impl MemRegion {
    /// A region from its base and size.
    pub const fn new(base: usize, size: usize) -> Self {
        Self { base, size }
    }

    /// One past the last address (saturating).
    pub const fn end(&self) -> usize {
        self.base.saturating_add(self.size)
    }

    /// Whether `addr` lies inside.
    pub const fn contains(&self, addr: usize) -> bool {
        addr >= self.base && addr < self.end()
    }

    /// Whether the two regions share at least one byte.
    pub const fn overlaps(&self, other: &MemRegion) -> bool {
        self.size != 0 && other.size != 0 && self.base < other.end() && other.base < self.end()
    }
}

impl fmt::Display for MemRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}-{:#x}", self.base, self.end())
    }
}

/// What the runtime learnt at boot, mostly from the device tree.
#[derive(Debug)]
pub struct BootInfo {
    /// Where the DTB lies (`size` = its `totalsize`; 0 if there was none).
    pub dtb: MemRegion,
    /// Why the DTB could not be (fully) read, if so. The other fields then hold what was read.
    pub dt_error: Option<FdtError>,
    /// Base of the console PL011: `/chosen/stdout-path` if it names a PL011, else the first
    /// `arm,pl011` node, else `None` (the console then uses [`DEFAULT_CONSOLE`]).
    pub console: Option<usize>,
    /// RAM regions (`device_type = "memory"` nodes), in DTB order.
    pub ram: Vec<MemRegion, MAX_RAM_REGIONS>,
    /// MPIDR affinity value (`reg`) of each CPU of `/cpus`, in DTB order: the index into this
    /// list is the runtime's CPU index. Only the first [`MAX_CPUS`] are kept.
    pub cpus: Vec<u64, MAX_CPUS>,
    /// Number of `cpu` nodes in the DTB (may exceed `cpus.len()`).
    pub cpus_in_dt: usize,
    /// Index in `cpus` of the CPU that booted (0 if its MPIDR is not listed).
    pub boot_cpu: usize,
    /// PSCI conduit from `/psci` `method`, if there is a PSCI node.
    pub psci: Option<Conduit>,
    /// `/chosen/bootargs` (empty if absent).
    pub bootargs: String<BOOTARGS_MAX>,
    /// Whether `/hypervisor` is compatible with `"tessera,hypervisor"`.
    pub tessera: bool,
    /// The loaded image including BSS and stacks (`__image_start..__image_end`).
    pub image: MemRegion,
    /// The interrupt controller (the first GICv2 or GICv3 node), if any.
    pub gic: Option<GicDesc>,
    /// INTID of the virtual timer (`/timer` `interrupts`, third entry), if the DT says.
    pub virt_timer_intid: Option<u32>,
}

/// Most GICv3 redistributor regions recorded.
pub const MAX_REDIST_REGIONS: usize = 4;

/// GIC architecture version of the interrupt controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicVersion {
    /// GICv2 (`arm,cortex-a15-gic`, `arm,gic-400`, ...): memory-mapped CPU interface.
    V2,
    /// GICv3 (`arm,gic-v3`): redistributors, system-register CPU interface.
    V3,
}

/// The interrupt controller as the device tree describes it.
#[derive(Clone, Debug)]
pub struct GicDesc {
    /// v2 or v3.
    pub version: GicVersion,
    /// Distributor (GICD) registers.
    pub dist: MemRegion,
    /// GICv3: the redistributor regions (GICR); empty for v2.
    pub redist: Vec<MemRegion, MAX_REDIST_REGIONS>,
    /// GICv2: the CPU interface (GICC); empty for v3.
    pub cpu_if: MemRegion,
    /// `#interrupt-cells` of the controller (3 for the GIC bindings).
    pub interrupt_cells: usize,
}

/// Compatible strings of GICv2-style controllers (memory-mapped CPU interface).
const GICV2_COMPATIBLE: [&str; 4] = [
    "arm,cortex-a15-gic",
    "arm,gic-400",
    "arm,cortex-a9-gic",
    "arm,cortex-a7-gic",
];

/// Trigger of an interrupt, from the third cell of a GIC interrupt specifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Edge-triggered (flags 1 or 2).
    Edge,
    /// Level-sensitive (flags 4 or 8, or unspecified).
    Level,
}

/// An interrupt of a device node, decoded from a GIC specifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtIrq {
    /// GIC INTID (SPI n = 32 + n, PPI n = 16 + n).
    pub intid: u32,
    /// Edge or level.
    pub trigger: Trigger,
}

/// A device node found by compatible string ([`BootInfo::device`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Device {
    /// Its first `reg` entry.
    pub reg: MemRegion,
    /// Its first interrupt, if it has one.
    pub irq: Option<DtIrq>,
}

impl BootInfo {
    /// Reads the DTB at `dtb` (0 = none). Never fails: problems end up in `dt_error`.
    pub(crate) fn from_dtb(dtb: usize) -> Self {
        let mut info = BootInfo {
            dtb: MemRegion::new(dtb, 0),
            dt_error: None,
            console: None,
            ram: Vec::new(),
            cpus: Vec::new(),
            cpus_in_dt: 0,
            boot_cpu: 0,
            psci: None,
            bootargs: String::new(),
            tessera: false,
            image: image_region(),
            gic: None,
            virt_timer_intid: None,
        };
        match open(dtb) {
            Ok((fdt, size)) => {
                info.dtb.size = size;
                if let Err(e) = info.read(&fdt) {
                    info.dt_error = Some(e);
                }
            }
            Err(e) => info.dt_error = Some(e),
        }
        info
    }

    fn read(&mut self, fdt: &Dt<'static>) -> Result<(), FdtError> {
        let root = fdt.root()?;

        // Nodes of interest found in one pass over the tree.
        let mut first_pl011 = None;
        for entry in root.all_nodes()? {
            let (_, node) = entry?;
            if let Some(prop) = node.raw_property("device_type")? {
                if prop.value.strip_suffix(b"\0") == Some(b"memory") {
                    for r in node.reg()?.into_iter().flat_map(|r| r.iter::<u64, u64>()) {
                        let r = r.map_err(|_| FdtError::CollectCellsError)?;
                        let region = MemRegion::new(r.address as usize, r.len as usize);
                        if region.size != 0 {
                            // Regions past MAX_RAM_REGIONS are ignored.
                            let _ = self.ram.push(region);
                        }
                    }
                }
            }
            if first_pl011.is_none() && is_compatible(&node, "arm,pl011")? {
                first_pl011 = first_reg(&node)?;
            }
            if self.gic.is_none() {
                self.gic = gic_desc(&node)?;
            }
        }

        if let Some(node) = root.find_node("/timer")? {
            let cells = self.gic.as_ref().map_or(3, |g| g.interrupt_cells);
            self.virt_timer_intid = interrupts(&node, cells)?.nth(2).map(|i| i.intid);
        }

        let chosen = root.chosen()?;
        if let Some(stdout) = chosen.stdout()? {
            if is_compatible(&stdout.node, "arm,pl011")? {
                self.console = first_reg(&stdout.node)?;
            }
        }
        if self.console.is_none() {
            self.console = first_pl011;
        }

        if let Some(node) = root.find_node("/chosen")? {
            if let Some(prop) = node.raw_property("bootargs")? {
                let text = prop.value.split(|&b| b == 0).next().unwrap_or_default();
                let text =
                    core::str::from_utf8(text).map_err(|_| FdtError::InvalidPropertyValue)?;
                for (i, word) in text.split_ascii_whitespace().enumerate() {
                    let sep = if i == 0 { "" } else { " " };
                    if self.bootargs.len() + sep.len() + word.len() > BOOTARGS_MAX {
                        break;
                    }
                    // Cannot fail: the length was checked above.
                    let _ = self.bootargs.push_str(sep);
                    let _ = self.bootargs.push_str(word);
                }
            }
        }

        let psci = match root.find_node("/psci")? {
            Some(node) => Some(node),
            None => root
                .all_compatible(&["arm,psci-1.0", "arm,psci-0.2", "arm,psci"])?
                .next()
                .transpose()?,
        };
        if let Some(node) = psci {
            if let Some(method) = node.raw_property("method")? {
                self.psci = match method.value.strip_suffix(b"\0").unwrap_or(method.value) {
                    b"smc" => Some(Conduit::Smc),
                    b"hvc" => Some(Conduit::Hvc),
                    _ => None,
                };
            }
        }

        if let Some(node) = root.find_node("/hypervisor")? {
            self.tessera = is_compatible(&node, "tessera,hypervisor")?;
        }

        let own = crate::cpu::mpidr();
        for cpu in root.cpus()?.iter()? {
            let cpu = cpu?;
            let id = cpu
                .reg::<u64>()?
                .first()
                .map_err(|_| FdtError::CollectCellsError)?;
            if id == own {
                self.boot_cpu = self.cpus.len();
            }
            // CPUs past MAX_CPUS are counted but not kept.
            let _ = self.cpus.push(id);
            self.cpus_in_dt += 1;
        }
        Ok(())
    }

    /// Total RAM in bytes.
    pub fn ram_size(&self) -> usize {
        self.ram.iter().map(|r| r.size).sum()
    }

    /// The kernel command line (`/chosen/bootargs`).
    pub fn bootargs(&self) -> &str {
        self.bootargs.as_str()
    }

    /// The value of the first `key=value` word of the bootargs with this key.
    pub fn bootarg(&self, key: &str) -> Option<&str> {
        self.bootargs
            .split_ascii_whitespace()
            .find_map(|w| w.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))
    }

    /// The values of all `key=value` words of the bootargs with this key, in order.
    pub fn bootarg_values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.bootargs
            .split_ascii_whitespace()
            .filter_map(move |w| w.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))
    }

    /// The first device node compatible with `compatible`: its first `reg` region and its first
    /// interrupt (decoded as a GIC specifier). `None` if there is no such node (or no DTB).
    pub fn device(&self, compatible: &str) -> Option<Device> {
        self.devices(compatible).next()
    }

    /// Every device node compatible with `compatible`, in DTB order (see [`BootInfo::device`]).
    /// Nodes whose properties cannot be read are skipped.
    pub fn devices<'a>(&'a self, compatible: &'a str) -> impl Iterator<Item = Device> + 'a {
        let cells = self.gic.as_ref().map_or(3, |g| g.interrupt_cells);
        let fdt = open(self.dtb.base).ok().map(|(fdt, _)| fdt);
        fdt.into_iter()
            .filter_map(|fdt| fdt.root().ok())
            .filter_map(|root| root.all_nodes().ok())
            .flatten()
            .filter_map(Result::ok)
            .filter_map(move |(_, node)| {
                if !is_compatible(&node, compatible).ok()? {
                    return None;
                }
                let reg = regs(&node).ok()?.next().unwrap_or_default();
                let irq = interrupts(&node, cells).ok()?.next();
                Some(Device { reg, irq })
            })
    }

    /// The number of CPUs the runtime can run (those of the DTB, up to [`MAX_CPUS`]).
    pub fn cpu_count(&self) -> usize {
        self.cpus.len()
    }

    /// A region of `len` bytes of RAM, 64 KiB aligned, that holds neither the image (with its
    /// stacks) nor the DTB: free for the guest to use. `None` if there is no such room.
    pub fn scratch(&self, len: usize) -> Option<MemRegion> {
        const ALIGN: usize = 64 << 10;
        let busy = [self.image, self.dtb];
        for ram in &self.ram {
            let mut base = ram.base.checked_next_multiple_of(ALIGN)?;
            // Each step moves past one busy region, so two steps per busy region suffice.
            for _ in 0..=2 * busy.len() {
                let candidate = MemRegion::new(base, len);
                if candidate.end() > ram.end() || base.checked_add(len).is_none() {
                    break;
                }
                match busy.iter().find(|b| b.overlaps(&candidate)) {
                    None => return Some(candidate),
                    Some(b) => base = b.end().checked_next_multiple_of(ALIGN)?,
                }
            }
        }
        None
    }
}

/// Where QEMU `virt` puts the DTB for an ELF `-kernel` linked at least 1 MiB above the RAM
/// base: at the RAM base, with `x0 = 0`.
const QEMU_ELF_DTB: usize = 0x4000_0000;

/// The DTB address to use when the loader passed none (`x0 = 0`): QEMU's ELF-boot location if
/// a DTB is there (probed, so an unmapped address does not kill the guest), else 0.
pub(crate) fn fallback_dtb() -> usize {
    match crate::exception::probe_read(QEMU_ELF_DTB) {
        Ok(magic) if u32::from_be(magic) == FDT_MAGIC => QEMU_ELF_DTB,
        _ => 0,
    }
}

/// Parses a number as bootargs write it: decimal, or hexadecimal after `0x`; `_` separators
/// allowed (`0x4000_0000`).
pub fn parse_u64(s: &str) -> Option<u64> {
    let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (s, 10),
    };
    let mut value: u64 = 0;
    let mut any = false;
    for c in digits.chars().filter(|&c| c != '_') {
        let d = c.to_digit(radix)?;
        value = value
            .checked_mul(u64::from(radix))?
            .checked_add(u64::from(d))?;
        any = true;
    }
    any.then_some(value)
}

/// Parses the header at `dtb` and returns the tree and its size.
pub(crate) fn open(dtb: usize) -> Result<(Dt<'static>, usize), FdtError> {
    if dtb == 0 || !dtb.is_multiple_of(4) {
        return Err(FdtError::BadPtr);
    }
    let header = dtb as *const u32;
    // SAFETY: the loader passes the DTB's address in x0 (Linux arm64 boot protocol); it lies in
    // RAM, which the identity map covers, and is at least 8 bytes long (an FDT header is 40).
    // The address is 4-byte aligned (checked above). Reading cannot break memory safety.
    let (magic, size) = unsafe { (header.read_volatile(), header.add(1).read_volatile()) };
    let size = u32::from_be(size) as usize;
    if u32::from_be(magic) != FDT_MAGIC {
        return Err(FdtError::BadMagic);
    }
    if !(40..=DTB_MAX).contains(&size) {
        return Err(FdtError::SliceTooSmall);
    }
    // SAFETY: a valid FDT header says the blob is `size` bytes long (bounded above); the loader
    // put it in RAM that nothing in this program writes (the runtime never hands out the DTB's
    // range: see `BootInfo::scratch`), so a shared `'static` slice over it is sound.
    let bytes = unsafe { core::slice::from_raw_parts(dtb as *const u8, size) };
    if !blocks_in_bounds(bytes) {
        return Err(FdtError::SliceTooSmall);
    }
    Ok((Fdt::new_unaligned_fallible(bytes)?, size))
}

/// Whether the header's structure, strings and reservation blocks lie inside the blob,
/// computed in 64 bits: `fdt` 0.2.0-alpha3 adds offset + size in `u32` and panics when that
/// wraps (found by the `dtb` fuzz target, regression input `fuzz/corpus/dtb/regress-header-wrap`).
fn blocks_in_bounds(blob: &[u8]) -> bool {
    // Big-endian header words: off_dt_struct (2), off_dt_strings (3), off_mem_rsvmap (4),
    // size_dt_strings (8), size_dt_struct (9).
    let word = |i: usize| {
        blob.get(4 * i..4 * i + 4)
            .map(|b| u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
    };
    let len = blob.len() as u64;
    match (word(2), word(3), word(4), word(8), word(9)) {
        (Some(st_off), Some(str_off), Some(rsv), Some(str_size), Some(st_size)) => {
            st_off + st_size <= len && str_off + str_size <= len && rsv <= len
        }
        _ => false,
    }
}

pub(crate) fn is_compatible(node: &DtNode<'static>, with: &str) -> Result<bool, FdtError> {
    Ok(node
        .property::<Compatible>()?
        .is_some_and(|c| c.compatible_with(with)))
}

/// The `reg` entries of a node (none if it has no `reg`; entries that do not parse are skipped).
pub(crate) fn regs(node: &DtNode<'static>) -> Result<impl Iterator<Item = MemRegion>, FdtError> {
    Ok(node
        .reg()?
        .into_iter()
        .flat_map(|r| r.iter::<u64, u64>())
        .filter_map(Result::ok)
        .map(|r| MemRegion::new(r.address as usize, r.len as usize)))
}

/// A big-endian `u32` cell property value, if present and well-formed.
pub(crate) fn u32_property(node: &DtNode<'static>, name: &str) -> Result<Option<u32>, FdtError> {
    Ok(node
        .raw_property(name)?
        .and_then(|p| p.value.try_into().ok())
        .map(u32::from_be_bytes))
}

/// The node's `interrupts`, decoded as GIC specifiers of `cells` cells (`<type number flags>`;
/// type 0 = SPI, 1 = PPI). Specifiers of other shapes are skipped.
pub(crate) fn interrupts(
    node: &DtNode<'static>,
    cells: usize,
) -> Result<impl Iterator<Item = DtIrq>, FdtError> {
    let value = node
        .raw_property("interrupts")?
        .map_or(&[][..], |p| p.value);
    let cells = cells.max(1);
    Ok(value.chunks_exact(4 * cells).filter_map(move |spec| {
        let cell = |i: usize| -> Option<u32> {
            Some(u32::from_be_bytes(
                spec.get(4 * i..4 * i + 4)?.try_into().ok()?,
            ))
        };
        if cells < 3 {
            return None;
        }
        let base = match cell(0)? {
            0 => 32,
            1 => 16,
            _ => return None,
        };
        let intid = cell(1)?.checked_add(base)?;
        let trigger = if cell(2)? & 0x3 != 0 {
            Trigger::Edge
        } else {
            Trigger::Level
        };
        Some(DtIrq { intid, trigger })
    }))
}

/// The GIC description of `node`, if it is a GICv2 or GICv3 interrupt controller.
fn gic_desc(node: &DtNode<'static>) -> Result<Option<GicDesc>, FdtError> {
    let version = if is_compatible(node, "arm,gic-v3")? {
        GicVersion::V3
    } else {
        let mut v2 = false;
        for c in GICV2_COMPATIBLE {
            v2 |= is_compatible(node, c)?;
        }
        if !v2 {
            return Ok(None);
        }
        GicVersion::V2
    };
    let interrupt_cells = u32_property(node, "#interrupt-cells")?.unwrap_or(3) as usize;
    let mut regs = regs(node)?;
    let dist = regs.next().unwrap_or_default();
    let mut desc = GicDesc {
        version,
        dist,
        redist: Vec::new(),
        cpu_if: MemRegion::default(),
        interrupt_cells,
    };
    match version {
        GicVersion::V3 => {
            let n = u32_property(node, "#redistributor-regions")?.unwrap_or(1);
            for r in regs.take(n as usize) {
                // Regions past MAX_REDIST_REGIONS are ignored.
                let _ = desc.redist.push(r);
            }
        }
        GicVersion::V2 => desc.cpu_if = regs.next().unwrap_or_default(),
    }
    Ok(Some(desc))
}

fn first_reg(node: &DtNode<'static>) -> Result<Option<usize>, FdtError> {
    Ok(node
        .reg()?
        .and_then(|r| r.iter::<u64, u64>().next())
        .and_then(Result::ok)
        .map(|r| r.address as usize))
}

/// The image's extent from the linker script's symbols.
fn image_region() -> MemRegion {
    extern "C" {
        static __image_start: u8;
        static __image_end: u8;
    }
    // Only the symbols' addresses are taken, nothing is read through them.
    let start = core::ptr::addr_of!(__image_start) as usize;
    let end = core::ptr::addr_of!(__image_end) as usize;
    MemRegion::new(start, end - start)
}
