//! LLC coloring: the fixtures of `tests/fixtures/coloring` (with their board and CPU model),
//! the coloring fields of the descriptors and the report, and the page arithmetic against
//! real stage-2 table building.
//!
//! A fixture's header lines: `# board: <name>` (a board under `tests/fixtures/boards`, default
//! qemu-virt), `# cpu: <model>` (the build's CPU, default the board's), `# expect: <text>`
//! (the load fails with an error containing it), `# warn: <text>` (the load succeeds with a
//! warning containing it), `# no-warn: <text>` (no warning contains it).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use tessera_config::coloring::{stage2_table_bound, MAX_ROOT_TABLES};
use tessera_config::desc::{ColorList, LlcDesc};
use tessera_config::{ErrorKind, LlcSource, Options, System};
use tessera_stage2::{GuestPhysAddr, MemAttrs, PageTable, PhysAddr, Stage2, Stage2Config};

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn repo_root() -> PathBuf {
    crate_dir().join("../..")
}

fn fixtures() -> PathBuf {
    crate_dir().join("tests/fixtures")
}

/// A guest directory with a stand-in `hello.bin` (an arm64 Image header, 16 KiB in RAM).
fn guest_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tessera-config-coloring-guests");
        fs::create_dir_all(&d).unwrap();
        let mut f = vec![0u8; 0x3000];
        f[8..16].copy_from_slice(&0x80000u64.to_le_bytes());
        f[16..24].copy_from_slice(&0x4000u64.to_le_bytes());
        f[56..60].copy_from_slice(b"ARM\x64");
        fs::write(d.join("hello.bin"), f).unwrap();
        d
    })
}

/// Options for `config` on `board` (a fixture board name or `qemu-virt`), CPU `cpu`.
fn opts(config: &Path, board: Option<&str>, cpu: Option<&str>) -> Options {
    let mut o = Options::new(&repo_root(), "qemu-virt", "default");
    if let Some(b) = board {
        o.board_dir = fixtures().join("boards").join(b);
    }
    o.config = config.to_path_buf();
    o.guest_dir = guest_dir().to_path_buf();
    o.read_image_env = false;
    o.cpu = cpu.map(str::to_string);
    o
}

fn header<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    let prefix = format!("# {key}: ");
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}

fn load_fixture(f: &Path) -> (String, Result<System, Vec<tessera_config::ConfigError>>) {
    let text = fs::read_to_string(f).unwrap();
    let board = header(&text, "board").first().copied();
    let cpu = header(&text, "cpu").first().copied();
    let r = tessera_config::load(&opts(f, board, cpu));
    (text, r)
}

fn lines(errs: &[tessera_config::ConfigError]) -> Vec<String> {
    errs.iter().map(|e| e.to_string()).collect()
}

#[test]
fn coloring_fixtures() {
    let mut files: Vec<PathBuf> = fs::read_dir(fixtures().join("coloring"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 7, "coloring fixtures missing");
    let mut failures = Vec::new();
    for f in files {
        let (text, r) = load_fixture(&f);
        let expects = header(&text, "expect");
        let warns = header(&text, "warn");
        let no_warns = header(&text, "no-warn");
        assert!(
            !expects.is_empty() || !warns.is_empty(),
            "{}: neither `# expect:` nor `# warn:`",
            f.display()
        );
        match r {
            Ok(sys) => {
                if !expects.is_empty() {
                    failures.push(format!("{}: validated but should fail", f.display()));
                }
                for w in &warns {
                    if !sys.warnings.iter().any(|x| x.contains(w)) {
                        failures.push(format!(
                            "{}: no warning containing\n  {w}\ngot:\n  {}",
                            f.display(),
                            sys.warnings.join("\n  ")
                        ));
                    }
                }
                for w in &no_warns {
                    if sys.warnings.iter().any(|x| x.contains(w)) {
                        failures.push(format!(
                            "{}: unexpected warning about {w}:\n  {}",
                            f.display(),
                            sys.warnings.join("\n  ")
                        ));
                    }
                }
                // Warnings reach the report (check-config prints it).
                let report = tessera_config::Report::new(&sys).to_string();
                for w in &sys.warnings {
                    assert!(report.contains(&format!("warning: {w}")), "{report}");
                }
            }
            Err(errs) => {
                let got = lines(&errs);
                if expects.is_empty() {
                    failures.push(format!(
                        "{}: should validate:\n  {}",
                        f.display(),
                        got.join("\n  ")
                    ));
                }
                for e in &expects {
                    if !got.iter().any(|l| l.contains(e)) {
                        failures.push(format!(
                            "{}: expected an error containing\n  {e}\ngot:\n  {}",
                            f.display(),
                            got.join("\n  ")
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Board-level checks of LLC geometries and clusters.
#[test]
fn bad_board_geometry_and_clusters() {
    let cfg = fixtures().join("coloring/uncolored-hypervisor.toml");
    let errs = tessera_config::load(&opts(&cfg, Some("bad-llc"), None)).unwrap_err();
    let got = lines(&errs);
    for e in [
        "board: `cpu.llc.\"odd\"`: way size 0x18000 (size 0x180000 / ways 16) is not a power of two of at least 4 KiB",
        "board: `cpu.llc.\"odd\".line`: 48 bytes is not a power of two from 16 to 4096",
        "board: `cpu.llc.\"tiny\"`: way size 0x800 (size 0x8000 / ways 16) is not a power of two of at least 4 KiB",
        "board: `llc_clusters[1].cores`: core 3 is already in llc_clusters[0]",
        "board: `llc_clusters[1].cores`: core 9 does not exist (max_cpus = 8)",
        "board: `llc_clusters`: core(s) 4, 7 are in no cluster",
    ] {
        assert!(got.iter().any(|l| l.contains(e)), "no {e:?} in\n{got:#?}");
    }
    assert!(errs.iter().all(|e| e.kind == ErrorKind::Board));
}

/// The geometry follows the build's CPU model; an override wins; none known is fine while no
/// color is used.
#[test]
fn geometry_per_cpu_model() {
    let cfg = repo_root().join("boards/qemu-virt/configs/default.toml");
    let geometry = |cpu: Option<&str>| {
        let s = tessera_config::load(&opts(&cfg, None, cpu)).unwrap();
        (s.cpu.clone(), s.llc.clone())
    };
    let (cpu, llc) = geometry(None);
    assert_eq!(cpu, "max");
    let llc = llc.unwrap();
    assert_eq!(llc.source, LlcSource::CpuModel("max".into()));
    assert_eq!(llc.geometry.colors(), 32);
    for (model, colors) in [("cortex-a53", 16), ("cortex-a72", 16), ("cortex-a57", 32)] {
        let (cpu, llc) = geometry(Some(model));
        assert_eq!(cpu, model);
        let g = llc.unwrap().geometry;
        assert_eq!((g.colors(), g.ways, g.line), (colors, 16, 64));
    }
    let (cpu, llc) = geometry(Some("cortex-a15"));
    assert_eq!((cpu.as_str(), llc), ("cortex-a15", None));
    let s = tessera_config::load(&opts(&cfg, None, Some("cortex-a15"))).unwrap();
    let rs = tessera_config::codegen::config_rs_text(&s);
    assert!(rs.contains("    cpu: \"cortex-a15\",\n"), "{rs}");
    assert!(rs.contains("    llc_expected: None,\n"), "{rs}");
    assert!(tessera_config::Report::new(&s)
        .to_string()
        .contains("LLC: unknown for CPU `cortex-a15`"));

    // The override board: [llc] is both the override and the expected geometry.
    let one = fixtures().join("coloring/uncolored-hypervisor.toml");
    let s = tessera_config::load(&opts(&one, Some("override"), Some("whatever"))).unwrap();
    let want = LlcDesc {
        size: 0x80_0000,
        ways: 16,
        line: 128,
    };
    assert_eq!(s.llc.as_ref().unwrap().source, LlcSource::Override);
    let rs = tessera_config::codegen::config_rs_text(&s);
    let lit = "Some(::tessera_config::desc::LlcDesc { size: 0x800000, ways: 16, line: 128 })";
    assert!(rs.contains(&format!("    llc_override: {lit},\n")), "{rs}");
    assert!(rs.contains(&format!("    llc_expected: {lit},\n")), "{rs}");
    assert_eq!(s.llc.unwrap().geometry, want);
    assert_eq!(s.vms[0].colors, Some((0..8).collect::<Vec<u32>>()));
}

#[test]
fn colored_fixture_resolves() {
    let cfg = fixtures().join("good/colored.toml");
    let s = tessera_config::load(&opts(&cfg, None, None)).unwrap();
    assert_eq!(s.hypervisor.colors, 0b11 << 30);
    assert!(s.hypervisor.verify_coloring);
    assert!(s.vms[0].isolated);
    assert!(!s.vms[1].isolated);
    assert!(!s.vms[2].isolated && s.vms[2].colors.is_none());
    let ch: BTreeMap<&str, u64> = s
        .channels
        .iter()
        .map(|c| (c.name.as_str(), c.colors))
        .collect();
    assert_eq!(ch["to-rt"], 0x10ff, "the receiver's colors");
    assert_eq!(ch["to-plain"], 1 << 16, "the config's");
    assert_eq!(ch["plain-too"], 0, "an uncolored receiver");
    // An isolated VM beside an uncolored one warns; the colored hypervisor does not.
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    assert!(s.warnings[0].contains("uncolored vm `plain`"));

    let rs = tessera_config::codegen::config_rs_text(&s);
    for want in [
        "pub static HYPERVISOR: ::tessera_config::desc::HypervisorDesc = ::tessera_config::desc::HypervisorDesc { colors: 0xc0000000, verify_coloring: true };",
        "        colors: 0x10ff,\n",
        "        colors: 0xf0000,\n",
        "        colors: 0x10000,\n",
        "        colors: 0x0,\n",
    ] {
        assert!(rs.contains(want), "config.rs lacks {want:?}");
    }

    let r = tessera_config::Report::new(&s).to_string();
    for want in [
        "LLC: 2048 KiB, 16-way, 64 B lines → 32 colors of 4 KiB (CPU `max`, CLIDR/CCSIDR)",
        "hypervisor memory: colors 30-31, coloring verified at boot",
        "  colors    0-7,12 (isolated;",
        "  colors    16-19 (shared;",
        ", colors 0-7,12)",
        "pages per color (free / needed",
        "warning: vm `rt` is isolated (colors 0-7,12) but shares its LLC with uncolored vm `plain`",
    ] {
        assert!(r.contains(want), "report lacks {want:?}:\n{r}");
    }
    // The budget of every color: free pages total what RAM leaves outside the hypervisor
    // region and the bundle; rt's colors carry at least its RAM share.
    assert_eq!(s.color_pages.len(), 32);
    let free: u64 = s.color_pages.iter().map(|c| c.free).sum();
    let reserved = s.hyp_region.size + s.payloads.region.size;
    assert_eq!(free, (s.board.ram.size - reserved) / 4096);
    let rt_share = 0x200_0000 / 4096 / 9;
    for c in [0, 7, 12] {
        assert!(
            s.color_pages[c].needed >= rt_share,
            "{:?}",
            s.color_pages[c]
        );
    }
    assert!(s.color_pages.iter().all(|c| c.needed <= c.free));
}

/// The generated `config.rs` of the colored fixture against its snapshot
/// (`UPDATE_SNAPSHOTS=1` rewrites it, as for tests/config.rs).
#[test]
fn colored_config_rs_snapshot() {
    let s = tessera_config::load(&opts(&fixtures().join("good/colored.toml"), None, None)).unwrap();
    let text: String = tessera_config::codegen::config_rs_text(&s)
        .lines()
        .map(|l| {
            if l.starts_with("pub static BUNDLE") {
                let cut = l.find(", total_size").unwrap_or(l.len());
                format!("{}, total_size: .., identity: [..] }};\n", &l[..cut])
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let snap = crate_dir().join("tests/snapshots/colored.config.rs.snap");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        fs::write(&snap, &text).unwrap();
        return;
    }
    let want = fs::read_to_string(&snap).unwrap_or_default();
    assert!(
        want == text,
        "generated config.rs differs from {} (UPDATE_SNAPSHOTS=1 rewrites it):\n{text}",
        snap.display()
    );
}

/// The exhausted-color error names the VM, the color and the whole arithmetic, and is typed.
#[test]
fn exhausted_color_is_typed_and_explained() {
    let cfg = fixtures().join("bad/colors-exhausted.toml");
    let errs = tessera_config::load(&opts(&cfg, None, None)).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].kind, ErrorKind::ColorsExhausted);
    // The same VM on 4 colors fits: 4 × ~15.8k pages free.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("coloring-exhausted");
    fs::create_dir_all(&dir).unwrap();
    let text = fs::read_to_string(&cfg)
        .unwrap()
        .replace("colors = [0]", "colors = [0, 1, 2, 3]");
    let four = dir.join("four.toml");
    fs::write(&four, text).unwrap();
    tessera_config::load(&opts(&four, None, None)).unwrap();
}

#[test]
fn color_list_is_compact() {
    assert_eq!(ColorList(0).to_string(), "none");
    assert_eq!(ColorList(0xff | 1 << 12).to_string(), "0-7,12");
    assert_eq!(ColorList(1 << 63 | 1 << 62 | 1).to_string(), "0,62-63");
    assert_eq!(ColorList(u64::MAX).to_string(), "0-63");
    assert_eq!(ColorList(0b1010).to_string(), "1,3");
}

/// Stage-2 table memory over a map, counting tables (as in crates/stage2's tests).
#[derive(Default)]
struct Frames {
    next: u64,
    tables: u64,
    desc: BTreeMap<(u64, usize), u64>,
}

impl tessera_stage2::TableMemory for Frames {
    fn alloc_table(&mut self, count: usize, align: usize) -> Option<PhysAddr> {
        let a = (self.next + align as u64 - 1) & !(align as u64 - 1);
        self.next = a + count as u64 * 4096;
        self.tables += count as u64;
        Some(PhysAddr(0x8000_0000 + a))
    }
    fn read(&self, t: PhysAddr, i: usize) -> u64 {
        self.desc.get(&(t.0, i)).copied().unwrap_or(0)
    }
    fn write(&mut self, t: PhysAddr, i: usize, d: u64) {
        self.desc.insert((t.0, i), d);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Mapping disjoint windows 4 KiB at a time (a colored VM's scattered frames) never needs
    /// more table pages than the bound the supply check charges, whatever the IPA size.
    #[test]
    fn table_bound_covers_real_stage2(
        pa_bits in prop::sample::select(vec![32u32, 36, 40, 42, 44, 48]),
        wins in prop::collection::vec((0u64..0x800, 1u64..48), 1..5),
    ) {
        let cfg = Stage2Config::new(pa_bits);
        let limit = 1u64 << cfg.ipa_bits();
        let mut mem = Frames::default();
        let mut s2 = PageTable::<Stage2>::new(&mut mem, &cfg).unwrap();
        // Windows at 2 MiB-granular spots spread over the IPA space, 4 KiB pages each.
        let mut windows: Vec<(u64, u64)> = Vec::new();
        for (slot, pages) in wins {
            let base = (slot * (limit / 0x800)) & !0xfff;
            let size = pages * 4096;
            if base + size > limit || windows.iter().any(|w| base < w.0 + w.1 && w.0 < base + size) {
                continue;
            }
            windows.push((base, size));
        }
        for (k, &(base, size)) in windows.iter().enumerate() {
            for p in 0..size / 4096 {
                // Scattered physical frames: never a block.
                let pa = 0x1000_0000 + ((k as u64 * 0x1000 + p) * 2 + 1) * 4096;
                s2.map(&mut mem, GuestPhysAddr(base + p * 4096), PhysAddr(pa), 4096, MemAttrs::RAM_RWX).unwrap();
            }
        }
        let bound = stage2_table_bound(&windows);
        prop_assert!(mem.tables <= bound, "{} tables > bound {bound} for {windows:x?}", mem.tables);
        // And the bound is not wildly loose: at most the roots it assumes beyond the real count
        // of levels 1..3.
        prop_assert!(bound <= mem.tables + MAX_ROOT_TABLES + 2 * windows.len() as u64);
    }
}

/// A tool, not a check: prints the report (or errors) of `$REPORT_CONFIG` on qemu-virt for CPU
/// `$REPORT_CPU` with stand-in guest images:
/// `REPORT_CONFIG=... cargo test -p tessera-config --test coloring print_report -- --ignored --nocapture`.
#[test]
#[ignore]
fn print_report() {
    let f = std::env::var("REPORT_CONFIG").unwrap();
    let cpu = std::env::var("REPORT_CPU").ok();
    match tessera_config::load(&opts(Path::new(&f), None, cpu.as_deref())) {
        Ok(s) => print!("{}", tessera_config::Report::new(&s)),
        Err(e) => e.iter().for_each(|e| println!("{e}")),
    }
}
