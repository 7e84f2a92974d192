//! The console behind Unikraft 0.17's `ukplat_coutk`/`ukplat_coutd`/`ukplat_cink`.

use core::ffi::{c_char, c_int, c_uint};
use core::fmt::Write;
use plat_kvm_arm::console::{Console, UartDesc};
use spin::Mutex;

/// `-ENODEV`: no console was set up.
const ENODEV: c_int = -19;

static CONSOLE: Mutex<Option<Console>> = Mutex::new(None);

/// Whether "\n" goes out as "\r\n" (Unikraft `CONFIG_KVM_CONSOLE_CRLF`; default on).
const CRLF: bool = !cfg!(feature = "console-raw-newlines");

/// Sets up the console UART (MMU on: the lock needs normal memory).
pub(crate) fn init(desc: &UartDesc) {
    // SAFETY: the boot map covers every device window of the DT, this one included,
    // and nothing else drives this UART.
    match unsafe { Console::from_desc(desc, CRLF) } {
        Ok(mut c) => {
            c.init(desc.clock_hz);
            *CONSOLE.lock() = Some(c);
        }
        Err(_) => crate::boot::fatal(format_args!("console at {:#x} is unusable", desc.base)),
    }
}

/// Formats onto the console, if there is one.
pub(crate) fn print(args: core::fmt::Arguments<'_>) {
    if let Some(c) = CONSOLE.lock().as_mut() {
        let _ = c.write_fmt(args);
    }
}

/// Writes on a fatal path: through the console if it is free, otherwise (MMU off,
/// or the lock held by the code that failed) through a fresh driver instance.
pub(crate) fn emergency_write(desc: &UartDesc, args: core::fmt::Arguments<'_>) {
    if crate::boot::MMU_ON.get()
        && let Some(mut guard) = CONSOLE.try_lock()
        && let Some(c) = guard.as_mut()
    {
        let _ = c.write_fmt(args);
        return;
    }
    // SAFETY: a fatal path: the UART is either already mapped (MMU on, from the DT) or
    // reached physically (MMU off); a racing user of the console is stopped anyway.
    if let Ok(mut c) = unsafe { Console::from_desc(desc, CRLF) } {
        c.init(desc.clock_hz);
        let _ = c.write_fmt(args);
    }
}

fn write(buf: *const c_char, len: c_uint) -> c_int {
    if buf.is_null() {
        return 0;
    }
    // SAFETY: the C caller passes `len` readable bytes at `buf`.
    let bytes = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), len as usize) };
    match CONSOLE.lock().as_mut() {
        Some(c) => c.write(bytes) as c_int,
        None => ENODEV,
    }
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
    let mut guard = CONSOLE.lock();
    let Some(c) = guard.as_mut() else {
        return ENODEV;
    };
    let mut n = 0;
    while n < out.len() {
        match c.getc() {
            Some(b) => {
                out[n] = b;
                n += 1;
            }
            None => break,
        }
    }
    n as c_int
}
