//! Target `ring`: a ring consumer (`tessera_ring::Consumer`, as a receiving guest or the
//! hypervisor side uses it) against a malicious producer that owns the shared memory.
//!
//! Byte 0, bit 0 clear — *forged region*: the rest of the input is the region itself
//! (header, indices, lengths, payloads); the consumer attaches through
//! `Layout::read_header` as a guest does, then receives until idle. Bit 0 set — *live
//! abuse*: a valid region (1..=4 classes of fuzzed geometry) where an honest `Producer` and
//! a hostile one (any word of the region, any value, at any time: indices at every boundary,
//! lengths past the slot, the header, the event index) interleave with `try_recv`,
//! `has_pending` and `arm_notification`.
//!
//! Invariants: no panic; the consumer attaches only to a region the layout fits; every
//! message received names a real class, fits its slot and the buffer; each `try_recv`
//! returns within one step per class; and while the hostile side has written nothing, the
//! consumer receives exactly what the honest producer sent, highest class first.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU32;

use tessera_ring::{
    AtomicSliceMem, ClassGeometry, Consumer, Layout, NotifyPolicy, Producer, Received, RecvError,
};

use crate::Input;

/// Largest forged region (bytes).
const MAX_REGION: usize = 1 << 16;

/// One input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    if input.u8() & 1 == 0 {
        forged(input)
    } else {
        live(input)
    }
}

fn region(bytes: usize) -> Vec<AtomicU32> {
    (0..bytes.div_ceil(4)).map(|_| AtomicU32::new(0)).collect()
}

/// Checks a `try_recv` result against the layout and the buffer.
fn check_received(layout: &Layout, buf_len: usize, r: &Result<Option<Received>, RecvError>) {
    match *r {
        Ok(Some(Received { class, len })) => {
            let cl = layout
                .class(class)
                .expect("a received message names a real class");
            assert!(len <= cl.geometry.slot_size as usize && len <= buf_len);
        }
        Err(RecvError::Violation { class, .. }) | Err(RecvError::BufferTooSmall { class, .. }) => {
            assert!(layout.class(class).is_some());
        }
        Ok(None) => {}
    }
}

fn forged(mut input: Input<'_>) {
    let bytes = input.take(MAX_REGION);
    let words = region(bytes.len().max(4));
    for (w, chunk) in words.iter().zip(bytes.chunks(4)) {
        let mut b = [0u8; 4];
        b[..chunk.len()].copy_from_slice(chunk);
        w.store(u32::from_le_bytes(b), std::sync::atomic::Ordering::Relaxed);
    }
    let mem = AtomicSliceMem::new(&words);
    let Ok(layout) = Layout::read_header(&mem) else {
        return;
    };
    assert!(layout.total_size() as usize <= words.len() * 4);
    let Ok(mut rx) = Consumer::attach(mem, layout) else {
        return;
    };
    let mut buf = vec![0u8; layout.max_slot_size() as usize];
    // Every class's producer index is at most 2^32 ahead: bound the loop generously.
    for _ in 0..4096 {
        let r = rx.try_recv(&mut buf);
        check_received(&layout, buf.len(), &r);
        if r == Ok(None) {
            let _ = rx.arm_notification();
            break;
        }
    }
}

fn live(mut input: Input<'_>) {
    let classes = 1 + usize::from(input.u8() % 4);
    let geometry: Vec<ClassGeometry> = (0..classes)
        .map(|_| ClassGeometry {
            slot_count: 1 << (input.u8() % 5),
            slot_size: 1 + u32::from(input.u8()),
            notify: if input.u8() & 1 == 0 {
                NotifyPolicy::EveryMessage
            } else {
                NotifyPolicy::Coalesced
            },
        })
        .collect();
    let Ok(layout) = Layout::new(&geometry) else {
        return;
    };
    let words = region(layout.total_size() as usize);
    let mem = AtomicSliceMem::new(&words);
    layout
        .initialise(&mem, input.u32())
        .expect("a fresh region of the layout's size");
    let mut tx = Producer::attach(mem, layout).expect("producer attaches");
    let mut rx = Consumer::attach(mem, Layout::read_header(&mem).expect("header")).expect("rx");
    // What the honest producer sent and the consumer has not received yet, per class.
    let mut sent: Vec<VecDeque<Vec<u8>>> = vec![VecDeque::new(); classes];
    let mut tampered = false;
    let mut buf = vec![0u8; layout.max_slot_size() as usize];
    while !input.is_empty() {
        match input.u8() % 6 {
            0 | 1 => {
                let class = input.u8() % (classes as u8 + 1);
                let len = usize::from(input.u16() % 300);
                let data: Vec<u8> = (0..len).map(|i| i as u8 ^ class).collect();
                if tx.send(class, &data).is_ok() {
                    sent[usize::from(class)].push_back(data);
                }
            }
            2 => {
                // The hostile producer: any word, any value (boundary values favoured).
                let word = usize::from(input.u16()) % words.len();
                let value = match input.u8() % 5 {
                    0 => 0,
                    1 => u32::MAX,
                    2 => 1 << 31,
                    3 => u32::from(input.u8()),
                    _ => input.u32(),
                };
                mem.store_u32(word * 4, value);
                tampered = true;
            }
            3 => {
                let small = input.u8().is_multiple_of(4);
                let len = if small { buf.len() / 2 } else { buf.len() };
                let r = rx.try_recv(&mut buf[..len]);
                check_received(&layout, len, &r);
                if !tampered {
                    expect_honest(&r, &buf, &mut sent);
                }
            }
            4 => {
                let _ = rx.has_pending();
            }
            _ => {
                let _ = rx.arm_notification();
            }
        }
    }
}

/// Without tampering, `try_recv` returns the oldest message of the highest non-empty class,
/// byte for byte (or says the buffer is too small for it).
fn expect_honest(
    r: &Result<Option<Received>, RecvError>,
    buf: &[u8],
    sent: &mut [VecDeque<Vec<u8>>],
) {
    let want = sent.iter().rposition(|q| !q.is_empty());
    match (*r, want) {
        (Ok(None), None) => {}
        (Ok(Some(Received { class, len })), Some(c)) => {
            assert_eq!(usize::from(class), c, "priority order");
            let msg = sent[c].pop_front().expect("non-empty");
            assert_eq!(&buf[..len], &msg[..], "payload");
        }
        (Err(RecvError::BufferTooSmall { class, len }), Some(c)) => {
            assert_eq!((usize::from(class), len), (c, sent[c][0].len()));
        }
        (r, want) => panic!("honest ring: got {r:?}, expected a message of class {want:?}"),
    }
}

use tessera_ring::SharedMem as _;
