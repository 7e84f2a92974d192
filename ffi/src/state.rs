//! The boot state: one value, written by the boot sequence (`boot.rs`, and the
//! realm probe it runs first) on the boot CPU before any other CPU starts, read
//! by the console, the fatal path, shutdown and the C ABI. A leaf module: it
//! imports nothing from this crate, so the modules that read it form no cycle.

use core::cell::UnsafeCell;
use plat_kvm_arm::console::UartDesc;
use plat_kvm_arm::psci::Conduit;

/// A value written only by the boot CPU while nothing else runs.
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

/// A once-flag for fatal paths (a CPU on its way down, or the boot CPU alone).
pub(crate) struct BootFlag(BootCell<bool>);

impl BootFlag {
    /// A clear flag.
    pub(crate) const fn new() -> Self {
        Self(BootCell::new(false))
    }

    /// Whether the flag is set.
    pub(crate) fn get(&self) -> bool {
        self.0.get()
    }

    /// Sets the flag and returns whether it was already set.
    pub(crate) fn test_and_set(&self) -> bool {
        let was = self.0.get();
        self.0.set(true);
        was
    }
}

/// What the realm probe found.
#[derive(Clone, Copy)]
pub(crate) struct Realm {
    /// The unprotected IPA bit; 0 outside a realm.
    pub(crate) shared_bit: u64,
    /// IPA width from RSI_REALM_CONFIG.
    pub(crate) ipa_width: u32,
    /// RSI calls spent on RIPAS changes at boot (for the benchmark).
    pub(crate) ripas_calls: usize,
    /// The RSI revision negotiated is 1.`rsi_minor`.
    pub(crate) rsi_minor: u16,
    /// Auxiliary planes (RSI 1.1 realm configuration; 0 under 1.0).
    #[cfg_attr(not(feature = "realm"), allow(dead_code))]
    pub(crate) num_aux_planes: u64,
}

/// Everything the boot sequence learns that later code needs.
#[derive(Clone, Copy)]
pub(crate) struct BootState {
    /// Entered at EL2 (QEMU `virtualization=on`: PSCI is then SMC).
    pub(crate) entered_el2: bool,
    /// The console the device tree named (at the address the code uses now).
    pub(crate) console: Option<UartDesc>,
    /// Whether the console driver (and its lock) is set up.
    pub(crate) console_up: bool,
    /// The device tree was read and has no device where the build's early UART
    /// would be (Firecracker without `console=`): that UART is not guessed at.
    pub(crate) no_early_uart: bool,
    /// The PSCI conduit, once known.
    pub(crate) conduit: Option<Conduit>,
    /// The realm, if this is one.
    pub(crate) realm: Realm,
}

/// In `.data`: the realm probe writes it before `.bss` is RIPAS RAM.
#[unsafe(link_section = ".data.plat_state")]
static STATE: BootCell<BootState> = BootCell::new(BootState {
    entered_el2: false,
    console: None,
    console_up: false,
    no_early_uart: false,
    conduit: None,
    realm: Realm {
        shared_bit: 0,
        ipa_width: 0,
        ripas_calls: 0,
        rsi_minor: 0,
        num_aux_planes: 0,
    },
});

/// The boot state as it is now.
pub(crate) fn get() -> BootState {
    STATE.get()
}

/// Changes the boot state. Only the boot sequence calls this, on the boot CPU,
/// before other CPUs run.
pub(crate) fn update(f: impl FnOnce(&mut BootState)) {
    let mut s = STATE.get();
    f(&mut s);
    STATE.set(s);
}

/// The PSCI conduit: the DT's, or before (or without) `/psci` HVC under KVM and
/// SMC when QEMU started us at EL2 (its PSCI then sits behind EL3).
pub(crate) fn conduit() -> Conduit {
    let s = STATE.get();
    s.conduit.unwrap_or(if s.entered_el2 {
        Conduit::Smc
    } else {
        Conduit::Hvc
    })
}

/// The shared bit of the running realm, 0 outside one.
pub(crate) fn shared_bit() -> u64 {
    STATE.get().realm.shared_bit
}
