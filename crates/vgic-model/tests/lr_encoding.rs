//! List-register encodings: hand-computed constants and round trips.

mod common;
use common::*;
use proptest::prelude::*;

fn entry(
    intid: u32,
    priority: u8,
    hw: Option<u32>,
    source_cpu: u8,
    group1: bool,
    eoi: bool,
) -> LrEntry {
    LrEntry {
        intid,
        priority,
        hw,
        source_cpu,
        group1,
        eoi,
    }
}

#[test]
fn v3_constants() {
    // vINTID 27, priority 0xA0 [55:48], Group 1 [60], pending [63:62] = 01.
    let e = entry(27, 0xA0, None, 0, true, false);
    assert_eq!(lr_v3_encode(&e, LrState::Pending), 0x50A0_0000_0000_001B);
    // HW [61], pINTID 40 [44:32], active (10).
    let e = entry(40, 0x80, Some(40), 0, true, false);
    assert_eq!(lr_v3_encode(&e, LrState::Active), 0xB080_0028_0000_0028);
    // EOI [41] without HW, Group 0, pending+active (11).
    let e = entry(5, 0, None, 0, false, true);
    assert_eq!(
        lr_v3_encode(&e, LrState::PendingActive),
        0xC000_0200_0000_0005
    );
    // Invalid is all-zero state bits; the EOI bit is not used with HW.
    let e = entry(1019, 0xF8, Some(0x1FFF), 0, false, true);
    assert_eq!(lr_v3_encode(&e, LrState::Invalid), 0x20F8_1FFF_0000_03FB);
    assert_eq!(
        lr_v3_decode(0xB080_0028_0000_0028),
        (entry(40, 0x80, Some(40), 0, true, false), LrState::Active)
    );
}

#[test]
fn v2_constants() {
    // SGI 3 from CPU 2 [12:10], priority 0xA0 → 0x14 in [27:23], Group 0, pending [29:28].
    let e = entry(3, 0xA0, None, 2, false, false);
    assert_eq!(lr_v2_encode(&e, LrState::Pending), 0x1A00_0803);
    // HW [31], PhysicalID 41 [19:10], Grp1 [30], priority 0xF8 → 31, active.
    let e = entry(40, 0xF8, Some(41), 0, true, false);
    assert_eq!(lr_v2_encode(&e, LrState::Active), 0xEF80_A428);
    // EOI [19] without HW; priority 0x0F keeps its top 5 bits (1).
    let e = entry(33, 0x0F, None, 0, false, true);
    assert_eq!(lr_v2_encode(&e, LrState::Pending), 0x1088_0021);
    // CPUID only for SGIs.
    let e = entry(33, 0, None, 5, false, false);
    assert_eq!(lr_v2_encode(&e, LrState::Pending), 0x1000_0021);
    assert_eq!(
        lr_v2_decode(0x1A00_0803),
        (entry(3, 0xA0, None, 2, false, false), LrState::Pending)
    );
    assert_eq!(
        lr_v2_decode(0xEF80_A428),
        (entry(40, 0xF8, Some(41), 0, true, false), LrState::Active)
    );
}

#[test]
fn state_bits() {
    for (s, b) in [
        (LrState::Invalid, 0),
        (LrState::Pending, 1),
        (LrState::Active, 2),
        (LrState::PendingActive, 3),
    ] {
        assert_eq!(s.bits(), b);
        assert_eq!(LrState::from_bits(b), s);
    }
}

fn state() -> impl Strategy<Value = LrState> {
    prop_oneof![
        Just(LrState::Invalid),
        Just(LrState::Pending),
        Just(LrState::Active),
        Just(LrState::PendingActive),
    ]
}

/// Entries a v3 LR can hold exactly: hw < 2^13; EOI only without HW; no source CPU.
fn v3_entry() -> impl Strategy<Value = LrEntry> {
    (
        any::<u32>(),
        any::<u8>(),
        prop::option::of(0u32..0x2000),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(intid, priority, hw, group1, eoi)| LrEntry {
            intid,
            priority,
            hw,
            source_cpu: 0,
            group1,
            eoi: eoi && hw.is_none(),
        })
}

/// Entries a v2 LR can hold exactly: 10-bit INTIDs, 5-bit priority, source CPU for SGIs only.
fn v2_entry() -> impl Strategy<Value = LrEntry> {
    (
        0u32..1020,
        0u8..32,
        prop::option::of(0u32..1020),
        0u8..8,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(intid, p, hw, src, group1, eoi)| LrEntry {
            intid,
            priority: p << 3,
            hw,
            source_cpu: if hw.is_none() && intid < 16 { src } else { 0 },
            group1,
            eoi: eoi && hw.is_none(),
        })
}

proptest! {
    #[test]
    fn v3_round_trip(e in v3_entry(), s in state()) {
        prop_assert_eq!(lr_v3_decode(lr_v3_encode(&e, s)), (e, s));
    }

    #[test]
    fn v3_decode_encode(v in any::<u64>()) {
        // Every field the decoder reports re-encodes to the same bits (RES0 bits aside).
        let (e, s) = lr_v3_decode(v);
        let hw = v & (1 << 61) != 0;
        let used = 0xFFFF_0000_FFFF_FFFFu64 | if hw { 0x1FFF << 32 } else { 1 << 41 };
        let used = used & !0x0F00_0000_0000_0000 | 0x00FF_0000_0000_0000;
        prop_assert_eq!(lr_v3_encode(&e, s), v & used);
    }

    #[test]
    fn v2_round_trip(e in v2_entry(), s in state()) {
        prop_assert_eq!(lr_v2_decode(lr_v2_encode(&e, s)), (e, s));
    }

    #[test]
    fn v2_decode_encode(v in any::<u32>()) {
        let (e, s) = lr_v2_decode(v);
        let hw = v & (1 << 31) != 0;
        let sgi = v & 0x3FF < 16;
        let mut used = 0xFF80_03FFu32; // HW, Grp1, state, priority, VirtualID
        used |= if hw { 0x3FF << 10 } else { (1 << 19) | if sgi { 0x7 << 10 } else { 0 } };
        prop_assert_eq!(lr_v2_encode(&e, s), v & used);
    }
}
