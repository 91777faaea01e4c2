//! The boot-time coloring self-check of a VM (`[hypervisor] verify_coloring`, on in tests):
//! after the VM is built, walk its whole stage 2 and check that every page of its RAM and every
//! stage-2 table page has a color of the VM, and every page of a colored channel it maps a
//! color of the channel. Prints
//! `coloring verified: vm <name> <n> pages, all in colors <list>` (RAM + table pages), or for
//! an uncolored VM `coloring: vm <name> uncolored (<n> MiB in blocks)`; on the first page that
//! is not, `coloring check FAILED: vm <name> page PA <pa> (IPA <ipa>) has color <c>, not in
//! <list>` and an error (the boot stops).

use tessera_colors::CacheGeometry;
use tessera_stage2::{GuestPhysAddr, MemKind, PageTable, PhysAddr, Stage2, WalkItem};

use super::{desc, guestmem, VmId};
use crate::config::CHANNELS;
use crate::hprintln;
use crate::llc::Colors;
use crate::mm;

/// The check failed (the line saying why is printed).
#[derive(Clone, Copy, Debug)]
pub struct CheckFailed;

/// What a page failing the check is.
#[derive(Clone, Copy)]
enum Bad {
    /// A RAM or channel page at this IPA, with the colors it should have had.
    Page { pa: u64, ipa: u64, colors: u64 },
    /// A stage-2 table page.
    Table { pa: u64, level: u8, colors: u64 },
    /// RAM pages missing from the stage 2.
    Missing { mapped: u64, expected: u64 },
}

/// Checks VM `vm`'s stage 2 `s2` (just built) and prints the verdict.
pub fn verify(vm: VmId, s2: &PageTable<Stage2>) -> Result<(), CheckFailed> {
    let d = desc(vm);
    let colors = d.colors;
    let g = crate::llc::geometry();
    let in_colors = |pa: u64, mask: u64| mask & (1 << g.color_of(PhysAddr(pa))) != 0;
    let (mut ram_pages, mut table_pages, mut block_bytes) = (0u64, 0u64, 0u64);
    let walked = s2.walk(&mm::Tables::READ, |item| match item {
        WalkItem::Table { pa, level } => {
            table_pages += 1;
            if colors != 0 && !in_colors(pa.0, colors) {
                return Err(Bad::Table {
                    pa: pa.0,
                    level,
                    colors,
                });
            }
            Ok(())
        }
        WalkItem::Leaf {
            va,
            pa,
            size,
            attrs,
            level,
        } => {
            if attrs.is_none_or(|a| a.kind != MemKind::Normal) {
                return Ok(()); // devices, the GIC's virtual CPU interface
            }
            let mask = if guestmem::is_ram(vm, va, size) {
                ram_pages += size / 4096;
                if level < 3 {
                    block_bytes += size;
                }
                colors
            } else {
                channel_colors(vm, va)
            };
            if mask == 0 {
                return Ok(());
            }
            (0..size / 4096)
                .map(|k| (pa.0 + k * 4096, va.0 + k * 4096))
                .find(|&(p, _)| !in_colors(p, mask))
                .map_or(Ok(()), |(pa, ipa)| {
                    Err(Bad::Page {
                        pa,
                        ipa,
                        colors: mask,
                    })
                })
        }
    });
    let expected: u64 = d.mem.iter().map(|m| m.size / 4096).sum();
    let walked = walked.and(if ram_pages == expected {
        Ok(())
    } else {
        Err(Bad::Missing {
            mapped: ram_pages,
            expected,
        })
    });
    if let Err(bad) = walked {
        report(d.name, &g, bad);
        return Err(CheckFailed);
    }
    if colors != 0 {
        hprintln!(
            "coloring verified: vm {} {} pages, all in colors {}",
            d.name,
            ram_pages + table_pages,
            Colors(colors)
        );
    } else {
        hprintln!(
            "coloring: vm {} uncolored ({} MiB in blocks)",
            d.name,
            block_bytes >> 20
        );
    }
    Ok(())
}

/// The colors of the channel VM `vm` maps at `ipa` (0: none, or an uncolored channel).
fn channel_colors(vm: VmId, ipa: GuestPhysAddr) -> u64 {
    CHANNELS
        .iter()
        .find(|c| {
            [(c.from_vm, c.ipa_from), (c.to_vm, c.ipa_to)]
                .iter()
                .any(|&(end, base)| VmId(end) == vm && ipa.0 >= base && ipa.0 - base < c.size)
        })
        .map_or(0, |c| c.colors)
}

fn report(name: &str, g: &CacheGeometry, bad: Bad) {
    match bad {
        Bad::Page { pa, ipa, colors } => hprintln!(
            "coloring check FAILED: vm {} page PA {:#x} (IPA {:#x}) has color {}, not in {}",
            name,
            pa,
            ipa,
            g.color_of(PhysAddr(pa)),
            Colors(colors)
        ),
        Bad::Table { pa, level, colors } => hprintln!(
            "coloring check FAILED: vm {} page PA {:#x} (stage-2 table, level {}) has color {}, not in {}",
            name,
            pa,
            level,
            g.color_of(PhysAddr(pa)),
            Colors(colors)
        ),
        Bad::Missing { mapped, expected } => hprintln!(
            "coloring check FAILED: vm {} has {} of its {} RAM pages mapped",
            name,
            mapped,
            expected
        ),
    }
}
