//! Emulated devices behind trapped MMIO: four 16550A UARTs, the MC146818
//! RTC, and an empty PCI ECAM space (kvmtool `-n mode=none --nodefaults`).

use crate::layout;
use crate::sys::{self, SpinLock, log};
use core::sync::atomic::{AtomicU64, Ordering};

// 16550 register bits (standard values).
const LSR_DR: u8 = 0x01;
const LSR_THRE: u8 = 0x20;
const LSR_TEMT: u8 = 0x40;
const LCR_DLAB: u8 = 0x80;
const MCR_LOOP: u8 = 0x10;
const MCR_OUT2: u8 = 0x08;
const MSR_CTS: u8 = 0x10;
const MSR_DSR: u8 = 0x20;
const MSR_DCD: u8 = 0x80;
const IIR_NO_INT: u8 = 0x01;
const IIR_FIFO_BITS: u8 = 0xc0;
const IER_RDI: u8 = 0x01;
const IER_THRI: u8 = 0x02;

#[derive(Clone, Copy)]
struct Uart {
    dll: u8,
    dlm: u8,
    ier: u8,
    fcr: u8,
    lcr: u8,
    mcr: u8,
    lsr: u8,
    msr: u8,
    scr: u8,
    /// A byte received in loopback mode.
    loop_rx: Option<u8>,
    /// Level of the UART's interrupt line as last signalled to the GIC.
    irq: bool,
}

impl Uart {
    const RESET: Uart = Uart {
        dll: 0,
        dlm: 0,
        ier: 0,
        fcr: 0,
        lcr: 0,
        mcr: MCR_OUT2,
        lsr: LSR_TEMT | LSR_THRE,
        msr: MSR_DCD | MSR_DSR | MSR_CTS,
        scr: 0,
        loop_rx: None,
        irq: false,
    };
}

struct Devices {
    uart: [Uart; layout::UART_COUNT as usize],
    rtc_index: u8,
}

static DEV: SpinLock<Devices> = SpinLock::new(Devices {
    uart: [Uart::RESET; layout::UART_COUNT as usize],
    rtc_index: 0,
});

pub static UNHANDLED_MMIO: AtomicU64 = AtomicU64::new(0);

fn uart_rx_ready(n: usize, u: &Uart) -> bool {
    if u.mcr & MCR_LOOP != 0 {
        return u.loop_rx.is_some();
    }
    n == 0 && sys::pl011_has_input()
}

fn uart_read(n: usize, u: &mut Uart, reg: u64) -> u8 {
    let dlab = u.lcr & LCR_DLAB != 0;
    match reg {
        0 if dlab => u.dll,
        0 => {
            if u.mcr & MCR_LOOP != 0 {
                u.loop_rx.take().unwrap_or(0)
            } else if n == 0 {
                sys::pl011_getc().unwrap_or(0)
            } else {
                0
            }
        }
        1 if dlab => u.dlm,
        1 => u.ier,
        2 => {
            let mut iir = IIR_NO_INT;
            if u.ier & IER_RDI != 0 && uart_rx_ready(n, u) {
                iir = 0x04;
            } else if u.ier & IER_THRI != 0 && u.lsr & LSR_TEMT != 0 {
                iir = 0x02;
            }
            iir | IIR_FIFO_BITS
        }
        3 => u.lcr,
        4 => u.mcr,
        5 => u.lsr | if uart_rx_ready(n, u) { LSR_DR } else { 0 },
        6 => {
            if u.mcr & MCR_LOOP != 0 {
                // loopback: modem outputs feed the inputs
                let m = u.mcr;
                ((m & 0x02) << 3) | ((m & 0x01) << 5) | ((m & 0x04) << 4) | ((m & 0x08) << 4)
            } else {
                u.msr
            }
        }
        7 => u.scr,
        _ => 0,
    }
}

fn uart_write(n: usize, u: &mut Uart, reg: u64, v: u8) {
    let dlab = u.lcr & LCR_DLAB != 0;
    match reg {
        0 if dlab => u.dll = v,
        0 => {
            if u.mcr & MCR_LOOP != 0 {
                u.loop_rx = Some(v);
            } else if n == 0 {
                sys::guest_putc(v);
            }
            // Transmission is instantaneous: THRE and TEMT stay set.
        }
        1 if dlab => u.dlm = v,
        1 => u.ier = v & 0x0f,
        2 => u.fcr = v,
        3 => u.lcr = v,
        4 => u.mcr = v & 0x1f,
        5 | 6 => {} // read-only (factory test writes ignored)
        7 => u.scr = v,
        _ => {}
    }
}

fn bcd(v: u64) -> u64 {
    ((v / 10) << 4) | (v % 10)
}

fn rtc_read(index: u8) -> u8 {
    // A clock that starts at 2000-01-01 00:00:00 when the model starts.
    let f = crate::sys::mrs!("cntfrq_el0").max(1);
    let secs = crate::sys::now_ticks() / f;
    let v = match index {
        0x00 => bcd(secs % 60),
        0x02 => bcd((secs / 60) % 60),
        0x04 => bcd((secs / 3600) % 24),
        0x06 => 7, // day of week
        0x07 => bcd(1 + (secs / 86400) % 28),
        0x08 => 1,
        0x09 => 0,
        0x0a => 0x26, // divider, rate
        0x0b => 0x02, // 24-hour mode, BCD
        0x0d => 0x80, // valid RAM and time
        0x32 => 0x20, // century
        _ => 0,
    };
    v as u8
}

/// The UART interrupt as kvmtool computes it (a level: RX data with
/// IER.RDI, or an empty transmitter with IER.THRI), driven into QEMU's GIC
/// by setting or clearing the SPI's pending state (the guest owns the GIC;
/// kvmtool gives UART n SPI n).
fn uart_update_irq(n: usize, u: &mut Uart) {
    let level = (u.ier & IER_RDI != 0 && uart_rx_ready(n, u))
        || (u.ier & IER_THRI != 0 && u.lsr & LSR_TEMT != 0);
    if level == u.irq {
        return;
    }
    u.irq = level;
    let intid = 32 + n as u64;
    let reg = if level { 0x200 } else { 0x280 }; // GICD_ISPENDR / GICD_ICPENDR
    let addr = layout::QEMU_GICD + reg + (intid / 32) * 4;
    // SAFETY: QEMU's GIC distributor, identity mapped as Device at EL2; the
    // write only changes the pending state of this UART's SPI.
    unsafe { core::ptr::write_volatile(addr as *mut u32, 1 << (intid % 32)) };
}

/// Re-evaluates the UART interrupt lines (input may have arrived while the
/// guest ran); called on every trap.
pub fn poll() {
    let mut d = DEV.lock();
    for n in 0..layout::UART_COUNT as usize {
        let u = &mut d.uart[n];
        if u.ier != 0 {
            uart_update_irq(n, u);
        }
    }
}

pub fn mmio_read(addr: u64, size: u64) -> u64 {
    if crate::virtio::claims(addr) {
        return crate::virtio::mmio_read(addr, size);
    }
    if crate::virtio_net::claims(addr) {
        return crate::virtio_net::mmio_read(addr, size);
    }
    if crate::virtio_pci::claims(addr) {
        return crate::virtio_pci::bar_read(addr, size);
    }
    let mut d = DEV.lock();
    let (ub, count) = crate::cfg().uarts();
    if addr >= ub && addr < ub + count * 0x1000 && addr & 0xfff < 8 {
        let n = ((addr - ub) >> 12) as usize;
        let v = uart_read(n, &mut d.uart[n], addr & 7) as u64;
        uart_update_irq(n, &mut d.uart[n]);
        return v;
    }
    let kvmtool = crate::cfg().profile == crate::config::Profile::Kvmtool;
    if kvmtool && addr == layout::RTC_IPA + 1 {
        return rtc_read(d.rtc_index) as u64;
    }
    if kvmtool && addr == layout::RTC_IPA {
        return d.rtc_index as u64;
    }
    if kvmtool && (layout::ECAM_IPA..layout::ECAM_IPA + layout::ECAM_SIZE).contains(&addr) {
        // The virtio-pci functions, if any; all ones where there is no device.
        drop(d);
        return crate::virtio_pci::ecam_read(addr, size);
    }
    drop(d);
    unhandled("read", addr, size, 0);
    0
}

pub fn mmio_write(addr: u64, size: u64, val: u64) {
    if crate::virtio::claims(addr) {
        return crate::virtio::mmio_write(addr, size, val);
    }
    if crate::virtio_net::claims(addr) {
        return crate::virtio_net::mmio_write(addr, size, val);
    }
    if crate::virtio_pci::claims(addr) {
        return crate::virtio_pci::bar_write(addr, size, val);
    }
    let mut d = DEV.lock();
    let (ub, count) = crate::cfg().uarts();
    if addr >= ub && addr < ub + count * 0x1000 && addr & 0xfff < 8 {
        let n = ((addr - ub) >> 12) as usize;
        uart_write(n, &mut d.uart[n], addr & 7, val as u8);
        uart_update_irq(n, &mut d.uart[n]);
        return;
    }
    let kvmtool = crate::cfg().profile == crate::config::Profile::Kvmtool;
    if kvmtool && addr == layout::RTC_IPA {
        d.rtc_index = (val & 0x7f) as u8;
        return;
    }
    if kvmtool && addr == layout::RTC_IPA + 1 {
        return; // time setting ignored
    }
    if kvmtool && (layout::ECAM_IPA..layout::ECAM_IPA + layout::ECAM_SIZE).contains(&addr) {
        drop(d);
        return crate::virtio_pci::ecam_write(addr, size, val);
    }
    drop(d);
    unhandled("write", addr, size, val);
}

/// kvmtool ignores MMIO to addresses no device claims (reads give 0).
fn unhandled(what: &str, addr: u64, size: u64, val: u64) {
    let n = UNHANDLED_MMIO.fetch_add(1, Ordering::Relaxed);
    if n < 16 {
        log!(
            "warning: ignoring MMIO {} of {} byte(s) at {:#x} (value {:#x}): no device",
            what,
            size,
            addr,
            val
        );
    }
}
