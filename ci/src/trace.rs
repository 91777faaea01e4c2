//! `cargo xtask trace`: run a config on QEMU and draw the hypervisor's scheduler trace as an
//! SVG timeline.
//!
//! At the end of a run, before its `all VMs off` line, Tessera prints for each traced core
//! (with or without its `[tessera] ` prefix):
//!
//! ```text
//! trace core 0 freq 62500000 servers 3 events 812 dropped 0
//! trace core 0 server 0 vm alpha vcpu 0 kind deferrable budget_us 2000 period_us 10000 prio 0
//! trace core 0 ev 123456789 switch 1     # counter tick, event, server index or '-'
//! trace core 0 ev 123460000 idle -
//! trace core 0 end
//! ```
//!
//! Events: `switch S` (server S starts running on the core), `idle -` (nothing runs), `release
//! S` (a new server period begins), `deplete S` (budget exhausted), `replenish S`, `wake S`,
//! `block S` (the vCPU waits: WFI), `inject S` (a virtual interrupt delivered to S's vCPU).
//!
//! [`parse`] reads those lines out of a console log, [`layout`] turns one window of time into
//! run intervals and marks, and [`render_svg`] draws them: one lane per core with a `cpu` row
//! (who runs, idle gaps) and one row per server (run bars, release ↑ and deadline ↓ arrows at
//! release + period, deplete ✕, replenish +, wake ○, block ■, inject ◆), a time axis and a
//! legend. All three are pure; [`run`] is the QEMU part.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::qemu::{self, Outcome, QemuSpec};
use crate::util::{self, Paths};

// ---------------------------------------------------------------------------------------------
// model and parser

/// What happened at one instant on a core.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventKind {
    /// The server starts running on the core.
    Switch,
    /// Nothing runs.
    Idle,
    /// A server period begins.
    Release,
    /// The server's budget is exhausted.
    Deplete,
    /// The server's budget is refilled.
    Replenish,
    /// The server's vCPU became runnable.
    Wake,
    /// The server's vCPU waits (WFI).
    Block,
    /// A virtual interrupt was delivered to the server's vCPU.
    Inject,
    /// The server's vCPU was powered on (VM start, PSCI CPU_ON, after a reset).
    Online,
    /// The server's vCPU was powered off (CPU_OFF, VM off, stopped or being reset).
    Offline,
}

impl EventKind {
    /// Every kind, in legend order.
    pub const ALL: [EventKind; 10] = [
        EventKind::Switch,
        EventKind::Idle,
        EventKind::Release,
        EventKind::Deplete,
        EventKind::Replenish,
        EventKind::Wake,
        EventKind::Block,
        EventKind::Inject,
        EventKind::Online,
        EventKind::Offline,
    ];

    /// The word of the trace format.
    pub fn word(self) -> &'static str {
        match self {
            EventKind::Switch => "switch",
            EventKind::Idle => "idle",
            EventKind::Release => "release",
            EventKind::Deplete => "deplete",
            EventKind::Replenish => "replenish",
            EventKind::Wake => "wake",
            EventKind::Block => "block",
            EventKind::Inject => "inject",
            EventKind::Online => "online",
            EventKind::Offline => "offline",
        }
    }

    fn from_word(w: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.word() == w)
    }
}

/// One trace event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// Absolute counter tick.
    pub tick: u64,
    pub kind: EventKind,
    /// Server index on its core (`None`: `-`).
    pub server: Option<usize>,
}

/// A server (one vCPU) of a traced core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    pub index: usize,
    pub vm: String,
    pub vcpu: u32,
    /// `deferrable`, `periodic`, `polling`, `sporadic`, `cbs`, ...
    pub kind: String,
    pub budget_us: u64,
    pub period_us: u64,
    /// Fixed-priority servers only.
    pub prio: Option<u32>,
}

impl Server {
    /// `alpha/0`: the VM and the vCPU.
    pub fn name(&self) -> String {
        format!("{}/{}", self.vm, self.vcpu)
    }

    /// `deferrable 2000/10000 µs p0`: kind, budget/period and priority.
    pub fn params(&self) -> String {
        let prio = self.prio.map(|p| format!(" p{p}")).unwrap_or_default();
        format!(
            "{} {}/{} µs{prio}",
            self.kind, self.budget_us, self.period_us
        )
    }

    /// `alpha/0 deferrable 2000/10000 µs p0`
    pub fn label(&self) -> String {
        format!("{} {}", self.name(), self.params())
    }
}

/// Everything traced on one core.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoreTrace {
    pub core: u32,
    /// Counter frequency in Hz.
    pub freq: u64,
    /// Servers and events the header announced.
    pub servers_declared: usize,
    pub events_declared: usize,
    /// Events the hypervisor could not record (its buffer was full).
    pub dropped: u64,
    /// Servers by index (`servers[i].index == i` for the ones declared).
    pub servers: Vec<Server>,
    /// Events in tick order.
    pub events: Vec<Event>,
    /// Whether its `end` line came.
    pub ended: bool,
}

/// A whole run's trace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trace {
    /// By core number.
    pub cores: Vec<CoreTrace>,
    /// Things that look wrong but do not stop the drawing (also drawn into the picture).
    pub warnings: Vec<String>,
}

/// A trace line that does not follow the format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number in the log.
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// The trace part of a console line (`trace core ...`), with or without `[tessera] `.
pub fn trace_line(line: &str) -> Option<&str> {
    let l = line.trim_end_matches(['\r', '\n']);
    let l = l.strip_prefix("[tessera] ").unwrap_or(l);
    l.starts_with("trace core ").then_some(l)
}

fn number<T: std::str::FromStr>(word: Option<&str>, what: &str) -> Result<T, String> {
    let w = word.ok_or_else(|| format!("{what} missing"))?;
    w.parse()
        .map_err(|_| format!("{what}: {w:?} is not a number"))
}

/// Reads every trace line of a console log (other lines are ignored).
pub fn parse(log: &str) -> Result<Trace, ParseError> {
    let mut cores: BTreeMap<u32, CoreTrace> = BTreeMap::new();
    let mut warnings = Vec::new();
    for (i, raw) in log.lines().enumerate() {
        let Some(line) = trace_line(raw) else {
            continue;
        };
        let err = |message: String| ParseError {
            line: i + 1,
            message: format!("{message} in {line:?}"),
        };
        parse_line(line, &mut cores, &mut warnings).map_err(err)?;
    }
    let mut out = Trace {
        cores: Vec::new(),
        warnings,
    };
    for (_, mut c) in cores {
        if !c.ended {
            out.warnings.push(format!(
                "core {}: no `trace core {} end` line (output cut short?)",
                c.core, c.core
            ));
        }
        if c.events.len() != c.events_declared {
            out.warnings.push(format!(
                "core {}: {} events listed, the header announced {}",
                c.core,
                c.events.len(),
                c.events_declared
            ));
        }
        if c.servers.len() != c.servers_declared {
            out.warnings.push(format!(
                "core {}: {} servers listed, the header announced {}",
                c.core,
                c.servers.len(),
                c.servers_declared
            ));
        }
        if c.dropped != 0 {
            out.warnings.push(format!(
                "core {}: {} later events not recorded (trace buffer full): the trace ends at {} µs",
                c.core,
                c.dropped,
                c.events
                    .iter()
                    .map(|e| e.tick)
                    .max()
                    .zip(c.events.iter().map(|e| e.tick).min())
                    .map_or(0, |(hi, lo)| (hi - lo) * 1_000_000 / c.freq.max(1))
            ));
        }
        if c.events.windows(2).any(|w| w[1].tick < w[0].tick) {
            out.warnings.push(format!(
                "core {}: events out of tick order (sorted for drawing)",
                c.core
            ));
            c.events.sort_by_key(|e| e.tick);
        }
        out.cores.push(c);
    }
    Ok(out)
}

fn parse_line(
    line: &str,
    cores: &mut BTreeMap<u32, CoreTrace>,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let mut w = line.split_ascii_whitespace().skip(2); // "trace core"
    let core: u32 = number(w.next(), "core number")?;
    let what = w.next().ok_or("nothing after the core number")?;
    if what == "freq" {
        let freq: u64 = number(w.next(), "freq")?;
        let mut header = CoreTrace {
            core,
            freq,
            ..CoreTrace::default()
        };
        let pairs = key_values(w)?;
        for (k, v) in pairs {
            match k {
                "servers" => header.servers_declared = number(Some(v), "servers")?,
                "events" => header.events_declared = number(Some(v), "events")?,
                "dropped" => header.dropped = number(Some(v), "dropped")?,
                _ => {}
            }
        }
        if freq == 0 {
            return Err("freq 0".into());
        }
        if cores.insert(core, header).is_some() {
            warnings.push(format!(
                "core {core}: a second header; the first one is dropped"
            ));
        }
        return Ok(());
    }
    let c = cores
        .get_mut(&core)
        .ok_or_else(|| format!("core {core} has no `freq` header line before"))?;
    match what {
        "server" => {
            let index: usize = number(w.next(), "server index")?;
            let mut s = Server {
                index,
                vm: String::new(),
                vcpu: 0,
                kind: String::new(),
                budget_us: 0,
                period_us: 0,
                prio: None,
            };
            for (k, v) in key_values(w)? {
                match k {
                    "vm" => s.vm = v.to_string(),
                    "vcpu" => s.vcpu = number(Some(v), "vcpu")?,
                    "kind" => s.kind = v.to_string(),
                    "budget_us" => s.budget_us = number(Some(v), "budget_us")?,
                    "period_us" => s.period_us = number(Some(v), "period_us")?,
                    "prio" if v == "-" => s.prio = None,
                    "prio" => s.prio = Some(number(Some(v), "prio")?),
                    _ => {}
                }
            }
            if s.vm.is_empty() || s.kind.is_empty() {
                return Err("a server line needs `vm` and `kind`".into());
            }
            if index != c.servers.len() {
                return Err(format!(
                    "server {index} listed where server {} was expected (servers come in order)",
                    c.servers.len()
                ));
            }
            c.servers.push(s);
        }
        "ev" => {
            let tick: u64 = number(w.next(), "tick")?;
            let word = w.next().ok_or("event kind missing")?;
            let kind =
                EventKind::from_word(word).ok_or_else(|| format!("unknown event {word:?}"))?;
            let server = match w.next().ok_or("event server missing")? {
                "-" => None,
                s => Some(number::<usize>(Some(s), "event server")?),
            };
            if let Some(extra) = w.next() {
                return Err(format!("unexpected {extra:?} after the event"));
            }
            match (kind, server) {
                (EventKind::Idle, _) => {}
                (_, None) => return Err(format!("`{word}` needs a server index")),
                (_, Some(s)) if s >= c.servers.len() => {
                    return Err(format!(
                        "server {s} of core {core} was not listed before its events"
                    ))
                }
                _ => {}
            }
            c.events.push(Event {
                tick,
                kind,
                server: if kind == EventKind::Idle {
                    None
                } else {
                    server
                },
            });
        }
        "end" => c.ended = true,
        other => return Err(format!("unknown trace line kind {other:?}")),
    }
    Ok(())
}

/// `key value key value ...` words.
fn key_values<'a>(mut w: impl Iterator<Item = &'a str>) -> Result<Vec<(&'a str, &'a str)>, String> {
    let mut out = Vec::new();
    while let Some(k) = w.next() {
        let v = w.next().ok_or_else(|| format!("no value after {k:?}"))?;
        out.push((k, v));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// layout

/// What part of the run to draw, in µs from the first event of the trace.
#[derive(Clone, Copy, Debug, Default)]
pub struct WindowSpec {
    /// Start (default 0).
    pub from_us: Option<u64>,
    /// Length (default: see [`default_span_us`]).
    pub span_us: Option<u64>,
}

/// Who ran on a core from `start` to `end` (ticks); `server == None`: idle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    pub server: Option<usize>,
    pub start: u64,
    pub end: u64,
}

/// Something drawn at one instant on a server's row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkKind {
    /// An event (not `switch`/`idle`, which make the intervals).
    Event(EventKind),
    /// The end of the server period a release began (release + period).
    Deadline,
}

/// A mark on server `server`'s row at `tick`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    pub kind: MarkKind,
    pub server: usize,
    pub tick: u64,
}

/// One core's drawing, clipped to the window.
#[derive(Clone, Debug)]
pub struct CoreLayout {
    pub core: u32,
    pub servers: Vec<Server>,
    /// Run and idle intervals, in order, clipped to the window.
    pub intervals: Vec<Interval>,
    pub marks: Vec<Mark>,
}

/// The whole drawing, times in absolute ticks.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Time 0 of the axis: the first event of any core.
    pub origin: u64,
    /// Counter frequency used for the axis.
    pub freq: u64,
    pub start: u64,
    pub end: u64,
    /// The last event of any core.
    pub last: u64,
    pub cores: Vec<CoreLayout>,
}

impl Layout {
    /// Microseconds from the origin.
    pub fn us(&self, tick: u64) -> f64 {
        tick.saturating_sub(self.origin) as f64 * 1e6 / self.freq as f64
    }
}

fn ticks_of_us(us: u64, freq: u64) -> u64 {
    (u128::from(us) * u128::from(freq) / 1_000_000) as u64
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The default window length: the whole trace if it is short, else two hyperperiods of the
/// server periods, at least four of the longest period, at most 50 ms (more cannot be read).
pub fn default_span_us(trace: &Trace, total_us: u64) -> u64 {
    let periods: Vec<u64> = trace
        .cores
        .iter()
        .flat_map(|c| c.servers.iter().map(|s| s.period_us))
        .filter(|&p| p > 0)
        .collect();
    let longest = periods.iter().copied().max().unwrap_or(10_000);
    let hyper = periods
        .iter()
        .try_fold(1u64, |l, &p| l.checked_mul(p / gcd(l, p)))
        .unwrap_or(u64::MAX);
    let span = hyper
        .saturating_mul(2)
        .min(50_000)
        .max(longest.saturating_mul(4));
    span.min(total_us.max(1))
}

/// Lays out the window of `trace` that `window` selects.
pub fn layout(trace: &Trace, window: WindowSpec) -> Layout {
    let first = |c: &CoreTrace| c.events.first().map(|e| e.tick);
    let last_of = |c: &CoreTrace| c.events.last().map(|e| e.tick);
    let origin = trace.cores.iter().filter_map(first).min().unwrap_or(0);
    let last = trace
        .cores
        .iter()
        .filter_map(last_of)
        .max()
        .unwrap_or(origin);
    let freq = trace.cores.first().map_or(62_500_000, |c| c.freq.max(1));
    let total_us = ((last - origin) as u128 * 1_000_000).div_ceil(u128::from(freq)) as u64;
    let from_us = window.from_us.unwrap_or(0);
    let span_us = window
        .span_us
        .unwrap_or_else(|| default_span_us(trace, total_us.saturating_sub(from_us)))
        .max(1);
    let start = origin + ticks_of_us(from_us, freq);
    let end = start + ticks_of_us(span_us, freq).max(1);
    let cores = trace
        .cores
        .iter()
        .map(|c| core_layout(c, start, end, last))
        .collect();
    Layout {
        origin,
        freq,
        start,
        end,
        last,
        cores,
    }
}

fn core_layout(c: &CoreTrace, start: u64, end: u64, trace_last: u64) -> CoreLayout {
    // Run intervals: each switch/idle event holds until the next one (or the trace's last
    // event, on any core).
    let mut intervals: Vec<Interval> = Vec::new();
    let mut current: Option<(Option<usize>, u64)> = None;
    let mut close = |from: Option<(Option<usize>, u64)>, to: u64| {
        if let Some((server, s)) = from {
            let (s, e) = (s.max(start), to.min(end));
            if e > s {
                match intervals.last_mut() {
                    Some(l) if l.server == server && l.end == s => l.end = e,
                    _ => intervals.push(Interval {
                        server,
                        start: s,
                        end: e,
                    }),
                }
            }
        }
    };
    for e in &c.events {
        let state = match e.kind {
            EventKind::Switch => e.server,
            EventKind::Idle => None,
            _ => continue,
        };
        if current.is_some_and(|(s, _)| s == state) {
            continue;
        }
        close(current, e.tick);
        current = Some((state, e.tick));
    }
    close(current, trace_last);

    let mut marks = Vec::new();
    let inside = |t: u64| t >= start && t <= end;
    for e in &c.events {
        let Some(server) = e.server else { continue };
        match e.kind {
            EventKind::Switch | EventKind::Idle => {}
            kind => {
                if inside(e.tick) {
                    marks.push(Mark {
                        kind: MarkKind::Event(kind),
                        server,
                        tick: e.tick,
                    });
                }
                if kind == EventKind::Release {
                    let period = c.servers.get(server).map_or(0, |s| s.period_us);
                    let deadline = e.tick + ticks_of_us(period, c.freq.max(1));
                    if period > 0 && inside(deadline) {
                        marks.push(Mark {
                            kind: MarkKind::Deadline,
                            server,
                            tick: deadline,
                        });
                    }
                }
            }
        }
    }
    CoreLayout {
        core: c.core,
        servers: c.servers.clone(),
        intervals,
        marks,
    }
}

// ---------------------------------------------------------------------------------------------
// SVG

/// Picture width in pixels.
const WIDTH: f64 = 1400.0;
/// Left margin (row labels).
const LEFT: f64 = 270.0;
/// Right margin.
const RIGHT: f64 = 30.0;
/// Height of a server row.
const ROW: f64 = 30.0;
/// Height of a core's `cpu` row.
const CPU_ROW: f64 = 22.0;
/// Gap between cores.
const LANE_GAP: f64 = 26.0;
/// Server colours (by index on the core).
const COLORS: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f",
    "#e15759", "#bab0ac",
];
const IDLE_FILL: &str = "url(#idle)";

fn color(server: usize) -> &'static str {
    COLORS[server % COLORS.len()]
}

/// Text with `&`, `<`, `>`, `"` escaped for XML.
pub fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            c => o.push(c),
        }
    }
    o
}

/// A "nice" axis step (1, 2 or 5 × 10^k µs) for about `target` steps over `span_us`.
pub fn axis_step_us(span_us: f64, target: f64) -> f64 {
    let raw = (span_us / target).max(1e-3);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag)
}

/// An axis label: µs below 10 ms of span, ms above.
fn time_label(us: f64, in_ms: bool) -> String {
    if in_ms {
        let ms = format!("{:.3}", us / 1000.0);
        let ms = ms.trim_end_matches('0').trim_end_matches('.');
        format!("{ms} ms")
    } else {
        format!("{us:.0} µs")
    }
}

/// Draws the symbol of a mark centred on `x`, on a row from `y` (top) to `y + ROW`.
fn mark_svg(out: &mut String, kind: MarkKind, x: f64, y: f64, col: &str) {
    let mid = y + ROW / 2.0;
    let bottom = y + ROW;
    let _ = match kind {
        MarkKind::Event(EventKind::Release) => writeln!(
            out,
            r##"<path class="mark release" d="M{x:.1},{b:.1} V{t:.1} M{l:.1},{h:.1} L{x:.1},{t:.1} L{r:.1},{h:.1}" stroke="#222" stroke-width="1.4" fill="none"/>"##,
            b = bottom,
            t = y - 4.0,
            l = x - 3.5,
            r = x + 3.5,
            h = y + 1.0
        ),
        MarkKind::Deadline => writeln!(
            out,
            r#"<path class="mark deadline" d="M{x:.1},{t:.1} V{b:.1} M{l:.1},{h:.1} L{x:.1},{b:.1} L{r:.1},{h:.1}" stroke="{col}" stroke-width="1.4" stroke-dasharray="3,2" fill="none"/>"#,
            t = y - 4.0,
            b = bottom,
            l = x - 3.5,
            r = x + 3.5,
            h = bottom - 5.0
        ),
        MarkKind::Event(EventKind::Deplete) => writeln!(
            out,
            r##"<path class="mark deplete" d="M{l:.1},{t:.1} L{r:.1},{u:.1} M{l:.1},{u:.1} L{r:.1},{t:.1}" stroke="#d62728" stroke-width="2.2"/>"##,
            l = x - 4.0,
            r = x + 4.0,
            t = mid - 4.0,
            u = mid + 4.0
        ),
        MarkKind::Event(EventKind::Replenish) => writeln!(
            out,
            r##"<path class="mark replenish" d="M{l:.1},{m:.1} H{r:.1} M{x:.1},{t:.1} V{u:.1}" stroke="#2ca02c" stroke-width="2.4"/>"##,
            l = x - 4.5,
            r = x + 4.5,
            m = mid,
            t = mid - 4.5,
            u = mid + 4.5
        ),
        MarkKind::Event(EventKind::Wake) => writeln!(
            out,
            r##"<circle class="mark wake" cx="{x:.1}" cy="{c:.1}" r="3" fill="#fff" stroke="#1f4e9c" stroke-width="1.5"/>"##,
            c = bottom - 4.0
        ),
        MarkKind::Event(EventKind::Block) => writeln!(
            out,
            r##"<rect class="mark block" x="{l:.1}" y="{t:.1}" width="6" height="6" fill="#1f4e9c"/>"##,
            l = x - 3.0,
            t = bottom - 7.0
        ),
        MarkKind::Event(EventKind::Inject) => writeln!(
            out,
            r##"<path class="mark inject" d="M{x:.1},{t:.1} L{r:.1},{m:.1} L{x:.1},{b:.1} L{l:.1},{m:.1} Z" fill="#ff7f0e" stroke="#7a3c00" stroke-width="0.6"/>"##,
            t = y + 1.0,
            m = y + 5.0,
            b = y + 9.0,
            l = x - 4.0,
            r = x + 4.0
        ),
        MarkKind::Event(EventKind::Online) => writeln!(
            out,
            r##"<path class="mark online" d="M{l:.1},{t:.1} L{r:.1},{m:.1} L{l:.1},{b:.1} Z" fill="#2ca02c"/>"##,
            l = x,
            r = x + 7.0,
            t = y + 1.0,
            m = y + 5.0,
            b = y + 9.0
        ),
        MarkKind::Event(EventKind::Offline) => writeln!(
            out,
            r##"<rect class="mark offline" x="{l:.1}" y="{t:.1}" width="3" height="12" fill="#555"/>"##,
            l = x - 1.5,
            t = y
        ),
        MarkKind::Event(EventKind::Switch | EventKind::Idle) => Ok(()),
    };
}

/// The legend's entries: the mark and its meaning.
const LEGEND: [(MarkKind, &str); 9] = [
    (
        MarkKind::Event(EventKind::Release),
        "release (server period starts)",
    ),
    (
        MarkKind::Deadline,
        "deadline / period end (release + period)",
    ),
    (
        MarkKind::Event(EventKind::Deplete),
        "deplete (budget exhausted)",
    ),
    (
        MarkKind::Event(EventKind::Replenish),
        "replenish (budget refilled)",
    ),
    (MarkKind::Event(EventKind::Wake), "wake (vCPU runnable)"),
    (MarkKind::Event(EventKind::Block), "block (vCPU waits, WFI)"),
    (
        MarkKind::Event(EventKind::Inject),
        "inject (virtual interrupt delivered)",
    ),
    (
        MarkKind::Event(EventKind::Online),
        "online (vCPU powered on)",
    ),
    (
        MarkKind::Event(EventKind::Offline),
        "offline (vCPU powered off)",
    ),
];

/// Draws `layout` as a standalone SVG document. `title` heads the picture; `warnings` are
/// listed under it.
pub fn render_svg(layout: &Layout, title: &str, warnings: &[String]) -> String {
    let plot_w = WIDTH - LEFT - RIGHT;
    let span = (layout.end - layout.start).max(1) as f64;
    let x_of = |t: u64| LEFT + (t.saturating_sub(layout.start) as f64 / span) * plot_w;
    let top = 58.0 + 16.0 * warnings.len() as f64;
    let lanes_h: f64 = layout
        .cores
        .iter()
        .map(|c| 20.0 + CPU_ROW + 6.0 + ROW * c.servers.len() as f64 + LANE_GAP)
        .sum();
    let axis_y = top + lanes_h;
    let legend_y = axis_y + 40.0;
    // Legend: the run and idle swatches plus LEGEND's marks, three per row, 34 px a row.
    let legend_rows = (LEGEND.len() + 2).div_ceil(3) as f64;
    let height = legend_y + 34.0 * legend_rows + 10.0;

    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">"#
    );
    o.push_str(concat!(
        "<defs><pattern id=\"idle\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" ",
        "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#eeeeee\"/>",
        "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#c8c8c8\" stroke-width=\"2\"/>",
        "</pattern></defs>\n",
        "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n"
    ));
    let (from_us, to_us) = (layout.us(layout.start), layout.us(layout.end));
    let total_us = layout.us(layout.last);
    let in_ms = to_us - from_us >= 10_000.0;
    let _ = writeln!(
        o,
        r#"<text x="12" y="24" font-size="17" font-weight="bold">{}</text>"#,
        xml_escape(title)
    );
    let _ = writeln!(
        o,
        r##"<text x="12" y="44" fill="#444">showing {} to {} of a {} trace (time from the first event); counter {} Hz</text>"##,
        time_label(from_us, in_ms),
        time_label(to_us, in_ms),
        time_label(total_us, total_us >= 10_000.0),
        layout.freq
    );
    for (i, w) in warnings.iter().enumerate() {
        let _ = writeln!(
            o,
            r##"<text class="warning" x="12" y="{:.0}" fill="#b00000">warning: {}</text>"##,
            62.0 + 16.0 * i as f64,
            xml_escape(w)
        );
    }

    // Grid and axis.
    let step = axis_step_us(to_us - from_us, 12.0);
    let mut t = (from_us / step).ceil() * step;
    while t <= to_us + 1e-9 {
        let x = LEFT + (t - from_us) / (to_us - from_us).max(1e-9) * plot_w;
        let _ = writeln!(
            o,
            r##"<line class="grid" x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{axis_y:.1}" stroke="#e6e6e6"/>"##
        );
        let _ = writeln!(
            o,
            r##"<line x1="{x:.1}" y1="{axis_y:.1}" x2="{x:.1}" y2="{:.1}" stroke="#333"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            axis_y + 5.0,
            axis_y + 19.0,
            time_label(t, in_ms)
        );
        t += step;
    }
    let _ = writeln!(
        o,
        r##"<line x1="{LEFT}" y1="{axis_y:.1}" x2="{:.1}" y2="{axis_y:.1}" stroke="#333"/>"##,
        LEFT + plot_w
    );

    // Lanes.
    let mut y = top;
    for c in &layout.cores {
        let _ = writeln!(
            o,
            r#"<text x="12" y="{:.1}" font-size="14" font-weight="bold">core {}</text>"#,
            y + 14.0,
            c.core
        );
        y += 20.0;
        // The cpu row: who runs.
        let _ = writeln!(
            o,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#444">cpu (who runs)</text>"##,
            LEFT - 8.0,
            y + CPU_ROW / 2.0 + 4.0
        );
        let _ = writeln!(
            o,
            r##"<rect x="{LEFT}" y="{y:.1}" width="{plot_w:.1}" height="{CPU_ROW}" fill="none" stroke="#bbb"/>"##
        );
        for iv in &c.intervals {
            let (x0, x1) = (x_of(iv.start), x_of(iv.end));
            let (fill, who) = match iv.server {
                Some(s) => (
                    color(s),
                    c.servers
                        .get(s)
                        .map_or(format!("server {s}"), |sv| format!("s{s} {}", sv.vm)),
                ),
                None => (IDLE_FILL, "idle".to_string()),
            };
            let _ = writeln!(
                o,
                r#"<rect class="cpu" x="{x0:.2}" y="{y:.1}" width="{:.2}" height="{CPU_ROW}" fill="{fill}"><title>{} {:.1}–{:.1} µs</title></rect>"#,
                (x1 - x0).max(0.6),
                xml_escape(&who),
                layout.us(iv.start),
                layout.us(iv.end)
            );
        }
        y += CPU_ROW + 6.0;
        for (si, s) in c.servers.iter().enumerate() {
            let col = color(si);
            let shade = if si % 2 == 0 { "#fafafa" } else { "#f2f2f2" };
            let _ = writeln!(
                o,
                r#"<rect x="{LEFT}" y="{y:.1}" width="{plot_w:.1}" height="{ROW}" fill="{shade}"/>"#
            );
            let _ = writeln!(
                o,
                r##"<rect x="{:.1}" y="{:.1}" width="10" height="10" fill="{col}"/><text x="{tx:.1}" y="{:.1}" text-anchor="end" font-weight="bold">s{si} {}</text><text x="{tx:.1}" y="{:.1}" text-anchor="end" font-size="10" fill="#444">{}</text>"##,
                LEFT - 20.0,
                y + ROW / 2.0 - 5.0,
                y + 13.0,
                xml_escape(&s.name()),
                y + 26.0,
                xml_escape(&s.params()),
                tx = LEFT - 26.0,
            );
            for iv in c.intervals.iter().filter(|iv| iv.server == Some(si)) {
                let (x0, x1) = (x_of(iv.start), x_of(iv.end));
                let _ = writeln!(
                    o,
                    r#"<rect class="run" x="{x0:.2}" y="{:.1}" width="{:.2}" height="{:.1}" fill="{col}"><title>s{si} {} ran {:.1}–{:.1} µs ({:.1} µs)</title></rect>"#,
                    y + 7.0,
                    (x1 - x0).max(0.6),
                    ROW - 14.0,
                    xml_escape(&s.label()),
                    layout.us(iv.start),
                    layout.us(iv.end),
                    layout.us(iv.end) - layout.us(iv.start)
                );
            }
            for m in c.marks.iter().filter(|m| m.server == si) {
                mark_svg(&mut o, m.kind, x_of(m.tick), y, col);
            }
            y += ROW;
        }
        y += LANE_GAP;
    }

    // Legend.
    let _ = writeln!(
        o,
        r#"<text x="12" y="{:.1}" font-weight="bold">legend</text>"#,
        legend_y + 4.0
    );
    let entry = |o: &mut String, i: usize, draw: &dyn Fn(&mut String, f64, f64), text: &str| {
        let (col, row) = (i % 3, i / 3);
        let x = LEFT + col as f64 * 370.0;
        let ly = legend_y - 10.0 + row as f64 * 34.0;
        draw(o, x + 10.0, ly);
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            x + 28.0,
            ly + ROW / 2.0 + 4.0,
            xml_escape(text)
        );
    };
    entry(
        &mut o,
        0,
        &|o, x, y| {
            let _ = writeln!(
                o,
                r##"<rect x="{:.1}" y="{:.1}" width="18" height="{:.1}" fill="{}"/>"##,
                x - 9.0,
                y + 7.0,
                ROW - 14.0,
                COLORS[0]
            );
        },
        "the server's vCPU runs (colour = server)",
    );
    entry(
        &mut o,
        1,
        &|o, x, y| {
            let _ = writeln!(
                o,
                r##"<rect x="{:.1}" y="{:.1}" width="18" height="{:.1}" fill="{IDLE_FILL}" stroke="#bbb"/>"##,
                x - 9.0,
                y + 7.0,
                ROW - 14.0
            );
        },
        "idle: no server runs on the core",
    );
    for (i, (kind, text)) in LEGEND.iter().enumerate() {
        entry(
            &mut o,
            i + 2,
            &|o, x, y| mark_svg(o, *kind, x, y, "#555"),
            text,
        );
    }
    o.push_str("</svg>\n");
    o
}

// ---------------------------------------------------------------------------------------------
// running

/// How `cargo xtask trace` runs and draws.
pub struct Options {
    /// Picture title (config name and GIC).
    pub title: String,
    /// Where the SVG goes.
    pub out: PathBuf,
    pub window: WindowSpec,
    /// The console log file: written by the run, or read as it is when `run` is `None`.
    pub log: PathBuf,
    /// The QEMU run (`None`: draw an existing log).
    pub run: Option<(QemuSpec, Duration)>,
}

/// Runs QEMU (unless drawing an existing log), parses the trace, writes the SVG. Returns the
/// exit code: QEMU's status if it failed, else 0.
pub fn run(paths: &Paths, o: &Options) -> Result<i32> {
    let mut code = 0;
    if let Some((spec, timeout)) = &o.run {
        if let Some(dir) = o.log.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let _ = std::fs::write(o.log.with_extension("cmd"), spec.describe() + "\n");
        println!("xtask: {}", spec.describe());
        let child = spec
            .command_logged(&paths.root, &o.log)?
            .stdin(Stdio::null())
            .spawn()
            .context("could not start qemu-system-aarch64; run `cargo xtask setup`")?;
        match qemu::wait(child, Some(*timeout))? {
            Outcome::Exited(0) => {}
            Outcome::Exited(c) => {
                println!("xtask: QEMU exited with status {c}");
                code = c;
            }
            Outcome::TimedOut(t) => {
                println!(
                    "xtask: QEMU was still running after {} s and was killed (--timeout SECS); \
                     drawing what the log holds",
                    t.as_secs()
                );
                code = 1;
            }
        }
    }
    let bytes =
        std::fs::read(&o.log).with_context(|| format!("cannot read {}", o.log.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let console: Vec<&str> = text.lines().filter(|l| trace_line(l).is_none()).collect();
    if o.run.is_some() {
        println!(
            "xtask: console ({} lines, trace lines left out; all in {}):",
            console.len(),
            util::display_rel(paths, &o.log)
        );
        for l in &console {
            println!("  | {}", l.trim_end_matches('\r'));
        }
    }
    let trace = parse(&text).map_err(|e| {
        anyhow::anyhow!("{}: bad trace line: {e}", util::display_rel(paths, &o.log))
    })?;
    if trace.cores.is_empty() {
        bail!(
            "{} holds no `trace core ...` lines: give the config a `[[scheduling]]` entry with \
             `trace = true` (exclusive cores have no scheduler to trace), and check that the run \
             ended normally (the hypervisor prints the trace just before `all VMs off`)",
            util::display_rel(paths, &o.log)
        );
    }
    for w in &trace.warnings {
        println!("xtask: trace warning: {w}");
    }
    let lay = layout(&trace, o.window);
    let svg = render_svg(&lay, &o.title, &trace.warnings);
    if let Some(dir) = o.out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&o.out, svg).with_context(|| format!("cannot write {}", o.out.display()))?;
    for c in &trace.cores {
        println!(
            "xtask: core {}: {} servers, {} events, {} dropped",
            c.core,
            c.servers.len(),
            c.events.len(),
            c.dropped
        );
    }
    println!(
        "xtask: window {:.0}–{:.0} µs of {:.0} µs (--from-us/--span-us choose another)",
        lay.us(lay.start),
        lay.us(lay.end),
        lay.us(lay.last)
    );
    println!("{}", o.out.display());
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic trace: core 0 with three servers (EDF-like), core 2 with one.
    fn synthetic() -> String {
        let mut s = String::from("[tessera] boot\n[alpha] rt-bench: start\n");
        let f = 62_500_000u64;
        let us = |u: u64| 1_000_000 + u * f / 1_000_000;
        let mut ev0 = Vec::new();
        // Servers 0: 2000/10000, 1: 3000/10000, 2: 1000/5000; releases every period.
        for p in 0..4u64 {
            let base = p * 10_000;
            ev0.push((us(base), "release", "0"));
            ev0.push((us(base), "release", "1"));
            ev0.push((us(base), "wake", "0"));
            ev0.push((us(base), "inject", "0"));
            ev0.push((us(base) + 1, "switch", "0"));
            ev0.push((us(base + 2000), "deplete", "0"));
            ev0.push((us(base + 2000), "switch", "1"));
            ev0.push((us(base + 4500), "block", "1"));
            ev0.push((us(base + 4500), "idle", "-"));
            ev0.push((us(base + 10_000) - 1, "replenish", "0"));
        }
        for p in 0..8u64 {
            let base = p * 5000;
            ev0.push((us(base + 5), "release", "2"));
            ev0.push((us(base + 4600), "wake", "2"));
            ev0.push((us(base + 4600), "switch", "2"));
            ev0.push((us(base + 4900), "block", "2"));
            ev0.push((us(base + 4900), "idle", "-"));
        }
        ev0.sort_by_key(|e| e.0);
        let _ = writeln!(
            s,
            "[tessera] trace core 0 freq {f} servers 3 events {} dropped 0",
            ev0.len()
        );
        s.push_str("[tessera] trace core 0 server 0 vm alpha vcpu 0 kind deferrable budget_us 2000 period_us 10000 prio 0\n");
        s.push_str("trace core 0 server 1 vm beta vcpu 0 kind periodic budget_us 3000 period_us 10000 prio 1\n");
        s.push_str("[tessera] trace core 0 server 2 vm gamma vcpu 1 kind sporadic budget_us 1000 period_us 5000 prio -\n");
        for (t, k, srv) in &ev0 {
            let _ = writeln!(s, "[tessera] trace core 0 ev {t} {k} {srv}");
        }
        s.push_str("[tessera] trace core 0 end\n");
        s.push_str("trace core 2 freq 62500000 servers 1 events 3 dropped 0\n");
        s.push_str("trace core 2 server 0 vm delta vcpu 0 kind polling budget_us 500 period_us 2000 prio 0\n");
        let _ = writeln!(s, "trace core 2 ev {} release 0", us(100));
        let _ = writeln!(s, "trace core 2 ev {} switch 0", us(100));
        let _ = writeln!(s, "trace core 2 ev {} idle -", us(600));
        s.push_str("trace core 2 end\n[tessera] all VMs off; exit 0\n");
        s
    }

    #[test]
    fn parses_headers_servers_and_events() {
        let t = parse(&synthetic()).unwrap();
        assert_eq!(t.cores.len(), 2);
        assert!(t.warnings.is_empty(), "{:?}", t.warnings);
        let c0 = &t.cores[0];
        assert_eq!((c0.core, c0.freq, c0.servers.len()), (0, 62_500_000, 3));
        assert_eq!(c0.events.len(), c0.events_declared);
        assert_eq!(c0.servers[1].kind, "periodic");
        assert_eq!(c0.servers[1].prio, Some(1));
        assert_eq!(c0.servers[2].prio, None);
        assert_eq!(c0.servers[2].vcpu, 1);
        assert!(c0.ended);
        assert_eq!(
            c0.events
                .iter()
                .filter(|e| e.kind == EventKind::Release)
                .count(),
            4 * 2 + 8
        );
        assert!(c0.events.windows(2).all(|w| w[0].tick <= w[1].tick));
        assert_eq!(t.cores[1].core, 2);
        assert_eq!(
            t.cores[1].servers[0].label(),
            "delta/0 polling 500/2000 µs p0"
        );
    }

    #[test]
    fn prefix_is_optional_and_other_lines_are_ignored() {
        assert_eq!(
            trace_line("[tessera] trace core 1 end"),
            Some("trace core 1 end")
        );
        assert_eq!(trace_line("trace core 1 end\r"), Some("trace core 1 end"));
        assert_eq!(trace_line("[alpha] trace core 1 end"), None);
        assert_eq!(trace_line("[tessera] tracer core"), None);
        let t = parse("hello\n[tessera] all VMs off\n").unwrap();
        assert!(t.cores.is_empty());
    }

    #[test]
    fn rejects_malformed_lines() {
        let head = "trace core 0 freq 100 servers 1 events 1 dropped 0\n\
                    trace core 0 server 0 vm a vcpu 0 kind cbs budget_us 1 period_us 2\n";
        for bad in [
            "trace core 0 ev 5 switch 1\n",        // server 1 not listed
            "trace core 0 ev 5 explode 0\n",       // unknown event
            "trace core 0 ev x switch 0\n",        // tick not a number
            "trace core 0 ev 5 release -\n",       // needs a server
            "trace core 0 ev 5 switch 0 9\n",      // trailing word
            "trace core 0 wobble\n",               // unknown kind
            "trace core 1 ev 5 switch 0\n",        // no header for core 1
            "trace core 0 server 3 vm b kind x\n", // out of order
        ] {
            let e = parse(&format!("{head}{bad}")).unwrap_err();
            assert_eq!(e.line, 3, "{bad}: {e}");
        }
        assert!(parse("trace core 0 freq 0 servers 0 events 0 dropped 0\n").is_err());
        assert!(parse("trace core 0 freq 1 servers\n").is_err());
    }

    #[test]
    fn warns_about_truncation_and_drops() {
        let t = parse(
            "trace core 0 freq 100 servers 2 events 5 dropped 7\n\
             trace core 0 server 0 vm a vcpu 0 kind cbs budget_us 1 period_us 2\n\
             trace core 0 ev 9 switch 0\n\
             trace core 0 ev 3 idle -\n",
        )
        .unwrap();
        let w = t.warnings.join("\n");
        for what in [
            "no `trace core 0 end`",
            "2 events listed",
            "1 servers listed",
            "7 later events not recorded",
            "out of tick order",
        ] {
            assert!(w.contains(what), "{what} in {w}");
        }
        assert_eq!(t.cores[0].events[0].tick, 3);
    }

    #[test]
    fn layout_makes_run_intervals_and_marks() {
        let t = parse(&synthetic()).unwrap();
        let l = layout(
            &t,
            WindowSpec {
                from_us: Some(0),
                span_us: Some(40_000),
            },
        );
        let c0 = &l.cores[0];
        // Per 10 ms: s0 2000 µs, s1 2500 µs, then s2 twice for 300 µs; idle in between.
        let ran = |s: usize| -> f64 {
            c0.intervals
                .iter()
                .filter(|i| i.server == Some(s))
                .map(|i| l.us(i.end) - l.us(i.start))
                .sum()
        };
        assert!((ran(0) - 4.0 * 2000.0).abs() < 1.0, "{}", ran(0));
        assert!((ran(1) - 4.0 * 2500.0).abs() < 1.0, "{}", ran(1));
        assert!((ran(2) - 8.0 * 300.0).abs() < 1.0, "{}", ran(2));
        // Intervals do not overlap, are ordered and lie in the window.
        for w in c0.intervals.windows(2) {
            assert!(w[0].end <= w[1].start, "{w:?}");
            assert_ne!(
                (w[0].server, w[0].end),
                (w[1].server, w[1].start),
                "not merged"
            );
        }
        assert!(c0
            .intervals
            .iter()
            .all(|i| i.start >= l.start && i.end <= l.end));
        // s0 is released at 0, 10, 20, 30 ms: deadlines at 10, 20, 30 and 40 (the window's end, included).
        let count = |k: MarkKind, s: usize| {
            c0.marks
                .iter()
                .filter(|m| m.kind == k && m.server == s)
                .count()
        };
        assert_eq!(count(MarkKind::Event(EventKind::Release), 0), 4);
        assert_eq!(count(MarkKind::Deadline, 0), 4);
        assert_eq!(count(MarkKind::Event(EventKind::Deplete), 0), 4);
        assert_eq!(count(MarkKind::Event(EventKind::Block), 1), 4);
        assert_eq!(count(MarkKind::Event(EventKind::Inject), 0), 4);
        // A narrower window clips.
        let part = layout(
            &t,
            WindowSpec {
                from_us: Some(1000),
                span_us: Some(2000),
            },
        );
        let iv = &part.cores[0].intervals;
        assert_eq!(iv.len(), 2, "{iv:?}");
        assert_eq!(iv[0].server, Some(0));
        assert!((part.us(iv[0].start) - 1000.0).abs() < 0.1);
        assert_eq!(iv[1].server, Some(1));
        assert!((part.us(iv[1].end) - 3000.0).abs() < 0.1);
    }

    #[test]
    fn default_window() {
        let t = parse(&synthetic()).unwrap();
        // Periods 10000, 10000, 5000 and 2000: hyperperiod 10 ms, longest 10 ms → 40 ms, but the
        // trace is shorter.
        assert_eq!(default_span_us(&t, 1_000_000), 40_000);
        assert_eq!(default_span_us(&t, 12_345), 12_345);
        let l = layout(&t, WindowSpec::default());
        assert_eq!(l.start, l.origin);
        assert!(l.end >= l.last - 1);
    }

    #[test]
    fn svg_has_a_bar_per_run_interval_and_a_legend() {
        let t = parse(&synthetic()).unwrap();
        let l = layout(&t, WindowSpec::default());
        let svg = render_svg(&l, "synthetic <trace>", &["a & b".to_string()]);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        let runs: usize = l
            .cores
            .iter()
            .map(|c| c.intervals.iter().filter(|i| i.server.is_some()).count())
            .sum();
        let all: usize = l.cores.iter().map(|c| c.intervals.len()).sum();
        assert!(runs > 10);
        assert_eq!(svg.matches(r#"<rect class="run""#).count(), runs);
        assert_eq!(svg.matches(r#"<rect class="cpu""#).count(), all);
        let marks: usize = l.cores.iter().map(|c| c.marks.len()).sum();
        // Every mark plus one per legend entry.
        assert_eq!(svg.matches(r#"class="mark "#).count(), marks + LEGEND.len());
        for text in [
            "core 0",
            "core 2",
            "s1 beta/0</text>",
            ">periodic 3000/10000 µs p1</text>",
            "legend",
            "deplete (budget exhausted)",
            "synthetic &lt;trace&gt;",
            "warning: a &amp; b",
            " ms</text>",
        ] {
            assert!(svg.contains(text), "{text}");
        }
        // Balanced elements (a cheap well-formedness check).
        assert_eq!(
            svg.matches("<title>").count(),
            svg.matches("</title>").count()
        );
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    }

    #[test]
    fn time_labels() {
        assert_eq!(time_label(40_000.0, true), "40 ms");
        assert_eq!(time_label(39_999.984, true), "40 ms");
        assert_eq!(time_label(2_500.0, true), "2.5 ms");
        assert_eq!(time_label(250.4, false), "250 µs");
    }

    #[test]
    fn axis_steps_are_nice() {
        assert_eq!(axis_step_us(40_000.0, 12.0), 5000.0);
        assert_eq!(axis_step_us(1000.0, 10.0), 100.0);
        assert_eq!(axis_step_us(3000.0, 12.0), 500.0);
        assert_eq!(axis_step_us(150.0, 12.0), 20.0);
    }

    /// Writes the synthetic example to `<target>/trace/example.svg` for a person to look at.
    #[test]
    fn writes_the_example() {
        let paths = Paths::discover().unwrap();
        let t = parse(&synthetic()).unwrap();
        let svg = render_svg(
            &layout(&t, WindowSpec::default()),
            "Tessera scheduler trace: synthetic example",
            &t.warnings,
        );
        let dir = paths.target.join("trace");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("example.svg"), svg).unwrap();
    }

    #[test]
    fn sched_scenarios_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let all = crate::scenario::load_dir(&dir).unwrap();
        assert!(all.iter().any(|c| c.scenario.name == "sched-mix-edf-gicv3"));
    }
}
