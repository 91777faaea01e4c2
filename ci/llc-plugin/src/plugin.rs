//! The QEMU side: argument parsing at install, instrumentation at translation, the report at
//! exit. All state lives in [`STATE`]; the callbacks lock only the executing vCPU's entry and
//! the one LLC set an access maps to.
//!
//! # Which core executes
//!
//! QEMU 10.0 passes each callback a vCPU index that, without `CF_PARALLEL` (single-threaded
//! TCG, which `-icount` imposes), is a constant compiled into the translation block: the index
//! of the vCPU that *translated* it. Blocks are shared between vCPUs (they are keyed by physical
//! address), so code several cores run — the hypervisor's — is then counted on whichever core
//! translated it first. With `core_reg=<register>` the plugin instead reads, at the start of
//! every block, a register that holds the executing core's index (Tessera: `TPIDR_EL2`), keeps
//! it in a thread-local ([`CURRENT`]: the vCPUs that share a host thread run one block at a
//! time), and attributes the block's fetches, accesses and markers to it.

use std::cell::Cell;
use std::sync::{Mutex, OnceLock, PoisonError};

use anyhow::anyhow;
use qemu_plugin::{
    qemu_plugin_get_registers, qemu_plugin_register_atexit_cb, register, Args, CallbackFlags,
    HasCallbacks, Info, MemRW, PluginId, Register, RegisterDescriptor, Result, TranslationBlock,
    VCPUIndex,
};

use crate::model::{self, Config, SharedCache, Vcpu, MARKER_END, MARKER_START};

/// One vCPU's state, alone on 128 bytes (two vCPUs' counters on one line, or on adjacent lines
/// the host prefetches together, make their threads slow each other down).
#[repr(align(128))]
struct PaddedVcpu(Mutex<Vcpu>);

struct State {
    config: Config,
    llc: SharedCache,
    vcpus: Vec<PaddedVcpu>,
}

static STATE: OnceLock<State> = OnceLock::new();

/// The `core_reg=` register, found when the first vCPU is initialised.
static CORE_REG: OnceLock<RegisterDescriptor<'static>> = OnceLock::new();

thread_local! {
    /// The core executing the current translation block on this host thread (`core_reg=`).
    static CURRENT: Cell<Option<VCPUIndex>> = const { Cell::new(None) };
}

/// The core to charge for a callback that QEMU gave vCPU index `vcpu`.
fn core_of(vcpu: VCPUIndex) -> VCPUIndex {
    if CORE_REG.get().is_some() {
        CURRENT.with(Cell::get).unwrap_or(vcpu)
    } else {
        vcpu
    }
}

/// At the start of a block: reads `core_reg` and makes it the current core (a value that is
/// no core of this machine falls back to QEMU's `vcpu`); returns it.
fn enter_block(vcpu: VCPUIndex) -> VCPUIndex {
    let n = STATE.get().map_or(0, |s| s.vcpus.len());
    let read = CORE_REG.get().and_then(|r| r.read().ok()).map(|bytes| {
        let mut le = [0u8; 8];
        let k = bytes.len().min(8);
        le[..k].copy_from_slice(&bytes[..k]);
        u64::from_le_bytes(le)
    });
    let core = match read {
        Some(c) if c < n as u64 => c as VCPUIndex,
        _ => vcpu,
    };
    CURRENT.with(|c| c.set(Some(core)));
    core
}

/// Runs `f` on vCPU `index`'s state (nothing for an index beyond the machine's maximum).
fn with_vcpu(index: VCPUIndex, f: impl FnOnce(&mut Vcpu, &SharedCache)) {
    let Some(s) = STATE.get() else { return };
    if let Some(v) = s.vcpus.get(index as usize) {
        let mut v = v.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut v, &s.llc);
    }
}

fn write_report() {
    let Some(s) = STATE.get() else { return };
    let vcpus: Vec<Vcpu> = s
        .vcpus
        .iter()
        .map(|v| v.0.lock().unwrap_or_else(PoisonError::into_inner).clone())
        .collect();
    let text = model::report(s.config.llc, s.config.l1, &vcpus);
    match &s.config.out {
        Some(path) => match std::fs::write(path, &text) {
            Ok(()) => eprintln!("tessera-llc: report written to {path}"),
            Err(e) => eprintln!("tessera-llc: cannot write {path}: {e}\n{text}"),
        },
        None => eprint!("{text}"),
    }
}

/// The plugin object (its callbacks run one at a time, under the crate's global lock).
#[derive(Default)]
struct LlcPlugin {
    /// Host address minus guest physical address of the RAM block (`ram=`), learnt from the
    /// first translation block in RAM, which runs with the MMU off (virtual = physical).
    ram_host_offset: Option<u64>,
}

impl LlcPlugin {
    /// The physical addresses of the cache lines `tb`'s instructions occupy (in order, no
    /// repeats), when `ram=` asks for instruction fetches and the block lies in RAM.
    fn fetch_lines(&mut self, tb: &TranslationBlock) -> Vec<u64> {
        let Some(state) = STATE.get() else {
            return Vec::new();
        };
        let Some(ram) = state.config.ram else {
            return Vec::new();
        };
        let Ok(first) = tb.instruction(0) else {
            return Vec::new();
        };
        if self.ram_host_offset.is_none() && first.haddr() != 0 && ram.contains(tb.vaddr()) {
            // QEMU's virt machine enters the loaded image (in RAM) from its boot stub (in
            // flash) with the MMU off: this block's virtual address is its physical address.
            self.ram_host_offset = Some(first.haddr().wrapping_sub(tb.vaddr()));
            eprintln!(
                "tessera-llc: instruction fetches: RAM found at host {:#x} (first block at {:#x})",
                first.haddr(),
                tb.vaddr()
            );
        }
        let Some(offset) = self.ram_host_offset else {
            return Vec::new();
        };
        let mask = !(u64::from(state.config.llc.line) - 1);
        let mut lines: Vec<u64> = Vec::new();
        for insn in tb.instructions() {
            let h = insn.haddr();
            if h == 0 {
                continue;
            }
            let pa = h.wrapping_sub(offset);
            if !ram.contains(pa) {
                continue;
            }
            for at in [pa & mask, pa.wrapping_add(insn.size() as u64 - 1) & mask] {
                if lines.last() != Some(&at) {
                    lines.push(at);
                }
            }
        }
        lines
    }
}

impl Register for LlcPlugin {
    fn register(&mut self, id: PluginId, args: &Args, info: &Info) -> Result<()> {
        let config = Config::parse(&args.raw).map_err(|e| anyhow!("tessera-llc: {e}"))?;
        let n = info
            .system
            .as_ref()
            .map_or(1, |s| s.max_vcpus.max(s.smp_vcpus).max(1)) as usize;
        let state = State {
            llc: SharedCache::new(config.llc),
            vcpus: (0..n)
                .map(|_| PaddedVcpu(Mutex::new(Vcpu::new(config.l1))))
                .collect(),
            config,
        };
        // On QEMU's standard error (qemu_plugin_outs writes only with `-d plugin`).
        eprintln!(
            "tessera-llc: LLC {} KiB, {}-way, {} B lines ({} sets, {} colors), L1 {}, {} vCPU(s)",
            state.config.llc.size >> 10,
            state.config.llc.ways,
            state.config.llc.line,
            state.config.llc.sets(),
            state.config.llc.colors(),
            state.config.l1.map_or("none".to_string(), |g| format!(
                "{} KiB {}-way",
                g.size >> 10,
                g.ways
            )),
            n
        );
        STATE
            .set(state)
            .map_err(|_| anyhow!("tessera-llc: installed twice"))?;
        qemu_plugin_register_atexit_cb(id, |_| write_report())?;
        Ok(())
    }
}

impl HasCallbacks for LlcPlugin {
    fn on_vcpu_init(&mut self, _id: PluginId, _vcpu: VCPUIndex) -> Result<()> {
        let Some(name) = STATE.get().and_then(|s| s.config.core_reg.as_deref()) else {
            return Ok(());
        };
        if CORE_REG.get().is_some() {
            return Ok(());
        }
        // Register handles are the same for every vCPU; reads go to the executing one.
        let regs = qemu_plugin_get_registers()?;
        let found = regs
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
            .cloned();
        match found {
            Some(r) => {
                let _ = CORE_REG.set(r);
                Ok(())
            }
            None => Err(anyhow!(
                "tessera-llc: core_reg={name}: this CPU has no such register (it has {} others, \
                 e.g. {})",
                regs.len(),
                regs.iter()
                    .take(8)
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
            .into()),
        }
    }

    fn on_translation_block_translate(
        &mut self,
        _id: PluginId,
        tb: TranslationBlock,
    ) -> Result<()> {
        let lines = self.fetch_lines(&tb);
        if CORE_REG.get().is_some() {
            tb.register_execute_callback_flags(
                move |vcpu| {
                    let core = enter_block(vcpu);
                    if !lines.is_empty() {
                        with_vcpu(core, |v, llc| v.fetch(llc, &lines));
                    }
                },
                CallbackFlags::QEMU_PLUGIN_CB_R_REGS,
            );
        } else if !lines.is_empty() {
            tb.register_execute_callback(move |vcpu| {
                with_vcpu(vcpu, |v, llc| v.fetch(llc, &lines))
            });
        }
        for insn in tb.instructions() {
            let mut word = [0u8; 4];
            if insn.read_data(&mut word) == 4 {
                match u32::from_le_bytes(word) {
                    MARKER_START => {
                        insn.register_execute_callback(|vcpu| {
                            with_vcpu(core_of(vcpu), |v, _| v.window_start())
                        });
                    }
                    MARKER_END => {
                        insn.register_execute_callback(|vcpu| {
                            with_vcpu(core_of(vcpu), |v, _| v.window_end())
                        });
                    }
                    _ => {}
                }
            }
            insn.register_memory_access_callback(
                |vcpu, info, vaddr| {
                    let Some(hw) = info.hwaddr(vaddr) else { return };
                    if hw.is_io() {
                        return;
                    }
                    let pa = hw.hwaddr();
                    let size = 1u64 << info.size_shift();
                    with_vcpu(core_of(vcpu), |v, llc| v.access(llc, pa, size));
                },
                MemRW::QEMU_PLUGIN_MEM_RW,
            );
        }
        Ok(())
    }
}

register!(LlcPlugin::default());
