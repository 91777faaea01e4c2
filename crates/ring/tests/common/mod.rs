//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::atomic::AtomicU32;

use tessera_ring::{ClassGeometry, Layout, NotifyPolicy};

/// Zeroed words for a region of `layout`.
pub fn region(layout: &Layout) -> Vec<AtomicU32> {
    (0..layout.total_size() / 4)
        .map(|_| AtomicU32::new(0))
        .collect()
}

/// A class of `slot_count` slots of `slot_size` bytes.
pub fn class(slot_count: u32, slot_size: u32, notify: NotifyPolicy) -> ClassGeometry {
    ClassGeometry {
        slot_count,
        slot_size,
        notify,
    }
}

/// The payload of message `seq` of `class`, `len` bytes long (distinct for distinct
/// `(class, seq)` as soon as `len >= 1`... and mostly before).
pub fn payload(class: u8, seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (seq as usize)
                .wrapping_mul(131)
                .wrapping_add(i * 7 + class as usize * 37) as u8
        })
        .collect()
}
