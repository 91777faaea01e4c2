//! The shared-memory layout of one ring region (one direction of a channel).
//!
//! ```text
//! offset 0                 Header (272 bytes, see [`Header`]), padded to a cache line
//! HEADER_SIZE              ControlBlock of class 0, class 1, ... (192 bytes each, 3 lines)
//! after the control blocks slot array of class 0, class 1, ... (each cache-line aligned)
//! total_size               end, rounded up to PAGE_SIZE
//! ```
//!
//! A slot is a `u32` length (little-endian on the targets Tessera runs on: the machine's own
//! byte order) followed by the payload; slots are `stride` bytes apart, with `stride` the
//! length word plus `slot_size` rounded up to a cache line, so that neighbouring slots never
//! share a line.
//!
//! The `#[repr(C)]` structs of this module document the wire format and give the field offsets
//! (`core::mem::offset_of!`); they are never instantiated over shared memory: all access goes
//! through [`SharedMem`] word by word.

use core::mem::{offset_of, size_of};

use crate::mem::SharedMem;

/// `Header::magic`: the bytes `"TSRG"` in memory.
pub const MAGIC: u32 = u32::from_le_bytes(*b"TSRG");
/// `Header::version` of the layout this crate implements.
pub const VERSION: u32 = 1;
/// The most priority classes a region can have (the eight 802.1p priorities).
pub const MAX_CLASSES: usize = 8;
/// The largest number of slots of one class.
pub const MAX_SLOT_COUNT: u32 = 1 << 16;
/// Cache-line size assumed by the layout (Cortex-A and Neoverse cores: 64 bytes).
pub const CACHE_LINE: u32 = 64;
/// Granule to which the total size is rounded (the stage-2 mapping granule).
pub const PAGE_SIZE: u32 = 4096;
/// Bytes in front of each slot's payload: the `u32` length.
pub const SLOT_LENGTH_BYTES: u32 = 4;

/// What a region starts with.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: u32,
    /// [`VERSION`].
    pub version: u32,
    /// Number of priority classes, `1..=8`.
    pub num_classes: u32,
    /// Size of the region in bytes (a multiple of [`PAGE_SIZE`]).
    pub total_size: u32,
    /// One descriptor per class; those at `num_classes..` are zero.
    pub classes: [ClassDescriptor; MAX_CLASSES],
}

/// How one class is laid out, as stored in the [`Header`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassDescriptor {
    /// Number of slots (a power of two, at most [`MAX_SLOT_COUNT`]).
    pub slot_count: u32,
    /// Largest payload of one message, in bytes (at least 1).
    pub slot_size: u32,
    /// Distance between slots in bytes.
    pub slot_stride: u32,
    /// [`NotifyPolicy`] as a number.
    pub notify: u32,
    /// Offset of the class's [`ControlBlock`].
    pub control_offset: u32,
    /// Offset of the class's first slot.
    pub slots_offset: u32,
    /// Zero.
    pub reserved: [u32; 2],
}

/// One index word alone in its cache line.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexLine {
    /// The free-running index.
    pub value: u32,
    /// Zero; keeps other data out of the line.
    pub reserved: [u32; 15],
}

/// The indices of one class, each in its own cache line.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControlBlock {
    /// Number of messages ever published (written by the producer only).
    pub producer: IndexLine,
    /// Number of messages ever consumed (written by the consumer only).
    pub consumer: IndexLine,
    /// Event index for [`NotifyPolicy::Coalesced`] (written by the consumer only): the producer
    /// asks for a doorbell when it publishes the message with this index.
    pub event: IndexLine,
}

/// Size of the header area: the [`Header`] rounded up to a cache line.
pub const HEADER_SIZE: u32 = round_up_const(size_of::<Header>() as u32, CACHE_LINE);
/// Size of one [`ControlBlock`].
pub const CONTROL_BLOCK_SIZE: u32 = size_of::<ControlBlock>() as u32;

const _: () = {
    assert!(size_of::<ClassDescriptor>() == 32);
    assert!(size_of::<Header>() == 16 + 32 * MAX_CLASSES);
    assert!(HEADER_SIZE == 320);
    assert!(CONTROL_BLOCK_SIZE == 3 * CACHE_LINE);
    assert!(offset_of!(ControlBlock, producer) == 0);
    assert!(offset_of!(ControlBlock, consumer) == CACHE_LINE as usize);
    assert!(offset_of!(ControlBlock, event) == 2 * CACHE_LINE as usize);
};

const fn round_up_const(v: u32, align: u32) -> u32 {
    v.div_ceil(align) * align
}

/// `v` rounded up to a multiple of `align` (a power of two), or `None` on overflow.
fn round_up(v: u32, align: u32) -> Option<u32> {
    Some(v.checked_add(align - 1)? & !(align - 1))
}

/// When the producer must ring the receiver's doorbell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotifyPolicy {
    /// After every message.
    EveryMessage,
    /// Only when the receiver asked to be woken ([`Consumer::arm_notification`]), at most once
    /// per request: a flooding sender's interrupt rate is bounded by the receiver's.
    ///
    /// [`Consumer::arm_notification`]: crate::Consumer::arm_notification
    Coalesced,
}

impl NotifyPolicy {
    /// The number stored in [`ClassDescriptor::notify`].
    pub const fn to_raw(self) -> u32 {
        match self {
            NotifyPolicy::EveryMessage => 0,
            NotifyPolicy::Coalesced => 1,
        }
    }

    /// The policy a stored number names, if any.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            0 => Some(NotifyPolicy::EveryMessage),
            1 => Some(NotifyPolicy::Coalesced),
            _ => None,
        }
    }
}

/// What the configuration says about one priority class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClassGeometry {
    /// Number of slots: a power of two in `1..=MAX_SLOT_COUNT`.
    pub slot_count: u32,
    /// Largest payload in bytes, at least 1.
    pub slot_size: u32,
    /// When the receiver is notified.
    pub notify: NotifyPolicy,
}

/// Where one class lives in the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassLayout {
    /// The class as configured.
    pub geometry: ClassGeometry,
    /// Distance between slots in bytes (a multiple of [`CACHE_LINE`]).
    pub slot_stride: u32,
    /// Offset of the class's [`ControlBlock`].
    pub control_offset: u32,
    /// Offset of slot 0.
    pub slots_offset: u32,
}

impl ClassLayout {
    /// Offset of the producer index word.
    pub const fn producer_index_offset(&self) -> usize {
        self.control_offset as usize + offset_of!(ControlBlock, producer)
    }

    /// Offset of the consumer index word.
    pub const fn consumer_index_offset(&self) -> usize {
        self.control_offset as usize + offset_of!(ControlBlock, consumer)
    }

    /// Offset of the event index word.
    pub const fn event_index_offset(&self) -> usize {
        self.control_offset as usize + offset_of!(ControlBlock, event)
    }

    /// Offset of the length word of the slot that free-running index `index` uses.
    pub const fn slot_offset(&self, index: u32) -> usize {
        let slot = index & (self.geometry.slot_count - 1);
        self.slots_offset as usize + slot as usize * self.slot_stride as usize
    }

    /// Offset of the payload of the slot that free-running index `index` uses.
    pub const fn payload_offset(&self, index: u32) -> usize {
        self.slot_offset(index) + SLOT_LENGTH_BYTES as usize
    }

    fn descriptor(&self) -> ClassDescriptor {
        ClassDescriptor {
            slot_count: self.geometry.slot_count,
            slot_size: self.geometry.slot_size,
            slot_stride: self.slot_stride,
            notify: self.geometry.notify.to_raw(),
            control_offset: self.control_offset,
            slots_offset: self.slots_offset,
            reserved: [0; 2],
        }
    }
}

/// Why a layout cannot be built, or a header read from memory is not acceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// Zero classes, or more than [`MAX_CLASSES`].
    ClassCount(usize),
    /// The class's slot count is zero, not a power of two, or above [`MAX_SLOT_COUNT`].
    SlotCount {
        /// The class.
        class: u8,
    },
    /// The class's slot size is zero.
    SlotSize {
        /// The class.
        class: u8,
    },
    /// The region would not fit in 4 GiB (a size or offset overflowed).
    TooLarge,
    /// The region given is smaller than the layout needs.
    RegionTooSmall {
        /// Bytes the layout needs.
        needed: u32,
        /// Bytes the region has.
        available: usize,
    },
    /// The header's magic number is wrong.
    BadMagic(u32),
    /// The header has a version this crate does not implement.
    BadVersion(u32),
    /// The header names an unknown notification policy for the class.
    BadNotifyPolicy {
        /// The class.
        class: u8,
    },
    /// The header's offsets or sizes are not the ones its geometry implies.
    Inconsistent,
}

/// A validated layout: where every class's indices and slots are, and the total size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    num_classes: u8,
    classes: [ClassLayout; MAX_CLASSES],
    total_size: u32,
}

const EMPTY_CLASS: ClassLayout = ClassLayout {
    geometry: ClassGeometry {
        slot_count: 0,
        slot_size: 0,
        notify: NotifyPolicy::EveryMessage,
    },
    slot_stride: 0,
    control_offset: 0,
    slots_offset: 0,
};

impl Layout {
    /// The layout of a region holding `classes` (index = class number; class 0 is the lowest
    /// priority). All arithmetic is checked.
    pub fn new(classes: &[ClassGeometry]) -> Result<Layout, LayoutError> {
        if classes.is_empty() || classes.len() > MAX_CLASSES {
            return Err(LayoutError::ClassCount(classes.len()));
        }
        let mut out = [EMPTY_CLASS; MAX_CLASSES];
        // Control blocks first (all small), then the slot arrays.
        let mut next = HEADER_SIZE;
        for (slot, _) in out.iter_mut().zip(classes) {
            slot.control_offset = next;
            next = next
                .checked_add(CONTROL_BLOCK_SIZE)
                .ok_or(LayoutError::TooLarge)?;
        }
        for (c, (slot, g)) in out.iter_mut().zip(classes).enumerate() {
            let class = c as u8;
            if g.slot_count == 0 || !g.slot_count.is_power_of_two() || g.slot_count > MAX_SLOT_COUNT
            {
                return Err(LayoutError::SlotCount { class });
            }
            if g.slot_size == 0 {
                return Err(LayoutError::SlotSize { class });
            }
            let stride = g
                .slot_size
                .checked_add(SLOT_LENGTH_BYTES)
                .and_then(|v| round_up(v, CACHE_LINE))
                .ok_or(LayoutError::TooLarge)?;
            let bytes = stride
                .checked_mul(g.slot_count)
                .ok_or(LayoutError::TooLarge)?;
            slot.geometry = *g;
            slot.slot_stride = stride;
            slot.slots_offset = next;
            next = next.checked_add(bytes).ok_or(LayoutError::TooLarge)?;
        }
        let total_size = round_up(next, PAGE_SIZE).ok_or(LayoutError::TooLarge)?;
        Ok(Layout {
            num_classes: classes.len() as u8,
            classes: out,
            total_size,
        })
    }

    /// Number of priority classes.
    pub const fn num_classes(&self) -> u8 {
        self.num_classes
    }

    /// Size of the region in bytes (a multiple of [`PAGE_SIZE`]).
    pub const fn total_size(&self) -> u32 {
        self.total_size
    }

    /// Where class `class` lives, or `None` if there is no such class.
    pub fn class(&self, class: u8) -> Option<&ClassLayout> {
        self.classes[..usize::from(self.num_classes)].get(usize::from(class))
    }

    /// All classes, lowest priority first.
    pub fn classes(&self) -> &[ClassLayout] {
        &self.classes[..usize::from(self.num_classes)]
    }

    /// The largest slot size over all classes: a receive buffer of this size never gets
    /// [`RecvError::BufferTooSmall`](crate::RecvError::BufferTooSmall).
    pub fn max_slot_size(&self) -> u32 {
        self.classes()
            .iter()
            .map(|c| c.geometry.slot_size)
            .max()
            .unwrap_or(0)
    }

    /// The header this layout stores.
    pub fn header(&self) -> Header {
        let mut classes = [ClassDescriptor::default(); MAX_CLASSES];
        for (d, c) in classes.iter_mut().zip(self.classes()) {
            *d = c.descriptor();
        }
        Header {
            magic: MAGIC,
            version: VERSION,
            num_classes: u32::from(self.num_classes),
            total_size: self.total_size,
            classes,
        }
    }

    /// Prepares a region (done once by whoever owns it, before either end attaches): writes the
    /// header and sets every class's producer, consumer and event index to `start_index`.
    /// The magic number is written last. Slots are not cleared.
    pub fn initialise<M: SharedMem + ?Sized>(
        &self,
        mem: &M,
        start_index: u32,
    ) -> Result<(), LayoutError> {
        self.check_region(mem)?;
        for c in self.classes() {
            mem.store_u32(c.producer_index_offset(), start_index);
            mem.store_u32(c.consumer_index_offset(), start_index);
            mem.store_u32(c.event_index_offset(), start_index);
        }
        let h = self.header();
        for (i, d) in h.classes.iter().enumerate() {
            let base = offset_of!(Header, classes) + i * size_of::<ClassDescriptor>();
            let words = [
                (offset_of!(ClassDescriptor, slot_count), d.slot_count),
                (offset_of!(ClassDescriptor, slot_size), d.slot_size),
                (offset_of!(ClassDescriptor, slot_stride), d.slot_stride),
                (offset_of!(ClassDescriptor, notify), d.notify),
                (
                    offset_of!(ClassDescriptor, control_offset),
                    d.control_offset,
                ),
                (offset_of!(ClassDescriptor, slots_offset), d.slots_offset),
                (offset_of!(ClassDescriptor, reserved), 0),
                (offset_of!(ClassDescriptor, reserved) + 4, 0),
            ];
            for (off, v) in words {
                mem.store_u32(base + off, v);
            }
        }
        mem.store_u32(offset_of!(Header, version), h.version);
        mem.store_u32(offset_of!(Header, num_classes), h.num_classes);
        mem.store_u32(offset_of!(Header, total_size), h.total_size);
        mem.store_u32(offset_of!(Header, magic), h.magic);
        Ok(())
    }

    /// Reads and validates the header of a region: magic, version, class count, each class's
    /// geometry, and that every stored offset, stride and the total size are exactly the ones
    /// [`Layout::new`] computes from that geometry, and that the region is large enough.
    pub fn read_header<M: SharedMem + ?Sized>(mem: &M) -> Result<Layout, LayoutError> {
        if mem.size() < HEADER_SIZE as usize {
            return Err(LayoutError::RegionTooSmall {
                needed: HEADER_SIZE,
                available: mem.size(),
            });
        }
        let magic = mem.load_u32(offset_of!(Header, magic));
        if magic != MAGIC {
            return Err(LayoutError::BadMagic(magic));
        }
        let version = mem.load_u32(offset_of!(Header, version));
        if version != VERSION {
            return Err(LayoutError::BadVersion(version));
        }
        let n = mem.load_u32(offset_of!(Header, num_classes));
        if n == 0 || n as usize > MAX_CLASSES {
            return Err(LayoutError::ClassCount(n as usize));
        }
        let n = n as usize;
        let mut stored = [ClassDescriptor::default(); MAX_CLASSES];
        let mut geometry = [EMPTY_CLASS.geometry; MAX_CLASSES];
        for (i, (d, g)) in stored
            .iter_mut()
            .zip(geometry.iter_mut())
            .enumerate()
            .take(n)
        {
            let base = offset_of!(Header, classes) + i * size_of::<ClassDescriptor>();
            let word = |off: usize| mem.load_u32(base + off);
            *d = ClassDescriptor {
                slot_count: word(offset_of!(ClassDescriptor, slot_count)),
                slot_size: word(offset_of!(ClassDescriptor, slot_size)),
                slot_stride: word(offset_of!(ClassDescriptor, slot_stride)),
                notify: word(offset_of!(ClassDescriptor, notify)),
                control_offset: word(offset_of!(ClassDescriptor, control_offset)),
                slots_offset: word(offset_of!(ClassDescriptor, slots_offset)),
                reserved: [0; 2],
            };
            *g = ClassGeometry {
                slot_count: d.slot_count,
                slot_size: d.slot_size,
                notify: NotifyPolicy::from_raw(d.notify)
                    .ok_or(LayoutError::BadNotifyPolicy { class: i as u8 })?,
            };
        }
        let layout = Layout::new(&geometry[..n])?;
        let total = mem.load_u32(offset_of!(Header, total_size));
        if total != layout.total_size
            || layout
                .classes()
                .iter()
                .zip(&stored)
                .any(|(c, d)| c.descriptor() != *d)
        {
            return Err(LayoutError::Inconsistent);
        }
        layout.check_region(mem)?;
        Ok(layout)
    }

    /// `Ok` if `mem` is large enough for this layout.
    pub fn check_region<M: SharedMem + ?Sized>(&self, mem: &M) -> Result<(), LayoutError> {
        if mem.size() < self.total_size as usize {
            return Err(LayoutError::RegionTooSmall {
                needed: self.total_size,
                available: mem.size(),
            });
        }
        Ok(())
    }

    /// What attaching an end to `mem` starts from: checks that `mem` is large enough, then
    /// reads one index per class, at the offset `index_offset` gives (the end's own index:
    /// producer or consumer), each once. Classes past `num_classes` read 0.
    pub(crate) fn attach_indices<M: SharedMem + ?Sized>(
        &self,
        mem: &M,
        index_offset: fn(&ClassLayout) -> usize,
    ) -> Result<[u32; MAX_CLASSES], LayoutError> {
        self.check_region(mem)?;
        let mut out = [0; MAX_CLASSES];
        for (i, cl) in out.iter_mut().zip(self.classes()) {
            *i = mem.load_u32(index_offset(cl));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(slot_count: u32, slot_size: u32) -> ClassGeometry {
        ClassGeometry {
            slot_count,
            slot_size,
            notify: NotifyPolicy::EveryMessage,
        }
    }

    #[test]
    fn offsets_are_aligned_and_disjoint() {
        let l = Layout::new(&[g(4, 1), g(8, 60), g(16, 61), g(1, 1500)]).unwrap();
        assert_eq!(l.num_classes(), 4);
        assert_eq!(l.total_size() % PAGE_SIZE, 0);
        let mut end_prev = HEADER_SIZE as usize;
        for c in l.classes() {
            assert_eq!(c.control_offset % CACHE_LINE, 0);
            assert_eq!(c.slots_offset % CACHE_LINE, 0);
            assert_eq!(c.slot_stride % CACHE_LINE, 0);
            assert!(c.slot_stride >= c.geometry.slot_size + SLOT_LENGTH_BYTES);
            // Each index in its own cache line.
            let lines = [
                c.producer_index_offset() / 64,
                c.consumer_index_offset() / 64,
                c.event_index_offset() / 64,
            ];
            assert!(lines[0] != lines[1] && lines[1] != lines[2] && lines[0] != lines[2]);
            assert!(c.control_offset as usize >= end_prev);
            end_prev = c.control_offset as usize + CONTROL_BLOCK_SIZE as usize;
        }
        for c in l.classes() {
            assert!(c.slots_offset as usize >= end_prev);
            end_prev = c.slots_offset as usize + (c.slot_stride * c.geometry.slot_count) as usize;
        }
        assert!(end_prev <= l.total_size() as usize);
        // Strides: 1+4 -> 64, 60+4 -> 64, 61+4 -> 128, 1500+4 -> 1536.
        let strides: [u32; 4] = core::array::from_fn(|i| l.classes()[i].slot_stride);
        assert_eq!(strides, [64, 64, 128, 1536]);
    }

    #[test]
    fn slot_offsets_wrap_with_the_index() {
        let l = Layout::new(&[g(4, 8)]).unwrap();
        let c = l.class(0).unwrap();
        assert_eq!(c.slot_offset(0), c.slot_offset(4));
        assert_eq!(c.slot_offset(u32::MAX), c.slot_offset(3));
        assert_eq!(c.payload_offset(1), c.slot_offset(1) + 4);
        assert!(l.class(1).is_none());
    }

    #[test]
    fn rejects_bad_geometry() {
        assert_eq!(Layout::new(&[]), Err(LayoutError::ClassCount(0)));
        assert_eq!(Layout::new(&[g(1, 1); 9]), Err(LayoutError::ClassCount(9)));
        assert_eq!(
            Layout::new(&[g(1, 1), g(3, 1)]),
            Err(LayoutError::SlotCount { class: 1 })
        );
        assert_eq!(
            Layout::new(&[g(0, 1)]),
            Err(LayoutError::SlotCount { class: 0 })
        );
        assert_eq!(
            Layout::new(&[g(MAX_SLOT_COUNT * 2, 1)]),
            Err(LayoutError::SlotCount { class: 0 })
        );
        assert_eq!(
            Layout::new(&[g(1, 0)]),
            Err(LayoutError::SlotSize { class: 0 })
        );
    }

    #[test]
    fn rejects_overflow() {
        // Stride overflows.
        assert_eq!(
            Layout::new(&[g(1, u32::MAX - 2)]),
            Err(LayoutError::TooLarge)
        );
        // stride * count overflows.
        assert_eq!(
            Layout::new(&[g(MAX_SLOT_COUNT, 1 << 20)]),
            Err(LayoutError::TooLarge)
        );
        // Sum of classes overflows.
        assert_eq!(
            Layout::new(&[g(MAX_SLOT_COUNT, (1 << 15) - 4); 2]),
            Err(LayoutError::TooLarge)
        );
        // Page rounding overflows: the end (header 320 + one control block 192 + stride) lies
        // 64 bytes past the last page boundary below 4 GiB.
        assert_eq!(
            Layout::new(&[g(1, u32::MAX - 4095 - 512 + 64 - SLOT_LENGTH_BYTES)]),
            Err(LayoutError::TooLarge)
        );
    }

    #[test]
    fn notify_policy_round_trips() {
        for p in [NotifyPolicy::EveryMessage, NotifyPolicy::Coalesced] {
            assert_eq!(NotifyPolicy::from_raw(p.to_raw()), Some(p));
        }
        assert_eq!(NotifyPolicy::from_raw(2), None);
    }
}
