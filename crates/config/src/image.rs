//! Guest image loading: a Linux arm64 `Image`, an ELF64 AArch64 executable, or a raw binary,
//! turned into one flat byte string with a load address and an entry point (guest-physical).

use std::string::String;
use std::vec;
use std::vec::Vec;

/// The format an image was recognised as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    /// Linux arm64 Image header (magic "ARM\x64" at offset 56).
    ArmImage,
    /// ELF64 little-endian AArch64; PT_LOAD segments flattened.
    Elf,
    /// No known header: loaded at RAM base, entry = RAM base.
    Raw,
    /// Placeholder for an image that is not built yet (empty).
    Placeholder,
}

impl ImageFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::ArmImage => "arm64 Image",
            ImageFormat::Elf => "ELF",
            ImageFormat::Raw => "raw",
            ImageFormat::Placeholder => "placeholder",
        }
    }
}

/// A guest image ready to be copied into guest RAM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlatImage {
    pub format: ImageFormat,
    /// Bytes copied to `load_ipa`.
    pub bytes: Vec<u8>,
    pub load_ipa: u64,
    /// Bytes the image occupies from `load_ipa` once running (≥ `bytes.len()`: bss, or the
    /// Image header's `image_size`).
    pub mem_size: u64,
    pub entry_ipa: u64,
}

const ARM64_MAGIC: &[u8; 4] = b"ARM\x64";
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const EM_AARCH64: u16 = 183;
const PT_LOAD: u32 = 1;
/// Largest flattened ELF we accept (guards against absurd paddr spreads).
const MAX_FLAT: u64 = 1 << 30;

fn le_u16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}
fn le_u32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}
fn le_u64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Recognise and flatten `file`; `ram_base` is the IPA of the VM's first RAM region.
pub fn load(file: &[u8], ram_base: u64) -> Result<FlatImage, String> {
    if file.len() >= 64 && &file[56..60] == ARM64_MAGIC {
        let image_size = le_u64(file, 16).unwrap_or(0);
        // Documentation/arch/arm64/booting.rst: with image_size 0 (pre-3.17 kernels) the
        // text_offset field is unreliable and 0x80000 is to be assumed.
        let text_offset = if image_size == 0 {
            0x80000
        } else {
            le_u64(file, 8).unwrap_or(0)
        };
        let load_ipa = ram_base
            .checked_add(text_offset)
            .ok_or("arm64 Image text_offset overflows")?;
        return Ok(FlatImage {
            format: ImageFormat::ArmImage,
            mem_size: image_size.max(file.len() as u64),
            bytes: file.to_vec(),
            load_ipa,
            entry_ipa: load_ipa,
        });
    }
    if file.len() >= 4 && &file[..4] == ELF_MAGIC {
        return load_elf(file);
    }
    Ok(FlatImage {
        format: ImageFormat::Raw,
        mem_size: file.len() as u64,
        bytes: file.to_vec(),
        load_ipa: ram_base,
        entry_ipa: ram_base,
    })
}

fn load_elf(f: &[u8]) -> Result<FlatImage, String> {
    let bad = |what: &str| std::format!("ELF: {what}");
    if f.get(4) != Some(&2) {
        return Err(bad("not ELF64"));
    }
    if f.get(5) != Some(&1) {
        return Err(bad("not little-endian"));
    }
    if le_u16(f, 18) != Some(EM_AARCH64) {
        return Err(bad("not an AArch64 executable (e_machine != 183)"));
    }
    let entry = le_u64(f, 24).ok_or_else(|| bad("truncated header"))?;
    let phoff = le_u64(f, 32).ok_or_else(|| bad("truncated header"))? as usize;
    let phentsize = le_u16(f, 54).ok_or_else(|| bad("truncated header"))? as usize;
    let phnum = le_u16(f, 56).ok_or_else(|| bad("truncated header"))? as usize;
    if phentsize < 56 {
        return Err(bad("program header entries too small"));
    }
    // (paddr, file bytes, memsz)
    let mut segs: Vec<(u64, &[u8], u64)> = Vec::new();
    for i in 0..phnum {
        let ph = phoff
            .checked_add(
                i.checked_mul(phentsize)
                    .ok_or_else(|| bad("phdr overflow"))?,
            )
            .ok_or_else(|| bad("phdr overflow"))?;
        let p_type = le_u32(f, ph).ok_or_else(|| bad("truncated program headers"))?;
        if p_type != PT_LOAD {
            continue;
        }
        let offset =
            le_u64(f, ph.saturating_add(8)).ok_or_else(|| bad("truncated program headers"))?;
        let paddr =
            le_u64(f, ph.saturating_add(24)).ok_or_else(|| bad("truncated program headers"))?;
        let filesz =
            le_u64(f, ph.saturating_add(32)).ok_or_else(|| bad("truncated program headers"))?;
        let memsz =
            le_u64(f, ph.saturating_add(40)).ok_or_else(|| bad("truncated program headers"))?;
        if memsz == 0 {
            continue;
        }
        let end = offset
            .checked_add(filesz)
            .filter(|&e| e <= f.len() as u64)
            .ok_or_else(|| bad("segment outside the file"))?;
        if filesz > memsz {
            return Err(bad("segment filesz > memsz"));
        }
        segs.push((paddr, &f[offset as usize..end as usize], memsz));
    }
    let lo = segs
        .iter()
        .map(|s| s.0)
        .min()
        .ok_or_else(|| bad("no PT_LOAD segment"))?;
    let hi = segs
        .iter()
        .map(|s| s.0.checked_add(s.2))
        .try_fold(0u64, |m, e| e.map(|e| m.max(e)))
        .ok_or_else(|| bad("segment address overflow"))?;
    let file_hi = segs
        .iter()
        .map(|s| s.0 + s.1.len() as u64)
        .max()
        .unwrap_or(lo);
    if hi - lo > MAX_FLAT {
        return Err(bad("PT_LOAD segments span more than 1 GiB"));
    }
    let mut bytes = vec![0u8; (file_hi - lo) as usize];
    for (paddr, data, _) in &segs {
        let at = (paddr - lo) as usize;
        bytes[at..at + data.len()].copy_from_slice(data);
    }
    Ok(FlatImage {
        format: ImageFormat::Elf,
        bytes,
        load_ipa: lo,
        mem_size: hi - lo,
        entry_ipa: entry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm64_image_header() {
        let mut f = vec![0u8; 128];
        f[8..16].copy_from_slice(&0x80000u64.to_le_bytes());
        f[16..24].copy_from_slice(&0x10000u64.to_le_bytes());
        f[56..60].copy_from_slice(ARM64_MAGIC);
        let img = load(&f, 0x4000_0000).unwrap();
        assert_eq!(img.format, ImageFormat::ArmImage);
        assert_eq!(img.load_ipa, 0x4008_0000);
        assert_eq!(img.entry_ipa, 0x4008_0000);
        assert_eq!(img.mem_size, 0x10000);
    }

    #[test]
    fn raw_binary() {
        let img = load(&[1, 2, 3], 0x8000_0000).unwrap();
        assert_eq!(img.format, ImageFormat::Raw);
        assert_eq!(
            (img.load_ipa, img.entry_ipa, img.mem_size),
            (0x8000_0000, 0x8000_0000, 3)
        );
    }

    /// A minimal ELF64 with two PT_LOAD segments and a gap between them.
    pub(crate) fn tiny_elf() -> Vec<u8> {
        let mut f = vec![0u8; 0x200];
        f[..4].copy_from_slice(ELF_MAGIC);
        f[4] = 2;
        f[5] = 1;
        f[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
        f[24..32].copy_from_slice(&0x4008_0010u64.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&2u16.to_le_bytes());
        let ph = |f: &mut Vec<u8>, at: usize, off: u64, paddr: u64, filesz: u64, memsz: u64| {
            f[at..at + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
            f[at + 8..at + 16].copy_from_slice(&off.to_le_bytes());
            f[at + 16..at + 24].copy_from_slice(&paddr.to_le_bytes());
            f[at + 24..at + 32].copy_from_slice(&paddr.to_le_bytes());
            f[at + 32..at + 40].copy_from_slice(&filesz.to_le_bytes());
            f[at + 40..at + 48].copy_from_slice(&memsz.to_le_bytes());
        };
        ph(&mut f, 64, 0x100, 0x4008_0000, 0x10, 0x10);
        ph(&mut f, 120, 0x110, 0x4008_1000, 0x8, 0x100);
        for (i, b) in f[0x100..0x118].iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        f
    }

    #[test]
    fn elf_flattened() {
        let img = load(&tiny_elf(), 0x4000_0000).unwrap();
        assert_eq!(img.format, ImageFormat::Elf);
        assert_eq!(img.load_ipa, 0x4008_0000);
        assert_eq!(img.entry_ipa, 0x4008_0010);
        assert_eq!(img.mem_size, 0x1100);
        assert_eq!(img.bytes.len(), 0x1008);
        assert_eq!(img.bytes[0], 1);
        assert_eq!(img.bytes[0x10], 0);
        assert_eq!(img.bytes[0x1000], 0x11);
    }

    #[test]
    fn elf_wrong_machine() {
        let mut f = tiny_elf();
        f[18] = 62; // x86-64
        assert!(load(&f, 0).unwrap_err().contains("AArch64"));
    }
}
