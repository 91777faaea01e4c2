use proptest::prelude::*;

use super::*;

const AT: u64 = 0xb000_0000;

fn sample() -> (Vec<u8>, Digest256) {
    let mut b = Builder::new();
    b.push(0, Kind::Image, &[1, 2, 3, 4, 5]);
    b.push(0, Kind::Dtb, &[0xd0; 100]);
    b.push(1, Kind::Image, &vec![7u8; 5000]);
    b.push(1, Kind::Initrd, &[]);
    let built = b.finish(AT);
    (built.bytes, built.identity)
}

#[test]
fn round_trip() {
    let (bytes, id) = sample();
    assert_eq!(bytes.len() % PAYLOAD_ALIGN as usize, 0);
    let b = Bundle::open(&bytes, AT, &id).unwrap();
    assert_eq!(b.len(), 4);
    assert_eq!(b.total_size(), bytes.len() as u64);
    assert_eq!(b.payload(0).unwrap(), &[1, 2, 3, 4, 5]);
    assert_eq!(b.payload(1).unwrap(), &[0xd0; 100]);
    assert_eq!(b.payload(2).unwrap(), &vec![7u8; 5000][..]);
    assert_eq!(b.payload(3).unwrap(), &[] as &[u8]);
    assert_eq!(b.find(1, Kind::Image), Some(2));
    assert_eq!(b.find(1, Kind::Dtb), None);
    assert_eq!(b.find(0, Kind::Dtb), Some(1));
    assert!(b.entry(4).is_none());
    for i in 0..4 {
        assert_eq!(b.entry(i).unwrap().offset % PAYLOAD_ALIGN, 0);
    }
}

#[test]
fn trailing_memory_is_ignored() {
    // The hypervisor hands the reader its whole reserved region.
    let (mut bytes, id) = sample();
    let n = bytes.len();
    bytes.extend_from_slice(&[0xff; 8192]);
    let b = Bundle::open(&bytes, AT, &id).unwrap();
    assert_eq!(b.total_size(), n as u64);
}

#[test]
fn refusals() {
    let (bytes, id) = sample();
    assert_eq!(
        Bundle::parse(&[0u8; 4096], AT).unwrap_err(),
        Error::BadMagic([0; 8])
    );
    assert_eq!(
        Bundle::parse(&bytes[..10], AT).unwrap_err(),
        Error::Truncated
    );
    assert!(matches!(
        Bundle::parse(&bytes[..bytes.len() - 1], AT).unwrap_err(),
        Error::BadTotalSize { .. }
    ));
    assert_eq!(
        Bundle::parse(&bytes, AT + 4096).unwrap_err(),
        Error::WrongAddress {
            header: AT,
            found_at: AT + 4096
        }
    );
    let mut other = id;
    other[0] ^= 1;
    assert_eq!(
        Bundle::open(&bytes, AT, &other).unwrap_err(),
        Error::OtherBuild
    );
    // A payload byte changed: its digest says so.
    let b = Bundle::parse(&bytes, AT).unwrap();
    let off = b.entry(2).unwrap().offset as usize;
    let mut bad = bytes.clone();
    bad[off + 4999] ^= 0x80;
    assert_eq!(
        Bundle::open(&bad, AT, &id).unwrap_err(),
        Error::DigestMismatch { index: 2 }
    );
    let mut v2 = bytes.clone();
    v2[8] = 2;
    assert_eq!(
        Bundle::parse(&v2, AT).unwrap_err(),
        Error::UnsupportedVersion(2)
    );
    // Messages exist for every refusal (no panics formatting them).
    for e in [
        Error::Truncated,
        Error::BadMagic([1; 8]),
        Error::Corrupt,
        Error::OtherBuild,
        Error::EntryOutOfBounds { index: 3 },
    ] {
        assert!(!format!("{e}").is_empty());
    }
}

#[test]
fn forged_table_with_a_fresh_identity_is_still_bounded() {
    // An attacker who rewrites an entry and recomputes the identity gets past `parse`'s
    // identity check, but not its bounds checks, nor `open`'s expected identity.
    let (mut bytes, id) = sample();
    let e = HEADER_SIZE + 2 * ENTRY_SIZE;
    bytes[e + 16..e + 24].copy_from_slice(&u64::MAX.to_le_bytes());
    let table_end = HEADER_SIZE + 4 * ENTRY_SIZE;
    let ident = identity_of(&bytes[..32], &bytes[HEADER_SIZE..table_end]);
    bytes[32..64].copy_from_slice(&ident);
    assert_eq!(
        Bundle::parse(&bytes, AT).unwrap_err(),
        Error::EntryOutOfBounds { index: 2 }
    );
    assert!(Bundle::open(&bytes, AT, &id).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any payloads round-trip, each at an aligned offset, in order.
    #[test]
    fn any_payloads_round_trip(items in prop::collection::vec(
        (0u16..8, 0u8..3, prop::collection::vec(any::<u8>(), 0..9000)), 0..12)) {
        let mut b = Builder::new();
        let kinds = [Kind::Image, Kind::Dtb, Kind::Initrd];
        for (vm, k, bytes) in &items {
            b.push(*vm, kinds[*k as usize], bytes);
        }
        let expect_total = b.total_size();
        let built = b.finish(AT);
        prop_assert_eq!(built.bytes.len() as u64, expect_total);
        let bundle = Bundle::open(&built.bytes, AT, &built.identity).unwrap();
        prop_assert_eq!(bundle.len(), items.len());
        for (i, (vm, k, bytes)) in items.iter().enumerate() {
            let e = bundle.entry(i).unwrap();
            prop_assert_eq!(e.vm, *vm);
            prop_assert_eq!(e.kind, kinds[*k as usize]);
            prop_assert_eq!(bundle.payload(i).unwrap(), &bytes[..]);
        }
    }

    /// Changing any byte of the header or the entry table is caught by `open`.
    #[test]
    fn header_and_table_changes_are_caught(pos in 0usize..(HEADER_SIZE + 4 * ENTRY_SIZE), x in 1u8..=255) {
        let (mut bytes, id) = sample();
        bytes[pos] ^= x;
        prop_assert!(Bundle::open(&bytes, AT, &id).is_err());
    }

    /// Changing any payload byte is caught by `open`.
    #[test]
    fn payload_changes_are_caught(which in 0usize..3, at in any::<prop::sample::Index>(), x in 1u8..=255) {
        let (mut bytes, id) = sample();
        let b = Bundle::parse(&bytes, AT).unwrap();
        let e = b.entry(which).unwrap();
        let pos = e.offset as usize + at.index(e.size as usize);
        bytes[pos] ^= x;
        prop_assert!(Bundle::open(&bytes, AT, &id).is_err());
    }

    /// Arbitrary bytes behind a valid magic and version never make the reader panic, and
    /// whatever it accepts stays in bounds.
    #[test]
    fn arbitrary_input_never_panics(mut bytes in prop::collection::vec(any::<u8>(), 0..2048), n in 0u32..12) {
        if bytes.len() >= HEADER_SIZE {
            bytes[..8].copy_from_slice(&MAGIC);
            bytes[8..12].copy_from_slice(&VERSION.to_le_bytes());
            bytes[12..16].copy_from_slice(&n.to_le_bytes());
            let table_end = HEADER_SIZE + n as usize * ENTRY_SIZE;
            if bytes.len() >= table_end {
                // A consistent identity, so that the entry bounds checks are what is tested.
                let id = identity_of(&bytes[..32], &bytes[HEADER_SIZE..table_end]);
                bytes[32..64].copy_from_slice(&id);
            }
        }
        let at = if bytes.len() >= 32 { u64::from_le_bytes(bytes[24..32].try_into().unwrap()) } else { 0 };
        if let Ok(b) = Bundle::parse(&bytes, at) {
            for i in 0..b.len() {
                prop_assert!(b.payload(i).is_some());
            }
            let _ = b.verify_payloads();
        }
        let _ = Bundle::open(&bytes, at, &[0; 32]);
    }
}
