//! QEMU scenario files (ci/scenarios/*.toml) and judging a run against them.
//!
//! ```toml
//! name = "default-gicv3"
//! board = "qemu-virt"        # default qemu-virt
//! config = "default"         # name under boards/<board>/configs, or a path
//! gic = 3                    # default: the board's gic.default
//! cpu = "cortex-a72"         # QEMU -cpu, and the CPU model the image is built for
//!                            # (TESSERA_CPU: its LLC decides the colors); default cortex-a72
//! build_cpu = "cortex-a53"   # build the image for this CPU model instead of `cpu` (an image
//!                            # run on a CPU it was not built for); Tessera scenarios only
//! smp = 4                    # default 4
//! memory = "2G"              # QEMU -m; an integer means MiB; default 2G
//! timeout = 120              # seconds, default 120
//! expect_exit = 0            # the run's status, default 0: Tessera's, from its final console
//!                            # line (bare: QEMU's exit status); see below
//! expect = ['regex', ...]    # each must match some console line
//! forbid = ['regex', ...]    # none may match any line; `FATAL` and `panicked` are implied
//! allow_fatal = false        # true drops the implied forbids
//! order = ['regex', ...]     # must match lines in this order
//! guests = { vm = "guests/adversary" }   # image overrides (--guest VM=PATH)
//! features = []              # further cargo features of the tessera build, e.g.
//!                            # ["selftest-el2-fault"]; Tessera scenarios only. `semihosting`
//!                            # also gives QEMU -semihosting (no scenario needs it so far)
//! bare = false               # true: boot `guest` alone on QEMU, no Tessera, no EL2
//! guest = "hello"            # the guest of a bare scenario
//! qemu_args = []             # extra QEMU arguments
//! machine_gic = 2            # QEMU's gic-version when it must differ from `gic` (the image's);
//!                            # default: the same (Tessera scenarios only)
//! virtualization = true      # QEMU's virtualization=on (EL2); default: true, false if bare
//! input = [{ after = 'regex', send = "text" }, ...]
//!                            # console input: when a line matches `after`, `send` goes to
//!                            # QEMU's stdin (the serial console); in order, each entry once
//! host_untouched = ['/tmp/x-*']  # host paths the run must not create or modify; a `*` at the
//!                            # end of the file name matches any suffix
//! expect_build_error = ['regex', ...]
//!                            # the image must NOT build: the config's problems (or the failed
//!                            # cargo build's output) must have a line matching each regex;
//!                            # nothing runs (no expect, order, input); Tessera scenarios only
//! ```
//!
//! **The run's status.** Tessera scenarios run without semihosting (unless `features` has it),
//! so no guest can end QEMU, touch host files or run host commands. The status compared with
//! `expect_exit` is the one the hypervisor announces in its first final line (`[tessera] all
//! VMs off; exit N`, `[tessera] boot error ...` = 70, `[tessera] FATAL ...` = 255;
//! `tessera_abi::status`), and QEMU itself must exit with 0 (PSCI SYSTEM_OFF): any other QEMU
//! status means something else ended the machine. Bare scenarios (a guest alone, no
//! hypervisor) keep `-semihosting` and QEMU's exit status, their guest's way to report one.
//!
//! `input` entries wait for their turn: entry k+1 is only matched against lines after the one
//! that fired entry k (a line fires at most one entry). `send` takes TOML's escapes when it is
//! a basic string ("\r", "\u0014"), and then, in any string, `\n`, `\r`, `\t`, `\\` and
//! `\xHH` (so `'\x14'` works as a literal string). An entry that never fired fails the run.
//! Without `input`, QEMU's stdin is /dev/null. Tessera's console switches input between VMs with
//! Ctrl-T (0x14) then the VM's number; Ctrl-A is QEMU's own escape and cannot be sent.
//!
//! `machine_gic` and `virtualization = false` exist to run an image on a machine it was not
//! built for (the `boot-error-*` scenarios: Tessera must refuse to boot, and say why).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use regex::Regex;
use serde::Deserialize;

use crate::qemu::Outcome;

/// Forbidden in every scenario unless `allow_fatal = true`.
pub const IMPLICIT_FORBID: [&str; 2] = ["FATAL", "panicked"];

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default = "default_board")]
    pub board: String,
    #[serde(default = "default_config")]
    pub config: String,
    #[serde(default)]
    pub gic: Option<u8>,
    #[serde(default = "default_cpu")]
    pub cpu: String,
    /// The CPU model the image is built for when it is not `cpu`.
    #[serde(default)]
    pub build_cpu: Option<String>,
    #[serde(default = "default_smp")]
    pub smp: u32,
    #[serde(default)]
    pub memory: Option<Memory>,
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    #[serde(default)]
    pub expect_exit: i32,
    #[serde(default)]
    pub expect: Vec<String>,
    #[serde(default)]
    pub forbid: Vec<String>,
    #[serde(default)]
    pub allow_fatal: bool,
    #[serde(default)]
    pub order: Vec<String>,
    #[serde(default)]
    pub guests: BTreeMap<String, String>,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub bare: bool,
    #[serde(default)]
    pub guest: Option<String>,
    #[serde(default)]
    pub qemu_args: Vec<String>,
    #[serde(default)]
    pub machine_gic: Option<u8>,
    #[serde(default)]
    pub virtualization: Option<bool>,
    #[serde(default)]
    pub input: Vec<Input>,
    #[serde(default)]
    pub host_untouched: Vec<String>,
    /// What QEMU gets of the image's payload bundle (tests of the hypervisor's checks).
    #[serde(default)]
    pub payloads: PayloadMode,
    /// The build must fail with lines matching these (a scenario without a QEMU run).
    #[serde(default)]
    pub expect_build_error: Vec<String>,
}

/// `payloads = ...` of a scenario.
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PayloadMode {
    /// The bundle the build wrote, where its header says (`cargo xtask run` does the same).
    #[default]
    Load,
    /// No bundle at all.
    Omit,
    /// The bundle with one byte of its last payload flipped.
    Corrupt,
}

/// One piece of console input: `send` once a line matches `after`.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Input {
    pub after: String,
    pub send: String,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum Memory {
    /// MiB.
    MiB(u64),
    /// QEMU syntax: "2G", "512M".
    Text(String),
}

impl Scenario {
    pub fn memory_arg(&self) -> String {
        match &self.memory {
            None => "2G".into(),
            Some(Memory::MiB(m)) => format!("{m}M"),
            Some(Memory::Text(t)) => t.clone(),
        }
    }

    /// The CPU model the image is built for: `build_cpu`, else `cpu`.
    pub fn image_cpu(&self) -> &str {
        self.build_cpu.as_deref().unwrap_or(&self.cpu)
    }

    /// Whether the scenario is a build that must fail (no QEMU run).
    pub fn expects_build_error(&self) -> bool {
        !self.expect_build_error.is_empty()
    }

    /// QEMU's `gic-version` for an image built for GICv`image_gic`.
    pub fn machine_gic(&self, image_gic: u8) -> u8 {
        self.machine_gic.unwrap_or(image_gic)
    }

    /// Whether QEMU gets `-semihosting`: bare guests, and images built with it.
    pub fn semihosting(&self) -> bool {
        self.bare || self.features.iter().any(|f| f == "semihosting")
    }

    /// Whether QEMU models EL2 (`virtualization=on`).
    pub fn virtualization(&self) -> bool {
        self.virtualization.unwrap_or(!self.bare)
    }
}

fn default_board() -> String {
    "qemu-virt".into()
}
fn default_config() -> String {
    "default".into()
}
fn default_cpu() -> String {
    "cortex-a72".into()
}
fn default_smp() -> u32 {
    4
}
fn default_timeout() -> u64 {
    120
}

/// A scenario with its regexes compiled.
pub struct Compiled {
    pub scenario: Scenario,
    pub expect: Vec<Regex>,
    pub forbid: Vec<Regex>,
    pub order: Vec<Regex>,
    /// `input`, compiled: (after, the bytes to send).
    pub input: Vec<(Regex, Vec<u8>)>,
    /// `expect_build_error`, compiled.
    pub build_error: Vec<Regex>,
}

/// `send` with the escapes `\n`, `\r`, `\t`, `\\` and `\xHH` decoded.
pub fn unescape(send: &str) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(send.len());
    let mut bytes = send.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b't') => out.push(b'\t'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex: Vec<u8> = bytes.by_ref().take(2).collect();
                let v = std::str::from_utf8(&hex)
                    .ok()
                    .filter(|h| h.len() == 2 && h.bytes().all(|d| d.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        format!(
                            "`\\x` needs two hex digits, got {:?}",
                            String::from_utf8_lossy(&hex)
                        )
                    })?;
                out.push(v);
            }
            Some(c) => return Err(format!("unknown escape `\\{}`", c as char)),
            None => return Err("a lone `\\` at the end".into()),
        }
    }
    Ok(out)
}

fn compile_all(file: &Path, field: &str, res: &[String]) -> Result<Vec<Regex>> {
    res.iter()
        .map(|r| {
            Regex::new(r)
                .with_context(|| format!("{}: bad regex in {field}: {r:?}", file.display()))
        })
        .collect()
}

pub fn parse(file: &Path, text: &str) -> Result<Compiled> {
    let scenario: Scenario = toml::from_str(text)
        .with_context(|| format!("{} is not a valid scenario file", file.display()))?;
    if scenario.bare && scenario.guest.is_none() {
        bail!(
            "{}: a bare scenario needs `guest = \"<name or path>\"`",
            file.display()
        );
    }
    if !scenario.bare && scenario.guest.is_some() {
        bail!(
            "{}: `guest` is only for bare scenarios; use `guests = {{ vm = \"path\" }}` to \
             replace a VM's image",
            file.display()
        );
    }
    if let Some(g) = scenario.gic {
        if !(2..=3).contains(&g) {
            bail!("{}: gic = {g}; use 2 or 3", file.display());
        }
    }
    if let Some(g) = scenario.machine_gic {
        if !(2..=3).contains(&g) {
            bail!("{}: machine_gic = {g}; use 2 or 3", file.display());
        }
        if scenario.bare {
            bail!(
                "{}: `machine_gic` is for Tessera scenarios; a bare scenario's `gic` already is \
                 QEMU's gic-version",
                file.display()
            );
        }
    }
    for f in &scenario.features {
        if f.is_empty()
            || !f
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            bail!(
                "{}: features: {f:?} is not a cargo feature name (letters, digits, `-`, `_`)",
                file.display()
            );
        }
    }
    if scenario.bare && scenario.build_cpu.is_some() {
        bail!(
            "{}: `build_cpu` is of the Tessera build; a bare scenario has none",
            file.display()
        );
    }
    if scenario.expects_build_error() {
        let runs = [
            ("bare", scenario.bare),
            ("expect", !scenario.expect.is_empty()),
            ("order", !scenario.order.is_empty()),
            ("input", !scenario.input.is_empty()),
            ("host_untouched", !scenario.host_untouched.is_empty()),
        ];
        if let Some((field, _)) = runs.iter().find(|(_, set)| *set) {
            bail!(
                "{}: a scenario with `expect_build_error` builds nothing to run; `{field}` \
                 does not apply",
                file.display()
            );
        }
    }
    if scenario.bare && !scenario.features.is_empty() {
        bail!(
            "{}: `features` are of the Tessera build; a bare scenario has none",
            file.display()
        );
    }
    let mut input = Vec::new();
    for p in &scenario.host_untouched {
        let path = Path::new(p);
        if !path.is_absolute() || path.file_name().is_none() || p[..p.len() - 1].contains('*') {
            bail!(
                "{}: host_untouched: {p:?} must be an absolute file path, with at most one `*`, \
                 at its end",
                file.display()
            );
        }
    }
    for (i, e) in scenario.input.iter().enumerate() {
        let after = Regex::new(&e.after).with_context(|| {
            format!(
                "{}: bad regex in input[{i}].after: {:?}",
                file.display(),
                e.after
            )
        })?;
        let send = unescape(&e.send).map_err(|why| {
            anyhow::anyhow!("{}: input[{i}].send {:?}: {why}", file.display(), e.send)
        })?;
        if send.is_empty() {
            bail!("{}: input[{i}].send is empty", file.display());
        }
        if send.contains(&0x01) {
            bail!(
                "{}: input[{i}].send contains Ctrl-A, QEMU's console escape (it would not \
                 reach the guest)",
                file.display()
            );
        }
        input.push((after, send));
    }
    let mut forbid = scenario.forbid.clone();
    if !scenario.allow_fatal {
        forbid.extend(IMPLICIT_FORBID.iter().map(|s| s.to_string()));
    }
    Ok(Compiled {
        expect: compile_all(file, "expect", &scenario.expect)?,
        forbid: compile_all(file, "forbid", &forbid)?,
        order: compile_all(file, "order", &scenario.order)?,
        build_error: compile_all(file, "expect_build_error", &scenario.expect_build_error)?,
        input,
        scenario,
    })
}

/// The `host_untouched` paths that exist and were modified at or after `since` (a `*` at the
/// end of a file name matches any suffix).
pub fn touched_host_files(patterns: &[String], since: std::time::SystemTime) -> Vec<String> {
    let mut touched = Vec::new();
    let fresh = |p: &Path| {
        std::fs::symlink_metadata(p)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= since)
    };
    for pat in patterns {
        let path = Path::new(pat);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match name.strip_suffix('*') {
            Some(prefix) => {
                let dir = path.parent().unwrap_or(Path::new("/"));
                let Ok(entries) = std::fs::read_dir(dir) else {
                    continue;
                };
                for e in entries.flatten() {
                    let p = e.path();
                    if e.file_name().to_string_lossy().starts_with(prefix) && fresh(&p) {
                        touched.push(p.display().to_string());
                    }
                }
            }
            None => {
                if fresh(path) {
                    touched.push(pat.clone());
                }
            }
        }
    }
    touched
}

/// Every scenario under `dir`, sorted by file name.
pub fn load_dir(dir: &Path) -> Result<Vec<Compiled>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the scenario directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let mut out: Vec<Compiled> = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(&f).with_context(|| format!("cannot read {}", f.display()))?;
        let c = parse(&f, &text)?;
        if let Some(other) = out.iter().find(|o| o.scenario.name == c.scenario.name) {
            bail!(
                "two scenarios are named {:?} ({} and another file); names must be unique",
                other.scenario.name,
                f.display()
            );
        }
        out.push(c);
    }
    Ok(out)
}

/// What is wrong with a run (empty: it passed).
pub fn judge(c: &Compiled, outcome: Outcome, log: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let want = c.scenario.expect_exit;
    match outcome {
        Outcome::TimedOut(t) => problems.push(format!(
            "timeout: QEMU was still running after {} s and was killed",
            t.as_secs()
        )),
        Outcome::Exited(code) if c.scenario.bare => {
            if code != want {
                problems.push(format!(
                    "exit code mismatch: QEMU exited with {code}, expected {want}"
                ));
            }
        }
        Outcome::Exited(code) => {
            match crate::qemu::hypervisor_status(log) {
                None => problems.push(format!(
                    "exit code mismatch: Tessera printed no final status line (QEMU exited \
                     with {code}), expected status {want}"
                )),
                Some(s) if s as i64 != i64::from(want) => problems.push(format!(
                    "exit code mismatch: Tessera's status is {s}, expected {want}"
                )),
                Some(_) => {}
            }
            let semihosting_code = c.scenario.semihosting() && code as i64 == i64::from(want);
            if code != 0 && !semihosting_code {
                problems.push(format!(
                    "QEMU exited with {code}, not 0 (PSCI SYSTEM_OFF): something other than \
                     the hypervisor ended the machine"
                ));
            }
        }
    }
    let lines: Vec<&str> = log.lines().map(|l| l.trim_end_matches('\r')).collect();
    for re in &c.expect {
        if !lines.iter().any(|l| re.is_match(l)) {
            problems.push(format!("missing regex: no line matches /{re}/"));
        }
    }
    for re in &c.forbid {
        if let Some(l) = lines.iter().find(|l| re.is_match(l)) {
            problems.push(format!("forbidden match: /{re}/ matches {l:?}"));
        }
    }
    let mut from = 0;
    for (i, re) in c.order.iter().enumerate() {
        match lines[from..].iter().position(|l| re.is_match(l)) {
            Some(p) => from += p + 1,
            None => {
                let after = if i == 0 {
                    String::new()
                } else {
                    format!(" after the line matching /{}/", c.order[i - 1])
                };
                problems.push(format!("order: no line matches /{re}/{after}"));
                break;
            }
        }
    }
    problems
}

/// What is wrong with a scenario that expects a build error, given the build's result:
/// `Ok(())` (it built) or its error lines (empty: it passed).
pub fn judge_build(c: &Compiled, result: std::result::Result<(), &[String]>) -> Vec<String> {
    let lines = match result {
        Ok(()) => {
            return vec!["the image built, but the scenario expects a build error".to_string()]
        }
        Err(lines) => lines,
    };
    c.build_error
        .iter()
        .filter(|re| !lines.iter().any(|l| re.is_match(l)))
        .map(|re| {
            let first = lines.iter().find(|l| !l.trim().is_empty());
            format!(
                "build error: no line matches /{re}/ (the build failed with {} line(s); first: \
                 {:?})",
                lines.len(),
                first.map_or("", String::as_str)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sc(text: &str) -> Compiled {
        parse(Path::new("t.toml"), text).unwrap()
    }

    #[test]
    fn defaults_and_pass() {
        let c = sc("name = 'x'\nexpect = ['hello: ok']");
        assert_eq!(c.scenario.cpu, "cortex-a72");
        assert_eq!(c.scenario.smp, 4);
        assert_eq!(c.scenario.memory_arg(), "2G");
        assert_eq!(c.scenario.config, "default");
        let log = "[tessera] boot\r\n[hello] hello: ok\n[tessera] all VMs off; exit 0\r\n";
        assert!(judge(&c, Outcome::Exited(0), log).is_empty());
    }

    #[test]
    fn memory_forms() {
        assert_eq!(sc("name='x'\nmemory=512").scenario.memory_arg(), "512M");
        assert_eq!(sc("name='x'\nmemory='1G'").scenario.memory_arg(), "1G");
    }

    #[test]
    fn reports_each_kind_of_failure() {
        let c = sc("name='x'\nexpect_exit = 128\nexpect=['a: ok', 'never']\nforbid=['bad']");
        let p = judge(
            &c,
            Outcome::Exited(0),
            "a: ok\nbad thing\n[tessera] FATAL oops\n",
        );
        assert!(
            p.iter().any(|m| m.starts_with("exit code mismatch")),
            "{p:?}"
        );
        assert!(p.iter().any(|m| m.contains("/never/")), "{p:?}");
        assert!(p.iter().any(|m| m.contains("/bad/")), "{p:?}");
        assert!(p.iter().any(|m| m.contains("/FATAL/")), "{p:?}");
        let t = judge(&c, Outcome::TimedOut(Duration::from_secs(5)), "");
        assert!(t[0].starts_with("timeout"), "{t:?}");
    }

    #[test]
    fn allow_fatal_drops_implicit_forbids() {
        let c = sc("name='x'\nallow_fatal = true");
        let log = "thread panicked\nFATAL\n[tessera] all VMs off; exit 0\n";
        assert!(judge(&c, Outcome::Exited(0), log).is_empty());
    }

    #[test]
    fn order_is_checked() {
        let c = sc("name='x'\norder=['vm early off', 'late.*hello: ok']");
        let good = "[late] start\n[tessera] vm early off (exit 0)\n[late] hello: ok\n\
                    [tessera] all VMs off; exit 0\n";
        let bad =
            "[late] hello: ok\n[tessera] vm early off (exit 0)\n[tessera] all VMs off; exit 0\n";
        assert!(judge(&c, Outcome::Exited(0), good).is_empty());
        let p = judge(&c, Outcome::Exited(0), bad);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("order:"), "{p:?}");
    }

    #[test]
    fn rejects_bad_files() {
        assert!(parse(Path::new("t"), "name='x'\nbogus=1").is_err());
        assert!(parse(Path::new("t"), "name='x'\nbare=true").is_err());
        assert!(parse(Path::new("t"), "name='x'\nexpect=['(']").is_err());
        assert!(parse(Path::new("t"), "name='x'\ngic=4").is_err());
        assert!(parse(Path::new("t"), "name='x'\nmachine_gic=1").is_err());
        assert!(parse(Path::new("t"), "name='x'\nvirtualization='no'").is_err());
        for bad in ["''", "'a,b'", "'a b'"] {
            let text = format!("name='x'\nfeatures=[{bad}]");
            assert!(parse(Path::new("t"), &text).is_err(), "{bad}");
        }
        assert!(parse(
            Path::new("t"),
            "name='x'\nbare=true\nguest='hello'\nfeatures=['selftest-el2-fault']"
        )
        .is_err());
        assert_eq!(
            sc("name='x'\nfeatures=['selftest-el2-fault']")
                .scenario
                .features,
            ["selftest-el2-fault"]
        );
        assert!(parse(
            Path::new("t"),
            "name='x'\nbare=true\nguest='hello'\nmachine_gic=2"
        )
        .is_err());
    }

    #[test]
    fn machine_gic_and_virtualization() {
        let plain = sc("name='x'\ngic=3");
        assert_eq!(plain.scenario.machine_gic(3), 3);
        assert!(plain.scenario.virtualization());
        let bare = sc("name='x'\nbare=true\nguest='hello'");
        assert!(!bare.scenario.virtualization());
        let odd = sc("name='x'\ngic=3\nmachine_gic=2\nvirtualization=false");
        assert_eq!(odd.scenario.machine_gic(3), 2);
        assert!(!odd.scenario.virtualization());
        let bare_el2 = sc("name='x'\nbare=true\nguest='hello'\nvirtualization=true");
        assert!(bare_el2.scenario.virtualization());
    }

    #[test]
    fn input_entries() {
        let c = sc(r#"
name = 'x'
input = [
    { after = '^\[a\] ready', send = "one\r" },
    { after = 'b', send = "\u0014" },
    { after = 'c', send = '\x141two\r\n\\' },
]
"#);
        let sends: Vec<&[u8]> = c.input.iter().map(|(_, s)| s.as_slice()).collect();
        assert_eq!(sends, [&b"one\r"[..], &[0x14][..], &b"\x141two\r\n\\"[..]]);
        assert!(c.input[0].0.is_match("[a] ready"));
        assert!(sc("name='x'").input.is_empty());
        for bad in [
            "input = [{ after = '(', send = 'x' }]",
            "input = [{ after = 'a', send = '' }]",
            "input = [{ after = 'a', send = '\\q' }]",
            "input = [{ after = 'a', send = '\\x1' }]",
            "input = [{ after = 'a', send = '\\x+1' }]",
            "input = [{ after = 'a', send = '\\' }]",
            "input = [{ after = 'a', send = '\\x01x' }]",
            "input = [{ after = 'a' }]",
            "input = [{ after = 'a', send = 'x', when = 1 }]",
        ] {
            assert!(
                parse(Path::new("t"), &format!("name='x'\n{bad}")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn status_comes_from_the_hypervisor_line() {
        let c = sc("name='x'\nexpect_exit = 64");
        let log = "[vm] [tessera] all VMs off; exit 0\n[tessera] vm vm off (exit 70)\n\
                   [tessera] all VMs off; exit 64\n";
        assert!(judge(&c, Outcome::Exited(0), log).is_empty());
        // QEMU ended by something else (semihosting SYS_EXIT from a guest): a failure even
        // when the number happens to match.
        let p = judge(&c, Outcome::Exited(64), log);
        assert!(
            p.iter().any(|m| m.contains("not 0 (PSCI SYSTEM_OFF)")),
            "{p:?}"
        );
        // A guest's imitation of the final line does not count.
        let forged = "[vm] [tessera] all VMs off; exit 64\n";
        let p = judge(&c, Outcome::Exited(0), forged);
        assert!(
            p.iter().any(|m| m.contains("no final status line")),
            "{p:?}"
        );
        let fatal = sc("name='x'\nexpect_exit = 255\nallow_fatal = true");
        let log = "[tessera] FATAL: unexpected\n[tessera] all VMs off; exit 0\n";
        assert!(judge(&fatal, Outcome::Exited(0), log).is_empty());
        let boot = sc("name='x'\nexpect_exit = 70");
        assert!(judge(&boot, Outcome::Exited(0), "[tessera] boot error: x\n").is_empty());
        // Bare runs keep QEMU's status.
        let bare = sc("name='x'\nbare=true\nguest='hello'\nexpect_exit = 3");
        assert!(judge(&bare, Outcome::Exited(3), "").is_empty());
        assert!(!judge(&bare, Outcome::Exited(0), "").is_empty());
    }

    #[test]
    fn host_untouched_paths() {
        assert!(parse(Path::new("t"), "name='x'\nhost_untouched=['rel/path']").is_err());
        assert!(parse(Path::new("t"), "name='x'\nhost_untouched=['/a*/b']").is_err());
        let c = sc("name='x'\nhost_untouched=['/tmp/x-*', '/tmp/y']");
        assert_eq!(c.scenario.host_untouched.len(), 2);
        let dir = std::env::temp_dir().join(format!("xtask-untouched-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let old = dir.join("pwned-old");
        std::fs::write(&old, "x").unwrap();
        let since = std::time::SystemTime::now() + Duration::from_secs(1);
        let pat = vec![format!("{}/pwned-*", dir.display())];
        assert!(
            touched_host_files(&pat, since).is_empty(),
            "older files do not count"
        );
        let earlier = std::time::SystemTime::now() - Duration::from_secs(60);
        let hits = touched_host_files(&pat, earlier);
        assert_eq!(hits, [old.display().to_string()]);
        let exact = vec![old.display().to_string()];
        assert_eq!(touched_host_files(&exact, earlier).len(), 1);
        let none = vec![format!("{}/nothing-*", dir.display())];
        assert!(touched_host_files(&none, earlier).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn build_error_scenarios() {
        let c = sc("name='x'\nexpect_build_error=['not enough .* color 3', 'needs \\d+']");
        assert!(c.scenario.expects_build_error());
        assert!(!sc("name='x'").scenario.expects_build_error());
        let out: Vec<String> = [
            "error: vm big: not enough pages of color 3",
            "it needs 65536",
        ]
        .map(String::from)
        .into();
        assert!(judge_build(&c, Err(&out)).is_empty());
        let p = judge_build(&c, Err(&out[..1]));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("needs"), "{p:?}");
        let p = judge_build(&c, Ok(()));
        assert!(p[0].contains("built"), "{p:?}");
        for bad in [
            "expect=['a']",
            "order=['a']",
            "input=[{ after = 'a', send = 'b' }]",
            "bare=true\nguest='hello'",
            "expect_build_error=['(']",
        ] {
            let text = format!("name='x'\nexpect_build_error=['x']\n{bad}");
            assert!(parse(Path::new("t"), &text).is_err(), "{bad}");
        }
    }

    #[test]
    fn build_cpu() {
        let c = sc("name='x'\ncpu='max'");
        assert_eq!(c.scenario.image_cpu(), "max");
        let c = sc("name='x'\ncpu='max'\nbuild_cpu='cortex-a53'");
        assert_eq!(c.scenario.image_cpu(), "cortex-a53");
        assert_eq!(c.scenario.cpu, "max");
        assert!(parse(
            Path::new("t"),
            "name='x'\nbare=true\nguest='hello'\nbuild_cpu='max'"
        )
        .is_err());
    }

    #[test]
    fn repository_scenarios_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let all = load_dir(&dir).unwrap();
        assert!(!all.is_empty());
    }
}
