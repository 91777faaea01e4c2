//! `cargo xtask check-config`: validate a config without building and print its report.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};

use crate::images::{self, HypervisorBuild};
use crate::util::Paths;

/// The outcome of validating a config.
pub enum Checked {
    /// Valid: the partition report.
    Report(String),
    /// Every problem, one line each.
    Problems(Vec<String>),
}

/// The board of a path `.../boards/<board>/configs/<file>.toml`.
pub fn board_from_path(config: &Path) -> Option<String> {
    let parts: Vec<String> = config
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    parts
        .windows(3)
        .rev()
        .find(|w| w[0] == "boards" && w[2] == "configs")
        .map(|w| w[1].clone())
}

pub fn cmd_check_config(
    paths: &Paths,
    config: &Path,
    board: Option<&str>,
    gic: Option<u8>,
    cpu: Option<&str>,
) -> Result<i32> {
    let config: PathBuf = if config.is_absolute() {
        config.to_path_buf()
    } else {
        std::env::current_dir()?.join(config)
    };
    let config = config
        .canonicalize()
        .with_context(|| format!("config file {} does not exist", config.display()))?;
    let board = match board {
        Some(b) => b.to_string(),
        None => board_from_path(&config).with_context(|| {
            format!(
                "cannot tell the board from {} (not under boards/<board>/configs/); pass --board",
                config.display()
            )
        })?,
    };
    let board_dir = images::board_dir(paths, &board)?;
    match validate(paths, &board_dir, &config, gic, cpu)? {
        Checked::Report(r) => {
            print!("{r}");
            if !r.ends_with('\n') {
                println!();
            }
            println!("xtask: {} is valid for board {board}", config.display());
            Ok(0)
        }
        Checked::Problems(p) => {
            for line in &p {
                println!("{line}");
            }
            println!(
                "xtask: {} has {} problem(s) for board {board}; fix them and run check-config again",
                config.display(),
                p.len()
            );
            Ok(1)
        }
    }
}

/// The one place that calls `tessera_config` (adapter: rewire here when its API changes).
/// Images not built yet are fine when their guest crate exists (the report says so);
/// `TESSERA_IMAGE_<VM>` overrides in the environment apply. `cpu`: the CPU model (`None`:
/// the board's default).
pub fn validate(
    paths: &Paths,
    board_dir: &Path,
    config: &Path,
    gic: Option<u8>,
    cpu: Option<&str>,
) -> Result<Checked> {
    let board = board_dir
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut opts = tessera_config::Options::new(&paths.root, &board, &config.display().to_string());
    opts.board_dir = board_dir.to_path_buf();
    opts.config = config.to_path_buf();
    opts.gic = gic;
    opts.cpu = cpu.map(str::to_string);
    opts.guest_dir = paths.guest_dir();
    opts.missing_images = tessera_config::MissingImages::ReportUnbuilt;
    Ok(match tessera_config::check_with(&opts) {
        Ok(report) => Checked::Report(report.to_string()),
        Err(errors) => Checked::Problems(errors.iter().map(|e| e.to_string()).collect()),
    })
}

/// Before a build: `hb`'s config with its image overrides resolved exactly as the image's
/// build script will (the payload bundle written beside the image comes from it), or every
/// problem, as lines. Guest images must exist by then.
pub fn load_for_build(
    paths: &Paths,
    hb: &HypervisorBuild,
) -> Result<Result<tessera_config::System, Vec<String>>> {
    let board_dir = images::board_dir(paths, &hb.board)?;
    let mut opts = tessera_config::Options::new(&paths.root, &hb.board, &hb.config);
    opts.board_dir = board_dir;
    opts.config = hb.config_path.clone();
    opts.gic = Some(hb.gic);
    opts.cpu = hb.effective_cpu().map(str::to_string);
    opts.guest_dir = paths.guest_dir();
    opts.read_image_env = false;
    opts.image_overrides = hb.overrides.iter().cloned().collect();
    opts.initrd_overrides = hb.initrds.iter().cloned().collect();
    opts.bootargs_overrides = hb.cmdlines.iter().cloned().collect();
    opts.missing_images = tessera_config::MissingImages::Error;
    Ok(
        tessera_config::load(&opts)
            .map_err(|errors| errors.iter().map(|e| e.to_string()).collect()),
    )
}

#[cfg(test)]
mod tests {
    use super::board_from_path;
    use std::path::Path;

    #[test]
    fn board_inferred() {
        assert_eq!(
            board_from_path(Path::new("/x/boards/qemu-virt/configs/default.toml")).as_deref(),
            Some("qemu-virt")
        );
        assert_eq!(
            board_from_path(Path::new("boards/rpi4/configs/a.toml")).as_deref(),
            Some("rpi4")
        );
        assert_eq!(board_from_path(Path::new("/tmp/a.toml")), None);
    }
}
