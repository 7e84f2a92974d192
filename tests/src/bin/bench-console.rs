//! Console cost in register accesses per output byte, each one a trap to the VMM on
//! a guest.
//!
//! Writes a 4 KiB burst of printable text with newlines (translated to `\r\n`, as
//! Unikraft's console does) through the 16550 driver into rust-vmm's vm-superio
//! model at kvmtool's layout, and through the PL011 driver into a QEMU-like fake
//! (transmit FIFO that drains at once), counting bus accesses after `init`.
//! Exits non-zero if the 16550 figure exceeds 1.1 or if either output is wrong.
//!
//! Run as `cargo run -q --release -p plat-tests --bin bench-console`.

use plat_tests::{crlf, text};
use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::process::ExitCode;

use plat_kvm_arm::console::ns16550::{Mmio16550, Ns16550};
use plat_kvm_arm::console::pl011::{Pl011, Pl011Io, reg};
use plat_kvm_arm::mmio::RegisterBus;
use vm_superio::serial::NoEvents;
use vm_superio::{Serial, Trigger};

/// The 16550 figure above which the bench fails (1 + 1/16 is what FIFO-load pacing
/// gives; polling per byte would give 2).
const NS16550_LIMIT: f64 = 1.1;
const BURST: usize = 4096;

struct NoIrq;

impl Trigger for NoIrq {
    type E = Infallible;
    fn trigger(&self) -> Result<(), Infallible> {
        Ok(())
    }
}

/// Access counts over one burst.
#[derive(Clone, Copy)]
struct Counts {
    reads: u64,
    writes: u64,
    bytes: u64,
}

impl Counts {
    fn per_byte(self) -> f64 {
        (self.reads + self.writes) as f64 / self.bytes as f64
    }

    fn report(self, name: &str) {
        println!(
            "{name} accesses/byte (4 KiB burst): {:.4} (reads {}, writes {}, bytes {})",
            self.per_byte(),
            self.reads,
            self.writes,
            self.bytes
        );
    }
}

/// vm-superio's 16550A on a byte-wide, unshifted bus (kvmtool's layout), counting
/// accesses.
struct SuperioBus {
    model: RefCell<Serial<NoIrq, NoEvents, Vec<u8>>>,
    reads: Cell<u64>,
    writes: Cell<u64>,
}

impl RegisterBus for SuperioBus {
    fn size(&self) -> usize {
        8
    }
    fn read8(&self, offset: usize) -> u8 {
        self.reads.set(self.reads.get() + 1);
        self.model.borrow_mut().read(offset as u8)
    }
    fn write8(&self, offset: usize, value: u8) {
        self.writes.set(self.writes.get() + 1);
        self.model.borrow_mut().write(offset as u8, value).unwrap();
    }
    fn read32(&self, _: usize) -> u32 {
        panic!("32-bit access to a byte-wide 16550");
    }
    fn write32(&self, _: usize, _: u32) {
        panic!("32-bit access to a byte-wide 16550");
    }
}

/// QEMU-like PL011: FR always shows an empty TX FIFO and an empty RX FIFO.
#[derive(Default)]
struct QemuPl011 {
    out: RefCell<Vec<u8>>,
    reads: Cell<u64>,
    writes: Cell<u64>,
}

impl Pl011Io for QemuPl011 {
    fn read(&self, offset: usize) -> u32 {
        self.reads.set(self.reads.get() + 1);
        match offset {
            reg::FR => (1 << 7) | (1 << 4),
            _ => 0,
        }
    }
    fn write(&self, offset: usize, value: u32) {
        self.writes.set(self.writes.get() + 1);
        if offset == reg::DR {
            self.out.borrow_mut().push(value as u8);
        }
    }
}

fn bench_ns16550(input: &[u8]) -> Result<Counts, String> {
    let bus = SuperioBus {
        model: RefCell::new(Serial::new(NoIrq, Vec::new())),
        reads: Cell::new(0),
        writes: Cell::new(0),
    };
    let io = Mmio16550::on_bus(&bus, 0, 1).map_err(|e| format!("{e:?}"))?;
    let mut uart = Ns16550::new(io, true);
    uart.init(Some(1_843_200));
    bus.reads.set(0);
    bus.writes.set(0);
    let sent = uart.write(input);
    let out = bus.model.borrow().writer().clone();
    if sent != input.len() || out != crlf(input) {
        return Err(format!(
            "ns16550 sent {sent} of {} bytes, or garbled them",
            input.len()
        ));
    }
    Ok(Counts {
        reads: bus.reads.get(),
        writes: bus.writes.get(),
        bytes: out.len() as u64,
    })
}

fn bench_pl011(input: &[u8]) -> Result<Counts, String> {
    let dev = QemuPl011::default();
    let mut uart = Pl011::new(&dev, true);
    uart.init(None);
    dev.reads.set(0);
    dev.writes.set(0);
    dev.out.borrow_mut().clear();
    let sent = uart.write(input);
    let out = dev.out.borrow().clone();
    if sent != input.len() || out != crlf(input) {
        return Err(format!(
            "pl011 sent {sent} of {} bytes, or garbled them",
            input.len()
        ));
    }
    Ok(Counts {
        reads: dev.reads.get(),
        writes: dev.writes.get(),
        bytes: out.len() as u64,
    })
}

fn main() -> ExitCode {
    let input = text(BURST, 0x9e37_79b9_7f4a_7c15);
    let (ns, pl) = match (bench_ns16550(&input), bench_pl011(&input)) {
        (Ok(ns), Ok(pl)) => (ns, pl),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("bench-console: {e}");
            return ExitCode::FAILURE;
        }
    };
    ns.report("ns16550");
    pl.report("pl011");
    if ns.per_byte() > NS16550_LIMIT {
        eprintln!(
            "bench-console: ns16550 costs {:.4} accesses/byte, above {NS16550_LIMIT}",
            ns.per_byte()
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
