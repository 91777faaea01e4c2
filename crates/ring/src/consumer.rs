//! The receiving end of a region.

use crate::layout::{ClassLayout, Layout, LayoutError, NotifyPolicy, MAX_CLASSES};
use crate::mem::SharedMem;

/// A message taken from the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Received {
    /// Its priority class.
    pub class: u8,
    /// Its length: the first `len` bytes of the buffer given to
    /// [`try_recv`](Consumer::try_recv). Never more than the class's slot size.
    pub len: usize,
}

/// What a faulty or malicious producer did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ViolationKind {
    /// The producer index claims more than `slot_count` unconsumed messages, or fewer than
    /// zero. The class was resynchronised: its consumer index jumped to the producer index,
    /// dropping whatever lay between.
    ProducerIndex,
    /// A slot's length word exceeds the class's slot size. That message was dropped (its slot
    /// consumed).
    Length,
}

/// Why [`Consumer::try_recv`] returned no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecvError {
    /// The producer broke the protocol on `class`. The violation has been counted and dealt
    /// with (see [`ViolationKind`]); call `try_recv` again to go on.
    Violation {
        /// The class.
        class: u8,
        /// What was wrong.
        kind: ViolationKind,
    },
    /// The next message (of `class`, the highest with one pending) is `len` bytes, more than
    /// the buffer holds. Nothing was consumed. A buffer of
    /// [`Layout::max_slot_size`] bytes never gets this.
    BufferTooSmall {
        /// The class.
        class: u8,
        /// The message's length.
        len: usize,
    },
}

/// Result of [`Consumer::arm_notification`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use = "sleeping after `Pending` can leave messages unreceived"]
pub enum Armed {
    /// No message is pending: the receiver may sleep; the next message of a coalesced class
    /// comes with a doorbell.
    Idle,
    /// Messages arrived meanwhile: receive them before arming again (no doorbell will come
    /// for them).
    Pending,
}

/// What a consumer counted for one class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConsumerStats {
    /// Messages received.
    pub received: u64,
    /// Impossible producer indices seen ([`ViolationKind::ProducerIndex`]).
    pub index_violations: u64,
    /// Messages dropped for an impossible length ([`ViolationKind::Length`]).
    pub length_violations: u64,
}

impl ConsumerStats {
    /// All violations of the class.
    pub const fn violations(&self) -> u64 {
        self.index_violations + self.length_violations
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct ConsumerClass {
    /// Consumer index: messages consumed so far (free-running). Private, hence trusted.
    next: u32,
    stats: ConsumerStats,
}

/// The receiver of all classes of one region, strictly by priority.
///
/// It keeps its own consumer indices privately and only writes them to shared memory; the
/// producer indices and lengths it reads are validated before use, so whatever the producer
/// writes, the consumer neither panics nor reads outside the class's slots, and returns no
/// message longer than the class's slot size.
#[derive(Debug)]
pub struct Consumer<M: SharedMem> {
    mem: M,
    layout: Layout,
    classes: [ConsumerClass; MAX_CLASSES],
}

impl<M: SharedMem> Consumer<M> {
    /// The consumer of the region in `mem`, laid out as `layout`. Each class starts at the
    /// consumer index found in memory (the region must have been
    /// [initialised](Layout::initialise)). Fails if the region is smaller than the layout.
    pub fn attach(mem: M, layout: Layout) -> Result<Self, LayoutError> {
        let next = layout.attach_indices(&mem, ClassLayout::consumer_index_offset)?;
        let classes = core::array::from_fn(|k| ConsumerClass {
            next: next[k],
            stats: ConsumerStats::default(),
        });
        Ok(Consumer {
            mem,
            layout,
            classes,
        })
    }

    /// The region's layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The shared memory.
    pub fn mem(&self) -> &M {
        &self.mem
    }

    /// Takes the oldest message of the highest-priority class that has one (class
    /// `num_classes - 1` first, class 0 last; as in 802.1p, a higher number is a higher
    /// priority) into `buf`. Every call scans from the highest class again, so a message of a
    /// higher class waits behind at most the one message being received.
    ///
    /// `Ok(None)`: nothing pending. Bounded work: at most one index read per class and one
    /// message copied.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<Received>, RecvError> {
        for class in (0..self.layout.num_classes()).rev() {
            let Some(&cl) = self.layout.class(class) else {
                continue;
            };
            let st = &mut self.classes[usize::from(class)];
            let producer = self.mem.load_u32(cl.producer_index_offset());
            let pending = producer.wrapping_sub(st.next);
            if pending == 0 {
                continue;
            }
            if pending > cl.geometry.slot_count {
                st.stats.index_violations += 1;
                st.next = producer;
                self.mem.store_u32(cl.consumer_index_offset(), st.next);
                return Err(RecvError::Violation {
                    class,
                    kind: ViolationKind::ProducerIndex,
                });
            }
            let index = st.next;
            // Read the length once; only the value read is used.
            let len = self.mem.load_u32(cl.slot_offset(index));
            if len > cl.geometry.slot_size {
                st.stats.length_violations += 1;
                st.next = index.wrapping_add(1);
                self.mem.store_u32(cl.consumer_index_offset(), st.next);
                return Err(RecvError::Violation {
                    class,
                    kind: ViolationKind::Length,
                });
            }
            let len = len as usize;
            let Some(dest) = buf.get_mut(..len) else {
                return Err(RecvError::BufferTooSmall { class, len });
            };
            self.mem.read_bytes(cl.payload_offset(index), dest);
            // Release the slot only after copying it out.
            st.next = index.wrapping_add(1);
            self.mem.store_u32(cl.consumer_index_offset(), st.next);
            st.stats.received += 1;
            return Ok(Some(Received { class, len }));
        }
        Ok(None)
    }

    /// Whether any class has a message pending (or an impossible producer index, which the
    /// next [`try_recv`](Consumer::try_recv) reports).
    pub fn has_pending(&self) -> bool {
        self.layout
            .classes()
            .iter()
            .zip(&self.classes)
            .any(|(cl, st)| self.mem.load_u32(cl.producer_index_offset()) != st.next)
    }

    /// Asks to be woken by the next message of every coalesced class (sets each one's event
    /// index to the current consumer index), then checks every class again so that a message
    /// published meanwhile is not missed. Call when [`try_recv`](Consumer::try_recv) returned
    /// `Ok(None)`, before sleeping; sleep only on [`Armed::Idle`].
    pub fn arm_notification(&mut self) -> Armed {
        for (cl, st) in self.layout.classes().iter().zip(&self.classes) {
            if cl.geometry.notify == NotifyPolicy::Coalesced {
                self.mem.store_u32(cl.event_index_offset(), st.next);
            }
        }
        // Arm-then-check, paired with the producer's publish-then-check.
        self.mem.fence();
        if self.has_pending() {
            Armed::Pending
        } else {
            Armed::Idle
        }
    }

    /// The counters of `class`, or `None` if there is no such class.
    pub fn stats(&self, class: u8) -> Option<ConsumerStats> {
        self.layout.class(class)?;
        Some(self.classes[usize::from(class)].stats)
    }

    /// Violations over all classes.
    pub fn total_violations(&self) -> u64 {
        self.classes.iter().map(|c| c.stats.violations()).sum()
    }

    /// The consumer index of `class`: messages consumed so far (free-running).
    pub fn consumer_index(&self, class: u8) -> Option<u32> {
        self.layout.class(class)?;
        Some(self.classes[usize::from(class)].next)
    }
}
