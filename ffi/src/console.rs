//! The platform console: the UART the device tree names, behind one lock. The
//! Unikraft release's ABI module exports it (0.17: `ukplat_coutk` and friends,
//! 0.18: a registered `struct uk_console`).

use core::fmt::Write;
use plat_kvm_arm::console::{Console, UartDesc};
use spin::Mutex;

static CONSOLE: Mutex<Option<Console>> = Mutex::new(None);

/// Whether "\n" goes out as "\r\n": the release's callers decide.
const CRLF: bool = crate::abi::CONSOLE_CRLF;

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

/// Writes `bytes`; `None` when there is no console.
pub(crate) fn write_bytes(bytes: &[u8]) -> Option<usize> {
    CONSOLE.lock().as_mut().map(|c| c.write(bytes))
}

/// Reads the bytes waiting, up to `out.len()`; `None` when there is no console.
pub(crate) fn read_bytes(out: &mut [u8]) -> Option<usize> {
    let mut guard = CONSOLE.lock();
    let c = guard.as_mut()?;
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
    Some(n)
}
