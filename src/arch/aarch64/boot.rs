//! Entry points: the Linux arm64 Image header (so that loaders pass the DTB in x0 and enter at
//! EL2), the boot core's entry and the secondary cores' entry (PSCI CPU_ON / spin table).

use core::arch::global_asm;

/// Bytes of EL2 stack per physical core (the linker script reserves `max_cpus` of them).
pub const STACK_SIZE: usize = 64 * 1024;

// The header follows Documentation/arch/arm64/booting.rst of Linux: code0/code1, text_offset,
// image_size, flags (LE, 4 KiB pages), three reserved words, magic "ARM\x64", reserved.
// `__text_offset` and `__image_size` come from the generated linker script.
global_asm!(
    r#"
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
    mrs     x20, CurrentEL
    lsr     x20, x20, #2
    // Core 0's stack (at EL2 this is SP_EL2; at another EL the wrong-EL path uses it).
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
4:  mov     x0, x19
    bl      {primary}
    b       .

2:  mov     x0, x20
    bl      {wrong_el}
    b       .

    .global tessera_secondary_entry
tessera_secondary_entry:
    // x0 = core index (the PSCI CPU_ON context id / spin-table convention).
    msr     daifset, #0xf
    msr     tpidr_el2, x0
    adrp    x9, __stacks_start
    add     x9, x9, :lo12:__stacks_start
    mov     x10, #{stack_size}
    add     x11, x0, #1
    madd    x9, x10, x11, x9
    mov     sp, x9
    bl      {secondary}
    b       .
"#,
    stack_size = const STACK_SIZE,
    primary = sym crate::vm::boot::primary_main,
    secondary = sym crate::vm::boot::secondary_main,
    wrong_el = sym crate::vm::boot::wrong_exception_level,
);

unsafe extern "C" {
    fn tessera_secondary_entry();
}

/// Physical address of the secondary cores' entry (identity-mapped, so its link address).
pub fn secondary_entry_pa() -> u64 {
    tessera_secondary_entry as *const () as u64
}

/// Top of core `core`'s stack.
pub fn stack_top(core: crate::ids::CoreId) -> u64 {
    let index = core.index();
    unsafe extern "C" {
        static __stacks_start: u8;
    }
    let base = &raw const __stacks_start as u64;
    base + ((index + 1) * STACK_SIZE) as u64
}
