//! `adversary`: a hostile guest that checks Tessera's isolation from the inside.
//!
//! Linked at 0x8008_0000 (its VM's RAM starts at IPA 0x8000_0000). It:
//! 1. reads every `probe=ADDR` of its bootargs (addresses it must *not* reach: other VMs' RAM,
//!    the hypervisor, devices it does not own) and expects each read to fault, plus a write to
//!    the first one;
//! 2. checks that its own RAM works (and that a probe of its own RAM does *not* fault, so the
//!    faults above mean something);
//! 3. checks the ABI's argument validation: `ConsoleWrite` with memory it does not own (outside
//!    its RAM, straddling its end, wrapping, at the probe addresses) or an oversized length must
//!    return `InvalidParameters`;
//! 4. fuzzes the hypervisor with 2000 `HVC` and 2000 `SMC` calls (fixed-seed xorshift function
//!    ids and arguments over the Tessera, PSCI and SMCCC ranges, minus the calls that
//!    legitimately power off, reset or suspend the caller), each of which must come back;
//! 5. checks its memory and identity again, prints
//!    `adversary: <k>/<n> probes faulted, <m> hypercalls survived`, then `adversary: ok` and
//!    exits 0 if everything held, else `adversary: FAILED <why>` and exits 1.
//!
//! That is `mode=probe` (the default). The other modes (`mode=semihosting`, `sysregs`, `exit`)
//! are in [`modes`]; the standing attack suite's (`stage1`, `irq`, `hvc`, `timer-storm`,
//! `spin`, `level-irq`) in [`attacks`]. `exit=N` makes a successful run exit with N instead of 0.
#![no_std]
#![no_main]

mod attacks;
mod flood;
mod modes;

use tessera_guest_rt::abi::{self, Call, Error};
use tessera_guest_rt::dt::parse_u64;
use tessera_guest_rt::exception::{probe_read, probe_write, Fault};
use tessera_guest_rt::smccc::{call_catching, Conduit};
use tessera_guest_rt::{entry, println, tessera, BootInfo, MemRegion};

entry!(main);

/// Most probes read from the bootargs.
const MAX_PROBES: usize = 16;
/// Fuzzed calls per conduit.
const FUZZ_CALLS: usize = 2000;
/// Bytes of own RAM checked.
const OWN_RAM_BYTES: usize = 1 << 20;
/// Value written by the write probe.
const PROBE_WRITE_VALUE: u32 = 0xadad_adad;

fn main(info: &'static BootInfo) -> u32 {
    let mut report = Report::default();
    let mode = info.bootarg("mode").unwrap_or("probe");
    match mode {
        "probe" => {
            run(info, &mut report);
            println!(
                "adversary: {}/{} probes faulted, {} hypercalls survived",
                report.probes_faulted, report.probes, report.calls_survived
            );
        }
        "semihosting" => modes::semihosting(&mut report),
        "sysregs" => match info.scratch(OWN_RAM_BYTES) {
            Some(scratch) => modes::sysregs(info, scratch, &mut report),
            None => {
                println!("adversary: no free RAM of its own to test");
                report.fail();
            }
        },
        "exit" => {}
        "stage1" => match info.scratch(OWN_RAM_BYTES) {
            Some(scratch) => attacks::stage1(info, scratch, &mut report),
            None => {
                println!("adversary: no free RAM of its own to test");
                report.fail();
            }
        },
        "irq" => attacks::irq(info, &mut report),
        "hvc" => attacks::hvc_abuse(info, &mut report),
        "timer-storm" => attacks::timer_storm(info, &mut report),
        "spin" => attacks::spin(info),
        "level-irq" => attacks::level_irq(info, &mut report),
        "console-flood" => flood::console_flood(info, &mut report),
        other => {
            println!("adversary: unknown mode={}", other);
            report.fail();
        }
    }
    let code = match info.bootarg("exit").map(parse_u64) {
        None => 0,
        Some(Some(c)) if c <= u64::from(u32::MAX) => c as u32,
        Some(_) => {
            println!("adversary: bad exit=N in bootargs");
            report.fail();
            0
        }
    };
    if report.failures == 0 {
        println!("adversary: ok (mode {}, exit {})", mode, code);
        code
    } else {
        println!(
            "adversary: FAILED {} check(s) failed (see above)",
            report.failures
        );
        1
    }
}

#[derive(Default)]
struct Report {
    probes: usize,
    probes_faulted: usize,
    calls_survived: usize,
    failures: usize,
}

impl Report {
    fn fail(&mut self) {
        self.failures += 1;
    }
}

fn run(info: &'static BootInfo, report: &mut Report) {
    println!("adversary: start");
    if let Some(e) = info.dt_error {
        println!(
            "adversary: cannot read the device tree at {:#x}: {}",
            info.dtb.base, e
        );
        report.fail();
        return;
    }
    let identity = if info.tessera {
        match tessera::identity() {
            Ok(id) => {
                println!("adversary: vm {}, vcpu {} of {}", id.vm, id.vcpu, id.vcpus);
                Some(id)
            }
            Err(e) => {
                println!("adversary: Identity hypercall failed: {:?}", e);
                report.fail();
                None
            }
        }
    } else {
        println!(
            "adversary: not running under Tessera: nothing to isolate from; ABI checks skipped"
        );
        report.fail();
        None
    };
    for r in &info.ram {
        println!("adversary: own ram {}", r);
    }

    // The scratch area first: probes must not land in it, and it backs the buffer checks.
    let Some(scratch) = info.scratch(OWN_RAM_BYTES) else {
        println!("adversary: no free RAM of its own to test");
        report.fail();
        return;
    };

    let probes = read_probes(info, report);
    for (i, &addr) in probes.iter().enumerate() {
        probe(info, addr, i == 0, report);
    }

    own_memory(scratch, report);
    if info.tessera {
        abi_checks(info, scratch, &probes, report);
    }

    let mut rng = XorShift(0x7e55_e7a0_dead_beef);
    for conduit in [Conduit::Hvc, Conduit::Smc] {
        fuzz(info, conduit, &mut rng, report);
    }

    // The fuzzing must not have touched this VM's memory or identity.
    if let Err((addr, want, got)) = check_fill(scratch) {
        println!(
            "adversary: own memory changed during fuzzing: {:#x} = {:#x}, was {:#x}",
            addr, got, want
        );
        report.fail();
    }
    if let Some(before) = identity {
        match tessera::identity() {
            Ok(after) if after == before => {}
            other => {
                println!(
                    "adversary: Identity changed during fuzzing: {:?} -> {:?}",
                    before, other
                );
                report.fail();
            }
        }
    }
}

/// The `probe=ADDR` words of the bootargs.
fn read_probes(info: &BootInfo, report: &mut Report) -> heapless::Vec<usize, MAX_PROBES> {
    let mut probes = heapless::Vec::new();
    for word in info.bootarg_values("probe") {
        match parse_u64(word).and_then(|a| usize::try_from(a).ok()) {
            Some(addr) => {
                if probes.push(addr).is_err() {
                    println!(
                        "adversary: more than {} probes; ignoring probe={}",
                        MAX_PROBES, word
                    );
                }
            }
            None => {
                println!("adversary: bad probe={} in bootargs", word);
                report.fail();
            }
        }
    }
    if probes.is_empty() {
        println!("adversary: no probe=ADDR in bootargs: isolation not tested");
        report.fail();
    }
    probes
}

/// Whether `addr` lies in this VM's own RAM (probing it tests nothing and writing could hurt).
fn own_ram(info: &BootInfo, addr: usize) -> bool {
    info.ram.iter().any(|r| r.contains(addr))
}

fn describe(f: &Fault) -> (u64, u8, u8) {
    (f.esr, f.ec(), f.fsc())
}

/// Reads `addr` (and writes it if `write`), expecting faults.
fn probe(info: &BootInfo, addr: usize, write: bool, report: &mut Report) {
    report.probes += 1;
    if own_ram(info, addr) {
        println!(
            "adversary: probe {:#x} is in this VM's own RAM: not a probe (fix the config)",
            addr
        );
        report.fail();
        return;
    }
    let read_faulted = match probe_read(addr) {
        Err(f) => {
            let (esr, ec, fsc) = describe(&f);
            let kind = if f.serror { "SError" } else { "sync" };
            println!(
                "adversary: probe {:#x} faulted (ESR {:#x}, {} EC {:#x} FSC {:#x})",
                addr, esr, kind, ec, fsc
            );
            true
        }
        Ok(value) => {
            println!(
                "adversary: probe {:#x} NOT faulted — isolation broken (read {:#x})",
                addr, value
            );
            false
        }
    };
    // Write only where reading was refused: a readable address is already a failure, and
    // writing there could corrupt whoever owns it.
    let write_faulted = if write && read_faulted {
        // SAFETY: `addr` is not in this VM's RAM (checked above), so a write that is not
        // refused changes nothing this program relies on (its image, stacks and data live in
        // its RAM); such a write is exactly the isolation failure being reported.
        match unsafe { probe_write(addr, PROBE_WRITE_VALUE) } {
            Err(f) => {
                println!(
                    "adversary: probe {:#x} write faulted (ESR {:#x})",
                    addr, f.esr
                );
                true
            }
            Ok(()) => {
                println!(
                    "adversary: probe {:#x} write NOT faulted — isolation broken",
                    addr
                );
                false
            }
        }
    } else {
        true
    };
    if read_faulted && write_faulted {
        report.probes_faulted += 1;
    } else {
        report.fail();
    }
}

/// Fills `region` with a known pattern (printable bytes, in case a buggy ConsoleWrite prints it).
fn fill(region: MemRegion) {
    let base = region.base as *mut u64;
    for i in 0..region.size / 8 {
        // SAFETY: `region` comes from `BootInfo::scratch`: this VM's RAM, holding neither the
        // image, the stacks nor the DTB, used by nothing else; the index stays inside it.
        unsafe { base.add(i).write_volatile(pattern(i)) };
    }
}

/// Checks the pattern of [`fill`]: the first mismatch as `(address, expected, found)`.
fn check_fill(region: MemRegion) -> Result<(), (usize, u64, u64)> {
    let base = region.base as *const u64;
    for i in 0..region.size / 8 {
        // SAFETY: as in `fill`.
        let got = unsafe { base.add(i).read_volatile() };
        if got != pattern(i) {
            return Err((region.base + 8 * i, pattern(i), got));
        }
    }
    Ok(())
}

/// Eight printable ASCII bytes that depend on the word index.
fn pattern(i: usize) -> u64 {
    let c = b'a' + (i % 26) as u8;
    u64::from_le_bytes([c, c, c, c, c, c, c, b'.'])
}

/// Own RAM must be readable and writable, and a probe of it must not fault.
fn own_memory(scratch: MemRegion, report: &mut Report) {
    fill(scratch);
    match check_fill(scratch) {
        Ok(()) => println!("adversary: own memory {} read/write ok", scratch),
        Err((addr, want, got)) => {
            println!(
                "adversary: own memory at {:#x}: wrote {:#x}, read {:#x}",
                addr, want, got
            );
            report.fail();
        }
    }
    match probe_read(scratch.base) {
        Ok(v) if u64::from(v) == pattern(0) & 0xffff_ffff => {}
        Ok(v) => {
            println!(
                "adversary: probe of own RAM {:#x} read {:#x}: probes are unreliable",
                scratch.base, v
            );
            report.fail();
        }
        Err(f) => {
            println!(
                "adversary: probe of own RAM {:#x} faulted (ESR {:#x}): probes are unreliable",
                scratch.base, f.esr
            );
            report.fail();
        }
    }
}

/// The hypervisor must refuse buffers the VM does not own, and oversized ones.
fn abi_checks(info: &BootInfo, scratch: MemRegion, probes: &[usize], report: &mut Report) {
    match tessera::version() {
        Ok((major, minor)) if major == abi::VERSION_MAJOR => {
            println!("adversary: Tessera ABI {}.{}", major, minor);
        }
        other => {
            println!(
                "adversary: Version hypercall: {:?}, expected major {}",
                other,
                abi::VERSION_MAJOR
            );
            report.fail();
        }
    }

    let msg = b"adversary: console write via hypercall ok\n";
    match tessera::console_write(msg) {
        Ok(n) if n == msg.len() => {}
        other => {
            println!(
                "adversary: ConsoleWrite of {} own bytes: {:?}",
                msg.len(),
                other
            );
            report.fail();
        }
    }

    let ram_end = info.ram.iter().map(|r| r.end()).max().unwrap_or(0) as u64;
    let mut bad: heapless::Vec<(u64, u64, &str), { 4 + MAX_PROBES }> = heapless::Vec::new();
    let _ = bad.push((0x1000, 16, "outside RAM"));
    let _ = bad.push((scratch.base as u64, abi::CONSOLE_WRITE_MAX + 1, "oversized"));
    let _ = bad.push((ram_end - 8, 64, "straddling the end of RAM"));
    let _ = bad.push((u64::MAX - 7, 16, "wrapping around"));
    for &p in probes {
        let _ = bad.push((p as u64, 16, "at a probe address"));
    }
    for (ipa, len, what) in bad {
        match tessera::console_write_raw(ipa, len) {
            Err(Some(Error::InvalidParameters)) => {
                println!(
                    "adversary: ConsoleWrite({:#x}, {}) {} refused",
                    ipa, len, what
                );
            }
            other => {
                println!(
                    "adversary: ConsoleWrite({:#x}, {}) {} returned {:?}, expected InvalidParameters",
                    ipa, len, what, other
                );
                report.fail();
            }
        }
    }
}

/// Fixed-seed xorshift64.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// SMCCC ids (with bit 30, the SMC64 flag, cleared) that legitimately power off, reset,
/// suspend or freeze the caller, whichever convention (SMC32/SMC64) the callee decodes.
const DANGEROUS: [u32; 9] = [
    0x8400_0001, // PSCI CPU_SUSPEND
    0x8400_0002, // PSCI CPU_OFF
    0x8400_0008, // PSCI SYSTEM_OFF
    0x8400_0009, // PSCI SYSTEM_RESET
    0x8400_000B, // PSCI CPU_FREEZE
    0x8400_000C, // PSCI CPU_DEFAULT_SUSPEND
    0x8400_000E, // PSCI SYSTEM_SUSPEND
    0x8400_0012, // PSCI SYSTEM_RESET2
    Call::Shutdown as u32 & !SMC64,
];
const SMC64: u32 = 1 << 30;
const PSCI_CPU_ON: u32 = 0x8400_0003;

/// Whether calling `id` could legitimately end this VM or CPU: SMCCC decodes only `w0`.
fn dangerous(id: u64) -> bool {
    DANGEROUS.contains(&(id as u32 & !SMC64))
}

/// A function id: the first calls sweep the low ids of each range, the rest are random
/// (within the Tessera, PSCI and SMCCC-arch ranges, any 32-bit value, any 64-bit value).
fn pick_id(n: usize, rng: &mut XorShift) -> u64 {
    const SWEEP: [(u64, u64); 5] = [
        (0xC600_0000, 64), // Tessera
        (0x8400_0000, 32), // PSCI SMC32
        (0xC400_0000, 32), // PSCI SMC64
        (0x8000_0000, 4),  // SMCCC arch
        (0x8600_0000, 8),  // Tessera ids with the SMC32 convention
    ];
    let mut k = n as u64;
    for (base, count) in SWEEP {
        if k < count {
            return base + k;
        }
        k -= count;
    }
    let r = rng.next();
    match r % 8 {
        0 | 1 => 0xC600_0000 | (r >> 8) & 0x3f,
        2 => 0xC600_0000 | (r >> 8) & 0xffff,
        3 => 0x8400_0000 | (r >> 8) & 0x3f,
        4 => 0xC400_0000 | (r >> 8) & 0x3f,
        5 => [0x8400_0000, 0xC400_0000, 0x8000_0000][(r >> 40) as usize % 3] | (r >> 8) & 0xffff,
        6 => r >> 32,
        _ => rng.next(),
    }
}

/// An argument: mostly random, sometimes a small or boundary value.
fn pick_arg(rng: &mut XorShift) -> u64 {
    let r = rng.next();
    match r % 8 {
        0 => 0,
        1 => u64::MAX,
        2 => (r >> 8) & 0xff,
        3 => 0x8000_0000 | (r >> 8) & 0xffff,
        _ => rng.next(),
    }
}

/// `FUZZ_CALLS` calls through `conduit`; each must return (any status) or raise an exception
/// in this VM (e.g. an injected UNDEFINED), never take the VM down.
fn fuzz(info: &BootInfo, conduit: Conduit, rng: &mut XorShift, report: &mut Report) {
    let (mut returned, mut not_supported, mut exceptions, mut skipped) =
        (0usize, 0usize, 0usize, 0usize);
    let mut first_exception: Option<Fault> = None;
    let mut n = 0;
    while returned + exceptions < FUZZ_CALLS {
        let id = pick_id(n, rng);
        n += 1;
        if dangerous(id) {
            skipped += 1;
            continue;
        }
        let mut args = [0u64; 6];
        for a in &mut args {
            *a = pick_arg(rng);
        }
        let w = id as u32 & !SMC64;
        if w == PSCI_CPU_ON {
            // Only CPUs that do not exist: starting a real one at a random address would
            // crash this VM, legitimately.
            args[0] = (args[0] & !0xff) | 0xff;
            while info.cpus.contains(&(args[0] & 0xff_00ff_ffff)) {
                args[0] = args[0].wrapping_add(0x100);
            }
        }
        if w == Call::ConsoleWrite as u32 & !SMC64 && own_ram(info, args[0] as usize) {
            // Never a real buffer (it would print junk): keep the pointer outside own RAM.
            args[0] = 0;
        }
        match call_catching(conduit, id, args) {
            Ok(r) => {
                returned += 1;
                if r[0] == Error::NotSupported.as_reg() {
                    not_supported += 1;
                }
            }
            Err(f) => {
                exceptions += 1;
                first_exception.get_or_insert(f);
            }
        }
    }
    report.calls_survived += returned + exceptions;
    println!(
        "adversary: fuzz {}: {} calls survived ({} returned, {} NOT_SUPPORTED, {} raised exceptions; {} skipped)",
        conduit.name(),
        returned + exceptions,
        returned,
        not_supported,
        exceptions,
        skipped
    );
    if let Some(f) = first_exception {
        println!(
            "adversary: fuzz {}: first exception ESR {:#x} (EC {:#x})",
            conduit.name(),
            f.esr,
            f.ec()
        );
    }
}
