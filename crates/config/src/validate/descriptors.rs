//! Pass 4 (descriptors): per VM, the guest image (loaded and fitted into its RAM), its DTB
//! and vGIC frames → the resolved [`Vm`]s; then whether the hypervisor region can hold the
//! image and its stacks.

use std::fs;
use std::path::{Path, PathBuf};
use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

use super::input::Input;
use super::resources::Resources;
use super::scheduling::Schedule;
use super::{bootargs_env_var, contains, image_env_var, initrd_env_var, overlaps};
use crate::desc::{FaultPolicy, GicDesc, GicVersion, MemDesc, PhysRange, ResetPolicy};
use crate::error::{range, ConfigError, ErrorKind as K, Subject};
use crate::image::{self, FlatImage, ImageFormat};
use crate::schema::{BoardFile, MemSpec, OnFault, OnReset};
use crate::{
    dtb, ImageState, Initrd, MissingImages, Options, Vm, DTB_MAX, PAGE_SIZE, STACK_SIZE, VGIC_GICC,
    VGIC_GICD, VGIC_GICR, VGIC_GICR_STRIDE, VUART_IPA,
};

/// Room the hypervisor's own code, data and bss need in its region, besides the per-core
/// stacks (a generous bound; the linker script asserts
/// the real end).
pub(super) const HYP_CODE_ALLOWANCE: u64 = 8 << 20;

/// The resolved VMs and what the build script must watch.
#[derive(Debug, Default)]
pub struct Out {
    pub vms: Vec<Vm>,
    /// Files read (for `cargo:rerun-if-changed`).
    pub inputs: Vec<PathBuf>,
    pub env_vars: Vec<String>,
    pub warnings: Vec<String>,
}

pub fn run(
    opts: &Options,
    inp: &Input,
    res: &Resources,
    sched: &Schedule,
    errs: &mut Vec<ConfigError>,
) -> Out {
    let mut out = Out {
        inputs: vec![inp.board_path.clone(), opts.config.clone()],
        ..Out::default()
    };
    for (vi, v) in inp.cfg.vms.iter().enumerate() {
        let first = v
            .memory
            .first()
            .map(|m| (m.ipa, m.size))
            .unwrap_or((crate::DEFAULT_RAM_IPA, 0));
        // Overflowing regions are reported by the resources pass.
        let dtb_ipa = first.0.saturating_add(first.1).saturating_sub(DTB_MAX);
        if first.1 != 0 && first.1 <= DTB_MAX {
            errs.push(ConfigError::vm(
                K::ImageFit,
                &v.name,
                "memory[0].size",
                format!(
                    "{:#x} leaves no room below the {DTB_MAX:#x}-byte DTB area",
                    first.1
                ),
            ));
        }
        let (image, field) = load_image(opts, &v.name, &v.image, first.0, &mut out, errs);
        if let ImageState::Loaded { image: img, .. } = &image {
            // Zero-size or overflowing regions are already reported; fitting an image into
            // them says nothing.
            let sizes_ok = v
                .memory
                .iter()
                .all(|m| m.size != 0 && m.ipa.checked_add(m.size).is_some());
            if img.format != ImageFormat::Placeholder && sizes_ok {
                check_fit(&v.name, &field, img, &v.memory, dtb_ipa, errs);
            }
        }

        let bootargs = bootargs_of(opts, &v.name, &v.bootargs, &mut out);
        let initrd = load_initrd(
            opts,
            &v.name,
            v.initrd.as_deref(),
            &image,
            (first.0, dtb_ipa),
            &mut out,
            errs,
        );

        let devices = res.devices.get(vi).cloned().unwrap_or_default();
        let mem_pairs: Vec<(u64, u64)> = v.memory.iter().map(|m| (m.ipa, m.size)).collect();
        let channels: Vec<dtb::DtChannel<'_>> = res
            .channels
            .iter()
            .enumerate()
            .filter(|(_, c)| c.from_vm == vi || c.to_vm == vi)
            .map(|(index, c)| dtb::DtChannel {
                index,
                name: &c.name,
                ipa: if c.to_vm == vi { c.ipa_to } else { c.ipa_from },
                size: c.size,
                rx: c.to_vm == vi,
                classes: &c.classes,
            })
            .collect();
        let dtb = match dtb::generate(&dtb::DtbInput {
            vcpus: v.cpus.len(),
            mem: &mem_pairs,
            gic: inp.version,
            devices: &devices,
            bootargs: &bootargs,
            initrd: initrd
                .as_ref()
                .map(|i| (i.ipa, i.ipa + i.bytes.len() as u64)),
            channels: &channels,
        }) {
            Ok(b) => b,
            Err(msg) => {
                errs.push(ConfigError::vm(K::Dtb, &v.name, "dtb", msg));
                vec![]
            }
        };
        out.vms.push(Vm {
            id: vi,
            name: v.name.clone(),
            cpus: v.cpus.clone(),
            slots: sched.slots.get(vi).cloned().unwrap_or_default(),
            mem: v
                .memory
                .iter()
                .map(|m| MemDesc {
                    ipa: m.ipa,
                    size: m.size,
                    phys: m.phys,
                })
                .collect(),
            devices,
            bootargs,
            on_fault: match v.on_fault {
                OnFault::Inject => FaultPolicy::InjectAbort,
                OnFault::Stop => FaultPolicy::Stop,
            },
            on_reset: match v.on_reset {
                OnReset::Restart => ResetPolicy::Restart,
                OnReset::Stop => ResetPolicy::Stop,
            },
            colors: v.colors.clone().map(|mut c| {
                c.sort_unstable();
                c.dedup();
                c
            }),
            isolated: v.isolated.unwrap_or(v.colors.is_some()),
            image,
            initrd,
            dtb,
            dtb_ipa,
            vuart_ipa: VUART_IPA,
            vgic: vgic(inp.version),
        });
    }
    check_hyp_room(&inp.board, errs);
    out
}

/// The VM's bootargs: `TESSERA_BOOTARGS_<VM>`, then an explicit override, then the config's.
fn bootargs_of(opts: &Options, vm: &str, config: &str, out: &mut Out) -> String {
    let env = bootargs_env_var(vm);
    out.env_vars.push(env.clone());
    let from_env = opts
        .read_image_env
        .then(|| std::env::var(&env).ok())
        .flatten()
        .filter(|s| !s.is_empty());
    from_env
        .or_else(|| opts.bootargs_overrides.get(vm).cloned())
        .unwrap_or_else(|| config.to_string())
}

/// The VM's initramfs (`TESSERA_INITRD_<VM>`, an explicit override, or the config's
/// `initrd`), placed page-aligned right below the DTB and checked to end above the image.
/// `window` = (first RAM region's IPA, DTB IPA).
fn load_initrd(
    opts: &Options,
    vm: &str,
    spec: Option<&str>,
    image: &ImageState,
    window: (u64, u64),
    out: &mut Out,
    errs: &mut Vec<ConfigError>,
) -> Option<Initrd> {
    let env = initrd_env_var(vm);
    out.env_vars.push(env.clone());
    let from_env = opts
        .read_image_env
        .then(|| std::env::var_os(&env))
        .flatten()
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    let (path, field) = match from_env.or_else(|| opts.initrd_overrides.get(vm).cloned()) {
        Some(p) => (p, env),
        None => {
            let spec = spec?;
            let p = Path::new(spec);
            let p = if p.is_absolute() {
                p.to_path_buf()
            } else if !spec.contains('/') && !spec.contains('.') {
                // A guest name: what the guest's build left beside its image.
                opts.guest_dir.join(format!("{spec}.cpio"))
            } else {
                opts.repo_root.join(p)
            };
            (p, "initrd".to_string())
        }
    };
    out.inputs.push(path.clone());
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        // A guest's initramfs not built yet: check-config and bare clippy builds go on.
        Err(_)
            if field == "initrd"
                && opts.missing_images != MissingImages::Error
                && spec.is_some_and(|s| opts.repo_root.join("guests").join(s).is_dir()) =>
        {
            return None;
        }
        Err(e) => {
            errs.push(ConfigError::vm(
                K::MissingImage,
                vm,
                &field,
                format!("initramfs {}: {e}", path.display()),
            ));
            return None;
        }
    };
    let (ram_base, dtb_ipa) = window;
    let len = bytes.len() as u64;
    let image_end = match image {
        ImageState::Loaded { image, .. } => page_up(image.load_ipa.saturating_add(image.mem_size)),
        _ => ram_base,
    };
    let ipa = dtb_ipa.saturating_sub(len) & !(PAGE_SIZE - 1);
    if len > dtb_ipa.saturating_sub(ram_base) || ipa < image_end {
        errs.push(ConfigError::vm(
            K::ImageFit,
            vm,
            &field,
            format!(
                "the initramfs ({len:#x} bytes) does not fit between the image's end {image_end:#x} and the DTB at {dtb_ipa:#x}: give memory[0] {:#x} more bytes",
                image_end.saturating_add(len).saturating_sub(dtb_ipa & !(PAGE_SIZE - 1))
            ),
        ));
        return None;
    }
    Some(Initrd { path, bytes, ipa })
}

/// The VM's GIC frames as its guest sees them.
fn vgic(version: GicVersion) -> GicDesc {
    match version {
        GicVersion::V3 => GicDesc {
            version,
            gicd: VGIC_GICD,
            gicr: VGIC_GICR,
            gicc: 0,
            gich: 0,
            gicv: 0,
        },
        GicVersion::V2 => GicDesc {
            version,
            gicd: VGIC_GICD,
            gicr: 0,
            gicc: VGIC_GICC,
            gich: 0,
            gicv: 0,
        },
    }
}

/// Resolve a VM's `image` to a file path.
fn image_path(spec: &str, opts: &Options) -> PathBuf {
    let is_path = spec.contains('/')
        || [".bin", ".elf", ".img"].iter().any(|s| spec.ends_with(s))
        || spec == "Image";
    if is_path {
        let p = Path::new(spec);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            opts.repo_root.join(p)
        }
    } else {
        opts.guest_dir.join(format!("{spec}.bin"))
    }
}

/// The VM's image (override, environment or config), and the field to name in its errors.
fn load_image(
    opts: &Options,
    vm: &str,
    spec: &str,
    ram_base: u64,
    out: &mut Out,
    errs: &mut Vec<ConfigError>,
) -> (ImageState, String) {
    let env = image_env_var(vm);
    out.env_vars.push(env.clone());
    let over = if opts.read_image_env {
        std::env::var_os(&env).filter(|s| !s.is_empty())
    } else {
        None
    };
    let over = over
        .map(PathBuf::from)
        .or_else(|| opts.image_overrides.get(vm).cloned());
    let path = over.clone().unwrap_or_else(|| image_path(spec, opts));
    out.inputs.push(path.clone());
    let field = if over.is_some() {
        env.clone()
    } else {
        "image".to_string()
    };
    let state = match fs::read(&path) {
        Ok(bytes) => match image::load(&bytes, ram_base) {
            Ok(img) => ImageState::Loaded {
                path: path.clone(),
                image: img,
            },
            Err(msg) => {
                errs.push(ConfigError::vm(
                    K::BadImage,
                    vm,
                    &field,
                    format!("{}: {msg}", path.display()),
                ));
                ImageState::Missing { path: path.clone() }
            }
        },
        Err(_) => {
            // A guest of this repository: a crate, or a recipe (guests/linux).
            let guest = opts.repo_root.join("guests").join(spec);
            let is_guest = !spec.is_empty()
                && !spec.contains('/')
                && (guest.join("Cargo.toml").is_file() || guest.join("init").is_file());
            match opts.missing_images {
                MissingImages::ReportUnbuilt if over.is_none() && is_guest => {
                    ImageState::NotBuilt { path: path.clone() }
                }
                MissingImages::Placeholder => {
                    out.warnings.push(format!(
                        "vm `{vm}`: image {} is missing: an empty placeholder goes into the payload bundle (this image cannot run guests)",
                        path.display()
                    ));
                    ImageState::Loaded {
                        path: path.clone(),
                        image: FlatImage {
                            format: ImageFormat::Placeholder,
                            bytes: vec![],
                            load_ipa: ram_base,
                            mem_size: 0,
                            entry_ipa: ram_base,
                        },
                    }
                }
                _ => {
                    errs.push(ConfigError::vm(
                        K::MissingImage,
                        vm,
                        &field,
                        if over.is_none() && !is_guest && !spec.contains('/') {
                            format!(
                                "`{spec}` is neither a guest of this repository (no guests/{spec}/) nor an image file ({} does not exist)",
                                path.display()
                            )
                        } else {
                            format!(
                                "{} does not exist (build the guests first: cargo xtask build)",
                                path.display()
                            )
                        },
                    ));
                    ImageState::Missing { path: path.clone() }
                }
            }
        }
    };
    (state, field)
}

/// The hypervisor region must hold the image (code, data, bss) and the per-core stacks.
/// Guest payloads are not in it (pass 5 puts them in the payload bundle).
fn check_hyp_room(board: &BoardFile, errs: &mut Vec<ConfigError>) {
    let need = STACK_SIZE
        .saturating_mul(board.max_cpus as u64)
        .saturating_add(HYP_CODE_ALLOWANCE);
    if need > board.hypervisor.size {
        errs.push(ConfigError::new(
            K::HypTooSmall,
            Subject::Board,
            "hypervisor.size",
            format!(
                "{:#x} bytes cannot hold the hypervisor's code, data and {} stacks (about {need:#x} needed)",
                board.hypervisor.size, board.max_cpus
            ),
        ));
    }
}

fn page_up(v: u64) -> u64 {
    v.div_ceil(PAGE_SIZE).saturating_mul(PAGE_SIZE)
}

/// MMIO the hypervisor maps for itself: the console, the log UART and the GIC frames
/// (page-aligned).
pub fn hyp_mmio(b: &BoardFile, g: &GicDesc) -> Vec<PhysRange> {
    let mut v = vec![PhysRange {
        base: b.console.uart & !(PAGE_SIZE - 1),
        size: PAGE_SIZE,
    }];
    if let Some(log) = &b.log {
        v.push(PhysRange {
            base: log.uart & !(PAGE_SIZE - 1),
            size: PAGE_SIZE,
        });
    }
    let mut add = |base: u64, size: u64| {
        v.push(PhysRange {
            base: base & !(PAGE_SIZE - 1),
            size: page_up(size),
        })
    };
    match g.version {
        GicVersion::V3 => {
            add(g.gicd, 0x10000);
            add(g.gicr, VGIC_GICR_STRIDE.saturating_mul(b.max_cpus as u64));
        }
        GicVersion::V2 => {
            add(g.gicd, 0x1000);
            add(g.gicc, 0x2000);
            add(g.gich, 0x2000);
            add(g.gicv, 0x2000);
        }
    }
    v
}

fn check_fit(
    vm: &str,
    field: &str,
    img: &FlatImage,
    mem: &[MemSpec],
    dtb_ipa: u64,
    errs: &mut Vec<ConfigError>,
) {
    let span = (img.load_ipa, img.mem_size.max(1));
    let region = mem.iter().position(|m| contains((m.ipa, m.size), span));
    match region {
        None => {
            // One line for one cause: the entry point of an image outside the RAM is not
            // worth a second error.
            let ram: Vec<String> = mem.iter().map(|m| range(m.ipa, m.size)).collect();
            let hint = if img.format == ImageFormat::Elf
                && !mem.iter().any(|m| overlaps((m.ipa, m.size), span))
            {
                "; an ELF loads where it is linked: link it for this VM's RAM"
            } else {
                ""
            };
            errs.push(ConfigError::vm(
                K::ImageFit,
                vm,
                field,
                format!(
                    "the {} occupies {} which is not inside one RAM region (RAM: {}){hint}",
                    img.format.as_str(),
                    range(img.load_ipa, img.mem_size),
                    ram.join(", ")
                ),
            ));
            return;
        }
        Some(0) if overlaps(span, (dtb_ipa, DTB_MAX)) => errs.push(ConfigError::vm(
            K::ImageFit,
            vm,
            field,
            format!(
                "the image occupies {} and must end below the DTB at {dtb_ipa:#x} (memory[0] too small)",
                range(img.load_ipa, img.mem_size)
            ),
        )),
        _ => {}
    }
    if !mem
        .iter()
        .any(|m| contains((m.ipa, m.size), (img.entry_ipa, 4)))
    {
        errs.push(ConfigError::vm(
            K::ImageFit,
            vm,
            field,
            format!("entry point {:#x} is outside the VM's RAM", img.entry_ipa),
        ));
    }
}
