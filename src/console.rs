//! The physical console: hypervisor messages (`[tessera] ...`), every VM's output one whole line
//! at a time (`[<vm>] ...`), and keyboard input routed to one VM at a time.
//!
//! Input focus: type Ctrl-T then a digit to send input to VM number <digit> (the order of the
//! config); Ctrl-T Ctrl-T sends a literal Ctrl-T. (Not Ctrl-A: QEMU's own console multiplexer
//! takes that one.)

use core::fmt::{self, Write};

use heapless::{Deque, Vec};
use spin::Mutex;

use crate::config::{BOARD, VMS};
use crate::drivers::pl011::Pl011;
use crate::vm::{VmId, MAX_VMS};

fn uart() -> Pl011 {
    Pl011::new(BOARD.console_uart)
}
static OUTPUT: Mutex<()> = Mutex::new(());

const LINE_MAX: usize = 200;
const INPUT_DEPTH: usize = 64;
const ESCAPE: u8 = 0x14;

struct VmLine(Mutex<Vec<u8, LINE_MAX>>);
static LINES: [VmLine; MAX_VMS] = [const { VmLine(Mutex::new(Vec::new())) }; MAX_VMS];

struct InputState {
    focus: usize,
    escape: bool,
    queues: [Deque<u8, INPUT_DEPTH>; MAX_VMS],
}
static INPUT: Mutex<InputState> = Mutex::new(InputState {
    focus: 0,
    escape: false,
    queues: [const { Deque::new() }; MAX_VMS],
});

struct Raw;
impl Write for Raw {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                uart().write_byte(b'\r');
            }
            uart().write_byte(b);
        }
        Ok(())
    }
}

/// Prints `[tessera] <args>` and a newline, atomically with respect to other lines.
pub fn hyp_println(args: fmt::Arguments) {
    let _g = OUTPUT.lock();
    let _ = Raw.write_fmt(format_args!("[tessera] {}\n", args));
}

/// Prints without taking the console lock (panic and fatal paths, where the lock may be held).
pub fn emergency_print(args: fmt::Arguments) {
    let _ = Raw.write_fmt(args);
}

/// `hyp_println!`-style convenience.
#[macro_export]
macro_rules! hprintln {
    ($($arg:tt)*) => { $crate::console::hyp_println(format_args!($($arg)*)) };
}

/// One byte of VM `vm`'s console output; lines are emitted whole, prefixed with the VM's name.
pub fn vm_output(vm: VmId, byte: u8) {
    let Some(line) = LINES.get(vm.index()) else {
        return;
    };
    let mut buf = line.0.lock();
    match byte {
        b'\r' => {}
        b'\n' => flush_line(vm, &mut buf),
        _ => {
            if buf.push(byte).is_err() {
                flush_line(vm, &mut buf);
                let _ = buf.push(byte);
            }
        }
    }
}

/// Emits what VM `vm` printed without a final newline (when it powers off).
pub fn vm_flush(vm: VmId) {
    if let Some(line) = LINES.get(vm.index()) {
        let mut buf = line.0.lock();
        if !buf.is_empty() {
            flush_line(vm, &mut buf);
        }
    }
}

fn flush_line(vm: VmId, buf: &mut Vec<u8, LINE_MAX>) {
    let name = VMS.get(vm.index()).map_or("?", |v| v.name);
    let _g = OUTPUT.lock();
    let _ = Raw.write_fmt(format_args!("[{}] ", name));
    for &b in buf.iter() {
        // Control characters other than tab would garble the shared console.
        uart().write_byte(if b == b'\t' || (0x20..0x7f).contains(&b) {
            b
        } else {
            b'.'
        });
    }
    let _ = Raw.write_str("\n");
    buf.clear();
}

/// Moves whatever arrived on the physical UART into the focused VM's input queue.
fn poll_input(state: &mut InputState) {
    while let Some(b) = uart().read_byte() {
        if state.escape {
            state.escape = false;
            if b != ESCAPE {
                let n = b.wrapping_sub(b'0') as usize;
                if n < VMS.len() {
                    state.focus = n;
                    hyp_println(format_args!("console input -> {}", VMS[n].name));
                } else {
                    hyp_println(format_args!(
                        "console: Ctrl-T then 0..{} picks the VM that gets input (Ctrl-T Ctrl-T sends Ctrl-T); input stays with {}",
                        VMS.len() - 1,
                        VMS.get(state.focus).map_or("?", |v| v.name)
                    ));
                }
                continue;
            }
        } else if b == ESCAPE {
            state.escape = true;
            continue;
        }
        let f = state.focus;
        let _ = state.queues[f].push_back(b);
    }
}

/// Whether VM `vm` has input waiting (polls the UART first).
pub fn vm_input_ready(vm: VmId) -> bool {
    let mut s = INPUT.lock();
    poll_input(&mut s);
    s.queues.get(vm.index()).is_some_and(|q| !q.is_empty())
}

/// Takes one input byte for VM `vm`.
pub fn vm_input_pop(vm: VmId) -> Option<u8> {
    let mut s = INPUT.lock();
    poll_input(&mut s);
    s.queues.get_mut(vm.index()).and_then(|q| q.pop_front())
}

/// Drops input VM `vm` has not read yet (it is being reset).
pub fn vm_input_clear(vm: VmId) {
    if let Some(q) = INPUT.lock().queues.get_mut(vm.index()) {
        q.clear();
    }
}
