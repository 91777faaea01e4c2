//! A simulated table memory and region generators shared by the property tests.
#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};

use proptest::prelude::*;
use tessera_stage2::{
    level_size, InputAddress, MemAttrs, MemKind, PageTable, PhysAddr, TableMemory,
    TranslationFormat, BLOCK_1G, BLOCK_2M, PAGE_SIZE,
};

/// What an unwritten descriptor reads as: a valid table descriptor pointing nowhere, so a
/// table the page-table code forgot to zero makes the walk hit an unallocated table (panic).
pub const GARBAGE: u64 = 0xffff_ffff_ffff_ffff;
const TABLE_BASE: u64 = 0x10_0000_0000;

/// Table memory over a hash map; counts tables and can run out after `limit` of them.
#[derive(Clone, Debug, PartialEq)]
pub struct SimMem {
    pub entries: HashMap<(u64, usize), u64>,
    next: u64,
    pub tables: usize,
    pub limit: usize,
}

impl SimMem {
    pub fn new() -> Self {
        Self::with_limit(usize::MAX)
    }
    pub fn with_limit(limit: usize) -> Self {
        Self {
            entries: HashMap::new(),
            next: TABLE_BASE,
            tables: 0,
            limit,
        }
    }
    /// Number of valid descriptors in all tables.
    pub fn valid_descriptors(&self) -> usize {
        self.entries.values().filter(|d| **d & 1 == 1).count()
    }
}

impl TableMemory for SimMem {
    fn alloc_table(&mut self, count_4k: usize, align: usize) -> Option<PhysAddr> {
        assert!(align.is_power_of_two() && align >= 4096 && count_4k >= 1);
        if self.tables + count_4k > self.limit {
            return None;
        }
        let a = (self.next + align as u64 - 1) & !(align as u64 - 1);
        self.next = a + count_4k as u64 * PAGE_SIZE;
        self.tables += count_4k;
        Some(PhysAddr(a))
    }
    fn read(&self, table: PhysAddr, index: usize) -> u64 {
        assert!(index < 512, "index {index}");
        assert!(
            table.0 >= TABLE_BASE && table.0 < self.next && table.0.is_multiple_of(PAGE_SIZE),
            "read from a table never allocated: {table:?}"
        );
        self.entries
            .get(&(table.0, index))
            .copied()
            .unwrap_or(GARBAGE)
    }
    fn write(&mut self, table: PhysAddr, index: usize, desc: u64) {
        assert!(index < 512, "index {index}");
        assert!(table.0 >= TABLE_BASE && table.0 < self.next && table.0.is_multiple_of(PAGE_SIZE));
        self.entries.insert((table.0, index), desc);
    }
}

/// One mapping request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Region {
    pub va: u64,
    pub pa: u64,
    pub size: u64,
    pub attrs: MemAttrs,
}

impl Region {
    pub fn end(&self) -> u64 {
        self.va + self.size
    }
    pub fn contains(&self, va: u64) -> bool {
        va >= self.va && va < self.end()
    }
}

pub fn attrs(need_read: bool) -> impl Strategy<Value = MemAttrs> {
    (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        move |(device, read, write, exec)| MemAttrs {
            kind: if device {
                MemKind::Device
            } else {
                MemKind::Normal
            },
            read: read || need_read,
            write,
            exec,
        },
    )
}

const ALIGNS: [u64; 3] = [PAGE_SIZE, BLOCK_2M, BLOCK_1G];

/// Size of a region, biased towards sizes that make blocks.
fn size() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => (1u64..40).prop_map(|n| n * PAGE_SIZE),
        3 => (1u64..4, 0u64..3).prop_map(|(m, p)| m * BLOCK_2M + p * PAGE_SIZE),
        1 => Just(BLOCK_1G),
        1 => (0u64..3).prop_map(|p| BLOCK_1G + BLOCK_2M + p * PAGE_SIZE),
    ]
}

/// Non-overlapping regions below `input_size`, sorted by input address.
pub fn regions(input_size: u64, need_read: bool) -> impl Strategy<Value = Vec<Region>> {
    let one = (
        0usize..3,
        0u64..600,
        size(),
        0usize..3,
        0u64..256,
        attrs(need_read),
    );
    prop::collection::vec(one, 1..7).prop_map(move |items| {
        let mut out = Vec::new();
        let mut cursor = 0u64;
        for (va_align, gap, size, pa_align, pa_k, attrs) in items {
            let va_align = ALIGNS[va_align];
            let va = (cursor + gap * PAGE_SIZE).next_multiple_of(va_align);
            if va + size > input_size {
                break;
            }
            let pa_align = ALIGNS[pa_align];
            // Below 2^35 + region size: inside the smallest output size tested (36 bits).
            let pa = (pa_k * pa_align) % (1 << 35) + va % pa_align;
            out.push(Region {
                va,
                pa,
                size,
                attrs,
            });
            cursor = va + size;
        }
        out
    })
}

/// Offsets of the pages of a region to check: all of a small one; the ends, both sides of
/// every 2 MiB boundary and a stride of a large one.
pub fn sample_offsets(size: u64) -> Vec<u64> {
    let pages = size / PAGE_SIZE;
    if pages <= 64 {
        return (0..pages).map(|p| p * PAGE_SIZE).collect();
    }
    let mut s = BTreeSet::new();
    s.insert(0);
    s.insert(size - PAGE_SIZE);
    let mut b = BLOCK_2M;
    while b < size {
        s.insert(b);
        s.insert(b - PAGE_SIZE);
        b += BLOCK_2M;
    }
    let stride = (pages / 61).max(1) * PAGE_SIZE + PAGE_SIZE;
    let mut o = 0;
    while o < size {
        s.insert(o);
        o += stride;
    }
    s.into_iter().collect()
}

/// The leaf level the greedy "largest aligned block" rule gives page `va` of region `r` in a
/// fresh tree whose start level is `start`.
pub fn expected_level(r: &Region, va: u64, start: u8) -> u8 {
    for level in [1u8, 2] {
        let size = level_size(level);
        let base = va & !(size - 1);
        if level >= start.max(1)
            && base >= r.va
            && base + size <= r.end()
            && (r.va.wrapping_sub(r.pa)).is_multiple_of(size)
        {
            return level;
        }
    }
    3
}

/// The number of tables a fresh tree needs for `regions` (root tables included).
pub fn expected_tables(regions: &[Region], start: u8, root_tables: usize) -> usize {
    let mut sets: [BTreeSet<u64>; 4] = Default::default();
    for r in regions {
        let mut va = r.va;
        while va < r.end() {
            let level = expected_level(r, va, start);
            for l in start + 1..=level {
                sets[l as usize].insert(va & !(level_size(l - 1) - 1));
            }
            va += level_size(level);
        }
    }
    root_tables + sets.iter().map(BTreeSet::len).sum::<usize>()
}

/// Maps every region (all must succeed).
pub fn map_all<F: TranslationFormat>(pt: &mut PageTable<F>, mem: &mut SimMem, regions: &[Region])
where
    F::Input: InputAddress,
{
    for r in regions {
        pt.map(
            mem,
            F::Input::from_u64(r.va),
            PhysAddr(r.pa),
            r.size,
            r.attrs,
        )
        .unwrap_or_else(|e| panic!("map {r:x?}: {e:?}"));
    }
}

/// Checks sampled pages of every region translate to the right PA and attributes, and (if
/// `check_level`) the leaf level the greedy rule expects.
pub fn check_mapped<F: TranslationFormat>(
    pt: &PageTable<F>,
    mem: &SimMem,
    regions: &[Region],
    check_level: bool,
) -> Result<(), TestCaseError> {
    let start = pt.layout().start_level;
    for r in regions {
        for off in sample_offsets(r.size) {
            for sub in [0, 0xff8] {
                let t = pt.translate(mem, F::Input::from_u64(r.va + off + sub));
                let t =
                    t.ok_or_else(|| TestCaseError::fail(format!("{r:x?} +{off:#x} unmapped")))?;
                prop_assert_eq!(t.pa, PhysAddr(r.pa + off + sub));
                prop_assert_eq!(t.attrs, r.attrs);
                if check_level {
                    prop_assert_eq!(
                        t.level,
                        expected_level(r, r.va + off, start),
                        "{:x?} +{:#x}",
                        r,
                        off
                    );
                }
            }
        }
    }
    Ok(())
}

/// Checks sampled pages of every region are unmapped.
pub fn check_unmapped<F: TranslationFormat>(
    pt: &PageTable<F>,
    mem: &SimMem,
    regions: &[Region],
) -> Result<(), TestCaseError> {
    for r in regions {
        for off in sample_offsets(r.size) {
            prop_assert_eq!(pt.translate(mem, F::Input::from_u64(r.va + off)), None);
        }
    }
    Ok(())
}
