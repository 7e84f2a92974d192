//! The hand-off to Unikraft 0.17: its boot info filled, the list coalesced, then
//! `_ukplat_entry` (where 0.17's `entry64.S` continues after `ukplat_early_init`).

use super::Bootinfo;
#[cfg(not(feature = "uk018"))]
use super::MemregionList;
use crate::fatal::fatal;
use plat_kvm_arm::bootinfo::BootInfo;
use plat_kvm_arm::console::UartDesc;
use plat_kvm_arm::memregion::{MemRange, RegionKind};

#[cfg(not(feature = "uk018"))]
unsafe extern "C" {
    fn ukplat_bootinfo_get() -> *mut Bootinfo;
    fn ukplat_memregion_list_coalesce(list: *mut MemregionList);
    fn _ukplat_entry() -> !;
}

/// Fills Unikraft 0.17's boot info and continues where its `entry64.S` does.
#[cfg(not(feature = "uk018"))]
pub(crate) fn hand_off(dtb: u64, bi: &BootInfo<'_>, uart: &UartDesc) -> ! {
    // SAFETY: provided by Unikraft's plat/common (or the conformance harness).
    let ubi = unsafe { ukplat_bootinfo_get() };
    if ubi.is_null() {
        fatal(format_args!("ukplat_bootinfo_get() returned NULL"));
    }
    // SAFETY: `ubi` is the boot info with room for `capacity` descriptors.
    unsafe { fill(ubi, dtb, bi, uart, super::memrt_of) };
    // SAFETY: as above; single-threaded boot.
    let ubi = unsafe { &mut *ubi };
    let cmdline = super::cmdline::compose(bi.cmdline);
    ubi.cmdline = cmdline.as_ptr() as u64;
    ubi.cmdline_len = cmdline.len() as u64;
    // SAFETY: Unikraft's coalescing over the list we just filled.
    unsafe { ukplat_memregion_list_coalesce(&mut ubi.mrds) };
    #[cfg(feature = "unikraft")]
    crate::uk017::platform::before_entry(bi);
    // SAFETY: Unikraft's continuation; it never returns.
    unsafe { _ukplat_entry() }
}

/// What 0.17 and 0.18 fill alike (the layout did not change): the regions, with a
/// release's type numbers (`memrt_of`), the console's page, the names and the DTB.
///
/// # Safety
///
/// `ubi` is Unikraft's boot info with `count` valid descriptors and room for
/// `capacity`; single-threaded boot.
pub(crate) unsafe fn fill(
    ubi: *mut Bootinfo,
    dtb: u64,
    bi: &BootInfo<'_>,
    uart: &UartDesc,
    memrt_of: fn(RegionKind) -> u16,
) {
    // Unikraft's build (mkbootinfo.py) already describes the image's segments as
    // KERNEL regions; ours would overlap them, which its coalescing refuses. They
    // hold link addresses: moved to where the image runs if it was relocated.
    let kernel = memrt_of(RegionKind::Kernel);
    // SAFETY: `ubi` is Unikraft's boot info with `count` valid descriptors.
    let kernel_known = unsafe { super::has_type(ubi, kernel) };
    let offset = crate::arch::load_offset();
    if offset != 0 {
        // SAFETY: as above; single-threaded boot.
        unsafe { super::shift_type(ubi, kernel, offset) };
    }
    let console = MemRange {
        start: uart.base,
        end: uart.base + uart.size,
    };
    let descs = super::handoff_descs(
        bi,
        console,
        crate::state::shared_bit(),
        cfg!(feature = "paging"),
        kernel_known,
        memrt_of,
    );
    // SAFETY: `ubi` is Unikraft's boot info with room for `capacity` descriptors.
    let pushed = unsafe { super::push_descs(ubi, descs) };
    if pushed.is_err() {
        fatal(format_args!(
            "more memory regions than ukplat_bootinfo can hold"
        ));
    }
    // SAFETY: as above; single-threaded boot.
    let ubi = unsafe { &mut *ubi };
    if ubi.magic != super::BOOTINFO_MAGIC {
        ubi.magic = super::BOOTINFO_MAGIC;
        ubi.version = 1;
    }
    copy_name(&mut ubi.bootloader, b"plat-kvm-arm-rs");
    copy_name(&mut ubi.bootprotocol, b"lxboot");
    ubi.dtb = dtb;
}

fn copy_name(dst: &mut [u8; 16], name: &[u8]) {
    let n = name.len().min(15);
    dst[..n].copy_from_slice(&name[..n]);
    dst[n] = 0;
}
