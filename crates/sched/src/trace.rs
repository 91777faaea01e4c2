//! The per-core trace: a fixed-capacity ring of [`TraceEvent`]s that overwrites the oldest
//! event when full and counts how many it overwrote.
//!
//! A ring of capacity 0 records nothing and occupies no memory for events; recording can also
//! be switched off at run time ([`TraceRing::set_enabled`]), which leaves one branch per event.

use crate::Ticks;

/// What a [`TraceEvent`] records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TraceKind {
    /// The core switched to running `server`'s vCPU.
    Switch = 0,
    /// The core went idle. `server` is the periodic server whose budget idles away, or
    /// [`TraceEvent::NO_SERVER`] for a plain idle core.
    Idle = 1,
    /// A period boundary of a deferrable, periodic or polling server: budget refilled.
    /// `time` is the (latest) release instant, `arg` how many periods it covers (more than 1
    /// when `schedule` was called late).
    Release = 2,
    /// `server`'s budget reached 0 (for polling, also when the vCPU blocked with budget left).
    Deplete = 3,
    /// A sporadic chunk returned or a CBS budget refilled; `arg` is the amount.
    Replenish = 4,
    /// The vCPU became runnable; `arg` is 1 when its wake timer did it, 0 for [`wake`].
    ///
    /// [`wake`]: crate::CoreScheduler::wake
    Wake = 5,
    /// The vCPU became idle (trapped WFI with nothing pending).
    Block = 6,
    /// An interrupt was injected into the vCPU; recorded by the hypervisor, `arg` is its INTID.
    Inject = 7,
    /// The vCPU was powered on.
    Online = 8,
    /// The vCPU was powered off.
    Offline = 9,
}

/// One trace record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceEvent {
    /// When it happened, in counter ticks. Events processed late (a `schedule` call after the
    /// event was due) carry the instant they were due, so the ring is ordered by recording,
    /// not strictly by `time`.
    pub time: Ticks,
    /// What happened.
    pub kind: TraceKind,
    /// Server (vCPU slot on this core) it concerns, or [`TraceEvent::NO_SERVER`].
    pub server: u8,
    /// Kind-specific argument (see [`TraceKind`]).
    pub arg: u64,
}

impl TraceEvent {
    /// `server` value of events that concern no server.
    pub const NO_SERVER: u8 = u8::MAX;
    const EMPTY: TraceEvent = TraceEvent {
        time: 0,
        kind: TraceKind::Idle,
        server: Self::NO_SERVER,
        arg: 0,
    };
}

/// Fixed-capacity ring of trace events, oldest overwritten first.
#[derive(Clone, Debug)]
pub struct TraceRing<const C: usize> {
    buf: [TraceEvent; C],
    /// Index of the oldest event.
    head: usize,
    len: usize,
    dropped: u64,
    enabled: bool,
    /// When full, drop new events (keep the oldest) instead of overwriting the oldest.
    keep_first: bool,
}

impl<const C: usize> Default for TraceRing<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const C: usize> TraceRing<C> {
    /// An empty ring, recording enabled (if `C > 0`).
    pub const fn new() -> Self {
        Self {
            buf: [TraceEvent::EMPTY; C],
            head: 0,
            len: 0,
            dropped: 0,
            enabled: true,
            keep_first: false,
        }
    }

    /// When full, keep the first events and drop (and count) new ones, instead of overwriting
    /// the oldest: a trace then shows how a run started, e.g. a demo's schedule from boot.
    pub fn set_keep_first(&mut self, keep_first: bool) {
        self.keep_first = keep_first;
    }

    /// Switches recording on or off (events already recorded stay).
    pub fn set_enabled(&mut self, on: bool) {
        self.enabled = on;
    }

    /// Whether events are being recorded (false for capacity 0).
    pub fn is_enabled(&self) -> bool {
        C > 0 && self.enabled
    }

    /// Appends an event, overwriting the oldest one if the ring is full.
    #[inline]
    pub fn push(&mut self, ev: TraceEvent) {
        if C == 0 || !self.enabled {
            return;
        }
        if self.len == C && self.keep_first {
            self.dropped = self.dropped.saturating_add(1);
            return;
        }
        let mut tail = self.head + self.len;
        if tail >= C {
            tail -= C;
        }
        if let Some(slot) = self.buf.get_mut(tail) {
            *slot = ev;
        }
        if self.len == C {
            self.head += 1;
            if self.head == C {
                self.head = 0;
            }
            self.dropped = self.dropped.saturating_add(1);
        } else {
            self.len += 1;
        }
    }

    /// Removes and returns the oldest event.
    pub fn pop(&mut self) -> Option<TraceEvent> {
        if self.len == 0 {
            return None;
        }
        let ev = self.buf.get(self.head).copied();
        self.head += 1;
        if self.head == C {
            self.head = 0;
        }
        self.len -= 1;
        ev
    }

    /// Number of events held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no event is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Capacity `C`.
    pub const fn capacity(&self) -> usize {
        C
    }

    /// How many events were overwritten before being read, since creation or [`clear`].
    ///
    /// [`clear`]: TraceRing::clear
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Forgets all events and resets the drop count.
    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
        self.dropped = 0;
    }

    /// The held events, oldest first, without removing them.
    pub fn iter(&self) -> impl Iterator<Item = TraceEvent> + '_ {
        (0..self.len).filter_map(move |i| {
            let mut k = self.head + i;
            if k >= C {
                k -= C;
            }
            self.buf.get(k).copied()
        })
    }

    /// Removes and yields the held events, oldest first.
    pub fn drain(&mut self) -> impl Iterator<Item = TraceEvent> + '_ {
        core::iter::from_fn(move || self.pop())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: u64) -> TraceEvent {
        TraceEvent {
            time: t,
            kind: TraceKind::Wake,
            server: 0,
            arg: 0,
        }
    }

    #[test]
    fn ring_overwrites_oldest_and_counts() {
        let mut r: TraceRing<3> = TraceRing::new();
        for t in 0..5 {
            r.push(ev(t));
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.dropped(), 2);
        let times: std::vec::Vec<u64> = r.iter().map(|e| e.time).collect();
        assert_eq!(times, [2, 3, 4]);
        let drained: std::vec::Vec<u64> = r.drain().map(|e| e.time).collect();
        assert_eq!(drained, [2, 3, 4]);
        assert!(r.is_empty());
        r.push(ev(9));
        assert_eq!(r.pop().map(|e| e.time), Some(9));
        assert_eq!(r.pop(), None);
    }

    #[test]
    fn zero_capacity_and_disabled_record_nothing() {
        let mut z: TraceRing<0> = TraceRing::new();
        z.push(ev(1));
        assert!(z.is_empty());
        assert!(!z.is_enabled());
        assert_eq!(z.pop(), None);
        let mut r: TraceRing<4> = TraceRing::new();
        r.set_enabled(false);
        r.push(ev(1));
        assert!(r.is_empty());
        assert_eq!(r.dropped(), 0);
    }
}
