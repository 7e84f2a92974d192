//! The boot path at EL1: from `_libkvmplat_entry` (in `arch/entry.S`) to the
//! Unikraft release's hand-off (`crate::abi`: 0.17 or 0.18), which ends in
//! `_ukplat_entry`.
//!
//! [`plat_boot`] runs first with the MMU off. It is written for that: no atomics,
//! no unaligned accesses (the target is strict-align), and no `.bss` (zeroed only
//! once the MMU is on); what it writes (`.data` state, `.plat_noinit` stacks and
//! tables) is invalidated from the caches before they go on. The order follows
//! Unikraft 0.17's `entry64.S` / `early_init.c`: boot info from the DTB, the
//! console, coalescing, the command line, then C. See `docs/boot.md`.

use crate::console;
use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use plat_kvm_arm::bootinfo::{self, BootInfo, ConsoleSource, ImageLayout, ImageSegment};
use plat_kvm_arm::bootmap;
use plat_kvm_arm::console::{UartDesc, UartKind};
use plat_kvm_arm::fdt;
use plat_kvm_arm::memregion::{MemRange, RegionFlags};
use plat_kvm_arm::pagetable::{self, PageTableBuilder, Table};
use plat_kvm_arm::psci::Conduit;

global_asm!(include_str!("arch/entry.S"), options(raw));

/// Tables for the boot map: kvmtool and QEMU `virt` layouts need at most 10, with
/// Unikraft's direct map (see `tests/tests/pagetable.rs`); the rest is headroom.
const PT_POOL_TABLES: usize = 16;

/// Boot-time state shared between the MMU-off phase, the C ABI and the fatal path.
/// Written only by the boot CPU before any other CPU runs.
pub(crate) struct BootCell<T>(UnsafeCell<T>);
// SAFETY: only the boot CPU writes, before secondaries start; later accesses are reads.
unsafe impl<T> Sync for BootCell<T> {}

impl<T: Copy> BootCell<T> {
    pub(crate) const fn new(v: T) -> Self {
        Self(UnsafeCell::new(v))
    }
    pub(crate) fn get(&self) -> T {
        // SAFETY: see the `Sync` impl; a plain load of a `Copy` value.
        unsafe { *self.0.get() }
    }
    pub(crate) fn set(&self, v: T) {
        // SAFETY: see the `Sync` impl.
        unsafe { *self.0.get() = v }
    }
}

#[repr(C, align(4096))]
struct Pool(UnsafeCell<[Table; PT_POOL_TABLES]>);
// The builder clears each table it takes, and the pool is written with the MMU
// off, before `.bss` is zeroed: so it lives in `.plat_noinit`, after `_plat_bss_end`.
// SAFETY: used once, by the boot CPU, while building the tables.
unsafe impl Sync for Pool {}
#[unsafe(link_section = ".plat_noinit.pt_pool")]
static PT_POOL: Pool = Pool(UnsafeCell::new([Table::ZERO; PT_POOL_TABLES]));

// The fatal path's state lives in `.data`: the realm probe can fail before `.bss`
// is zeroed (and before it is even RIPAS RAM).

/// The console the device tree named, once known (the fatal path uses it).
#[unsafe(link_section = ".data.plat_state")]
pub(crate) static CONSOLE_DESC: BootCell<Option<UartDesc>> = BootCell::new(None);
/// The PSCI conduit, once known.
#[unsafe(link_section = ".data.plat_state")]
pub(crate) static CONDUIT: BootCell<Option<Conduit>> = BootCell::new(None);
/// Whether the MMU is on (decides whether the global console lock may be taken).
#[unsafe(link_section = ".data.plat_state")]
pub(crate) static MMU_ON: BootCell<bool> = BootCell::new(false);
/// Whether we entered at EL2 (QEMU `virtualization=on`: PSCI is then SMC).
#[unsafe(link_section = ".data.plat_state")]
static ENTERED_EL2: BootCell<bool> = BootCell::new(false);
/// Set once a fatal error is being reported: a fault while printing it (say, a
/// console the host made unreachable) then goes straight to power-off.
#[unsafe(link_section = ".data.plat_state")]
static IN_FATAL: BootFlag = BootFlag::new();

unsafe extern "C" {
    static _text: u8;
    static _etext: u8;
    static _rodata: u8;
    static _tls_start: u8;
    static __bss_start: u8;
    static _plat_bss_end: u8;
    static _end: u8;
    fn plat_dcache_inval(start: u64, end: u64);
}

fn sym(s: &u8) -> u64 {
    s as *const u8 as u64
}

fn image_segments() -> [ImageSegment; 3] {
    // SAFETY: linker-script symbols; only their addresses are taken.
    let (text, etext, rodata, tls, end) = unsafe {
        (
            sym(&_text),
            sym(&_etext),
            sym(&_rodata),
            sym(&_tls_start),
            sym(&_end),
        )
    };
    let page_up = |a: u64| (a + 0xfff) & !0xfff;
    [
        ImageSegment {
            range: MemRange {
                start: text & !0xfff,
                end: page_up(etext),
            },
            flags: RegionFlags::RX,
        },
        ImageSegment {
            range: MemRange {
                start: rodata,
                end: tls,
            },
            flags: RegionFlags::READ,
        },
        ImageSegment {
            range: MemRange {
                start: tls,
                end: page_up(end),
            },
            flags: RegionFlags::RW,
        },
    ]
}

/// The console used when the DTB gives none (or cannot be read): the VMM's usual
/// UART, like Unikraft's `*_EARLY_CONSOLE_BASE` (at its alias in a realm).
fn fallback_console() -> UartDesc {
    if cfg!(feature = "vmm-kvmtool") {
        UartDesc {
            kind: UartKind::Ns16550,
            base: 0x100_0000 | crate::realm::shared_bit(),
            size: 8,
            reg_shift: 0,
            reg_io_width: 1,
            clock_hz: None,
        }
    } else {
        UartDesc {
            kind: UartKind::Pl011,
            base: 0x900_0000,
            size: 0x1000,
            reg_shift: 0,
            reg_io_width: 1,
            clock_hz: None,
        }
    }
}

/// The conduit used before (or without) `/psci`: HVC under KVM, SMC when QEMU
/// started us at EL2 (its PSCI then sits behind EL3).
pub(crate) fn conduit() -> Conduit {
    CONDUIT.get().unwrap_or(if ENTERED_EL2.get() {
        Conduit::Smc
    } else {
        Conduit::Hvc
    })
}

/// Reports a fatal boot error on the best console known and powers off.
pub(crate) fn fatal(args: core::fmt::Arguments<'_>) -> ! {
    if !IN_FATAL.test_and_set() {
        let desc = CONSOLE_DESC.get();
        console::emergency_write(
            &desc.unwrap_or_else(fallback_console),
            desc.is_none(),
            format_args!("plat-kvm-arm: fatal: {args}\n"),
        );
    }
    crate::shutdown::power_off(crate::shutdown::Reason::Fatal)
}

/// Main Rust boot code: MMU off, on the boot stack, `.bss` zeroed; `shared_bit` is
/// what `plat_realm_probe` found (0 outside an Arm CCA realm).
///
/// # Safety
///
/// Called once, from `_libkvmplat_entry` only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn plat_boot(dtb: u64, flags: u64, shared_bit: u64) -> ! {
    ENTERED_EL2.set(flags & 1 != 0);
    if cfg!(feature = "fpsimd") {
        // SAFETY: CPACR_EL1.FPEN = 0b11 only stops FP/SIMD from trapping.
        unsafe { asm!("msr cpacr_el1, {}", "isb", in(reg) 3u64 << 20, options(nostack)) };
    }

    let segments = image_segments();
    let image = ImageLayout {
        segments: &segments,
    };
    let mut bi = BootInfo::empty();
    if let Err(e) = read_boot_info(dtb, &image, &mut bi) {
        fatal(format_args!("{e}"));
    }
    let Some((mut uart, source)) = bi.console else {
        fatal(format_args!(
            "no ns16550a or arm,pl011 console in the device tree"
        ))
    };
    // Devices answer a realm only at their unprotected alias.
    uart.base |= shared_bit;
    CONSOLE_DESC.set(Some(uart));
    if shared_bit != 0 {
        #[cfg(feature = "realm")]
        crate::realm::setup_memory(&bi);
    } else {
        CONDUIT.set(bi.psci);
    }

    enable_mmu(&bi, &image, shared_bit);
    // SAFETY: nothing has used .bss yet (all boot state lives in .data); the MMU
    // and caches are on, so DC ZVA may be used.
    unsafe { zero_bss() };
    MMU_ON.set(true);

    // Unikraft in a realm reaches devices at their DT address (mapped to the alias
    // by the boot tables, and by Unikraft's own tables with PAGING, from the
    // regions the hand-off describes): the console does too, from here on.
    if cfg!(feature = "unikraft") && shared_bit != 0 {
        uart.base &= !shared_bit;
        CONSOLE_DESC.set(Some(uart));
    }
    console::init(&uart);
    if source == ConsoleSource::FirstUart {
        console::print(format_args!(
            "plat-kvm-arm: note: no console named (stdout-path, console=, earlycon=); using the first UART, at {:#x}\n",
            uart.base
        ));
    }
    if shared_bit != 0 {
        let r = crate::realm::REALM.get();
        console::print(format_args!(
            "plat-kvm-arm: Arm CCA realm, IPA width {}, shared bit {:#x}, RAM made RIPAS RAM in {} RSI call(s)\n",
            r.ipa_width, r.shared_bit, r.ripas_calls
        ));
    }
    if CONDUIT.get().is_none() {
        console::print(format_args!(
            "plat-kvm-arm: warning: no /psci node, cannot power off\n"
        ));
    }
    crate::abi::hand_off(dtb, &bi, &uart)
}

/// The DTB x0 points at, bounded by its header's `totalsize` (at most
/// `fdt::MAX_DTB_SIZE`). Used by the realm probe and by the boot-info parse.
pub(crate) fn dtb_blob(dtb: u64) -> Result<&'static [u8], BootError> {
    if dtb == 0 || !dtb.is_multiple_of(8) {
        return Err(BootError::DtbAddress(dtb));
    }
    // SAFETY: the boot protocol says x0 points at the DTB; only its header is read
    // before `total_size` bounds the rest. A host that lies here gets a data abort,
    // which the early vectors report.
    let header = unsafe { core::slice::from_raw_parts(dtb as *const u8, fdt::HEADER_SIZE) };
    let total = fdt::total_size(header, fdt::MAX_DTB_SIZE)
        .map_err(|e| BootError::Parse(bootinfo::BootInfoError::Dt(e)))?;
    // SAFETY: `total` is bounded by MAX_DTB_SIZE; nothing writes the blob during boot.
    Ok(unsafe { core::slice::from_raw_parts(dtb as *const u8, total) })
}

fn read_boot_info(
    dtb: u64,
    image: &ImageLayout<'_>,
    bi: &mut BootInfo<'static>,
) -> Result<(), BootError> {
    bootinfo::parse_into(dtb_blob(dtb)?, dtb, image, bi).map_err(BootError::Parse)
}

pub(crate) enum BootError {
    DtbAddress(u64),
    Parse(bootinfo::BootInfoError),
}

impl core::fmt::Display for BootError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BootError::DtbAddress(a) => write!(f, "x0 = {a:#x} is not a device tree address"),
            BootError::Parse(e) => write!(f, "{e}"),
        }
    }
}

#[inline(never)]
#[allow(named_asm_labels)]
fn enable_mmu(bi: &BootInfo<'_>, image: &ImageLayout<'_>, device_alias: u64) {
    let mmfr0: u64;
    // SAFETY: reading an ID register has no side effect.
    unsafe { asm!("mrs {}, id_aa64mmfr0_el1", out(reg) mmfr0, options(nomem, nostack)) };
    let pool_pa = PT_POOL.0.get() as u64;
    // SAFETY: the pool is used only here, once, by the boot CPU.
    let pool = unsafe { &mut *PT_POOL.0.get() };
    let mut b = match PageTableBuilder::new(pool, pool_pa, mmfr0) {
        Ok(b) => b,
        Err(e) => fatal(format_args!("page tables: {e}")),
    };
    if let Err(e) = bootmap::build(&mut b, bi, image, device_alias, true) {
        fatal(format_args!("boot page tables: {e}"));
    }
    #[cfg(feature = "unikraft")]
    if let Err(e) = crate::unikraft::extra_maps(&mut b, bi, device_alias) {
        fatal(format_args!("boot page tables for Unikraft: {e}"));
    }
    let ttbr0 = b.root_pa();
    // IPS = 48 bits as Unikraft's paging code expects (a larger IPS than the CPU
    // implements behaves as the implemented size).
    let tcr = pagetable::tcr_el1(5);
    // SAFETY: the tables identity-map the image (text executable), the stack and the
    // devices, so execution continues at the same addresses. Lines over what we
    // wrote with caches off are invalidated first.
    unsafe {
        // What was written with caches off: .data (boot state, the early stack,
        // the realm config granule) and .plat_noinit (stacks, these tables).
        plat_dcache_inval(&raw const _tls_start as u64, &raw const __bss_start as u64);
        plat_dcache_inval(&raw const _plat_bss_end as u64, &raw const _end as u64);
        asm!(
            "msr mair_el1, {mair}",
            "msr tcr_el1, {tcr}",
            "msr ttbr0_el1, {ttbr0}",
            "isb",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            "mrs {tmp}, sctlr_el1",
            "orr {tmp}, {tmp}, {set}",
            "bic {tmp}, {tmp}, {clear}",
            "msr sctlr_el1, {tmp}",
            "isb",
            // The first instruction with the MMU on: a mark for `make bench`
            // ("instructions with the MMU off"). This function is never inlined,
            // so the label exists once.
            ".global plat_mmu_on",
            "plat_mmu_on:",
            mair = in(reg) pagetable::MAIR_EL1,
            tcr = in(reg) tcr,
            ttbr0 = in(reg) ttbr0,
            set = in(reg) pagetable::SCTLR_EL1_SET,
            clear = in(reg) pagetable::SCTLR_EL1_CLEAR,
            tmp = out(reg) _,
            options(nostack),
        );
    }
}

/// Zeroes `[__bss_start, _plat_bss_end)` (Unikraft 0.17 relied on the loader; a
/// realm cannot), a cache block per DC ZVA where the CPU allows it.
///
/// # Safety
///
/// MMU and data cache on; no live reference into `.bss`.
unsafe fn zero_bss() {
    let (mut p, end) = (
        &raw const __bss_start as u64,
        &raw const _plat_bss_end as u64,
    );
    let dczid: u64;
    // SAFETY: reading an ID register has no side effect.
    unsafe { asm!("mrs {}, dczid_el0", out(reg) dczid, options(nomem, nostack)) };
    if dczid & (1 << 4) == 0 {
        let block = 4u64 << (dczid & 0xf);
        let first = p.next_multiple_of(block).min(end);
        // SAFETY: inside .bss, which nothing references yet.
        unsafe { core::ptr::write_bytes(p as *mut u8, 0, (first - p) as usize) };
        p = first;
        // Four blocks per iteration: .bss is large (Unikraft's is ~270 KiB).
        while p + 4 * block <= end {
            // SAFETY: four whole cache blocks inside .bss; Normal memory (MMU on).
            unsafe {
                asm!(
                    "dc zva, {a}",
                    "add {t}, {a}, {b}",
                    "dc zva, {t}",
                    "add {t}, {t}, {b}",
                    "dc zva, {t}",
                    "add {t}, {t}, {b}",
                    "dc zva, {t}",
                    a = in(reg) p,
                    b = in(reg) block,
                    t = out(reg) _,
                    options(nostack),
                )
            };
            p += 4 * block;
        }
        while p + block <= end {
            // SAFETY: one whole cache block inside .bss; Normal memory (MMU on).
            unsafe { asm!("dc zva, {}", in(reg) p, options(nostack)) };
            p += block;
        }
    }
    // SAFETY: as above (the tail, or everything when DC ZVA is prohibited).
    unsafe { core::ptr::write_bytes(p as *mut u8, 0, (end - p) as usize) };
}

/// Early exception: report and power off (no handler returns).
#[unsafe(no_mangle)]
extern "C" fn plat_early_trap(kind: u64) -> ! {
    if IN_FATAL.get() {
        // A fault while reporting a fault (e.g. a console the host made
        // unreachable): no more printing, straight to power-off.
        crate::shutdown::power_off_quietly()
    }
    let (esr, elr, far, spsr): (u64, u64, u64, u64);
    // SAFETY: reading exception syndrome registers has no side effect.
    unsafe {
        asm!(
            "mrs {0}, esr_el1", "mrs {1}, elr_el1", "mrs {2}, far_el1", "mrs {3}, spsr_el1",
            out(reg) esr, out(reg) elr, out(reg) far, out(reg) spsr,
            options(nomem, nostack),
        )
    };
    const KINDS: [&str; 4] = ["synchronous", "IRQ", "FIQ", "SError"];
    const FROM: [&str; 4] = ["EL1t", "EL1h", "EL0/64", "EL0/32"];
    let k = (kind & 3) as usize;
    let f = ((kind >> 2) & 3) as usize;
    fatal(format_args!(
        "unexpected {} exception from {} during boot: ESR={esr:#x} ELR={elr:#x} FAR={far:#x} SPSR={spsr:#x}",
        KINDS[k], FROM[f]
    ))
}

/// Writes to the console once it exists, otherwise straight to the early UART.
pub(crate) fn early_print(args: core::fmt::Arguments<'_>) {
    if MMU_ON.get() {
        console::print(args);
    } else {
        let desc = CONSOLE_DESC.get();
        console::emergency_write(&desc.unwrap_or_else(fallback_console), desc.is_none(), args);
    }
}

/// A once-flag usable with the MMU off (no atomics: only the boot CPU, or a CPU on
/// its way down, touches it).
pub(crate) struct BootFlag(BootCell<bool>);

impl BootFlag {
    /// Whether the flag is set.
    pub(crate) fn get(&self) -> bool {
        self.0.get()
    }

    /// A clear flag.
    pub(crate) const fn new() -> Self {
        Self(BootCell::new(false))
    }

    /// Sets the flag and returns whether it was already set.
    pub(crate) fn test_and_set(&self) -> bool {
        let was = self.0.get();
        self.0.set(true);
        was
    }
}
