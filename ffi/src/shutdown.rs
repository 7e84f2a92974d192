//! Powering off: `ukplat_terminate` and the fatal path.

use crate::state::{self, BootFlag};
use crate::{arch, console};
use core::ffi::c_uint;
use plat_kvm_arm::psci::{Conduit, Psci};

/// Why the guest stops.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// `UKPLAT_HALT` (and `UKPLAT_SUSPEND`, which 0.17 does not implement).
    Halt,
    /// `UKPLAT_RESTART`.
    Restart,
    /// `UKPLAT_CRASH`.
    Crash,
    /// A platform error (bad DTB, early exception, panic).
    Fatal,
}

/// Set on the first attempt, so a conduit that traps (HVC without EL2) cannot loop
/// through the early vectors back into another attempt.
#[unsafe(link_section = ".data.plat_state")]
static ATTEMPTED: BootFlag = BootFlag::new();

/// Stops the guest: PSCI SYSTEM_RESET for a restart, SYSTEM_OFF otherwise. Test
/// builds (feature `semihosting`, QEMU only) exit with a status instead.
pub(crate) fn power_off(reason: Reason) -> ! {
    if cfg!(feature = "semihosting") {
        arch::semihosting_exit(match reason {
            Reason::Halt => 0,
            Reason::Restart => 1,
            Reason::Crash => 2,
            Reason::Fatal => 3,
        });
    }
    if !ATTEMPTED.test_and_set() {
        let psci = Psci::new(state::conduit());
        let err = if reason == Reason::Restart {
            psci.system_reset()
        } else {
            psci.system_off()
        };
        console::early_print(format_args!(
            "plat-kvm-arm: PSCI power-off failed: {err:?}\n"
        ));
    }
    console::early_print(format_args!(
        "plat-kvm-arm: cannot power off; halting this CPU\n"
    ));
    loop {
        arch::wait_for_interrupt();
    }
}

/// Powers off without printing, trying the known conduit and then the other one,
/// each at most once, then parks the CPU: for faults on the fatal path itself,
/// where printing (or a trapping conduit) would only fault again.
pub(crate) fn power_off_quietly() -> ! {
    if cfg!(feature = "semihosting") {
        arch::semihosting_exit(3);
    }
    let first = state::conduit();
    let other = match first {
        Conduit::Hvc => Conduit::Smc,
        Conduit::Smc => Conduit::Hvc,
    };
    if !ATTEMPTED.test_and_set() {
        let _ = Psci::new(first).system_off();
    }
    if !OTHER_ATTEMPTED.test_and_set() {
        let _ = Psci::new(other).system_off();
    }
    loop {
        arch::wait_for_interrupt();
    }
}

#[unsafe(link_section = ".data.plat_state")]
static OTHER_ATTEMPTED: BootFlag = BootFlag::new();

/// `void ukplat_terminate(enum ukplat_gstate request)`: the enum has no negative
/// values, so C compilers make it compatible with `unsigned int`.
#[unsafe(no_mangle)]
pub extern "C" fn ukplat_terminate(request: c_uint) -> ! {
    power_off(match request {
        1 => Reason::Restart,
        3 => Reason::Crash,
        _ => Reason::Halt,
    })
}
