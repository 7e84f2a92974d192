//! The platform console: the UART the device tree names, behind one lock. The
//! Unikraft release's ABI module exports it (0.17: `ukplat_coutk` and friends,
//! 0.18: a registered `struct uk_console`).

use crate::{arch, state};
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use plat_kvm_arm::console::{Console, UartDesc};
use spin::Mutex;

static CONSOLE: Mutex<Option<Console>> = Mutex::new(None);
/// The CPU (MPIDR_EL1 affinity) inside the console lock, or [`NO_OWNER`].
static OWNER: AtomicU64 = AtomicU64::new(NO_OWNER);
const NO_OWNER: u64 = u64::MAX;

/// Whether "\n" goes out as "\r\n": the release's ABI module decides (given to
/// [`init`]); until then, as Unikraft 0.17's default.
static CRLF: AtomicBool = AtomicBool::new(true);

fn crlf() -> bool {
    CRLF.load(Ordering::Relaxed)
}

/// Sets up the console UART, writing "\n" as "\r\n" if `crlf`; `Err` if the
/// description is unusable. The caller records in the boot state that the console
/// is up.
pub(crate) fn init(desc: &UartDesc, crlf: bool) -> Result<(), ()> {
    CRLF.store(crlf, Ordering::Relaxed);
    // SAFETY: the boot map covers every device window of the DT, this one included,
    // and nothing else drives this UART.
    let mut c = unsafe { Console::from_desc(desc, crlf) }.map_err(|_| ())?;
    c.init(desc.clock_hz);
    *CONSOLE.lock() = Some(c);
    Ok(())
}

/// Runs `f` on the console with IRQs and FIQs masked, so that an interrupt
/// handler that prints cannot find the lock held by the code it interrupted.
/// If the lock is held by this very CPU anyway (a trap taken while printing, whose
/// handler prints: Unikraft's do, through `ukplat_coutk` or its console), `f` runs
/// on a lock-free instance of the same UART instead of spinning for ever; another
/// CPU holding it is waited for. `None` when there is no console.
fn with_console<R>(f: impl FnOnce(&mut Console) -> R) -> Option<R> {
    let daif = arch::irq_save_mask();
    let me = arch::cpu_id();
    let r = loop {
        if let Some(mut guard) = CONSOLE.try_lock() {
            OWNER.store(me, Ordering::Relaxed);
            let r = guard.as_mut().map(f);
            OWNER.store(NO_OWNER, Ordering::Relaxed);
            break r;
        }
        if OWNER.load(Ordering::Relaxed) == me {
            break reentrant(f);
        }
        core::hint::spin_loop();
    };
    arch::irq_restore(daif);
    r
}

/// `f` on a second driver instance over the console's UART, for a re-entrant use
/// on the CPU that holds the lock (its own output may be cut by this one).
fn reentrant<R>(f: impl FnOnce(&mut Console) -> R) -> Option<R> {
    let desc = state::get().console?;
    // SAFETY: the UART is mapped (the console was set up on it); the interrupted
    // user on this CPU cannot run until this returns.
    let mut c = unsafe { Console::from_desc(&desc, crlf()) }.ok()?;
    Some(f(&mut c))
}

/// Formats onto the console, if there is one.
pub(crate) fn print(args: core::fmt::Arguments<'_>) {
    with_console(|c| {
        let _ = c.write_fmt(args);
    });
}

/// Status polls a wait may spend on a UART that is only guessed (the VMM's usual
/// one, when the device tree named none): on a VMM without it (Firecracker started
/// without `console=`) each poll is a VM exit that reads 0, and the full budget
/// (1 << 20 polls) took minutes there; this caps the whole fatal message at about
/// 4,100 polls (one budget, then one poll per byte once stalled), while a real UART
/// still gets its bytes out.
const GUESSED_UART_POLLS: u32 = 4096;

/// Writes on a fatal path: through the console if it is free, otherwise (not set
/// up yet, or the lock held by the code that failed) through a fresh driver instance;
/// `guessed` when `desc` is not the device tree's (see [`GUESSED_UART_POLLS`]).
pub(crate) fn emergency_write(desc: &UartDesc, guessed: bool, args: core::fmt::Arguments<'_>) {
    if state::get().console_up
        && let Some(mut guard) = CONSOLE.try_lock()
        && let Some(c) = guard.as_mut()
    {
        let _ = c.write_fmt(args);
        return;
    }
    // SAFETY: a fatal path: the UART is mapped (the early map has the build's UART
    // and, once known, the DT's console; the full tables every device); a racing
    // user of the console is stopped anyway.
    if let Ok(c) = unsafe { Console::from_desc(desc, crlf()) } {
        let mut c = if guessed {
            c.with_spin_budget(GUESSED_UART_POLLS)
        } else {
            c
        };
        c.init(desc.clock_hz);
        let _ = c.write_fmt(args);
    }
}

/// Writes to the console once it is up, otherwise straight to the UART the boot
/// state names (or the early UART).
pub(crate) fn early_print(args: core::fmt::Arguments<'_>) {
    let s = state::get();
    if s.console_up {
        print(args);
    } else {
        if let Some(c) = s.console.or_else(fallback_console) {
            emergency_write(&c, s.console.is_none(), args);
        }
    }
}

/// The console used when the DTB gives none (or cannot be read): the VMM's usual
/// UART (at its alias in a realm); none in a VMM-neutral build, or where the
/// device tree has no device at that address.
pub(crate) fn fallback_console() -> Option<UartDesc> {
    let s = state::get();
    if s.no_early_uart {
        return None;
    }
    arch::EARLY_UART.map(|u| UartDesc {
        base: u.base | s.realm.shared_bit,
        ..u
    })
}

/// Writes `bytes`; `None` when there is no console.
pub(crate) fn write_bytes(bytes: &[u8]) -> Option<usize> {
    with_console(|c| c.write(bytes))
}

/// Reads the bytes waiting, up to `out.len()`; `None` when there is no console.
pub(crate) fn read_bytes(out: &mut [u8]) -> Option<usize> {
    with_console(|c| read_into(c, out))
}

fn read_into(c: &mut Console, out: &mut [u8]) -> usize {
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
    n
}
