//! 16550A UART driver (kvmtool's and Firecracker's console).
//!
//! The driver talks to the chip only through [`Uart16550Io`], so the same code runs on
//! device memory ([`Mmio16550`]) and, in host tests, against rust-vmm's vm-superio
//! model or a fake.
//!
//! Every register access from a guest is a trap to the VMM, so output is paced by
//! FIFO loads rather than by bytes: the driver polls LSR.THRE (set only when the
//! whole transmit FIFO is empty) once, then writes up to a FIFO's worth of bytes to
//! THR without looking at LSR again. A burst costs 1 + 1/16 accesses per byte instead
//! of the 2 that a poll-per-byte driver needs.

use tock_registers::register_bitfields;

use super::{ConfigError, TxPacer, UartDesc, put_translated, write_all};
use crate::mmio::{MmioRegion, RegisterBus};

/// Register indices (before `reg-shift` is applied).
pub mod reg {
    /// Receive buffer (read) / transmit holding register (write); DLL when LCR.DLAB = 1.
    pub const RBR_THR: u8 = 0;
    /// Interrupt enable; DLM when LCR.DLAB = 1.
    pub const IER: u8 = 1;
    /// Interrupt identification (read) / FIFO control (write).
    pub const IIR_FCR: u8 = 2;
    /// Line control.
    pub const LCR: u8 = 3;
    /// Modem control.
    pub const MCR: u8 = 4;
    /// Line status.
    pub const LSR: u8 = 5;
    /// Modem status.
    pub const MSR: u8 = 6;
    /// Scratch.
    pub const SCR: u8 = 7;
    /// Divisor latch, low byte (with LCR.DLAB = 1).
    pub const DLL: u8 = 0;
    /// Divisor latch, high byte (with LCR.DLAB = 1).
    pub const DLM: u8 = 1;
}

register_bitfields![u8,
    /// Line control register.
    #[allow(missing_docs)] // the macro adds undocumented `Register`, `SET`, `CLEAR`, ...
    pub LCR [
        /// Word length select.
        WLS OFFSET(0) NUMBITS(2) [
            /// 5 data bits.
            Five = 0,
            /// 6 data bits.
            Six = 1,
            /// 7 data bits.
            Seven = 2,
            /// 8 data bits.
            Eight = 3
        ],
        /// Two stop bits (1.5 with 5-bit words) instead of one.
        STB OFFSET(2) NUMBITS(1) [],
        /// Parity enable.
        PEN OFFSET(3) NUMBITS(1) [],
        /// Even parity.
        EPS OFFSET(4) NUMBITS(1) [],
        /// Stick parity.
        SPS OFFSET(5) NUMBITS(1) [],
        /// Break control.
        BC OFFSET(6) NUMBITS(1) [],
        /// Divisor latch access: registers 0 and 1 become DLL and DLM.
        DLAB OFFSET(7) NUMBITS(1) []
    ],
    /// Line status register.
    #[allow(missing_docs)] // the macro adds undocumented `Register`, `SET`, `CLEAR`, ...
    pub LSR [
        /// Data ready: the receive buffer/FIFO holds a byte.
        DR OFFSET(0) NUMBITS(1) [],
        /// Overrun error.
        OE OFFSET(1) NUMBITS(1) [],
        /// Parity error.
        PE OFFSET(2) NUMBITS(1) [],
        /// Framing error.
        FE OFFSET(3) NUMBITS(1) [],
        /// Break interrupt.
        BI OFFSET(4) NUMBITS(1) [],
        /// Transmit holding register (in FIFO mode: the whole TX FIFO) empty.
        THRE OFFSET(5) NUMBITS(1) [],
        /// Transmitter empty (FIFO and shift register).
        TEMT OFFSET(6) NUMBITS(1) [],
        /// Error in the receive FIFO.
        RXFE OFFSET(7) NUMBITS(1) []
    ],
    /// FIFO control register (write-only).
    #[allow(missing_docs)] // the macro adds undocumented `Register`, `SET`, `CLEAR`, ...
    pub FCR [
        /// Enable both FIFOs.
        ENABLE OFFSET(0) NUMBITS(1) [],
        /// Reset the receive FIFO (self-clearing).
        CLEAR_RX OFFSET(1) NUMBITS(1) [],
        /// Reset the transmit FIFO (self-clearing).
        CLEAR_TX OFFSET(2) NUMBITS(1) [],
        /// DMA mode select.
        DMA OFFSET(3) NUMBITS(1) [],
        /// Receive interrupt trigger level.
        RX_TRIGGER OFFSET(6) NUMBITS(2) [
            /// 1 byte.
            One = 0,
            /// 4 bytes.
            Four = 1,
            /// 8 bytes.
            Eight = 2,
            /// 14 bytes.
            Fourteen = 3
        ]
    ],
    /// Interrupt identification register (read-only).
    #[allow(missing_docs)] // the macro adds undocumented `Register`, `SET`, `CLEAR`, ...
    pub IIR [
        /// No interrupt pending.
        NO_INT OFFSET(0) NUMBITS(1) [],
        /// Interrupt source.
        ID OFFSET(1) NUMBITS(3) [],
        /// FIFO status: 0b11 when working FIFOs are enabled (16550A).
        FIFO OFFSET(6) NUMBITS(2) [
            /// No FIFO (8250/16450, or FIFOs disabled).
            None = 0,
            /// Enabled but unusable (original 16550).
            Broken = 2,
            /// Enabled and working (16550A and later).
            Enabled = 3
        ]
    ],
    /// Modem control register.
    #[allow(missing_docs)] // the macro adds undocumented `Register`, `SET`, `CLEAR`, ...
    pub MCR [
        /// Data terminal ready.
        DTR OFFSET(0) NUMBITS(1) [],
        /// Request to send.
        RTS OFFSET(1) NUMBITS(1) [],
        /// User output 1.
        OUT1 OFFSET(2) NUMBITS(1) [],
        /// User output 2 (gates the interrupt line on PCs).
        OUT2 OFFSET(3) NUMBITS(1) [],
        /// Loopback mode.
        LOOP OFFSET(4) NUMBITS(1) []
    ]
];

/// Transmit FIFO depth of a 16550A.
pub const FIFO_DEPTH: u8 = 16;

/// Baud rate programmed by [`Ns16550::init`] when the input clock is known.
pub const BAUD_RATE: u32 = 115_200;

/// LSR polls a wait may spend before the driver declares the transmitter stuck.
///
pub use super::DEFAULT_SPIN_BUDGET;

/// Access to the eight 16550 registers by index, whatever their spacing and width.
pub trait Uart16550Io {
    /// Reads register `reg` (0..=7).
    fn read(&self, reg: u8) -> u8;
    /// Writes `value` to register `reg` (0..=7).
    fn write(&self, reg: u8, value: u8);
}

impl<T: Uart16550Io + ?Sized> Uart16550Io for &T {
    fn read(&self, reg: u8) -> u8 {
        (**self).read(reg)
    }

    fn write(&self, reg: u8, value: u8) {
        (**self).write(reg, value)
    }
}

/// 16550 registers laid out at `n << reg_shift` on a byte-addressed register bus,
/// accessed 1 or 4 bytes wide.
///
/// On the guest the bus is device memory ([`MmioRegion`]): byte accesses
/// (`reg-io-width` 1, kvmtool's default) are single `ldrb`/`strb`, 4-byte accesses
/// (`reg-io-width` 4, as on many SoC UARTs) single 32-bit `ldr`/`str` of which only
/// the low byte is meaningful (see [`crate::mmio`]). Host tests put a device model
/// on the bus instead, so this layout code is tested too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mmio16550<B = MmioRegion> {
    bus: B,
    reg_shift: u8,
    wide: bool,
}

impl<B: RegisterBus> Mmio16550<B> {
    /// Largest `reg-shift` accepted; real bindings use 0 to 2.
    pub const MAX_REG_SHIFT: u8 = 8;

    /// Checks the register layout against the bus and wraps it.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if `reg_io_width` is not 1 or 4, `reg_shift` is too large or
    /// too small for the width, or the eight registers do not fit in the bus.
    pub fn on_bus(bus: B, reg_shift: u8, reg_io_width: u8) -> Result<Self, ConfigError> {
        let wide = match reg_io_width {
            1 => false,
            4 => true,
            w => return Err(ConfigError::IoWidth(w)),
        };
        if reg_shift > Self::MAX_REG_SHIFT {
            return Err(ConfigError::RegShift(reg_shift));
        }
        // 32-bit registers must be naturally aligned, so they cannot be packed closer
        // than their own width.
        if wide && reg_shift < 2 {
            return Err(ConfigError::Misaligned);
        }
        let span = (usize::from(reg::SCR) << reg_shift) + usize::from(reg_io_width);
        if bus.size() < span {
            return Err(ConfigError::TooSmall);
        }
        Ok(Self {
            bus,
            reg_shift,
            wide,
        })
    }

    /// The register bus.
    pub const fn bus(&self) -> &B {
        &self.bus
    }

    fn offset(&self, reg: u8) -> usize {
        usize::from(reg & 7) << self.reg_shift
    }
}

impl Mmio16550 {
    /// Wraps the device-memory block `[base, base + size)`.
    ///
    /// # Errors
    ///
    /// As [`Mmio16550::on_bus`]; also [`ConfigError::Misaligned`] if `base` is not a
    /// multiple of the access width and [`ConfigError::Address`] if the block wraps.
    ///
    /// # Safety
    ///
    /// `[base, base + size)` must be the mapped register block of a 16550-compatible
    /// UART for as long as the value (or a copy) is used, as for [`MmioRegion::new`].
    pub unsafe fn new(
        base: usize,
        size: usize,
        reg_shift: u8,
        reg_io_width: u8,
    ) -> Result<Self, ConfigError> {
        if reg_io_width != 0 && !base.is_multiple_of(usize::from(reg_io_width)) {
            return Err(ConfigError::Misaligned);
        }
        if base.checked_add(size).is_none() {
            return Err(ConfigError::Address);
        }
        // SAFETY: the caller vouches for the block; `on_bus` keeps every register offset
        // we will use inside it.
        let region = unsafe { MmioRegion::new(base, size) };
        Self::on_bus(region, reg_shift, reg_io_width)
    }

    /// Builds the backend from a device-tree description, using `desc.base` as the
    /// (identity-mapped) address.
    ///
    /// In a realm, pass a copy of the descriptor whose `base` carries the shared
    /// (unprotected) IPA bit.
    ///
    /// # Errors
    ///
    /// As [`Mmio16550::new`]; also [`ConfigError::Kind`] for a non-16550 descriptor
    /// and [`ConfigError::Address`] if the address does not fit a pointer.
    ///
    /// # Safety
    ///
    /// As [`Mmio16550::new`], for the block `desc` describes.
    pub unsafe fn from_desc(desc: &UartDesc) -> Result<Self, ConfigError> {
        if desc.kind != super::UartKind::Ns16550 {
            return Err(ConfigError::Kind);
        }
        let base = usize::try_from(desc.base).map_err(|_| ConfigError::Address)?;
        let size = usize::try_from(desc.size).map_err(|_| ConfigError::Address)?;
        // SAFETY: forwarded to our caller.
        unsafe { Self::new(base, size, desc.reg_shift, desc.reg_io_width) }
    }
}

impl<B: RegisterBus> Uart16550Io for Mmio16550<B> {
    #[inline]
    fn read(&self, reg: u8) -> u8 {
        let off = self.offset(reg);
        if self.wide {
            // Truncation is the point: only the low byte of a wide register is defined.
            self.bus.read32(off) as u8
        } else {
            self.bus.read8(off)
        }
    }

    #[inline]
    fn write(&self, reg: u8, value: u8) {
        let off = self.offset(reg);
        if self.wide {
            self.bus.write32(off, u32::from(value));
        } else {
            self.bus.write8(off, value);
        }
    }
}

pub use super::TxTimeout;

/// A 16550A driver over a register backend.
#[derive(Debug)]
pub struct Ns16550<B> {
    io: B,
    crlf: bool,
    fifo_depth: u8,
    /// Room in the TX FIFO: a whole `fifo_depth` each time LSR.THRE is seen.
    tx: TxPacer,
}

impl<B: Uart16550Io> Ns16550<B> {
    /// Wraps a backend without touching the hardware.
    ///
    /// `crlf` turns each `\n` into `\r\n` on output, as Unikraft 0.17's console
    /// drivers do. Until [`init`](Self::init) has enabled and detected the FIFO, the
    /// driver polls before every byte, which is safe on any 8250-class UART left set
    /// up by firmware or the VMM.
    pub const fn new(io: B, crlf: bool) -> Self {
        Self {
            io,
            crlf,
            fifo_depth: 1,
            tx: TxPacer::new(),
        }
    }

    /// Replaces the number of LSR polls a wait may spend (at least 1).
    pub const fn with_spin_budget(mut self, polls: u32) -> Self {
        self.tx = self.tx.with_budget(polls);
        self
    }

    /// Programs the UART: interrupts off, 8N1, [`BAUD_RATE`] if `clock_hz` is known
    /// (otherwise the divisor is left as found), FIFOs enabled and reset, DTR and RTS
    /// asserted. Then reads IIR to learn whether the FIFO works, as Linux's autoconfig
    /// does, so that a UART without a usable FIFO is still driven byte by byte.
    pub fn init(&mut self, clock_hz: Option<u32>) {
        let eight_n1 = LCR::WLS::Eight.value;
        self.io.write(reg::IER, 0);
        match clock_hz.and_then(divisor) {
            Some(div) => {
                let [lo, hi] = div.to_le_bytes();
                self.io.write(reg::LCR, eight_n1 | LCR::DLAB::SET.value);
                self.io.write(reg::DLL, lo);
                self.io.write(reg::DLM, hi);
                self.io.write(reg::LCR, eight_n1);
            }
            None => self.io.write(reg::LCR, eight_n1),
        }
        self.io.write(
            reg::IIR_FCR,
            (FCR::ENABLE::SET + FCR::CLEAR_RX::SET + FCR::CLEAR_TX::SET).value,
        );
        self.io
            .write(reg::MCR, (MCR::DTR::SET + MCR::RTS::SET).value);
        let iir = self.io.read(reg::IIR_FCR);
        self.fifo_depth = if IIR::FIFO::Enabled.matches_all(iir) {
            FIFO_DEPTH
        } else {
            1
        };
        self.tx.reset();
    }

    /// Bytes written per LSR poll: 16 after a successful [`init`](Self::init) on a
    /// 16550A, else 1.
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
        // One LSR read per FIFO load: THRE means the whole FIFO is empty.
        self.tx.reserve(|| {
            if LSR::THRE.is_set(io.read(reg::LSR)) {
                depth
            } else {
                0
            }
        })?;
        self.io.write(reg::RBR_THR, byte);
        Ok(())
    }

    /// Sends one byte (`\n` as `\r\n` if translating).
    ///
    /// # Errors
    ///
    /// [`TxTimeout`] if the transmitter stayed full for the whole spin budget; the byte
    /// (or, for a translated newline, its `\n`) was not sent.
    pub fn putc(&mut self, byte: u8) -> Result<(), TxTimeout> {
        put_translated(byte, self.crlf, |b| self.push(b))
    }

    /// Sends `buf` and returns how many of its bytes went out.
    ///
    /// A result short of `buf.len()` means the transmitter stopped draining; the rest is
    /// dropped rather than hanging the caller.
    pub fn write(&mut self, buf: &[u8]) -> usize {
        write_all(buf, |b| self.putc(b))
    }

    /// Returns a received byte, if one is waiting.
    pub fn getc(&mut self) -> Option<u8> {
        if LSR::DR.is_set(self.io.read(reg::LSR)) {
            Some(self.io.read(reg::RBR_THR))
        } else {
            None
        }
    }
}

impl<B: Uart16550Io> core::fmt::Write for Ns16550<B> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        if self.write(s.as_bytes()) == s.len() {
            Ok(())
        } else {
            Err(core::fmt::Error)
        }
    }
}

/// Divisor for [`BAUD_RATE`] from the UART input clock, rounded to nearest as Linux
/// does; `None` if the clock is too slow for the rate (divisor 0).
pub fn divisor(clock_hz: u32) -> Option<u16> {
    let den = 16 * u64::from(BAUD_RATE);
    let div = (u64::from(clock_hz) + den / 2) / den;
    u16::try_from(div).ok().filter(|&d| d != 0)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::cell::RefCell;
    use std::vec::Vec;

    #[test]
    fn divisor_matches_known_clocks() {
        assert_eq!(divisor(1_843_200), Some(1), "kvmtool");
        assert_eq!(divisor(24_000_000), Some(13));
        assert_eq!(divisor(48_000_000), Some(26));
        assert_eq!(divisor(1_000_000), Some(1), "0.54 rounds up");
        assert_eq!(divisor(100_000), None, "too slow for 115200");
        assert_eq!(
            divisor(u32::MAX),
            Some(2330),
            "a u32 clock cannot overflow the latch"
        );
    }

    #[repr(C, align(4))]
    struct Block([u8; 32]);

    #[test]
    fn mmio_backend_applies_shift_and_width() {
        let mut block = Block([0; 32]);
        let base = block.0.as_mut_ptr().expose_provenance();
        // SAFETY: the block outlives the backends and is only accessed through them.
        let narrow = unsafe { Mmio16550::new(base, 8, 0, 1) }.unwrap();
        narrow.write(reg::LCR, 0x83);
        narrow.write(reg::SCR, 0x5a);
        // SAFETY: as above.
        let wide = unsafe { Mmio16550::new(base, 32, 2, 4) }.unwrap();
        wide.write(reg::LSR, 0x61);
        assert_eq!(block.0[3], 0x83);
        assert_eq!(block.0[7], 0x5a);
        assert_eq!(block.0[20..24], [0x61, 0, 0, 0]);
        block.0[24..28].copy_from_slice(&[0x42, 0xff, 0xff, 0xff]);
        assert_eq!(wide.read(reg::MSR), 0x42, "only the low byte counts");
    }

    #[test]
    fn mmio_backend_rejects_bad_layouts() {
        // SAFETY: every call fails its checks before any access could happen.
        unsafe {
            assert_eq!(
                Mmio16550::new(0x1000, 8, 0, 2),
                Err(ConfigError::IoWidth(2))
            );
            assert_eq!(
                Mmio16550::new(0x1000, 8, 1, 4),
                Err(ConfigError::Misaligned)
            );
            assert_eq!(
                Mmio16550::new(0x1001, 32, 2, 4),
                Err(ConfigError::Misaligned)
            );
            assert_eq!(Mmio16550::new(0x1000, 16, 2, 4), Err(ConfigError::TooSmall));
            assert_eq!(Mmio16550::new(0x1000, 7, 0, 1), Err(ConfigError::TooSmall));
            assert_eq!(
                Mmio16550::new(0x1000, 8, 9, 1),
                Err(ConfigError::RegShift(9))
            );
            assert_eq!(
                Mmio16550::new(usize::MAX - 7, 16, 0, 1),
                Err(ConfigError::Address)
            );
        }
    }

    /// Records writes; LSR reads return a scripted value.
    struct Log {
        lsr: u8,
        iir: u8,
        writes: RefCell<Vec<(u8, u8)>>,
        lsr_reads: RefCell<u32>,
    }

    impl Uart16550Io for Log {
        fn read(&self, reg: u8) -> u8 {
            match reg {
                reg::LSR => {
                    *self.lsr_reads.borrow_mut() += 1;
                    self.lsr
                }
                reg::IIR_FCR => self.iir,
                _ => 0,
            }
        }
        fn write(&self, reg: u8, value: u8) {
            self.writes.borrow_mut().push((reg, value));
        }
    }

    fn log(lsr: u8, iir: u8) -> Log {
        Log {
            lsr,
            iir,
            writes: RefCell::new(Vec::new()),
            lsr_reads: RefCell::new(0),
        }
    }

    #[test]
    fn init_sequence_is_the_linux_one() {
        let io = log(0x60, 0xc1);
        let mut u = Ns16550::new(&io, false);
        u.init(Some(24_000_000));
        assert_eq!(
            *io.writes.borrow(),
            [
                (reg::IER, 0),
                (reg::LCR, 0x83),
                (reg::DLL, 13),
                (reg::DLM, 0),
                (reg::LCR, 0x03),
                (reg::IIR_FCR, 0x07),
                (reg::MCR, 0x03),
            ]
        );
        assert_eq!(u.fifo_depth(), FIFO_DEPTH);
    }

    #[test]
    fn no_working_fifo_means_a_poll_per_byte() {
        let io = log(0x60, 0x01);
        let mut u = Ns16550::new(&io, false);
        u.init(None);
        assert_eq!(u.fifo_depth(), 1);
        assert_eq!(u.write(b"abcd"), 4);
        assert_eq!(*io.lsr_reads.borrow(), 4);
    }

    #[test]
    fn stalled_uart_costs_one_poll_per_later_call() {
        let io = log(0x00, 0xc1);
        let mut u = Ns16550::new(&io, false).with_spin_budget(50);
        u.init(None);
        assert_eq!(u.write(b"xy"), 0);
        assert_eq!(*io.lsr_reads.borrow(), 50);
        assert_eq!(u.putc(b'z'), Err(TxTimeout));
        assert_eq!(*io.lsr_reads.borrow(), 51);
    }
}
