//! Console UART drivers, chosen at run time from the device tree.

pub mod ns16550;
pub mod pl011;

/// Which UART model a console node describes (from its `compatible`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UartKind {
    /// National Semiconductor 16550 family (`ns16550a`, `ns16550`): kvmtool, Firecracker.
    Ns16550,
    /// Arm PrimeCell PL011 (`arm,pl011`): QEMU `virt`.
    Pl011,
}

/// A console UART as described by the device tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UartDesc {
    /// Driver to use.
    pub kind: UartKind,
    /// Physical (IPA) base address of the register block.
    pub base: u64,
    /// Length of the register block from `reg`.
    pub size: u64,
    /// `reg-shift`: register `n` lives at `base + (n << reg_shift)` (16550 only; 0 if absent).
    pub reg_shift: u8,
    /// `reg-io-width` in bytes: 1 or 4 (16550 only; 1 if absent).
    pub reg_io_width: u8,
    /// `clock-frequency` in Hz, if the node gives one.
    pub clock_hz: Option<u32>,
}
