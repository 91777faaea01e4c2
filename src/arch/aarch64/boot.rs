//! Entry points: the Linux arm64 Image header (so that loaders pass the DTB in x0 and enter at
//! EL2), the boot core's entry and the secondary cores' entry (PSCI CPU_ON / spin table).
//!
//! The image is linked at its own EL2 virtual addresses (crates/config `el2_image_va`), not
//! where it is loaded. Until the MMU is on, only the position-independent assembly below runs:
//! it zeroes .bss, builds the *early map* — RAM identity-mapped in 1 GiB blocks (Normal WB),
//! every other GiB below 256 GiB as Device-nGnRE, and the image's virtual range mapped to
//! where it was loaded in 2 MiB blocks — turns the MMU on and jumps to the link address.
//! Rust code then builds the real map ([`super::mmu`]), which may move the image into colored
//! pages.

use core::arch::global_asm;
use core::mem::offset_of;

use tessera_stage2::{El2Stage1Config, MAIR_EL2, MAIR_IDX_DEVICE_NGNRE, MAIR_IDX_NORMAL_WB};

use crate::config::{BoardDesc, BOARD};

/// Bytes of EL2 stack per physical core (the linker script reserves `max_cpus` of them); the
/// lowest page of each is an unmapped guard page in the real map, so 60 KiB are usable.
pub const STACK_SIZE: usize = 64 * 1024;

/// `SCTLR_EL2` with the MMU on: RES1 bits (E2H = 0) | M | C | SA | I. The real map adds WXN.
pub const SCTLR_MMU_ON: u64 = 0x30c5_0830 | (1 << 0) | (1 << 2) | (1 << 3) | (1 << 12);
/// `SCTLR_EL2.WXN`: whatever is writable is never executable.
pub const SCTLR_WXN: u64 = 1 << 19;

/// Stage-1 block descriptor bits: valid block, AF, inner shareable, Normal WB.
const EARLY_NORMAL_BLOCK: u64 = 0b01 | (1 << 10) | (0b11 << 8) | ((MAIR_IDX_NORMAL_WB as u64) << 2);
/// Valid block, AF, Device-nGnRE, execute-never (XN, bit 54).
const EARLY_DEVICE_BLOCK: u64 =
    0b01 | (1 << 10) | ((MAIR_IDX_DEVICE_NGNRE as u64) << 2) | (1 << 54);
/// TCR_EL2 of the early map: 39-bit input addresses (a level-1 root), PS filled in from
/// ID_AA64MMFR0_EL1 by the assembly.
const EARLY_TCR: u64 = El2Stage1Config::new(39, 32).tcr_el2() & !(0b111 << 16);

/// The early map's two tables: [0] the level-1 root, [1] the level-2 table of the image's GiB.
#[repr(C, align(4096))]
struct EarlyTables([[u64; 512]; 2]);
static mut EARLY_TABLES: EarlyTables = EarlyTables([[0; 512]; 2]);

/// What a secondary core needs to turn its MMU on with the real map: read with its MMU off
/// from the physical address passed in its context id, so it is cleaned to the point of
/// coherency by [`publish_secondary_boot`].
#[repr(C, align(64))]
pub struct SecondaryBoot {
    mair: u64,
    tcr: u64,
    ttbr0: u64,
    sctlr: u64,
    /// Virtual address of the Rust entry.
    entry: u64,
    /// Virtual address of `__stacks_start`.
    stacks: u64,
}

pub(super) static mut SECONDARY_BOOT: SecondaryBoot = SecondaryBoot {
    mair: 0,
    tcr: 0,
    ttbr0: 0,
    sctlr: 0,
    entry: 0,
    stacks: 0,
};

// The header follows Documentation/arch/arm64/booting.rst of Linux: code0/code1, text_offset,
// image_size, flags (LE, 4 KiB pages), three reserved words, magic "ARM\x64", reserved.
// `__text_offset` and `__image_size` come from the generated linker script.
global_asm!(
    r#"
// Turns the EL2 MMU on with the given MAIR, TCR, TTBR0 and SCTLR values (TLBs and the
// instruction cache invalidated first): the boot core's early map and a secondary's real map.
.macro TESSERA_MMU_ON mair, tcr, ttbr0, sctlr
    msr     mair_el2, \mair
    msr     tcr_el2, \tcr
    msr     ttbr0_el2, \ttbr0
    isb
    tlbi    alle2
    dsb     sy
    ic      iallu
    dsb     sy
    isb
    msr     sctlr_el2, \sctlr
    isb
.endm

    .section .text.boot, "ax"
    .global _start
_start:
    b       1f
    .long   0
    .quad   __text_offset
    .quad   __image_size
    .quad   0x2
    .quad   0
    .quad   0
    .quad   0
    .ascii  "ARM\x64"
    .long   0

1:  msr     daifset, #0xf
    mov     x19, x0                     // DTB
    adr     x21, _start                 // where we were loaded
    mrs     x20, CurrentEL
    lsr     x20, x20, #2
    // Core 0's stack, at its physical address for now (the wrong-EL path runs with it).
    adrp    x9, __stacks_start
    add     x9, x9, :lo12:__stacks_start
    mov     x10, #{stack_size}
    add     x9, x9, x10
    mov     sp, x9
    cmp     x20, #2
    b.ne    2f
    msr     tpidr_el2, xzr
    // Zero .bss (8-byte aligned by the linker script).
    adrp    x9, __bss_start
    add     x9, x9, :lo12:__bss_start
    adrp    x10, __bss_end
    add     x10, x10, :lo12:__bss_end
3:  cmp     x9, x10
    b.hs    4f
    str     xzr, [x9], #8
    b       3b

    // The early map. x0 = level-1 root, x1 = level-2 table of the image (physical).
4:  adrp    x0, {tables}
    add     x0, x0, :lo12:{tables}
    add     x1, x0, #4096
    adrp    x9, {board}
    add     x9, x9, :lo12:{board}
    ldr     x2, [x9, #{ram_base}]
    ldr     x3, [x9, #{ram_size}]
    add     x3, x2, x3                  // RAM is [x2, x3)
    ldr     x5, ={normal}
    ldr     x6, ={device}
    mov     x10, #0x40000000
    mov     x4, #0                      // GiB index
5:  lsl     x7, x4, #30
    add     x8, x7, x10
    cmp     x7, x3
    b.hs    6f
    cmp     x8, x2
    b.ls    6f
    orr     x11, x7, x5                 // overlaps RAM: Normal
    b       7f
6:  orr     x11, x7, x6                 // anything else: Device
7:  str     x11, [x0, x4, lsl #3]
    add     x4, x4, #1
    cmp     x4, #256
    b.lo    5b
    ldr     x7, =__image_start          // link (virtual) address
    ubfx    x8, x7, #30, #9
    orr     x11, x1, #3                 // table descriptor
    str     x11, [x0, x8, lsl #3]
    ubfx    x8, x7, #21, #9             // first level-2 index
    ldr     x9, =__image_end
    sub     x9, x9, #1
    ubfx    x9, x9, #21, #9             // last level-2 index
    and     x10, x21, #0xffffffffffe00000
8:  orr     x11, x10, x5
    str     x11, [x1, x8, lsl #3]
    add     x10, x10, #0x200000
    add     x8, x8, #1
    cmp     x8, x9
    b.ls    8b
    // The tables were written with the MMU off: drop any stale cached copy of them.
    mrs     x12, ctr_el0
    ubfx    x12, x12, #16, #4
    mov     x13, #4
    lsl     x13, x13, x12               // smallest data cache line
    mov     x9, x0
    add     x10, x0, #8192
9:  dc      ivac, x9
    add     x9, x9, x13
    cmp     x9, x10
    b.lo    9b
    dsb     sy

    ldr     x1, ={mair}
    ldr     x9, ={tcr}
    mrs     x10, id_aa64mmfr0_el1
    and     x10, x10, #0xf
    mov     x11, #5                     // PS = PARange, at most 48 bits
    cmp     x10, x11
    csel    x10, x10, x11, ls
    orr     x9, x9, x10, lsl #16
    ldr     x8, ={sctlr}
    TESSERA_MMU_ON x1, x9, x0, x8
    // Still at the physical address (identity-mapped RAM); continue at the link address.
    ldr     x9, =10f
    br      x9
10: ldr     x9, =__stacks_start
    mov     x10, #{stack_size}
    add     x9, x9, x10
    mov     sp, x9
    mov     x0, x19
    mov     x1, x21
    bl      {primary}
    b       .

2:  mov     x0, x20
    bl      {wrong_el}
    b       .

    .section .text.tramp, "ax"
    .global tessera_secondary_entry
tessera_secondary_entry:
    // MMU off. x0 = physical address of SECONDARY_BOOT | core index (< 64).
    msr     daifset, #0xf
    and     x19, x0, #0x3f
    and     x20, x0, #0xffffffffffffffc0
    ldp     x1, x2, [x20]
    ldp     x3, x4, [x20, #16]
    ldp     x5, x6, [x20, #32]
    TESSERA_MMU_ON x1, x2, x3, x4
    // This page is identity-mapped (read-only, executable) in the real map.
    msr     tpidr_el2, x19
    mov     x10, #{stack_size}
    add     x11, x19, #1
    madd    x9, x10, x11, x6
    mov     sp, x9
    mov     x0, x19
    br      x5
"#,
    stack_size = const STACK_SIZE,
    tables = sym EARLY_TABLES,
    board = sym BOARD,
    ram_base = const offset_of!(BoardDesc, ram) + offset_of!(crate::config::PhysRange, base),
    ram_size = const offset_of!(BoardDesc, ram) + offset_of!(crate::config::PhysRange, size),
    normal = const EARLY_NORMAL_BLOCK,
    device = const EARLY_DEVICE_BLOCK,
    mair = const MAIR_EL2,
    tcr = const EARLY_TCR,
    sctlr = const SCTLR_MMU_ON,
    primary = sym crate::vm::boot::primary_main,
    wrong_el = sym crate::vm::boot::wrong_exception_level,
);

unsafe extern "C" {
    fn tessera_secondary_entry();
    static __stacks_start: u8;
}

/// Virtual address of the secondary cores' entry (in the trampoline page).
pub fn secondary_entry_va() -> u64 {
    tessera_secondary_entry as *const () as u64
}

/// Fills [`SECONDARY_BOOT`] with the real map's registers and returns its physical address
/// (`pa_of` translates the image's virtual addresses), cleaned to the point of coherency so
/// that a core with its MMU off reads it.
pub fn publish_secondary_boot(ttbr0: u64, tcr: u64, pa_of: impl Fn(u64) -> u64) -> u64 {
    let p = &raw mut SECONDARY_BOOT;
    let value = SecondaryBoot {
        mair: MAIR_EL2,
        tcr,
        ttbr0,
        sctlr: SCTLR_MMU_ON | SCTLR_WXN,
        entry: crate::vm::boot::secondary_main as *const () as u64,
        stacks: &raw const __stacks_start as u64,
    };
    // SAFETY: only the boot core writes SECONDARY_BOOT, before it starts any other core.
    unsafe { p.write_volatile(value) };
    super::cache::clean_inval_dcache_range(p as u64, core::mem::size_of::<SecondaryBoot>() as u64);
    pa_of(p as u64)
}

/// Top of core `core`'s stack.
pub fn stack_top(core: crate::ids::CoreId) -> u64 {
    let base = &raw const __stacks_start as u64;
    base + ((core.index() + 1) * STACK_SIZE) as u64
}

/// Writes `s` to the console UART by polling it, usable with the MMU off (no formatting, no
/// pointer loaded from memory): the wrong-exception-level report.
pub fn early_puts(s: &str) {
    let uart = BOARD.console_uart as usize;
    for &b in s.as_bytes() {
        if b == b'\n' {
            early_putc(uart, b'\r');
        }
        early_putc(uart, b);
    }
}

fn early_putc(uart: usize, b: u8) {
    {
        // SAFETY: the board's PL011: FR (offset 0x18) bit 5 = TX FIFO full; DR (offset 0) takes
        // the byte. With the MMU off these are Device accesses to the physical UART.
        unsafe {
            while core::ptr::read_volatile((uart + 0x18) as *const u32) & (1 << 5) != 0 {}
            core::ptr::write_volatile(uart as *mut u32, u32::from(b));
        }
    }
}
