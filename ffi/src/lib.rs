//! C ABI of the Rust KVM arm64 platform, with Unikraft RELEASE-0.17.0's names.
//!
//! Thin by design: it converts between C and the core crate's types, owns the few
//! globals the C ABI implies, and holds no hardware logic. On the host (where only
//! `cargo test` and clippy build it) it links `std` and holds just the ABI layouts;
//! the boot path, console and shutdown exist on the bare-metal aarch64 targets.
#![cfg_attr(target_os = "none", no_std)]

pub mod uk017;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod boot;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod cmdline;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod console;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod realm;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod shutdown;
#[cfg(all(target_arch = "aarch64", target_os = "none", feature = "unikraft"))]
mod unikraft;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use console::{ukplat_cink, ukplat_coutd, ukplat_coutk};
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use shutdown::ukplat_terminate;

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    boot::fatal(format_args!("panic: {info}"))
}
