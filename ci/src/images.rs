//! Building guests and the Tessera image (the pipeline of docs/internals.md).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use regex::Regex;

use crate::util::{self, Paths};

pub const GUEST_TARGET: &str = "aarch64-unknown-none";
pub const HYP_TARGET: &str = "aarch64-unknown-none-softfloat";

/// A guest of this repository, built.
#[derive(Clone)]
pub struct Guest {
    /// `target/guests/<name>.bin` (raw, `llvm-objcopy -O binary`).
    pub bin: PathBuf,
    /// The ELF: the image of `--guest VM=guests/<name>` overrides, and symbols for gdb.
    pub elf: PathBuf,
}

/// Everything that decides one Tessera image.
#[derive(Clone)]
pub struct HypervisorBuild {
    pub board: String,
    /// As given to `TESSERA_CONFIG`: a config name or an absolute path.
    pub config: String,
    /// The config file.
    pub config_path: PathBuf,
    /// For file names: the config's name (file stem).
    pub config_name: String,
    pub gic: u8,
    /// VM name → image file.
    pub overrides: Vec<(String, PathBuf)>,
    /// VM name → initramfs file (`--initrd`).
    pub initrds: Vec<(String, PathBuf)>,
    /// VM name → bootargs (`--cmdline`).
    pub cmdlines: Vec<(String, String)>,
    pub semihosting: bool,
    /// Further cargo features of `tessera` (besides `semihosting`), e.g. `selftest-el2-fault`;
    /// each is part of the image file name.
    pub features: Vec<String>,
    /// defmt level compiled into the image (`DEFMT_LOG`); None: errors only.
    pub log: Option<String>,
    /// Appended to the image file name (tests with guest overrides use it).
    pub suffix: Option<String>,
    /// The CPU model the image is built for (`TESSERA_CPU`: the config crate validates colors
    /// against the LLC this model reports, and the image refuses to boot on another LLC); the
    /// QEMU `-cpu` it is meant to run on. `None`: the board's `[cpu] default`.
    pub cpu: Option<String>,
    /// board.toml's `[cpu] default` (`None`: the board names none).
    pub board_cpu: Option<String>,
}

/// A built Tessera image.
pub struct BuiltImage {
    pub image: PathBuf,
    pub elf: PathBuf,
    pub guest_elfs: Vec<PathBuf>,
}

impl HypervisorBuild {
    pub fn new(
        paths: &Paths,
        board: &str,
        config: &str,
        gic: Option<u8>,
        overrides: Vec<(String, PathBuf)>,
        semihosting: bool,
        suffix: Option<String>,
    ) -> Result<HypervisorBuild> {
        let board_dir = board_dir(paths, board)?;
        let (config_path, config_name, config) = resolve_config(paths, &board_dir, config)?;
        let gic = match gic {
            Some(g) => g,
            None => board_default_gic(&board_dir)?,
        };
        let board_cpu = board_default_cpu(&board_dir)?;
        Ok(HypervisorBuild {
            board: board.to_string(),
            config,
            config_path,
            config_name,
            gic,
            overrides,
            initrds: Vec::new(),
            cmdlines: Vec::new(),
            semihosting,
            features: Vec::new(),
            log: None,
            suffix,
            cpu: None,
            board_cpu,
        })
    }

    /// Builds for CPU model `cpu` (QEMU's `-cpu`) instead of the board's default.
    pub fn set_cpu(&mut self, cpu: &str) {
        self.cpu = Some(cpu.to_string());
    }

    /// The CPU model the image is built for: the one asked for, else the board's default.
    pub fn effective_cpu(&self) -> Option<&str> {
        self.cpu.as_deref().or(self.board_cpu.as_deref())
    }

    /// The CPU model when it is not the board's default (it then names the image).
    fn cpu_if_not_default(&self) -> Option<&str> {
        self.cpu
            .as_deref()
            .filter(|c| Some(*c) != self.board_cpu.as_deref())
    }

    /// `<board>-<config>-gic<N>[-<cpu>][+feature]...[suffix]` (`-<cpu>` when the CPU model is
    /// not the board's default: images for two models never share a file).
    pub fn image_stem(&self) -> String {
        let features: String = self.features.iter().map(|f| format!("+{f}")).collect();
        let cpu = self
            .cpu_if_not_default()
            .map(|c| format!("-{c}"))
            .unwrap_or_default();
        format!(
            "{}-{}-gic{}{cpu}{features}{}",
            self.board,
            self.config_name,
            self.gic,
            self.suffix.as_deref().unwrap_or("")
        )
    }

    /// `, CPU <model>` for messages when the CPU model is not the board's default.
    fn describe_cpu(&self) -> String {
        self.cpu_if_not_default()
            .map(|c| format!(", CPU {c}"))
            .unwrap_or_default()
    }

    /// The value of cargo's `--features` (empty: none).
    pub fn cargo_features(&self) -> String {
        let semihosting = self.semihosting.then_some("semihosting");
        semihosting
            .into_iter()
            .chain(self.features.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The payload bundle written beside a Tessera image: `<image stem>.payloads`.
pub fn payloads_path(image: &Path) -> PathBuf {
    image.with_extension("payloads")
}

/// `boards/<board>`, checked.
pub fn board_dir(paths: &Paths, board: &str) -> Result<PathBuf> {
    let dir = paths.root.join("boards").join(board);
    if !dir.join("board.toml").is_file() {
        bail!(
            "unknown board {board:?}: {} does not exist; boards are the directories under boards/ \
             ({})",
            dir.join("board.toml").display(),
            list_dir_names(&paths.root.join("boards")).join(", ")
        );
    }
    Ok(dir)
}

fn list_dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// (file, name, value for TESSERA_CONFIG) of a config given by name or path.
pub fn resolve_config(
    paths: &Paths,
    board_dir: &Path,
    config: &str,
) -> Result<(PathBuf, String, String)> {
    let looks_like_path = config.ends_with(".toml") || config.contains('/');
    if looks_like_path {
        let p = PathBuf::from(config);
        let p = if p.is_absolute() {
            p
        } else {
            std::env::current_dir()?.join(p)
        };
        let p = p
            .canonicalize()
            .with_context(|| format!("config file {config} does not exist"))?;
        let name = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "config".into());
        let value = p.display().to_string();
        return Ok((p, name, value));
    }
    let p = board_dir.join("configs").join(format!("{config}.toml"));
    if !p.is_file() {
        let configs: Vec<String> = list_dir_names(&board_dir.join("configs"))
            .into_iter()
            .filter_map(|n| n.strip_suffix(".toml").map(str::to_string))
            .collect();
        bail!(
            "unknown config {config:?}: {} does not exist (configs of this board: {}); pass a \
             name from there or a path to a .toml",
            util::display_rel(paths, &p),
            configs.join(", ")
        );
    }
    Ok((p, config.to_string(), config.to_string()))
}

/// `gic.default` of board.toml (an integer 2/3, or a string such as "v3").
pub fn board_default_gic(board_dir: &Path) -> Result<u8> {
    let file = board_dir.join("board.toml");
    let board = util::read_toml(&file)?;
    let v = board
        .get("gic")
        .and_then(|g| g.get("default"))
        .with_context(|| {
            format!(
                "{} has no gic.default; pass --gic 2 or --gic 3",
                file.display()
            )
        })?;
    let n = match v {
        toml::Value::Integer(i) => *i,
        toml::Value::String(s) => s.trim_start_matches(['v', 'V']).parse().unwrap_or(0),
        _ => 0,
    };
    match n {
        2 | 3 => Ok(n as u8),
        _ => bail!("{}: gic.default = {v} is not 2 or 3", file.display()),
    }
}

/// `cpu.default` of board.toml: the CPU model images are built for unless told otherwise
/// (`None`: the board names none).
pub fn board_default_cpu(board_dir: &Path) -> Result<Option<String>> {
    let file = board_dir.join("board.toml");
    let board = util::read_toml(&file)?;
    match board.get("cpu").and_then(|c| c.get("default")) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => bail!("{}: cpu.default = {v} is not a string", file.display()),
    }
}

/// The guests of this repository (directories under guests/ that build a binary).
pub fn repo_guests(paths: &Paths) -> Vec<String> {
    list_dir_names(&paths.root.join("guests"))
        .into_iter()
        .filter(|g| guest_is_binary(paths, g))
        .collect()
}

fn guest_is_binary(paths: &Paths, name: &str) -> bool {
    let dir = paths.root.join("guests").join(name);
    crate::linux::is_recipe(paths, name)
        || (dir.join("Cargo.toml").is_file()
            && (dir.join("src/main.rs").is_file() || dir.join("src/bin").is_dir()))
}

/// Names of the guests of this repository that a config refers to: any string that contains
/// `guests/<name>`, or a `guest`/`image`/`kernel` value equal to a guest's name.
pub fn guests_named_by_config(paths: &Paths, config_path: &Path) -> Result<Vec<String>> {
    let value = util::read_toml(config_path)?;
    let re = Regex::new(r"(?:^|[/\\])guests/([A-Za-z0-9_-]+)").expect("valid regex");
    let known = repo_guests(paths);
    let mut found = BTreeSet::new();
    collect_guest_refs(&value, None, &re, &known, &mut found);
    Ok(found.into_iter().collect())
}

fn collect_guest_refs(
    v: &toml::Value,
    key: Option<&str>,
    re: &Regex,
    known: &[String],
    found: &mut BTreeSet<String>,
) {
    match v {
        toml::Value::String(s) => {
            for c in re.captures_iter(s) {
                if known.iter().any(|k| k == &c[1]) {
                    found.insert(c[1].to_string());
                }
            }
            if matches!(key, Some("guest" | "image" | "kernel" | "initrd"))
                && known.iter().any(|k| k == s)
            {
                found.insert(s.clone());
            }
        }
        toml::Value::Array(a) => a
            .iter()
            .for_each(|x| collect_guest_refs(x, key, re, known, found)),
        toml::Value::Table(t) => t
            .iter()
            .for_each(|(k, x)| collect_guest_refs(x, Some(k), re, known, found)),
        _ => {}
    }
}

/// `[package] name` and binary name of guests/<name>.
fn guest_package(paths: &Paths, name: &str) -> Result<(String, String)> {
    let manifest = paths.root.join("guests").join(name).join("Cargo.toml");
    let v = util::read_toml(&manifest)?;
    let package = v
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .with_context(|| format!("{} has no [package] name", manifest.display()))?
        .to_string();
    let bin = v
        .get("bin")
        .and_then(|b| b.as_array())
        .and_then(|b| b.first())
        .and_then(|b| b.get("name"))
        .and_then(|n| n.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| package.clone());
    Ok((package, bin))
}

/// `<name>` when `path` (`guests/<name>`, `guests/<name>/` or `<name>`) names a guest of this
/// repository.
fn repo_guest_name(paths: &Paths, path: &str) -> Option<String> {
    let name = path.trim_end_matches('/');
    let name = name.strip_prefix("guests/").unwrap_or(name);
    (!name.is_empty() && guest_is_binary(paths, name)).then(|| name.to_string())
}

/// Whether `file` starts with the ELF magic.
fn is_elf(file: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(file)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"\x7fELF"
}

/// What an image argument names.
enum Resolved {
    /// A file of the user's, as given (canonical path).
    File(PathBuf),
    /// A guest of this repository, built.
    Guest(Guest),
}

/// Builds guests and images, each guest at most once per xtask invocation.
pub struct Builder<'a> {
    paths: &'a Paths,
    guests: HashMap<String, Guest>,
}

impl<'a> Builder<'a> {
    pub fn new(paths: &'a Paths) -> Builder<'a> {
        Builder {
            paths,
            guests: HashMap::new(),
        }
    }

    /// Builds guests/<name> and objcopies it to target/guests/<name>.bin.
    pub fn guest(&mut self, name: &str) -> Result<Guest> {
        if let Some(g) = self.guests.get(name) {
            return Ok(g.clone());
        }
        let paths = self.paths;
        if !guest_is_binary(paths, name) {
            bail!(
                "guests/{name} is not a guest of this repository (guests: {})",
                repo_guests(paths).join(", ")
            );
        }
        if crate::linux::is_recipe(paths, name) {
            let l = crate::linux::ensure(paths)?;
            let g = Guest {
                bin: l.image.clone(),
                elf: l.image,
            };
            self.guests.insert(name.to_string(), g.clone());
            return Ok(g);
        }
        let (package, bin) = guest_package(paths, name)?;
        println!("xtask: building guest {name} ...");
        util::run(
            util::cargo_for_target(paths, "build", GUEST_TARGET).args([
                "--release",
                "-p",
                &package,
            ]),
            &format!("building guest {name} (cargo build -p {package} --target {GUEST_TARGET})"),
        )?;
        let elf = paths.target.join(GUEST_TARGET).join("release").join(&bin);
        let out = paths.guest_dir().join(format!("{name}.bin"));
        util::objcopy_binary(paths, &elf, &out)?;
        let g = Guest { bin: out, elf };
        self.guests.insert(name.to_string(), g.clone());
        Ok(g)
    }

    /// The raw image a bare scenario boots with `-kernel`: an existing file, or a guest of this
    /// repository given as `guests/<name>` or `<name>` (then built; its flattened `.bin`).
    pub fn resolve_image(&mut self, path: &str) -> Result<PathBuf> {
        Ok(match self.resolve(path)? {
            Resolved::File(p) => p,
            Resolved::Guest(g) => g.bin,
        })
    }

    /// The image of a `--guest VM=PATH` override (or a scenario's `guests` entry): an existing
    /// file as it is, or a guest of this repository given as `guests/<name>` or `<name>`, built,
    /// as its ELF, so that the config loads it at the addresses it is linked for (and rejects
    /// one linked for another VM's RAM) instead of at the VM's RAM base.
    pub fn resolve_override(&mut self, path: &str) -> Result<PathBuf> {
        Ok(match self.resolve(path)? {
            Resolved::File(p) => p,
            Resolved::Guest(g) => g.elf,
        })
    }

    fn resolve(&mut self, path: &str) -> Result<Resolved> {
        let p = Path::new(path);
        if p.is_file() {
            return p
                .canonicalize()
                .map(Resolved::File)
                .with_context(|| format!("cannot resolve {path}"));
        }
        if let Some(name) = repo_guest_name(self.paths, path) {
            return Ok(Resolved::Guest(self.guest(&name)?));
        }
        bail!(
            "guest image {path:?} is neither a file nor a guest of this repository (guests/: {}); \
             give a raw arm64 Image, a raw binary or an ELF",
            repo_guests(self.paths).join(", ")
        )
    }

    /// Builds the guests `hb`'s config names, then the hypervisor, and objcopies it to
    /// target/tessera/<image stem>.bin. The config's problems are printed before the error.
    pub fn build_hypervisor(&mut self, hb: &HypervisorBuild) -> Result<BuiltImage> {
        match self.build(hb, false)? {
            Ok(built) => Ok(built),
            // Not reached: without capture, failures are errors.
            Err(lines) => bail!("the build failed: {}", lines.join("; ")),
        }
    }

    /// As [`Builder::build_hypervisor`], for a build that is expected to fail: `Ok(Err(lines))`
    /// when the config has problems (one line each) or the image's cargo build fails (its
    /// output, captured); `Err` when something else fails (a guest does not build, ...).
    pub fn try_build_hypervisor(
        &mut self,
        hb: &HypervisorBuild,
    ) -> Result<std::result::Result<BuiltImage, Vec<String>>> {
        self.build(hb, true)
    }

    /// The build; `capture`: return the config's problems and a failed cargo build's output
    /// instead of printing them and failing.
    fn build(
        &mut self,
        hb: &HypervisorBuild,
        capture: bool,
    ) -> Result<std::result::Result<BuiltImage, Vec<String>>> {
        let paths = self.paths;
        let mut guest_elfs = Vec::new();
        for g in guests_named_by_config(paths, &hb.config_path)? {
            let elf = self.guest(&g)?.elf;
            if is_elf(&elf) {
                guest_elfs.push(elf);
            }
        }
        // Overrides given as ELFs (the guests of this repository are) have symbols too.
        for (_, image) in &hb.overrides {
            if is_elf(image) && !guest_elfs.contains(image) {
                guest_elfs.push(image.clone());
            }
        }
        std::fs::create_dir_all(paths.guest_dir())
            .with_context(|| format!("cannot create {}", paths.guest_dir().display()))?;
        let system = match crate::check::load_for_build(paths, hb)? {
            Ok(system) => system,
            Err(problems) if capture => return Ok(Err(problems)),
            Err(problems) => {
                for p in &problems {
                    println!("{p}");
                }
                bail!("{}", problems_message(paths, hb, problems.len()));
            }
        };
        let features = hb.cargo_features();
        println!(
            "xtask: building tessera for board {}, config {}, GICv{}{}{} ...",
            hb.board,
            hb.config_name,
            hb.gic,
            hb.describe_cpu(),
            if features.is_empty() {
                String::new()
            } else {
                format!(" ({features})")
            }
        );
        let mut cmd = tessera_cargo(paths, hb);
        for (vm, image) in &hb.overrides {
            println!("xtask: VM {vm} uses {}", image.display());
        }
        for (vm, initrd) in &hb.initrds {
            println!("xtask: VM {vm} gets initramfs {}", initrd.display());
        }
        for (vm, args) in &hb.cmdlines {
            println!("xtask: VM {vm} gets command line {args:?}");
        }
        let what = format!(
            "building tessera (board {}, config {}, GICv{}{})",
            hb.board,
            hb.config_name,
            hb.gic,
            hb.describe_cpu()
        );
        if capture {
            let out = cmd
                .output()
                .with_context(|| format!("{what}: could not start cargo"))?;
            if !out.status.success() {
                let text = String::from_utf8_lossy(&out.stderr).into_owned()
                    + &String::from_utf8_lossy(&out.stdout);
                return Ok(Err(text.lines().map(str::to_string).collect()));
            }
        } else {
            util::run(&mut cmd, &what)?;
        }
        let elf = paths
            .target
            .join(HYP_TARGET)
            .join("release")
            .join("tessera");
        let image = paths
            .target
            .join("tessera")
            .join(format!("{}.bin", hb.image_stem()));
        util::objcopy_binary(paths, &elf, &image)?;
        let size = std::fs::metadata(&image)
            .with_context(|| format!("objcopy produced no {}", image.display()))?
            .len();
        println!(
            "xtask: image ready: {} ({} KiB)",
            util::display_rel(paths, &image),
            size.div_ceil(1024)
        );
        // The guest payloads, beside the image: what `QemuSpec` loads with it.
        let payloads = payloads_path(&image);
        let p = &system.payloads;
        tessera_config::codegen::write_if_changed(&payloads, &p.bytes)
            .with_context(|| format!("cannot write {}", payloads.display()))?;
        println!(
            "xtask: payloads ready: {} ({} KiB: images and DTBs of {} VM(s); loaded at {:#x})",
            util::display_rel(paths, &payloads),
            (p.bytes.len() as u64).div_ceil(1024),
            system.vms.len(),
            p.region.base
        );
        Ok(Ok(BuiltImage {
            image,
            elf,
            guest_elfs,
        }))
    }
}

/// The error of a build whose config has `n` problems (printed above it): how to check again.
fn problems_message(paths: &Paths, hb: &HypervisorBuild, n: usize) -> String {
    let config = util::display_rel(paths, &hb.config_path);
    // check-config takes the overrides from the environment.
    let env: String = hb
        .overrides
        .iter()
        .map(|(vm, image)| {
            format!(
                "{}={} ",
                tessera_config::image_env_var(vm),
                util::display_rel(paths, image)
            )
        })
        .collect();
    let with: Vec<String> = hb
        .overrides
        .iter()
        .map(|(vm, image)| format!("--guest {vm}={}", util::display_rel(paths, image)))
        .collect();
    let with = if with.is_empty() {
        String::new()
    } else {
        format!(" with {}", with.join(" "))
    };
    let cpu = hb
        .cpu_if_not_default()
        .map(|c| format!(" --cpu {c}"))
        .unwrap_or_default();
    format!(
        "config {config}{with} has {n} problem(s) (listed above) for board {} with GICv{}{}; \
         fix them (`{env}cargo xtask check-config {config} --board {} --gic {}{cpu}` checks \
         without building)",
        hb.board,
        hb.gic,
        hb.describe_cpu(),
        hb.board,
        hb.gic
    )
}

/// `cargo build` of the EL2 image for `hb`, with exactly its `TESSERA_*` environment.
pub fn tessera_cargo(paths: &Paths, hb: &HypervisorBuild) -> std::process::Command {
    let features = hb.cargo_features();
    let mut cmd = util::cargo_for_target(paths, "build", HYP_TARGET);
    cmd.args(["--release", "-p", "tessera"]);
    if !features.is_empty() {
        cmd.args(["--features", &features]);
    }
    // Only the overrides of this build: never a stale TESSERA_* from the caller.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TESSERA_") {
            cmd.env_remove(&k);
        }
    }
    match &hb.log {
        Some(level) => {
            cmd.env("DEFMT_LOG", level);
        }
        None => {
            cmd.env_remove("DEFMT_LOG");
        }
    }
    cmd.env("TESSERA_BOARD", &hb.board)
        .env("TESSERA_CONFIG", &hb.config)
        .env("TESSERA_GIC", hb.gic.to_string())
        .env("TESSERA_GUEST_DIR", paths.guest_dir());
    if let Some(cpu) = hb.effective_cpu() {
        cmd.env("TESSERA_CPU", cpu);
    }
    for (vm, image) in &hb.overrides {
        cmd.env(tessera_config::image_env_var(vm), image);
    }
    for (vm, initrd) in &hb.initrds {
        cmd.env(tessera_config::initrd_env_var(vm), initrd);
    }
    for (vm, args) in &hb.cmdlines {
        cmd.env(tessera_config::bootargs_env_var(vm), args);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_guest_names() {
        let paths = Paths::discover().unwrap();
        for p in ["guests/hello", "guests/hello/", "hello", "guests/adversary"] {
            let want = p.trim_start_matches("guests/").trim_end_matches('/');
            assert_eq!(repo_guest_name(&paths, p).as_deref(), Some(want), "{p}");
        }
        for p in [
            "guests/rt",
            "guests/no-such-guest",
            "",
            "guests/",
            "/tmp/hello",
        ] {
            assert_eq!(repo_guest_name(&paths, p), None, "{p}");
        }
    }

    #[test]
    fn user_files_are_taken_as_they_are() {
        let paths = Paths::discover().unwrap();
        let dir = std::env::temp_dir().join(format!("xtask-images-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let raw = dir.join("guest.bin");
        std::fs::write(&raw, [0u8; 16]).unwrap();
        let elf = dir.join("guest.elf");
        std::fs::write(&elf, b"\x7fELF\x02\x01").unwrap();
        let mut b = Builder::new(&paths);
        let canon = raw.canonicalize().unwrap();
        assert_eq!(b.resolve_override(raw.to_str().unwrap()).unwrap(), canon);
        assert_eq!(b.resolve_image(raw.to_str().unwrap()).unwrap(), canon);
        assert!(b
            .resolve_override(dir.join("nope").to_str().unwrap())
            .is_err());
        assert!(!is_elf(&raw));
        assert!(is_elf(&elf));
        assert!(!is_elf(&dir.join("nope")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
