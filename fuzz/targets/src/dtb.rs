//! Target `dtb`: device-tree blobs through the reader the guests use. The guest runtime
//! (`guests/rt/src/dt.rs`) is bare-metal only (inline assembly, linker symbols), so this
//! target repeats its walk on the host with the same parser in the same mode (`fdt`
//! 0.2.0-alpha3, `UnalignedParser` + `NoPanic`): memory nodes' `reg`, `compatible`
//! matching, `/timer` `interrupts`, `/chosen` (`stdout-path`, `bootargs`), `/psci`
//! `method`, `/hypervisor`, and every `/cpus` node's `reg`. Tessera itself reads only
//! the DTB its build generated. Invariant: no panic on any blob (errors are values).
//!
//! Found by this target: `Fdt::new_unaligned_fallible` panics (slice index out of range)
//! when `off_dt_strings + size_dt_strings` (or the struct block's) wraps around `u32`: the
//! parser adds them unchecked, the bounds check passes, the slicing does not. The guest
//! runtime's `dt::open` must therefore check the header itself before handing the blob to
//! `fdt` ([`header_in_bounds`]; regression input `fuzz/corpus/dtb/regress-header-wrap`).

use fdt::nodes::Node;
use fdt::parsing::{unaligned::UnalignedParser, NoPanic};
use fdt::properties::Compatible;
use fdt::{Fdt, FdtError};

type Mode<'a> = (UnalignedParser<'a>, NoPanic);

/// Whether the FDT header's blocks lie inside the blob, computed without overflow: what
/// `fdt` 0.2.0-alpha3 assumes (it adds offset + size in `u32`). Big-endian header words:
/// totalsize (1), off_dt_struct (2), off_dt_strings (3), off_mem_rsvmap (4),
/// size_dt_strings (8), size_dt_struct (9).
pub fn header_in_bounds(data: &[u8]) -> bool {
    let word = |i: usize| -> Option<u64> {
        let b = data.get(4 * i..4 * i + 4)?;
        Some(u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
    };
    let (Some(total), Some(st_off), Some(str_off), Some(rsv), Some(str_size), Some(st_size)) =
        (word(1), word(2), word(3), word(4), word(8), word(9))
    else {
        return false;
    };
    total <= data.len() as u64
        && st_off + st_size <= total
        && str_off + str_size <= total
        && rsv <= total
}

/// One input.
pub fn run(data: &[u8]) {
    if !header_in_bounds(data) {
        return;
    }
    let Ok(fdt) = Fdt::<Mode<'_>>::new_unaligned_fallible(data) else {
        return;
    };
    let _ = walk(&fdt);
}

fn compatible<'a>(node: &Node<'a, Mode<'a>>, with: &str) -> Result<bool, FdtError> {
    Ok(node
        .property::<Compatible>()?
        .is_some_and(|c| c.compatible_with(with)))
}

fn walk<'a>(fdt: &Fdt<'a, Mode<'a>>) -> Result<(), FdtError> {
    let root = fdt.root()?;
    let mut regions = 0usize;
    for entry in root.all_nodes()? {
        let (_, node) = entry?;
        if let Some(prop) = node.raw_property("device_type")? {
            if prop.value.strip_suffix(b"\0") == Some(b"memory") {
                for r in node.reg()?.into_iter().flat_map(|r| r.iter::<u64, u64>()) {
                    let r = r.map_err(|_| FdtError::CollectCellsError)?;
                    regions += usize::from(r.len != 0);
                }
            }
        }
        for c in [
            "arm,pl011",
            "arm,gic-v3",
            "arm,cortex-a15-gic",
            "arm,gic-400",
        ] {
            if compatible(&node, c)? {
                let _ = node
                    .reg()?
                    .and_then(|r| r.iter::<u64, u64>().next())
                    .and_then(Result::ok);
            }
        }
        if let Some(p) = node.raw_property("interrupts")? {
            for spec in p.value.as_chunks::<12>().0 {
                let _ = u32::from_be_bytes([spec[4], spec[5], spec[6], spec[7]]);
            }
        }
    }
    let _ = regions;
    if let Some(node) = root.find_node("/timer")? {
        let _ = node.raw_property("interrupts")?;
    }
    let chosen = root.chosen()?;
    if let Some(stdout) = chosen.stdout()? {
        let _ = compatible(&stdout.node, "arm,pl011")?;
    }
    if let Some(node) = root.find_node("/chosen")? {
        if let Some(prop) = node.raw_property("bootargs")? {
            let text = prop.value.split(|&b| b == 0).next().unwrap_or_default();
            if let Ok(text) = core::str::from_utf8(text) {
                let _ = text.split_ascii_whitespace().count();
            }
        }
    }
    let psci = match root.find_node("/psci")? {
        Some(node) => Some(node),
        None => root
            .all_compatible(&["arm,psci-1.0", "arm,psci-0.2", "arm,psci"])?
            .next()
            .transpose()?,
    };
    if let Some(node) = psci {
        let _ = node.raw_property("method")?;
    }
    if let Some(node) = root.find_node("/hypervisor")? {
        let _ = compatible(&node, "tessera,hypervisor")?;
    }
    for cpu in root.cpus()?.iter()? {
        let cpu = cpu?;
        let _ = cpu.reg::<u64>()?.first();
    }
    Ok(())
}
