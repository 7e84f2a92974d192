//! The PL011 driver against a fake register file that models what the driver relies
//! on: FR (TXFE/TXFF/RXFE/BUSY) tracking a 16-byte TX FIFO and an RX queue, DR, and
//! the baud divisor being latched only by a write to LCR_H.

use plat_tests::{crlf, text};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use plat_kvm_arm::console::ns16550::Mmio16550;
use plat_kvm_arm::console::pl011::{FIFO_DEPTH, Pl011, Pl011Io, TxTimeout, reg};
use plat_kvm_arm::console::{Console, UartKind};
use proptest::prelude::*;

const FR_BUSY: u32 = 1 << 3;
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
const FR_TXFE: u32 = 1 << 7;
const CR_ENABLED: u32 = 1 | 1 << 8 | 1 << 9;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Drain {
    /// QEMU: bytes leave as soon as they are written.
    Instant,
    /// One byte leaves every `n` FR reads.
    EveryNthPoll(u32),
    /// Never: the transmitter is stuck.
    Never,
}

struct FakePl011 {
    drain: Drain,
    busy_forever: bool,
    cr: Cell<u32>,
    lcr_h: Cell<u32>,
    ibrd: Cell<u32>,
    fbrd: Cell<u32>,
    /// IBRD/FBRD as the baud generator uses them: copied on each LCR_H write.
    latched: Cell<(u32, u32)>,
    imsc: Cell<u32>,
    icr: Cell<u32>,
    tx_fifo: Cell<usize>,
    max_tx_fifo: Cell<usize>,
    overruns: Cell<u32>,
    sent_while_disabled: Cell<u32>,
    rx: RefCell<VecDeque<u32>>,
    out: RefCell<Vec<u8>>,
    fr_polls: Cell<u32>,
    reads: Cell<u64>,
    writes: Cell<u64>,
    log: RefCell<Vec<(usize, u32)>>,
}

impl FakePl011 {
    fn new(drain: Drain) -> Self {
        Self {
            drain,
            busy_forever: false,
            // As firmware might leave it: enabled, FIFOs off.
            cr: Cell::new(CR_ENABLED),
            lcr_h: Cell::new(0x60),
            ibrd: Cell::new(0),
            fbrd: Cell::new(0),
            latched: Cell::new((0, 0)),
            imsc: Cell::new(0x7f0),
            icr: Cell::new(0),
            tx_fifo: Cell::new(0),
            max_tx_fifo: Cell::new(0),
            overruns: Cell::new(0),
            sent_while_disabled: Cell::new(0),
            rx: RefCell::new(VecDeque::new()),
            out: RefCell::new(Vec::new()),
            fr_polls: Cell::new(0),
            reads: Cell::new(0),
            writes: Cell::new(0),
            log: RefCell::new(Vec::new()),
        }
    }

    fn capacity(&self) -> usize {
        if self.lcr_h.get() & 0x10 != 0 { 16 } else { 1 }
    }

    fn reset_counts(&self) {
        self.reads.set(0);
        self.writes.set(0);
        self.log.borrow_mut().clear();
    }
}

impl Pl011Io for FakePl011 {
    fn read(&self, offset: usize) -> u32 {
        self.reads.set(self.reads.get() + 1);
        match offset {
            reg::FR => {
                self.fr_polls.set(self.fr_polls.get() + 1);
                if let Drain::EveryNthPoll(n) = self.drain
                    && self.fr_polls.get().is_multiple_of(n)
                    && self.tx_fifo.get() > 0
                {
                    self.tx_fifo.set(self.tx_fifo.get() - 1);
                }
                let fifo = self.tx_fifo.get();
                let mut fr = 0;
                if fifo == 0 {
                    fr |= FR_TXFE;
                }
                if fifo >= self.capacity() {
                    fr |= FR_TXFF;
                }
                if fifo > 0 || self.busy_forever {
                    fr |= FR_BUSY;
                }
                if self.rx.borrow().is_empty() {
                    fr |= FR_RXFE;
                }
                fr
            }
            reg::DR => self.rx.borrow_mut().pop_front().unwrap_or(0),
            reg::CR => self.cr.get(),
            reg::LCR_H => self.lcr_h.get(),
            reg::IBRD => self.ibrd.get(),
            reg::FBRD => self.fbrd.get(),
            reg::IMSC => self.imsc.get(),
            _ => 0,
        }
    }

    fn write(&self, offset: usize, value: u32) {
        self.writes.set(self.writes.get() + 1);
        self.log.borrow_mut().push((offset, value));
        match offset {
            reg::DR => {
                if self.cr.get() & CR_ENABLED != CR_ENABLED {
                    self.sent_while_disabled
                        .set(self.sent_while_disabled.get() + 1);
                }
                if self.tx_fifo.get() >= self.capacity() {
                    self.overruns.set(self.overruns.get() + 1);
                    return;
                }
                self.out.borrow_mut().push(value as u8);
                if self.drain != Drain::Instant {
                    self.tx_fifo.set(self.tx_fifo.get() + 1);
                    self.max_tx_fifo
                        .set(self.max_tx_fifo.get().max(self.tx_fifo.get()));
                }
            }
            reg::CR => self.cr.set(value),
            reg::LCR_H => {
                // Clearing FEN flushes the FIFO; the write latches the divisor.
                if value & 0x10 == 0 {
                    self.tx_fifo.set(0);
                }
                self.lcr_h.set(value);
                self.latched.set((self.ibrd.get(), self.fbrd.get()));
            }
            reg::IBRD => self.ibrd.set(value),
            reg::FBRD => self.fbrd.set(value),
            reg::IMSC => self.imsc.set(value),
            reg::ICR => self.icr.set(value),
            _ => {}
        }
    }
}

#[test]
fn init_follows_the_trm_sequence() {
    let dev = FakePl011::new(Drain::Instant);
    Pl011::new(&dev, false).init(Some(24_000_000));
    let log = dev.log.borrow();
    assert_eq!(log.first(), Some(&(reg::CR, 0)), "disabled first");
    assert_eq!(
        log.last(),
        Some(&(reg::CR, 0x301)),
        "UARTEN | TXE | RXE last"
    );
    assert_eq!(dev.latched.get(), (13, 1), "IBRD/FBRD latched by LCR_H");
    assert_eq!(
        (dev.ibrd.get(), dev.fbrd.get()),
        dev.latched.get(),
        "no divisor left pending for a later LCR_H write"
    );
    assert_eq!(dev.lcr_h.get(), 0x70, "8N1, FIFOs on");
    assert_eq!(dev.imsc.get(), 0, "all interrupts masked");
    assert_eq!(dev.icr.get(), 0x7ff, "all interrupts cleared");
}

#[test]
fn init_without_clock_leaves_the_divisor_alone() {
    let dev = FakePl011::new(Drain::Instant);
    Pl011::new(&dev, false).init(None);
    let log = dev.log.borrow();
    assert!(
        !log.iter().any(|&(o, _)| o == reg::IBRD || o == reg::FBRD),
        "{log:x?}"
    );
    assert_eq!(dev.cr.get(), 0x301);
}

#[test]
fn init_gives_up_on_a_uart_that_stays_busy() {
    let mut dev = FakePl011::new(Drain::Instant);
    dev.busy_forever = true;
    let mut u = Pl011::new(&dev, false).with_spin_budget(100);
    u.init(None);
    assert_eq!(dev.fr_polls.get(), 100);
    assert_eq!(dev.cr.get(), 0x301, "and still enables it");
}

#[test]
fn bytes_out_equal_bytes_in() {
    let all: Vec<u8> = (0..=255).chain(b"x\n\r\n".iter().copied()).collect();
    for drain in [Drain::Instant, Drain::EveryNthPoll(2)] {
        for translate in [false, true] {
            let dev = FakePl011::new(drain);
            let mut u = Pl011::new(&dev, translate);
            u.init(None);
            assert_eq!(u.write(&all), all.len());
            let want = if translate { crlf(&all) } else { all.clone() };
            assert_eq!(*dev.out.borrow(), want, "{drain:?} crlf {translate}");
            assert_eq!(dev.overruns.get(), 0);
            assert_eq!(dev.sent_while_disabled.get(), 0);
        }
    }
}

#[test]
fn getc_returns_received_bytes_without_error_flags() {
    let dev = FakePl011::new(Drain::Instant);
    let mut u = Pl011::new(&dev, true);
    u.init(None);
    assert_eq!(u.getc(), None);
    // 'b' arrives with a framing error (bit 8) and 'c' with an overrun (bit 11).
    dev.rx.borrow_mut().extend([
        u32::from(b'a'),
        0x100 | u32::from(b'b'),
        0x800 | u32::from(b'c'),
        0x0a,
    ]);
    // Bounded, so a driver that never sees the queue drain fails instead of hanging.
    let got: Vec<u8> = std::iter::from_fn(|| u.getc()).take(64).collect();
    assert_eq!(got, b"abc\n");
    assert_eq!(u.getc(), None);
}

#[test]
fn a_burst_on_qemu_costs_one_fr_poll_per_fifo_load() {
    let dev = FakePl011::new(Drain::Instant);
    let mut u = Pl011::new(&dev, true);
    u.init(None);
    dev.reset_counts();
    let input = text(4096, 0x1234_5678);
    assert_eq!(u.write(&input), input.len());
    let out = dev.out.borrow().len() as u64;
    assert_eq!(dev.writes.get(), out);
    assert_eq!(dev.reads.get(), out.div_ceil(u64::from(FIFO_DEPTH)));
}

#[test]
fn a_slow_transmitter_is_filled_but_never_overrun() {
    let dev = FakePl011::new(Drain::EveryNthPoll(3));
    let mut u = Pl011::new(&dev, true);
    u.init(None);
    let input = text(1000, 99);
    assert_eq!(u.write(&input), input.len());
    assert_eq!(dev.overruns.get(), 0);
    assert_eq!(dev.max_tx_fifo.get(), 16);
    assert_eq!(*dev.out.borrow(), crlf(&input));
}

#[test]
fn without_init_the_fifo_is_not_assumed() {
    // Firmware left FEN clear: a one-byte holding register.
    let dev = FakePl011::new(Drain::EveryNthPoll(2));
    let mut u = Pl011::new(&dev, false);
    assert_eq!(u.write(b"abcdef"), 6);
    assert_eq!(dev.overruns.get(), 0);
    assert_eq!(*dev.out.borrow(), b"abcdef");
}

#[test]
fn a_stuck_transmitter_gives_up_after_the_budget() {
    let dev = FakePl011::new(Drain::Never);
    let mut u = Pl011::new(&dev, false).with_spin_budget(500);
    u.init(None);
    let sent = u.write(&[b'z'; 40]);
    assert_eq!(sent, 16, "one FIFO load, then FR.TXFF for the whole budget");
    assert_eq!(dev.overruns.get(), 0);
    let polls = dev.fr_polls.get();
    assert_eq!(u.putc(b'!'), Err(TxTimeout));
    assert_eq!(
        dev.fr_polls.get(),
        polls + 1,
        "stalled: one poll per later call"
    );
}

#[test]
fn console_dispatches_to_the_pl011() {
    let dev = FakePl011::new(Drain::Instant);
    let mut c: Console<Mmio16550, &FakePl011> = Console::Pl011(Pl011::new(&dev, true));
    c.init(Some(24_000_000));
    assert_eq!(c.kind(), UartKind::Pl011);
    assert_eq!(c.write(b"ok\n"), 3);
    assert_eq!(*dev.out.borrow(), b"ok\r\n");
    dev.rx.borrow_mut().push_back(u32::from(b'q'));
    assert_eq!(c.getc(), Some(b'q'));
    assert_eq!(c.getc(), None);
}

proptest! {
    #[test]
    fn any_bytes_round_trip_through_a_slow_fifo(
        input in proptest::collection::vec(any::<u8>(), 0..400),
        every in 1u32..6,
        translate: bool,
    ) {
        let dev = FakePl011::new(Drain::EveryNthPoll(every));
        let mut u = Pl011::new(&dev, translate);
        u.init(None);
        prop_assert_eq!(u.write(&input), input.len());
        let want = if translate { crlf(&input) } else { input.clone() };
        prop_assert_eq!(dev.out.borrow().clone(), want);
        prop_assert_eq!(dev.overruns.get(), 0);
    }
}
