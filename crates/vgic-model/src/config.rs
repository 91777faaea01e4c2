//! What a VM's virtual GIC looks like: version, vCPUs and the SPIs it owns.

/// The GIC architecture the guest sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// GICv2 (IHI 0048B): 4 KiB GICD frame, banked SGI/PPI registers, ITARGETSR, GICD_SGIR.
    V2,
    /// GICv3 (IHI 0069): affinity routing always on, per-vCPU redistributors, IROUTER,
    /// SGIs through `ICC_SGI1R_EL1`.
    V3,
}

/// The per-VM description [`Vgic::init`](crate::Vgic::init) checks and takes.
#[derive(Clone, Copy, Debug)]
pub struct VgicConfig<'a> {
    /// The GIC version the guest sees.
    pub version: Version,
    /// Number of vCPUs (1..=MAX_VCPUS; at most 8 on GICv2).
    pub vcpus: usize,
    /// The SPIs (INTIDs 32..=1019, below MAX_IRQS) this VM owns; every other SPI is RAZ/WI
    /// for it. Virtual devices' SPIs (e.g. the virtual PL011's INTID 33) belong here too.
    pub owned_spis: &'a [u32],
    /// `MPIDR_EL1` (VMPIDR) of each vCPU, `vcpus` entries; only the affinity fields are used
    /// (`Aff3[39:32]`, `Aff2[23:16]`, `Aff1[15:8]`, `Aff0[7:0]`) and they must differ.
    pub vcpu_mpidr: &'a [u64],
}

/// Why [`Vgic::init`](crate::Vgic::init) refused a [`VgicConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfigError {
    /// `vcpus` is 0.
    NoVcpus,
    /// `vcpus` exceeds the capacity (`MAX_VCPUS`, or 8 for GICv2).
    TooManyVcpus {
        /// Requested.
        vcpus: usize,
        /// Allowed.
        max: usize,
    },
    /// `vcpu_mpidr` does not have exactly `vcpus` entries.
    MpidrCount {
        /// Entries given.
        given: usize,
        /// `vcpus`.
        vcpus: usize,
    },
    /// Two vCPUs have the same affinity (the second one's index).
    DuplicateAffinity(usize),
    /// An owned SPI is not in 32..=1019.
    NotAnSpi(u32),
    /// An owned SPI is not below `MAX_IRQS`.
    SpiBeyondCapacity(u32),
}

/// Why [`Vgic::set_initial_route`](crate::Vgic::set_initial_route) refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteError {
    /// The INTID is not an SPI this VM owns.
    NotOwned(u32),
    /// The VM has no such vCPU.
    NoSuchVcpu(usize),
}

/// The affinity fields of an MPIDR packed as Aff3.Aff2.Aff1.Aff0 in a `u32` (the layout of
/// `GICR_TYPER.Affinity_Value`).
pub(crate) const fn pack_affinity(mpidr: u64) -> u32 {
    (((mpidr >> 32) & 0xFF) << 24) as u32 | (mpidr & 0xFF_FFFF) as u32
}
