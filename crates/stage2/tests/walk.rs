//! Property tests of `PageTable::walk` (it reports every table page and exactly the mapped
//! leaves) and `PageTable::map_pages` (4 KiB leaves only, whatever the alignment).

mod common;

use std::collections::BTreeSet;

use common::*;
use proptest::prelude::*;
use tessera_stage2::{
    GuestPhysAddr, InputAddress, PageTable, PhysAddr, Stage2, Stage2Config, WalkItem, PAGE_SIZE,
};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Maps each region with `map` or `map_pages` (per `pages_only`), then walks the tree.
fn walk_matches(bits: u32, regions: &[Region], pages_only: &[bool]) -> Result<(), TestCaseError> {
    let cfg = Stage2Config::new(bits);
    let mut mem = SimMem::new();
    let mut pt = PageTable::<Stage2>::new(&mut mem, &cfg).unwrap();
    for (r, &p) in regions.iter().zip(pages_only.iter().cycle()) {
        let (va, pa) = (GuestPhysAddr(r.va), PhysAddr(r.pa));
        if p {
            pt.map_pages(&mut mem, va, pa, r.size, r.attrs).unwrap();
        } else {
            pt.map(&mut mem, va, pa, r.size, r.attrs).unwrap();
        }
    }
    let mut tables = BTreeSet::new();
    let mut leaves: Vec<(u64, u64, u64, u8)> = Vec::new();
    let mut last_va = None;
    pt.walk(&mem, |item| {
        match item {
            WalkItem::Table { pa, level } => {
                prop_assert!(tables.insert(pa.0), "table {:#x} visited twice", pa.0);
                prop_assert!(level >= pt.layout().start_level && level <= 3);
            }
            WalkItem::Leaf {
                va,
                pa,
                size,
                attrs,
                level,
            } => {
                // In input-address order, aligned, decodable.
                prop_assert!(last_va.is_none_or(|l| va.to_u64() > l));
                last_va = Some(va.to_u64());
                prop_assert!(va.0.is_multiple_of(size) && pa.0.is_multiple_of(size));
                prop_assert!(attrs.is_some());
                // The software walk agrees on the leaf.
                let t = pt.translate(&mem, va).unwrap();
                prop_assert_eq!((t.pa, t.level, Some(t.attrs)), (pa, level, attrs));
                leaves.push((va.0, pa.0, size, level));
            }
        }
        Ok(())
    })?;
    // Every allocated table was visited, nothing else.
    prop_assert_eq!(tables.len(), mem.tables);
    // The leaves tile exactly the mapped regions, with the requested output addresses, and
    // regions mapped with `map_pages` only by pages.
    let mut li = leaves.iter().peekable();
    for (r, &p) in regions.iter().zip(pages_only.iter().cycle()) {
        let mut va = r.va;
        while va < r.end() {
            let &(lva, lpa, size, level) = li.next().expect("a leaf for every mapped page");
            prop_assert_eq!(lva, va);
            prop_assert_eq!(lpa, r.pa + (va - r.va));
            prop_assert!(lva + size <= r.end());
            if p {
                prop_assert_eq!((level, size), (3, PAGE_SIZE));
            } else {
                prop_assert_eq!(level, expected_level(r, va, pt.layout().start_level));
            }
            va += size;
        }
    }
    prop_assert!(li.next().is_none(), "a leaf outside every region");
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn walk_reports_tables_and_exact_leaves(
        bits in prop::sample::select(&[36u32, 39, 40, 48][..]),
        regions in regions(1 << 36, false),
        pages_only in prop::collection::vec(any::<bool>(), 1..4),
    ) {
        walk_matches(bits, &regions, &pages_only)?;
    }
}

#[test]
fn map_pages_never_makes_blocks() {
    let cfg = Stage2Config::new(40);
    let mut mem = SimMem::new();
    let mut pt = PageTable::<Stage2>::new(&mut mem, &cfg).unwrap();
    // 2 MiB-aligned on both sides: `map` would use one block.
    pt.map_pages(
        &mut mem,
        GuestPhysAddr(0x4000_0000),
        PhysAddr(0x8000_0000),
        4 << 20,
        tessera_stage2::MemAttrs::RAM_RWX,
    )
    .unwrap();
    let t = pt.translate(&mem, GuestPhysAddr(0x4020_1234)).unwrap();
    assert_eq!((t.pa, t.level), (PhysAddr(0x8020_1234), 3));
    // Root (2 concatenated tables at 40 bits), one level-2 table, two level-3 tables.
    assert_eq!(mem.tables, 2 + 1 + 2);
    let mut n = 0;
    pt.walk(&mem, |i| {
        if let WalkItem::Leaf { .. } = i {
            n += 1;
        }
        Ok::<(), ()>(())
    })
    .unwrap();
    assert_eq!(n, 1024);
    // Overlaps are still rejected.
    assert!(pt
        .map_pages(
            &mut mem,
            GuestPhysAddr(0x4030_0000),
            PhysAddr(0),
            PAGE_SIZE,
            tessera_stage2::MemAttrs::RAM_RW
        )
        .is_err());
}

#[test]
fn walk_stops_at_the_first_error() {
    let cfg = Stage2Config::new(48);
    let mut mem = SimMem::new();
    let mut pt = PageTable::<Stage2>::new(&mut mem, &cfg).unwrap();
    pt.map_pages(
        &mut mem,
        GuestPhysAddr(0x1000),
        PhysAddr(0x2000),
        3 * PAGE_SIZE,
        tessera_stage2::MemAttrs::RAM_RW,
    )
    .unwrap();
    let mut seen = 0;
    let r = pt.walk(&mem, |i| match i {
        WalkItem::Leaf { va, .. } if va.0 == 0x2000 => Err(va.0),
        WalkItem::Leaf { .. } => {
            seen += 1;
            Ok(())
        }
        _ => Ok(()),
    });
    assert_eq!((r, seen), (Err(0x2000), 1));
}
