//! The sending end of a region.

use crate::layout::{ClassLayout, Layout, LayoutError, NotifyPolicy, MAX_CLASSES};
use crate::mem::SharedMem;

/// Whether the receiver must be notified (the channel's doorbell hypercall) after a send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use = "a message whose doorbell is not rung may wait until the receiver polls"]
pub enum Doorbell {
    /// Ring the doorbell for this class.
    Ring,
    /// The receiver did not ask to be woken (coalesced class): no doorbell.
    Skip,
}

impl Doorbell {
    /// `true` for [`Doorbell::Ring`].
    pub const fn is_ring(self) -> bool {
        matches!(self, Doorbell::Ring)
    }
}

/// Why a message was not sent. Nothing was written to the ring in any of these cases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SendError {
    /// Every slot of the class holds an unconsumed message; try again later.
    Full,
    /// The message is longer than the class's slot size.
    TooLong,
    /// There is no such class in this region.
    BadClass,
    /// The consumer index read from shared memory is impossible (it claims more consumed
    /// messages than were sent, or fewer than `sent - slots`): the peer is faulty or
    /// malicious. Counted in [`ProducerStats::violations`]; the class refuses messages until
    /// the index is plausible again.
    PeerViolation,
}

/// What a producer counted for one class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ProducerStats {
    /// Messages published.
    pub sent: u64,
    /// Sends refused with [`SendError::Full`].
    pub full: u64,
    /// Impossible consumer indices seen ([`SendError::PeerViolation`]).
    pub violations: u64,
    /// Doorbells requested ([`Doorbell::Ring`] returned).
    pub doorbells: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct ProducerClass {
    /// Producer index: messages published so far (free-running). Private, hence trusted.
    next: u32,
    /// Last valid consumer index read; `next - cached_consumer <= slot_count` always.
    cached_consumer: u32,
    stats: ProducerStats,
}

/// The sender of all classes of one region (one direction of a channel).
///
/// It keeps its own producer indices privately and only writes them to shared memory; the
/// consumer and event indices it reads are validated before use.
#[derive(Debug)]
pub struct Producer<M: SharedMem> {
    mem: M,
    layout: Layout,
    classes: [ProducerClass; MAX_CLASSES],
}

impl<M: SharedMem> Producer<M> {
    /// The producer of the region in `mem`, laid out as `layout` (from the configuration, or
    /// from [`Layout::read_header`]). Each class starts at the producer index found in memory
    /// (the region must have been [initialised](Layout::initialise)). Fails if the region is
    /// smaller than the layout.
    pub fn attach(mem: M, layout: Layout) -> Result<Self, LayoutError> {
        let next = layout.attach_indices(&mem, ClassLayout::producer_index_offset)?;
        let classes = core::array::from_fn(|k| ProducerClass {
            next: next[k],
            // Assume full until a valid consumer index is read.
            cached_consumer: next[k]
                .wrapping_sub(layout.classes().get(k).map_or(0, |c| c.geometry.slot_count)),
            stats: ProducerStats::default(),
        });
        Ok(Producer {
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

    /// Copies `data` into the next slot of `class` (0 = lowest priority, up to
    /// `num_classes - 1` = highest) and publishes it. Never blocks: a full class returns
    /// [`SendError::Full`] at once. On success, says whether to ring the doorbell, following
    /// the class's [`NotifyPolicy`].
    pub fn send(&mut self, class: u8, data: &[u8]) -> Result<Doorbell, SendError> {
        let cl = *self.layout.class(class).ok_or(SendError::BadClass)?;
        let st = &mut self.classes[usize::from(class)];
        let len = match u32::try_from(data.len()) {
            Ok(len) if len <= cl.geometry.slot_size => len,
            _ => return Err(SendError::TooLong),
        };
        let slots = cl.geometry.slot_count;
        if st.next.wrapping_sub(st.cached_consumer) >= slots {
            let consumer = self.mem.load_u32(cl.consumer_index_offset());
            let used = st.next.wrapping_sub(consumer);
            if used > slots {
                st.stats.violations += 1;
                return Err(SendError::PeerViolation);
            }
            st.cached_consumer = consumer;
            if used == slots {
                st.stats.full += 1;
                return Err(SendError::Full);
            }
        }
        let index = st.next;
        self.mem.write_bytes(cl.payload_offset(index), data);
        self.mem.store_u32(cl.slot_offset(index), len);
        st.next = index.wrapping_add(1);
        self.mem.store_u32(cl.producer_index_offset(), st.next);
        st.stats.sent += 1;
        let bell = match cl.geometry.notify {
            NotifyPolicy::EveryMessage => Doorbell::Ring,
            NotifyPolicy::Coalesced => {
                // Publish-then-check, paired with the consumer's arm-then-check: one of the two
                // sees the other's store, so a sleeping consumer is always woken.
                self.mem.fence();
                if self.mem.load_u32(cl.event_index_offset()) == index {
                    Doorbell::Ring
                } else {
                    Doorbell::Skip
                }
            }
        };
        if bell.is_ring() {
            st.stats.doorbells += 1;
        }
        Ok(bell)
    }

    /// Number of free slots of `class` as far as this producer knows (re-reads the consumer
    /// index; an impossible one counts as no space), or `None` if there is no such class.
    pub fn free_slots(&mut self, class: u8) -> Option<u32> {
        let cl = self.layout.class(class)?;
        let st = &mut self.classes[usize::from(class)];
        let consumer = self.mem.load_u32(cl.consumer_index_offset());
        let used = st.next.wrapping_sub(consumer);
        if used <= cl.geometry.slot_count {
            st.cached_consumer = consumer;
        }
        Some(
            cl.geometry
                .slot_count
                .saturating_sub(st.next.wrapping_sub(st.cached_consumer)),
        )
    }

    /// The counters of `class`, or `None` if there is no such class.
    pub fn stats(&self, class: u8) -> Option<ProducerStats> {
        self.layout.class(class)?;
        Some(self.classes[usize::from(class)].stats)
    }

    /// The producer index of `class`: messages published so far (free-running).
    pub fn producer_index(&self, class: u8) -> Option<u32> {
        self.layout.class(class)?;
        Some(self.classes[usize::from(class)].next)
    }
}
