//! The cache model, free of QEMU: set-associative caches with true LRU replacement on physical
//! addresses, the per-vCPU counters and the measurement windows. Unit-tested on the host.
//!
//! - [`Geometry`]: size, ways, line → sets and 4 KiB page colors (`size / ways / 4096`, the
//!   same formula as the hypervisor's `tessera-colors` and the config's `LlcDesc`).
//! - [`lru_access`]: one set's ways in recency order (most recent first); the whole replacement
//!   policy.
//! - [`Cache`]: a single-owner cache (a vCPU's private L1, tests).
//! - [`SharedCache`]: the shared LLC, one lock per set (each on its own 64-byte line), usable
//!   from every vCPU thread at once.
//! - [`Counters`] / [`Windows`]: what a vCPU counts, overall and inside marked windows.

use std::fmt::{self, Write as _};
use std::sync::{Mutex, PoisonError};

/// Marker instruction that opens a measurement window on the executing vCPU:
/// `orr x9, x9, x9` (a register-to-itself OR: no architectural effect, no flags; compilers emit
/// `mov` (`orr xN, xzr, xM`) for moves and never this form).
pub const MARKER_START: u32 = 0xaa09_0129;
/// Marker instruction that closes the window: `orr x10, x10, x10`.
pub const MARKER_END: u32 = 0xaa0a_014a;

/// Page size whose placement coloring controls.
pub const PAGE_SIZE: u64 = 4096;
/// Line address used for an empty way (no line address reaches it: it would be 2^64 bytes × line).
const INVALID: u64 = u64::MAX;
/// Most ways a set may have.
pub const MAX_WAYS: u32 = 64;

/// A cache's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Capacity in bytes.
    pub size: u64,
    /// Associativity.
    pub ways: u32,
    /// Line size in bytes.
    pub line: u32,
}

/// Why a geometry is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GeometryError {
    /// `line` is not a power of two of at least 4 bytes.
    Line(u32),
    /// `ways` is 0 or above [`MAX_WAYS`].
    Ways(u32),
    /// `size` is not a positive multiple of `ways * line` giving a power-of-two set count.
    Size(u64),
}

impl fmt::Display for GeometryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GeometryError::Line(l) => write!(f, "line {l} is not a power of two >= 4"),
            GeometryError::Ways(w) => write!(f, "ways {w} is not in 1..={MAX_WAYS}"),
            GeometryError::Size(s) => write!(
                f,
                "size {s} is not ways * line * (a power of two number of sets)"
            ),
        }
    }
}

impl std::error::Error for GeometryError {}

impl Geometry {
    /// A checked geometry: line a power of two, 1..=[`MAX_WAYS`] ways, a power-of-two number
    /// of sets.
    pub fn new(size: u64, ways: u32, line: u32) -> Result<Geometry, GeometryError> {
        if line < 4 || !line.is_power_of_two() {
            return Err(GeometryError::Line(line));
        }
        if ways == 0 || ways > MAX_WAYS {
            return Err(GeometryError::Ways(ways));
        }
        let way_bytes = u64::from(ways) * u64::from(line);
        if size == 0 || !size.is_multiple_of(way_bytes) || !(size / way_bytes).is_power_of_two() {
            return Err(GeometryError::Size(size));
        }
        Ok(Geometry { size, ways, line })
    }

    /// Number of sets.
    pub fn sets(&self) -> u64 {
        self.size / (u64::from(self.ways) * u64::from(self.line))
    }

    /// Number of 4 KiB page colors: how many pages one way spans (1 when a way is smaller
    /// than a page: no coloring possible).
    pub fn colors(&self) -> u64 {
        (self.size / u64::from(self.ways) / PAGE_SIZE).max(1)
    }

    /// The line address (physical address / line size) of `pa`.
    pub fn line_of(&self, pa: u64) -> u64 {
        pa >> self.line.trailing_zeros()
    }

    /// The set `pa` maps to.
    pub fn set_of(&self, pa: u64) -> usize {
        // sets() is a power of two, at most size / 4: the mask fits usize on 64-bit hosts.
        (self.line_of(pa) & (self.sets() - 1)) as usize
    }

    /// The page color of `pa`.
    pub fn color_of(&self, pa: u64) -> u64 {
        (pa / PAGE_SIZE) % self.colors()
    }
}

/// Result of one lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Hit,
    /// A miss; the line address evicted to make room, if the set was full.
    Miss {
        evicted: Option<u64>,
    },
}

impl Access {
    pub fn is_hit(self) -> bool {
        self == Access::Hit
    }
}

/// Looks `line` up in one set, whose ways hold line addresses in recency order (index 0 = most
/// recently used, empty ways hold `INVALID` at the end), and makes it the most recently used:
/// a hit moves it to the front, a miss inserts it at the front and drops the least recently
/// used way.
pub fn lru_access(ways: &mut [u64], line: u64) -> Access {
    if ways.is_empty() {
        return Access::Miss { evicted: None };
    }
    match ways.iter().position(|&w| w == line) {
        Some(i) => {
            ways[..=i].rotate_right(1);
            Access::Hit
        }
        None => {
            let last = ways.len() - 1;
            let old = ways[last];
            ways.rotate_right(1);
            ways[0] = line;
            Access::Miss {
                evicted: (old != INVALID).then_some(old),
            }
        }
    }
}

/// A cache owned by one thread (a vCPU's private L1, or a whole LLC in tests).
#[derive(Clone, Debug)]
pub struct Cache {
    geometry: Geometry,
    /// `sets * ways` line addresses, one set after the other, each in recency order.
    ways: Vec<u64>,
}

impl Cache {
    /// An empty cache.
    pub fn new(geometry: Geometry) -> Cache {
        let n = geometry.sets() * u64::from(geometry.ways);
        Cache {
            geometry,
            ways: vec![INVALID; usize::try_from(n).unwrap_or(0)],
        }
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// One access to the line holding `pa`.
    pub fn access(&mut self, pa: u64) -> Access {
        let w = self.geometry.ways as usize;
        let set = self.geometry.set_of(pa);
        let line = self.geometry.line_of(pa);
        match self.ways.get_mut(set * w..(set + 1) * w) {
            Some(ways) => lru_access(ways, line),
            None => Access::Miss { evicted: None },
        }
    }

    /// Whether the line holding `pa` is cached (no LRU update).
    pub fn contains(&self, pa: u64) -> bool {
        let w = self.geometry.ways as usize;
        let set = self.geometry.set_of(pa);
        let line = self.geometry.line_of(pa);
        self.ways
            .get(set * w..(set + 1) * w)
            .is_some_and(|ways| ways.contains(&line))
    }
}

/// One set of the shared cache behind its own lock, alone on a 64-byte line (two sets' locks
/// on one line would make vCPU threads that touch different sets contend for it).
#[repr(align(64))]
#[derive(Debug)]
struct SharedSet(Mutex<Box<[u64]>>);

/// The shared LLC: any vCPU thread may access it at any time; each access locks one set.
#[derive(Debug)]
pub struct SharedCache {
    geometry: Geometry,
    sets: Vec<SharedSet>,
}

impl SharedCache {
    /// An empty cache.
    pub fn new(geometry: Geometry) -> SharedCache {
        let sets = (0..geometry.sets())
            .map(|_| SharedSet(Mutex::new(vec![INVALID; geometry.ways as usize].into())))
            .collect();
        SharedCache { geometry, sets }
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// One access to the line holding `pa`.
    pub fn access(&self, pa: u64) -> Access {
        let line = self.geometry.line_of(pa);
        match self.sets.get(self.geometry.set_of(pa)) {
            Some(set) => {
                // A panic while holding a set lock cannot leave the set inconsistent (every
                // update is a rotation of plain integers): a poisoned lock is still good.
                let mut ways = set.0.lock().unwrap_or_else(PoisonError::into_inner);
                lru_access(&mut ways, line)
            }
            None => Access::Miss { evicted: None },
        }
    }
}

/// Access counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Data accesses seen (loads and stores to RAM; a line-crossing access counts once per line).
    pub mem: u64,
    /// Instruction line fetches seen (each executed translation block fetches its lines once).
    pub fetch: u64,
    /// Accesses that reached the LLC, data and instruction (those that missed the private L1s,
    /// or all without them).
    pub accesses: u64,
    /// LLC misses, data and instruction.
    pub misses: u64,
    /// The LLC misses of instruction fetches (part of `misses`).
    pub fetch_misses: u64,
}

impl Counters {
    /// `self - earlier`, saturating.
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            mem: self.mem.saturating_sub(earlier.mem),
            fetch: self.fetch.saturating_sub(earlier.fetch),
            accesses: self.accesses.saturating_sub(earlier.accesses),
            misses: self.misses.saturating_sub(earlier.misses),
            fetch_misses: self.fetch_misses.saturating_sub(earlier.fetch_misses),
        }
    }

    fn add(&mut self, o: &Counters) {
        self.mem += o.mem;
        self.fetch += o.fetch;
        self.accesses += o.accesses;
        self.misses += o.misses;
        self.fetch_misses += o.fetch_misses;
    }
}

/// Most windows whose counts are kept one by one (for the median and maximum); later ones
/// still add to the totals.
pub const MAX_RECORDED_WINDOWS: usize = 1 << 16;

/// What one vCPU counts inside marked windows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Windows {
    /// Counters when the open window started.
    open_at: Option<Counters>,
    /// Sum over the closed windows.
    pub total: Counters,
    /// Closed windows.
    pub closed: u64,
    /// Start markers met while a window was open (ignored).
    pub nested_starts: u64,
    /// End markers met with no window open (ignored).
    pub stray_ends: u64,
    /// LLC misses of each closed window, in order (the first [`MAX_RECORDED_WINDOWS`]).
    pub misses: Vec<u64>,
    /// Page colors of the lines accessed while a window was open (bit c = color c; colors
    /// from 64 on are not recorded).
    pub colors: u64,
}

impl Windows {
    /// A start marker, with the vCPU's counters at that point.
    pub fn start(&mut self, now: Counters) {
        if self.open_at.is_some() {
            self.nested_starts += 1;
        } else {
            self.open_at = Some(now);
        }
    }

    /// An end marker, with the vCPU's counters at that point.
    pub fn end(&mut self, now: Counters) {
        match self.open_at.take() {
            None => self.stray_ends += 1,
            Some(at) => {
                let d = now.since(&at);
                self.total.add(&d);
                self.closed += 1;
                if self.misses.len() < MAX_RECORDED_WINDOWS {
                    self.misses.push(d.misses);
                }
            }
        }
    }

    pub fn is_open(&self) -> bool {
        self.open_at.is_some()
    }

    /// (median, max) of the recorded windows' misses; the median of an even count is the
    /// lower middle value.
    pub fn misses_median_max(&self) -> Option<(u64, u64)> {
        let mut v = self.misses.clone();
        v.sort_unstable();
        let max = *v.last()?;
        Some((v[(v.len() - 1) / 2], max))
    }
}

/// One vCPU's state: its optional private L1s, its counters and windows.
#[derive(Clone, Debug)]
pub struct Vcpu {
    /// Private L1 data cache.
    l1: Option<Cache>,
    /// Private L1 instruction cache (same geometry as the data cache).
    l1i: Option<Cache>,
    pub counters: Counters,
    pub windows: Windows,
    /// Page colors of all lines accessed (bit c = color c, colors below 64).
    pub colors: u64,
}

impl Vcpu {
    pub fn new(l1: Option<Geometry>) -> Vcpu {
        Vcpu {
            l1: l1.map(Cache::new),
            l1i: l1.map(Cache::new),
            counters: Counters::default(),
            windows: Windows::default(),
            colors: 0,
        }
    }

    /// A data access of `size` bytes at physical address `pa` by this vCPU: each line it
    /// touches goes through the L1 (if any), then the shared `llc`.
    pub fn access(&mut self, llc: &SharedCache, pa: u64, size: u64) {
        let line = u64::from(llc.geometry().line);
        let first = pa & !(line - 1);
        let last = pa.saturating_add(size.max(1) - 1) & !(line - 1);
        let mut at = first;
        loop {
            self.counters.mem += 1;
            self.line(llc, at, false);
            if at >= last {
                break;
            }
            at += line;
        }
    }

    /// An instruction fetch of the lines at physical addresses `lines` (a translation block
    /// starting to execute), through the L1 instruction cache (if any), then the shared `llc`.
    pub fn fetch(&mut self, llc: &SharedCache, lines: &[u64]) {
        for &at in lines {
            self.counters.fetch += 1;
            self.line(llc, at, true);
        }
    }

    /// One line through the private cache, then the LLC.
    fn line(&mut self, llc: &SharedCache, at: u64, fetch: bool) {
        let color = llc.geometry().color_of(at);
        let bit = if color < 64 { 1u64 << color } else { 0 };
        self.colors |= bit;
        if self.windows.is_open() {
            self.windows.colors |= bit;
        }
        let l1 = if fetch { &mut self.l1i } else { &mut self.l1 };
        if l1.as_mut().is_some_and(|c| c.access(at).is_hit()) {
            return;
        }
        self.counters.accesses += 1;
        if !llc.access(at).is_hit() {
            self.counters.misses += 1;
            if fetch {
                self.counters.fetch_misses += 1;
            }
        }
    }

    /// A start marker executed by this vCPU.
    pub fn window_start(&mut self) {
        self.windows.start(self.counters);
    }

    /// An end marker executed by this vCPU.
    pub fn window_end(&mut self) {
        self.windows.end(self.counters);
    }

    /// The line of the report for vCPU `index` (see [`report`]).
    pub fn report_line(&self, index: usize) -> String {
        let c = &self.counters;
        let w = &self.windows;
        let mut s = format!(
            "vcpu={index} mem={} fetch={} accesses={} misses={} fetch_misses={} windows={} \
             win_mem={} win_fetch={} win_accesses={} win_misses={} win_fetch_misses={}",
            c.mem,
            c.fetch,
            c.accesses,
            c.misses,
            c.fetch_misses,
            w.closed,
            w.total.mem,
            w.total.fetch,
            w.total.accesses,
            w.total.misses,
            w.total.fetch_misses
        );
        if let Some((med, max)) = w.misses_median_max() {
            let _ = write!(s, " win_misses_median={med} win_misses_max={max}");
        }
        let _ = write!(
            s,
            " colors={} win_colors={} open={} nested_starts={} stray_ends={}",
            color_list(self.colors),
            color_list(w.colors),
            u8::from(w.is_open()),
            w.nested_starts,
            w.stray_ends
        );
        s
    }
}

/// Colors of a mask as a compact list, `0-7,14` (`-` for none).
pub fn color_list(mask: u64) -> String {
    let mut out = String::new();
    let mut c = 0u32;
    while c < 64 {
        if mask & (1 << c) == 0 {
            c += 1;
            continue;
        }
        let start = c;
        while c < 64 && mask & (1 << c) != 0 {
            c += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        match c - 1 - start {
            0 => {
                let _ = write!(out, "{start}");
            }
            _ => {
                let _ = write!(out, "{start}-{}", c - 1);
            }
        }
    }
    if out.is_empty() {
        out.push('-');
    }
    out
}

/// The report written at exit: a header line, the geometry, then one line per vCPU that saw
/// any access:
///
/// ```text
/// tessera-llc 1
/// geometry size=1048576 ways=16 line=64 sets=1024 colors=16 l1_size=32768 l1_ways=2
/// vcpu=0 mem=.. fetch=.. accesses=.. misses=.. fetch_misses=.. windows=.. win_mem=.. win_fetch=.. win_accesses=.. win_misses=.. win_fetch_misses=.. win_misses_median=.. win_misses_max=.. colors=0-15 win_colors=0-7 open=0 nested_starts=0 stray_ends=0
/// ```
pub fn report(llc: Geometry, l1: Option<Geometry>, vcpus: &[Vcpu]) -> String {
    let mut s = String::from("tessera-llc 1\n");
    let _ = write!(
        s,
        "geometry size={} ways={} line={} sets={} colors={}",
        llc.size,
        llc.ways,
        llc.line,
        llc.sets(),
        llc.colors()
    );
    match l1 {
        Some(g) => {
            let _ = writeln!(s, " l1_size={} l1_ways={}", g.size, g.ways);
        }
        None => s.push_str(" l1_size=0 l1_ways=0\n"),
    }
    for (i, v) in vcpus.iter().enumerate() {
        if v.counters.mem > 0 || v.counters.fetch > 0 || v.windows.closed > 0 || v.windows.is_open()
        {
            s.push_str(&v.report_line(i));
            s.push('\n');
        }
    }
    s
}

/// The plugin's arguments (`-plugin libtessera_llc.so,size=1M,ways=16,...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The shared LLC (`size=`, `ways=`, `line=`; line default 64).
    pub llc: Geometry,
    /// A private L1 per vCPU in front of it (`l1=<size>`, `l1ways=` default 2, same line
    /// size); `l1=0` or absent: none, every access goes to the LLC.
    pub l1: Option<Geometry>,
    /// Where the report goes at exit (`out=`); absent: standard error.
    pub out: Option<String>,
    /// The machine's RAM (`ram=<base>:<size>`): instruction fetches from it are modelled too
    /// (see the crate documentation); absent: data accesses only.
    pub ram: Option<Range>,
    /// A register whose value is the index of the physical core executing (`core_reg=`, e.g.
    /// `TPIDR_EL2` under Tessera): read at the start of every translation block to attribute
    /// what follows; absent: QEMU's vCPU index of the callbacks (see the crate documentation
    /// for when that is wrong).
    pub core_reg: Option<String>,
}

/// A physical address range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub base: u64,
    pub size: u64,
}

impl Range {
    pub fn contains(&self, pa: u64) -> bool {
        pa >= self.base && pa - self.base < self.size
    }
}

/// A size or count: decimal, `0x` hex, or with a `K`/`M`/`G` suffix (powers of 1024).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, mult) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1u64 << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        b'G' | b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => digits.parse::<u64>().ok()?,
    };
    n.checked_mul(mult)
}

impl Config {
    /// Parses `key=value` arguments; unknown keys and bad values are errors.
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Config, String> {
        let (mut size, mut ways, mut line, mut l1, mut l1ways, mut out, mut ram) =
            (None, None, 64u64, 0u64, 2u64, None, None);
        let mut core_reg = None;
        for a in args {
            let a = a.as_ref();
            let (k, v) = a
                .split_once('=')
                .ok_or_else(|| format!("argument {a:?} is not key=value"))?;
            let num = || parse_size(v).ok_or_else(|| format!("{k}={v:?} is not a number"));
            match k {
                "size" => size = Some(num()?),
                "ways" => ways = Some(num()?),
                "line" => line = num()?,
                "l1" => l1 = num()?,
                "l1ways" => l1ways = num()?,
                "out" => out = Some(v.to_string()),
                "core_reg" if v.is_empty() => return Err("core_reg= needs a register name".into()),
                "core_reg" => core_reg = Some(v.to_string()),
                "ram" => {
                    let r = v
                        .split_once(':')
                        .and_then(|(b, s)| Some((parse_size(b)?, parse_size(s)?)))
                        .filter(|&(b, s)| s > 0 && b.checked_add(s).is_some())
                        .ok_or_else(|| format!("ram={v:?} is not <base>:<size>"))?;
                    ram = Some(Range {
                        base: r.0,
                        size: r.1,
                    });
                }
                _ => {
                    return Err(format!(
                        "unknown argument {k:?} (known: size, ways, line, l1, l1ways, out, ram, \
                         core_reg)"
                    ))
                }
            }
        }
        let size = size.ok_or("size= is required (the LLC's size in bytes)")?;
        let ways = ways.ok_or("ways= is required (the LLC's associativity)")?;
        let narrow =
            |k: &str, v: u64| u32::try_from(v).map_err(|_| format!("{k}={v} is too large"));
        let llc = Geometry::new(size, narrow("ways", ways)?, narrow("line", line)?)
            .map_err(|e| format!("LLC geometry: {e}"))?;
        let l1 = match l1 {
            0 => None,
            n => Some(
                Geometry::new(n, narrow("l1ways", l1ways)?, llc.line)
                    .map_err(|e| format!("L1 geometry: {e}"))?,
            ),
        };
        Ok(Config {
            llc,
            l1,
            out,
            ram,
            core_reg,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn llc_1m() -> Geometry {
        Geometry::new(1 << 20, 16, 64).unwrap()
    }

    #[test]
    fn geometry_arithmetic() {
        let g = llc_1m();
        assert_eq!(g.sets(), 1024);
        assert_eq!(g.colors(), 16);
        assert_eq!(Geometry::new(2 << 20, 16, 64).unwrap().colors(), 32);
        // Consecutive lines walk the sets; the set wraps after sets * line bytes = one way.
        assert_eq!(g.set_of(0x4000_0000), 0);
        assert_eq!(g.set_of(0x4000_0040), 1);
        assert_eq!(g.set_of(0x4000_0000 + 64 * 1024), 0);
        // A color is a 4 KiB page within the way: pages 16 apart share a color.
        assert_eq!(g.color_of(0x4000_0000), 0);
        assert_eq!(g.color_of(0x4000_1000), 1);
        assert_eq!(g.color_of(0x4001_0000), 0);
        // Every line of a page lies in sets of that page's color only.
        for pa in (0x4000_3000u64..0x4000_4000).step_by(64) {
            assert_eq!(g.set_of(pa) as u64 / (g.sets() / g.colors()), 3);
        }
        assert_eq!(Geometry::new(1 << 20, 16, 48), Err(GeometryError::Line(48)));
        assert_eq!(Geometry::new(1 << 20, 0, 64), Err(GeometryError::Ways(0)));
        assert_eq!(
            Geometry::new(3 << 20, 16, 64),
            Err(GeometryError::Size(3 << 20))
        );
        assert_eq!(Geometry::new(0, 16, 64), Err(GeometryError::Size(0)));
    }

    #[test]
    fn config_args() {
        let c = Config::parse(&["size=1M", "ways=16", "l1=32K", "out=/tmp/x.txt"]).unwrap();
        assert_eq!(c.llc, llc_1m());
        assert_eq!(c.l1, Some(Geometry::new(32 << 10, 2, 64).unwrap()));
        assert_eq!(c.out.as_deref(), Some("/tmp/x.txt"));
        assert_eq!((c.ram, c.core_reg), (None, None));
        let c = Config::parse(&["size=1M", "ways=16", "core_reg=TPIDR_EL2"]).unwrap();
        assert_eq!(c.core_reg.as_deref(), Some("TPIDR_EL2"));
        assert!(Config::parse(&["size=1M", "ways=16", "core_reg="]).is_err());
        let c = Config::parse(&["size=1M", "ways=16", "ram=0x40000000:2G"]).unwrap();
        let ram = c.ram.unwrap();
        assert!(
            ram.contains(0x4000_0000) && ram.contains(0xbfff_ffff) && !ram.contains(0xc000_0000)
        );
        assert!(!ram.contains(0x3fff_ffff));
        assert!(Config::parse(&["size=1M", "ways=16", "ram=0x40000000"]).is_err());
        assert!(Config::parse(&["size=1M", "ways=16", "ram=0x40000000:0"]).is_err());
        let c = Config::parse(&["size=0x200000", "ways=16", "line=128"]).unwrap();
        assert_eq!((c.llc.sets(), c.l1, c.out), (1024, None, None));
        assert!(Config::parse(&["ways=16"]).unwrap_err().contains("size="));
        assert!(Config::parse(&["size=1M", "ways=16", "colour=3"])
            .unwrap_err()
            .contains("unknown argument"));
        assert!(Config::parse(&["size=1M", "ways=x"])
            .unwrap_err()
            .contains("not a number"));
        assert!(Config::parse(&["size=1M", "ways=16", "l1=1000"])
            .unwrap_err()
            .starts_with("L1 geometry"));
        assert!(Config::parse(&["size"]).is_err());
        assert_eq!(parse_size("16"), Some(16));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("0x10K"), Some(16 << 10));
        assert_eq!(parse_size("99999999999999G"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn lru_order() {
        let mut w = [INVALID; 2];
        assert_eq!(lru_access(&mut w, 1), Access::Miss { evicted: None });
        assert_eq!(lru_access(&mut w, 2), Access::Miss { evicted: None });
        assert_eq!(lru_access(&mut w, 1), Access::Hit); // 1 becomes most recent
        assert_eq!(lru_access(&mut w, 3), Access::Miss { evicted: Some(2) });
        assert_eq!(lru_access(&mut w, 1), Access::Hit);
        assert_eq!(lru_access(&mut w, 2), Access::Miss { evicted: Some(3) });
    }

    /// Misses of `passes` passes over `bytes` contiguous bytes from `base`, one access per line.
    fn walk(c: &mut Cache, base: u64, bytes: u64, passes: u32) -> u64 {
        let mut misses = 0;
        for _ in 0..passes {
            for pa in (base..base + bytes).step_by(64) {
                misses += u64::from(!c.access(pa).is_hit());
            }
        }
        misses
    }

    #[test]
    fn fitting_set_hits_and_stream_misses() {
        let mut c = Cache::new(llc_1m());
        // 512 KiB: only compulsory misses, then all hits.
        assert_eq!(walk(&mut c, 0x4000_0000, 512 << 10, 1), 8192);
        assert_eq!(walk(&mut c, 0x4000_0000, 512 << 10, 3), 0);
        // 4 MiB streamed twice under LRU: every access misses.
        let mut c = Cache::new(llc_1m());
        assert_eq!(walk(&mut c, 0x5000_0000, 4 << 20, 2), 2 * 65536);
    }

    #[test]
    fn streaming_neighbour_evicts_uncolored_victim_but_not_colored() {
        let g = llc_1m();
        // Uncolored: the victim's 256 KiB is contiguous, the neighbour streams 2 MiB.
        let mut c = Cache::new(g);
        walk(&mut c, 0x4000_0000, 256 << 10, 1);
        walk(&mut c, 0x6000_0000, 2 << 20, 1);
        assert_eq!(walk(&mut c, 0x4000_0000, 256 << 10, 1), 4096);
        // Colored: victim pages of colors 0-7, neighbour pages of colors 8-15.
        let pages = |base: u64, colors: std::ops::Range<u64>, n: usize| -> Vec<u64> {
            (0..)
                .map(|i| base + i * PAGE_SIZE)
                .filter(|&pa| colors.contains(&g.color_of(pa)))
                .take(n)
                .collect()
        };
        let victim = pages(0x4000_0000, 0..8, 64); // 256 KiB
        let neighbour = pages(0x6000_0000, 8..16, 512); // 2 MiB
        let mut c = Cache::new(g);
        let touch = |c: &mut Cache, pages: &[u64]| -> u64 {
            let mut m = 0;
            for &p in pages {
                for pa in (p..p + PAGE_SIZE).step_by(64) {
                    m += u64::from(!c.access(pa).is_hit());
                }
            }
            m
        };
        assert_eq!(touch(&mut c, &victim), 4096);
        touch(&mut c, &neighbour);
        assert_eq!(touch(&mut c, &victim), 0);
    }

    #[test]
    fn vcpu_counts_windows_and_line_crossings() {
        let llc = SharedCache::new(llc_1m());
        let mut v = Vcpu::new(None);
        v.access(&llc, 0x4000_0000, 8);
        v.window_start();
        v.access(&llc, 0x4000_0000, 8); // hit
        v.access(&llc, 0x4000_003c, 8); // crosses into the next line: 2 accesses, 1 miss
        v.window_start(); // nested: ignored
        v.window_end();
        v.window_end(); // stray
        assert_eq!(
            v.counters,
            Counters {
                mem: 4,
                accesses: 4,
                misses: 2,
                ..Counters::default()
            }
        );
        assert_eq!(
            v.windows.total,
            Counters {
                mem: 3,
                accesses: 3,
                misses: 1,
                ..Counters::default()
            }
        );
        assert_eq!(
            (
                v.windows.closed,
                v.windows.nested_starts,
                v.windows.stray_ends
            ),
            (1, 1, 1)
        );
        let line = v.report_line(0);
        assert_eq!(
            line,
            "vcpu=0 mem=4 fetch=0 accesses=4 misses=2 fetch_misses=0 windows=1 win_mem=3 \
             win_fetch=0 win_accesses=3 win_misses=1 win_fetch_misses=0 win_misses_median=1 \
             win_misses_max=1 colors=0 win_colors=0 open=0 nested_starts=1 stray_ends=1"
        );
        // A window's colors are those of the lines it touched only.
        v.window_start();
        v.access(&llc, 0x4000_3000, 8);
        v.access(&llc, 0x4000_5ffc, 8); // crosses into color 6
        v.window_end();
        v.access(&llc, 0x4000_f000, 8);
        assert_eq!(
            (color_list(v.windows.colors), color_list(v.colors)),
            ("0,3,5-6".to_string(), "0,3,5-6,15".to_string())
        );
        // A private L1 filters: the second access to a line does not reach the LLC.
        let mut v = Vcpu::new(Some(Geometry::new(32 << 10, 2, 64).unwrap()));
        v.access(&llc, 0x4800_0000, 4);
        v.access(&llc, 0x4800_0008, 4);
        assert_eq!(
            v.counters,
            Counters {
                mem: 2,
                accesses: 1,
                misses: 1,
                ..Counters::default()
            }
        );
        // Instruction fetches go through their own L1: the data line above does not make
        // them hit, the second fetch of a line does.
        v.fetch(&llc, &[0x4800_0000, 0x4800_0040]);
        v.window_start();
        v.fetch(&llc, &[0x4800_0040, 0x4900_0000]);
        v.window_end();
        assert_eq!(
            v.counters,
            Counters {
                mem: 2,
                fetch: 4,
                accesses: 4,
                misses: 3,
                fetch_misses: 2,
            }
        );
        assert_eq!(
            v.windows.total,
            Counters {
                fetch: 2,
                accesses: 1,
                misses: 1,
                fetch_misses: 1,
                ..Counters::default()
            }
        );
        let r = report(llc.geometry(), None, &[Vcpu::new(None), v]);
        let lines: Vec<&str> = r.lines().collect();
        assert_eq!(lines[0], "tessera-llc 1");
        assert_eq!(
            lines[1],
            "geometry size=1048576 ways=16 line=64 sets=1024 colors=16 l1_size=0 l1_ways=0"
        );
        // vCPU 0 saw nothing: no line.
        assert_eq!(lines.len(), 3);
        assert!(
            lines[2]
                .starts_with("vcpu=1 mem=2 fetch=4 accesses=4 misses=3 fetch_misses=2 windows=1"),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn color_lists() {
        assert_eq!(color_list(0), "-");
        assert_eq!(color_list(0xff), "0-7");
        assert_eq!(color_list(0b1011_0001), "0,4-5,7");
        assert_eq!(color_list(1 << 63 | 1 << 62 | 1), "0,62-63");
    }

    #[test]
    fn window_median_and_max() {
        let mut w = Windows::default();
        assert_eq!(w.misses_median_max(), None);
        for m in [5, 1, 9, 3] {
            w.start(Counters::default());
            w.end(Counters {
                accesses: m,
                misses: m,
                ..Counters::default()
            });
        }
        assert_eq!(w.misses_median_max(), Some((3, 9)));
        assert_eq!(w.total.misses, 18);
    }

    /// A naive LRU set: (line, last use) pairs, evicting the oldest.
    fn naive(set: &mut Vec<(u64, u64)>, ways: usize, line: u64, now: u64) -> Access {
        if let Some(e) = set.iter_mut().find(|e| e.0 == line) {
            e.1 = now;
            return Access::Hit;
        }
        let evicted = if set.len() == ways {
            let (i, _) = set.iter().enumerate().min_by_key(|(_, e)| e.1).unwrap();
            Some(set.remove(i).0)
        } else {
            None
        };
        set.push((line, now));
        Access::Miss { evicted }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// The recency-order set agrees with a timestamp LRU on every access.
        #[test]
        fn lru_matches_naive(ways in 1usize..=16, lines in prop::collection::vec(0u64..40, 0..400)) {
            let mut fast = vec![INVALID; ways];
            let mut slow = Vec::new();
            for (t, &l) in lines.iter().enumerate() {
                prop_assert_eq!(lru_access(&mut fast, l), naive(&mut slow, ways, l, t as u64));
            }
        }

        /// The shared cache and the single-owner cache give the same outcomes; a hit line is
        /// cached, and nothing outside a set's lines is ever reported evicted from it.
        #[test]
        fn shared_matches_single(addrs in prop::collection::vec(0u64..(1 << 22), 0..500)) {
            let g = Geometry::new(64 << 10, 4, 64).unwrap();
            let mut one = Cache::new(g);
            let shared = SharedCache::new(g);
            for &pa in &addrs {
                let a = one.access(pa);
                prop_assert_eq!(a, shared.access(pa));
                prop_assert!(one.contains(pa));
                if let Access::Miss { evicted: Some(e) } = a {
                    prop_assert_eq!(g.set_of(e << 6), g.set_of(pa));
                    prop_assert!(!one.contains(e << 6));
                }
            }
        }

        /// Lines of disjoint color sets never evict each other.
        #[test]
        fn colors_isolate(a in prop::collection::vec(0u64..(1 << 24), 1..300),
                          b in prop::collection::vec(0u64..(1 << 24), 1..300)) {
            let g = Geometry::new(64 << 10, 4, 64).unwrap(); // 4 colors
            let mut c = Cache::new(g);
            // The same offset in a page of color lo or lo + 1 (4 colors: page number mod 4).
            let in_colors = |pa: u64, lo: u64| {
                let page = pa / PAGE_SIZE;
                ((page / 4) * 4 + lo + page % 2) * PAGE_SIZE + pa % PAGE_SIZE
            };
            for pa in a.iter().chain(&b) {
                let pa_a = in_colors(*pa, 0);
                let pa_b = in_colors(*pa, 2);
                prop_assert!(g.color_of(pa_a) < 2 && g.color_of(pa_b) >= 2);
                if let Access::Miss { evicted: Some(e) } = c.access(pa_b) {
                    prop_assert!(g.color_of(e << 6) >= 2);
                }
                if let Access::Miss { evicted: Some(e) } = c.access(pa_a) {
                    prop_assert!(g.color_of(e << 6) < 2);
                }
            }
        }
    }
}
