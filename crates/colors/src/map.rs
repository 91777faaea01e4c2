//! Mapping memory made of single frames (a colored VM's RAM, a colored channel) at
//! contiguous input addresses.

use tessera_stage2::{
    InputAddress, MapError, MemAttrs, PageTable, PhysAddr, TableMemory, TranslationFormat,
};

use crate::FRAME_SIZE;

/// Why [`map_frames`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapFramesError<A> {
    /// The frame source ran out after `mapped` frames (those stay mapped).
    OutOfFrames {
        /// Frames obtained and mapped before the source returned `None`.
        mapped: u64,
    },
    /// Mapping a run of frames failed (out of table memory, overlap, out of range...).
    Map(MapError<A>),
}

/// Maps `pages` frames at contiguous input addresses from `va`, with 4 KiB leaves only
/// ([`PageTable::map_pages`]), taking each frame from `next_frame` in input-address order.
///
/// Physically consecutive frames are mapped by one `map_pages` call (a run), so memory whose
/// colors are consecutive costs one table walk per run rather than per page; the leaves are
/// 4 KiB pages either way. `next_frame` gets the table memory too, so that one allocator can
/// serve both the frames and the tables. On error, what was mapped stays mapped (the caller
/// tears the whole tree down or stops). `va` must be 4 KiB aligned.
pub fn map_frames<F, M>(
    table: &mut PageTable<F>,
    mem: &mut M,
    va: F::Input,
    pages: u64,
    attrs: MemAttrs,
    mut next_frame: impl FnMut(&mut M) -> Option<PhysAddr>,
) -> Result<(), MapFramesError<F::Input>>
where
    F: TranslationFormat,
    M: TableMemory + ?Sized,
{
    let start = va.to_u64();
    // The current run: input address, first frame, length in bytes.
    let mut run: Option<(u64, PhysAddr, u64)> = None;
    for k in 0..pages {
        let pa = next_frame(mem).ok_or(MapFramesError::OutOfFrames { mapped: k })?;
        run = match run {
            Some((rva, rpa, len)) if rpa.0.checked_add(len) == Some(pa.0) => {
                Some((rva, rpa, len + FRAME_SIZE))
            }
            other => {
                if let Some((rva, rpa, len)) = other {
                    table
                        .map_pages(mem, F::Input::from_u64(rva), rpa, len, attrs)
                        .map_err(MapFramesError::Map)?;
                }
                Some((start + k * FRAME_SIZE, pa, FRAME_SIZE))
            }
        };
    }
    if let Some((rva, rpa, len)) = run {
        table
            .map_pages(mem, F::Input::from_u64(rva), rpa, len, attrs)
            .map_err(MapFramesError::Map)?;
    }
    Ok(())
}
