//! Typed indices of VMs, vCPUs and physical cores, used at every module edge so that one kind
//! of index cannot be passed where another was meant.
//!
//! Each is a `#[repr(transparent)]` wrapper of the `usize` index it stands for (the position in
//! the config's tables: `VMS`, a VM's `vcpus`, `PCPUS`), so passing one costs exactly what the
//! bare index did. Inside a function, index tables with [`VmId::index`] (or `.0`).

use core::fmt;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(transparent)]
        pub struct $name(pub usize);

        impl $name {
            /// The index it stands for (into the config's table of its kind).
            #[inline(always)]
            pub const fn index(self) -> usize {
                self.0
            }
        }

        /// Prints the bare index (as the logs did before the ids were typed).
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        /// Logs the bare index.
        impl defmt::Format for $name {
            fn format(&self, f: defmt::Formatter<'_>) {
                defmt::write!(f, "{=usize}", self.0)
            }
        }
    };
}

id!(
    /// A VM: its index in the config's `VMS` (and in every per-VM run-time table).
    VmId
);
id!(
    /// A vCPU within its VM: its index in the VM's `vcpus` (meaningless without the VM; see
    /// [`VcpuRef`]).
    VcpuId
);
id!(
    /// A physical core: its index in the config's `PCPUS` (the value TPIDR_EL2 holds).
    CoreId
);

/// One vCPU of the machine: its VM and its index there, the pair that travels together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VcpuRef {
    pub vm: VmId,
    pub vcpu: VcpuId,
}

impl VcpuRef {
    #[inline(always)]
    pub const fn new(vm: VmId, vcpu: VcpuId) -> Self {
        VcpuRef { vm, vcpu }
    }
}

impl defmt::Format for VcpuRef {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "vm {=usize} vcpu {=usize}",
            self.vm.index(),
            self.vcpu.index()
        )
    }
}
