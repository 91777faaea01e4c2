//! Writes the guest DTBs Tessera's build generates for some configs of board `qemu-virt` to
//! `fuzz/corpus/dtb/` (seed inputs of the `dtb` target):
//! `cargo run --manifest-path fuzz/Cargo.toml -p tessera-fuzz-targets --example dtb_seeds`.

use std::path::Path;

use tessera_config::{MissingImages, Options};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = root.join("fuzz/corpus/dtb");
    std::fs::create_dir_all(&out).expect("corpus dir");
    for (config, gic) in [
        ("default", 3),
        ("irq-rtc", 2),
        ("ring-pingpong", 3),
        ("smp8", 3),
    ] {
        let mut opts = Options::new(&root, "qemu-virt", config);
        opts.gic = Some(gic);
        opts.read_image_env = false;
        opts.missing_images = MissingImages::Placeholder;
        let system = tessera_config::load(&opts).unwrap_or_else(|e| panic!("{config}: {e:?}"));
        for vm in &system.vms {
            let path = out.join(format!("seed-{config}-{}.dtb", vm.name));
            std::fs::write(&path, &vm.dtb).expect("write seed");
            println!("{} ({} bytes)", path.display(), vm.dtb.len());
        }
    }
}
