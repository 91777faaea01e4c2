//! The machine's exit status: how VM exit codes and the hypervisor's own outcomes combine into
//! the one number a run ends with, and the console line that carries it.
//!
//! Tessera reports the status on the physical console, never through the platform (a QEMU
//! run ends with PSCI SYSTEM_OFF, status 0; semihosting is off unless asked for). The status
//! is the number in the hypervisor's own final line, which no guest can forge (guest output is
//! always prefixed `[<vm>] `):
//!
//! | final line | status |
//! | --- | --- |
//! | `[tessera] all VMs off; exit N` | `N`, see below |
//! | `[tessera] boot error: ...` | [`BOOT_ERROR`] (70) |
//! | `[tessera] FATAL ...` (hypervisor fault or panic) | [`FATAL`] (255) |
//!
//! `N` = the status of the first VM (in config order) whose status is not 0, else 0. A VM's
//! status is 0 if it exited with 0, [`STOPPED`] (128) if the hypervisor stopped it, its exit
//! code if that is 1..=63, and [`VM_EXIT_HIGH`] (64) for any exit code of 64 or more: statuses
//! 64..=255 belong to the hypervisor, so a guest cannot make a run look like a boot error, a
//! hypervisor fault or a stopped VM. The VM's own line, `[tessera] vm <name> off (exit <code>)`,
//! still shows the code it passed.

/// Status of a run in which Tessera refused to boot (the machine does not match the build).
pub const BOOT_ERROR: u32 = 70;
/// Status of a run that ended in a hypervisor fault or panic.
pub const FATAL: u32 = 255;
/// Status of a VM the hypervisor stopped (a fault under `on_fault = "stop"`, an SError).
pub const STOPPED: u32 = 128;
/// Status of a VM that exited with a code of 64 or more (its real code is in its own line).
pub const VM_EXIT_HIGH: u32 = 64;
/// The largest exit code a VM passes through unchanged.
pub const VM_EXIT_MAX: u32 = 63;

/// How a VM ended, as far as the machine status is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmOutcome {
    /// The guest powered its VM off with this exit code (PSCI SYSTEM_OFF = 0, Shutdown(code)).
    Exit(u32),
    /// The hypervisor stopped the VM.
    Stopped,
}

/// The status one VM contributes (see the module documentation).
pub const fn vm_status(outcome: VmOutcome) -> u32 {
    match outcome {
        VmOutcome::Exit(c) if c <= VM_EXIT_MAX => c,
        VmOutcome::Exit(_) => VM_EXIT_HIGH,
        VmOutcome::Stopped => STOPPED,
    }
}

/// The machine status once every VM is off: the first non-zero VM status, in config order.
pub fn machine_status(vm_statuses: impl IntoIterator<Item = u32>) -> u32 {
    vm_statuses.into_iter().find(|&s| s != 0).unwrap_or(0)
}

/// Prefix of every line the hypervisor itself prints.
pub const HYP_PREFIX: &str = "[tessera] ";
/// The final line after every VM is off, before `N`.
pub const ALL_OFF_PREFIX: &str = "[tessera] all VMs off; exit ";
/// A boot error's line.
pub const BOOT_ERROR_PREFIX: &str = "[tessera] boot error";
/// A hypervisor fault's or panic's first line.
pub const FATAL_PREFIX: &str = "[tessera] FATAL";

/// The machine status a console line announces, if it is one of the hypervisor's final lines.
/// Trailing `\r`/`\n` are ignored; anything else must match exactly.
pub fn status_of_line(line: &str) -> Option<u32> {
    let line = line.trim_end_matches(['\r', '\n']);
    if let Some(n) = line.strip_prefix(ALL_OFF_PREFIX) {
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return n.parse().ok();
    }
    if line.starts_with(BOOT_ERROR_PREFIX) {
        return Some(BOOT_ERROR);
    }
    if line.starts_with(FATAL_PREFIX) {
        return Some(FATAL);
    }
    None
}

/// The machine status of a whole console log: that of the *first* final line (the machine
/// goes down from there; whatever other cores print afterwards does not change it), or `None`
/// when the hypervisor announced none.
pub fn status_of_log(log: &str) -> Option<u32> {
    log.lines().find_map(status_of_line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_codes_cannot_imitate_the_hypervisor() {
        for code in [BOOT_ERROR, FATAL, STOPPED, 64, 1000, u32::MAX] {
            let s = vm_status(VmOutcome::Exit(code));
            assert_eq!(s, VM_EXIT_HIGH, "{code}");
            assert!(![BOOT_ERROR, FATAL, STOPPED].contains(&s));
        }
        for code in 0..=VM_EXIT_MAX {
            assert_eq!(vm_status(VmOutcome::Exit(code)), code);
        }
        assert_eq!(vm_status(VmOutcome::Stopped), STOPPED);
    }

    #[test]
    fn machine_status_is_the_first_non_zero() {
        assert_eq!(machine_status([0, 0, 0]), 0);
        assert_eq!(machine_status([]), 0);
        assert_eq!(machine_status([0, 64, 128]), 64);
        assert_eq!(machine_status([0, 0, 3]), 3);
    }

    #[test]
    fn final_lines() {
        assert_eq!(status_of_line("[tessera] all VMs off; exit 0\r"), Some(0));
        assert_eq!(status_of_line("[tessera] all VMs off; exit 64"), Some(64));
        assert_eq!(status_of_line("[tessera] all VMs off; exit "), None);
        assert_eq!(status_of_line("[tessera] all VMs off; exit 1x"), None);
        assert_eq!(
            status_of_line("[tessera] boot error: entered at EL1"),
            Some(70)
        );
        assert_eq!(
            status_of_line("[tessera] FATAL: hypervisor panic on core 0: x"),
            Some(255)
        );
        // Guest lines carry their VM's prefix.
        assert_eq!(
            status_of_line("[alpha] [tessera] all VMs off; exit 0"),
            None
        );
        assert_eq!(status_of_line(" [tessera] FATAL"), None);
        assert_eq!(status_of_line("[tessera] vm alpha off (exit 70)"), None);
    }

    #[test]
    fn first_final_line_wins() {
        let log = "[tessera] boot\n[alpha] [tessera] all VMs off; exit 0\n\
                   [tessera] FATAL: unexpected\n[tessera] all VMs off; exit 0\n";
        assert_eq!(status_of_log(log), Some(FATAL));
        assert_eq!(status_of_log("[tessera] vm a off (exit 0)\n"), None);
    }
}
