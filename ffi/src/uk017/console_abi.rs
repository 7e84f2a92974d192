//! Unikraft 0.17's console functions, over the platform console.

use crate::console;
use core::ffi::{c_char, c_int, c_uint};

/// `-ENODEV`: no console was set up.
const ENODEV: c_int = -19;

fn write(buf: *const c_char, len: c_uint) -> c_int {
    if buf.is_null() {
        return 0;
    }
    // SAFETY: the C caller passes `len` readable bytes at `buf`.
    let bytes = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), len as usize) };
    console::write_bytes(bytes).map_or(ENODEV, |n| n as c_int)
}

/// `int ukplat_coutk(const char *buf, unsigned int len)`: kernel messages.
#[unsafe(no_mangle)]
pub extern "C" fn ukplat_coutk(buf: *const c_char, len: c_uint) -> c_int {
    write(buf, len)
}

/// `int ukplat_coutd(const char *buf, unsigned int len)`: debug messages (same UART,
/// or dropped with feature `no-debug-console`, Unikraft `!CONFIG_KVM_DEBUG_SERIAL_CONSOLE`).
#[unsafe(no_mangle)]
pub extern "C" fn ukplat_coutd(buf: *const c_char, len: c_uint) -> c_int {
    if cfg!(feature = "no-debug-console") {
        return len as c_int;
    }
    write(buf, len)
}

/// `int ukplat_cink(char *buf, unsigned int maxlen)`: the bytes waiting, up to `maxlen`.
#[unsafe(no_mangle)]
pub extern "C" fn ukplat_cink(buf: *mut c_char, maxlen: c_uint) -> c_int {
    if buf.is_null() {
        return 0;
    }
    // SAFETY: the C caller passes `maxlen` writable bytes at `buf`.
    let out = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), maxlen as usize) };
    console::read_bytes(out).map_or(ENODEV, |n| n as c_int)
}
