//! Property tests of map / unmap / translate for both formats.

mod common;

use common::*;
use proptest::prelude::*;
use tessera_stage2::{
    El2Stage1, El2Stage1Config, GuestPhysAddr, InputAddress, MapError, PageTable, PhysAddr, Stage2,
    Stage2Config, TranslationFormat, VirtAddr, PAGE_SIZE,
};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Maps `regions` into a fresh tree and checks translations, leaf levels and table count.
fn roundtrip<F: TranslationFormat>(
    cfg: &F::Config,
    regions: &[Region],
) -> Result<(), TestCaseError> {
    let mut mem = SimMem::new();
    let mut pt = PageTable::<F>::new(&mut mem, cfg).unwrap();
    let layout = pt.layout();
    prop_assert_eq!(mem.tables, layout.root_tables);
    map_all(&mut pt, &mut mem, regions);
    check_mapped(&pt, &mem, regions, true)?;
    prop_assert_eq!(
        mem.tables,
        expected_tables(regions, layout.start_level, layout.root_tables)
    );
    // Gaps between regions stay unmapped.
    for w in regions.windows(2) {
        if w[0].end() < w[1].va {
            prop_assert_eq!(pt.translate(&mem, F::Input::from_u64(w[0].end())), None);
            prop_assert_eq!(
                pt.translate(&mem, F::Input::from_u64(w[1].va - PAGE_SIZE)),
                None
            );
        }
    }
    Ok(())
}

/// Any map overlapping an existing region fails with the first mapped address and changes
/// nothing.
fn overlap<F: TranslationFormat>(
    cfg: &F::Config,
    regions: &[Region],
    pick: prop::sample::Index,
    back_pages: u64,
    off_frac: f64,
    len_pages: u64,
) -> Result<(), TestCaseError> {
    let mut mem = SimMem::new();
    let mut pt = PageTable::<F>::new(&mut mem, cfg).unwrap();
    map_all(&mut pt, &mut mem, regions);
    let r = regions[pick.index(regions.len())];
    let pages = r.size / PAGE_SIZE;
    let off = ((pages as f64 * off_frac) as u64).min(pages - 1) * PAGE_SIZE;
    let start = (r.va + off).saturating_sub(back_pages * PAGE_SIZE);
    let end = (r.va + off + PAGE_SIZE).max(start + len_pages * PAGE_SIZE);
    let first = regions
        .iter()
        .filter(|q| q.va < end && q.end() > start)
        .map(|q| q.va.max(start))
        .min()
        .unwrap();
    let before = mem.clone();
    let res = pt.map(
        &mut mem,
        F::Input::from_u64(start),
        PhysAddr(0x4000_0000),
        end - start,
        r.attrs,
    );
    prop_assert_eq!(res, Err(MapError::AlreadyMapped(F::Input::from_u64(first))));
    prop_assert_eq!(&mem, &before);
    Ok(())
}

/// Unmapping a subset of the regions leaves exactly the others; the unmapped ones can be
/// mapped again; an unmapped range cannot be unmapped twice.
fn unmap_subset<F: TranslationFormat>(
    cfg: &F::Config,
    regions: &[Region],
    mask: u8,
) -> Result<(), TestCaseError> {
    let mut mem = SimMem::new();
    let mut pt = PageTable::<F>::new(&mut mem, cfg).unwrap();
    map_all(&mut pt, &mut mem, regions);
    let pick = |want: bool| -> Vec<Region> {
        let chosen = regions
            .iter()
            .enumerate()
            .filter(|(i, _)| (mask & (1 << i) != 0) == want);
        chosen.map(|(_, r)| *r).collect()
    };
    let (gone, kept) = (pick(true), pick(false));
    for r in &gone {
        prop_assert_eq!(pt.unmap(&mut mem, F::Input::from_u64(r.va), r.size), Ok(()));
    }
    check_unmapped(&pt, &mem, &gone)?;
    check_mapped(&pt, &mem, &kept, true)?;
    let leaves_left = mem.valid_descriptors();
    for r in &gone {
        let again = pt.unmap(&mut mem, F::Input::from_u64(r.va), r.size);
        prop_assert_eq!(again, Err(MapError::NotMapped(F::Input::from_u64(r.va))));
    }
    prop_assert_eq!(mem.valid_descriptors(), leaves_left);
    map_all(&mut pt, &mut mem, &gone);
    check_mapped(&pt, &mem, regions, false)?;
    Ok(())
}

/// Running out of table memory part way leaves no partial mapping behind.
fn out_of_memory<F: TranslationFormat>(
    cfg: &F::Config,
    regions: &[Region],
    frac: f64,
) -> Result<(), TestCaseError> {
    let probe = {
        let mut mem = SimMem::new();
        let mut pt = PageTable::<F>::new(&mut mem, cfg).unwrap();
        map_all(&mut pt, &mut mem, regions);
        mem.tables
    };
    let root = F::layout(cfg).root_tables;
    let limit = root + ((probe - root) as f64 * frac) as usize;
    let mut mem = SimMem::with_limit(limit);
    let mut pt = PageTable::<F>::new(&mut mem, cfg).unwrap();
    let mut ok = Vec::new();
    for r in regions {
        match pt.map(
            &mut mem,
            F::Input::from_u64(r.va),
            PhysAddr(r.pa),
            r.size,
            r.attrs,
        ) {
            Ok(()) => ok.push(*r),
            Err(e) => {
                prop_assert_eq!(e, MapError::OutOfMemory);
                check_unmapped(&pt, &mem, std::slice::from_ref(r))?;
            }
        }
    }
    check_mapped(&pt, &mem, &ok, false)?;
    prop_assert!(mem.tables <= limit);
    Ok(())
}

const S2_BITS: [u32; 4] = [36, 40, 42, 48];

proptest! {
    #![proptest_config(config())]

    #[test]
    fn stage2_roundtrip(bits in prop::sample::select(&S2_BITS[..]), regions in regions(1 << 36, false)) {
        roundtrip::<Stage2>(&Stage2Config::new(bits), &regions)?;
    }

    #[test]
    fn el2_stage1_roundtrip(bits in prop::sample::select(&[36u32, 39, 48][..]), regions in regions(1 << 36, true)) {
        roundtrip::<El2Stage1>(&El2Stage1Config::new(bits, 48), &regions)?;
    }

    #[test]
    fn stage2_overlap_rejected(
        regions in regions(1 << 36, false),
        pick in any::<prop::sample::Index>(),
        back in 0u64..1200,
        off in 0.0f64..1.0,
        len in 1u64..1200,
    ) {
        overlap::<Stage2>(&Stage2Config::new(40), &regions, pick, back, off, len)?;
    }

    #[test]
    fn el2_stage1_overlap_rejected(
        regions in regions(1 << 36, true),
        pick in any::<prop::sample::Index>(),
        back in 0u64..1200,
        off in 0.0f64..1.0,
        len in 1u64..1200,
    ) {
        overlap::<El2Stage1>(&El2Stage1Config::new(39, 40), &regions, pick, back, off, len)?;
    }

    #[test]
    fn stage2_unmap(regions in regions(1 << 36, false), mask in any::<u8>()) {
        unmap_subset::<Stage2>(&Stage2Config::new(44), &regions, mask)?;
    }

    #[test]
    fn el2_stage1_unmap(regions in regions(1 << 36, true), mask in any::<u8>()) {
        unmap_subset::<El2Stage1>(&El2Stage1Config::new(48, 48), &regions, mask)?;
    }

    #[test]
    fn stage2_out_of_memory(regions in regions(1 << 36, false), frac in 0.0f64..1.0) {
        out_of_memory::<Stage2>(&Stage2Config::new(40), &regions, frac)?;
    }

    #[test]
    fn el2_stage1_out_of_memory(regions in regions(1 << 36, true), frac in 0.0f64..1.0) {
        out_of_memory::<El2Stage1>(&El2Stage1Config::new(40, 40), &regions, frac)?;
    }

    #[test]
    fn stage2_descriptors_roundtrip(
        attrs in attrs(false),
        level in 1u8..=3,
        frame in 0u64..(1 << 36),
    ) {
        let size = tessera_stage2::level_size(level);
        let pa = PhysAddr((frame * PAGE_SIZE) & !(size - 1));
        let d = Stage2::encode_leaf(pa, attrs, level).unwrap();
        prop_assert_eq!(Stage2::decode_leaf(d, level), Some((pa, attrs)));
        prop_assert_eq!(d & (1 << 10), 1 << 10, "AF");
        // A page (0b11) reads as a table at levels 1..=2; a block (0b01) is reserved at level 3.
        if level == 3 {
            prop_assert_eq!(Stage2::decode_leaf(d, 2), None);
            prop_assert_eq!(Stage2::decode_leaf(d, 1), None);
        } else {
            prop_assert_eq!(Stage2::decode_leaf(d, 3), None);
        }
        prop_assert_eq!(Stage2::decode_leaf(d, 0), None);
        prop_assert_eq!(Stage2::encode_leaf(PhysAddr(pa.0 | 0x1000), attrs, 1), None);
    }

    #[test]
    fn el2_stage1_descriptors_roundtrip(
        attrs in attrs(true),
        level in 1u8..=3,
        frame in 0u64..(1 << 36),
    ) {
        let size = tessera_stage2::level_size(level);
        let pa = PhysAddr((frame * PAGE_SIZE) & !(size - 1));
        let d = El2Stage1::encode_leaf(pa, attrs, level).unwrap();
        prop_assert_eq!(El2Stage1::decode_leaf(d, level), Some((pa, attrs)));
        prop_assert_eq!(d & (1 << 10), 1 << 10, "AF");
        prop_assert_eq!(d & (1 << 6), 1 << 6, "AP[1] RES1");
        prop_assert_eq!(d & (1 << 53), 0, "PXN RES0");
        let unreadable = tessera_stage2::MemAttrs { read: false, ..attrs };
        prop_assert_eq!(El2Stage1::encode_leaf(pa, unreadable, level), None);
    }
}

#[test]
fn address_types_are_per_format() {
    // Compile-time: stage 2 takes guest-physical, EL2 stage 1 virtual input addresses.
    fn input<F: TranslationFormat>(raw: u64) -> F::Input {
        F::Input::from_u64(raw)
    }
    assert_eq!(input::<Stage2>(0x1000), GuestPhysAddr(0x1000));
    assert_eq!(input::<El2Stage1>(0x1000), VirtAddr(0x1000));
}
