//! PSCI (Arm DEN0022) over a conduit picked at run time from the device tree.

/// How PSCI and other SMCCC calls reach the firmware or hypervisor (`/psci` `method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conduit {
    /// `hvc`: KVM (kvmtool, QEMU with KVM, QEMU TCG without EL2).
    Hvc,
    /// `smc`: QEMU with EL2/EL3 emulated, and Arm CCA realms (served by the RMM).
    Smc,
}
