//! Page-color arithmetic of the build-time coloring checks (pure functions, no config types).
//!
//! A 4 KiB page at physical address `pa` has color `(pa / 4096) mod n`, `n` being the LLC's
//! color count (`size / ways / 4096`): the cache-set index bits above the page offset.
//!
//! The supply check ([`crate::load`]) models how the boot-time allocator spends pages:
//!
//! * a colored user (VM, channel, hypervisor) of `p` pages over colors `S` takes them round
//!   robin over `S` ([`spread`]): `p / |S|` pages of each color, the first `p mod |S|` colors
//!   of `S` one more;
//! * uncolored demand is contiguous RAM, which holds every color evenly: `⌈p / n⌉` of each;
//! * the supply of a color is its pages in RAM outside the hypervisor region, the payload
//!   bundle and explicit `phys` placements ([`pages_of_color`] over [`subtract`]).
//!
//! A colored VM's stage-2 tables come from its own colors too: [`stage2_table_bound`] bounds
//! how many tables mapping its windows 4 KiB at a time can take.

use std::vec::Vec;

use crate::PAGE_SIZE;

/// Pages `p` in `[first, end)` (page numbers) with `p mod n == c` (`n > 0`, `c < n`).
pub fn pages_of_color_in(first: u64, end: u64, n: u64, c: u64) -> u64 {
    // Pages below x of color c: x / n full cycles, plus one if the partial cycle reaches c.
    let below = |x: u64| x / n + u64::from(x % n > c);
    if end <= first || n == 0 || c >= n {
        return 0;
    }
    below(end) - below(first)
}

/// Pages of color `c` (of `n`) in the byte ranges `ranges` (`(base, size)`, page-aligned,
/// disjoint).
pub fn pages_of_color(ranges: &[(u64, u64)], n: u64, c: u64) -> u64 {
    ranges
        .iter()
        .map(|&(b, s)| {
            let first = b / PAGE_SIZE;
            pages_of_color_in(first, first.saturating_add(s / PAGE_SIZE), n, c)
        })
        .sum()
}

/// `whole` minus every range of `holes` (byte ranges `(base, size)`; holes may overlap each
/// other and stick out of `whole`): the disjoint pieces left, ascending.
pub fn subtract(whole: (u64, u64), holes: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let end = whole.0.saturating_add(whole.1);
    let mut hs: Vec<(u64, u64)> = holes
        .iter()
        .filter(|h| h.1 != 0)
        .map(|&(b, s)| (b, b.saturating_add(s)))
        .collect();
    hs.sort_unstable();
    let mut out = Vec::new();
    let mut at = whole.0;
    for (hb, he) in hs {
        if he <= at {
            continue;
        }
        if hb >= end {
            break;
        }
        if hb > at {
            out.push((at, hb - at));
        }
        at = at.max(he);
    }
    if at < end {
        out.push((at, end - at));
    }
    out
}

/// `pages` spread round robin over `colors` (ascending, distinct): per color, its share.
/// The shares sum to `pages`; they differ by at most one, the larger ones first.
pub fn spread(pages: u64, colors: &[u32]) -> Vec<(u32, u64)> {
    let k = colors.len() as u64;
    if k == 0 {
        return Vec::new();
    }
    let (each, extra) = (pages / k, pages % k);
    colors
        .iter()
        .enumerate()
        .map(|(i, &c)| (c, each + u64::from((i as u64) < extra)))
        .collect()
}

/// Most root tables a stage 2 may concatenate (Arm ARM: up to 16 at the start level).
pub const MAX_ROOT_TABLES: u64 = 16;

/// An upper bound of the translation-table pages a stage 2 (4 KiB granule) needs to map the
/// guest-physical `windows` (`(ipa, size)`) 4 KiB at a time: one last-level table per 2 MiB
/// block touched, one level-2 table per 1 GiB, one level-1 table per 512 GiB, plus
/// [`MAX_ROOT_TABLES`] root tables. Blocks shared by several windows count once.
pub fn stage2_table_bound(windows: &[(u64, u64)]) -> u64 {
    let mut total = MAX_ROOT_TABLES;
    for shift in [21u32, 30, 39] {
        let mut spans: Vec<(u64, u64)> = windows
            .iter()
            .filter(|w| w.1 != 0)
            .map(|&(b, s)| (b >> shift, (b.saturating_add(s) - 1) >> shift))
            .collect();
        spans.sort_unstable();
        let mut count = 0u64;
        let mut last: Option<u64> = None;
        for (a, b) in spans {
            let from = match last {
                Some(l) if l >= b => continue,
                Some(l) if l >= a => l + 1,
                _ => a,
            };
            count = count.saturating_add(b - from + 1);
            last = Some(b);
        }
        total = total.saturating_add(count);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec;

    #[test]
    fn color_counts() {
        // Pages 0..10, 4 colors: colors 0, 1 have 3 (0,4,8 / 1,5,9), colors 2, 3 have 2.
        let got: Vec<u64> = (0..4).map(|c| pages_of_color_in(0, 10, 4, c)).collect();
        assert_eq!(got, vec![3, 3, 2, 2]);
        assert_eq!(pages_of_color_in(5, 5, 4, 1), 0);
        assert_eq!(pages_of_color_in(5, 6, 4, 1), 1);
        assert_eq!(pages_of_color(&[(0x4000_0000, 0x8000_0000)], 32, 7), 16384);
    }

    #[test]
    fn subtract_pieces() {
        let got = subtract(
            (0x1000, 0x9000),
            &[
                (0x3000, 0x1000),
                (0x0, 0x2000),
                (0x3800, 0x1000),
                (0x9000, 0x5000),
            ],
        );
        assert_eq!(got, vec![(0x2000, 0x1000), (0x4800, 0x4800)]);
        assert_eq!(subtract((0, 0x1000), &[(0, 0x1000)]), vec![]);
    }

    #[test]
    fn spread_round_robin() {
        assert_eq!(spread(10, &[1, 4, 6]), vec![(1, 4), (4, 3), (6, 3)]);
        assert_eq!(spread(2, &[0, 1, 2]), vec![(0, 1), (1, 1), (2, 0)]);
        assert!(spread(5, &[]).is_empty());
    }

    #[test]
    fn table_bound_counts_blocks_once() {
        // 4 MiB at 1 GiB: two L3 tables, one L2, one L1, plus the roots.
        assert_eq!(
            stage2_table_bound(&[(0x4000_0000, 0x40_0000)]),
            MAX_ROOT_TABLES + 2 + 1 + 1
        );
        // A second window inside the same 2 MiB block adds nothing.
        assert_eq!(
            stage2_table_bound(&[(0x4000_0000, 0x40_0000), (0x4000_1000, 0x1000)]),
            MAX_ROOT_TABLES + 4
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The closed form agrees with counting page by page, and the colors partition the
        /// range.
        #[test]
        fn color_count_matches_brute_force(first in 0u64..5000, len in 0u64..3000, n in 1u64..70) {
            let mut total = 0;
            for c in 0..n {
                let brute = (first..first + len).filter(|p| p % n == c).count() as u64;
                let got = pages_of_color_in(first, first + len, n, c);
                prop_assert_eq!(got, brute);
                total += got;
            }
            prop_assert_eq!(total, len);
        }

        /// What `subtract` leaves is exactly the pages of `whole` in no hole.
        #[test]
        fn subtract_matches_brute_force(
            w in (0u64..64, 0u64..64),
            holes in prop::collection::vec((0u64..80, 0u64..20), 0..6),
        ) {
            let page = |x: u64| x * PAGE_SIZE;
            let whole = (page(w.0), page(w.1));
            let hs: Vec<(u64, u64)> = holes.iter().map(|&(b, s)| (page(b), page(s))).collect();
            let got = subtract(whole, &hs);
            let inside = |p: u64, r: &(u64, u64)| p >= r.0 && p < r.0 + r.1;
            for p in w.0..w.0 + w.1 {
                let want = !hs.iter().any(|h| inside(page(p), h));
                prop_assert_eq!(got.iter().any(|r| inside(page(p), r)), want);
            }
            let pieces: u64 = got.iter().map(|r| r.1).sum();
            prop_assert!(pieces <= whole.1);
            for win in got.windows(2) {
                prop_assert!(win[0].0 + win[0].1 < win[1].0, "pieces not disjoint and apart");
            }
            // Supply per color over the pieces sums to the pieces' pages.
            let n = 7;
            let per: u64 = (0..n).map(|c| pages_of_color(&got, n, c)).sum();
            prop_assert_eq!(per, pieces / PAGE_SIZE);
        }

        /// Round robin: shares sum to the demand and differ by at most one.
        #[test]
        fn spread_is_even(pages in 0u64..100_000, k in 1usize..40) {
            let colors: Vec<u32> = (0..k as u32).map(|c| c * 2).collect();
            let s = spread(pages, &colors);
            prop_assert_eq!(s.iter().map(|x| x.1).sum::<u64>(), pages);
            let (lo, hi) = (s.iter().map(|x| x.1).min().unwrap(), s.iter().map(|x| x.1).max().unwrap());
            prop_assert!(hi - lo <= 1);
            prop_assert_eq!(lo, pages / k as u64);
        }
    }
}
