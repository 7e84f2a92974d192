//! What a real Unikraft tree (RELEASE-0.17.0, and the 0.18 line, which reuses
//! it) needs from the platform beyond the
//! C ABI the conformance harness exercises (feature `unikraft`, set by the
//! repository's `Makefile.uk`).
//!
//! Unikraft 0.17's `plat/kvm` files that stay in the build (`setup.c`,
//! `exceptions.S`, `plat/common/memory.c`, `paging.c`) expect a few things the
//! replaced `entry64.S`, `*_bpt64.S` and `shutdown.c` used to provide:
//!
//! - `VBAR_EL1 = vector_table` before `_ukplat_entry` (their entry did it before
//!   the MMU went on; ours runs on its own early vectors until the hand-off);
//! - `bpt_unmap_mrd`, the end of what the boot page tables map, which
//!   `ukplat_mem_init` (without `CONFIG_PAGING`) uses to drop free memory the
//!   tables do not reach;
//! - `ukplat_suspend` (`shutdown.c` defined it with `ukplat_terminate`);
//! - with `CONFIG_PAGING` (feature `paging`), Unikraft's direct map at
//!   `0xff80_0000_0000 + pa`: `ukplat_paging_init` writes the frame allocator's
//!   metadata there while the boot tables are still live;
//! - TPIDR_EL1 and SP_EL0 of the boot CPU before `_ukplat_entry`: an SMP build
//!   on a GICv3 (kvmtool, QEMU `gic-version=3`) otherwise stops at an assertion,
//!   on the tree's C platform too, and an early trap wedges (see [`before_entry`]).

use super::MemregionDesc;
use core::cell::UnsafeCell;
use core::ffi::c_int;
use plat_kvm_arm::bootinfo::BootInfo;
use plat_kvm_arm::memregion::PAGE_SIZE;

/// `struct ukplat_memregion_desc bpt_unmap_mrd`, as C sees it.
#[repr(transparent)]
pub struct UnmapMrd(UnsafeCell<MemregionDesc>);
// SAFETY: written once by the boot CPU in `before_entry`, before any C code runs.
unsafe impl Sync for UnmapMrd {}

/// The range the boot page tables map, for `plat/common/memory.c`
/// (`UKPLAT_MEMRF_UNMAP`-style descriptor, as the C boot tables export it).
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
pub static bpt_unmap_mrd: UnmapMrd = UnmapMrd(UnsafeCell::new(MemregionDesc {
    flags: 0x10,
    ..MemregionDesc::ZERO
}));

unsafe extern "C" {
    /// Unikraft's exception vectors (`plat/kvm/arm/exceptions.S`).
    static vector_table: u8;
    /// `uk-glue/bsp_early.c`: the boot CPU's TPIDR_EL1 (as
    /// `lcpu_init(lcpu_get_bsp())` will set it) and SP_EL0 = `trap_sp`.
    fn plat_uk_bsp_early(trap_sp: u64);
    /// Top of the early vectors' stack (`arch/entry.S`), idle once VBAR_EL1 points
    /// at Unikraft's vectors.
    static plat_exc_stack_top: u8;
}

/// Last steps before `_ukplat_entry`: record what the boot tables map and move
/// from the early vectors to Unikraft's.
pub(crate) fn before_entry(bi: &BootInfo<'_>) {
    // Every RAM bank of the DT is mapped (see `bootmap::build`); nothing above
    // the highest one is.
    let end = bi.ram.iter().map(|r| r.end).max().unwrap_or(0) & !(PAGE_SIZE - 1);
    // SAFETY: single-threaded boot, before C reads it (see `UnmapMrd`).
    unsafe {
        let d = &mut *bpt_unmap_mrd.0.get();
        d.len = end;
        d.pg_count = end / PAGE_SIZE;
    }
    // SAFETY: `vector_table` is 2 KiB-aligned code mapped executable by the boot
    // tables; from here on exceptions go to Unikraft's handlers, as after its
    // own entry.
    unsafe { crate::arch::set_vbar(&raw const vector_table as u64) };
    // The boot CPU's TPIDR_EL1 and SP_EL0 (its exception stack), which
    // `lcpu_init(lcpu_get_bsp())` sets anyway, only earlier: `_ukplat_entry`
    // probes the interrupt controller before it calls `lcpu_init` (setup.c:171/176
    // in 0.18, 208/213 in 0.17); the GICv3 driver reads `lcpu_get_current()`
    // (gic-v3.c:68), which in an SMP build asserts that TPIDR_EL1 points into
    // `lcpus` (plat/common/arm/lcpu.c:141), and a trap before `lcpu_init` would
    // run on an unset exception stack.
    // SAFETY: two system-register writes on the boot CPU, before any C code runs;
    // the early exception stack is no longer used by anything.
    unsafe { plat_uk_bsp_early(&raw const plat_exc_stack_top as u64) };
}

/// `int ukplat_suspend(void)`: not supported on KVM arm64 in 0.17 either.
#[unsafe(no_mangle)]
pub extern "C" fn ukplat_suspend() -> c_int {
    const EBUSY: c_int = 16;
    -EBUSY
}

/// Mappings Unikraft's own code needs in the boot tables besides the identity map:
/// with `CONFIG_PAGING` (feature `paging`), every RAM bank again at Unikraft's
/// direct map (`0xff80_0000_0000 + pa`), where `ukplat_paging_init` writes its
/// frame allocator's metadata while the boot tables are still live. (In an Arm CCA
/// realm the device tree names the devices' unprotected aliases, which the
/// identity map covers: `boot::alias_device_tree`.)
#[cfg(feature = "paging")]
pub(crate) fn extra_maps(
    b: &mut plat_kvm_arm::pagetable::PageTableBuilder<'_>,
    bi: &BootInfo<'_>,
) -> Result<(), plat_kvm_arm::bootmap::BootMapError> {
    plat_kvm_arm::bootmap::map_ram_at(b, bi, plat_kvm_arm::pagetable::UK_DIRECTMAP_BASE)
}
