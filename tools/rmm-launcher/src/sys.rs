//! System registers, the EL2 stage-1 identity map, QEMU's PL011 and semihosting.

use core::fmt;

macro_rules! mrs {
    ($r:literal) => {{
        let v: u64;
        // SAFETY: reading a system register has no memory effects.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $r), out(reg) v, options(nomem, nostack)) };
        v
    }};
}
macro_rules! msr {
    ($r:literal, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: the launcher owns EL2; callers write valid values.
        unsafe { core::arch::asm!(concat!("msr ", $r, ", {}"), in(reg) v, options(nostack)) };
    }};
}
pub(crate) use mrs;
pub(crate) use msr;

pub fn isb() {
    // SAFETY: barrier only.
    unsafe { core::arch::asm!("isb", options(nostack)) };
}
pub fn dsb() {
    // SAFETY: barrier only.
    unsafe { core::arch::asm!("dsb sy", options(nostack)) };
}

#[repr(C, align(4096))]
struct Table([u64; 512]);
static mut L1: Table = Table([0; 512]);

/// EL2 (non-VHE) stage 1: identity map of the first 4 GiB, Device-nGnRnE
/// below 1 GiB (QEMU virt's devices), Normal write-back above (RAM).
pub fn mmu_on() {
    // SAFETY: L1 is only written here, before the MMU uses it.
    let l1 = unsafe { &mut *core::ptr::addr_of_mut!(L1) };
    for (i, e) in l1.0.iter_mut().enumerate().take(4) {
        let attr = if i == 0 { 0 } else { 1 };
        let sh = if i == 0 { 0 } else { 3 << 8 };
        *e = ((i as u64) << 30) | (1 << 10) | sh | (attr << 2) | 0b01;
    }
    dsb();
    msr!("hcr_el2", 1 << 31); // RW: EL1 is AArch64; E2H = 0 (non-VHE)
    msr!("mair_el2", 0xff << 8); // attr0 Device-nGnRnE, attr1 Normal WB
    // T0SZ = 32 (4 GiB), IRGN0/ORGN0 WBWA, SH0 inner, TG0 4K, PS 40 bits, RES1 bits 31, 23.
    msr!(
        "tcr_el2",
        32 | (1 << 8) | (1 << 10) | (3 << 12) | (2 << 16) | (1 << 23) | (1 << 31)
    );
    msr!("ttbr0_el2", core::ptr::addr_of!(L1) as u64);
    isb();
    // SAFETY: TLB maintenance for EL2 only.
    unsafe { core::arch::asm!("tlbi alle2", "dsb sy", "isb", options(nostack)) };
    // RES1 bits | I | C | M
    msr!("sctlr_el2", 0x30c5_0830 | (1 << 12) | (1 << 2) | 1);
    isb();
}

const PL011: usize = 0x0900_0000;

pub fn putc(c: u8) {
    // SAFETY: QEMU virt's PL011 at 0x9000000, mapped as Device.
    unsafe {
        while core::ptr::read_volatile((PL011 + 0x18) as *const u32) & (1 << 5) != 0 {}
        core::ptr::write_volatile(PL011 as *mut u32, c as u32);
    }
}

static mut GUEST_AT_BOL: bool = true;

/// A byte the guest wrote to its UART.
pub fn guest_putc(c: u8) {
    putc(c);
    // SAFETY: single CPU.
    unsafe { GUEST_AT_BOL = c == b'\n' };
}

pub struct Writer;
impl fmt::Write for Writer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            putc(b);
        }
        Ok(())
    }
}

pub fn print(args: fmt::Arguments) {
    // SAFETY: single CPU.
    unsafe {
        if !GUEST_AT_BOL {
            putc(b'\n');
            GUEST_AT_BOL = true;
        }
    }
    let _ = fmt::write(&mut Writer, format_args!("[launcher] {}\n", args));
}

macro_rules! log {
    ($($a:tt)*) => { $crate::sys::print(format_args!($($a)*)) };
}
pub(crate) use log;

fn semihost(op: u64, arg: u64) -> u64 {
    let ret: u64;
    // SAFETY: QEMU runs with semihosting enabled; `arg` is valid for the call.
    unsafe {
        core::arch::asm!("hlt #0xf000", inout("x0") op => ret, in("x1") arg, options(nostack));
    }
    ret
}

/// Ends the QEMU process with `code` (SYS_EXIT_EXTENDED).
pub fn exit(code: u32) -> ! {
    let blk: [u64; 2] = [0x20026, code as u64];
    loop {
        semihost(0x20, blk.as_ptr() as u64);
    }
}

pub fn now_ticks() -> u64 {
    isb();
    mrs!("cntpct_el0")
}

// ---------------------------------------------------------------- preemption
const GICR_SGI: usize = 0x080a_0000 + 0x1_0000; // CPU 0's SGI/PPI frame (QEMU virt)
const HYP_TIMER_PPI: u32 = 26;
static mut TIMER_READY: bool = false;

/// Prepares the physical GIC for the host's needs, as an NS OS would: the
/// EL2 physical timer (PPI 26, preemption) and the EL1 virtual and physical
/// timers (PPIs 27, 30: when a realm's timer fires, the RMM exits the REC and
/// the host injects the virtual interrupt) in Group 1 NS and enabled, Group 1
/// NS enabled in the distributor (TF-A leaves that to the NS OS), and the EL2
/// CPU interface on. The launcher keeps IRQs masked: pending interrupts only
/// make the RMM exit the running REC (RMI_EXIT_IRQ/FIQ).
pub fn gic_init() {
    // SAFETY: single CPU; GICD and CPU 0's GICR mapped as Device.
    unsafe {
        if TIMER_READY {
            return;
        }
        let w = |off: usize, v: u32| core::ptr::write_volatile((GICR_SGI + off) as *mut u32, v);
        let r = |off: usize| core::ptr::read_volatile((GICR_SGI + off) as *const u32);
        let ppis = (1u32 << HYP_TIMER_PPI) | (1 << 27) | (1 << 30);
        w(0x80, r(0x80) | ppis); // IGROUPR0: Group 1 NS
        w(0xd00, r(0xd00) & !ppis); // IGRPMODR0
        for p in [HYP_TIMER_PPI, 27, 30] {
            core::ptr::write_volatile((GICR_SGI + 0x400 + p as usize) as *mut u8, 0x80);
        }
        w(0x100, ppis); // ISENABLER0
        let gicd = 0x0800_0000 as *mut u32;
        core::ptr::write_volatile(gicd, core::ptr::read_volatile(gicd) | 0x2);
        while core::ptr::read_volatile(gicd) & (1 << 31) != 0 {}
    }
    msr!("icc_sre_el2", mrs!("icc_sre_el2") | 0x9); // SRE | Enable
    isb();
    msr!("icc_pmr_el1", 0xff);
    msr!("icc_igrpen1_el1", 1);
    isb();
    // SAFETY: single CPU.
    unsafe { TIMER_READY = true };
}

/// Arms the EL2 physical timer to fire in `ticks` (preemption of a REC).
pub fn arm_preempt_timer(ticks: u64) {
    gic_init();
    msr!("cnthp_tval_el2", ticks);
    msr!("cnthp_ctl_el2", 1);
    isb();
}

pub fn disarm_preempt_timer() {
    msr!("cnthp_ctl_el2", 0);
    isb();
}
