//! `cargo xtask bench --el2-trace`: how many EL2 instructions Tessera executes between a
//! physical IRQ and the virtual IRQ it injects, counted from a QEMU
//! `-d in_asm,exec,nochain,int` log (read line by line; the log is ~300 MB).
//!
//! What the log says (QEMU 9/10, one TCG thread under `-icount`):
//! - `IN: [sym]` then `0x<addr>:  <insn>` lines: a translation block (TB) was translated; its
//!   length is the number of those lines. The next `Trace` line is the first run of that TB,
//!   so its host address identifies the TB from then on (one guest PC can have several TBs:
//!   under `-icount` QEMU re-translates shorter ones when the instruction budget runs out).
//! - `Trace <cpu>: 0x<host> [<cs_base>/<pc>/<flags>/<cflags>] [sym]`: the CPU enters a TB.
//! - `Stopped execution of TB chain before 0x<host> [<pc>]`: the TB just entered executed no
//!   instruction (icount budget or an interrupt); it is entered again later.
//! - `Taking exception 5 [IRQ] on CPU <n>`: a physical IRQ (to EL2);
//!   `Taking exception 14 [Virtual IRQ] on CPU <n>`: the guest takes a virtual IRQ.
//!
//! A sample: a physical IRQ on CPU n followed by a virtual IRQ on CPU n with no other IRQ of
//! CPU n between; its count is the instructions of the TBs CPU n executed in between whose
//! PC lies in the hypervisor image.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::util::{self, Paths};

const EXC_IRQ: u32 = 5;
const EXC_VIRQ: u32 = 14;

/// One injection: a physical IRQ and the virtual IRQ after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The CPU that took both (None: the log does not say).
    pub cpu: Option<u32>,
    /// EL2 instructions in between.
    pub insns: u64,
    /// (TB start PC, instructions) of the EL2 TBs executed in between.
    pub tbs: Vec<(u64, u64)>,
}

#[derive(Clone, Copy)]
struct Tb {
    cpu: u32,
    host: u64,
    pc: u64,
    len: u64,
}

struct Open {
    cpu: Option<u32>,
    insns: u64,
    tbs: Vec<(u64, u64)>,
}

/// The streaming parser: feed it lines, then take the samples.
pub struct Parser {
    /// Hypervisor image [lo, hi).
    lo: u64,
    hi: u64,
    host_len: HashMap<u64, u64>,
    pc_len: HashMap<u64, u64>,
    /// The TB being listed: (first address, instructions so far).
    block: Option<(Option<u64>, u64)>,
    /// Length of the TB just translated, for the next `Trace` line.
    fresh: Option<u64>,
    /// The last TB entered, counted once the next line shows it was not stopped.
    pending: Option<Tb>,
    open: Vec<Open>,
    samples: Vec<Sample>,
    /// Lines read, TB executions seen.
    pub lines: u64,
    pub tb_runs: u64,
}

fn hex(s: &str) -> Option<u64> {
    let s = s.trim();
    u64::from_str_radix(s.strip_prefix("0x").unwrap_or(s), 16).ok()
}

/// `0x<addr>:  <insn>` → addr.
fn insn_addr(line: &str) -> Option<u64> {
    let (a, _) = line.strip_prefix("0x")?.split_once(':')?;
    u64::from_str_radix(a, 16).ok()
}

/// `Trace <cpu>: 0x<host> [<cs_base>/<pc>/...]` → (cpu, host, pc).
fn trace_line(line: &str) -> Option<(u32, u64, u64)> {
    let (cpu, rest) = line.strip_prefix("Trace ")?.split_once(':')?;
    let rest = rest.trim_start();
    let (host, rest) = rest.split_once(' ')?;
    let fields = rest.trim_start().strip_prefix('[')?;
    let fields = &fields[..fields.find(']')?];
    let pc = fields.split('/').nth(1)?;
    Some((cpu.trim().parse().ok()?, hex(host)?, hex(pc)?))
}

/// `Stopped execution of TB chain before 0x<host> [...]` → host.
fn stopped_line(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("Stopped execution of TB chain before ")?;
    hex(rest.split_whitespace().next()?)
}

/// `Taking exception <n> [<name>] [on CPU <c>]` → (n, c).
fn exception_line(line: &str) -> Option<(u32, Option<u32>)> {
    let rest = line.strip_prefix("Taking exception ")?;
    let n = rest.split_whitespace().next()?.parse().ok()?;
    let cpu = rest
        .rsplit_once(" on CPU ")
        .and_then(|(_, c)| c.trim().parse().ok());
    Some((n, cpu))
}

impl Parser {
    /// `range`: the hypervisor image, [start, end).
    pub fn new(range: (u64, u64)) -> Parser {
        Parser {
            lo: range.0,
            hi: range.1,
            host_len: HashMap::new(),
            pc_len: HashMap::new(),
            block: None,
            fresh: None,
            pending: None,
            open: Vec::new(),
            samples: Vec::new(),
            lines: 0,
            tb_runs: 0,
        }
    }

    fn commit(&mut self) {
        let Some(tb) = self.pending.take() else {
            return;
        };
        self.tb_runs += 1;
        if tb.pc < self.lo || tb.pc >= self.hi || tb.len == 0 {
            return;
        }
        for o in &mut self.open {
            if o.cpu.is_none_or(|c| c == tb.cpu) {
                o.insns += tb.len;
                match o.tbs.last_mut() {
                    Some(last) if last.0 == tb.pc => last.1 += tb.len,
                    _ => o.tbs.push((tb.pc, tb.len)),
                }
            }
        }
    }

    pub fn line(&mut self, line: &str) {
        self.lines += 1;
        let line = line.trim_end_matches(['\n', '\r']);
        if let Some((first, n)) = &mut self.block {
            if let Some(a) = insn_addr(line) {
                first.get_or_insert(a);
                *n += 1;
                return;
            }
            if let Some(first) = *first {
                self.pc_len.insert(first, *n);
                self.fresh = Some(*n);
            }
            self.block = None;
        }
        if line.starts_with("IN:") {
            self.block = Some((None, 0));
        } else if let Some((cpu, host, pc)) = trace_line(line) {
            self.commit();
            let len = match self.fresh.take() {
                Some(n) => {
                    self.host_len.insert(host, n);
                    n
                }
                None => self
                    .host_len
                    .get(&host)
                    .or_else(|| self.pc_len.get(&pc))
                    .copied()
                    .unwrap_or(0),
            };
            self.pending = Some(Tb { cpu, host, pc, len });
        } else if let Some(host) = stopped_line(line) {
            if self.pending.is_some_and(|t| t.host == host) {
                self.pending = None;
            }
        } else if let Some((n, cpu)) = exception_line(line) {
            self.commit();
            let mine = |o: &Open| cpu.is_none() || o.cpu == cpu;
            match n {
                EXC_IRQ => {
                    // Another IRQ before the virtual one: that one is no sample.
                    self.open.retain(|o| !mine(o));
                    self.open.push(Open {
                        cpu,
                        insns: 0,
                        tbs: Vec::new(),
                    });
                }
                EXC_VIRQ => {
                    if let Some(i) = self.open.iter().position(mine) {
                        let o = self.open.remove(i);
                        self.samples.push(Sample {
                            cpu: o.cpu,
                            insns: o.insns,
                            tbs: o.tbs,
                        });
                    }
                }
                _ => {}
            }
        }
    }

    /// The samples, in the order their virtual IRQs were taken.
    pub fn finish(mut self) -> Vec<Sample> {
        self.commit();
        self.samples
    }
}

/// Parses a whole log.
pub fn parse_reader(r: impl BufRead, range: (u64, u64)) -> Result<(Vec<Sample>, u64)> {
    let mut p = Parser::new(range);
    let mut r = r;
    let mut buf = Vec::with_capacity(256);
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf).context("reading the trace")? == 0 {
            break;
        }
        p.line(&String::from_utf8_lossy(&buf));
    }
    let lines = p.lines;
    Ok((p.finish(), lines))
}

/// The two figures' samples: (timer, ipi). With CPU numbers: timer = CPU 0 samples before
/// the first CPU 1 sample (the guest measures the timer before the IPI), ipi = CPU 1 samples;
/// without: the first `timer_hint` samples, then the rest.
pub fn split(samples: &[Sample], timer_hint: usize) -> (Vec<&Sample>, Vec<&Sample>) {
    if samples.iter().all(|s| s.cpu.is_some()) {
        let first_ipi = samples
            .iter()
            .position(|s| s.cpu == Some(1))
            .unwrap_or(samples.len());
        let timer = samples[..first_ipi]
            .iter()
            .filter(|s| s.cpu == Some(0))
            .collect();
        let ipi = samples.iter().filter(|s| s.cpu == Some(1)).collect();
        (timer, ipi)
    } else {
        let k = timer_hint.min(samples.len());
        (samples[..k].iter().collect(), samples[k..].iter().collect())
    }
}

/// Median (upper for an even count), min and max of the samples' counts.
pub fn stats(samples: &[&Sample]) -> Option<(u64, u64, u64)> {
    let mut v: Vec<u64> = samples.iter().map(|s| s.insns).collect();
    v.sort_unstable();
    Some((*v.get(v.len() / 2)?, v[0], v[v.len() - 1]))
}

/// A symbol as `llvm-nm -C` leaves Rust's legacy mangling, made readable: no `::h<hash>`
/// suffix, `$LT$`-style escapes and `..` undone.
pub fn tidy(name: &str) -> String {
    let name = match name.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            head
        }
        _ => name,
    };
    if !name.contains('$') && !name.contains("..") {
        return name.to_string();
    }
    const ESCAPES: [(&str, &str); 13] = [
        ("$LT$", "<"),
        ("$GT$", ">"),
        ("$C$", ","),
        ("$u20$", " "),
        ("$RF$", "&"),
        ("$BP$", "*"),
        ("$SP$", "@"),
        ("$LP$", "("),
        ("$RP$", ")"),
        ("$u27$", "'"),
        ("$u5b$", "["),
        ("$u5d$", "]"),
        ("$u7e$", "~"),
    ];
    // A segment that starts with an escape is prefixed with `_`.
    let mut out = name
        .replace("..", "::")
        .split("::")
        .map(|seg| match seg.strip_prefix('_') {
            Some(rest) if rest.starts_with('$') => rest,
            _ => seg,
        })
        .collect::<Vec<_>>()
        .join("::");
    for (from, to) in ESCAPES {
        out = out.replace(from, to);
    }
    out.replace("$u7b$", "{").replace("$u7d$", "}")
}

/// Function symbols (start address, name) of an ELF, sorted, plus the image range.
pub struct Symbols {
    pub funcs: Vec<(u64, String)>,
    pub image: (u64, u64),
}

impl Symbols {
    /// From `llvm-nm -C -n` output: text symbols (t/T/w/W) and `__image_start`/`__image_end`.
    pub fn from_nm(text: &str) -> Result<Symbols> {
        let mut funcs = Vec::new();
        let (mut start, mut end) = (None, None);
        for line in text.lines() {
            let mut it = line.splitn(3, ' ');
            let (Some(addr), Some(kind), Some(name)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            let Ok(addr) = u64::from_str_radix(addr, 16) else {
                continue;
            };
            match name {
                "__image_start" => start = Some(addr),
                "__image_end" => end = Some(addr),
                _ if matches!(kind, "t" | "T" | "w" | "W") && !name.starts_with("__") => {
                    funcs.push((addr, tidy(name)));
                }
                _ => {}
            }
        }
        let (Some(s), Some(e)) = (start, end) else {
            bail!("no __image_start/__image_end symbols");
        };
        funcs.retain(|&(a, _)| a >= s && a < e);
        funcs.sort_by_key(|f| f.0);
        Ok(Symbols {
            funcs,
            image: (s, e),
        })
    }

    /// `llvm-nm -C -n elf` (the rustup llvm-tools one).
    pub fn read(paths: &Paths, elf: &Path) -> Result<Symbols> {
        let nm = util::llvm_tool(paths, "llvm-nm")?;
        let text = util::output(Command::new(&nm).args(["-C", "-n"]).arg(elf))
            .with_context(|| format!("`llvm-nm -C -n {}` failed", elf.display()))?;
        Symbols::from_nm(&text).with_context(|| elf.display().to_string())
    }

    /// The function holding `pc`: the greatest start <= pc.
    pub fn function(&self, pc: u64) -> &str {
        let i = self.funcs.partition_point(|f| f.0 <= pc);
        match i {
            0 => "?",
            i => &self.funcs[i - 1].1,
        }
    }
}

/// The `n` functions with the most instructions per sample: (instructions per sample, name).
pub fn top_functions(samples: &[&Sample], syms: &Symbols, n: usize) -> Vec<(f64, String)> {
    let mut per: HashMap<&str, u64> = HashMap::new();
    for s in samples {
        for &(pc, k) in &s.tbs {
            *per.entry(syms.function(pc)).or_default() += k;
        }
    }
    let mut v: Vec<(u64, &str)> = per.into_iter().map(|(f, k)| (k, f)).collect();
    v.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let count = samples.len().max(1) as f64;
    v.into_iter()
        .take(n)
        .map(|(k, f)| (k as f64 / count, f.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(log: &str) -> Vec<Sample> {
        parse_reader(log.as_bytes(), (0x4020_0000, 0x4030_0000))
            .unwrap()
            .0
    }

    /// Two TBs of the hypervisor, one of the guest; CPU 0 takes an IRQ and its virtual IRQ.
    const BASIC: &str = "\
----------------
IN: 
0x40200c80:  d10443ff  sub      sp, sp, #0x110
0x40200c84:  a9007bfd  stp      x29, x30, [sp]
0x40200c88:  94000100  bl       #0x40201088

Trace 0: 0x7f0000000100 [00000000/0000000040200c80/00000461/ff022200] 
----------------
IN: 
0x40201088:  d503201f  nop      
0x4020108c:  d69f03e0  eret     

Trace 0: 0x7f0000000200 [00000000/0000000040201088/00000461/ff022200] 
----------------
IN: 
0x40080000:  d503201f  nop      

Trace 0: 0x7f0000000300 [00000000/0000000040080000/00000061/ff022200] 
Taking exception 5 [IRQ] on CPU 0
...from EL1 to EL2
Trace 0: 0x7f0000000100 [00000000/0000000040200c80/00000461/ff022200] 
Trace 0: 0x7f0000000200 [00000000/0000000040201088/00000461/ff022200] 
Exception return from AArch64 EL2 to AArch64 EL1 PC 0x40080000
Trace 0: 0x7f0000000300 [00000000/0000000040080000/00000061/ff022200] 
Taking exception 14 [Virtual IRQ] on CPU 0
";

    #[test]
    fn line_formats() {
        assert_eq!(
            trace_line("Trace 1: 0x7f2edf000100 [00000000/0000000040200c80/00000000/ff000000] "),
            Some((1, 0x7f2e_df00_0100, 0x4020_0c80))
        );
        assert_eq!(
            trace_line("Trace 0: 0x7f2edf000100 [00000000/0000000040000000/00000461/ff022200] sym"),
            Some((0, 0x7f2e_df00_0100, 0x4000_0000))
        );
        assert_eq!(trace_line("Trace 0: garbage"), None);
        assert_eq!(
            exception_line("Taking exception 14 [Virtual IRQ] on CPU 1"),
            Some((14, Some(1)))
        );
        assert_eq!(exception_line("Taking exception 5 [IRQ]"), Some((5, None)));
        assert_eq!(
            stopped_line("Stopped execution of TB chain before 0x7f00000001c0 [0000000040201538] "),
            Some(0x7f00_0000_01c0)
        );
        assert_eq!(
            insn_addr("0x40200044:  aa0003f3  mov x19, x0"),
            Some(0x4020_0044)
        );
        assert_eq!(insn_addr("Trace 0: 0x1"), None);
    }

    #[test]
    fn counts_el2_tbs_between_irq_and_virq() {
        let s = parse(BASIC);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].cpu, Some(0));
        // 3 + 2 hypervisor instructions; the guest TB (outside the image) does not count.
        assert_eq!(s[0].insns, 5);
        assert_eq!(s[0].tbs, vec![(0x4020_0c80, 3), (0x4020_1088, 2)]);
    }

    #[test]
    fn stopped_tb_and_retranslation() {
        // The TB at 0x40200c80 is entered and stopped before its first instruction (not
        // counted), then re-translated shorter at the same PC (a new host TB of 1
        // instruction): the host address decides the length, not the PC.
        let log = format!(
            "{BASIC}\
Taking exception 5 [IRQ] on CPU 0
Trace 0: 0x7f0000000100 [00000000/0000000040200c80/00000461/ff022200] 
Stopped execution of TB chain before 0x7f0000000100 [0000000040200c80] 
IN: 
0x40200c80:  d10443ff  sub      sp, sp, #0x110

Trace 0: 0x7f0000000400 [00000000/0000000040200c80/00000461/ff022201] 
Trace 0: 0x7f0000000100 [00000000/0000000040200c80/00000461/ff022200] 
Trace 0: 0x7f0000000200 [00000000/0000000040201088/00000461/ff022200] 
Taking exception 14 [Virtual IRQ] on CPU 0
"
        );
        let s = parse(&log);
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].insns, 1 + 3 + 2);
        assert_eq!(s[1].tbs, vec![(0x4020_0c80, 4), (0x4020_1088, 2)]);
    }

    #[test]
    fn per_cpu_pairing() {
        // CPU 1's IRQ: CPU 0's EL2 TBs in between are not its; an IRQ not followed by a
        // virtual IRQ (CPU 0, twice) gives no sample.
        let log = format!(
            "{BASIC}\
Taking exception 5 [IRQ] on CPU 1
Trace 1: 0x7f0000000100 [00000000/0000000040200c80/00000461/ff022200] 
Taking exception 5 [IRQ] on CPU 0
Trace 0: 0x7f0000000200 [00000000/0000000040201088/00000461/ff022200] 
Taking exception 5 [IRQ] on CPU 0
Trace 0: 0x7f0000000100 [00000000/0000000040200c80/00000461/ff022200] 
Trace 1: 0x7f0000000200 [00000000/0000000040201088/00000461/ff022200] 
Taking exception 14 [Virtual IRQ] on CPU 1
Taking exception 14 [Virtual IRQ] on CPU 0
Taking exception 14 [Virtual IRQ] on CPU 0
"
        );
        let s = parse(&log);
        let got: Vec<(Option<u32>, u64)> = s.iter().map(|s| (s.cpu, s.insns)).collect();
        assert_eq!(got, vec![(Some(0), 5), (Some(1), 5), (Some(0), 3)]);
        let (timer, ipi) = split(&s, 1);
        assert_eq!(timer.len(), 1);
        assert_eq!(ipi.len(), 1);
        assert_eq!(ipi[0].cpu, Some(1));
    }

    #[test]
    fn without_cpu_numbers() {
        let log = BASIC.replace(" on CPU 0", "").repeat(3);
        let s = parse(&log);
        assert_eq!(s.len(), 3);
        assert!(s.iter().all(|s| s.cpu.is_none() && s.insns == 5));
        let (timer, ipi) = split(&s, 2);
        assert_eq!((timer.len(), ipi.len()), (2, 1));
    }

    #[test]
    fn stats_and_symbols() {
        let mk = |k| Sample {
            cpu: Some(0),
            insns: k,
            tbs: vec![(0x4020_0c80, k - 2), (0x4020_1088, 2)],
        };
        let v = [mk(9), mk(5), mk(7), mk(6)];
        let refs: Vec<&Sample> = v.iter().collect();
        // Upper median of an even count, as the bench guest reports its figures.
        assert_eq!(stats(&refs), Some((7, 5, 9)));
        assert_eq!(stats(&[]), None);
        let nm = "\
0000000000200000 T __text_offset
0000000040200000 T __image_start
0000000040200000 T _start
0000000040200c00 t vectors
0000000040201080 t tessera::gic::inject
0000000040201100 t <tessera::x as core::fmt::Debug>::fmt
0000000040201200 t tessera_vgic_model::vgic::Vgic$LT$_$C$_$GT$::irq_mut::h044af9cea464d3b4
0000000040300000 B __image_end
";
        let syms = Symbols::from_nm(nm).unwrap();
        assert_eq!(syms.image, (0x4020_0000, 0x4030_0000));
        assert_eq!(syms.function(0x4020_0000), "_start");
        assert_eq!(syms.function(0x4020_0c80), "vectors");
        assert_eq!(syms.function(0x4020_1088), "tessera::gic::inject");
        assert_eq!(
            syms.function(0x4020_1104),
            "<tessera::x as core::fmt::Debug>::fmt"
        );
        assert_eq!(
            syms.function(0x4020_1200),
            "tessera_vgic_model::vgic::Vgic<_,_>::irq_mut"
        );
        assert_eq!(syms.function(0x100), "?");
        assert_eq!(
            tidy("_$LT$T$u20$as$u20$core..any..Any$GT$::type_id::h0123456789abcdef"),
            "<T as core::any::Any>::type_id"
        );
        assert_eq!(tidy("tessera::main::hx"), "tessera::main::hx");
        let top = top_functions(&refs, &syms, 10);
        assert_eq!(
            top,
            vec![
                (19.0 / 4.0, "vectors".to_string()),
                (2.0, "tessera::gic::inject".to_string())
            ]
        );
        assert!(Symbols::from_nm("0000000040200000 T _start\n").is_err());
    }
}
