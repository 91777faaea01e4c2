//! The Linux test guest (guests/linux): Debian's arm64 kernel and busybox-static, fetched with
//! apt, cached outside git, packed with guests/linux/init into an initramfs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::util::{self, Paths};

/// The recipe's guest name: `image = "linux"`, `initrd = "linux"` in a config.
pub const NAME: &str = "linux";

/// The built guest.
pub struct LinuxGuest {
    /// `target/guests/linux.bin`: the kernel's arm64 Image (the initramfs is beside it,
    /// `linux.cpio`, which `initrd = "linux"` names).
    pub image: PathBuf,
}

/// Whether `guests/<name>` is a recipe guest (no cargo crate: built by this module).
pub fn is_recipe(paths: &Paths, name: &str) -> bool {
    name == NAME && paths.root.join("guests").join(name).join("init").is_file()
}

fn apt_ok(args: &[&str], what: &str) -> Result<()> {
    util::run(Command::new(args[0]).args(&args[1..]), what)
}

/// dpkg knows arm64 and apt has its package lists.
fn ensure_arm64_apt() -> Result<()> {
    let foreign = util::output(Command::new("dpkg").arg("--print-foreign-architectures"))
        .context("`dpkg` is not available: the Linux guest comes from Debian's packages (a Debian host is needed)")?;
    if !foreign.lines().any(|l| l.trim() == "arm64") {
        println!("xtask: linux: adding arm64 to dpkg's architectures (for Debian's arm64 kernel and busybox packages)");
        apt_ok(
            &["dpkg", "--add-architecture", "arm64"],
            "dpkg --add-architecture arm64 (needs root)",
        )?;
        println!("xtask: linux: apt-get update ...");
        apt_ok(&["apt-get", "update", "-qq"], "apt-get update")?;
    }
    Ok(())
}

/// The newest `linux-image-<version>-arm64` package apt offers.
fn newest_kernel_package() -> Result<String> {
    let search = |()| {
        util::output(Command::new("apt-cache").args([
            "search",
            "--names-only",
            r"^linux-image-[0-9.]+-[0-9]+-arm64$",
        ]))
        .unwrap_or_default()
    };
    let mut out = search(());
    if out.trim().is_empty() {
        println!("xtask: linux: no arm64 kernel package known to apt; apt-get update ...");
        apt_ok(&["apt-get", "update", "-qq"], "apt-get update")?;
        out = search(());
    }
    let mut names: Vec<String> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    names.sort_by_key(|n| version_key(n));
    names.pop().context(
        "apt offers no linux-image-<version>-arm64 package (is deb.debian.org reachable, and arm64 enabled?)",
    )
}

/// `linux-image-6.1.0-56-arm64` → [6, 1, 0, 56] for ordering.
fn version_key(name: &str) -> Vec<u64> {
    name.trim_start_matches("linux-image-")
        .trim_end_matches("-arm64")
        .split(['.', '-'])
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

/// `apt-get download`s `packages` into `dir` and unpacks them into `dir/root`.
fn download_and_unpack(dir: &Path, packages: &[String]) -> Result<PathBuf> {
    let debs = dir.join("debs");
    std::fs::create_dir_all(&debs).with_context(|| format!("cannot create {}", debs.display()))?;
    // apt's download sandbox user (_apt) must be able to write there.
    let _ = Command::new("chmod").arg("0777").arg(&debs).status();
    println!("xtask: linux: apt-get download {} ...", packages.join(" "));
    util::run(
        Command::new("apt-get")
            .arg("download")
            .arg("-q")
            .args(packages)
            .current_dir(&debs),
        "apt-get download of the Linux guest's packages",
    )?;
    let root = dir.join("root");
    for entry in std::fs::read_dir(&debs)? {
        let deb = entry?.path();
        if deb.extension().is_some_and(|e| e == "deb") {
            util::run(
                Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root),
                &format!("dpkg-deb -x {}", deb.display()),
            )?;
        }
    }
    Ok(root)
}

/// Builds (or reuses) the Linux guest: `target/guests/linux.bin` and `linux.cpio`.
pub fn ensure(paths: &Paths) -> Result<LinuxGuest> {
    ensure_arm64_apt()?;
    let package = newest_kernel_package()?;
    let cache = paths.target.join("linux").join(&package);
    let image_cached = cache.join("Image");
    let busybox_cached = cache.join("busybox");
    if !image_cached.is_file() || !busybox_cached.is_file() {
        let root = download_and_unpack(
            &cache,
            &[
                format!("{package}:arm64"),
                "busybox-static:arm64".to_string(),
            ],
        )?;
        let version = package.trim_start_matches("linux-image-");
        let vmlinuz = root.join("boot").join(format!("vmlinuz-{version}"));
        std::fs::copy(&vmlinuz, &image_cached).with_context(|| {
            format!(
                "{package} has no {} (the package layout changed?)",
                vmlinuz.display()
            )
        })?;
        let busybox = root.join("bin").join("busybox");
        std::fs::copy(&busybox, &busybox_cached)
            .with_context(|| format!("busybox-static has no {}", busybox.display()))?;
    }
    let image = std::fs::read(&image_cached)?;
    if image.len() < 64 || &image[56..60] != b"ARM\x64" {
        bail!(
            "{} is not an arm64 Image (no \"ARM\\x64\" magic): Debian's vmlinuz format changed?",
            image_cached.display()
        );
    }
    let digest: String = tessera_bundle::sha256(&image)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!(
        "xtask: linux: {package} ({} KiB Image, sha256 {digest}), cached in {}",
        image.len().div_ceil(1024),
        util::display_rel(paths, &cache)
    );
    let guest_dir = paths.guest_dir();
    std::fs::create_dir_all(&guest_dir)?;
    let out_image = guest_dir.join(format!("{NAME}.bin"));
    tessera_config::codegen::write_if_changed(&out_image, &image)?;
    let init = std::fs::read(paths.root.join("guests").join(NAME).join("init"))?;
    let busybox = std::fs::read(&busybox_cached)?;
    let cpio = initramfs(&init, &busybox);
    let out_initrd = guest_dir.join(format!("{NAME}.cpio"));
    tessera_config::codegen::write_if_changed(&out_initrd, &cpio)?;
    println!(
        "xtask: linux: initramfs {} ({} KiB: guests/linux/init + busybox-static)",
        util::display_rel(paths, &out_initrd),
        cpio.len().div_ceil(1024)
    );
    Ok(LinuxGuest { image: out_image })
}

/// The initramfs: a newc cpio of /init, /bin/busybox, /dev/console and the mount points.
pub fn initramfs(init: &[u8], busybox: &[u8]) -> Vec<u8> {
    let mut c = Cpio::default();
    for d in [
        "bin", "dev", "proc", "sys", "tmp", "sbin", "usr", "usr/bin", "usr/sbin",
    ] {
        c.entry(d, 0o040_755, (0, 0), &[]);
    }
    // The kernel opens /dev/console for init before anything is mounted.
    c.entry("dev/console", 0o020_600, (5, 1), &[]);
    c.entry("init", 0o100_755, (0, 0), init);
    c.entry("bin/busybox", 0o100_755, (0, 0), busybox);
    c.finish()
}

/// A "newc" (070701) cpio archive writer.
#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    /// One file: `rdev` = (major, minor) of a device node.
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            if mode & 0o040_000 != 0 { 2 } else { 1 },
            0, // mtime: reproducible archives
            data.len() as u32,
            0,
            0, // dev major/minor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad4();
        self.out.extend_from_slice(data);
        self.pad4();
    }

    fn pad4(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.ino = 0;
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        // Block-align like cpio(1) does.
        while !self.out.len().is_multiple_of(512) {
            self.out.push(0);
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_order() {
        let mut v = [
            "linux-image-6.1.0-9-arm64",
            "linux-image-6.1.0-56-arm64",
            "linux-image-6.1.0-10-arm64",
        ];
        v.sort_by_key(|a| version_key(a));
        assert_eq!(v.last(), Some(&"linux-image-6.1.0-56-arm64"));
    }

    #[test]
    fn cpio_is_newc_and_aligned() {
        let a = initramfs(b"#!/bin/sh\n", b"\x7fELFbusybox");
        assert_eq!(&a[..6], b"070701");
        assert_eq!(a.len() % 512, 0);
        // Every header starts 4-aligned with the magic; names and data in order.
        let text = String::from_utf8_lossy(&a);
        for name in ["init", "bin/busybox", "dev/console", "TRAILER!!!"] {
            assert!(text.contains(name), "{name}");
        }
        // dev/console: a character device 5:1.
        let at = text.find("dev/console").unwrap() - 110;
        let hdr = &text[at..at + 110];
        assert_eq!(&hdr[..6], "070701");
        assert_eq!(
            u32::from_str_radix(&hdr[14..22], 16).unwrap() & 0o170_000,
            0o020_000
        );
        assert_eq!(u32::from_str_radix(&hdr[78..86], 16).unwrap(), 5);
        assert_eq!(u32::from_str_radix(&hdr[86..94], 16).unwrap(), 1);
    }
}
