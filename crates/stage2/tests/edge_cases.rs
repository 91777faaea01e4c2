//! Deterministic edge cases of map / unmap / translate.

mod common;

use common::SimMem;
use tessera_stage2::TableMemory;
use tessera_stage2::{
    El2Stage1, El2Stage1Config, GuestPhysAddr as Ipa, MapError, MemAttrs, PageTable, PhysAddr,
    Stage2, Stage2Config, VirtAddr, BLOCK_1G, BLOCK_2M, PAGE_SIZE,
};

fn s2(bits: u32) -> (SimMem, PageTable<Stage2>) {
    let mut mem = SimMem::new();
    let pt = PageTable::<Stage2>::new(&mut mem, &Stage2Config::new(bits)).unwrap();
    (mem, pt)
}

#[test]
fn concatenated_root_is_aligned_and_covers_all_tables() {
    let (mut mem, mut pt) = s2(42);
    assert_eq!(mem.tables, 8);
    assert_eq!(pt.root().0 % (8 * PAGE_SIZE), 0);
    // The last GiB of a 42-bit IPA space lies in the 8th root table.
    let top = (1u64 << 42) - BLOCK_1G;
    pt.map(
        &mut mem,
        Ipa(top),
        PhysAddr(BLOCK_1G),
        BLOCK_1G,
        MemAttrs::RAM_RW,
    )
    .unwrap();
    assert_eq!(mem.tables, 8, "a 1 GiB block needs no table");
    assert_eq!(mem.read(PhysAddr(pt.root().0 + 7 * PAGE_SIZE), 511) & 3, 1);
    let t = pt.translate(&mem, Ipa(top + 0x1234)).unwrap();
    assert_eq!(
        (t.pa, t.level, t.leaf_size()),
        (PhysAddr(BLOCK_1G + 0x1234), 1, BLOCK_1G)
    );
}

#[test]
fn block_sizes_follow_alignment() {
    let (mut mem, mut pt) = s2(40);
    // 1 GiB + 2 MiB + 4 KiB at a 1 GiB aligned address: one L1 block, one L2 block, one page.
    let size = BLOCK_1G + BLOCK_2M + PAGE_SIZE;
    pt.map(
        &mut mem,
        Ipa(BLOCK_1G),
        PhysAddr(2 * BLOCK_1G),
        size,
        MemAttrs::RAM_RWX,
    )
    .unwrap();
    assert_eq!(mem.tables, 2 + 2, "root (2 tables) + one L2 + one L3 table");
    assert_eq!(
        mem.valid_descriptors(),
        1 + 1 + 1 + 1 + 1,
        "L1 block, L2 table desc, L2 block, L3 table desc, page"
    );
    assert_eq!(pt.translate(&mem, Ipa(BLOCK_1G)).unwrap().level, 1);
    assert_eq!(pt.translate(&mem, Ipa(2 * BLOCK_1G)).unwrap().level, 2);
    assert_eq!(
        pt.translate(&mem, Ipa(2 * BLOCK_1G + BLOCK_2M))
            .unwrap()
            .level,
        3
    );
    assert_eq!(
        pt.translate(&mem, Ipa(2 * BLOCK_1G + BLOCK_2M + PAGE_SIZE)),
        None
    );
    // Same VA alignment but a PA only 2 MiB aligned: 2 MiB blocks only.
    let (mut mem, mut pt) = s2(40);
    pt.map(
        &mut mem,
        Ipa(BLOCK_1G),
        PhysAddr(BLOCK_2M),
        BLOCK_1G,
        MemAttrs::RAM_RW,
    )
    .unwrap();
    assert_eq!(pt.translate(&mem, Ipa(BLOCK_1G)).unwrap().level, 2);
    assert_eq!(mem.valid_descriptors(), 1 + 512);
}

#[test]
fn argument_errors() {
    let (mut mem, mut pt) = s2(40);
    let rw = MemAttrs::RAM_RW;
    assert_eq!(
        pt.map(&mut mem, Ipa(0x800), PhysAddr(0), PAGE_SIZE, rw),
        Err(MapError::Unaligned)
    );
    assert_eq!(
        pt.map(&mut mem, Ipa(0), PhysAddr(0x10), PAGE_SIZE, rw),
        Err(MapError::Unaligned)
    );
    assert_eq!(
        pt.map(&mut mem, Ipa(0), PhysAddr(0), 100, rw),
        Err(MapError::Unaligned)
    );
    assert_eq!(
        pt.map(&mut mem, Ipa(1 << 40), PhysAddr(0), PAGE_SIZE, rw),
        Err(MapError::OutOfRange)
    );
    assert_eq!(
        pt.map(
            &mut mem,
            Ipa((1 << 40) - PAGE_SIZE),
            PhysAddr(0),
            2 * PAGE_SIZE,
            rw
        ),
        Err(MapError::OutOfRange)
    );
    assert_eq!(
        pt.map(&mut mem, Ipa(!0xfff), PhysAddr(0), PAGE_SIZE, rw),
        Err(MapError::OutOfRange)
    );
    assert_eq!(
        pt.map(&mut mem, Ipa(0), PhysAddr(1 << 40), PAGE_SIZE, rw),
        Err(MapError::OutOfRange),
        "PS = 40 bits"
    );
    assert_eq!(pt.map(&mut mem, Ipa(0), PhysAddr(0), 0, rw), Ok(()));
    assert_eq!(pt.unmap(&mut mem, Ipa(0), 0), Ok(()));
    assert_eq!(pt.translate(&mem, Ipa(1 << 40)), None);
    assert_eq!(pt.translate(&mem, Ipa(u64::MAX)), None);
    assert_eq!(mem.valid_descriptors(), 0);
}

#[test]
fn unmap_never_splits_blocks() {
    let (mut mem, mut pt) = s2(40);
    let base = 0x4000_0000;
    pt.map(
        &mut mem,
        Ipa(base),
        PhysAddr(0x8000_0000),
        4 * BLOCK_2M,
        MemAttrs::RAM_RWX,
    )
    .unwrap();
    assert_eq!(
        pt.unmap(&mut mem, Ipa(base + PAGE_SIZE), PAGE_SIZE),
        Err(MapError::SplitsBlock(Ipa(base)))
    );
    assert_eq!(
        pt.unmap(&mut mem, Ipa(base + BLOCK_2M), BLOCK_2M + PAGE_SIZE),
        Err(MapError::SplitsBlock(Ipa(base + 2 * BLOCK_2M)))
    );
    assert_eq!(
        pt.unmap(&mut mem, Ipa(base), 5 * BLOCK_2M),
        Err(MapError::NotMapped(Ipa(base + 4 * BLOCK_2M)))
    );
    assert_eq!(
        pt.unmap(&mut mem, Ipa(base - PAGE_SIZE), PAGE_SIZE * 2),
        Err(MapError::NotMapped(Ipa(base - PAGE_SIZE)))
    );
    // Unmapping the middle two blocks exactly works, the rest stays.
    pt.unmap(&mut mem, Ipa(base + BLOCK_2M), 2 * BLOCK_2M)
        .unwrap();
    assert!(pt.translate(&mem, Ipa(base)).is_some());
    assert!(pt.translate(&mem, Ipa(base + BLOCK_2M)).is_none());
    assert!(pt.translate(&mem, Ipa(base + 3 * BLOCK_2M)).is_some());
    // The hole can be refilled with pages.
    pt.map(
        &mut mem,
        Ipa(base + BLOCK_2M),
        PhysAddr(0x1000),
        PAGE_SIZE,
        MemAttrs::DEVICE_RW,
    )
    .unwrap();
    let t = pt.translate(&mem, Ipa(base + BLOCK_2M)).unwrap();
    assert_eq!(
        (t.pa, t.attrs, t.level),
        (PhysAddr(0x1000), MemAttrs::DEVICE_RW, 3)
    );
}

#[test]
fn colored_style_page_by_page_mapping() {
    // A colored VM: contiguous IPAs, scattered frames, 4 KiB at a time.
    let (mut mem, mut pt) = s2(40);
    let ram = 0x4000_0000u64;
    for i in 0..1024u64 {
        let pa = 0x8000_0000 + (i * 7 % 1024) * 16 * PAGE_SIZE;
        pt.map(
            &mut mem,
            Ipa(ram + i * PAGE_SIZE),
            PhysAddr(pa),
            PAGE_SIZE,
            MemAttrs::RAM_RWX,
        )
        .unwrap();
    }
    assert_eq!(
        mem.tables,
        2 + 1 + 2,
        "root(2) + L2 + two L3 tables for 4 MiB"
    );
    for i in 0..1024u64 {
        let t = pt.translate(&mem, Ipa(ram + i * PAGE_SIZE + 8)).unwrap();
        assert_eq!(t.pa.0, 0x8000_0000 + (i * 7 % 1024) * 16 * PAGE_SIZE + 8);
    }
}

#[test]
fn el2_stage1_identity_map() {
    let mut mem = SimMem::new();
    let cfg = El2Stage1Config::new(39, 40);
    let mut pt = PageTable::<El2Stage1>::new(&mut mem, &cfg).unwrap();
    pt.map(
        &mut mem,
        VirtAddr(0x0900_0000),
        PhysAddr(0x0900_0000),
        PAGE_SIZE,
        MemAttrs::DEVICE_RW,
    )
    .unwrap();
    pt.map(
        &mut mem,
        VirtAddr(0x4000_0000),
        PhysAddr(0x4000_0000),
        BLOCK_1G,
        MemAttrs::RAM_RWX,
    )
    .unwrap();
    let t = pt.translate(&mem, VirtAddr(0x4123_4567)).unwrap();
    assert_eq!(
        (t.pa, t.level, t.attrs),
        (PhysAddr(0x4123_4567), 1, MemAttrs::RAM_RWX)
    );
    let wo = MemAttrs {
        read: false,
        ..MemAttrs::RAM_RW
    };
    assert_eq!(
        pt.map(&mut mem, VirtAddr(0), PhysAddr(0), PAGE_SIZE, wo),
        Err(MapError::InvalidAttributes)
    );
    assert_eq!(
        pt.map(
            &mut mem,
            VirtAddr(1 << 39),
            PhysAddr(0),
            PAGE_SIZE,
            MemAttrs::RAM_RW
        ),
        Err(MapError::OutOfRange)
    );
    let copy = PageTable::<El2Stage1>::from_root(pt.root(), &cfg);
    assert_eq!(
        copy.translate(&mem, VirtAddr(0x0900_0010)).unwrap().pa,
        PhysAddr(0x0900_0010)
    );
}

#[test]
fn root_allocation_failure() {
    let mut mem = SimMem::with_limit(1);
    assert_eq!(
        PageTable::<Stage2>::new(&mut mem, &Stage2Config::new(40)).map(|_| ()),
        Err(MapError::OutOfMemory)
    );
}
