//! Real threads on real atomics: each thread is one vCPU of a VM and also its core. In every
//! round a fresh VM boots; its vCPUs call CPU_ON, CPU_OFF, SYSTEM_OFF and SYSTEM_RESET at
//! random while their "cores" start and stop them, until the VM is off. A reset "rewrites the
//! memory" only after checking that no other thread still considers itself on its core; the
//! VM is counted off exactly once; the machine's count never reaches 0 (a bystander VM).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use tessera_lifecycle::{CpuOff, Lifecycle, RunningCount, VcpuState, VmOff, VmState};

const THREADS: usize = 4;
const ROUNDS: usize = 5000;

struct Shared {
    lifes: Vec<Lifecycle>,
    /// Thread `i` is executing as vCPU `i` (set after its core started it, cleared before it
    /// leaves).
    executing: [AtomicBool; THREADS],
    count: RunningCount,
    ended: AtomicUsize,
    resets: AtomicUsize,
    wiped_under: AtomicUsize,
    barrier: Barrier,
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn vcpu_thread(sh: Arc<Shared>, me: usize) {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ ((me as u64 + 1) * 0x1234_5678);
    for round in 0..ROUNDS {
        sh.barrier.wait();
        let life = &sh.lifes[round];
        let mut spins = 0u64;
        loop {
            spins += 1;
            assert!(
                spins < 50_000_000,
                "round {round}: vCPU {me} never finished"
            );
            let w = life.snapshot();
            match w.vcpu(me) {
                VcpuState::OnPending => {
                    if life.core_start(me).is_ok() {
                        sh.executing[me].store(true, Ordering::SeqCst);
                    }
                }
                VcpuState::StopRequested => {
                    sh.executing[me].store(false, Ordering::SeqCst);
                    life.core_stop(me).expect("only my core stops me");
                }
                VcpuState::Off => {
                    if w.vm() == VmState::Off {
                        break;
                    }
                    std::thread::yield_now();
                }
                VcpuState::On => match xorshift(&mut rng) % 100 {
                    0..=39 => {
                        let t = (xorshift(&mut rng) % THREADS as u64) as usize;
                        let _ = life.cpu_on(t);
                    }
                    40..=54 => {
                        sh.executing[me].store(false, Ordering::SeqCst);
                        match life.cpu_off(me).expect("on core") {
                            CpuOff::Off => {}
                            CpuOff::Last(e) => {
                                sh.ended.fetch_add(1, Ordering::SeqCst);
                                assert!(!sh.count.count_off(e), "machine off with a bystander");
                            }
                            CpuOff::Stopping => {
                                life.core_stop(me).expect("stopping");
                            }
                        }
                    }
                    55..=57 => {
                        sh.executing[me].store(false, Ordering::SeqCst);
                        match life.vm_off(Some(me)).expect("on core") {
                            VmOff::Ended { ended, .. } => {
                                sh.ended.fetch_add(1, Ordering::SeqCst);
                                assert!(!sh.count.count_off(ended), "machine off with a bystander");
                            }
                            VmOff::AlreadyEnding => {
                                life.core_stop(me).expect("stopping");
                            }
                        }
                    }
                    58..=69 => {
                        sh.executing[me].store(false, Ordering::SeqCst);
                        match life.reset_begin(me) {
                            Ok(t) => reset(&sh, life, me, t.generation),
                            Err(_) => {
                                // Someone else is resetting or ending the VM: I am stopping.
                                assert_eq!(life.snapshot().vcpu(me), VcpuState::StopRequested);
                                life.core_stop(me).expect("stopping");
                            }
                        }
                    }
                    _ => std::hint::spin_loop(),
                },
            }
        }
        assert!(!sh.executing[me].load(Ordering::SeqCst));
        sh.barrier.wait();
    }
}

fn reset(sh: &Shared, life: &Lifecycle, me: usize, g: u32) {
    let mut spins = 0u64;
    while !life.snapshot().reset_ready(g) {
        spins += 1;
        assert!(spins < 50_000_000, "reset never ready");
        std::thread::yield_now();
    }
    // "Rewrite memory": nobody may still be executing.
    for (i, e) in sh.executing.iter().enumerate() {
        if i != me && e.load(Ordering::SeqCst) {
            sh.wiped_under.fetch_add(1, Ordering::SeqCst);
        }
    }
    sh.resets.fetch_add(1, Ordering::SeqCst);
    // One reset in eight fails (reload error): the VM ends.
    if g % 8 == 7 {
        let e = life.reset_fail(g).expect("my reset");
        sh.ended.fetch_add(1, Ordering::SeqCst);
        assert!(!sh.count.count_off(e));
    } else {
        life.reset_complete(g, 0).expect("my reset");
    }
}

#[test]
fn threads_race_every_operation() {
    let sh = Arc::new(Shared {
        lifes: (0..ROUNDS).map(|_| Lifecycle::new()).collect(),
        executing: [const { AtomicBool::new(false) }; THREADS],
        count: RunningCount::new(),
        ended: AtomicUsize::new(0),
        resets: AtomicUsize::new(0),
        wiped_under: AtomicUsize::new(0),
        barrier: Barrier::new(THREADS + 1),
    });
    // The bystander VM.
    let _ = sh.count.count_on(Lifecycle::new().boot(1, 0).unwrap());
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let sh = Arc::clone(&sh);
            std::thread::spawn(move || vcpu_thread(sh, i))
        })
        .collect();
    for round in 0..ROUNDS {
        // Boot with every vCPU started, so that they race from the first moment.
        let life = &sh.lifes[round];
        let _ = sh.count.count_on(life.boot(THREADS, 0).unwrap());
        for i in 1..THREADS {
            life.cpu_on(i).unwrap();
        }
        assert_eq!(sh.count.get(), 2);
        sh.barrier.wait();
        sh.barrier.wait();
        let w = life.snapshot();
        assert_eq!(w.vm(), VmState::Off);
        assert!(w.all_off(), "{w:?}");
        assert_eq!(
            sh.ended.load(Ordering::SeqCst),
            round + 1,
            "VM ended once per round"
        );
        assert_eq!(sh.count.get(), 1, "round {round}");
    }
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(sh.wiped_under.load(Ordering::SeqCst), 0);
    let resets = sh.resets.load(Ordering::SeqCst);
    eprintln!("{ROUNDS} rounds, {resets} resets");
    assert!(
        resets > ROUNDS / 4,
        "too few resets to mean anything: {resets}"
    );
}
