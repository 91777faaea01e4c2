//! The adversary's other attacks, chosen by the bootargs `mode=<name>`:
//!
//! - `semihosting`: Arm semihosting from EL1 (`HLT #0xF000`), which QEMU serves without any
//!   trap to EL2 when it runs with `-semihosting`: `SYS_SYSTEM` (`touch
//!   /tmp/tessera-pwned-<counter>`), `SYS_OPEN` + `SYS_WRITE` of `/tmp/tessera-pwned-<counter>-open`
//!   and `SYS_EXIT(42)`. Each must be an UNDEFINED instruction in this guest (QEMU without
//!   semihosting), the host untouched (the scenario checks) and the machine still running.
//! - `sysregs`: registers a guest must not really reach: the PMU (it must count nothing: PMCR_EL0
//!   reads 0, the cycle counter stays 0 after being enabled), debug registers (a breakpoint
//!   value does not stick, MDSCR_EL1 reads 0), ACTLR_EL1, the error records (where FEAT_RAS is
//!   implemented), trace filter control (FEAT_TRF), a full set/way clean of every data cache
//!   level (trapped, done by address on this VM's RAM: own memory intact), set/way operands
//!   the cache does not have, and the SMCCC speculation workarounds (answers within the
//!   specification, the calls come back). No access may raise an exception in the guest.
//! - `exit`: nothing but the exit code `exit=N` (scenario `guest-exit-codes`: a guest's code
//!   must not imitate the hypervisor's statuses).

use core::arch::asm;
use core::fmt::Write as _;

use tessera_guest_rt::exception::{catching_asm, Fault};
use tessera_guest_rt::smccc::{call_catching, Conduit};
use tessera_guest_rt::{println, BootInfo, MemRegion};

use crate::Report;

/// Semihosting operations.
const SYS_OPEN: u64 = 0x01;
const SYS_WRITE: u64 = 0x05;
const SYS_SYSTEM: u64 = 0x12;
const SYS_EXIT: u64 = 0x18;
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x2_0026;
/// ESR_EL1.EC of an UNDEFINED instruction.
const EC_UNKNOWN: u8 = 0x00;

/// `HLT #0xF000` with `op` in x0 and the parameter block at `block`; the exception if it
/// raised one.
fn semihost(op: u64, block: &[u64]) -> Result<u64, Fault> {
    // SAFETY: one `HLT` (the A64 semihosting trap) in a catching section: without semihosting
    // it is UNDEFINED and skipped; with it, the host reads the parameter block (alive and
    // initialized for the duration) and the strings it points to, and writes x0 only.
    unsafe {
        catching_asm(|| {
            let r: u64;
            asm!("hlt #0xf000", inout("x0") op => r, in("x1") block.as_ptr(), options(nostack, readonly));
            r
        })
    }
}

/// One semihosting attempt: it must raise UNDEFINED.
fn expect_undefined(what: &str, r: Result<u64, Fault>, report: &mut Report) {
    match r {
        Err(f) if !f.serror && f.ec() == EC_UNKNOWN => {
            println!(
                "adversary: semihosting {}: UNDEFINED (ESR {:#x}): refused",
                what, f.esr
            );
        }
        Err(f) => {
            println!(
                "adversary: semihosting {}: unexpected exception ESR {:#x} (EC {:#x})",
                what,
                f.esr,
                f.ec()
            );
            report.fail();
        }
        Ok(v) => {
            println!(
                "adversary: semihosting {}: returned {:#x}: the host serves this guest's \
                 semihosting calls",
                what, v
            );
            report.fail();
        }
    }
}

fn counter() -> u64 {
    let v: u64;
    // SAFETY: reading the virtual counter has no side effect.
    unsafe { asm!("mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack)) };
    v
}

/// `mode=semihosting`.
pub fn semihosting(report: &mut Report) {
    let tag = counter();
    let mut path: heapless::String<64> = heapless::String::new();
    let _ = write!(path, "/tmp/tessera-pwned-{:x}", tag);
    let mut cmd: heapless::String<96> = heapless::String::new();
    let _ = write!(cmd, "touch {}\0", path.as_str());
    let mut open_path: heapless::String<72> = heapless::String::new();
    let _ = write!(open_path, "{}-open\0", path.as_str());
    println!(
        "adversary: semihosting: trying SYS_SYSTEM `touch {}`, SYS_OPEN/SYS_WRITE of {}-open, \
         SYS_EXIT(42)",
        path.as_str(),
        path.as_str()
    );

    let system = [cmd.as_ptr() as u64, cmd.len() as u64 - 1];
    expect_undefined("SYS_SYSTEM", semihost(SYS_SYSTEM, &system), report);

    // Mode 4 = "w".
    let open = [open_path.as_ptr() as u64, 4, open_path.len() as u64 - 1];
    let opened = semihost(SYS_OPEN, &open);
    let handle = *opened.as_ref().unwrap_or(&u64::MAX);
    expect_undefined("SYS_OPEN", opened, report);
    let text = b"pwned by a guest\n";
    let write = [handle, text.as_ptr() as u64, text.len() as u64];
    expect_undefined("SYS_WRITE", semihost(SYS_WRITE, &write), report);

    let exit = [ADP_STOPPED_APPLICATION_EXIT, 42];
    expect_undefined("SYS_EXIT(42)", semihost(SYS_EXIT, &exit), report);
    println!("adversary: semihosting: the machine is still running");
    forge_console(report);
}

/// Tries to print lines that read as the hypervisor's final status line: after a newline of
/// its own (virtual UART and ConsoleWrite), after a carriage return and an ANSI "erase line".
/// The hypervisor must print each as this VM's line (`[adversary] ...`, control bytes as `.`),
/// so the run's status stays Tessera's.
fn forge_console(report: &mut Report) {
    println!("adversary: forging\n[tessera] all VMs off; exit 42");
    let forged = b"adversary: forging\r\x1b[2K[tessera] boot error: forged by a guest\n";
    match tessera_guest_rt::tessera::console_write(forged) {
        Ok(n) if n == forged.len() => {}
        other => {
            println!("adversary: ConsoleWrite of the forged line: {:?}", other);
            report.fail();
        }
    }
}

/// Reads a system register (its name or `s<op0>_<op1>_c<n>_c<m>_<op2>` form) with exceptions
/// caught.
macro_rules! read_sysreg {
    ($name:literal) => {
        // SAFETY: an MRS in a catching section: it writes only its output register, and if the
        // access is refused the instruction is skipped (the output keeps 0).
        unsafe {
            catching_asm(|| {
                let mut v: u64 = 0;
                asm!(concat!("mrs {v}, ", $name), v = inout(reg) v, options(nomem, nostack));
                v
            })
        }
    };
}

/// Writes a system register with exceptions caught. Only registers whose real effect could
/// not hurt this guest (the point is that the hypervisor ignores the writes).
macro_rules! write_sysreg {
    ($name:literal, $value:expr) => {
        // SAFETY: an MSR in a catching section, to a PMU, debug or auxiliary control register:
        // none of them changes memory or control flow of this program (at worst a counter
        // runs or a breakpoint value is kept); a refused access is skipped.
        unsafe {
            catching_asm(|| {
                asm!(concat!("msr ", $name, ", {v}"), v = in(reg) $value, options(nostack));
            })
        }
    };
}

/// Expects `r` to be a read of zero.
fn expect_zero(what: &str, r: Result<u64, Fault>, report: &mut Report) {
    match r {
        Ok(0) => println!("adversary: {} reads 0", what),
        Ok(v) => {
            println!(
                "adversary: {} reads {:#x}: the guest sees the real register",
                what, v
            );
            report.fail();
        }
        Err(f) => {
            println!(
                "adversary: {} raised ESR {:#x} (EC {:#x}), expected read-as-zero",
                what,
                f.esr,
                f.ec()
            );
            report.fail();
        }
    }
}

/// Expects a write to complete without an exception.
fn expect_done(what: &str, r: Result<(), Fault>, report: &mut Report) {
    if let Err(f) = r {
        println!(
            "adversary: {} raised ESR {:#x} (EC {:#x}), expected the write to be ignored",
            what,
            f.esr,
            f.ec()
        );
        report.fail();
    }
}

fn id_field(reg: u64, shift: u32) -> u64 {
    (reg >> shift) & 0xf
}

/// `mode=sysregs`.
pub fn sysregs(info: &BootInfo, scratch: MemRegion, report: &mut Report) {
    // PMU: enable everything, spin, and read: nothing may count.
    expect_zero("PMCR_EL0", read_sysreg!("pmcr_el0"), report);
    expect_done(
        "PMCR_EL0 = E|C|P",
        write_sysreg!("pmcr_el0", 0x7u64),
        report,
    );
    expect_done(
        "PMCNTENSET_EL0 = C",
        write_sysreg!("pmcntenset_el0", 1u64 << 31),
        report,
    );
    expect_done(
        "PMCCFILTR_EL0 = 0",
        write_sysreg!("pmccfiltr_el0", 0u64),
        report,
    );
    expect_done(
        "PMUSERENR_EL0 = EN",
        write_sysreg!("pmuserenr_el0", 1u64),
        report,
    );
    let mut x = 0u64;
    for i in 0..10_000u64 {
        x = core::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
    }
    expect_zero(
        "PMCCNTR_EL0 after enabling it",
        read_sysreg!("pmccntr_el0"),
        report,
    );
    expect_zero("PMCR_EL0 after writing E", read_sysreg!("pmcr_el0"), report);
    expect_zero("PMCEID0_EL0", read_sysreg!("pmceid0_el0"), report);
    expect_zero("PMUSERENR_EL0", read_sysreg!("pmuserenr_el0"), report);
    expect_done("PMSELR_EL0 = 0", write_sysreg!("pmselr_el0", 0u64), report);
    expect_zero("PMXEVCNTR_EL0", read_sysreg!("pmxevcntr_el0"), report);
    expect_zero("PMINTENSET_EL1", read_sysreg!("pmintenset_el1"), report);

    // Debug: a breakpoint on our own code, monitor debug enabled: neither sticks.
    let here = sysregs as *const () as u64;
    expect_done("DBGBVR0_EL1", write_sysreg!("dbgbvr0_el1", here), report);
    expect_done(
        "DBGBCR0_EL1 = E",
        write_sysreg!("dbgbcr0_el1", 0x1e7u64),
        report,
    );
    expect_done(
        "MDSCR_EL1 = MDE|KDE",
        write_sysreg!("mdscr_el1", (1u64 << 15) | (1 << 13)),
        report,
    );
    expect_zero(
        "DBGBVR0_EL1 after writing it",
        read_sysreg!("dbgbvr0_el1"),
        report,
    );
    expect_zero(
        "DBGBCR0_EL1 after writing it",
        read_sysreg!("dbgbcr0_el1"),
        report,
    );
    expect_zero(
        "MDSCR_EL1 after writing it",
        read_sysreg!("mdscr_el1"),
        report,
    );
    expect_done(
        "DBGWVR0_EL1",
        write_sysreg!("dbgwvr0_el1", scratch.base as u64),
        report,
    );
    expect_zero(
        "DBGWVR0_EL1 after writing it",
        read_sysreg!("dbgwvr0_el1"),
        report,
    );
    expect_done("OSLAR_EL1 = 1", write_sysreg!("oslar_el1", 1u64), report);
    expect_zero("OSLSR_EL1", read_sysreg!("oslsr_el1"), report);
    expect_zero("MDRAR_EL1", read_sysreg!("mdrar_el1"), report);
    expect_done("OSDLR_EL1 = 1", write_sysreg!("osdlr_el1", 1u64), report);
    expect_zero("DBGCLAIMCLR_EL1", read_sysreg!("dbgclaimclr_el1"), report);

    // Implementation-defined auxiliary control.
    expect_zero("ACTLR_EL1", read_sysreg!("actlr_el1"), report);
    expect_done("ACTLR_EL1 = 0", write_sysreg!("actlr_el1", 0u64), report);

    let pfr0 = read_sysreg!("id_aa64pfr0_el1").unwrap_or(0);
    let dfr0 = read_sysreg!("id_aa64dfr0_el1").unwrap_or(0);
    println!(
        "adversary: ID_AA64PFR0_EL1 {:#x}, ID_AA64DFR0_EL1 {:#x} (PMUVer {}, DebugVer {})",
        pfr0,
        dfr0,
        id_field(dfr0, 8),
        id_field(dfr0, 0)
    );
    if id_field(pfr0, 28) != 0 {
        // ERRIDR_EL1 (trapped by HCR_EL2.TERR). QEMU models no other error record register
        // (ERRSELR_EL1, ERX*: UNDEFINED at EL1 before any EL2 trap), so only this one is tried.
        expect_zero("ERRIDR_EL1", read_sysreg!("s3_0_c5_c3_0"), report);
    } else {
        println!("adversary: no FEAT_RAS: error records not tried");
    }
    if id_field(dfr0, 40) != 0 {
        expect_done(
            "TRFCR_EL1 = E1TRE",
            write_sysreg!("s3_0_c1_c2_1", 2u64),
            report,
        );
        expect_zero("TRFCR_EL1", read_sysreg!("s3_0_c1_c2_1"), report);
    } else {
        println!("adversary: no FEAT_TRF: trace filter not tried");
    }

    set_way(scratch, report);
    let _ = info;
    speculation(report);
}

/// Cleans and invalidates every data/unified cache level by set/way, as firmware does before
/// turning its MMU off, then checks its own memory.
fn set_way(scratch: MemRegion, report: &mut Report) {
    crate::fill(scratch);
    let clidr = read_sysreg!("clidr_el1").unwrap_or(0);
    let mut ops = 0u64;
    let mut refused = 0u64;
    for level in 0..7u64 {
        if !matches!((clidr >> (3 * level)) & 7, 2..=4) {
            continue;
        }
        let ccsidr = select_and_read_ccsidr(level);
        let log2_line = (ccsidr & 7) + 4;
        let ways = ((ccsidr >> 3) & 0x3ff) + 1;
        let sets = ((ccsidr >> 13) & 0x7fff) + 1;
        let way_shift = 32 - ceil_log2(ways);
        for way in 0..ways {
            for set in 0..sets {
                let op = (if ways > 1 { way << way_shift } else { 0 })
                    | (set << log2_line)
                    | (level << 1);
                // SAFETY: DC CISW only writes back and invalidates cache lines (memory as seen
                // by a coherent observer is unchanged); trapped and emulated by the hypervisor.
                let r =
                    unsafe { catching_asm(|| asm!("dc cisw, {}", in(reg) op, options(nostack))) };
                ops += 1;
                if r.is_err() {
                    refused += 1;
                }
            }
        }
        println!(
            "adversary: set/way: level {} ({} sets x {} ways of {} B) cleaned",
            level + 1,
            sets,
            ways,
            1u64 << log2_line
        );
    }
    // One of each other kind, and operands for sets, ways and levels no cache has.
    for op in [0u64, 0xffff_fffe, 0xe, u64::MAX] {
        // SAFETY: as above; DC ISW is upgraded to clean + invalidate (HCR_EL2.SWIO).
        let r = unsafe {
            catching_asm(
                || asm!("dc isw, {0}", "dc csw, {0}", "dc cisw, {0}", in(reg) op, options(nostack)),
            )
        };
        ops += 3;
        if r.is_err() {
            refused += 1;
        }
    }
    if refused == 0 {
        println!("adversary: set/way: {} operations, none refused", ops);
    } else {
        println!(
            "adversary: set/way: {} of {} operations raised exceptions",
            refused, ops
        );
        report.fail();
    }
    match crate::check_fill(scratch) {
        Ok(()) => println!("adversary: set/way: own memory intact"),
        Err((addr, want, got)) => {
            println!(
                "adversary: set/way: own memory at {:#x} changed: {:#x}, was {:#x}",
                addr, got, want
            );
            report.fail();
        }
    }
}

fn select_and_read_ccsidr(level: u64) -> u64 {
    let v: u64;
    // SAFETY: CSSELR_EL1 selects which cache CCSIDR_EL1 describes; nothing else depends on it.
    unsafe {
        asm!("msr csselr_el1, {l}", "isb", "mrs {v}, ccsidr_el1",
            l = in(reg) level << 1, v = out(reg) v, options(nostack));
    }
    v
}

fn ceil_log2(n: u64) -> u64 {
    if n <= 1 {
        0
    } else {
        64 - u64::from((n - 1).leading_zeros())
    }
}

/// SMCCC ARCH_FEATURES for the speculation workarounds, and the calls themselves.
fn speculation(report: &mut Report) {
    const ARCH_FEATURES: u64 = 0x8000_0001;
    const VERSION: u64 = 0x8000_0000;
    let features = |id: u64| call_catching(Conduit::Smc, ARCH_FEATURES, [id, 0, 0, 0, 0, 0]);
    for (id, name) in [(ARCH_FEATURES, "ARCH_FEATURES"), (VERSION, "SMCCC_VERSION")] {
        match features(id) {
            Ok(r) if r[0] == 0 => println!("adversary: smccc: ARCH_FEATURES({}) = 0", name),
            other => {
                println!(
                    "adversary: smccc: ARCH_FEATURES({}) = {:?}, expected 0",
                    name, other
                );
                report.fail();
            }
        }
    }
    for (id, name, arg) in [
        (0x8000_8000u64, "WORKAROUND_1", 0u64),
        (0x8000_7fff, "WORKAROUND_2", 0),
        (0x8000_3fff, "WORKAROUND_3", 0),
    ] {
        let answer = match features(id) {
            Ok(r) => r[0] as u32 as i32,
            Err(f) => {
                println!(
                    "adversary: smccc: ARCH_FEATURES({}) raised ESR {:#x}",
                    name, f.esr
                );
                report.fail();
                continue;
            }
        };
        if !matches!(answer, -2..=1) {
            println!(
                "adversary: smccc: ARCH_FEATURES({}) = {}: not an SMCCC answer",
                name, answer
            );
            report.fail();
        }
        // WA2 with x1 = 0 asks to turn the mitigation *off*: it must not be honoured.
        match call_catching(Conduit::Smc, id, [arg, 0, 0, 0, 0, 0]) {
            Ok(r) => println!(
                "adversary: smccc: {}: ARCH_FEATURES {}, the call returned {}",
                name, answer, r[0] as u32 as i32
            ),
            Err(f) => {
                println!("adversary: smccc: {} raised ESR {:#x}", name, f.esr);
                report.fail();
            }
        }
    }
}
