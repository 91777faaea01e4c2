//! The priority-aware inter-VM ring protocol of Tessera (DESIGN.md §6), shared by the
//! hypervisor, its tests and the guests.
//!
//! A *region* is memory shared by two VMs carrying messages in one direction (a two-way channel
//! uses two regions). It holds a header and, per priority class, a single-producer /
//! single-consumer ring of fixed-size slots ([`layout`]).
//!
//! - **Classes**: 1 to 8, numbered as 802.1p priorities: **class 0 is the lowest priority,
//!   class `num_classes - 1` the highest** (with 8 classes, 7 is the highest). Mapping a PCP
//!   value to a class is the configuration's business.
//! - **Indices**: per class, a producer index (messages ever published) and a consumer index
//!   (messages ever consumed), free-running `u32`s that wrap; slot = index mod slot count.
//!   Each sits alone in its own 64-byte cache line, as does the event index.
//! - **Sending** ([`Producer::send`]): copy into the slot the producer owns, write the length,
//!   publish the producer index (release). A full class returns [`SendError::Full`] at once:
//!   nothing blocks, nothing is dropped silently.
//! - **Receiving** ([`Consumer::try_recv`]): strictly by priority; every call scans from the
//!   highest class, so a high-priority message waits behind at most one lower one.
//! - **Trust**: each end keeps its own index privately and only *writes* it to shared memory;
//!   everything it *reads* (the peer's index, lengths) is read once and validated
//!   (`0 <= producer - consumer <= slot_count`, `length <= slot_size`). A peer can corrupt only
//!   its own messages; violations are counted per class and reported
//!   ([`RecvError::Violation`], [`SendError::PeerViolation`]).
//! - **Notification** ([`NotifyPolicy`]): `EveryMessage` asks for a doorbell after each
//!   message; `Coalesced` works event-index style: the consumer stores the consumer index in
//!   the event index when it wants to be woken ([`Consumer::arm_notification`]), and the
//!   producer asks for a doorbell only when it publishes exactly that message, so at most once
//!   per arming.
//!
//! Shared memory is never referenced as Rust data: all access goes through [`SharedMem`].
//! [`AtomicSliceMem`] implements it over `&[AtomicU32]` (safe; host tests); with the `raw`
//! feature, `RawSharedMem` implements it over a raw pointer for guests (the crate's only
//! unsafe code; without the feature the crate is `forbid(unsafe_code)`).
//!
//! ```
//! use core::sync::atomic::AtomicU32;
//! use tessera_ring::*;
//!
//! let layout = Layout::new(&[
//!     ClassGeometry { slot_count: 64, slot_size: 1514, notify: NotifyPolicy::Coalesced },
//!     ClassGeometry { slot_count: 8, slot_size: 256, notify: NotifyPolicy::EveryMessage },
//! ])?;
//! let words: Vec<AtomicU32> = (0..layout.total_size() / 4).map(|_| AtomicU32::new(0)).collect();
//! let mem = AtomicSliceMem::new(&words);
//! layout.initialise(&mem, 0)?; // once, by the region's owner
//!
//! let mut tx = Producer::attach(mem, layout)?;
//! let mut rx = Consumer::attach(mem, Layout::read_header(&mem)?)?;
//! assert_eq!(tx.send(0, b"bulk"), Ok(Doorbell::Ring)); // the receiver starts armed
//! assert_eq!(tx.send(0, b"more"), Ok(Doorbell::Skip)); // coalesced
//! assert_eq!(tx.send(1, b"urgent"), Ok(Doorbell::Ring));
//!
//! let mut buf = [0u8; 1514];
//! assert_eq!(rx.try_recv(&mut buf), Ok(Some(Received { class: 1, len: 6 })));
//! assert_eq!(rx.try_recv(&mut buf), Ok(Some(Received { class: 0, len: 4 })));
//! assert_eq!(rx.try_recv(&mut buf), Ok(Some(Received { class: 0, len: 4 })));
//! assert_eq!(rx.try_recv(&mut buf), Ok(None));
//! assert_eq!(rx.arm_notification(), Armed::Idle); // may sleep until a doorbell
//! # Ok::<(), LayoutError>(())
//! ```
#![no_std]
#![cfg_attr(not(feature = "raw"), forbid(unsafe_code))]
#![cfg_attr(feature = "raw", deny(unsafe_code))]
#![warn(missing_docs)]

mod consumer;
pub mod layout;
mod mem;
mod producer;
#[cfg(feature = "raw")]
#[allow(unsafe_code)]
mod raw;

pub use consumer::{Armed, Consumer, ConsumerStats, Received, RecvError, ViolationKind};
pub use layout::{ClassGeometry, ClassLayout, Layout, LayoutError, NotifyPolicy, MAX_CLASSES};
pub use mem::{AtomicSliceMem, SharedMem};
pub use producer::{Doorbell, Producer, ProducerStats, SendError};
#[cfg(feature = "raw")]
pub use raw::RawSharedMem;
