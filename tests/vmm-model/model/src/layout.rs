//! Guest (IPA) and host (QEMU physical) address maps.

// ---- guest IPA map (kvmtool's arm64 layout)
pub const UART_IPA: u64 = 0x0100_0000;
pub const UART_COUNT: u64 = 4;
pub const RTC_IPA: u64 = 0x0101_0000;
pub const GICD_IPA: u64 = 0x3fff_0000;
pub const GICD_SIZE: u64 = 0x1_0000;
pub const GICR_STRIDE: u64 = 0x2_0000;
pub const GITS_SIZE: u64 = 0x2_0000;
pub const ECAM_IPA: u64 = 0x4000_0000;
pub const ECAM_SIZE: u64 = 0x1000_0000;
pub const RAM_IPA: u64 = 0x8000_0000;

// ---- QEMU virt physical map
pub const QEMU_GICD: u64 = 0x0800_0000;
pub const QEMU_GITS: u64 = 0x0808_0000;
pub const QEMU_GICR: u64 = 0x080a_0000;
pub const QEMU_DTB: usize = 0x4000_0000;
pub const QEMU_RAM: u64 = 0x4000_0000;
/// Page tables and model data (32 MiB).
pub const POOL: u64 = 0x4200_0000;
pub const POOL_END: u64 = 0x4400_0000;
/// Where the runner's `-device loader` puts the guest image.
pub const STAGING: u64 = 0x4400_0000;
pub const STAGING_END: u64 = 0x8000_0000;
/// Guest RAM is identity mapped: IPA 0x8000_0000 + x is QEMU PA 0x8000_0000 + x.
pub const GUEST_RAM_PA: u64 = 0x8000_0000;
pub const MAX_MEM_MIB: u64 = 8192;
