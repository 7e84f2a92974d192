//! Console UART drivers, chosen at run time from the device tree.

pub mod ns16550;
pub mod pl011;

/// The transmitter stayed full for a whole spin budget; the byte was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxTimeout;

/// Default number of status polls a transmit wait may spend before giving up.
pub const DEFAULT_SPIN_BUDGET: u32 = 1 << 20;

/// Transmit pacing shared by the UART drivers.
///
/// Counts the bytes the TX FIFO can still take without another status read (only
/// we fill it, so the count is a lower bound and stays valid across calls), and
/// bounds each wait by a spin budget; after one timeout a dead UART costs one poll
/// per call rather than another budget, until it drains again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxPacer {
    budget: u32,
    room: u8,
    stalled: bool,
}

impl TxPacer {
    pub(crate) const fn new() -> Self {
        Self {
            budget: DEFAULT_SPIN_BUDGET,
            room: 0,
            stalled: false,
        }
    }

    /// Replaces the budget (at least 1 poll).
    pub(crate) const fn with_budget(mut self, polls: u32) -> Self {
        self.budget = if polls == 0 { 1 } else { polls };
        self
    }

    pub(crate) const fn budget(&self) -> u32 {
        self.budget
    }

    /// Forgets the counted room and any stall (after the UART was reprogrammed).
    pub(crate) fn reset(&mut self) {
        self.room = 0;
        self.stalled = false;
    }

    /// Takes room for one byte. When the counted room is used up, polls `status`,
    /// which returns how many bytes the FIFO can take now (0: none yet).
    pub(crate) fn reserve(&mut self, mut status: impl FnMut() -> u8) -> Result<(), TxTimeout> {
        if self.room == 0 {
            let polls = if self.stalled { 1 } else { self.budget };
            for _ in 0..polls {
                self.room = status();
                if self.room != 0 {
                    break;
                }
                core::hint::spin_loop();
            }
            self.stalled = self.room == 0;
            if self.stalled {
                return Err(TxTimeout);
            }
        }
        self.room -= 1;
        Ok(())
    }
}

/// Sends one byte through `push`, `\n` as `\r\n` when `crlf` (as Unikraft 0.17's
/// drivers do). On a timeout the byte (or a translated newline's `\n`) was not sent.
pub(crate) fn put_translated(
    byte: u8,
    crlf: bool,
    mut push: impl FnMut(u8) -> Result<(), TxTimeout>,
) -> Result<(), TxTimeout> {
    if crlf && byte == b'\n' {
        push(b'\r')?;
    }
    push(byte)
}

/// Sends `buf` byte by byte through `putc`; returns how many of its bytes went out
/// (short when the transmitter stopped draining: the rest is dropped, not waited for).
pub(crate) fn write_all(buf: &[u8], mut putc: impl FnMut(u8) -> Result<(), TxTimeout>) -> usize {
    buf.iter()
        .position(|&b| putc(b).is_err())
        .unwrap_or(buf.len())
}

/// Which UART model a console node describes (from its `compatible`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UartKind {
    /// National Semiconductor 16550 family (`ns16550a`, `ns16550`): kvmtool, Firecracker.
    #[default]
    Ns16550,
    /// Arm PrimeCell PL011 (`arm,pl011`): QEMU `virt`.
    Pl011,
}

/// A console UART as described by the device tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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

/// Why a UART register block cannot be used as described.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// The descriptor names a different UART model than the driver asked for.
    Kind,
    /// `reg-io-width` other than 1 or 4.
    IoWidth(u8),
    /// `reg-shift` beyond anything a real binding uses.
    RegShift(u8),
    /// Registers would not be naturally aligned (base, or 4-byte registers packed
    /// closer than 4 bytes).
    Misaligned,
    /// The `reg` size does not cover all the registers the driver touches.
    TooSmall,
    /// The block does not fit the address space.
    Address,
}

/// The console UART, whichever model the device tree described.
///
/// Generic over the register backends so host tests can dispatch to fakes; on the
/// guest the defaults (device memory) apply.
#[derive(Debug)]
pub enum Console<N = ns16550::Mmio16550, P = pl011::Pl011Mmio> {
    /// A 16550A.
    Ns16550(ns16550::Ns16550<N>),
    /// A PL011.
    Pl011(pl011::Pl011<P>),
}

impl Console {
    /// Picks the driver for `desc.kind` over device memory at `desc.base`, without
    /// touching the hardware. `crlf` turns `\n` into `\r\n` on output.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if the register layout in `desc` is unusable.
    ///
    /// # Safety
    ///
    /// `desc` must describe a mapped UART register block that stays mapped, and is
    /// driven only through this console, for as long as it is used (see
    /// [`crate::mmio::MmioRegion::new`]).
    pub unsafe fn from_desc(desc: &UartDesc, crlf: bool) -> Result<Self, ConfigError> {
        Ok(match desc.kind {
            UartKind::Ns16550 => {
                // SAFETY: forwarded to our caller.
                let io = unsafe { ns16550::Mmio16550::from_desc(desc) }?;
                Self::Ns16550(ns16550::Ns16550::new(io, crlf))
            }
            UartKind::Pl011 => {
                // SAFETY: forwarded to our caller.
                let io = unsafe { pl011::Pl011Mmio::from_desc(desc) }?;
                Self::Pl011(pl011::Pl011::new(io, crlf))
            }
        })
    }
}

impl<N: ns16550::Uart16550Io, P: pl011::Pl011Io> Console<N, P> {
    /// Replaces the number of status polls a wait for transmit room may spend (at
    /// least 1): small for a UART that is only guessed to exist, so that writing to
    /// one that does not (reads as 0, never "room") stops quickly.
    pub fn with_spin_budget(self, polls: u32) -> Self {
        match self {
            Self::Ns16550(u) => Self::Ns16550(u.with_spin_budget(polls)),
            Self::Pl011(u) => Self::Pl011(u.with_spin_budget(polls)),
        }
    }

    /// Which model is behind the console.
    pub const fn kind(&self) -> UartKind {
        match self {
            Self::Ns16550(_) => UartKind::Ns16550,
            Self::Pl011(_) => UartKind::Pl011,
        }
    }

    /// Programs the UART for 115200 8N1 with FIFOs (the divisor only if `clock_hz` is
    /// known).
    pub fn init(&mut self, clock_hz: Option<u32>) {
        match self {
            Self::Ns16550(u) => u.init(clock_hz),
            Self::Pl011(u) => u.init(clock_hz),
        }
    }

    /// Sends `buf`; returns how many of its bytes went out (short if the UART stalls).
    pub fn write(&mut self, buf: &[u8]) -> usize {
        match self {
            Self::Ns16550(u) => u.write(buf),
            Self::Pl011(u) => u.write(buf),
        }
    }

    /// Returns a received byte, if one is waiting.
    pub fn getc(&mut self) -> Option<u8> {
        match self {
            Self::Ns16550(u) => u.getc(),
            Self::Pl011(u) => u.getc(),
        }
    }
}

impl<N: ns16550::Uart16550Io, P: pl011::Pl011Io> core::fmt::Write for Console<N, P> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        if self.write(s.as_bytes()) == s.len() {
            Ok(())
        } else {
            Err(core::fmt::Error)
        }
    }
}
