//! Two threads (and, in the second test, an attacker thread) over one region in shared
//! memory: sequence numbers, checksums, strict priority, no lost wake-up.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{class, region};
use tessera_ring::{
    Armed, AtomicSliceMem, Consumer, Layout, NotifyPolicy, Producer, RecvError, SendError,
    SharedMem,
};

const CLASSES: usize = 3;

/// xorshift64: a small deterministic generator.
fn next_rand(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn checksum(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Message `seq` of `class`: seq (8 bytes), filler, checksum of all before (4 bytes).
fn message(class: usize, seq: u64, len: usize, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend((8..len - 4).map(|i| (seq as usize * 13 + i + class) as u8));
    let sum = checksum(out);
    out.extend_from_slice(&sum.to_le_bytes());
}

fn check_message(buf: &[u8]) -> Option<u64> {
    if buf.len() < 12 {
        return None;
    }
    let (body, sum) = buf.split_at(buf.len() - 4);
    (checksum(body).to_le_bytes() == sum).then(|| u64::from_le_bytes(body[..8].try_into().unwrap()))
}

fn layout() -> Layout {
    Layout::new(&[
        class(16, 256, NotifyPolicy::EveryMessage),
        class(8, 64, NotifyPolicy::Coalesced),
        class(4, 32, NotifyPolicy::EveryMessage),
    ])
    .unwrap()
}

/// 100 000 messages over three classes from one thread to another, the consumer sleeping
/// (waiting for a doorbell) whenever `arm_notification` says it may. Checks per-class sequence
/// numbers (FIFO, no loss, no duplication), checksums, lengths, strict priority against what
/// the producer had published before each receive began, and that no wake-up is lost.
#[test]
fn two_threads_hundred_thousand_messages() {
    const TOTAL: u64 = if cfg!(miri) { 300 } else { 100_000 };
    let layout = layout();
    let words = region(&layout);
    let mem = AtomicSliceMem::new(&words);
    layout.initialise(&mem, u32::MAX - 1000).unwrap();
    // Messages of each class whose send had returned Ok.
    let published: [AtomicU64; CLASSES] = Default::default();
    let doorbell = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(60);

    std::thread::scope(|s| {
        s.spawn(|| {
            let mut p = Producer::attach(mem, layout).unwrap();
            let mut rng = 0x1234_5678_9abc_def1u64;
            let mut seq = [0u64; CLASSES];
            let mut msg = Vec::new();
            for _ in 0..TOTAL {
                let r = next_rand(&mut rng);
                // Mostly low priority, some high.
                let k = match r % 10 {
                    0..=5 => 0,
                    6..=8 => 1,
                    _ => 2,
                };
                let max = layout.class(k as u8).unwrap().geometry.slot_size as u64;
                let len = 12 + ((r >> 8) % (max - 11)) as usize;
                message(k, seq[k], len, &mut msg);
                loop {
                    match p.send(k as u8, &msg) {
                        Ok(bell) => {
                            if bell.is_ring() {
                                doorbell.store(true, Ordering::Release);
                            }
                            break;
                        }
                        Err(SendError::Full) => std::thread::yield_now(),
                        Err(e) => panic!("send: {e:?}"),
                    }
                    assert!(Instant::now() < deadline, "producer stuck");
                }
                seq[k] += 1;
                published[k].store(seq[k], Ordering::Release);
            }
            let st = p.stats(0).unwrap();
            assert_eq!(st.violations, 0);
        });

        s.spawn(|| {
            let mut c = Consumer::attach(mem, layout).unwrap();
            let mut buf = [0u8; 256];
            let mut received = [0u64; CLASSES];
            let mut sleeps = 0u64;
            while received.iter().sum::<u64>() < TOTAL {
                let before: [u64; CLASSES] =
                    std::array::from_fn(|k| published[k].load(Ordering::Acquire));
                match c.try_recv(&mut buf) {
                    Ok(Some(r)) => {
                        let k = usize::from(r.class);
                        assert!(
                            r.len <= layout.class(r.class).unwrap().geometry.slot_size as usize
                        );
                        let seq = check_message(&buf[..r.len]).expect("checksum");
                        assert_eq!(seq, received[k], "class {k}");
                        for h in k + 1..CLASSES {
                            assert!(
                                before[h] <= received[h],
                                "class {k} received while class {h} had a message published"
                            );
                        }
                        received[k] += 1;
                    }
                    Ok(None) => {
                        // Consume any stale doorbell (acquiring what it published), then arm.
                        doorbell.swap(false, Ordering::AcqRel);
                        if c.arm_notification() == Armed::Idle {
                            sleeps += 1;
                            while !doorbell.load(Ordering::Acquire) {
                                assert!(Instant::now() < deadline, "lost wake-up");
                                std::thread::yield_now();
                            }
                        }
                    }
                    Err(e) => panic!("recv: {e:?}"),
                }
            }
            assert_eq!(c.total_violations(), 0);
            assert_eq!(c.try_recv(&mut buf), Ok(None));
            eprintln!("received {received:?}, slept {sleeps} times");
        });
    });
}

/// The same exchange on classes 0 and 2 while a third thread keeps writing arbitrary values
/// into class 1's indices and lengths: the honest classes arrive complete, in order and
/// intact; class 1 yields only messages within its slot size, and violations are counted.
#[test]
fn honest_classes_survive_a_concurrent_attacker() {
    const TOTAL: u64 = if cfg!(miri) { 300 } else { 30_000 };
    let layout = layout();
    let words = region(&layout);
    let mem = AtomicSliceMem::new(&words);
    layout.initialise(&mem, 0).unwrap();
    let done = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(60);
    let evil = *layout.class(1).unwrap();

    std::thread::scope(|s| {
        s.spawn(|| {
            let mut rng = 0xdead_beef_cafe_f00du64;
            let mut writes = 0u64;
            while !done.load(Ordering::Acquire) && writes < 50_000_000 {
                let r = next_rand(&mut rng);
                let off = match r % 5 {
                    0 => evil.producer_index_offset(),
                    1 => evil.consumer_index_offset(),
                    2 => evil.event_index_offset(),
                    _ => evil.slot_offset((r >> 8) as u32),
                };
                let v = if r & (1 << 40) != 0 {
                    (r >> 32) as u32
                } else {
                    mem.load_u32(off).wrapping_add((r >> 48) as u32 % 12)
                };
                mem.store_u32(off, v);
                writes += 1;
                if writes.is_multiple_of(64) {
                    std::thread::yield_now();
                }
            }
        });

        s.spawn(|| {
            let mut p = Producer::attach(mem, layout).unwrap();
            let mut rng = 42u64;
            let mut seq = [0u64; CLASSES];
            let mut msg = Vec::new();
            let mut sent = 0;
            while sent < TOTAL {
                let r = next_rand(&mut rng);
                let k = [0usize, 1, 2][(r % 3) as usize];
                let max = layout.class(k as u8).unwrap().geometry.slot_size as u64;
                let len = 12 + ((r >> 8) % (max - 11)) as usize;
                message(k, seq[k], len, &mut msg);
                match p.send(k as u8, &msg) {
                    Ok(_) => {
                        seq[k] += 1;
                        if k != 1 {
                            sent += 1;
                        }
                    }
                    Err(SendError::Full) => std::thread::yield_now(),
                    Err(SendError::PeerViolation) if k == 1 => std::thread::yield_now(),
                    Err(e) => panic!("send on class {k}: {e:?}"),
                }
                assert!(Instant::now() < deadline, "producer stuck");
            }
        });

        s.spawn(|| {
            let mut c = Consumer::attach(mem, layout).unwrap();
            let mut buf = [0u8; 256];
            let mut received = [0u64; CLASSES];
            let mut violations = 0u64;
            while received[0] + received[2] < TOTAL {
                match c.try_recv(&mut buf) {
                    Ok(Some(r)) => {
                        let k = usize::from(r.class);
                        assert!(
                            r.len <= layout.class(r.class).unwrap().geometry.slot_size as usize
                        );
                        if k != 1 {
                            let seq = check_message(&buf[..r.len]).expect("checksum");
                            assert_eq!(seq, received[k], "class {k}");
                        }
                        received[k] += 1;
                    }
                    Ok(None) => std::thread::yield_now(),
                    Err(RecvError::Violation { class: 1, .. }) => violations += 1,
                    Err(e) => panic!("recv: {e:?}"),
                }
                assert!(Instant::now() < deadline, "consumer stuck");
            }
            done.store(true, Ordering::Release);
            assert_eq!(c.total_violations(), violations);
            assert_eq!(c.stats(0).unwrap().violations(), 0);
            assert_eq!(c.stats(2).unwrap().violations(), 0);
            assert!(violations > 0, "the attacker caused no violation");
            eprintln!("received {received:?}, {violations} violations");
        });
    });
}
