//! The hand-off to Unikraft 0.18: boot info filled with 0.18's numbers, the
//! console registered with lib/ukconsole, then `_ukplat_entry` (which runs the
//! early-init table: command line, coalescing).

use super::{Bootinfo, UK_CONSOLE_FLAG_STDIN, UK_CONSOLE_FLAG_STDOUT, UkConsole, UkConsoleOps};
use crate::console;
use crate::fatal::fatal;
use crate::uk017::handoff::fill;
use core::cell::UnsafeCell;
use core::ffi::c_char;
use plat_kvm_arm::bootinfo::BootInfo;
use plat_kvm_arm::console::UartDesc;

unsafe extern "C" {
    fn ukplat_bootinfo_get() -> *mut Bootinfo;
    fn uk_console_register(dev: *mut UkConsole);
    fn _ukplat_entry() -> !;
}

/// `CONFIG_LIBUKBOOT_CMDLINE_MAX_LEN` of the tree (Makefile.uk passes it).
const CMDLINE_BUF: usize = match option_env!("PLAT_UK_CMDLINE_MAX") {
    Some(v) => parse_usize(v),
    None => 4096,
};

const fn parse_usize(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    let mut n = 0;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "PLAT_UK_CMDLINE_MAX is not a number");
        n = n * 10 + (b[i] - b'0') as usize;
        i += 1;
    }
    n
}

/// Fills Unikraft 0.18's boot info, registers the console and continues where the
/// tree's `entry64.S` does.
pub(crate) fn hand_off(dtb: u64, bi: &BootInfo<'_>, uart: &UartDesc) -> ! {
    // SAFETY: provided by Unikraft's plat/common.
    let ubi = unsafe { ukplat_bootinfo_get() };
    if ubi.is_null() {
        fatal(format_args!("ukplat_bootinfo_get() returned NULL"));
    }
    // SAFETY: `ubi` is the boot info with room for `capacity` descriptors.
    unsafe { fill(ubi, dtb, bi, uart, super::memrt_of) };
    let (cmdline, len) = match super::cmdline_of(bi.cmdline, CMDLINE_BUF) {
        Ok(c) => c,
        Err(e) => fatal(format_args!(
            "command line of {} bytes; CONFIG_LIBUKBOOT_CMDLINE_MAX_LEN allows {}",
            e.len, e.max
        )),
    };
    // SAFETY: as above; single-threaded boot.
    let ubi = unsafe { &mut *ubi };
    ubi.cmdline = cmdline;
    ubi.cmdline_len = len;
    register_console();
    crate::uk017::platform::before_entry(bi);
    // SAFETY: Unikraft's continuation; it never returns.
    unsafe { _ukplat_entry() }
}

struct Dev(UnsafeCell<UkConsole>);
// SAFETY: handed to lib/ukconsole once, by the boot CPU; from then on only its
// registry writes it (under its own rules), we never touch it again.
unsafe impl Sync for Dev {}

static OPS: UkConsoleOps = UkConsoleOps {
    out: Some(out),
    r#in: Some(input),
};

static DEV: Dev = Dev(UnsafeCell::new(UkConsole {
    id: u16::MAX,
    ops: &OPS,
    name: c"plat-kvm-arm-rs".as_ptr(),
    flags: UK_CONSOLE_FLAG_STDOUT | UK_CONSOLE_FLAG_STDIN,
    list: [core::ptr::null_mut(); 2],
}));

fn register_console() {
    // SAFETY: `DEV` is static and writable, registered once, before any C code runs.
    unsafe { uk_console_register(DEV.0.get()) };
}

/// `out` of `struct uk_console_ops`: bytes as they are (callers add the CRs).
unsafe extern "C" fn out(_dev: *mut UkConsole, buf: *const c_char, len: usize) -> isize {
    if buf.is_null() {
        return 0;
    }
    // SAFETY: lib/ukconsole passes `len` readable bytes at `buf`.
    let bytes = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), len) };
    console::write_bytes(bytes).map_or(-19, |n| n as isize)
}

/// `in` of `struct uk_console_ops`: the bytes waiting, up to `len`.
unsafe extern "C" fn input(_dev: *mut UkConsole, buf: *mut c_char, len: usize) -> isize {
    if buf.is_null() {
        return 0;
    }
    // SAFETY: lib/ukconsole passes `len` writable bytes at `buf`.
    let bytes = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), len) };
    console::read_bytes(bytes).map_or(-19, |n| n as isize)
}
