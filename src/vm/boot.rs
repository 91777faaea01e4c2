//! Bring-up: the boot core checks the machine against the build-time config, builds every VM
//! and starts the other cores; each core then waits for its vCPU.

use core::sync::atomic::Ordering;

use aarch64_cpu::registers::ID_AA64MMFR0_EL1;
use tock_registers::interfaces::Readable;

use super::{lifecycle, memory, CoreId, CORE_MPIDR, MAX_PCPUS, MAX_VCPUS, MAX_VMS};
use crate::arch::{self, cache, exception, gic, psci};
use crate::config::{GicVersion, PhysRange, BOARD, BUNDLE, PCPUS, VMS};
use crate::{hprintln, mm};

/// Exit code of the machine when Tessera refuses to boot.
const BOOT_ERROR_EXIT: u32 = 70;

fn boot_error(args: core::fmt::Arguments) -> ! {
    hprintln!("boot error: {}", args);
    hprintln!("halting: nothing was started");
    arch::halt_machine(BOOT_ERROR_EXIT)
}

/// Entered (by `_start`) at EL2 on the boot core, at the image's link address on the early
/// map, with x0 = the DTB the loader passed and x1 = where the loader put the image.
pub extern "C" fn primary_main(dtb: u64, load_pa: u64) -> ! {
    exception::install_vectors();
    crate::console::emergency_print(format_args!("\n"));
    hprintln!(
        "Tessera {} — board {}, {} VM(s), GICv{}",
        env!("CARGO_PKG_VERSION"),
        BOARD.name,
        VMS.len(),
        gic_number(BOARD.gic.version)
    );
    if VMS.len() > MAX_VMS || PCPUS.len() > MAX_PCPUS {
        boot_error(format_args!("config larger than this build supports"));
    }
    if let Some(vm) = VMS
        .iter()
        .find(|v| v.vcpus.len() > MAX_VCPUS || v.mem.len() > super::MAX_MEM_REGIONS)
    {
        boot_error(format_args!(
            "vm {}: too many vCPUs or memory regions for this build",
            vm.name
        ));
    }

    let dtb_size = check_machine(dtb);
    match crate::llc::init() {
        Ok((g, crate::llc::Source::Registers { level })) => hprintln!(
            "LLC: L{} {} KiB, {}-way, {} B lines -> {} colors of 4 KiB (CCSIDR)",
            level,
            g.size >> 10,
            g.ways,
            g.line,
            g.page_colors()
        ),
        Ok((g, crate::llc::Source::BoardOverride)) => hprintln!(
            "LLC: {} KiB, {}-way, {} B lines -> {} colors of 4 KiB (board override)",
            g.size >> 10,
            g.ways,
            g.line,
            g.page_colors()
        ),
        Err(e) => boot_error(format_args!("LLC: {}", e)),
    }

    let (image_start, image_end) = arch::image_extent();
    let reserved = [
        BOARD.hyp_region,
        BUNDLE.region,
        PhysRange {
            base: load_pa,
            size: image_end - image_start,
        },
        PhysRange {
            base: dtb & !0xfff,
            size: ((dtb + dtb_size + 0xfff) & !0xfff) - (dtb & !0xfff),
        },
    ];
    if let Err(e) = mm::init_frames(BOARD.ram, &reserved) {
        boot_error(format_args!("frame allocator: {:?}", e));
    }
    let hyp_colors = crate::config::HYPERVISOR.colors;
    match arch::build_and_switch(load_pa, hyp_colors) {
        Ok(map) if map.colors != 0 => hprintln!(
            "EL2 map: image at VA {:#x} moved into {} pages of colors {}; {} table pages",
            image_start,
            map.image_pages,
            crate::llc::Colors(map.colors),
            map.table_pages
        ),
        Ok(map) => hprintln!(
            "EL2 map: image at VA {:#x}, PA {:#x} ({} pages, uncolored); {} table pages",
            image_start,
            load_pa,
            map.image_pages,
            map.table_pages
        ),
        Err(e) => boot_error(format_args!("{}", e)),
    }
    if crate::config::HYPERVISOR.verify_coloring {
        if let Err(e) = crate::llc::verify_hypervisor() {
            boot_error(format_args!("{}", e));
        }
    }
    match crate::payload::init() {
        Ok(b) => hprintln!(
            "payloads: {} verified (SHA-256), {} KiB at {:#x}",
            b.len(),
            b.total_size().div_ceil(1024),
            BUNDLE.region.base
        ),
        Err(e) => boot_error(format_args!(
            "payload bundle at {:#x}: {} (load this build's `<image>.payloads` there: `cargo xtask run` does; by hand, QEMU `-device loader,file=<image>.payloads,addr={:#x},force-raw=on`)",
            BUNDLE.region.base, e, BUNDLE.region.base
        )),
    }

    gic::init_distributor(&BOARD.gic);
    let boot_core = CoreId(0);
    gic::init_cpu(boot_core, super::core_mpidr(boot_core));
    if let Some(irq) = BOARD.console_irq {
        // Console input interrupts the boot core (instead of waiting for a guest's poll).
        crate::console::enable_rx_interrupt();
        gic::enable(irq, boot_core, super::core_mpidr(boot_core));
    }
    crate::vgic::init_core(boot_core);
    crate::pcpu::init_core(boot_core);

    let pa_bits = tessera_stage2::parange_bits(ID_AA64MMFR0_EL1.get());
    let s2 = super::stage2_config(pa_bits);
    lifecycle::VTCR.store(s2.vtcr_el2(), Ordering::Relaxed);
    for (i, vm) in super::ids().zip(VMS) {
        if let Err(e) = memory::build(i, &s2) {
            boot_error(format_args!("vm {}: {}", vm.name, e));
        }
        if let Err(e) = crate::vgic::init_vm(i) {
            boot_error(format_args!("vm {}: {}", vm.name, e));
        }
        let ram: u64 = vm.mem.iter().map(|m| m.size).sum();
        defmt::info!("vm {=usize} built: {=u64} bytes of RAM", i.index(), ram);
        hprintln!(
            "vm {}: {} vCPU(s) on pCPU {:?}, {} MiB RAM at IPA {:#x} ({}), entry {:#x}",
            vm.name,
            vm.vcpus.len(),
            PcpuList(vm.vcpus),
            ram >> 20,
            vm.mem[0].ipa,
            Placement(i),
            vm.entry_ipa
        );
    }
    cache::tlb_invalidate_guests();
    hprintln!(
        "stage 2: {}-bit IPA; {} MiB of RAM left unassigned",
        s2.ipa_bits(),
        (mm::free_frames() * 4096) >> 20
    );
    crate::smccc::init();
    #[cfg(feature = "selftest-el2-fault")]
    selftest_el2_fault();
    #[cfg(feature = "selftest-el2-stack-overflow")]
    {
        hprintln!("selftest: overflowing the EL2 stack");
        let depth = selftest_recurse(0);
        boot_error(format_args!(
            "selftest: recursion to depth {} did not overflow",
            depth
        ));
    }
    for vm in super::ids() {
        lifecycle::arm_boot_vcpu(vm);
    }

    for core in 1..BOARD.used_cpus {
        let (entry, context) = arch::secondary_start(core);
        let r = psci::cpu_on(super::core_mpidr(CoreId(core)), entry, context);
        if r != psci::ret::SUCCESS {
            boot_error(format_args!("PSCI CPU_ON of core {} failed ({})", core, r));
        }
    }
    arch::run_on_fresh_stack(crate::pcpu::run)
}

/// Feature `selftest-el2-fault`: provokes a data abort at EL2 so that the hypervisor's own
/// fault report (`trap::hypervisor_fault`) is exercised end to end (scenario `hyp-fault`).
///
/// The address, 64 GiB (0x10_0000_0000), is above everything the EL2 physmap covers: it maps
/// only the board's RAM and the MMIO the hypervisor drives (`hyp_mmio`), which on qemu-virt end
/// at 0xC000_0000 and below 0x0A00_0000 (any board whose RAM reached 64 GiB would need another
/// address). It is also below 2^39, the input range of the EL2 map (`mmu::build_and_switch`),
/// so the walk finds an invalid level-1 entry and the load takes a stage-1 *translation* fault
/// (DFSC 0x05), not a fault for an address outside the translated range.
#[cfg(feature = "selftest-el2-fault")]
fn selftest_el2_fault() {
    const UNMAPPED: u64 = 0x10_0000_0000;
    hprintln!("selftest: provoking an EL2 data abort");
    let value: u64;
    // SAFETY: the load targets an address that is not mapped at EL2, so it never reads memory:
    // it traps to the current-EL vector and the fault report halts the machine. The asm has no
    // other effect (no stack, no flags).
    unsafe {
        core::arch::asm!(
            "ldr {v}, [{a}]",
            a = in(reg) UNMAPPED,
            v = out(reg) value,
            options(nostack, readonly, preserves_flags)
        );
    }
    boot_error(format_args!(
        "selftest: the EL2 read of {:#x} did not fault (it read {:#x})",
        UNMAPPED, value
    ));
}

/// Feature `selftest-el2-stack-overflow`: recursion with 1 KiB frames until the stack runs into
/// its guard page (60 KiB); never returns in practice.
#[cfg(feature = "selftest-el2-stack-overflow")]
#[inline(never)]
fn selftest_recurse(depth: u64) -> u64 {
    let mut frame = [0u8; 1024];
    frame[(depth % 1024) as usize] = depth as u8;
    let frame = core::hint::black_box(frame);
    if depth > 1_000_000 {
        return depth;
    }
    let below = selftest_recurse(depth + 1);
    below + u64::from(frame[0])
}

/// Entered by the secondary entry with the core index.
pub extern "C" fn secondary_main(core: u64) -> ! {
    exception::install_vectors();
    let core = CoreId(core as usize);
    gic::init_cpu(core, super::core_mpidr(core));
    crate::vgic::init_core(core);
    crate::pcpu::init_core(core);
    arch::run_on_fresh_stack(crate::pcpu::run)
}

/// Entered instead of [`primary_main`] when the loader did not start us at EL2. Runs with the
/// MMU off at the physical address the image was loaded at, where the image's link addresses
/// mean nothing: it prints with [`arch::early_puts`] only (no formatting machinery, whose
/// tables hold link addresses) and powers off.
pub extern "C" fn wrong_exception_level(el: u64) -> ! {
    let digit = [b'0' + (el as u8 & 3)];
    arch::early_puts("\n[tessera] boot error: entered at EL");
    arch::early_puts(core::str::from_utf8(&digit).unwrap_or("?"));
    arch::early_puts(
        ", but Tessera must start at EL2.\n\
         [tessera] On QEMU use `-machine virt,virtualization=on` and boot the raw Image \
         (not the ELF); on hardware check the firmware's kernel settings.\n",
    );
    // PSCI SYSTEM_OFF by HVC or SMC if either exists at this level (QEMU without EL2: HVC);
    // the status (70) is the boot error line above.
    #[cfg(feature = "semihosting")]
    arch::semihosting::exit(BOOT_ERROR_EXIT);
    arch::el1off::power_off_from_el1(el)
}

/// Where a VM's RAM is: the PA of its first region, or its colors (4 KiB pages).
struct Placement(super::VmId);
impl core::fmt::Display for Placement {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let vm = &VMS[self.0.index()];
        if vm.colors != 0 {
            write!(f, "colors {}, 4 KiB pages", crate::llc::Colors(vm.colors))
        } else {
            let pa = super::ipa_to_pa(self.0, tessera_stage2::GuestPhysAddr(vm.mem[0].ipa));
            write!(f, "PA {:#x}", pa.map_or(0, |p| p.0))
        }
    }
}

struct PcpuList(&'static [crate::config::VcpuDesc]);
impl core::fmt::Debug for PcpuList {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|v| v.pcpu))
            .finish()
    }
}

/// What the loader's DTB says about the machine.
struct Machine {
    size: u64,
    ram: heapless::Vec<PhysRange, 8>,
    mpidrs: heapless::Vec<u64, MAX_PCPUS>,
    cpus: usize,
    gic: Option<(GicVersion, Option<u64>)>,
}

enum DtbError {
    Fdt(fdt::FdtError),
    Cells,
}

impl core::fmt::Debug for DtbError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DtbError::Fdt(e) => write!(f, "{:?}", e),
            DtbError::Cells => f.write_str("malformed reg property"),
        }
    }
}

impl From<fdt::FdtError> for DtbError {
    fn from(e: fdt::FdtError) -> Self {
        DtbError::Fdt(e)
    }
}

fn parse_dtb(dtb: u64) -> Result<Machine, DtbError> {
    if dtb == 0 || !dtb.is_multiple_of(4) {
        return Err(DtbError::Fdt(fdt::FdtError::BadPtr));
    }
    // SAFETY: x0 at entry points to the DTB per the arm64 boot protocol (checked non-null and
    // aligned above); the parser validates the header magic and sizes before reading on, and
    // the blob lies in identity-mapped RAM that nothing writes.
    let fdt = unsafe { fdt::Fdt::from_ptr_fallible(dtb as usize as *const u32) }?;
    let root = fdt.root()?;
    let mut m = Machine {
        size: fdt.total_size() as u64,
        ram: heapless::Vec::new(),
        mpidrs: heapless::Vec::new(),
        cpus: 0,
        gic: None,
    };
    for entry in root.memory()?.reg()?.iter::<u64, u64>() {
        let e = entry.map_err(|_| DtbError::Cells)?;
        let _ = m.ram.push(PhysRange {
            base: e.address,
            size: e.len,
        });
    }
    for cpu in root.cpus()?.iter()? {
        let cpu = cpu?;
        let id = cpu.reg::<u64>()?.first().map_err(|_| DtbError::Cells)?;
        let _ = m.mpidrs.push(id);
        m.cpus += 1;
    }
    const V3: &[&str] = &["arm,gic-v3"];
    const V2: &[&str] = &["arm,cortex-a15-gic", "arm,gic-400", "arm,cortex-a7-gic"];
    for (version, compat) in [(GicVersion::V3, V3), (GicVersion::V2, V2)] {
        if let Some(node) = root.all_compatible(compat)?.next() {
            let node = node?;
            let gicd = match node.reg()? {
                Some(reg) => match reg.iter::<u64, u64>().next() {
                    Some(Ok(e)) => Some(e.address),
                    _ => None,
                },
                None => None,
            };
            m.gic = Some((version, gicd));
            break;
        }
    }
    Ok(m)
}

fn gic_number(v: GicVersion) -> u32 {
    match v {
        GicVersion::V2 => 2,
        GicVersion::V3 => 3,
    }
}

/// Checks the DTB the loader passed against the board and the config (RAM, cores, GIC);
/// records every core's MPIDR. Returns the DTB's size.
fn check_machine(dtb: u64) -> u64 {
    let m = match parse_dtb(dtb) {
        Ok(m) => m,
        Err(e) => boot_error(format_args!(
            "cannot read the device tree at x0 = {:#x} ({:?}); boot the raw Image so the loader passes one",
            dtb, e
        )),
    };
    let want = BOARD.ram;
    let seen: u64 = m.ram.iter().map(|r| r.size).sum();
    if !m
        .ram
        .iter()
        .any(|r| r.base <= want.base && want.base + want.size <= r.base + r.size)
    {
        boot_error(format_args!(
            "board {} needs {} MiB of RAM at {:#x}; the DTB describes {} MiB (QEMU: -m {}M)",
            BOARD.name,
            want.size >> 20,
            want.base,
            seen >> 20,
            want.size >> 20
        ));
    }
    for (i, id) in m.mpidrs.iter().enumerate() {
        CORE_MPIDR[i].store(*id, Ordering::Relaxed);
    }
    if m.cpus < BOARD.used_cpus {
        boot_error(format_args!(
            "the config uses {} physical cores but the DTB describes {} (QEMU: -smp {})",
            BOARD.used_cpus, m.cpus, BOARD.used_cpus
        ));
    }
    if m.cpus > BOARD.max_cpus || m.cpus > MAX_PCPUS {
        boot_error(format_args!(
            "the DTB describes {} cores, more than board {} allows ({})",
            m.cpus, BOARD.name, BOARD.max_cpus
        ));
    }
    let Some((version, gicd)) = m.gic else {
        boot_error(format_args!("the DTB describes no GICv2 or GICv3"));
    };
    if version != BOARD.gic.version {
        boot_error(format_args!(
            "this image was built for GICv{} but the machine has GICv{} (build with --gic {}, or run QEMU with gic-version={})",
            gic_number(BOARD.gic.version),
            gic_number(version),
            gic_number(version),
            gic_number(BOARD.gic.version)
        ));
    }
    if gicd != Some(BOARD.gic.gicd) {
        boot_error(format_args!(
            "GIC distributor at {:#x?} in the DTB, {:#x} in board.toml",
            gicd, BOARD.gic.gicd
        ));
    }
    hprintln!(
        "machine: {} cores, {} MiB RAM, GICv{} distributor at {:#x}",
        m.cpus,
        seen >> 20,
        gic_number(version),
        BOARD.gic.gicd
    );
    m.size
}
