//! The boot path at EL1, from the entry code (`arch/entry.S`: MMU and caches
//! already on, with the early identity map of the image, the DTB and the build's
//! UART) to the Unikraft release's hand-off (`crate::abi`: 0.17 or 0.18), which
//! ends in `_ukplat_entry`.
//!
//! [`plat_boot`] parses the DTB once, picks the console and the PSCI conduit,
//! does the realm work, builds the DTB-derived tables and switches to them, then
//! hands off. It owns the boot state (`crate::state`). See `docs/boot.md`.

use crate::dtb::{self, DtbError};
use crate::fatal::fatal;
use crate::{arch, console, state};
use core::cell::UnsafeCell;
use plat_kvm_arm::bootinfo::{self, BootInfo, ConsoleSource, ImageLayout, ImageSegment};
use plat_kvm_arm::bootmap;
use plat_kvm_arm::memregion::{FixedList, MemRange, RegionFlags};
use plat_kvm_arm::pagetable::{PageTableBuilder, Table};

/// Tables for the boot map: kvmtool and QEMU `virt` layouts need at most 10, with
/// Unikraft's direct map (see `tests/tests/pagetable.rs`); the rest is headroom.
const PT_POOL_TABLES: usize = 16;

#[repr(C, align(4096))]
struct Pool(UnsafeCell<[Table; PT_POOL_TABLES]>);
// The builder clears each table it takes: so the pool lives in `.plat_noinit`,
// after `_plat_bss_end`, and is not zeroed twice.
// SAFETY: used once, by the boot CPU, while building the tables.
unsafe impl Sync for Pool {}
#[unsafe(link_section = ".plat_noinit.pt_pool")]
static PT_POOL: Pool = Pool(UnsafeCell::new([Table::ZERO; PT_POOL_TABLES]));

unsafe extern "C" {
    static _text: u8;
    static _etext: u8;
    static _rodata: u8;
    static _tls_start: u8;
    static _end: u8;
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

/// Main Rust boot code: MMU and caches on (the early map), on the boot stack,
/// `.bss` zeroed; `shared_bit` is what `plat_realm_probe` found (0 outside an Arm
/// CCA realm), bit 0 of `flags` says the CPU entered at EL2.
///
/// # Safety
///
/// Called once, from `_libkvmplat_entry` only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn plat_boot(dtb: u64, flags: u64, shared_bit: u64) -> ! {
    state::update(|s| s.entered_el2 = flags & 1 != 0);
    if cfg!(feature = "fpsimd") {
        arch::enable_fp();
    }

    let segments = image_segments();
    let image = ImageLayout {
        segments: &segments,
    };
    let mut bi = BootInfo::empty();
    let mut addrs = DeviceAddrs::new();
    let want_addrs = (shared_bit != 0).then_some(&mut addrs);
    if let Err(e) = read_boot_info(dtb, &image, &mut bi, want_addrs) {
        fatal(format_args!("{e}"));
    }
    let Some((mut uart, source)) = bi.console else {
        // The build's early UART is a guess: not where the DT says nothing is (a
        // VM without any UART would answer each status poll with a VM exit).
        if let Some(u) = arch::EARLY_UART
            && !bi
                .devices
                .iter()
                .any(|d| d.start <= u.base && u.base < d.end)
        {
            state::update(|s| s.no_early_uart = true);
        }
        fatal(format_args!(
            "no ns16550a or arm,pl011 console in the device tree"
        ))
    };
    // Devices answer a realm only at their unprotected alias.
    uart.base |= shared_bit;
    // Reachable from here for the fatal path; if the early map cannot take it, the
    // fatal path stays on the build's UART until the full tables are on.
    if arch::early_map_device(uart.base) {
        state::update(|s| s.console = Some(uart));
    }
    if shared_bit != 0 {
        #[cfg(feature = "realm")]
        crate::realm::setup_memory(&bi);
    } else {
        state::update(|s| s.conduit = bi.psci);
    }

    switch_tables(&bi, &image, shared_bit);
    if shared_bit != 0 {
        alias_device_tree(dtb, shared_bit, &addrs, &mut bi);
    }
    state::update(|s| s.console = Some(uart));
    if console::init(&uart, crate::abi::CONSOLE_CRLF).is_err() {
        fatal(format_args!("console at {:#x} is unusable", uart.base));
    }
    state::update(|s| s.console_up = true);
    if source == ConsoleSource::FirstUart {
        console::print(format_args!(
            "plat-kvm-arm: note: no console named (stdout-path, console=, earlycon=); using the first UART, at {:#x}\n",
            uart.base
        ));
    }
    let st = state::get();
    if shared_bit != 0 {
        let r = st.realm;
        console::print(format_args!(
            "plat-kvm-arm: Arm CCA realm (RSI 1.{}), IPA width {}, shared bit {:#x}, RAM made RIPAS RAM in {} RSI call(s)\n",
            r.rsi_minor, r.ipa_width, r.shared_bit, r.ripas_calls
        ));
    }
    if st.conduit.is_none() {
        console::print(format_args!(
            "plat-kvm-arm: warning: no /psci node, cannot power off\n"
        ));
    }
    crate::abi::hand_off(dtb, &bi, &uart)
}

/// In an Arm CCA realm, rewrites every device address in the device tree to its
/// unprotected alias, and `bi` to match: the OS (Unikraft's drivers, and with paging
/// its `uk_bus_pf_devmap`, which maps device windows at VA = PA = the DT address)
/// then reaches the devices where they answer, and no protected device address is
/// ever mapped. The boot tables already map every window at its alias. One line
/// and a stop if an address cannot be rewritten.
fn alias_device_tree(dtb: u64, shared_bit: u64, addrs: &DeviceAddrs, bi: &mut BootInfo<'static>) {
    let patches =
        match dtb::blob(dtb).map(|b| plat_kvm_arm::realm::alias_patches_at(b, addrs, shared_bit)) {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => fatal(format_args!("realm: device tree: {e}")),
            Err(e) => fatal(format_args!("{e}")),
        };
    for p in patches.iter() {
        let (bytes, n) = p.bytes();
        for (i, &v) in bytes[..n].iter().enumerate() {
            let at = dtb + u64::from(p.at.offset) + i as u64;
            // SAFETY: an address cell of a `reg` or `ranges` property inside the
            // blob (found by walking it), which `realm::check` placed in RAM, mapped
            // read-write by the boot tables. The only reference into the blob still
            // alive, `bi.cmdline`, covers `/chosen/bootargs`, other bytes. The boot
            // CPU alone runs.
            unsafe { core::ptr::write(at as *mut u8, v) };
        }
    }
    plat_kvm_arm::realm::alias_boot_info(bi, shared_bit);
}

/// Parses the DTB into `bi`; in a realm (`addrs`) also locates the device
/// addresses that [`alias_device_tree`] rewrites.
fn read_boot_info(
    dtb: u64,
    image: &ImageLayout<'_>,
    bi: &mut BootInfo<'static>,
    addrs: Option<&mut DeviceAddrs>,
) -> Result<(), BootError> {
    let blob = dtb::blob(dtb).map_err(BootError::Dtb)?;
    bootinfo::parse_into_noting(blob, dtb, image, bi, addrs).map_err(BootError::Parse)
}

type DeviceAddrs = FixedList<bootinfo::DeviceAddr, { bootinfo::MAX_DEVICE_ADDRS }>;

enum BootError {
    Dtb(DtbError),
    Parse(bootinfo::BootInfoError),
}

impl core::fmt::Display for BootError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BootError::Dtb(e) => write!(f, "{e}"),
            BootError::Parse(e) => write!(f, "{e}"),
        }
    }
}

/// Builds the DTB-derived tables (W^X, every device window, every RAM bank) and
/// switches to them from the early map. Never inlined: `make bench` marks it.
#[inline(never)]
fn switch_tables(bi: &BootInfo<'_>, image: &ImageLayout<'_>, device_alias: u64) {
    let pool_pa = PT_POOL.0.get() as u64;
    // SAFETY: the pool is used only here, once, by the boot CPU.
    let pool = unsafe { &mut *PT_POOL.0.get() };
    let mut b = match PageTableBuilder::new(pool, pool_pa, arch::mmfr0()) {
        Ok(b) => b,
        Err(e) => fatal(format_args!("page tables: {e}")),
    };
    if let Err(e) = bootmap::build(&mut b, bi, image, device_alias, true) {
        fatal(format_args!("boot page tables: {e}"));
    }
    // The virtio bounce pool at its unprotected alias (a realm only).
    #[cfg(feature = "virtio")]
    if let Some((s, e)) = crate::virtio::pool_alias_range(device_alias)
        && let Err(err) = b.map(s, s, e - s, plat_kvm_arm::pagetable::MemAttr::NormalRw)
    {
        fatal(format_args!("boot page tables: virtio pool alias: {err}"));
    }
    #[cfg(all(feature = "unikraft", feature = "paging"))]
    if let Err(e) = crate::uk017::platform::extra_maps(&mut b, bi) {
        fatal(format_args!("boot page tables for Unikraft: {e}"));
    }
    // SAFETY: the tables identity-map the image (text executable), the stacks, the
    // DTB and every device, so execution continues at the same addresses.
    unsafe { arch::switch_tables(b.root_pa()) };
}
