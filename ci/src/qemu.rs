//! QEMU command lines and waiting with a time limit.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// One QEMU `virt` machine.
#[derive(Clone, Debug)]
pub struct QemuSpec {
    pub kernel: PathBuf,
    pub gic: u8,
    pub cpu: String,
    pub smp: u32,
    /// `-m` argument.
    pub memory: String,
    /// EL2 present (Tessera runs there); false for bare guests at EL1.
    pub virtualization: bool,
    /// `-s -S`: gdb server on :1234, halted at reset.
    pub gdb: bool,
    /// Arm semihosting (`-semihosting`): only for bare guests (no hypervisor to protect; their
    /// way to report a status) and runs that ask for it explicitly (`run --semihosting`).
    /// With it, every guest can end QEMU, touch host files and run host commands.
    pub semihosting: bool,
    /// A second serial port (QEMU virt's second PL011, the hypervisor's log UART, built with
    /// feature `defmt-uart`) written to this file: the hypervisor's defmt frames.
    pub defmt_file: Option<PathBuf>,
    pub extra: Vec<String>,
}

impl QemuSpec {
    /// The QEMU command, run from `root`, with standard output and error (the serial console
    /// and QEMU's own messages) going to a new file `log`. The caller chooses stdin.
    pub fn command_logged(&self, root: &Path, log: &Path) -> Result<Command> {
        let file = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = file
            .try_clone()
            .context("cannot duplicate the log file handle")?;
        let mut cmd = self.command();
        cmd.current_dir(root)
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err));
        Ok(cmd)
    }

    pub fn args(&self) -> Vec<String> {
        let machine = if self.virtualization {
            format!("virt,virtualization=on,gic-version={}", self.gic)
        } else {
            format!("virt,gic-version={}", self.gic)
        };
        let mut a: Vec<String> = vec![
            "-machine".into(),
            machine,
            "-cpu".into(),
            self.cpu.clone(),
            "-smp".into(),
            self.smp.to_string(),
            "-m".into(),
            self.memory.clone(),
            "-nographic".into(),
        ];
        if let Some(f) = &self.defmt_file {
            // The console stays on stdio (with QEMU's monitor, as -nographic has it); the second
            // serial port is the log UART.
            a.extend([
                "-serial".into(),
                "mon:stdio".into(),
                "-serial".into(),
                format!("file:{}", f.display()),
            ]);
        }
        if self.semihosting {
            a.push("-semihosting".into());
        }
        a.extend(["-kernel".into(), self.kernel.display().to_string()]);
        if let Some((file, addr)) = payloads_of(&self.kernel) {
            // The guest payloads of a Tessera image (crates/bundle), where its header says.
            a.extend([
                "-device".into(),
                format!("loader,file={},addr={addr:#x},force-raw=on", file.display()),
            ]);
        }
        if self.gdb {
            a.extend(["-s".into(), "-S".into()]);
        }
        a.extend(self.extra.iter().cloned());
        a
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new("qemu-system-aarch64");
        c.args(self.args());
        c
    }

    /// The command line, for humans.
    pub fn describe(&self) -> String {
        std::iter::once("qemu-system-aarch64".to_string())
            .chain(self.args())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// QEMU's exit status (128 + signal number if a signal ended it).
    Exited(i32),
    /// Killed after this long.
    TimedOut(Duration),
}

/// Waits for `child`; after `timeout`, terminates it (SIGTERM, then SIGKILL) and reports so.
pub fn wait(mut child: Child, timeout: Option<Duration>) -> Result<Outcome> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().context("waiting for QEMU failed")? {
            return Ok(Outcome::Exited(exit_code(status)));
        }
        if let Some(t) = timeout {
            if start.elapsed() >= t {
                terminate(&mut child);
                return Ok(Outcome::TimedOut(t));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// SIGTERM first, so that QEMU restores the terminal; SIGKILL if it lingers.
fn terminate(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on our own child's pid, which we have not reaped yet (so the pid
        // cannot have been reused); it has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The run's status as the hypervisor announced it in its final console line (see
/// `tessera_abi::status`): `all VMs off; exit N` → N, `boot error` → 70, `FATAL` → 255; `None`
/// if no such line was printed. QEMU's own exit status says nothing (PSCI SYSTEM_OFF: 0).
pub fn hypervisor_status(log: &str) -> Option<u32> {
    tessera_abi::status::status_of_log(log)
}

/// The payload bundle beside a Tessera image (`<stem>.payloads`) and the address its header
/// says it must be loaded at; `None` for images without one (bare guests).
pub fn payloads_of(kernel: &Path) -> Option<(PathBuf, u64)> {
    use std::io::Read;
    let file = crate::images::payloads_path(kernel);
    let mut header = [0u8; tessera_bundle::HEADER_SIZE];
    File::open(&file).ok()?.read_exact(&mut header).ok()?;
    if header[..8] != tessera_bundle::MAGIC {
        return None;
    }
    let addr = u64::from_le_bytes(header[24..32].try_into().ok()?);
    Some((file, addr))
}
