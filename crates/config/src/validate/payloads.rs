//! Pass 5 (payloads): every VM's image and DTB into one payload bundle (crates/bundle), and
//! the RAM it is loaded into: the top of the board's RAM, 2 MiB aligned, which no VM's
//! explicit `phys` range may overlap and the frame allocator never hands out.

use std::format;
use std::vec::Vec;

use tessera_bundle::{Builder, Kind};

use super::input::Input;
use super::overlaps;
use crate::desc::{PayloadRef, PhysRange};
use crate::error::{range, ConfigError, ErrorKind as K, Subject};
use crate::{ImageState, Payloads, Vm, VmPayloads};

/// Alignment (and size granule) of the payload region.
pub const REGION_ALIGN: u64 = 2 << 20;

pub fn run(inp: &Input, vms: &[Vm], errs: &mut Vec<ConfigError>) -> Payloads {
    let mut b = Builder::new();
    let mut refs = Vec::new();
    for vm in vms {
        let image: &[u8] = match &vm.image {
            ImageState::Loaded { image, .. } => &image.bytes,
            _ => &[],
        };
        let id = vm.id as u16;
        let img = PayloadRef {
            entry: b.push(id, Kind::Image, image) as u16,
            size: image.len() as u64,
        };
        let dtb = PayloadRef {
            entry: b.push(id, Kind::Dtb, &vm.dtb) as u16,
            size: vm.dtb.len() as u64,
        };
        let initrd = match &vm.initrd {
            Some(i) => PayloadRef {
                entry: b.push(id, Kind::Initrd, &i.bytes) as u16,
                size: i.bytes.len() as u64,
            },
            None => PayloadRef { entry: 0, size: 0 },
        };
        refs.push(VmPayloads {
            image: img,
            dtb,
            initrd,
        });
    }
    let ram = &inp.board.ram;
    let total = b.total_size();
    let size = total.div_ceil(REGION_ALIGN).saturating_mul(REGION_ALIGN);
    let ram_end = ram.base.saturating_add(ram.size);
    let hyp_end = inp.hyp_region.base.saturating_add(inp.hyp_region.size);
    // The top of RAM, aligned down.
    let base = (ram_end.saturating_sub(size) / REGION_ALIGN) * REGION_ALIGN;
    let region = PhysRange { base, size };
    if size > ram_end.saturating_sub(hyp_end) || base < hyp_end {
        errs.push(ConfigError::new(
            K::Payloads,
            Subject::Config,
            "vms",
            format!(
                "the payload bundle (guest images and DTBs, {total:#x} bytes) does not fit between the hypervisor region's end {hyp_end:#x} and the end of RAM {ram_end:#x}"
            ),
        ));
    }
    for v in &inp.cfg.vms {
        for (mi, m) in v.memory.iter().enumerate() {
            if let Some(p) = m.phys.filter(|&p| overlaps((p, m.size), (base, size))) {
                errs.push(ConfigError::vm(
                    K::Payloads,
                    &v.name,
                    format!("memory[{mi}].phys"),
                    format!(
                        "{} overlaps the payload bundle's region {} (the top {} MiB of RAM, where guest images and DTBs are loaded)",
                        range(p, m.size),
                        range(base, size),
                        size >> 20
                    ),
                ));
            }
        }
    }
    let built = b.finish(base);
    Payloads {
        region,
        bytes: built.bytes,
        identity: built.identity,
        refs,
    }
}
