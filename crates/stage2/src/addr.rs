//! Typed addresses.

use core::fmt;

macro_rules! address {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The raw address.
            #[inline]
            pub const fn as_u64(self) -> u64 {
                self.0
            }

            /// The address plus `offset` bytes (wrapping is the caller's bug; checked in debug).
            #[inline]
            pub const fn add(self, offset: u64) -> Self {
                Self(self.0 + offset)
            }

            /// Whether the address is a multiple of `align` (a power of two).
            #[inline]
            pub const fn is_aligned(self, align: u64) -> bool {
                self.0 & (align - 1) == 0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }

        impl fmt::LowerHex for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
    };
}

address!(
    /// A physical address (the output of every translation format).
    PhysAddr
);
address!(
    /// A guest (intermediate) physical address: the input of stage 2.
    GuestPhysAddr
);
address!(
    /// A virtual address of the hypervisor: the input of EL2 stage 1.
    VirtAddr
);

/// The input address type of a translation format ([`GuestPhysAddr`] or [`VirtAddr`]).
pub trait InputAddress: Copy + Eq + Ord + fmt::Debug {
    /// Wraps a raw address.
    fn from_u64(raw: u64) -> Self;
    /// The raw address.
    fn to_u64(self) -> u64;
}

impl InputAddress for GuestPhysAddr {
    #[inline]
    fn from_u64(raw: u64) -> Self {
        Self(raw)
    }
    #[inline]
    fn to_u64(self) -> u64 {
        self.0
    }
}

impl InputAddress for VirtAddr {
    #[inline]
    fn from_u64(raw: u64) -> Self {
        Self(raw)
    }
    #[inline]
    fn to_u64(self) -> u64 {
        self.0
    }
}
