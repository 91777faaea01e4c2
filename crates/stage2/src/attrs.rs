//! Format-independent memory attributes.

/// The memory type of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemKind {
    /// Normal memory, Inner/Outer Write-Back cacheable, Inner Shareable.
    Normal,
    /// Device-nGnRE memory (MMIO).
    Device,
}

/// Attributes of a mapping, as requested from [`PageTable::map`] and reported by
/// [`PageTable::translate`].
///
/// Not every combination exists in every format: EL2 stage 1 cannot express `read == false`
/// (map returns [`MapError::InvalidAttributes`]); stage 2 can (e.g. write-only).
///
/// [`PageTable::map`]: crate::PageTable::map
/// [`PageTable::translate`]: crate::PageTable::translate
/// [`MapError::InvalidAttributes`]: crate::MapError::InvalidAttributes
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemAttrs {
    /// Memory type.
    pub kind: MemKind,
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable (instruction fetches allowed).
    pub exec: bool,
}

impl MemAttrs {
    /// Normal memory, read/write/execute (guest RAM).
    pub const RAM_RWX: Self = Self {
        kind: MemKind::Normal,
        read: true,
        write: true,
        exec: true,
    };
    /// Normal memory, read/write, never executable (data).
    pub const RAM_RW: Self = Self {
        kind: MemKind::Normal,
        read: true,
        write: true,
        exec: false,
    };
    /// Normal memory, read-only, executable (code).
    pub const RAM_RX: Self = Self {
        kind: MemKind::Normal,
        read: true,
        write: false,
        exec: true,
    };
    /// Normal memory, read-only, never executable.
    pub const RAM_RO: Self = Self {
        kind: MemKind::Normal,
        read: true,
        write: false,
        exec: false,
    };
    /// Device-nGnRE, read/write, never executable (MMIO).
    pub const DEVICE_RW: Self = Self {
        kind: MemKind::Device,
        read: true,
        write: true,
        exec: false,
    };
}
