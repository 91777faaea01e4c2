//! Property tests: the ring against a model (FIFO per class, no loss or duplication, strict
//! priority, notification policy), and against a peer writing arbitrary values into shared
//! memory.

mod common;

use std::collections::VecDeque;

use common::{class, payload, region};
use proptest::prelude::*;
use tessera_ring::{
    Armed, AtomicSliceMem, ClassGeometry, Consumer, Doorbell, Layout, NotifyPolicy, Producer,
    RecvError, SendError, SharedMem,
};

fn geometry() -> impl Strategy<Value = Vec<ClassGeometry>> {
    prop::collection::vec(
        (0u32..4, 1u32..48, any::<bool>()).prop_map(|(k, size, coalesced)| {
            let notify = if coalesced {
                NotifyPolicy::Coalesced
            } else {
                NotifyPolicy::EveryMessage
            };
            class(1 << k, size, notify)
        }),
        1..=8,
    )
}

fn start_index() -> impl Strategy<Value = u32> {
    prop_oneof![any::<u32>(), (0u32..16).prop_map(|d| u32::MAX - d)]
}

#[derive(Clone, Debug)]
enum Op {
    /// Send `len` bytes on `class` (may be an invalid class or too long).
    Send {
        class: u8,
        len: usize,
    },
    Recv,
    Arm,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..9, 0usize..52).prop_map(|(class, len)| Op::Send { class, len }),
        4 => Just(Op::Recv),
        1 => Just(Op::Arm),
    ]
}

/// What the test knows about one honest class.
#[derive(Default)]
struct ModelClass {
    queue: VecDeque<Vec<u8>>,
    sent: u64,
    received: u64,
    full: u64,
    /// Message number (0 = first ever sent) whose publication the consumer asked to hear of.
    event: u64,
    doorbells_since_arm: u32,
}

impl ModelClass {
    /// Checks the outcome of a send of `data` against the model and updates it.
    fn send(
        &mut self,
        g: &ClassGeometry,
        class: u8,
        data: Vec<u8>,
        got: Result<Doorbell, SendError>,
    ) -> Result<(), TestCaseError> {
        if data.len() > g.slot_size as usize {
            prop_assert_eq!(got, Err(SendError::TooLong));
        } else if self.queue.len() == g.slot_count as usize {
            prop_assert_eq!(got, Err(SendError::Full));
            self.full += 1;
        } else {
            let expected = match g.notify {
                NotifyPolicy::EveryMessage => Doorbell::Ring,
                NotifyPolicy::Coalesced if self.sent == self.event => Doorbell::Ring,
                NotifyPolicy::Coalesced => Doorbell::Skip,
            };
            prop_assert_eq!(got, Ok(expected), "class {}", class);
            if g.notify == NotifyPolicy::Coalesced && expected == Doorbell::Ring {
                self.doorbells_since_arm += 1;
                prop_assert!(self.doorbells_since_arm <= 1);
            }
            self.queue.push_back(data);
            self.sent += 1;
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 4 } else { 256 }, ..ProptestConfig::default() })]

    /// Any interleaving of sends, receives and arming on one region behaves like the model:
    /// FIFO per class, nothing lost or duplicated, always the highest pending class first,
    /// Full exactly when `slot_count` messages are unconsumed, and doorbells as the policy says
    /// (coalesced: exactly for the first message published after an arming that found the
    /// class empty, so at most once per arming).
    #[test]
    fn ring_behaves_like_the_model(
        geoms in geometry(),
        start in start_index(),
        ops in prop::collection::vec(op(), 0..300),
    ) {
        let layout = Layout::new(&geoms).unwrap();
        let words = region(&layout);
        let mem = AtomicSliceMem::new(&words);
        layout.initialise(&mem, start).unwrap();
        let mut p = Producer::attach(mem, layout).unwrap();
        let mut c = Consumer::attach(mem, layout).unwrap();
        let mut model: Vec<ModelClass> = geoms.iter().map(|_| ModelClass::default()).collect();
        let mut buf = vec![0u8; layout.max_slot_size() as usize];
        let mut seq = 0u64;
        for op in ops {
            match op {
                Op::Send { class, len } => {
                    seq += 1;
                    let data = payload(class, seq, len);
                    let got = p.send(class, &data);
                    match geoms.get(usize::from(class)) {
                        None => prop_assert_eq!(got, Err(SendError::BadClass)),
                        Some(g) => model[usize::from(class)].send(g, class, data, got)?,
                    }
                }
                Op::Recv => {
                    let expected = (0..geoms.len()).rev().find(|&k| !model[k].queue.is_empty());
                    let got = c.try_recv(&mut buf);
                    match expected {
                        None => prop_assert_eq!(got, Ok(None)),
                        Some(k) => {
                            let r = got.unwrap().unwrap();
                            prop_assert_eq!(usize::from(r.class), k);
                            let want = model[k].queue.pop_front().unwrap();
                            prop_assert_eq!(&buf[..r.len], &want[..]);
                            model[k].received += 1;
                        }
                    }
                }
                Op::Arm => {
                    let pending = model.iter().any(|m| !m.queue.is_empty());
                    let got = c.arm_notification();
                    prop_assert_eq!(got, if pending { Armed::Pending } else { Armed::Idle });
                    for (m, g) in model.iter_mut().zip(&geoms) {
                        if g.notify == NotifyPolicy::Coalesced {
                            m.event = m.received;
                            m.doorbells_since_arm = 0;
                        }
                    }
                }
            }
        }
        for (k, m) in model.iter().enumerate() {
            let ps = p.stats(k as u8).unwrap();
            let cs = c.stats(k as u8).unwrap();
            prop_assert_eq!(ps.sent, m.sent);
            prop_assert_eq!(ps.full, m.full);
            prop_assert_eq!(ps.violations, 0);
            prop_assert_eq!(cs.received, m.received);
            prop_assert_eq!(cs.violations(), 0);
            prop_assert_eq!(p.producer_index(k as u8), Some(start.wrapping_add(m.sent as u32)));
        }
    }
}

/// A word of a class that the malicious peer overwrites.
#[derive(Clone, Debug)]
enum Target {
    ProducerIndex,
    ConsumerIndex,
    EventIndex,
    /// Length word of slot `n mod slot_count`.
    Length(u32),
    /// Payload word `w mod (slot_size / 4)` of slot `n mod slot_count`.
    Payload(u32, u32),
    /// A header word (read only at attach, so harmless afterwards).
    Header(u32),
}

#[derive(Clone, Debug)]
enum Value {
    Absolute(u32),
    /// The word's current value plus this.
    Relative(i32),
}

#[derive(Clone, Debug)]
enum EvilOp {
    Send {
        class: u8,
        len: usize,
    },
    Recv,
    Arm,
    /// Overwrite a word of the `n`-th corrupted class.
    Corrupt {
        n: usize,
        target: Target,
        value: Value,
    },
}

fn evil_op() -> impl Strategy<Value = EvilOp> {
    let target = prop_oneof![
        Just(Target::ProducerIndex),
        Just(Target::ConsumerIndex),
        Just(Target::EventIndex),
        any::<u32>().prop_map(Target::Length),
        (any::<u32>(), any::<u32>()).prop_map(|(n, w)| Target::Payload(n, w)),
        (0u32..80).prop_map(Target::Header),
    ];
    let value = prop_oneof![
        any::<u32>().prop_map(Value::Absolute),
        (-3i32..20).prop_map(Value::Relative),
    ];
    prop_oneof![
        4 => (0u8..8, 0usize..48).prop_map(|(class, len)| EvilOp::Send { class, len }),
        4 => Just(EvilOp::Recv),
        1 => Just(EvilOp::Arm),
        3 => (any::<usize>(), target, value)
            .prop_map(|(n, target, value)| EvilOp::Corrupt { n, target, value }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 4 } else { 256 }, ..ProptestConfig::default() })]

    /// A peer writing anything into the indices, lengths and payloads of some classes (and the
    /// header) at any point between operations: the consumer and producer never panic, every
    /// message returned fits its class's slot size, strict priority still holds, every
    /// violation reported is counted (and only corrupted classes have any), and the untouched
    /// classes keep behaving exactly like the model.
    #[test]
    fn malicious_peer_cannot_hurt_honest_classes(
        geoms in geometry(),
        corrupted in prop::collection::vec(any::<bool>(), 8),
        start in start_index(),
        ops in prop::collection::vec(evil_op(), 0..300),
    ) {
        let layout = Layout::new(&geoms).unwrap();
        let n = geoms.len();
        let corrupt: Vec<usize> = (0..n).filter(|&k| corrupted[k]).collect();
        let words = region(&layout);
        let mem = AtomicSliceMem::new(&words);
        layout.initialise(&mem, start).unwrap();
        let mut p = Producer::attach(mem, layout).unwrap();
        let mut c = Consumer::attach(mem, layout).unwrap();
        let mut model: Vec<ModelClass> = geoms.iter().map(|_| ModelClass::default()).collect();
        let mut buf = vec![0u8; layout.max_slot_size() as usize];
        let mut violations_reported = 0u64;
        let mut seq = 0u64;

        // Checks one receive; returns false on Ok(None).
        let mut recv = |c: &mut Consumer<AtomicSliceMem<'_>>,
                        model: &mut Vec<ModelClass>,
                        violations_reported: &mut u64|
         -> Result<bool, TestCaseError> {
            let honest_pending_above = |model: &Vec<ModelClass>, k: usize| {
                (k + 1..n).any(|h| !corrupted[h] && !model[h].queue.is_empty())
            };
            match c.try_recv(&mut buf) {
                Ok(None) => {
                    for k in 0..n {
                        prop_assert!(corrupted[k] || model[k].queue.is_empty());
                    }
                    Ok(false)
                }
                Ok(Some(r)) => {
                    let k = usize::from(r.class);
                    prop_assert!(k < n);
                    prop_assert!(r.len <= geoms[k].slot_size as usize);
                    prop_assert!(!honest_pending_above(model, k));
                    if !corrupted[k] {
                        let want = model[k].queue.pop_front();
                        prop_assert_eq!(Some(&buf[..r.len]), want.as_deref());
                        model[k].received += 1;
                    }
                    Ok(true)
                }
                Err(RecvError::Violation { class, .. }) => {
                    let k = usize::from(class);
                    prop_assert!(k < n && corrupted[k]);
                    prop_assert!(!honest_pending_above(model, k));
                    *violations_reported += 1;
                    Ok(true)
                }
                Err(e @ RecvError::BufferTooSmall { .. }) => {
                    Err(TestCaseError::fail(format!("{e:?} with a max-size buffer")))
                }
            }
        };

        for op in ops {
            match op {
                EvilOp::Send { class, len } => {
                    seq += 1;
                    let data = payload(class, seq, len);
                    let got = p.send(class, &data);
                    let k = usize::from(class);
                    if k >= n {
                        prop_assert_eq!(got, Err(SendError::BadClass));
                    } else if !corrupted[k] {
                        model[k].send(&geoms[k], class, data, got)?;
                    }
                }
                EvilOp::Recv => {
                    recv(&mut c, &mut model, &mut violations_reported)?;
                }
                EvilOp::Arm => {
                    let got = c.arm_notification();
                    if model.iter().enumerate().any(|(k, m)| !corrupted[k] && !m.queue.is_empty()) {
                        prop_assert_eq!(got, Armed::Pending);
                    }
                    for (m, g) in model.iter_mut().zip(&geoms) {
                        if g.notify == NotifyPolicy::Coalesced {
                            m.event = m.received;
                            m.doorbells_since_arm = 0;
                        }
                    }
                }
                EvilOp::Corrupt { n: which, target, value } => {
                    if corrupt.is_empty() {
                        continue;
                    }
                    let cl = *layout.class(corrupt[which % corrupt.len()] as u8).unwrap();
                    let slots = cl.geometry.slot_count;
                    let off = match target {
                        Target::ProducerIndex => cl.producer_index_offset(),
                        Target::ConsumerIndex => cl.consumer_index_offset(),
                        Target::EventIndex => cl.event_index_offset(),
                        Target::Length(s) => cl.slot_offset(s % slots),
                        Target::Payload(s, w) => {
                            cl.payload_offset(s % slots) + 4 * (w % (cl.geometry.slot_size / 4).max(1)) as usize
                        }
                        Target::Header(w) => 4 * w as usize,
                    };
                    let v = match value {
                        Value::Absolute(v) => v,
                        Value::Relative(d) => mem.load_u32(off).wrapping_add(d as u32),
                    };
                    mem.store_u32(off, v);
                }
            }
        }

        // The peer stops; draining terminates and delivers every honest message.
        let bound = 2 * geoms.iter().map(|g| g.slot_count as usize).sum::<usize>() + n + 1;
        let mut drained = false;
        for _ in 0..bound {
            if !recv(&mut c, &mut model, &mut violations_reported)? {
                drained = true;
                break;
            }
        }
        prop_assert!(drained, "not drained in {} receives", bound);
        prop_assert_eq!(c.total_violations(), violations_reported);
        for k in 0..n {
            let cs = c.stats(k as u8).unwrap();
            let ps = p.stats(k as u8).unwrap();
            if !corrupted[k] {
                prop_assert!(model[k].queue.is_empty());
                prop_assert_eq!(cs.violations(), 0);
                prop_assert_eq!(ps.violations, 0);
                prop_assert_eq!(cs.received, model[k].received);
                prop_assert_eq!(ps.sent, model[k].sent);
                prop_assert_eq!(ps.full, model[k].full);
            }
        }
    }
}
