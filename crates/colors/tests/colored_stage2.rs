//! Property test of colored stage-2 building: RAM from single frames of a VM's colors, mapped
//! with `map_frames` at contiguous IPAs, tables from frames of the same colors. A walk of the
//! result must give exactly the requested layout.

use std::collections::{BTreeSet, HashMap};

use proptest::prelude::*;
use tessera_colors::{
    map_frames, CacheGeometry, ColorMask, FrameAllocator, MapFramesError, PhysAddr, FRAME_SIZE,
};
use tessera_stage2::{
    GuestPhysAddr, MapError, MemAttrs, PageTable, Stage2, Stage2Config, TableMemory, WalkItem,
};

const WORDS: usize = 128; // 8192 frames = 32 MiB
const RAM_BASE: u64 = 0x4000_0000;

/// Table memory whose tables come from the same allocator as the RAM, in the VM's colors, and
/// which records every frame handed out (tables and RAM) to catch one given twice.
struct ColoredTables {
    frames: Box<FrameAllocator<WORDS>>,
    mask: ColorMask,
    geo: CacheGeometry,
    desc: HashMap<(u64, usize), u64>,
    tables: BTreeSet<u64>,
    handed_out: BTreeSet<u64>,
}

impl ColoredTables {
    fn take(&mut self, pa: PhysAddr, count: usize) {
        for k in 0..count as u64 {
            assert!(
                self.handed_out.insert(pa.0 + k * FRAME_SIZE),
                "frame {:#x} handed out twice",
                pa.0
            );
        }
    }
}

impl TableMemory for ColoredTables {
    fn alloc_table(&mut self, count_4k: usize, align: usize) -> Option<PhysAddr> {
        let pa = if count_4k == 1 {
            self.frames.alloc_colored(self.mask, &self.geo)?
        } else {
            self.frames
                .alloc_contiguous_colored(count_4k, align as u64, self.mask, &self.geo)?
        };
        assert!(pa.0.is_multiple_of(align as u64));
        self.take(pa, count_4k);
        for k in 0..count_4k as u64 {
            self.tables.insert(pa.0 + k * FRAME_SIZE);
        }
        Some(pa)
    }
    fn read(&self, table: PhysAddr, index: usize) -> u64 {
        assert!(self.tables.contains(&table.0), "not a table: {table:?}");
        self.desc
            .get(&(table.0, index))
            .copied()
            .unwrap_or(u64::MAX)
    }
    fn write(&mut self, table: PhysAddr, index: usize, d: u64) {
        assert!(self.tables.contains(&table.0), "not a table: {table:?}");
        self.desc.insert((table.0, index), d);
    }
}

fn geometry(colors: usize) -> CacheGeometry {
    CacheGeometry {
        size: colors as u64 * FRAME_SIZE * 16,
        ways: 16,
        line: 64,
    }
}

#[allow(clippy::too_many_arguments)]
fn build_and_walk(
    colors: usize,
    mask: u64,
    bits: u32,
    ipa_pfn: u64,
    pages: u64,
    taken: &[(f64, u64)],
) -> Result<(), TestCaseError> {
    let geo = geometry(colors);
    let mask = ColorMask(mask & ColorMask::all(colors).bits());
    prop_assume!(!mask.is_empty());
    let mut frames = Box::new(FrameAllocator::<WORDS>::EMPTY);
    frames
        .init(PhysAddr(RAM_BASE), WORDS as u64 * 64 * FRAME_SIZE)
        .unwrap();
    // Memory already used by others (the hypervisor, uncolored VMs).
    for &(at, len) in taken {
        let pa = RAM_BASE + (at * (WORDS * 64) as f64) as u64 * FRAME_SIZE;
        frames.reserve(PhysAddr(pa), len * FRAME_SIZE).unwrap();
    }
    let free_colored = frames.free_frames_colored(mask, &geo) as u64;
    let cfg = Stage2Config::new(bits);
    let mut mem = ColoredTables {
        frames,
        mask,
        geo,
        desc: HashMap::new(),
        tables: BTreeSet::new(),
        handed_out: BTreeSet::new(),
    };
    let mut s2 = match PageTable::<Stage2>::new(&mut mem, &cfg) {
        Ok(t) => t,
        Err(e) => {
            // Only a concatenated root can fail: no aligned run of consecutive colors.
            prop_assert!(cfg.root_tables() > 1, "root failed: {:?}", e);
            prop_assert_eq!(e, MapError::OutOfMemory);
            return Ok(());
        }
    };
    let ipa = ipa_pfn * FRAME_SIZE;
    let mut chosen = Vec::new();
    let r = map_frames(
        &mut s2,
        &mut mem,
        GuestPhysAddr(ipa),
        pages,
        MemAttrs::RAM_RWX,
        |m| {
            let pa = m.frames.alloc_colored(m.mask, &m.geo)?;
            m.take(pa, 1);
            chosen.push(pa.0);
            Some(pa)
        },
    );
    let tables_used = mem.tables.len() as u64;
    match r {
        Ok(()) => prop_assert!(pages + tables_used <= free_colored),
        Err(MapFramesError::OutOfFrames { mapped }) => {
            // Exhaustion is reported only when the colors truly ran out.
            prop_assert_eq!(mem.frames.free_frames_colored(mask, &geo), 0);
            prop_assert_eq!(mapped, chosen.len() as u64);
            prop_assert!(mapped < pages);
            return Ok(());
        }
        Err(MapFramesError::Map(e)) => {
            prop_assert_eq!(e, MapError::OutOfMemory);
            prop_assert_eq!(mem.frames.free_frames_colored(mask, &geo), 0);
            return Ok(());
        }
    }
    prop_assert_eq!(chosen.len() as u64, pages);

    // The walk: every IPA page maps to the frame chosen for it, by a 4 KiB page, with the
    // requested attributes; every RAM and table page is of a color in the mask.
    let mut leaves = 0u64;
    let mut tables = BTreeSet::new();
    s2.walk(&mem, |item| {
        match item {
            WalkItem::Table { pa, .. } => {
                prop_assert!(
                    mask.contains(geo.color_of(pa)),
                    "table {:#x} color {}",
                    pa.0,
                    geo.color_of(pa)
                );
                tables.insert(pa.0);
            }
            WalkItem::Leaf {
                va,
                pa,
                size,
                attrs,
                level,
            } => {
                prop_assert_eq!((level, size), (3, FRAME_SIZE));
                prop_assert_eq!(attrs, Some(MemAttrs::RAM_RWX));
                prop_assert!(va.0 >= ipa && va.0 < ipa + pages * FRAME_SIZE);
                let k = ((va.0 - ipa) / FRAME_SIZE) as usize;
                prop_assert_eq!(pa.0, chosen[k], "IPA {:#x}", va.0);
                prop_assert!(mask.contains(geo.color_of(pa)));
                leaves += 1;
            }
        }
        Ok(())
    })?;
    prop_assert_eq!(leaves, pages);
    prop_assert_eq!(
        &tables,
        &mem.tables,
        "walk saw every table, and only tables"
    );
    // No frame serves twice (as RAM and table, or twice as RAM): `take` asserts it; and the
    // allocator counted every one.
    prop_assert_eq!(
        mem.frames.free_frames_colored(mask, &geo) as u64,
        free_colored - pages - tables.len() as u64
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn colored_stage2_walk_is_the_requested_layout(
        colors in prop::sample::select(&[8usize, 16, 32, 64][..]),
        mask in prop_oneof![3 => any::<u64>(), 1 => Just(u64::MAX)],
        bits in prop::sample::select(&[32u32, 36, 39, 40, 42, 44, 48][..]),
        ipa_pfn in prop_oneof![Just(0x4_0000u64), 0u64..(0x10_0000 - 8192)],
        pages in prop_oneof![1u64..64, 500u64..3000, Just(8192u64)],
        taken in prop::collection::vec((0.0f64..1.0, 1u64..600), 0..4),
    ) {
        build_and_walk(colors, mask, bits, ipa_pfn, pages, &taken)?;
    }
}

#[test]
fn concatenated_root_needs_consecutive_colors() {
    // 40-bit IPA: the root is 2 tables, 8 KiB aligned, so colors (2k, 2k+1).
    let geo = geometry(16);
    let mut frames = Box::new(FrameAllocator::<WORDS>::EMPTY);
    frames.init(PhysAddr(RAM_BASE), 1 << 24).unwrap();
    let lone = ColorMask::EMPTY.with(3).with(5);
    assert_eq!(frames.alloc_contiguous_colored(2, 8192, lone, &geo), None);
    let pair = ColorMask::EMPTY.with(5).with(6).with(7);
    let pa = frames
        .alloc_contiguous_colored(2, 8192, pair, &geo)
        .unwrap();
    assert_eq!((geo.color_of(pa), geo.color_of(pa.add(FRAME_SIZE))), (6, 7));
    assert!(pa.0.is_multiple_of(8192));
    // 5,6 is consecutive but not 8 KiB aligned: only with 4 KiB alignment.
    let odd = ColorMask::EMPTY.with(5).with(6);
    assert_eq!(frames.alloc_contiguous_colored(2, 8192, odd, &geo), None);
    let pa = frames.alloc_contiguous_colored(2, 4096, odd, &geo).unwrap();
    assert_eq!(geo.color_of(pa), 5);
    assert_eq!(frames.alloc_contiguous_colored(0, 4096, odd, &geo), None);
    assert_eq!(frames.alloc_contiguous_colored(1, 3, odd, &geo), None);
}

#[test]
fn all_colors_still_mapped_by_pages() {
    // Every color: consecutive frames, IPA and PA congruent modulo 2 MiB, so `map` would use
    // blocks; colored memory is pages whatever its frames.
    let geo = geometry(16);
    let mut frames = Box::new(FrameAllocator::<WORDS>::EMPTY);
    frames.init(PhysAddr(RAM_BASE), 1 << 25).unwrap();
    let mut mem = ColoredTables {
        frames,
        mask: ColorMask::all(16),
        geo,
        desc: HashMap::new(),
        tables: BTreeSet::new(),
        handed_out: BTreeSet::new(),
    };
    let mut s2 = PageTable::<Stage2>::new(&mut mem, &Stage2Config::new(48)).unwrap();
    // The root took frame 0; RAM frames follow from RAM_BASE + 4 KiB.
    let ipa = 0x8000_0000 + FRAME_SIZE;
    map_frames(
        &mut s2,
        &mut mem,
        GuestPhysAddr(ipa),
        2048,
        MemAttrs::RAM_RWX,
        |m| m.frames.alloc_colored(m.mask, &m.geo),
    )
    .unwrap();
    let t = s2.translate(&mem, GuestPhysAddr(0x8020_0000)).unwrap();
    assert_eq!(t.pa, PhysAddr(RAM_BASE + 0x20_0000), "frames in order");
    let mut levels = BTreeSet::new();
    s2.walk(&mem, |i| {
        if let WalkItem::Leaf { level, .. } = i {
            levels.insert(level);
        }
        Ok::<(), ()>(())
    })
    .unwrap();
    assert_eq!(levels, BTreeSet::from([3]));
}
