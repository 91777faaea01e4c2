//! Drivers for the board's own devices, used by the hypervisor.
pub mod pl011;
