//! The arch layer: the entry code (`entry.S`), the early identity map, the switch
//! to the DTB-derived tables, the early vectors, and every system-register access
//! of this crate. Nothing else in `ffi` holds assembly.
//!
//! The constants the entry code needs come from the core crate (`pagetable`)
//! through absolute symbols, so the MAIR, TCR, SCTLR and descriptor encodings
//! have one definition.

use core::arch::{asm, global_asm};
use plat_kvm_arm::console::{UartDesc, UartKind};
use plat_kvm_arm::pagetable::{self, desc, mair_idx};

global_asm!(include_str!("entry.S"), options(raw));

/// The early map's block for the image and the DTB: Normal write-back, EL1 RWX
/// (replaced by the W^X tables from the DTB before any C code runs).
const BLOCK_NORMAL: u64 = desc::TYPE_BLOCK
    | (mair_idx::NORMAL_WB << desc::ATTR_IDX_SHIFT)
    | desc::SH_IS
    | desc::AF
    | desc::UXN;
/// The early map's block for a UART: Device-nGnRE, never executable.
const BLOCK_DEVICE: u64 = desc::TYPE_BLOCK
    | (mair_idx::DEVICE_NGNRE << desc::ATTR_IDX_SHIFT)
    | desc::AF
    | desc::PXN
    | desc::UXN;

/// The UART the VMM this image is built for has at a fixed address (Unikraft's
/// `*_EARLY_CONSOLE_BASE`): the console until the DTB names one, and the one that
/// reports an image loaded at the wrong address. None for a VMM-neutral build
/// (`vmm-any`): its console comes from the device tree only.
pub(crate) const EARLY_UART: Option<UartDesc> = if cfg!(feature = "vmm-any") {
    None
} else if cfg!(feature = "vmm-kvmtool") {
    Some(UartDesc {
        kind: UartKind::Ns16550,
        base: 0x100_0000,
        size: 8,
        reg_shift: 0,
        reg_io_width: 1,
        clock_hz: None,
    })
} else {
    Some(UartDesc {
        kind: UartKind::Pl011,
        base: 0x900_0000,
        size: 0x1000,
        reg_shift: 0,
        reg_io_width: 1,
        clock_hz: None,
    })
};

/// For the entry code: the early UART's base and kind (0 ns16550 with byte
/// registers, 1 PL011, 2 none).
const EARLY_UART_BASE: u64 = match EARLY_UART {
    Some(u) => u.base,
    None => 0,
};
const EARLY_UART_KIND: u64 = match EARLY_UART {
    Some(UartDesc {
        kind: UartKind::Pl011,
        ..
    }) => 1,
    Some(_) => 0,
    None => 2,
};

global_asm!(
    ".globl plat_mair_el1", ".set plat_mair_el1, {mair}",
    ".globl plat_tcr_el1", ".set plat_tcr_el1, {tcr}",
    ".globl plat_sctlr_set", ".set plat_sctlr_set, {set}",
    ".globl plat_sctlr_clear", ".set plat_sctlr_clear, {clear}",
    ".globl plat_block_normal", ".set plat_block_normal, {normal}",
    ".globl plat_block_device", ".set plat_block_device, {device}",
    ".globl plat_early_uart_base", ".set plat_early_uart_base, {uart}",
    ".globl plat_early_uart_kind", ".set plat_early_uart_kind, {kind}",
    ".globl plat_realm_build", ".set plat_realm_build, {realm}",
    mair = const pagetable::MAIR_EL1,
    // IPS = 48 bits as Unikraft's paging code expects (a larger IPS than the CPU
    // implements behaves as the implemented size).
    tcr = const pagetable::tcr_el1(5),
    set = const pagetable::SCTLR_EL1_SET,
    clear = const pagetable::SCTLR_EL1_CLEAR,
    normal = const BLOCK_NORMAL,
    device = const BLOCK_DEVICE,
    uart = const EARLY_UART_BASE,
    kind = const EARLY_UART_KIND,
    realm = const cfg!(feature = "realm") as u64,
);

unsafe extern "C" {
    fn plat_idmap_block(addr: u64, attrs: u64) -> i64;
    fn plat_switch_ttbr0(root: u64);
    /// Written once by the entry code, before any Rust runs.
    static plat_load_offset: u64;
}

/// Where the image runs minus where it was linked: 0 unless the entry relocated it.
pub(crate) fn load_offset() -> u64 {
    // SAFETY: written by the entry code before any Rust runs, read-only after.
    unsafe { core::ptr::read(&raw const plat_load_offset) }
}

/// Maps the 2 MiB block holding `pa` as a device in the early tables (the console
/// the DTB names, a realm's UART alias), so that a fatal error before the
/// DTB-derived tables are on can still be printed. `false` if the early tables
/// cannot take it (the 48-bit VA space, the table pool), or the block is already
/// mapped as something else; the console is then used only once the full tables
/// are on.
pub(crate) fn early_map_device(pa: u64) -> bool {
    // SAFETY: adds one block descriptor where there was none (no live entry
    // changes), then makes it visible to the walker.
    let r = unsafe {
        let r = plat_idmap_block(pa, BLOCK_DEVICE);
        asm!("dsb ishst", "isb", options(nostack));
        r
    };
    r == 0
}

/// Switches from the early tables to the DTB-derived ones at `root`
/// (break-before-make: translation off during the switch, TLBs flushed).
///
/// # Safety
///
/// `root` must hold complete tables that map the running code, its stack and
/// every object in use at their current addresses.
pub(crate) unsafe fn switch_tables(root: u64) {
    // SAFETY: forwarded to the caller.
    unsafe { plat_switch_ttbr0(root) }
}

/// `ID_AA64MMFR0_EL1`.
pub(crate) fn mmfr0() -> u64 {
    let v: u64;
    // SAFETY: reading an ID register has no side effect.
    unsafe { asm!("mrs {}, id_aa64mmfr0_el1", out(reg) v, options(nomem, nostack)) };
    v
}

/// Stops FP/SIMD instructions from trapping at EL1 (CPACR_EL1.FPEN = 0b11).
pub(crate) fn enable_fp() {
    // SAFETY: only changes whether FP/SIMD traps.
    unsafe { asm!("msr cpacr_el1, {}", "isb", in(reg) 3u64 << 20, options(nostack)) };
}

/// Masks IRQs and FIQs and returns the previous `DAIF`, for [`irq_restore`].
pub(crate) fn irq_save_mask() -> u64 {
    let daif: u64;
    // SAFETY: saves the interrupt masks, then masks IRQ and FIQ.
    unsafe { asm!("mrs {}, daif", "msr daifset, #3", out(reg) daif, options(nostack)) };
    daif
}

/// Restores the masks [`irq_save_mask`] returned.
pub(crate) fn irq_restore(daif: u64) {
    // SAFETY: restores masks saved by `irq_save_mask` on this CPU.
    unsafe { asm!("msr daif, {}", in(reg) daif, options(nostack)) };
}

/// This CPU's affinity (MPIDR_EL1 without the U and MT bits).
pub(crate) fn cpu_id() -> u64 {
    let mpidr: u64;
    // SAFETY: reading an ID register has no side effect.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) mpidr, options(nomem, nostack)) };
    mpidr & 0xff_00ff_ffff
}

/// The exception syndrome at EL1: `(ESR, ELR, FAR, SPSR)`.
pub(crate) fn syndrome() -> (u64, u64, u64, u64) {
    let (esr, elr, far, spsr): (u64, u64, u64, u64);
    // SAFETY: reading exception syndrome registers has no side effect.
    unsafe {
        asm!(
            "mrs {0}, esr_el1", "mrs {1}, elr_el1", "mrs {2}, far_el1", "mrs {3}, spsr_el1",
            out(reg) esr, out(reg) elr, out(reg) far, out(reg) spsr,
            options(nomem, nostack),
        )
    };
    (esr, elr, far, spsr)
}

/// Points `VBAR_EL1` at `vectors`.
#[cfg_attr(not(feature = "unikraft"), allow(dead_code))]
///
/// # Safety
///
/// `vectors` must be a 2 KiB-aligned, mapped, executable vector table.
pub(crate) unsafe fn set_vbar(vectors: u64) {
    // SAFETY: forwarded to the caller.
    unsafe { asm!("msr vbar_el1, {}", "isb", in(reg) vectors, options(nostack)) };
}

/// Waits for an interrupt.
pub(crate) fn wait_for_interrupt() {
    // SAFETY: waits for an interrupt; nothing else.
    unsafe { asm!("wfi", options(nomem, nostack)) };
}

/// Semihosting `SYS_EXIT_EXTENDED`: QEMU exits with `code`. Only for test builds
/// (feature `semihosting`): on KVM or in a realm `hlt` would trap.
pub(crate) fn semihosting_exit(code: u64) -> ! {
    let block: [u64; 2] = [0x20026, code]; // ADP_Stopped_ApplicationExit
    loop {
        // SAFETY: a semihosting call reading `block`; QEMU ends the run.
        unsafe {
            asm!(
                "hlt #0xf000",
                in("x0") 0x20u64,
                in("x1") block.as_ptr(),
                options(nostack, readonly),
            )
        };
    }
}
