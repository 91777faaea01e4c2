//! Guest device tree generation (docs/internals.md "Guest DTB"), with `vm-fdt`.
//!
//! In the DT, interrupts use the GIC binding's three cells `<type number flags>`: type 0 = SPI
//! with number = INTID − 32, type 1 = PPI with number = INTID − 16. Everything else in Tessera
//! uses INTIDs.

use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use vm_fdt::{FdtWriter, FdtWriterResult};

use crate::desc::{ChannelNotify, ClassDesc, GicVersion};
use crate::schema::DtValue;
use crate::{Device, DTB_MAX, VGIC_GICC, VGIC_GICD, VGIC_GICR, VGIC_GICR_STRIDE, VUART_IPA};

const PHANDLE_INTC: u32 = 1;
const PHANDLE_APB_PCLK: u32 = 2;
/// DT interrupt flags: edge rising = 1, level high = 4, level low = 8.
const IRQ_EDGE_RISING: u32 = 1;
const IRQ_LEVEL_HIGH: u32 = 4;
const IRQ_LEVEL_LOW: u32 = 8;
/// The vUART's INTID (DT: SPI 1).
pub use crate::VUART_INTID;

/// What the DT describes of one VM.
pub struct DtbInput<'a> {
    pub vcpus: usize,
    /// RAM regions `(ipa, size)`.
    pub mem: &'a [(u64, u64)],
    pub gic: GicVersion,
    pub devices: &'a [Device],
    pub bootargs: &'a str,
    /// The initramfs: guest-physical `[start, end)`.
    pub initrd: Option<(u64, u64)>,
    /// The channel ends this VM has.
    pub channels: &'a [DtChannel<'a>],
}

/// One end of a channel as the VM's DT describes it: a node `tessera-channel@<ipa>` with
/// `compatible = "tessera,channel-v1"`, `reg = <ipa size>`, `label` (the channel's name),
/// `tessera,channel` (its index: the doorbell hypercall's channel number),
/// `tessera,direction = "tx" | "rx"`, `tessera,classes` (per class, lowest first, four cells
/// `<slots slot_size notify priority>` with notify 0 = every, 1 = coalesced) and, at the
/// receiving end only, `interrupts`: each class's doorbell (edge rising, DT SPI numbering)
/// and `tessera,class-vcpus`: per class, the vCPU (index of this VM's `cpus` node) its
/// doorbell is routed to.
pub struct DtChannel<'a> {
    pub index: usize,
    pub name: &'a str,
    /// This VM's guest-physical address of the region.
    pub ipa: u64,
    pub size: u64,
    /// This VM receives (else it sends).
    pub rx: bool,
    pub classes: &'a [ClassDesc],
}

/// The DT `interrupts` triple of a GIC INTID (SPI or PPI).
pub fn intid_to_dt(intid: u32, flags: u32) -> [u32; 3] {
    if intid >= 32 {
        [0, intid - 32, flags]
    } else {
        [1, intid.saturating_sub(16), flags]
    }
}

/// Build the VM's DTB. Fails only if `vm-fdt` does (e.g. a bad property name) or the blob is
/// larger than [`DTB_MAX`].
pub fn generate(vm: &DtbInput<'_>) -> Result<Vec<u8>, String> {
    let blob = build(vm).map_err(|e| e.to_string())?;
    if blob.len() as u64 > DTB_MAX {
        return Err(format!(
            "generated DTB is {} bytes, more than the {} reserved",
            blob.len(),
            DTB_MAX
        ));
    }
    Ok(blob)
}

fn reg_cells(ranges: &[(u64, u64)]) -> Vec<u64> {
    ranges.iter().flat_map(|&(b, s)| [b, s]).collect()
}

fn build(vm: &DtbInput<'_>) -> FdtWriterResult<Vec<u8>> {
    let mut fdt = FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    fdt.property_string_list(
        "compatible",
        std::vec!["tessera,vm".to_string(), "linux,dummy-virt".to_string()],
    )?;
    fdt.property_string("model", "Tessera VM")?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_u32("interrupt-parent", PHANDLE_INTC)?;

    // /chosen
    let chosen = fdt.begin_node("chosen")?;
    fdt.property_string("stdout-path", &format!("/pl011@{VUART_IPA:x}"))?;
    fdt.property_string("bootargs", vm.bootargs)?;
    if let Some((start, end)) = vm.initrd {
        fdt.property_u64("linux,initrd-start", start)?;
        fdt.property_u64("linux,initrd-end", end)?;
    }
    fdt.end_node(chosen)?;

    // /hypervisor
    let hyp = fdt.begin_node("hypervisor")?;
    fdt.property_string("compatible", "tessera,hypervisor")?;
    fdt.end_node(hyp)?;

    // /memory@<first ipa>
    let first = vm.mem.first().map(|m| m.0).unwrap_or(0);
    let mem = fdt.begin_node(&format!("memory@{first:x}"))?;
    fdt.property_string("device_type", "memory")?;
    fdt.property_array_u64("reg", &reg_cells(vm.mem))?;
    fdt.end_node(mem)?;

    // /cpus
    let cpus = fdt.begin_node("cpus")?;
    fdt.property_u32("#address-cells", 1)?;
    fdt.property_u32("#size-cells", 0)?;
    for i in 0..vm.vcpus {
        let cpu = fdt.begin_node(&format!("cpu@{i:x}"))?;
        fdt.property_string("device_type", "cpu")?;
        fdt.property_string("compatible", "arm,armv8")?;
        fdt.property_u32("reg", i as u32)?;
        fdt.property_string("enable-method", "psci")?;
        fdt.end_node(cpu)?;
    }
    fdt.end_node(cpus)?;

    // /psci
    let psci = fdt.begin_node("psci")?;
    fdt.property_string_list(
        "compatible",
        std::vec!["arm,psci-1.0".to_string(), "arm,psci-0.2".to_string()],
    )?;
    fdt.property_string("method", "smc")?;
    fdt.end_node(psci)?;

    // /timer: secure phys, non-secure phys, virtual, hypervisor phys (INTIDs 29, 30, 27, 26).
    let ppi_flags = match vm.gic {
        // GICv2 binding: bits 8.. are the CPU mask.
        GicVersion::V2 => IRQ_LEVEL_LOW | ((((1u32 << vm.vcpus.min(8)) - 1) & 0xff) << 8),
        GicVersion::V3 => IRQ_LEVEL_LOW,
    };
    let timer = fdt.begin_node("timer")?;
    fdt.property_string("compatible", "arm,armv8-timer")?;
    let mut cells = Vec::new();
    for intid in [29, 30, 27, 26] {
        cells.extend_from_slice(&intid_to_dt(intid, ppi_flags));
    }
    fdt.property_array_u32("interrupts", &cells)?;
    fdt.property_null("always-on")?;
    fdt.end_node(timer)?;

    // /intc
    let intc = fdt.begin_node(&format!("intc@{VGIC_GICD:x}"))?;
    match vm.gic {
        GicVersion::V3 => {
            fdt.property_string("compatible", "arm,gic-v3")?;
            fdt.property_array_u64(
                "reg",
                &reg_cells(&[
                    (VGIC_GICD, 0x10000),
                    (VGIC_GICR, VGIC_GICR_STRIDE * vm.vcpus as u64),
                ]),
            )?;
        }
        GicVersion::V2 => {
            fdt.property_string("compatible", "arm,cortex-a15-gic")?;
            fdt.property_array_u64(
                "reg",
                &reg_cells(&[(VGIC_GICD, 0x1000), (VGIC_GICC, 0x2000)]),
            )?;
        }
    }
    fdt.property_u32("#interrupt-cells", 3)?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_null("interrupt-controller")?;
    fdt.property_phandle(PHANDLE_INTC)?;
    fdt.end_node(intc)?;

    // /apb-pclk
    let clk = fdt.begin_node("apb-pclk")?;
    fdt.property_string("compatible", "fixed-clock")?;
    fdt.property_u32("#clock-cells", 0)?;
    fdt.property_u32("clock-frequency", 24_000_000)?;
    fdt.property_string("clock-output-names", "clk24mhz")?;
    fdt.property_phandle(PHANDLE_APB_PCLK)?;
    fdt.end_node(clk)?;

    // /pl011@9000000: the virtual UART.
    let uart = fdt.begin_node(&format!("pl011@{VUART_IPA:x}"))?;
    fdt.property_string_list(
        "compatible",
        std::vec!["arm,pl011".to_string(), "arm,primecell".to_string()],
    )?;
    fdt.property_array_u64("reg", &[VUART_IPA, 0x1000])?;
    fdt.property_array_u32("interrupts", &intid_to_dt(VUART_INTID, IRQ_LEVEL_HIGH))?;
    fdt.property_array_u32("clocks", &[PHANDLE_APB_PCLK, PHANDLE_APB_PCLK])?;
    fdt.property_string_list(
        "clock-names",
        std::vec!["uartclk".to_string(), "apb_pclk".to_string()],
    )?;
    fdt.end_node(uart)?;

    // Passed-through devices.
    for d in vm.devices {
        let node = fdt.begin_node(&format!("{}@{:x}", d.name, d.ipa))?;
        fdt.property_string_list("compatible", d.compatible.clone())?;
        fdt.property_array_u64("reg", &[d.ipa, d.size])?;
        if !d.irqs.is_empty() {
            let cells: Vec<u32> = d
                .irqs
                .iter()
                .flat_map(|&i| intid_to_dt(i, IRQ_LEVEL_HIGH))
                .collect();
            fdt.property_array_u32("interrupts", &cells)?;
        }
        if d.compatible.iter().any(|c| c == "arm,primecell") && !d.dt.contains_key("clocks") {
            fdt.property_u32("clocks", PHANDLE_APB_PCLK)?;
            fdt.property_string("clock-names", "apb_pclk")?;
        }
        for (name, value) in &d.dt {
            match value {
                DtValue::Flag(true) => fdt.property_null(name)?,
                DtValue::Flag(false) => {}
                DtValue::U32(v) => fdt.property_u32(name, *v)?,
                DtValue::Str(s) => fdt.property_string(name, s)?,
                DtValue::U32s(v) => fdt.property_array_u32(name, v)?,
                DtValue::Strs(v) => fdt.property_string_list(name, v.clone())?,
            }
        }
        fdt.end_node(node)?;
    }

    // Channel ends.
    for c in vm.channels {
        let node = fdt.begin_node(&format!("tessera-channel@{:x}", c.ipa))?;
        fdt.property_string("compatible", "tessera,channel-v1")?;
        fdt.property_array_u64("reg", &[c.ipa, c.size])?;
        fdt.property_string("label", c.name)?;
        fdt.property_u32("tessera,channel", c.index as u32)?;
        fdt.property_string("tessera,direction", if c.rx { "rx" } else { "tx" })?;
        let cells: Vec<u32> = c
            .classes
            .iter()
            .flat_map(|k| {
                let notify = match k.notify {
                    ChannelNotify::Every => 0,
                    ChannelNotify::Coalesced => 1,
                };
                [k.slot_count, k.slot_size, notify, u32::from(k.priority)]
            })
            .collect();
        fdt.property_array_u32("tessera,classes", &cells)?;
        if c.rx {
            let irqs: Vec<u32> = c
                .classes
                .iter()
                .flat_map(|k| intid_to_dt(k.irq, IRQ_EDGE_RISING))
                .collect();
            fdt.property_array_u32("interrupts", &irqs)?;
            let vcpus: Vec<u32> = c.classes.iter().map(|k| k.vcpu).collect();
            fdt.property_array_u32("tessera,class-vcpus", &vcpus)?;
        }
        fdt.end_node(node)?;
    }

    fdt.end_node(root)?;
    fdt.finish()
}
