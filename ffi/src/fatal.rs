//! The fatal path: one line on the best console known, then power-off; and the
//! early vectors' report.

use crate::state::{self, BootFlag};
use crate::{arch, console, shutdown};

/// Set once a fatal error is being reported: a fault while printing it (say, a
/// console the host made unreachable) then goes straight to power-off.
#[unsafe(link_section = ".data.plat_state")]
static IN_FATAL: BootFlag = BootFlag::new();

/// Reports a fatal boot error on the best console known and powers off.
pub(crate) fn fatal(args: core::fmt::Arguments<'_>) -> ! {
    if !IN_FATAL.test_and_set() {
        let desc = state::get().console;
        // With no console known and none to guess, the stop itself says it.
        if let Some(c) = desc.or_else(console::fallback_console) {
            console::emergency_write(
                &c,
                desc.is_none(),
                format_args!("plat-kvm-arm: fatal: {args}\n"),
            );
        }
    }
    shutdown::power_off(shutdown::Reason::Fatal)
}

/// Early exception: report and power off (no handler returns).
#[unsafe(no_mangle)]
extern "C" fn plat_early_trap(kind: u64) -> ! {
    if IN_FATAL.get() {
        // A fault while reporting a fault (e.g. a console the host made
        // unreachable): no more printing, straight to power-off.
        shutdown::power_off_quietly()
    }
    let (esr, elr, far, spsr) = arch::syndrome();
    const KINDS: [&str; 4] = ["synchronous", "IRQ", "FIQ", "SError"];
    const FROM: [&str; 4] = ["EL1t", "EL1h", "EL0/64", "EL0/32"];
    let k = (kind & 3) as usize;
    let f = ((kind >> 2) & 3) as usize;
    fatal(format_args!(
        "unexpected {} exception from {} during boot: ESR={esr:#x} ELR={elr:#x} FAR={far:#x} SPSR={spsr:#x}",
        KINDS[k], FROM[f]
    ))
}
