//! The SMCCC Arm Architecture Service calls a guest may make (DEN0028): `SMCCC_ARCH_FEATURES`
//! and the speculation workarounds `SMCCC_ARCH_WORKAROUND_1` (CVE-2017-5715, branch target
//! injection), `_2` (CVE-2018-3639, speculative store bypass) and `_3` (CVE-2022-23960, branch
//! history injection).
//!
//! A workaround is only as good as the firmware (EL3) that implements it, so Tessera asks the
//! firmware: once at boot whether it speaks SMCCC 1.1 or later (PSCI_FEATURES(SMCCC_VERSION),
//! then SMCCC_VERSION), and, on each core the first time a guest asks, what
//! `SMCCC_ARCH_FEATURES` says of each workaround on *that* core (the answer may differ between
//! cores of a heterogeneous system; each vCPU has its core to itself). Guests get:
//!
//! | firmware on this core | `ARCH_FEATURES(WA)` for the guest | the call `WA` |
//! | --- | --- | --- |
//! | no SMCCC 1.1, or < 0 (not supported) | `NOT_SUPPORTED` (-1) | `NOT_SUPPORTED`, not forwarded |
//! | WA1/WA3: 0 (needed) or 1 (not needed here) | the same | forwarded to the firmware |
//! | WA2: 0 (dynamic, guest could turn it off) | `NOT_REQUIRED` (-2): on, for good | not forwarded, returns `NOT_REQUIRED` |
//! | WA2: 1 or -2 (not needed) | the same | not forwarded, returns the same |
//!
//! WA2 is never forwarded: turning the store-bypass mitigation off for "this PE" would turn it
//! off for the hypervisor code that runs on the core too. Where the firmware's mitigation is
//! dynamic, Tessera asks it on (WA2 with x1 = 1) on that core and keeps it so.

use core::sync::atomic::{AtomicI64, AtomicU32, Ordering};

use crate::arch::psci::{self, func, ret};
use crate::ids::CoreId;
use crate::vm::MAX_PCPUS;

pub use tessera_abi::smccc::arch::{
    FEATURES as SMCCC_ARCH_FEATURES, NOT_REQUIRED, VERSION as SMCCC_VERSION, WORKAROUND_1,
    WORKAROUND_2, WORKAROUND_3,
};

/// The three workarounds, in the order of the per-core cache.
const WORKAROUNDS: [u32; 3] = [WORKAROUND_1, WORKAROUND_2, WORKAROUND_3];

/// The firmware's SMCCC version (0 = unknown yet, 1 = below 1.1: no ARCH_FEATURES).
static FIRMWARE_VERSION: AtomicU32 = AtomicU32::new(0);
/// Marks a per-core answer not asked yet.
const UNKNOWN: i64 = i64::MIN;
/// The firmware's ARCH_FEATURES answer per core and workaround.
static ANSWERS: [[AtomicI64; 3]; MAX_PCPUS] =
    [const { [const { AtomicI64::new(UNKNOWN) }; 3] }; MAX_PCPUS];

/// Asks the firmware (once, at boot, on the boot core) which SMCCC version it implements,
/// and what it says of the workarounds on the boot core; reports the outcome.
pub fn init() {
    let mut version = 1; // below 1.1: no ARCH_FEATURES
    if psci::smc(func::FEATURES, SMCCC_VERSION as u64, 0, 0) == ret::SUCCESS {
        let v = psci::smc(SMCCC_VERSION, 0, 0, 0);
        if v >= 0x1_0001 {
            version = v as u32;
        }
    }
    FIRMWARE_VERSION.store(version, Ordering::Release);
    if version == 1 {
        crate::hprintln!(
            "smccc: the firmware has no SMCCC 1.1 (no ARCH_FEATURES): guests are told the \
             speculation workarounds are not supported"
        );
        return;
    }
    let core = crate::arch::core_index();
    crate::hprintln!(
        "smccc: firmware SMCCC {}.{}; on core {}: WORKAROUND_1 {}, _2 {}, _3 {}",
        version >> 16,
        version & 0xffff,
        core,
        firmware_answer(core, 0),
        firmware_answer(core, 1),
        firmware_answer(core, 2)
    );
}

/// What the firmware's ARCH_FEATURES says of workaround `k` on core `core` (this core),
/// asked the first time and remembered.
fn firmware_answer(core: CoreId, k: usize) -> i64 {
    let Some(slot) = ANSWERS.get(core.index()).map(|a| &a[k]) else {
        return ret::NOT_SUPPORTED;
    };
    let cached = slot.load(Ordering::Acquire);
    if cached != UNKNOWN {
        return cached;
    }
    let answer = if FIRMWARE_VERSION.load(Ordering::Acquire) > 1 {
        let a = psci::smc(SMCCC_ARCH_FEATURES, WORKAROUNDS[k] as u64, 0, 0);
        if WORKAROUNDS[k] == WORKAROUND_2 && a == 0 {
            // Dynamic mitigation: turn it on for this core, for good.
            psci::smc(WORKAROUND_2, 1, 0, 0);
        }
        a
    } else {
        ret::NOT_SUPPORTED
    };
    slot.store(answer, Ordering::Release);
    answer
}

/// What a guest on this core is told of workaround `k` (see the module table).
fn guest_answer(k: usize) -> i64 {
    let fw = firmware_answer(crate::arch::core_index(), k);
    match (WORKAROUNDS[k], fw) {
        (_, a) if a < 0 && a != NOT_REQUIRED => ret::NOT_SUPPORTED,
        (WORKAROUND_2, 0) => NOT_REQUIRED,
        (WORKAROUND_2, a) => a,
        (_, a @ (0 | 1)) => a,
        _ => ret::NOT_SUPPORTED,
    }
}

/// Handles the SMCCC arch-service call `fid` (32-bit convention; `x1` its first argument) of
/// a guest on this core: `Some(x0)` for `SMCCC_ARCH_FEATURES` and the three workarounds,
/// `None` for anything else (left to the caller: SMCCC_VERSION, PSCI, ...).
pub fn arch_call(fid: u32, x1: u64) -> Option<i64> {
    let k = |id: u32| WORKAROUNDS.iter().position(|&w| w == id);
    match fid {
        SMCCC_ARCH_FEATURES => Some(match x1 as u32 {
            SMCCC_VERSION | SMCCC_ARCH_FEATURES => ret::SUCCESS,
            id => match k(id) {
                Some(i) => guest_answer(i),
                None => ret::NOT_SUPPORTED,
            },
        }),
        WORKAROUND_1 | WORKAROUND_3 => {
            let i = k(fid)?;
            Some(match guest_answer(i) {
                0 | 1 => psci::smc(fid, 0, 0, 0),
                _ => ret::NOT_SUPPORTED,
            })
        }
        WORKAROUND_2 => Some(match guest_answer(1) {
            a if a < 0 && a != NOT_REQUIRED => ret::NOT_SUPPORTED,
            a => a,
        }),
        _ => None,
    }
}
