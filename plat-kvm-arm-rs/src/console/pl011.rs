//! Arm PrimeCell PL011 UART driver (QEMU `virt`'s console).
//!
//! As for the 16550, the driver reaches the chip only through a backend trait,
//! [`Pl011Io`], with [`Pl011Mmio`] for device memory and fakes in host tests. All
//! PL011 registers are 32 bits wide and accessed with single `ldr`/`str` instructions
//! (see [`crate::mmio`]).
//!
//! Output polls FR once per FIFO load: FR.TXFE (transmit FIFO empty) means a whole
//! FIFO's worth may be written; otherwise FR.TXFF clear means one more byte fits.

use tock_registers::register_bitfields;

use super::{ConfigError, TxPacer, UartDesc, UartKind, put_translated, write_all};
use crate::mmio::MmioRegion;

/// Register byte offsets.
pub mod reg {
    /// Data register: received byte plus error flags (read), byte to send (write).
    pub const DR: usize = 0x000;
    /// Receive status / error clear.
    pub const RSR_ECR: usize = 0x004;
    /// Flag register.
    pub const FR: usize = 0x018;
    /// Integer baud-rate divisor.
    pub const IBRD: usize = 0x024;
    /// Fractional baud-rate divisor (1/64 units).
    pub const FBRD: usize = 0x028;
    /// Line control; writing it latches IBRD/FBRD.
    pub const LCR_H: usize = 0x02c;
    /// Control.
    pub const CR: usize = 0x030;
    /// Interrupt FIFO level select.
    pub const IFLS: usize = 0x034;
    /// Interrupt mask set/clear.
    pub const IMSC: usize = 0x038;
    /// Raw interrupt status.
    pub const RIS: usize = 0x03c;
    /// Masked interrupt status.
    pub const MIS: usize = 0x040;
    /// Interrupt clear.
    pub const ICR: usize = 0x044;
    /// DMA control.
    pub const DMACR: usize = 0x048;
    /// Bytes of register space the driver needs (through DMACR).
    pub const SPAN: usize = DMACR + 4;
}

register_bitfields![u32,
    /// Data register.
    #[allow(missing_docs)] // the macro adds undocumented `Register`, `SET`, `CLEAR`, ...
    pub DR [
        /// Received or transmitted byte.
        DATA OFFSET(0) NUMBITS(8) [],
        /// Framing error.
        FE OFFSET(8) NUMBITS(1) [],
        /// Parity error.
        PE OFFSET(9) NUMBITS(1) [],
        /// Break error.
        BE OFFSET(10) NUMBITS(1) [],
        /// Overrun error.
        OE OFFSET(11) NUMBITS(1) []
    ],
    /// Flag register.
    #[allow(missing_docs)] // the macro adds undocumented `Register`, `SET`, `CLEAR`, ...
    pub FR [
        /// Clear to send.
        CTS OFFSET(0) NUMBITS(1) [],
        /// Data set ready.
        DSR OFFSET(1) NUMBITS(1) [],
        /// Data carrier detect.
        DCD OFFSET(2) NUMBITS(1) [],
        /// UART busy transmitting.
        BUSY OFFSET(3) NUMBITS(1) [],
        /// Receive FIFO empty.
        RXFE OFFSET(4) NUMBITS(1) [],
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// Receive FIFO full.
        RXFF OFFSET(6) NUMBITS(1) [],
        /// Transmit FIFO empty.
        TXFE OFFSET(7) NUMBITS(1) [],
        /// Ring indicator.
        RI OFFSET(8) NUMBITS(1) []
    ],
    /// Line control register.
    #[allow(missing_docs)] // the macro adds undocumented `Register`, `SET`, `CLEAR`, ...
    pub LCR_H [
        /// Send break.
        BRK OFFSET(0) NUMBITS(1) [],
        /// Parity enable.
        PEN OFFSET(1) NUMBITS(1) [],
        /// Even parity.
        EPS OFFSET(2) NUMBITS(1) [],
        /// Two stop bits.
        STP2 OFFSET(3) NUMBITS(1) [],
        /// FIFO enable.
        FEN OFFSET(4) NUMBITS(1) [],
        /// Word length.
        WLEN OFFSET(5) NUMBITS(2) [
            /// 5 data bits.
            Five = 0,
            /// 6 data bits.
            Six = 1,
            /// 7 data bits.
            Seven = 2,
            /// 8 data bits.
            Eight = 3
        ],
        /// Stick parity.
        SPS OFFSET(7) NUMBITS(1) []
    ],
    /// Control register.
    #[allow(missing_docs)] // the macro adds undocumented `Register`, `SET`, `CLEAR`, ...
    pub CR [
        /// UART enable.
        UARTEN OFFSET(0) NUMBITS(1) [],
        /// Loopback enable.
        LBE OFFSET(7) NUMBITS(1) [],
        /// Transmit enable.
        TXE OFFSET(8) NUMBITS(1) [],
        /// Receive enable.
        RXE OFFSET(9) NUMBITS(1) [],
        /// Data transmit ready.
        DTR OFFSET(10) NUMBITS(1) [],
        /// Request to send.
        RTS OFFSET(11) NUMBITS(1) []
    ]
];

/// Transmit FIFO depth assumed when FR.TXFE is seen (16 up to r1p4, 32 on r1p5;
/// the smaller figure is always safe).
pub const FIFO_DEPTH: u8 = 16;

/// Baud rate programmed by [`Pl011::init`] when the input clock is known.
pub const BAUD_RATE: u32 = 115_200;

pub use super::DEFAULT_SPIN_BUDGET;

/// Every interrupt-clear bit in ICR (bits 0..=10).
const ICR_ALL: u32 = 0x7ff;

/// Access to the PL011's 32-bit registers by byte offset.
pub trait Pl011Io {
    /// Reads the register at byte offset `offset`.
    fn read(&self, offset: usize) -> u32;
    /// Writes `value` to the register at byte offset `offset`.
    fn write(&self, offset: usize, value: u32);
}

impl<T: Pl011Io + ?Sized> Pl011Io for &T {
    fn read(&self, offset: usize) -> u32 {
        (**self).read(offset)
    }

    fn write(&self, offset: usize, value: u32) {
        (**self).write(offset, value)
    }
}

/// Memory-mapped PL011 registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pl011Mmio {
    region: MmioRegion,
}

impl Pl011Mmio {
    /// Checks the block and wraps it.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if `base` is not 4-byte aligned, the block is smaller than
    /// [`reg::SPAN`], or it wraps around the address space.
    ///
    /// # Safety
    ///
    /// `[base, base + size)` must be the mapped register block of a PL011 for as long
    /// as the value (or a copy) is used, as for [`MmioRegion::new`].
    pub unsafe fn new(base: usize, size: usize) -> Result<Self, ConfigError> {
        if !base.is_multiple_of(4) {
            return Err(ConfigError::Misaligned);
        }
        if size < reg::SPAN {
            return Err(ConfigError::TooSmall);
        }
        if base.checked_add(size).is_none() {
            return Err(ConfigError::Address);
        }
        // SAFETY: the caller vouches for the block; the checks above keep every register
        // offset in it.
        let region = unsafe { MmioRegion::new(base, size) };
        Ok(Self { region })
    }

    /// Builds the backend from a device-tree description, using `desc.base` as the
    /// (identity-mapped) address.
    ///
    /// # Errors
    ///
    /// As [`Pl011Mmio::new`]; also [`ConfigError::Kind`] for a non-PL011 descriptor and
    /// [`ConfigError::Address`] if the address does not fit a pointer.
    ///
    /// # Safety
    ///
    /// As [`Pl011Mmio::new`], for the block `desc` describes.
    pub unsafe fn from_desc(desc: &UartDesc) -> Result<Self, ConfigError> {
        if desc.kind != UartKind::Pl011 {
            return Err(ConfigError::Kind);
        }
        let base = usize::try_from(desc.base).map_err(|_| ConfigError::Address)?;
        let size = usize::try_from(desc.size).map_err(|_| ConfigError::Address)?;
        // SAFETY: forwarded to our caller.
        unsafe { Self::new(base, size) }
    }

    /// The register block.
    pub const fn region(&self) -> MmioRegion {
        self.region
    }
}

impl Pl011Io for Pl011Mmio {
    #[inline]
    fn read(&self, offset: usize) -> u32 {
        self.region.read32(offset)
    }

    #[inline]
    fn write(&self, offset: usize, value: u32) {
        self.region.write32(offset, value)
    }
}

/// The transmitter did not accept data within the spin budget.
pub use super::TxTimeout;

/// A PL011 driver over a register backend.
#[derive(Debug)]
pub struct Pl011<B> {
    io: B,
    crlf: bool,
    fifo_depth: u8,
    /// Room in the TX FIFO: a whole `fifo_depth` when FR.TXFE is seen, one byte when
    /// only FR.TXFF is clear.
    tx: TxPacer,
}

impl<B: Pl011Io> Pl011<B> {
    /// Wraps a backend without touching the hardware.
    ///
    /// `crlf` turns each `\n` into `\r\n` on output. Until [`init`](Self::init) has
    /// enabled the FIFO, the driver assumes room for one byte per FR poll.
    pub const fn new(io: B, crlf: bool) -> Self {
        Self {
            io,
            crlf,
            fifo_depth: 1,
            tx: TxPacer::new(),
        }
    }

    /// Replaces the number of FR polls a wait may spend (at least 1).
    pub const fn with_spin_budget(mut self, polls: u32) -> Self {
        self.tx = self.tx.with_budget(polls);
        self
    }

    /// Programs the UART as the TRM prescribes: disable it, let the transmitter finish
    /// (bounded), flush the FIFOs, set [`BAUD_RATE`] if `clock_hz` is known (QEMU's
    /// node has none, and its model ignores the divisor), 8N1 with FIFOs, mask and
    /// clear all interrupts, then enable UART, TX and RX.
    pub fn init(&mut self, clock_hz: Option<u32>) {
        self.io.write(reg::CR, 0);
        for _ in 0..self.tx.budget() {
            if !FR::BUSY.is_set(self.io.read(reg::FR)) {
                break;
            }
            core::hint::spin_loop();
        }
        // Clearing FEN flushes the transmit FIFO.
        self.io.write(reg::LCR_H, 0);
        if let Some((ibrd, fbrd)) = clock_hz.and_then(divisors) {
            self.io.write(reg::IBRD, ibrd);
            self.io.write(reg::FBRD, fbrd);
        }
        // LCR_H goes last: writing it is what latches IBRD/FBRD.
        self.io
            .write(reg::LCR_H, (LCR_H::WLEN::Eight + LCR_H::FEN::SET).value);
        self.io.write(reg::IMSC, 0);
        self.io.write(reg::ICR, ICR_ALL);
        self.io.write(
            reg::CR,
            (CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET).value,
        );
        self.fifo_depth = FIFO_DEPTH;
        self.tx.reset();
    }

    /// Bytes written per FR poll that finds the FIFO empty.
    pub const fn fifo_depth(&self) -> u8 {
        self.fifo_depth
    }

    /// Whether `\n` is sent as `\r\n`.
    pub const fn translates_newlines(&self) -> bool {
        self.crlf
    }

    /// The register backend.
    pub const fn io(&self) -> &B {
        &self.io
    }

    /// Gives the register backend back.
    pub fn into_io(self) -> B {
        self.io
    }

    fn push(&mut self, byte: u8) -> Result<(), TxTimeout> {
        let (io, depth) = (&self.io, self.fifo_depth);
        self.tx.reserve(|| {
            let fr = io.read(reg::FR);
            if FR::TXFE.is_set(fr) {
                depth
            } else {
                u8::from(!FR::TXFF.is_set(fr))
            }
        })?;
        self.io.write(reg::DR, u32::from(byte));
        Ok(())
    }

    /// Sends one byte (`\n` as `\r\n` if translating).
    ///
    /// # Errors
    ///
    /// [`TxTimeout`] if FR.TXFF stayed set for the whole spin budget; the byte (or,
    /// for a translated newline, its `\n`) was not sent.
    pub fn putc(&mut self, byte: u8) -> Result<(), TxTimeout> {
        put_translated(byte, self.crlf, |b| self.push(b))
    }

    /// Sends `buf` and returns how many of its bytes went out; a short count means the
    /// transmitter stopped draining.
    pub fn write(&mut self, buf: &[u8]) -> usize {
        write_all(buf, |b| self.putc(b))
    }

    /// Returns a received byte, if one is waiting.
    ///
    /// A byte received with a framing, parity, break or overrun error is still
    /// returned: for a console, a garbled character beats a silently lost one.
    pub fn getc(&mut self) -> Option<u8> {
        if FR::RXFE.is_set(self.io.read(reg::FR)) {
            None
        } else {
            Some(DR::DATA.read(self.io.read(reg::DR)) as u8)
        }
    }
}

impl<B: Pl011Io> core::fmt::Write for Pl011<B> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        if self.write(s.as_bytes()) == s.len() {
            Ok(())
        } else {
            Err(core::fmt::Error)
        }
    }
}

/// IBRD and FBRD for [`BAUD_RATE`] from the reference clock: the divisor
/// `clock / (16 * baud)` in 1/64 units, rounded to nearest as Linux does. `None` if
/// the integer part is outside 1..=0xffff.
pub fn divisors(clock_hz: u32) -> Option<(u32, u32)> {
    let baud = u64::from(BAUD_RATE);
    let div64 = (u64::from(clock_hz) * 4 + baud / 2) / baud;
    let ibrd = div64 >> 6;
    if !(1..=0xffff).contains(&ibrd) {
        return None;
    }
    Some((ibrd as u32, (div64 & 0x3f) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divisors_match_the_trm_example_and_qemu_clock() {
        // PL011 TRM 3.3.6: 4 MHz reference, 230400 Bd -> 1.085 -> IBRD 1, FBRD 5; at
        // 115200 Bd the divisor doubles to 2.17 -> IBRD 2, FBRD 11.
        assert_eq!(divisors(4_000_000), Some((2, 11)));
        // QEMU virt's apb-pclk: 24 MHz / (16 * 115200) = 13.02 -> 13, 1.
        assert_eq!(divisors(24_000_000), Some((13, 1)));
        assert_eq!(divisors(1_000_000), None, "integer part below 1");
    }

    #[test]
    fn mmio_backend_checks_its_block() {
        // SAFETY: every call fails its checks before any access could happen.
        unsafe {
            assert_eq!(
                Pl011Mmio::new(0x900_0002, 0x1000),
                Err(ConfigError::Misaligned)
            );
            assert_eq!(Pl011Mmio::new(0x900_0000, 0x40), Err(ConfigError::TooSmall));
        }
    }
}
