//! Image header, entry points and the hand-over to the guest's `main`.
//!
//! Boot protocol (Linux arm64 `Image`): the loader (QEMU or Tessera) loads the image at
//! RAM base + `text_offset` (= the address it is linked at, `__load_base`) and enters at offset 0
//! at EL1 (EL2 also works: the CPU drops to EL1) with the MMU off and `x0` = DTB address.
//!
//! Every CPU, before touching memory with the MMU off (so no stale cache line can shadow what it
//! wrote), runs `__rt_cpu_setup`: drop EL2 → EL1 if needed, FP/SIMD on, `VBAR_EL1`, the
//! identity map of `mmu.rs`, caches on. Then the primary zeroes BSS, takes stack slot 0 and
//! calls `rt_primary`; a secondary (PSCI `CPU_ON` entry `_secondary_start`, context id = its
//! index in the DTB's CPU list) takes stack slot `index + 1` and calls `rt_secondary`.

use core::arch::global_asm;

use spin::Once;

use crate::dt::BootInfo;

/// Largest number of CPUs the runtime runs (DTB CPU indexes `0..MAX_CPUS`).
pub const MAX_CPUS: usize = 8;

/// Stack bytes per CPU.
pub const STACK_SIZE: usize = 32 * 1024;

/// Stack slots: 0 for the boot CPU, `1 + index` for a CPU started by [`crate::cpu::start`].
const STACK_SLOTS: usize = MAX_CPUS + 1;

/// `text_offset` of the Image header: the image sits 512 KiB above the RAM base.
const TEXT_OFFSET: u64 = 0x8_0000;

/// Image header flags: bit 0 = 0 little-endian, bits 1-2 = 1 4 KiB pages, bit 3 = 0: the
/// image must sit at RAM base + text_offset (2 MiB-aligned base near the start of RAM), which
/// is what a fixed-address (not relocatable) image needs.
const IMAGE_FLAGS: u64 = 0b0010;

#[repr(C, align(16))]
struct Stacks([u8; STACK_SIZE * STACK_SLOTS]);

/// The per-CPU stacks; only the boot assembly refers to them (by symbol).
#[link_section = ".stacks"]
static mut STACKS: Stacks = Stacks([0; STACK_SIZE * STACK_SLOTS]);

global_asm!(
    r#"
    .section .text.boot, "ax"
    .balign 8
    .global _start
_start:
    b       1f                      // code0: branch to the real entry
    .word   0                       // code1
    .quad   {text_offset}           // text_offset
    .quad   __image_size            // image_size (incl. BSS and stacks)
    .quad   {flags}                 // flags
    .quad   0                       // res2
    .quad   0                       // res3
    .quad   0                       // res4
    .ascii  "ARMd"                  // magic 0x644d5241 ("ARM\x64")
    .word   0                       // res5
1:
    mov     x19, x0                 // DTB
    // The code is linked at a fixed address: refuse to run anywhere else.
    adr     x9, _start
    ldr     x10, =_start
    cmp     x9, x10
    b.ne    __rt_park
    bl      __rt_cpu_setup
    // Zero BSS (MMU and caches on).
    adrp    x9, __bss_start
    add     x9, x9, :lo12:__bss_start
    adrp    x10, __bss_end
    add     x10, x10, :lo12:__bss_end
2:  cmp     x9, x10
    b.hs    3f
    stp     xzr, xzr, [x9], #16
    b       2b
3:  adrp    x9, {stacks}
    add     x9, x9, :lo12:{stacks}
    mov     x10, #{stack_size}
    add     x9, x9, x10             // top of slot 0
    mov     sp, x9
    msr     tpidr_el1, xzr
    mov     x0, x19
    bl      {primary}
    b       __rt_park

    .global _secondary_start
_secondary_start:
    mov     x19, x0                 // context id = CPU index
    bl      __rt_cpu_setup
    cmp     x19, #{max_cpus}
    b.hs    __rt_park
    adrp    x9, {stacks}
    add     x9, x9, :lo12:{stacks}
    add     x10, x19, #2            // top of slot index + 1
    mov     x11, #{stack_size}
    madd    x9, x10, x11, x9
    mov     sp, x9
    msr     tpidr_el1, x19
    mov     x0, x19
    bl      {secondary}
    b       __rt_park

    .global __rt_park
__rt_park:
    wfe
    b       __rt_park

// Per-CPU setup without touching memory. Clobbers x9-x11; returns through x30.
__rt_cpu_setup:
    mrs     x9, CurrentEL
    lsr     x9, x9, #2
    cmp     x9, #1
    b.eq    5f
    cmp     x9, #2
    b.ne    __rt_park               // EL3 (or EL0?) is not supported
    // At EL2 without a hypervisor: make EL1 AArch64, untrapped, and drop to it.
    mov     x9, #(1 << 31)          // HCR_EL2.RW
    msr     hcr_el2, x9
    mov     x9, #3                  // CNTHCTL_EL2.EL1PCTEN | EL1PCEN
    msr     cnthctl_el2, x9
    msr     cntvoff_el2, xzr
    mov     x9, #0x33ff             // CPTR_EL2: RES1 bits only, no FP/SIMD trap
    msr     cptr_el2, x9
    msr     hstr_el2, xzr
    mrs     x9, midr_el1
    msr     vpidr_el2, x9
    mrs     x9, mpidr_el1
    msr     vmpidr_el2, x9
    // GICv3 system-register interface present: let EL1 use its ICC_* registers
    // (ICC_SRE_EL2 = SRE | DFB | DIB | Enable).
    mrs     x9, id_aa64pfr0_el1
    ubfx    x9, x9, #24, #4
    cbz     x9, 4f
    mrs     x9, S3_4_C12_C9_5
    orr     x9, x9, #0xf
    msr     S3_4_C12_C9_5, x9
    isb
4:
    mov     x9, #0x3c5              // SPSR: EL1h, DAIF masked
    msr     spsr_el2, x9
    adr     x9, 5f
    msr     elr_el2, x9
    eret
5:
    ldr     x9, ={sctlr_off}
    msr     sctlr_el1, x9
    isb
    mov     x9, #(3 << 20)          // CPACR_EL1.FPEN: FP/SIMD untrapped at EL0/EL1
    msr     cpacr_el1, x9
    adrp    x9, __rt_vectors
    add     x9, x9, :lo12:__rt_vectors
    msr     vbar_el1, x9
    ldr     x9, ={mair}
    msr     mair_el1, x9
    ldr     x9, ={tcr}
    mrs     x10, id_aa64mmfr0_el1
    and     x10, x10, #0xf          // PARange
    mov     x11, #5                 // cap at 48 bits (52 needs FEAT_LPA descriptors)
    cmp     x10, x11
    csel    x10, x10, x11, ls
    bfi     x9, x10, #32, #3        // TCR_EL1.IPS
    msr     tcr_el1, x9
    adrp    x9, {page_table}
    add     x9, x9, :lo12:{page_table}
    msr     ttbr0_el1, x9
    msr     ttbr1_el1, xzr
    isb
    tlbi    vmalle1
    ic      iallu
    dsb     nsh
    isb
    ldr     x9, ={sctlr_on}
    msr     sctlr_el1, x9
    isb
    ret
    .ltorg
"#,
    text_offset = const TEXT_OFFSET,
    flags = const IMAGE_FLAGS,
    stacks = sym STACKS,
    stack_size = const STACK_SIZE,
    max_cpus = const MAX_CPUS,
    primary = sym rt_primary,
    secondary = sym rt_secondary,
    mair = const crate::mmu::MAIR,
    tcr = const crate::mmu::TCR,
    page_table = sym crate::mmu::PAGE_TABLE,
    sctlr_off = const crate::mmu::SCTLR_MMU_OFF,
    sctlr_on = const crate::mmu::SCTLR_MMU_ON,
);

/// What the device tree said, parsed once by the boot CPU.
static BOOT_INFO: Once<BootInfo> = Once::new();

/// The boot information (parsed on the boot CPU before `main` runs).
///
/// # Panics
///
/// Only if called before the runtime parsed the DTB, which cannot happen from guest code.
pub fn boot_info() -> &'static BootInfo {
    BOOT_INFO.get().expect("boot info is set before main")
}

/// The boot information, if the DTB has been parsed yet.
pub(crate) fn try_boot_info() -> Option<&'static BootInfo> {
    BOOT_INFO.get()
}

extern "Rust" {
    /// The guest's main function, defined by [`entry!`](crate::entry).
    fn __tessera_guest_main(info: &'static BootInfo) -> u32;
}

/// Boot CPU, after the MMU is on and BSS is zero: parse the DTB, set up the console, run main.
extern "C" fn rt_primary(dtb: usize) -> ! {
    crate::exception::unmask_serror();
    let dtb = if dtb == 0 {
        crate::dt::fallback_dtb()
    } else {
        dtb
    };
    let info = BOOT_INFO.call_once(|| BootInfo::from_dtb(dtb));
    crate::console::init(info);
    crate::cpu::set_index(info.boot_cpu);
    // SAFETY: `__tessera_guest_main` is defined by the guest's `entry!` invocation with exactly
    // this signature (a safe Rust function); the link fails if it is missing.
    let code = unsafe { __tessera_guest_main(info) };
    crate::exit(code)
}

/// A CPU started with [`crate::cpu::start`]: run the function registered for it, then power off.
extern "C" fn rt_secondary(index: usize) -> ! {
    crate::exception::unmask_serror();
    crate::cpu::run_secondary(index)
}

/// Declares the guest's main function: `fn(&'static BootInfo) -> u32` (the exit code given to
/// [`exit`](crate::exit) when it returns).
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[no_mangle]
        fn __tessera_guest_main(info: &'static $crate::BootInfo) -> u32 {
            let main: fn(&'static $crate::BootInfo) -> u32 = $main;
            main(info)
        }
    };
}
