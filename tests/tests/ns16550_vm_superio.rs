//! The 16550 driver against rust-vmm's vm-superio 16550A model (what Firecracker
//! runs), reached through the driver's own `reg-shift`/`reg-io-width` layout code.
//!
//! vm-superio decodes register indices 0..=7 and its THR is always empty, so the
//! TX-full paths are tested against small fakes at the end of this file.

use plat_tests::{crlf, text};
use std::cell::{Cell, RefCell};
use std::convert::Infallible;

use plat_kvm_arm::console::Console;
use plat_kvm_arm::console::UartKind;
use plat_kvm_arm::console::ns16550::{FIFO_DEPTH, Mmio16550, Ns16550, TxTimeout, Uart16550Io, reg};
use plat_kvm_arm::mmio::RegisterBus;
use proptest::prelude::*;
use vm_superio::serial::NoEvents;
use vm_superio::{Serial, Trigger};

struct NoIrq;

impl Trigger for NoIrq {
    type E = Infallible;
    fn trigger(&self) -> Result<(), Infallible> {
        Ok(())
    }
}

type Model = Serial<NoIrq, NoEvents, Vec<u8>>;

/// vm-superio's model behind a bus with a given register spacing and access width.
///
/// Every access is checked against the layout (aligned to the spacing, of the
/// configured width, a byte's worth of data in wide writes) and counted. Wide reads
/// come back with junk in the upper bytes, which the driver must ignore.
struct SuperioBus {
    model: RefCell<Model>,
    shift: u8,
    width: usize,
    reads: Cell<u64>,
    writes: Cell<u64>,
    violations: RefCell<Vec<String>>,
}

const WIDE_JUNK: u32 = 0xa5a5_a500;

impl SuperioBus {
    fn new(shift: u8, width: usize) -> Self {
        Self {
            model: RefCell::new(Serial::new(NoIrq, Vec::new())),
            shift,
            width,
            reads: Cell::new(0),
            writes: Cell::new(0),
            violations: RefCell::new(Vec::new()),
        }
    }

    fn decode(&self, offset: usize, width: usize) -> u8 {
        let mut v = self.violations.borrow_mut();
        if width != self.width {
            v.push(format!("{width}-byte access at {offset:#x}"));
        }
        if !offset.is_multiple_of(1 << self.shift) {
            v.push(format!("offset {offset:#x} between registers"));
        }
        let index = offset >> self.shift;
        if index > 7 {
            v.push(format!("offset {offset:#x} past the registers"));
        }
        index as u8
    }

    fn read(&self, offset: usize, width: usize) -> u8 {
        self.reads.set(self.reads.get() + 1);
        let index = self.decode(offset, width);
        self.model.borrow_mut().read(index)
    }

    fn write(&self, offset: usize, width: usize, value: u32) {
        self.writes.set(self.writes.get() + 1);
        let index = self.decode(offset, width);
        if value > 0xff {
            self.violations
                .borrow_mut()
                .push(format!("wide write of {value:#x}"));
        }
        self.model.borrow_mut().write(index, value as u8).unwrap();
    }

    fn reset_counts(&self) {
        self.reads.set(0);
        self.writes.set(0);
    }

    fn output(&self) -> Vec<u8> {
        self.model.borrow().writer().clone()
    }

    /// Reads a register the way a second observer of the device would: straight from
    /// the model, not through the driver.
    fn peek(&self, index: u8) -> u8 {
        self.model.borrow_mut().read(index)
    }

    fn poke(&self, index: u8, value: u8) {
        self.model.borrow_mut().write(index, value).unwrap();
    }

    fn assert_clean(&self) {
        let v = self.violations.borrow();
        assert!(v.is_empty(), "bad bus accesses: {v:?}");
    }
}

impl RegisterBus for SuperioBus {
    fn size(&self) -> usize {
        8 << self.shift
    }
    fn read8(&self, offset: usize) -> u8 {
        self.read(offset, 1)
    }
    fn write8(&self, offset: usize, value: u8) {
        self.write(offset, 1, value.into())
    }
    fn read32(&self, offset: usize) -> u32 {
        WIDE_JUNK | u32::from(self.read(offset, 4))
    }
    fn write32(&self, offset: usize, value: u32) {
        self.write(offset, 4, value)
    }
}

/// kvmtool's layout and a typical SoC one.
const LAYOUTS: [(u8, usize); 2] = [(0, 1), (2, 4)];

fn uart(bus: &SuperioBus, crlf: bool) -> Ns16550<Mmio16550<&SuperioBus>> {
    let io = Mmio16550::on_bus(bus, bus.shift, bus.width as u8).unwrap();
    Ns16550::new(io, crlf)
}

#[test]
fn init_programs_divisor_line_and_modem_control() {
    for (shift, width) in LAYOUTS {
        for (clock, div) in [(1_843_200u32, 1u16), (24_000_000, 13), (48_000_000, 26)] {
            let bus = SuperioBus::new(shift, width);
            let mut u = uart(&bus, true);
            u.init(Some(clock));
            bus.assert_clean();

            // The divisor as the model's own registers show it: DLAB on, DLL/DLM, DLAB off.
            let lcr = bus.peek(reg::LCR);
            assert_eq!(lcr, 0x03, "8N1 and DLAB cleared ({shift}, {width})");
            bus.poke(reg::LCR, lcr | 0x80);
            let got = u16::from_le_bytes([bus.peek(reg::DLL), bus.peek(reg::DLM)]);
            bus.poke(reg::LCR, lcr);
            assert_eq!(got, div, "divisor for {clock} Hz");

            let st = bus.model.borrow().state();
            assert_eq!((st.baud_divisor_low, st.baud_divisor_high), (div as u8, 0));
            assert_eq!(st.interrupt_enable, 0);
            assert_eq!(st.modem_control, 0x03, "DTR | RTS");
            assert_eq!(u.fifo_depth(), FIFO_DEPTH, "model reports a 16550A FIFO");
        }
    }
}

#[test]
fn init_without_clock_keeps_the_divisor() {
    for (shift, width) in LAYOUTS {
        let bus = SuperioBus::new(shift, width);
        let before = bus.model.borrow().state();
        uart(&bus, false).init(None);
        let after = bus.model.borrow().state();
        assert_eq!(
            (after.baud_divisor_low, after.baud_divisor_high),
            (before.baud_divisor_low, before.baud_divisor_high)
        );
        assert_eq!(after.line_control, 0x03);
        bus.assert_clean();
    }
}

#[test]
fn bytes_out_equal_bytes_in() {
    let all: Vec<u8> = (0..=255).chain(b"a\nb\r\n\n".iter().copied()).collect();
    for (shift, width) in LAYOUTS {
        for translate in [false, true] {
            let bus = SuperioBus::new(shift, width);
            let mut u = uart(&bus, translate);
            u.init(Some(1_843_200));
            assert_eq!(u.write(&all), all.len());
            let want = if translate { crlf(&all) } else { all.clone() };
            assert_eq!(
                bus.output(),
                want,
                "shift {shift} width {width} crlf {translate}"
            );
            bus.assert_clean();
        }
    }
}

#[test]
fn fmt_write_goes_through_the_same_path() {
    use std::fmt::Write;
    let bus = SuperioBus::new(0, 1);
    let mut u = uart(&bus, true);
    u.init(None);
    let word = "ok";
    writeln!(u, "{}-{word}", 42).unwrap();
    assert_eq!(bus.output(), b"42-ok\r\n");
}

#[test]
fn enqueued_input_is_read_back_by_getc() {
    for (shift, width) in LAYOUTS {
        let bus = SuperioBus::new(shift, width);
        let mut u = uart(&bus, true);
        u.init(Some(1_843_200));
        assert_eq!(u.getc(), None, "nothing received yet");
        let input = b"root\n\x03\xff\0";
        bus.model.borrow_mut().enqueue_raw_bytes(input).unwrap();
        // Bounded, so a driver that never sees the queue drain fails instead of hanging.
        let got: Vec<u8> = std::iter::from_fn(|| u.getc()).take(64).collect();
        assert_eq!(got, input, "no translation on input");
        assert_eq!(u.getc(), None);
        bus.assert_clean();
    }
}

#[test]
fn a_burst_costs_one_lsr_poll_per_fifo_load() {
    for (shift, width) in LAYOUTS {
        let bus = SuperioBus::new(shift, width);
        let mut u = uart(&bus, true);
        u.init(Some(1_843_200));
        bus.reset_counts();

        let input = text(4096, 0x9e37_79b9_7f4a_7c15);
        assert_eq!(u.write(&input), input.len());
        let out = bus.output().len() as u64;
        assert_eq!(out, crlf(&input).len() as u64);
        assert_eq!(bus.writes.get(), out, "one THR write per output byte");
        assert_eq!(
            bus.reads.get(),
            out.div_ceil(16),
            "one LSR read per 16 bytes"
        );
        let per_byte = (bus.reads.get() + bus.writes.get()) as f64 / out as f64;
        assert!(per_byte <= 1.1, "{per_byte} accesses/byte");
    }
}

#[test]
fn before_init_the_driver_polls_every_byte() {
    let bus = SuperioBus::new(0, 1);
    let mut u = uart(&bus, false);
    assert_eq!(u.write(b"abc"), 3);
    assert_eq!(
        bus.reads.get(),
        3,
        "no FIFO assumed until init has probed it"
    );
    assert_eq!(bus.output(), b"abc");
}

#[test]
fn console_dispatches_to_the_16550() {
    let bus = SuperioBus::new(2, 4);
    let io = Mmio16550::on_bus(&bus, 2, 4).unwrap();
    let mut c: Console<_> = Console::Ns16550(Ns16550::new(io, true));
    c.init(Some(1_843_200));
    assert_eq!(c.kind(), UartKind::Ns16550);
    assert_eq!(c.write(b"hi\n"), 3);
    assert_eq!(bus.output(), b"hi\r\n");
    bus.model.borrow_mut().enqueue_raw_bytes(b"k").unwrap();
    assert_eq!(c.getc(), Some(b'k'));
    assert_eq!(c.getc(), None);
    bus.assert_clean();
}

proptest! {
    #[test]
    fn any_bytes_round_trip(
        input in proptest::collection::vec(any::<u8>(), 0..600),
        layout in 0..LAYOUTS.len(),
        translate: bool,
    ) {
        let (shift, width) = LAYOUTS[layout];
        let bus = SuperioBus::new(shift, width);
        let mut u = uart(&bus, translate);
        u.init(Some(1_843_200));
        prop_assert_eq!(u.write(&input), input.len());
        let want = if translate { crlf(&input) } else { input.clone() };
        prop_assert_eq!(bus.output(), want);
        prop_assert!(bus.violations.borrow().is_empty());
    }
}

// ---- TX-full behaviour, which vm-superio cannot show ----

/// A 16550A whose transmitter is stuck: LSR.THRE never sets.
#[derive(Default)]
struct DeadTx {
    lsr_reads: Cell<u32>,
    thr_writes: Cell<u32>,
}

impl Uart16550Io for DeadTx {
    fn read(&self, r: u8) -> u8 {
        match r {
            reg::LSR => {
                self.lsr_reads.set(self.lsr_reads.get() + 1);
                0
            }
            reg::IIR_FCR => 0xc1,
            _ => 0,
        }
    }
    fn write(&self, r: u8, _: u8) {
        if r == reg::RBR_THR {
            self.thr_writes.set(self.thr_writes.get() + 1);
        }
    }
}

#[test]
fn a_dead_transmitter_costs_one_spin_budget_then_one_poll_per_call() {
    let dev = DeadTx::default();
    let mut u = Ns16550::new(&dev, true).with_spin_budget(1000);
    u.init(None);
    assert_eq!(u.write(b"hello\n"), 0, "gives up instead of hanging");
    assert_eq!(dev.lsr_reads.get(), 1000);
    assert_eq!(dev.thr_writes.get(), 0, "nothing written to a full FIFO");
    assert_eq!(u.putc(b'x'), Err(TxTimeout));
    assert_eq!(
        dev.lsr_reads.get(),
        1001,
        "stalled: one poll, not another budget"
    );
}

/// A 16550A with a real 16-byte TX FIFO that drains one byte every `drain_every` LSR
/// reads, and reports THRE only when empty. Writing into a full FIFO is an overrun.
struct SlowTx {
    drain_every: u32,
    polls: Cell<u32>,
    fifo: Cell<usize>,
    max_fifo: Cell<usize>,
    overruns: Cell<u32>,
    out: RefCell<Vec<u8>>,
}

impl SlowTx {
    fn new(drain_every: u32) -> Self {
        Self {
            drain_every,
            polls: Cell::new(0),
            fifo: Cell::new(0),
            max_fifo: Cell::new(0),
            overruns: Cell::new(0),
            out: RefCell::new(Vec::new()),
        }
    }
}

impl Uart16550Io for SlowTx {
    fn read(&self, r: u8) -> u8 {
        match r {
            reg::LSR => {
                self.polls.set(self.polls.get() + 1);
                if self.polls.get().is_multiple_of(self.drain_every) && self.fifo.get() > 0 {
                    self.fifo.set(self.fifo.get() - 1);
                }
                if self.fifo.get() == 0 { 0x60 } else { 0 }
            }
            reg::IIR_FCR => 0xc1,
            _ => 0,
        }
    }
    fn write(&self, r: u8, v: u8) {
        if r != reg::RBR_THR {
            return;
        }
        if self.fifo.get() == 16 {
            self.overruns.set(self.overruns.get() + 1);
        } else {
            self.fifo.set(self.fifo.get() + 1);
            self.max_fifo.set(self.max_fifo.get().max(self.fifo.get()));
        }
        self.out.borrow_mut().push(v);
    }
}

#[test]
fn a_slow_transmitter_is_filled_but_never_overrun() {
    let dev = SlowTx::new(3);
    let mut u = Ns16550::new(&dev, true);
    u.init(None);
    let input = text(1000, 7);
    assert_eq!(u.write(&input), input.len());
    assert_eq!(dev.overruns.get(), 0);
    assert_eq!(dev.max_fifo.get(), 16, "whole FIFO loads are used");
    assert_eq!(*dev.out.borrow(), crlf(&input));
}

#[test]
fn a_budget_shorter_than_a_drain_gives_up_with_a_count() {
    // Draining 16 bytes takes 48 polls; a budget of 10 runs out on the second load.
    let dev = SlowTx::new(3);
    let mut u = Ns16550::new(&dev, false).with_spin_budget(10);
    u.init(None);
    let input = [b'x'; 40];
    let sent = u.write(&input);
    assert_eq!(sent, 16, "first load goes out, then the wait times out");
    assert_eq!(dev.out.borrow().len(), sent);
    assert_eq!(dev.overruns.get(), 0);
}
