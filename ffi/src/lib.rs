//! C ABI of the Rust KVM arm64 platform for Unikraft: RELEASE-0.17.0 ([`uk017`])
//! or the 0.18 line ([`uk018`]), one module per release.
//!
//! Thin by design: it converts between C and the core crate's types, owns the few
//! globals the C ABI implies, and holds no hardware logic. On the host (where only
//! `cargo test` and clippy build it) it links `std` and holds just the ABI layouts;
//! the boot path, console and shutdown exist on the bare-metal aarch64 targets.
#![cfg_attr(target_os = "none", no_std)]

pub mod uk017;
pub mod uk018;

// The Unikraft release the image is built for (Makefile.uk picks the feature from
// the tree's version.mk); the conformance harness speaks 0.17.
#[cfg(all(target_os = "none", not(feature = "uk018")))]
use uk017 as abi;
#[cfg(all(target_os = "none", feature = "uk018"))]
use uk018 as abi;

// Bare-metal modules, in dependency order (each uses only those above it; `tests/lint/ffi-deps`
// checks it): the arch layer and the boot state are leaves, `boot` is the root.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod arch;
#[cfg(all(target_arch = "aarch64", target_os = "none", feature = "virtio-blk"))]
mod blkdev;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod boot;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod console;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod dtb;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod fatal;
#[cfg(all(target_arch = "aarch64", target_os = "none", feature = "virtio-net"))]
mod netdev;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod realm;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod shutdown;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod state;
#[cfg(all(target_arch = "aarch64", target_os = "none", feature = "virtio"))]
mod virtio;
#[cfg(all(target_arch = "aarch64", target_os = "none", feature = "virtio"))]
mod virtio_net;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use shutdown::ukplat_terminate;
#[cfg(all(target_arch = "aarch64", target_os = "none", not(feature = "uk018")))]
pub use uk017::console_abi::{ukplat_cink, ukplat_coutd, ukplat_coutk};

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    // One line: the message, then where (PanicInfo's Display puts a line break
    // between the two).
    match info.location() {
        Some(l) => fatal::fatal(format_args!(
            "{} (panic at {}:{})",
            info.message(),
            l.file(),
            l.line()
        )),
        None => fatal::fatal(format_args!("{} (panic)", info.message())),
    }
}
