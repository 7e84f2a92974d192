//! Build script of the C ABI crate. Only does something with feature `uk-bindgen`
//! (a Unikraft build, see Makefile.uk): runs bindgen over the Unikraft tree's own
//! `uk/plat/common/bootinfo.h` and `uk/plat/memory.h` (and, for 0.18,
//! `uk/console/driver.h`) with the clang arguments in `PLAT_UK_BINDGEN_ARGS`, into
//! `$OUT_DIR/uk_bindings.rs`, which the release's module (`src/uk017`,
//! `src/uk018`) checks its hand-written layouts against at compile time.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PLAT_UK_BINDGEN_ARGS");
    #[cfg(feature = "uk-bindgen")]
    uk_bindgen();
}

#[cfg(feature = "uk-bindgen")]
fn uk_bindgen() {
    let args = std::env::var("PLAT_UK_BINDGEN_ARGS").expect(
        "feature uk-bindgen needs PLAT_UK_BINDGEN_ARGS (clang arguments for the Unikraft headers)",
    );
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("uk_bindings.rs");
    let mut header = String::from(
        "#include <uk/config.h>\n\
         #include <uk/plat/memory.h>\n\
         #include <uk/plat/common/bootinfo.h>\n",
    );
    // 0.18: the console is a registered struct uk_console.
    if cfg!(feature = "uk018") {
        header.push_str("#include <uk/console/driver.h>\n");
    }
    let bindings = bindgen::Builder::default()
        .header_contents("plat_uk_bindgen.h", &header)
        .allowlist_type("uk_console")
        .allowlist_type("uk_console_ops")
        .clang_args(args.split_whitespace())
        .use_core()
        .allowlist_type("ukplat_bootinfo")
        .allowlist_type("ukplat_memregion_desc")
        .allowlist_type("ukplat_memregion_list")
        .allowlist_var("UKPLAT_BOOTINFO_MAGIC")
        .allowlist_var("UKPLAT_MEMRT_.*")
        .allowlist_var("UKPLAT_MEMRF_(READ|WRITE|EXECUTE)")
        .layout_tests(false)
        .generate()
        .expect("bindgen on the Unikraft headers failed");
    bindings
        .write_to_file(&out)
        .expect("cannot write uk_bindings.rs");
    for inc in args.split_whitespace().filter_map(|a| a.strip_prefix("-I")) {
        println!("cargo:rerun-if-changed={inc}/uk/plat/common/bootinfo.h");
        println!("cargo:rerun-if-changed={inc}/uk/plat/memory.h");
        println!("cargo:rerun-if-changed={inc}/uk/console/driver.h");
    }
}
