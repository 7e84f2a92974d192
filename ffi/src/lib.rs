//! C ABI of the Rust KVM arm64 platform, with Unikraft RELEASE-0.17.0's names.
//!
//! Thin by design: it converts between C and the core crate's types, owns the few
//! globals the C ABI implies, and holds no hardware logic. On the host (where only
//! `cargo test` and clippy build it) it links `std`; on the bare-metal targets it is
//! `no_std` and brings its own panic handler.
#![cfg_attr(target_os = "none", no_std)]

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
