//! Example-based tests of the ring: send/receive, errors, wrap-around, header validation,
//! notification, violations.

mod common;

use common::{class, payload, region};
use std::sync::atomic::AtomicU32;
use tessera_ring::layout::{Header, MAGIC};
use tessera_ring::{
    Armed, AtomicSliceMem, Consumer, Doorbell, Layout, LayoutError, NotifyPolicy, Producer,
    Received, RecvError, SendError, SharedMem, ViolationKind,
};

const EVERY: NotifyPolicy = NotifyPolicy::EveryMessage;
const COAL: NotifyPolicy = NotifyPolicy::Coalesced;

fn pair(
    words: &[AtomicU32],
    layout: Layout,
    start: u32,
) -> (Producer<AtomicSliceMem<'_>>, Consumer<AtomicSliceMem<'_>>) {
    let mem = AtomicSliceMem::new(words);
    layout.initialise(&mem, start).unwrap();
    (
        Producer::attach(mem, layout).unwrap(),
        Consumer::attach(mem, layout).unwrap(),
    )
}

#[test]
fn send_and_receive_one_message() {
    let layout = Layout::new(&[class(4, 16, EVERY)]).unwrap();
    let words = region(&layout);
    let (mut p, mut c) = pair(&words, layout, 0);
    let mut buf = [0u8; 16];
    assert_eq!(c.try_recv(&mut buf), Ok(None));
    assert_eq!(p.send(0, b"hello"), Ok(Doorbell::Ring));
    assert_eq!(
        c.try_recv(&mut buf),
        Ok(Some(Received { class: 0, len: 5 }))
    );
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(c.try_recv(&mut buf), Ok(None));
    // Empty messages are messages.
    assert_eq!(p.send(0, b""), Ok(Doorbell::Ring));
    assert_eq!(
        c.try_recv(&mut buf),
        Ok(Some(Received { class: 0, len: 0 }))
    );
    assert_eq!(p.stats(0).unwrap().sent, 2);
    assert_eq!(c.stats(0).unwrap().received, 2);
}

#[test]
fn full_too_long_and_bad_class() {
    let layout = Layout::new(&[class(2, 8, EVERY), class(1, 4, EVERY)]).unwrap();
    let words = region(&layout);
    let (mut p, mut c) = pair(&words, layout, 0);
    assert_eq!(p.send(0, &[0; 9]), Err(SendError::TooLong));
    assert_eq!(p.send(2, &[0; 1]), Err(SendError::BadClass));
    assert_eq!(p.free_slots(0), Some(2));
    assert!(p.send(0, &[1; 8]).is_ok());
    assert!(p.send(0, &[2; 8]).is_ok());
    assert_eq!(p.free_slots(0), Some(0));
    assert_eq!(p.send(0, &[3; 8]), Err(SendError::Full));
    assert_eq!(p.send(0, &[3; 8]), Err(SendError::Full));
    // Another class is unaffected.
    assert!(p.send(1, &[4; 4]).is_ok());
    assert_eq!(p.stats(0).unwrap().full, 2);
    let mut buf = [0u8; 8];
    // Class 1 is the higher priority.
    assert_eq!(c.try_recv(&mut buf).unwrap().unwrap().class, 1);
    assert_eq!(c.try_recv(&mut buf).unwrap().unwrap().class, 0);
    assert_eq!(buf, [1; 8]);
    assert!(p.send(0, &[3; 8]).is_ok());
    assert_eq!(c.try_recv(&mut buf).unwrap().unwrap().class, 0);
    assert_eq!(buf, [2; 8]);
    assert_eq!(c.try_recv(&mut buf).unwrap().unwrap().class, 0);
    assert_eq!(buf, [3; 8]);
    assert_eq!(c.try_recv(&mut buf), Ok(None));
}

#[test]
fn buffer_too_small_consumes_nothing() {
    let layout = Layout::new(&[class(2, 8, EVERY)]).unwrap();
    let words = region(&layout);
    let (mut p, mut c) = pair(&words, layout, 0);
    assert!(p.send(0, &[7; 6]).is_ok());
    let mut small = [0u8; 5];
    assert_eq!(
        c.try_recv(&mut small),
        Err(RecvError::BufferTooSmall { class: 0, len: 6 })
    );
    let mut buf = vec![0u8; layout.max_slot_size() as usize];
    assert_eq!(
        c.try_recv(&mut buf),
        Ok(Some(Received { class: 0, len: 6 }))
    );
}

#[test]
fn strict_priority_rechecks_after_every_message() {
    let layout =
        Layout::new(&[class(8, 8, EVERY), class(8, 8, EVERY), class(8, 8, EVERY)]).unwrap();
    let words = region(&layout);
    let (mut p, mut c) = pair(&words, layout, 0);
    for i in 0..4u8 {
        assert!(p.send(0, &[i]).is_ok());
    }
    assert!(p.send(1, &[10]).is_ok());
    let mut buf = [0u8; 8];
    assert_eq!(c.try_recv(&mut buf).unwrap().unwrap().class, 1);
    assert_eq!(c.try_recv(&mut buf).unwrap().unwrap().class, 0);
    assert_eq!(buf[0], 0);
    // A high message sent now overtakes the rest of class 0.
    assert!(p.send(2, &[20]).is_ok());
    assert_eq!(c.try_recv(&mut buf).unwrap().unwrap().class, 2);
    for i in 1..4u8 {
        assert_eq!(c.try_recv(&mut buf).unwrap().unwrap().class, 0);
        assert_eq!(buf[0], i);
    }
}

#[test]
fn indices_wrap_around_u32() {
    let layout = Layout::new(&[class(4, 32, COAL), class(2, 8, EVERY)]).unwrap();
    for start in [u32::MAX - 9, u32::MAX - 1, u32::MAX] {
        let words = region(&layout);
        let (mut p, mut c) = pair(&words, layout, start);
        let mut buf = [0u8; 32];
        for seq in 0..40u64 {
            let len = (seq % 33) as usize;
            // Fill up, then drain, several times across the wrap.
            assert!(p.send(0, &payload(0, seq, len)).is_ok());
            if seq % 4 == 3 {
                assert_eq!(p.send(0, &[0]), Err(SendError::Full));
                for k in (seq - 3)..=seq {
                    let r = c.try_recv(&mut buf).unwrap().unwrap();
                    assert_eq!(r.class, 0);
                    assert_eq!(&buf[..r.len], &payload(0, k, (k % 33) as usize)[..]);
                }
                assert_eq!(c.try_recv(&mut buf), Ok(None));
            }
        }
        assert_eq!(p.producer_index(0), Some(start.wrapping_add(40)));
        assert_eq!(c.consumer_index(0), Some(start.wrapping_add(40)));
        assert_eq!(c.total_violations(), 0);
        assert_eq!(p.stats(0).unwrap().violations, 0);
    }
}

#[test]
fn header_round_trip_and_rejections() {
    let layout = Layout::new(&[class(4, 100, EVERY), class(16, 1500, COAL)]).unwrap();
    let words = region(&layout);
    let mem = AtomicSliceMem::new(&words);
    assert!(matches!(
        Layout::read_header(&mem),
        Err(LayoutError::BadMagic(0))
    ));
    layout.initialise(&mem, 5).unwrap();
    assert_eq!(Layout::read_header(&mem), Ok(layout));

    // Each field, corrupted, is rejected; restoring it makes the header good again.
    let classes = std::mem::offset_of!(Header, classes);
    type Expect = fn(LayoutError) -> bool;
    let cases: [(usize, u32, Expect); 9] = [
        (0, 1, |e| matches!(e, LayoutError::BadMagic(1))),
        (4, 2, |e| matches!(e, LayoutError::BadVersion(2))),
        (8, 0, |e| matches!(e, LayoutError::ClassCount(0))),
        (8, 9, |e| matches!(e, LayoutError::ClassCount(9))),
        (8, 1, |e| e == LayoutError::Inconsistent),
        (12, 4096 * 100, |e| e == LayoutError::Inconsistent),
        (classes, 3, |e| e == LayoutError::SlotCount { class: 0 }),
        (classes + 32 + 12, 7, |e| {
            e == LayoutError::BadNotifyPolicy { class: 1 }
        }),
        (classes + 32 + 20, 1 << 20, |e| {
            e == LayoutError::Inconsistent
        }),
    ];
    for (off, bad, ok) in cases {
        let good = mem.load_u32(off);
        mem.store_u32(off, bad);
        let e = Layout::read_header(&mem).unwrap_err();
        assert!(ok(e), "offset {off}: {e:?}");
        mem.store_u32(off, good);
        assert_eq!(Layout::read_header(&mem), Ok(layout));
    }
    // Overflowing geometry in the header.
    let good = mem.load_u32(classes + 4);
    mem.store_u32(classes + 4, u32::MAX);
    assert_eq!(Layout::read_header(&mem), Err(LayoutError::TooLarge));
    mem.store_u32(classes + 4, good);
    // A region too small for the header's layout.
    let short = AtomicSliceMem::new(&words[..words.len() - 1]);
    assert!(matches!(
        Layout::read_header(&short),
        Err(LayoutError::RegionTooSmall { .. })
    ));
    assert!(Producer::attach(short, layout).is_err());
    assert!(Consumer::attach(short, layout).is_err());
    assert_eq!(mem.load_u32(0), MAGIC);
}

#[test]
fn coalesced_notifies_once_per_arm() {
    let layout = Layout::new(&[class(8, 8, COAL), class(8, 8, EVERY)]).unwrap();
    let words = region(&layout);
    let (mut p, mut c) = pair(&words, layout, 0);
    let mut buf = [0u8; 8];
    // Initially armed: the first message rings, the following ones do not.
    assert_eq!(p.send(0, &[1]), Ok(Doorbell::Ring));
    assert_eq!(p.send(0, &[2]), Ok(Doorbell::Skip));
    assert_eq!(p.send(0, &[3]), Ok(Doorbell::Skip));
    // Every-message class always rings.
    assert_eq!(p.send(1, &[9]), Ok(Doorbell::Ring));
    assert_eq!(p.send(1, &[9]), Ok(Doorbell::Ring));
    // Arming with messages pending says so (no doorbell will come for them).
    assert_eq!(c.arm_notification(), Armed::Pending);
    while c.try_recv(&mut buf).unwrap().is_some() {}
    assert_eq!(c.arm_notification(), Armed::Idle);
    assert_eq!(p.send(0, &[4]), Ok(Doorbell::Ring));
    assert_eq!(p.send(0, &[5]), Ok(Doorbell::Skip));
    assert_eq!(p.stats(0).unwrap().doorbells, 2);
    // Not re-armed: the consumer polls, no doorbell.
    c.try_recv(&mut buf).unwrap().unwrap();
    c.try_recv(&mut buf).unwrap().unwrap();
    assert_eq!(p.send(0, &[6]), Ok(Doorbell::Skip));
}

#[test]
fn bad_producer_index_is_counted_and_resynchronised() {
    let layout = Layout::new(&[class(4, 8, EVERY), class(4, 8, EVERY)]).unwrap();
    let words = region(&layout);
    let (mut p, mut c) = pair(&words, layout, 100);
    let mem = AtomicSliceMem::new(&words);
    let hi = *layout.class(1).unwrap();
    assert!(p.send(0, &[1, 2, 3]).is_ok());
    // The peer claims 5 messages in a 4-slot class.
    mem.store_u32(hi.producer_index_offset(), 105);
    let mut buf = [0u8; 8];
    assert_eq!(
        c.try_recv(&mut buf),
        Err(RecvError::Violation {
            class: 1,
            kind: ViolationKind::ProducerIndex
        })
    );
    // Class 0 still works.
    assert_eq!(
        c.try_recv(&mut buf),
        Ok(Some(Received { class: 0, len: 3 }))
    );
    assert_eq!(c.try_recv(&mut buf), Ok(None));
    // Backwards also counts.
    mem.store_u32(hi.producer_index_offset(), 104);
    assert!(matches!(
        c.try_recv(&mut buf),
        Err(RecvError::Violation { class: 1, .. })
    ));
    assert_eq!(c.stats(1).unwrap().index_violations, 2);
    assert_eq!(c.total_violations(), 2);
}

#[test]
fn bad_length_is_counted_and_skipped() {
    let layout = Layout::new(&[class(4, 8, EVERY)]).unwrap();
    let words = region(&layout);
    let (mut p, mut c) = pair(&words, layout, 0);
    let mem = AtomicSliceMem::new(&words);
    let cl = *layout.class(0).unwrap();
    assert!(p.send(0, &[1; 8]).is_ok());
    assert!(p.send(0, &[2; 8]).is_ok());
    mem.store_u32(cl.slot_offset(0), 9);
    let mut buf = [0u8; 64];
    assert_eq!(
        c.try_recv(&mut buf),
        Err(RecvError::Violation {
            class: 0,
            kind: ViolationKind::Length
        })
    );
    assert_eq!(
        c.try_recv(&mut buf),
        Ok(Some(Received { class: 0, len: 8 }))
    );
    assert_eq!(&buf[..8], &[2; 8]);
    assert_eq!(c.stats(0).unwrap().length_violations, 1);
}

#[test]
fn bad_consumer_index_is_counted_by_the_producer() {
    let layout = Layout::new(&[class(2, 8, EVERY)]).unwrap();
    let words = region(&layout);
    let (mut p, _c) = pair(&words, layout, 0);
    let mem = AtomicSliceMem::new(&words);
    let cl = *layout.class(0).unwrap();
    // Consumer claims to have consumed a message never sent.
    mem.store_u32(cl.consumer_index_offset(), 1);
    assert_eq!(p.send(0, &[1]), Err(SendError::PeerViolation));
    assert_eq!(p.stats(0).unwrap().violations, 1);
    assert_eq!(p.free_slots(0), Some(0));
    // Back to a plausible value: the class works again.
    mem.store_u32(cl.consumer_index_offset(), 0);
    assert_eq!(p.send(0, &[1]), Ok(Doorbell::Ring));
}

#[cfg(feature = "raw")]
#[test]
fn raw_shared_mem_over_a_vec() {
    use tessera_ring::RawSharedMem;
    let layout = Layout::new(&[class(4, 64, EVERY), class(2, 8, COAL)]).unwrap();
    let words = region(&layout);
    // SAFETY: `words` outlives `mem` and is only accessed atomically.
    let mem = unsafe { RawSharedMem::new(words.as_ptr() as *mut u8, words.len() * 4) }.unwrap();
    // SAFETY: a misaligned pointer is refused, not used.
    assert!(unsafe { RawSharedMem::new((words.as_ptr() as *mut u8).wrapping_add(1), 8) }.is_none());
    layout.initialise(&mem, u32::MAX).unwrap();
    assert_eq!(Layout::read_header(&mem), Ok(layout));
    let mut p = Producer::attach(mem, layout).unwrap();
    let mut c = Consumer::attach(mem, layout).unwrap();
    let mut buf = [0u8; 64];
    for seq in 0..10u64 {
        let data = payload(0, seq, (seq * 7 % 65) as usize);
        assert!(p.send(0, &data).is_ok());
        assert!(p.send(1, &[seq as u8]).is_ok());
        assert_eq!(c.try_recv(&mut buf).unwrap().unwrap().class, 1);
        assert_eq!(buf[0], seq as u8);
        let r = c.try_recv(&mut buf).unwrap().unwrap();
        assert_eq!(&buf[..r.len], &data[..]);
    }
}
