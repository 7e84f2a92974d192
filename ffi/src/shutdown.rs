//! Powering off: `ukplat_terminate` and the fatal path.

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
static ATTEMPTED: crate::boot::BootFlag = crate::boot::BootFlag::new();

/// Stops the guest: PSCI SYSTEM_RESET for a restart, SYSTEM_OFF otherwise. Test
/// builds (feature `semihosting`, QEMU only) exit with a status instead.
pub(crate) fn power_off(reason: Reason) -> ! {
    if cfg!(feature = "semihosting") {
        semihosting_exit(match reason {
            Reason::Halt => 0,
            Reason::Restart => 1,
            Reason::Crash => 2,
            Reason::Fatal => 3,
        });
    }
    if !ATTEMPTED.test_and_set() {
        let psci = Psci::new(crate::boot::conduit());
        let err = if reason == Reason::Restart {
            psci.system_reset()
        } else {
            psci.system_off()
        };
        crate::boot::early_print(format_args!(
            "plat-kvm-arm: PSCI power-off failed: {err:?}\n"
        ));
    }
    crate::boot::early_print(format_args!(
        "plat-kvm-arm: cannot power off; halting this CPU\n"
    ));
    loop {
        // SAFETY: waits for an interrupt; nothing else.
        unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
    }
}

/// Powers off without printing, trying the known conduit and then the other one,
/// each at most once, then parks the CPU: for faults on the fatal path itself,
/// where printing (or a trapping conduit) would only fault again.
pub(crate) fn power_off_quietly() -> ! {
    if cfg!(feature = "semihosting") {
        semihosting_exit(3);
    }
    let first = crate::boot::conduit();
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
        // SAFETY: waits for an interrupt; nothing else.
        unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
    }
}

#[unsafe(link_section = ".data.plat_state")]
static OTHER_ATTEMPTED: crate::boot::BootFlag = crate::boot::BootFlag::new();

/// Semihosting `SYS_EXIT_EXTENDED`: QEMU exits with `code`. Only reachable in test
/// builds (feature `semihosting`): on KVM or in a realm `hlt` would trap.
fn semihosting_exit(code: u64) -> ! {
    let block: [u64; 2] = [0x20026, code]; // ADP_Stopped_ApplicationExit
    loop {
        // SAFETY: a semihosting call reading `block`; QEMU ends the run.
        unsafe {
            core::arch::asm!(
                "hlt #0xf000",
                in("x0") 0x20u64,
                in("x1") block.as_ptr(),
                options(nostack, readonly),
            )
        };
    }
}

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
