//! Fixture tests: every bad config fails with its message, good configs and the shipped
//! boards/qemu-virt configs validate, generated DTBs parse back, code generation works.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use tessera_config::desc::{FaultPolicy, GicVersion};
use tessera_config::sched::CorePolicy;
use tessera_config::{ErrorKind, ImageState, MissingImages, Options, System};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// An arm64 Image: header with text_offset 0x80000 and `image_size`, `len` bytes long.
fn arm_image(len: usize, image_size: u64) -> Vec<u8> {
    let mut f = vec![0u8; len.max(64)];
    f[8..16].copy_from_slice(&0x80000u64.to_le_bytes());
    f[16..24].copy_from_slice(&image_size.to_le_bytes());
    f[56..60].copy_from_slice(b"ARM\x64");
    f
}

/// A one-segment ELF64 AArch64 at paddr 0x4008_0000, entry 0x4008_0000.
fn elf_image() -> Vec<u8> {
    let mut f = vec![0u8; 0x140];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2;
    f[5] = 1;
    f[18..20].copy_from_slice(&183u16.to_le_bytes());
    f[24..32].copy_from_slice(&0x4008_0000u64.to_le_bytes());
    f[32..40].copy_from_slice(&64u64.to_le_bytes());
    f[54..56].copy_from_slice(&56u16.to_le_bytes());
    f[56..58].copy_from_slice(&1u16.to_le_bytes());
    let ph = 64;
    f[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes());
    f[ph + 8..ph + 16].copy_from_slice(&0x120u64.to_le_bytes());
    f[ph + 16..ph + 24].copy_from_slice(&0x4008_0000u64.to_le_bytes());
    f[ph + 24..ph + 32].copy_from_slice(&0x4008_0000u64.to_le_bytes());
    f[ph + 32..ph + 40].copy_from_slice(&0x20u64.to_le_bytes());
    f[ph + 40..ph + 48].copy_from_slice(&0x1000u64.to_le_bytes());
    f
}

/// A guest directory with synthetic images: hello, adversary (arm64 Images), big (header
/// image_size 16 MiB), elf, raw.
fn guest_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tessera-config-guests");
        fs::create_dir_all(&d).unwrap();
        // A small stand-in image for every guest crate of the repository, so that every
        // shipped config (whatever guests it names) validates without building them.
        for entry in fs::read_dir(repo_root().join("guests")).unwrap() {
            let dir = entry.unwrap().path();
            if dir.join("Cargo.toml").exists() {
                let name = dir.file_name().unwrap().to_string_lossy().into_owned();
                fs::write(d.join(format!("{name}.bin")), arm_image(0x3000, 0x4000)).unwrap();
            }
        }
        // The Linux recipe guest: a stand-in kernel and initramfs.
        fs::write(d.join("linux.bin"), arm_image(0x3000, 0x4000)).unwrap();
        fs::write(d.join("linux.cpio"), [0x30u8; 0x1000]).unwrap();
        fs::write(d.join("adversary.bin"), arm_image(0x2000, 0x2000)).unwrap();
        fs::write(d.join("big.bin"), arm_image(0x1000, 0x100_0000)).unwrap();
        fs::write(d.join("elf.bin"), elf_image()).unwrap();
        fs::write(d.join("raw.bin"), [0xd5u8, 0x03, 0x20, 0x1f]).unwrap();
        d
    })
}

fn opts(config: &Path) -> Options {
    let mut o = Options::new(&repo_root(), "qemu-virt", "default");
    o.config = config.to_path_buf();
    o.guest_dir = guest_dir().to_path_buf();
    o.read_image_env = false;
    o
}

fn load(config: &Path) -> Result<System, Vec<tessera_config::ConfigError>> {
    tessera_config::load(&opts(config))
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

#[test]
fn bad_fixtures_fail_with_their_messages() {
    let files = toml_files(&fixtures().join("bad"));
    assert!(files.len() >= 20, "bad fixtures missing");
    let mut failures = Vec::new();
    for f in files {
        let text = fs::read_to_string(&f).unwrap();
        let expects: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .map(|e| e.replace("GUESTS", &guest_dir().display().to_string()))
            .collect();
        assert!(!expects.is_empty(), "{}: no `# expect:` line", f.display());
        let errs = match load(&f) {
            Ok(_) => {
                failures.push(format!("{}: validated but should fail", f.display()));
                continue;
            }
            Err(e) => e,
        };
        let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        for l in &lines {
            assert!(!l.contains('\n'), "multi-line error: {l:?}");
        }
        for e in &expects {
            if !lines.iter().any(|l| l.contains(e.as_str())) {
                failures.push(format!(
                    "{}: expected an error containing\n  {e}\ngot:\n  {}",
                    f.display(),
                    lines.join("\n  ")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn many_problems_are_all_reported() {
    let errs = load(&fixtures().join("bad/many-problems.toml")).unwrap_err();
    assert!(errs.len() >= 4, "{errs:?}");
}

#[test]
fn error_kinds_are_typed() {
    let kind = |name: &str| {
        let errs = load(&fixtures().join("bad").join(name)).unwrap_err();
        errs.iter().map(|e| e.kind).collect::<Vec<_>>()
    };
    assert!(kind("overlap-phys.toml").contains(&ErrorKind::PhysOverlap));
    assert!(kind("phys-hypervisor.toml").contains(&ErrorKind::HypOverlap));
    assert!(kind("phys-payloads.toml").contains(&ErrorKind::Payloads));
    assert!(kind("device-twice.toml").contains(&ErrorKind::DeviceTwice));
    assert!(kind("unknown-field.toml").contains(&ErrorKind::Parse));
    assert!(kind("sched-exclusive-trace.toml").contains(&ErrorKind::NotSupported));
    assert!(kind("sched-overcommit.toml").contains(&ErrorKind::Unschedulable));
    assert!(kind("pcpu-twice.toml").contains(&ErrorKind::PcpuTwice));
    assert!(kind("image-missing.toml").contains(&ErrorKind::MissingImage));
    assert!(kind("ram-demand.toml").contains(&ErrorKind::RamDemand));
    assert!(kind("colors-exhausted.toml").contains(&ErrorKind::ColorsExhausted));
    assert!(kind("colors-isolated.toml").contains(&ErrorKind::Colors));
}

#[test]
fn unknown_field_names_the_line() {
    let errs = load(&fixtures().join("bad/unknown-field.toml")).unwrap_err();
    let l = errs[0].to_string();
    assert!(l.contains("unknown-field.toml"), "{l}");
    assert!(l.contains("(line 7)"), "{l}");
}

#[test]
fn good_fixtures_build() {
    for f in toml_files(&fixtures().join("good")) {
        let sys = load(&f).unwrap_or_else(|e| {
            panic!(
                "{}:\n{}",
                f.display(),
                e.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("codegen")
            .join(f.file_stem().unwrap());
        fs::create_dir_all(&out).unwrap();
        let g = tessera_config::codegen::write_all(&sys, &out).unwrap();
        let rs = fs::read_to_string(&g.config_rs).unwrap();
        assert!(rs.contains("pub static BOARD: ::tessera_config::desc::BoardDesc"));
        assert!(rs.contains(&format!(
            "pub static VMS: [::tessera_config::desc::VmDesc; {}]",
            sys.vms.len()
        )));
        assert!(rs.contains("pub static PCPUS: [::tessera_config::desc::PcpuDesc; 8]"));
        let lx = fs::read_to_string(&g.link_x).unwrap();
        for sym in [
            "__image_start",
            "__image_end",
            "__bss_start",
            "__bss_end",
            "__stack_top_base",
            "__stacks_start",
            "__stacks_end",
            "__rodata_start",
            "__data_start",
            "ENTRY(_start)",
            "KEEP(*(.text.boot))",
            ". = 0x4000200000;",
            "__text_offset = 0x40200000 - 0x40000000;",
        ] {
            assert!(lx.contains(sym), "link.x lacks {sym}");
        }
        assert!(lx.find(".text.boot").unwrap() < lx.find(".text :").unwrap());
        // The EL2 map's permission boundaries: text < rodata < data.
        assert!(lx.find(".text :").unwrap() < lx.find("__rodata_start = .").unwrap());
        assert!(lx.find("__rodata_start = .").unwrap() < lx.find(".rodata :").unwrap());
        assert!(lx.find(".rodata :").unwrap() < lx.find("__data_start = .").unwrap());
        assert!(lx.find("__data_start = .").unwrap() < lx.find(".data :").unwrap());
        // The payload bundle: every VM's image and DTB, checked by the image's own reader.
        let bytes = fs::read(&g.payloads).unwrap();
        assert_eq!(bytes, sys.payloads.bytes);
        let p = &sys.payloads;
        let bundle = tessera_bundle::Bundle::open(&bytes, p.region.base, &p.identity).unwrap();
        assert!(p.region.size >= bytes.len() as u64);
        assert_eq!(p.region.base % (2 << 20), 0);
        assert_eq!(
            p.region.base + p.region.size,
            sys.board.ram.base + sys.board.ram.size
        );
        for (vm, r) in sys.vms.iter().zip(&p.refs) {
            let (img, dtb) = (&r.image, &r.dtb);
            assert_eq!(bundle.payload(usize::from(dtb.entry)).unwrap(), &vm.dtb[..]);
            assert_eq!(dtb.size, vm.dtb.len() as u64);
            let e = bundle.entry(usize::from(img.entry)).unwrap();
            assert_eq!(
                (e.vm as usize, e.kind),
                (vm.id, tessera_bundle::Kind::Image)
            );
            assert_eq!(e.size, img.size);
        }
        assert!(!tessera_config::Report::new(&sys).to_string().is_empty());
    }
}

#[test]
fn everything_fixture_resolves() {
    let sys = load(&fixtures().join("good/everything.toml")).unwrap();
    assert_eq!(sys.vms.len(), 3);
    assert_eq!(sys.used_cpus, 4);
    assert_eq!(
        sys.pcpus[1].policy,
        CorePolicy::Exclusive { vm: 0, vcpu: 1 }
    );
    assert_eq!(sys.pcpus[4].policy, CorePolicy::Idle);
    let pinned = &sys.vms[1];
    assert_eq!(pinned.on_fault, FaultPolicy::Stop);
    let ImageState::Loaded { image, .. } = &pinned.image else {
        panic!()
    };
    assert_eq!(image.format, tessera_config::image::ImageFormat::Elf);
    assert_eq!(
        (image.load_ipa, image.entry_ipa),
        (0x4008_0000, 0x4008_0000)
    );
    assert_eq!(image.mem_size, 0x1000);
    let raw = &sys.vms[2];
    let ImageState::Loaded { image, .. } = &raw.image else {
        panic!()
    };
    assert_eq!(image.load_ipa, 0x4000_0000);
    assert_eq!(sys.vms[0].dtb_ipa, 0x4000_0000 + 0x200_0000 - 0x1_0000);
}

/// Generated `config.rs` of a few configs against `tests/snapshots/<name>.config.rs.snap`.
/// `UPDATE_SNAPSHOTS=1 cargo test -p tessera-config` rewrites them (review the diff).
#[test]
fn config_rs_snapshots() {
    let good = fixtures().join("good");
    let shipped = repo_root().join("boards/qemu-virt/configs");
    let cases = [
        ("minimal", good.join("minimal.toml")),
        ("everything", good.join("everything.toml")),
        ("sched-mixed", good.join("sched-mixed.toml")),
        ("sched-edf", shipped.join("sched-edf.toml")),
        ("sched-fp", shipped.join("sched-fp.toml")),
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (name, file) in cases {
        let sys = load(&file).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        // The bundle's identity and sizes follow the guest images' bytes: stand-ins keep the
        // snapshot about the config.
        let text = stable_payload_fields(&tessera_config::codegen::config_rs_text(&sys));
        let snap = dir.join(format!("{name}.config.rs.snap"));
        if update {
            fs::create_dir_all(&dir).unwrap();
            fs::write(&snap, &text).unwrap();
            continue;
        }
        let want = fs::read_to_string(&snap).unwrap_or_default();
        if want != text {
            let line = want
                .lines()
                .zip(text.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(want.lines().count().min(text.lines().count()));
            stale.push(format!(
                "{name}: generated config.rs differs from {} at line {}:\n  want: {:?}\n  got:  {:?}",
                snap.display(),
                line + 1,
                want.lines().nth(line).unwrap_or("<end>"),
                text.lines().nth(line).unwrap_or("<end>")
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "{}\n(UPDATE_SNAPSHOTS=1 cargo test -p tessera-config rewrites them)",
        stale.join("\n")
    );
}

/// The shared cores of sched-mixed.toml: policies, server order = slots, auto budget, trace.
#[test]
fn shared_cores_resolve() {
    use tessera_config::desc::{SchedPolicy, ServerKind};
    let sys = load(&fixtures().join("good/sched-mixed.toml")).unwrap();
    let (ctl, pair, side, third) = (0, 1, 2, 3);
    let CorePolicy::Shared { policy, servers } = &sys.pcpus[0].policy else {
        panic!("{:?}", sys.pcpus[0])
    };
    assert_eq!(*policy, SchedPolicy::Edf);
    assert!(sys.pcpus[0].trace);
    assert_eq!(
        servers
            .iter()
            .map(|s| (s.desc.vm, s.desc.vcpu))
            .collect::<Vec<_>>(),
        [(side, 0), (ctl, 0)]
    );
    assert!(servers[1].budget_auto);
    assert!(servers[1].desc.budget_us > 0 && servers[1].desc.budget_us <= 500);
    assert_eq!(servers[0].desc.kind, ServerKind::Polling);
    assert_eq!(servers[0].desc.priority, 0);
    assert_eq!(
        sys.pcpus[1].policy,
        CorePolicy::Exclusive { vm: ctl, vcpu: 1 }
    );
    assert!(!sys.pcpus[1].trace);
    let CorePolicy::Shared { policy, servers } = &sys.pcpus[2].policy else {
        panic!("{:?}", sys.pcpus[2])
    };
    assert_eq!(*policy, SchedPolicy::FixedPriority);
    assert!(!sys.pcpus[2].trace);
    assert_eq!(
        servers
            .iter()
            .map(|s| (s.desc.vm, s.desc.vcpu, s.desc.priority))
            .collect::<Vec<_>>(),
        [(pair, 1, 5), (third, 0, 9), (pair, 0, 1)]
    );
    assert_eq!(servers[0].desc.kind, ServerKind::Cbs);
    assert_eq!(sys.pcpus[3].policy, CorePolicy::Idle);
    // Every vCPU's slot indexes its own server.
    for vm in &sys.vms {
        for (i, (&cpu, &slot)) in vm.cpus.iter().zip(&vm.slots).enumerate() {
            match &sys.pcpus[cpu].policy {
                CorePolicy::Shared { servers, .. } => {
                    assert_eq!((servers[slot].desc.vm, servers[slot].desc.vcpu), (vm.id, i))
                }
                CorePolicy::Exclusive { .. } => assert_eq!(slot, 0),
                CorePolicy::Idle => panic!("vCPU on an idle core"),
            }
        }
    }
    assert_eq!(sys.vms[pair].slots, [2, 0]);
    // Both levels analysed: two shared cores, two vCPUs with tasks.
    assert_eq!(sys.analysis.cores.len(), 2);
    assert_eq!(sys.analysis.guests.len(), 2);
    let r = tessera_config::Report::new(&sys).to_string();
    for s in [
        "pCPU0  edf (2 servers, trace on): utilisation",
        "budget \"auto\" = ",
        "pCPU2  fixed-priority (3 servers)",
        "priority 5, response ",
        "on the whole of pCPU1 (exclusive): schedulable",
    ] {
        assert!(r.contains(s), "report lacks {s:?}:\n{r}");
    }
}

#[test]
fn shipped_configs_validate() {
    let dir = repo_root().join("boards/qemu-virt/configs");
    let files = toml_files(&dir);
    for name in [
        "default",
        "smp2",
        "smp8",
        "adversary",
        "adversary-stop",
        "early-off",
    ] {
        assert!(
            files.iter().any(|f| f.file_stem().unwrap() == name),
            "{name}.toml missing"
        );
    }
    for f in files {
        // A config that must not build (a build-error scenario) says how, as bad fixtures do
        // (`# expect: <error text>`); `*-exhausted` configs must fail for lack of colored pages.
        let text = fs::read_to_string(&f).unwrap();
        let expects: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        let exhausted = f
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .ends_with("-exhausted");
        if exhausted || !expects.is_empty() {
            let errs = load(&f).expect_err(&format!("{} must not validate", f.display()));
            let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
            for e in &expects {
                assert!(
                    lines.iter().any(|l| l.contains(e)),
                    "{}: no error containing {e:?} in {lines:#?}",
                    f.display()
                );
            }
            if exhausted {
                assert!(
                    errs.iter().any(|e| e.kind == ErrorKind::ColorsExhausted),
                    "{}: {lines:#?}",
                    f.display()
                );
            }
            continue;
        }
        for gic in [2, 3] {
            let mut o = opts(&f);
            o.gic = Some(gic);
            if let Err(e) = tessera_config::load(&o) {
                panic!(
                    "{} (GICv{gic}):\n{}",
                    f.display(),
                    e.iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
        }
    }
}

#[test]
fn adversary_config_facts() {
    let sys = load(&repo_root().join("boards/qemu-virt/configs/adversary.toml")).unwrap();
    let victim = &sys.vms[0];
    assert_eq!(victim.mem[0].phys, Some(0x5000_0000));
    let adv = &sys.vms[1];
    assert_eq!(adv.mem[0].ipa, 0x8000_0000);
    let ImageState::Loaded { image, .. } = &adv.image else {
        panic!()
    };
    assert_eq!(image.entry_ipa, 0x8008_0000);
    assert!(adv.bootargs.contains("probe=0x40200000"));
    assert_eq!(adv.on_fault, FaultPolicy::InjectAbort);
    let stop = load(&repo_root().join("boards/qemu-virt/configs/adversary-stop.toml")).unwrap();
    assert_eq!(stop.vms[1].on_fault, FaultPolicy::Stop);
}

#[test]
fn check_reports_unbuilt_guests() {
    let root = repo_root();
    let empty = Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-guests");
    fs::create_dir_all(&empty).unwrap();
    let hello_crate = root.join("guests/hello/Cargo.toml").is_file();
    let r = tessera_config::check(
        &root.join("boards/qemu-virt"),
        &root.join("boards/qemu-virt/configs/default.toml"),
        Some(&empty),
    );
    if hello_crate {
        let report = r.unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(report.not_built, ["alpha", "beta", "duo"]);
        assert!(report.to_string().contains("not built yet"));
    } else {
        let errs = r.unwrap_err();
        assert!(errs.iter().all(|e| e.kind == ErrorKind::MissingImage));
    }
    // The hypervisor build policy: a missing file is an error.
    let mut o = opts(&root.join("boards/qemu-virt/configs/default.toml"));
    o.guest_dir = empty.clone();
    let errs = tessera_config::load(&o).unwrap_err();
    assert_eq!(errs.len(), 3);
    assert!(errs[0].to_string().starts_with("vm `alpha`: `image`: "));
    // Placeholder policy (bare clippy): builds, with a warning per VM.
    o.missing_images = MissingImages::Placeholder;
    let sys = tessera_config::load(&o).unwrap();
    assert_eq!(sys.warnings.len(), 3);
}

#[test]
fn report_lists_partition() {
    let r = tessera_config::check(
        &repo_root().join("boards/qemu-virt"),
        &repo_root().join("boards/qemu-virt/configs/smp8.toml"),
        Some(guest_dir()),
    )
    .unwrap();
    let t = r.to_string();
    for s in [
        "vm 0 `quad`",
        "vCPU3→pCPU3",
        "pa auto",
        "device    rtc pa 0x9010000 → ipa 0x9010000 (0x1000 bytes), INTIDs [34]",
        "dtb       ipa 0x40ff0000",
        "pCPU7  exclusive: h7 vCPU0",
    ] {
        assert!(t.contains(s), "report lacks {s:?}:\n{t}");
    }
}

#[test]
fn image_env_override() {
    let mut o = opts(&repo_root().join("boards/qemu-virt/configs/smp2.toml"));
    o.image_overrides
        .insert("beta".into(), guest_dir().join("raw.bin"));
    let sys = tessera_config::load(&o).unwrap();
    let ImageState::Loaded { image, path } = &sys.vms[1].image else {
        panic!()
    };
    assert_eq!(path, &guest_dir().join("raw.bin"));
    assert_eq!(image.bytes.len(), 4);
    assert_eq!(tessera_config::image_env_var("beta"), "TESSERA_IMAGE_BETA");
}

/// An override linked for another VM's RAM (`--guest beta=guests/adversary` on the default
/// config): one line naming the VM, not a second one for the entry point.
#[test]
fn elf_override_linked_elsewhere_is_one_error() {
    let mut o = opts(&repo_root().join("boards/qemu-virt/configs/default.toml"));
    let mut elf = elf_image();
    for at in [24, 64 + 16, 64 + 24] {
        // entry, p_vaddr, p_paddr: 0x8008_0000 as the adversary guest is linked.
        elf[at..at + 8].copy_from_slice(&0x8008_0000u64.to_le_bytes());
    }
    let file = guest_dir().join("elf-at-0x80080000.elf");
    fs::write(&file, elf).unwrap();
    o.image_overrides.insert("beta".into(), file);
    let errs = tessera_config::load(&o).unwrap_err();
    let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].starts_with(
            "vm `beta`: `TESSERA_IMAGE_BETA`: the ELF occupies 0x80080000..0x80081000 which is \
             not inside one RAM region (RAM: 0x40000000..0x41000000)"
        ),
        "{}",
        lines[0]
    );
}

// ---------------------------------------------------------------------------------------------
// DTB

fn be32(b: &[u8]) -> Vec<u32> {
    b.chunks(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect()
}

fn prop<'a>(
    fdt: &fdt::Fdt<
        'a,
        (
            fdt::parsing::unaligned::UnalignedParser<'a>,
            fdt::parsing::Panic,
        ),
    >,
    path: &str,
    name: &str,
) -> &'a [u8] {
    let node = fdt
        .find_node(path)
        .unwrap_or_else(|| panic!("no node {path}"));
    node.raw_property(name)
        .unwrap_or_else(|| panic!("{path} has no {name}"))
        .value
}

fn strs(b: &[u8]) -> Vec<&str> {
    b.split(|&c| c == 0)
        .filter(|s| !s.is_empty())
        .map(|s| std::str::from_utf8(s).unwrap())
        .collect()
}

#[test]
fn dtb_v3_parses_back() {
    let sys = load(&fixtures().join("good/everything.toml")).unwrap();
    let vm = &sys.vms[0];
    assert_eq!(sys.gic.version, GicVersion::V3);
    let fdt = fdt::Fdt::new_unaligned(&vm.dtb).unwrap();
    assert_eq!(
        strs(prop(&fdt, "/", "compatible")),
        ["tessera,vm", "linux,dummy-virt"]
    );
    assert_eq!(be32(prop(&fdt, "/", "#address-cells")), [2]);
    assert_eq!(be32(prop(&fdt, "/", "#size-cells")), [2]);
    let intc_phandle = be32(prop(&fdt, "/", "interrupt-parent"))[0];
    assert_eq!(be32(prop(&fdt, "/intc@8000000", "phandle")), [intc_phandle]);
    assert_eq!(
        strs(prop(&fdt, "/intc@8000000", "compatible")),
        ["arm,gic-v3"]
    );
    assert_eq!(be32(prop(&fdt, "/intc@8000000", "#interrupt-cells")), [3]);
    prop(&fdt, "/intc@8000000", "interrupt-controller");
    assert_eq!(
        be32(prop(&fdt, "/intc@8000000", "reg")),
        [0, 0x0800_0000, 0, 0x1_0000, 0, 0x080A_0000, 0, 0x4_0000]
    );
    // Memory: both regions.
    assert_eq!(
        be32(prop(&fdt, "/memory@40000000", "reg")),
        [0, 0x4000_0000, 0, 0x200_0000, 1, 0, 0, 0x10_0000]
    );
    assert_eq!(
        strs(prop(&fdt, "/memory@40000000", "device_type")),
        ["memory"]
    );
    // CPUs.
    let cpus: Vec<_> = fdt.root().cpus().iter().collect();
    assert_eq!(cpus.len(), 2);
    assert_eq!(be32(prop(&fdt, "/cpus/cpu@1", "reg")), [1]);
    assert_eq!(strs(prop(&fdt, "/cpus/cpu@1", "enable-method")), ["psci"]);
    assert_eq!(strs(prop(&fdt, "/psci", "method")), ["smc"]);
    assert_eq!(
        strs(prop(&fdt, "/psci", "compatible")),
        ["arm,psci-1.0", "arm,psci-0.2"]
    );
    // Timer PPIs 13, 14, 11, 10 (INTIDs 29, 30, 27, 26).
    let t = be32(prop(&fdt, "/timer", "interrupts"));
    assert_eq!(t, [1, 13, 8, 1, 14, 8, 1, 11, 8, 1, 10, 8]);
    prop(&fdt, "/timer", "always-on");
    // UART: SPI 1 = INTID 33, clocks point at apb-pclk.
    assert_eq!(be32(prop(&fdt, "/pl011@9000000", "interrupts")), [0, 1, 4]);
    let clk = be32(prop(&fdt, "/apb-pclk", "phandle"))[0];
    assert_eq!(be32(prop(&fdt, "/pl011@9000000", "clocks")), [clk, clk]);
    assert_eq!(
        strs(prop(&fdt, "/pl011@9000000", "clock-names")),
        ["uartclk", "apb_pclk"]
    );
    assert_eq!(
        be32(prop(&fdt, "/apb-pclk", "clock-frequency")),
        [24_000_000]
    );
    // Passed-through devices: INTID 34 → SPI 2, INTID 39 → SPI 7.
    assert_eq!(be32(prop(&fdt, "/rtc@9010000", "interrupts")), [0, 2, 4]);
    assert_eq!(
        be32(prop(&fdt, "/rtc@9010000", "reg")),
        [0, 0x0901_0000, 0, 0x1000]
    );
    assert_eq!(
        strs(prop(&fdt, "/rtc@9010000", "compatible")),
        ["arm,pl031", "arm,primecell"]
    );
    assert_eq!(be32(prop(&fdt, "/gpio@9030000", "interrupts")), [0, 7, 4]);
    assert_eq!(be32(prop(&fdt, "/gpio@9030000", "#gpio-cells")), [2]);
    prop(&fdt, "/gpio@9030000", "gpio-controller");
    // Chosen and hypervisor.
    assert_eq!(
        strs(prop(&fdt, "/chosen", "bootargs")),
        ["console=ttyAMA0 work=5"]
    );
    assert_eq!(
        strs(prop(&fdt, "/chosen", "stdout-path")),
        ["/pl011@9000000"]
    );
    assert_eq!(
        strs(prop(&fdt, "/hypervisor", "compatible")),
        ["tessera,hypervisor"]
    );
    assert!(vm.dtb.len() as u64 <= tessera_config::DTB_MAX);
}

#[test]
fn dtb_v2_parses_back() {
    let mut o = opts(&repo_root().join("boards/qemu-virt/configs/default.toml"));
    o.gic = Some(2);
    let sys = tessera_config::load(&o).unwrap();
    assert_eq!(sys.gic.version, GicVersion::V2);
    let duo = &sys.vms[2];
    assert_eq!(duo.vgic.gicc, 0x0801_0000);
    let fdt = fdt::Fdt::new_unaligned(&duo.dtb).unwrap();
    assert_eq!(
        strs(prop(&fdt, "/intc@8000000", "compatible")),
        ["arm,cortex-a15-gic"]
    );
    assert_eq!(
        be32(prop(&fdt, "/intc@8000000", "reg")),
        [0, 0x0800_0000, 0, 0x1000, 0, 0x0801_0000, 0, 0x2000]
    );
    // GICv2 PPI flags carry the CPU mask (2 vCPUs → 0b11).
    assert_eq!(be32(prop(&fdt, "/timer", "interrupts"))[2], 0x308);
    assert_eq!(strs(prop(&fdt, "/chosen", "bootargs")), Vec::<&str>::new());
}

// ---------------------------------------------------------------------------------------------
// Properties

fn brute_force(r: &[(u64, u64)]) -> Vec<(usize, usize)> {
    let mut v = vec![];
    for i in 0..r.len() {
        for j in i + 1..r.len() {
            let (a, b) = (r[i], r[j]);
            if a.1 != 0 && b.1 != 0 && a.0 < b.0 + b.1 && b.0 < a.0 + a.1 {
                v.push((i, j));
            }
        }
    }
    v
}

proptest! {
    #[test]
    fn overlap_detection_matches_oracle(
        r in prop::collection::vec((0u64..64, 0u64..16), 0..24)
    ) {
        let r: Vec<(u64, u64)> = r.into_iter().map(|(b, s)| (b << 12, s << 12)).collect();
        prop_assert_eq!(tessera_config::overlapping_pairs(&r), brute_force(&r));
    }

    /// Two VMs with explicit phys: rejected for overlap exactly when the ranges overlap.
    #[test]
    fn phys_overlap_rejected_iff_overlapping(a in 0u64..32, sa in 1u64..8, b in 0u64..32, sb in 1u64..8) {
        let base = 0x5000_0000u64;
        let (pa, pb) = (base + (a << 20), base + (b << 20));
        let text = format!(
            "[[vms]]\nname = \"a\"\ncpus = [0]\nimage = \"hello\"\nmemory = [{{ size = {:#x}, phys = {pa:#x} }}]\n\
             [[vms]]\nname = \"b\"\ncpus = [1]\nimage = \"hello\"\nmemory = [{{ size = {:#x}, phys = {pb:#x} }}]\n",
            sa << 20, sb << 20
        );
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("prop");
        fs::create_dir_all(&dir).unwrap();
        let f = dir.join(format!("p-{a}-{sa}-{b}-{sb}.toml"));
        fs::write(&f, text).unwrap();
        let overlap = pa < pb + (sb << 20) && pb < pa + (sa << 20);
        let r = load(&f);
        let _ = fs::remove_file(&f);
        match r {
            Ok(_) => prop_assert!(!overlap),
            Err(e) => {
                prop_assert!(overlap, "{:?}", e);
                prop_assert!(e.iter().all(|e| e.kind == ErrorKind::PhysOverlap));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Periodic servers sharing core 0 under EDF, with board.toml's costs (10 µs per
    /// activation, 20 µs blocking): an accepted set never exceeds the core
    /// (`Σ (Θ + 10)/Π ≤ 1`), and a set that passes the sufficient test
    /// `Σ (Θ + 10)/Π + 20/Π_min ≤ 1` is accepted. Checks that the costs reach the analysis.
    #[test]
    fn edf_core_verdict_brackets(servers in prop::collection::vec((1u64..40, 1u64..=20), 2..5)) {
        // Periods 1..=20 ms, budgets 1..40 % of the period (rounded to 10 µs).
        let servers: Vec<(u64, u64)> = servers
            .into_iter()
            .map(|(pct, p)| {
                let period = p * 1000;
                ((period * pct / 100).max(10) / 10 * 10, period)
            })
            .collect();
        let mut text = String::new();
        let mut list = Vec::new();
        for (i, (b, p)) in servers.iter().enumerate() {
            text += &format!(
                "[[vms]]\nname = \"v{i}\"\ncpus = [0]\nimage = \"hello\"\nmemory = [{{ size = 0x100_0000 }}]\n"
            );
            list.push(format!(
                "{{ vm = \"v{i}\", kind = \"periodic\", budget_us = {b}, period_us = {p} }}"
            ));
        }
        text += &format!(
            "[[scheduling]]\ncpu = 0\npolicy = \"edf\"\nservers = [{}]\n",
            list.join(", ")
        );
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("prop-edf");
        fs::create_dir_all(&dir).unwrap();
        let f = dir.join(format!("{}.toml", list.join("-").len() ^ servers.iter().map(|s| s.0 * 31 + s.1).sum::<u64>() as usize));
        fs::write(&f, &text).unwrap();
        let r = load(&f);
        let _ = fs::remove_file(&f);
        // Exact rational comparisons over the common denominator Π_lcm (periods ≤ 20 ms).
        let lcm = servers.iter().fold(1u64, |l, &(_, p)| {
            let (mut a, mut b) = (l, p);
            while b != 0 { (a, b) = (b, a % b); }
            l / a * p
        });
        let demand: u64 = servers.iter().map(|&(b, p)| (b + 10) * (lcm / p)).sum();
        let p_min = servers.iter().map(|s| s.1).min().unwrap();
        let sufficient = (demand as u128) * (p_min as u128) + 20 * (lcm as u128) <= (lcm as u128) * (p_min as u128);
        match r {
            Ok(sys) => {
                prop_assert!(demand <= lcm, "accepted with utilisation > 1: {:?}", servers);
                prop_assert_eq!(sys.analysis.cores.len(), 1);
            }
            Err(e) => {
                prop_assert!(!sufficient, "rejected although sufficient: {:?}: {:?}", servers, e);
                prop_assert!(e.iter().all(|e| e.kind == ErrorKind::Unschedulable), "{:?}", e);
            }
        }
    }
}

/// Channels: resolved with their ring size, and described at both ends of each direction
/// (`tx` without interrupts, `rx` with one edge SPI per class in DT numbering).
#[test]
fn channels_resolve_and_appear_in_both_dtbs() {
    use tessera_config::desc::ChannelNotify;
    let sys = load(&fixtures().join("good/everything.toml")).unwrap();
    assert_eq!(sys.channels.len(), 2);
    let ctl = &sys.channels[0];
    assert_eq!((ctl.from_vm, ctl.to_vm), (0, 1));
    let geometry = [
        tessera_ring::ClassGeometry {
            slot_count: 16,
            slot_size: 1500,
            notify: tessera_ring::NotifyPolicy::Coalesced,
        },
        tessera_ring::ClassGeometry {
            slot_count: 4,
            slot_size: 64,
            notify: tessera_ring::NotifyPolicy::EveryMessage,
        },
    ];
    let size = tessera_ring::Layout::new(&geometry).unwrap().total_size();
    assert_eq!(ctl.size, u64::from(size));
    assert_eq!(ctl.classes[0].notify, ChannelNotify::Coalesced);
    assert_eq!((ctl.classes[1].irq, ctl.classes[1].priority), (65, 0x40));
    assert_eq!(ctl.classes[0].priority, 0xa0);
    // `vcpu` defaults to 0; ctl-back's class goes to `colored`'s second vCPU.
    assert_eq!((ctl.classes[0].vcpu, ctl.classes[1].vcpu), (0, 0));
    assert_eq!(sys.channels[1].classes[0].vcpu, 1);

    // Sender `colored`: ctl as tx at 0x5000_0000, ctl-back as rx at 0x8000_0000.
    let fdt = fdt::Fdt::new_unaligned(&sys.vms[0].dtb).unwrap();
    let tx = "/tessera-channel@50000000";
    assert_eq!(strs(prop(&fdt, tx, "compatible")), ["tessera,channel-v1"]);
    assert_eq!(strs(prop(&fdt, tx, "tessera,direction")), ["tx"]);
    assert_eq!(strs(prop(&fdt, tx, "label")), ["ctl"]);
    assert_eq!(be32(prop(&fdt, tx, "tessera,channel")), [0]);
    assert_eq!(be32(prop(&fdt, tx, "reg")), [0, 0x5000_0000, 0, size]);
    assert_eq!(
        be32(prop(&fdt, tx, "tessera,classes")),
        [16, 1500, 1, 0xa0, 4, 64, 0, 0x40]
    );
    assert!(fdt
        .find_node(tx)
        .unwrap()
        .raw_property("interrupts")
        .is_none());
    let rx = "/tessera-channel@80000000";
    assert_eq!(strs(prop(&fdt, rx, "tessera,direction")), ["rx"]);
    assert_eq!(be32(prop(&fdt, rx, "tessera,channel")), [1]);
    assert_eq!(be32(prop(&fdt, rx, "interrupts")), [0, 32, 1]);
    assert_eq!(be32(prop(&fdt, rx, "tessera,class-vcpus")), [1]);
    // The sender's end names no vCPU.
    assert!(fdt
        .find_node(tx)
        .unwrap()
        .raw_property("tessera,class-vcpus")
        .is_none());

    // Receiver `pinned`: ctl as rx at its own IPA, both doorbells (INTIDs 64, 65).
    let fdt = fdt::Fdt::new_unaligned(&sys.vms[1].dtb).unwrap();
    let rx = "/tessera-channel@50000000";
    assert_eq!(strs(prop(&fdt, rx, "tessera,direction")), ["rx"]);
    assert_eq!(be32(prop(&fdt, rx, "interrupts")), [0, 32, 1, 0, 33, 1]);
    assert_eq!(be32(prop(&fdt, rx, "tessera,class-vcpus")), [0, 0]);
    assert_eq!(
        strs(prop(&fdt, "/tessera-channel@50010000", "tessera,direction")),
        ["tx"]
    );
    // The third VM has no channel.
    let fdt = fdt::Fdt::new_unaligned(&sys.vms[2].dtb).unwrap();
    assert!(fdt
        .all_nodes()
        .all(|(_, n)| n.name().name != "tessera-channel"));
}

/// `config.rs` text with the bundle identity, total size and payload sizes (which follow the
/// guest images' bytes) replaced by stand-ins.
fn stable_payload_fields(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with("pub static BUNDLE") {
                let cut = l.find(", total_size").unwrap_or(l.len());
                format!("{}, total_size: .., identity: [..] }};", &l[..cut])
            } else if l.trim_start().starts_with("image: ") && l.contains("PayloadRef") {
                let cut = l.find(", size").unwrap_or(l.len());
                format!("{}, size: .. }},", &l[..cut])
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// An initramfs goes below the DTB, into `/chosen` and into the bundle; bootargs overrides
/// replace the config's; an initramfs that cannot fit is a build error saying how much more
/// RAM it needs.
#[test]
fn initrd_and_bootargs_overrides() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tessera-config-initrd");
    fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("linux.toml");
    fs::write(
        &cfg,
        "[[vms]]\nname = \"lx\"\ncpus = [0]\nmemory = [{ size = 0x200_0000 }]\nimage = \"hello\"\nbootargs = \"console=ttyAMA0\"\n",
    )
    .unwrap();
    let initrd = dir.join("initrd.cpio");
    fs::write(&initrd, vec![0x42u8; 0x1800]).unwrap();
    let mut o = opts(&cfg);
    o.initrd_overrides.insert("lx".into(), initrd.clone());
    o.bootargs_overrides
        .insert("lx".into(), "console=ttyAMA0 quiet".into());
    let sys = tessera_config::load(&o).unwrap();
    let vm = &sys.vms[0];
    assert_eq!(vm.bootargs, "console=ttyAMA0 quiet");
    let i = vm.initrd.as_ref().unwrap();
    // 0x1800 bytes right below the DTB (at RAM top - 64 KiB), page aligned.
    assert_eq!(vm.dtb_ipa, 0x4000_0000 + 0x200_0000 - 0x1_0000);
    assert_eq!(i.ipa, (vm.dtb_ipa - 0x1800) & !0xfff);
    let dt = fdt::Fdt::new_unaligned(&vm.dtb).unwrap();
    let u64_prop = |n: &str| u64::from_be_bytes(prop(&dt, "/chosen", n).try_into().unwrap());
    assert_eq!(u64_prop("linux,initrd-start"), i.ipa);
    assert_eq!(u64_prop("linux,initrd-end"), i.ipa + 0x1800);
    assert_eq!(
        strs(prop(&dt, "/chosen", "bootargs")),
        ["console=ttyAMA0 quiet"]
    );
    let p = &sys.payloads;
    let bundle = tessera_bundle::Bundle::open(&p.bytes, p.region.base, &p.identity).unwrap();
    let r = p.refs[0].initrd;
    assert_eq!(r.size, 0x1800);
    assert_eq!(
        bundle.payload(usize::from(r.entry)).unwrap(),
        &vec![0x42u8; 0x1800][..]
    );
    assert_eq!(
        bundle.entry(usize::from(r.entry)).unwrap().kind,
        tessera_bundle::Kind::Initrd
    );

    // Too big for the 32 MiB region with its image.
    fs::write(&initrd, vec![0u8; 0x200_0000]).unwrap();
    let errs = tessera_config::load(&o).unwrap_err();
    assert!(
        errs.iter().any(|e| e.kind == ErrorKind::ImageFit
            && e.to_string().contains("initramfs")
            && e.to_string().contains("more bytes")),
        "{errs:?}"
    );
    // A missing file names itself.
    fs::remove_file(&initrd).unwrap();
    let errs = tessera_config::load(&o).unwrap_err();
    assert!(errs
        .iter()
        .any(|e| e.kind == ErrorKind::MissingImage && e.to_string().contains("initrd.cpio")));
}
