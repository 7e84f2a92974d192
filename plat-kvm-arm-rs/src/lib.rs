//! Hardware logic of the Rust KVM arm64 platform for Unikraft.
//!
//! Everything here is plain, allocation-free Rust that runs (and is tested) on the
//! host as well as at EL1. The only target-specific pieces are the single-instruction
//! MMIO accessors in [`mmio`] and the SMC/HVC conduit in [`psci`]; the C ABI lives in
//! the `ffi` crate and Unikraft-version glue stays out of this crate.
#![no_std]

#[cfg(test)]
extern crate std;

pub mod bootinfo;
pub mod bootmap;
pub mod console;
pub mod fdt;
pub mod memregion;
pub mod mmio;
pub mod pagetable;
pub mod psci;
pub mod realm;
pub mod rsi;
#[cfg(feature = "virtio")]
pub mod virtio;
#[cfg(feature = "virtio")]
pub mod virtio_blkdev;
#[cfg(feature = "virtio")]
pub mod virtio_net;
#[cfg(feature = "virtio")]
pub mod virtio_netdev;
#[cfg(feature = "virtio")]
pub mod virtio_pci;
