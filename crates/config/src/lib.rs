//! Tessera's build-time configuration.
//!
//! * [`desc`] (always, `no_std`): the plain-data descriptor types the EL2 image is built from.
//! * With feature `std`: the TOML schema ([`schema`]) of `boards/<board>/board.toml` and
//!   `boards/<board>/configs/<name>.toml`, validation that reports **every** problem as a
//!   one-line [`ConfigError`], guest-image loading ([`image`]), guest DTB generation ([`dtb`]),
//!   and generation of the Rust tables / linker script ([`codegen`]).
//!
//! Interrupt numbers in board and config files are **GIC INTIDs** (SPI *n* of a device tree is
//! INTID *n* + 32); only the generated guest DTBs use the device-tree convention.
//!
//! # API (feature `std`)
//!
//! ```ignore
//! use tessera_config::{check, Options, MissingImages};
//!
//! // `cargo xtask check-config`: report or every error (one line each).
//! match tessera_config::check(&root.join("boards/qemu-virt"),
//!                             &root.join("boards/qemu-virt/configs/default.toml"),
//!                             Some(&root.join("target/guests"))) {
//!     Ok(report) => print!("{report}"),          // Report: Display (partition table)
//!     Err(errors) => for e in errors { eprintln!("{e}") },
//! }
//!
//! // Full control (GIC version, image overrides, missing-image policy):
//! let mut opts = Options::new(&root, "qemu-virt", "default");   // config: name or path
//! opts.gic = Some(2);
//! opts.cpu = Some("cortex-a53".into());   // the LLC geometry colors are checked against
//! opts.missing_images = MissingImages::ReportUnbuilt;
//! let system = tessera_config::load(&opts)?;                     // Result<System, Vec<ConfigError>>
//! let report = tessera_config::Report::new(&system);
//! // build.rs: tessera_config::codegen::write_all(&system, &out_dir)?;
//! ```
//!
//! [`check`] reads `TESSERA_IMAGE_<VM>` overrides from the environment and accepts guest
//! images that are not built yet when `guests/<image>/Cargo.toml` exists (the report says
//! "not built yet"); the hypervisor's build.rs instead requires every image.

#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

pub mod desc;

#[cfg(feature = "std")]
pub mod codegen;
#[cfg(feature = "std")]
pub mod coloring;
#[cfg(feature = "std")]
pub mod dtb;
#[cfg(feature = "std")]
mod error;
#[cfg(feature = "std")]
pub mod image;
#[cfg(feature = "std")]
mod report;
#[cfg(feature = "std")]
pub mod sched;
#[cfg(feature = "std")]
pub mod schema;
#[cfg(feature = "std")]
mod validate;

#[cfg(feature = "std")]
pub use error::{ConfigError, ErrorKind, Subject};
#[cfg(feature = "std")]
pub use report::Report;
#[cfg(feature = "std")]
pub use validate::{
    bootargs_env_var, image_env_var, initrd_env_var, load, overlapping_pairs, IPA_BITS,
    MAX_BOARD_CPUS, MAX_SERVERS_PER_CORE,
};

/// Page (and region alignment) size.
pub const PAGE_SIZE: u64 = 4096;
/// Default guest RAM IPA (QEMU virt's RAM base).
pub const DEFAULT_RAM_IPA: u64 = 0x4000_0000;
/// Guest-physical base of the virtual PL011.
pub const VUART_IPA: u64 = 0x0900_0000;
/// The virtual PL011's interrupt (SPI 1), a purely virtual SPI every VM owns.
pub const VUART_INTID: u32 = 33;
/// Guest-physical vGIC frames (QEMU virt's addresses).
pub const VGIC_GICD: u64 = 0x0800_0000;
pub const VGIC_GICC: u64 = 0x0801_0000;
pub const VGIC_GICR: u64 = 0x080A_0000;
/// One GICv3 redistributor (RD + SGI frames).
pub const VGIC_GICR_STRIDE: u64 = 0x2_0000;
/// Room for the guest DTB at the top of the first RAM region.
pub const DTB_MAX: u64 = 0x1_0000;
/// Per-core hypervisor stack.
pub const STACK_SIZE: u64 = 0x1_0000;

#[cfg(feature = "std")]
pub use model::*;

#[cfg(feature = "std")]
mod model {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::string::String;
    use std::vec::Vec;

    use crate::desc::{
        ClassDesc, FaultPolicy, GicDesc, HypervisorDesc, LlcDesc, MemDesc, PayloadRef, PhysRange,
        ResetPolicy,
    };
    use crate::image::FlatImage;
    use crate::sched::{Analysis, Pcpu};
    use crate::schema::{BoardFile, ConfigFile, DtValue};
    use crate::{ConfigError, Report};

    /// What to do when a VM's image file does not exist.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum MissingImages {
        /// It is an error (the hypervisor build).
        Error,
        /// Fine if `guests/<image>/Cargo.toml` exists (check-config): "not built yet".
        ReportUnbuilt,
        /// Embed an empty image and add a warning (bare `cargo clippy -p tessera`).
        Placeholder,
    }

    /// Inputs of [`crate::load`].
    #[derive(Clone, Debug)]
    pub struct Options {
        /// Repository root: image paths in configs are relative to it, and guest crates are
        /// looked up under `guests/`.
        pub repo_root: PathBuf,
        /// `boards/<board>` (holds board.toml).
        pub board_dir: PathBuf,
        /// The config file.
        pub config: PathBuf,
        /// GIC version (2 or 3); `None` = board.toml's `gic.default`.
        pub gic: Option<u8>,
        /// Where built guests are (`<name>.bin`); default `<repo_root>/target/guests`.
        pub guest_dir: PathBuf,
        /// Read `TESSERA_IMAGE_<VM>` overrides from the environment.
        pub read_image_env: bool,
        /// Explicit image overrides by VM name (after the environment).
        pub image_overrides: BTreeMap<String, PathBuf>,
        /// Initramfs overrides by VM name (after `TESSERA_INITRD_<VM>`).
        pub initrd_overrides: BTreeMap<String, PathBuf>,
        /// Bootargs (kernel command line) overrides by VM name (after
        /// `TESSERA_BOOTARGS_<VM>`).
        pub bootargs_overrides: BTreeMap<String, String>,
        pub missing_images: MissingImages,
        /// The CPU model the image is built for (`TESSERA_CPU`, xtask `--cpu`); `None` =
        /// board.toml's `[cpu] default`. Selects the LLC geometry colors are validated
        /// against when the board has no `[llc]` override.
        pub cpu: Option<String>,
    }

    impl Options {
        /// Board `board` (a directory under `<repo_root>/boards`) and config `config`: a name
        /// (`boards/<board>/configs/<name>.toml`) or a path to a `.toml` (relative to the repo
        /// root unless absolute). Images required; environment overrides read.
        pub fn new(repo_root: &Path, board: &str, config: &str) -> Options {
            let board_dir = repo_root.join("boards").join(board);
            Options {
                config: config_path(repo_root, &board_dir, config),
                board_dir,
                repo_root: repo_root.to_path_buf(),
                gic: None,
                guest_dir: repo_root.join("target").join("guests"),
                read_image_env: true,
                image_overrides: BTreeMap::new(),
                initrd_overrides: BTreeMap::new(),
                bootargs_overrides: BTreeMap::new(),
                missing_images: MissingImages::Error,
                cpu: None,
            }
        }
    }

    /// Resolve a config name or path (see [`Options::new`]).
    pub fn config_path(repo_root: &Path, board_dir: &Path, config: &str) -> PathBuf {
        if config.ends_with(".toml") || config.contains('/') {
            let p = Path::new(config);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                repo_root.join(p)
            }
        } else {
            board_dir.join("configs").join(format!("{config}.toml"))
        }
    }

    /// A validated board + config, ready for code generation and reports.
    #[derive(Clone, Debug)]
    pub struct System {
        pub board: BoardFile,
        pub config: ConfigFile,
        /// Config file stem (e.g. `default`).
        pub config_name: String,
        /// The physical GIC the image is built for.
        pub gic: GicDesc,
        /// `[ram.base, hypervisor.load_address + hypervisor.size)`.
        pub hyp_region: PhysRange,
        pub hyp_mmio: Vec<PhysRange>,
        pub vms: Vec<Vm>,
        /// One per board core (`max_cpus`): idle, exclusive or shared (with its servers).
        pub pcpus: Vec<Pcpu>,
        /// The inter-VM channels, in config order (index = doorbell channel number).
        pub channels: Vec<Channel>,
        /// The payload bundle (guest images and DTBs) and where it is loaded.
        pub payloads: Payloads,
        /// The schedulability analysis of every shared core and every VM with `tasks`.
        pub analysis: Analysis,
        /// Highest pCPU index used + 1.
        pub used_cpus: usize,
        /// Files read (for `cargo:rerun-if-changed`).
        pub inputs: Vec<PathBuf>,
        /// Environment variables consulted besides the fixed `TESSERA_*` ones.
        pub env_vars: Vec<String>,
        /// Non-fatal remarks (placeholder images, coloring that does not isolate, ...): the
        /// build prints them as `cargo:warning=`, the report as `warning: ` lines.
        pub warnings: Vec<String>,
        /// The CPU model the image is built for (empty: the board names none).
        pub cpu: String,
        /// The LLC geometry colors were validated against, and where it came from.
        pub llc: Option<Llc>,
        /// The LLC clusters: per cluster, its cores (board.toml `[[llc_clusters]]`, default one
        /// cluster of every core).
        pub clusters: Vec<Vec<usize>>,
        /// The hypervisor's own coloring (config `[hypervisor]`).
        pub hypervisor: HypervisorDesc,
        /// Per color of the LLC, when any color is used: the pages available and needed.
        pub color_pages: Vec<ColorPages>,
    }

    /// One color's page budget: `free` pages of that color in RAM the allocator may hand out,
    /// `needed` by the colored VMs, channels and hypervisor that use it (and the uncolored
    /// demand spread evenly over all colors).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct ColorPages {
        pub color: u32,
        pub free: u64,
        pub needed: u64,
    }

    /// Where the LLC geometry of a build comes from.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum LlcSource {
        /// board.toml's `[llc]`: the hypervisor uses it instead of CLIDR/CCSIDR.
        Override,
        /// board.toml's `[cpu.llc]` entry of this CPU model: what CLIDR/CCSIDR will report.
        CpuModel(String),
    }

    /// The LLC geometry a build validates colors against.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Llc {
        pub geometry: LlcDesc,
        pub source: LlcSource,
    }

    /// The payload bundle of a build (crates/bundle): written beside the image
    /// (`<image>.payloads`), loaded at `region.base`, checked at boot against `identity`.
    #[derive(Clone, Debug)]
    pub struct Payloads {
        /// The top of RAM, 2 MiB aligned: `bytes` at its start.
        pub region: PhysRange,
        pub bytes: Vec<u8>,
        pub identity: [u8; 32],
        /// Per VM: its payloads.
        pub refs: Vec<VmPayloads>,
    }

    /// One VM's payloads in the bundle (an absent initrd has size 0).
    #[derive(Clone, Copy, Debug)]
    pub struct VmPayloads {
        pub image: PayloadRef,
        pub dtb: PayloadRef,
        pub initrd: PayloadRef,
    }

    /// One resolved VM.
    #[derive(Clone, Debug)]
    pub struct Vm {
        pub id: usize,
        pub name: String,
        /// vCPU i runs on `cpus[i]`.
        pub cpus: Vec<usize>,
        /// vCPU i is server `slots[i]` of its core when that core is shared (else 0).
        pub slots: Vec<usize>,
        pub mem: Vec<MemDesc>,
        pub devices: Vec<Device>,
        pub bootargs: String,
        pub on_fault: FaultPolicy,
        pub on_reset: ResetPolicy,
        /// LLC colors of its memory (sorted, distinct); `None` = uncolored.
        pub colors: Option<Vec<u32>>,
        /// No other VM may share one of its colors within its LLC cluster.
        pub isolated: bool,
        pub image: ImageState,
        /// The initramfs and where it is loaded (guest-physical).
        pub initrd: Option<Initrd>,
        pub dtb: Vec<u8>,
        pub dtb_ipa: u64,
        pub vuart_ipa: u64,
        pub vgic: GicDesc,
    }

    /// A VM's initramfs.
    #[derive(Clone, Debug)]
    pub struct Initrd {
        pub path: PathBuf,
        pub bytes: Vec<u8>,
        pub ipa: u64,
    }

    /// A VM's guest image.
    #[derive(Clone, Debug)]
    pub enum ImageState {
        Loaded {
            path: PathBuf,
            image: FlatImage,
        },
        /// The file is missing but its guest crate exists (check-config only).
        NotBuilt {
            path: PathBuf,
        },
        /// Missing or unreadable (only inside a failed load).
        Missing {
            path: PathBuf,
        },
    }

    /// One resolved channel direction (see [`crate::desc::ChannelDesc`]).
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Channel {
        pub name: String,
        /// Sender and receiver VM indices.
        pub from_vm: usize,
        pub to_vm: usize,
        pub ipa_from: u64,
        pub ipa_to: u64,
        /// Region size from `tessera_ring::Layout`.
        pub size: u64,
        pub classes: Vec<ClassDesc>,
        /// LLC colors of the region (the config's, else the receiver's; bit c = color c);
        /// 0 = uncolored.
        pub colors: u64,
    }

    /// A passed-through device as a VM sees it.
    #[derive(Clone, Debug)]
    pub struct Device {
        pub name: String,
        pub compatible: Vec<String>,
        pub pa: u64,
        pub ipa: u64,
        pub size: u64,
        /// GIC INTIDs.
        pub irqs: Vec<u32>,
        /// Extra DT properties from board.toml.
        pub dt: BTreeMap<String, DtValue>,
    }

    /// `cargo xtask check-config`: validate `config_path` against the board in `board_dir`
    /// (`<repo>/boards/<board>`), with built guests in `guest_dir` (default
    /// `<repo>/target/guests`). The GIC is the board's default; `TESSERA_IMAGE_<VM>` overrides
    /// apply; a missing image whose guest crate exists is reported as "not built yet".
    pub fn check(
        board_dir: &Path,
        config_path: &Path,
        guest_dir: Option<&Path>,
    ) -> Result<Report, Vec<ConfigError>> {
        let repo_root = board_dir
            .parent()
            .and_then(Path::parent)
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let mut opts = Options::new(&repo_root, "", "x");
        opts.board_dir = board_dir.to_path_buf();
        opts.config = config_path.to_path_buf();
        if let Some(g) = guest_dir {
            opts.guest_dir = g.to_path_buf();
        }
        opts.missing_images = MissingImages::ReportUnbuilt;
        check_with(&opts)
    }

    /// [`check`] with explicit [`Options`].
    pub fn check_with(opts: &Options) -> Result<Report, Vec<ConfigError>> {
        crate::load(opts).map(|s| Report::new(&s))
    }
}
