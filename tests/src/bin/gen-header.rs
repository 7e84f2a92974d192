//! Writes (or, with `--check`, verifies) `include/plat_kvm_arm.h`, the C header of
//! the `ffi` crate's exports, with cbindgen.

use std::path::PathBuf;
use std::process::ExitCode;

fn generate() -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let config =
        cbindgen::Config::from_file(root.join("ffi/cbindgen.toml")).expect("ffi/cbindgen.toml");
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("ffi/src/lib.rs"))
        .generate()
        .expect("cbindgen")
        .write(&mut out);
    String::from_utf8(out).expect("UTF-8 header")
}

fn main() -> ExitCode {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../include/plat_kvm_arm.h");
    let header = generate();
    if std::env::args().any(|a| a == "--check") {
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current != header {
            eprintln!(
                "{} is stale: run `cargo run -p plat-tests --bin gen-header`",
                path.display()
            );
            return ExitCode::FAILURE;
        }
        println!("{} is current", path.display());
    } else {
        std::fs::write(&path, header).expect("write header");
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
