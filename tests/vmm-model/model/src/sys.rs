//! System registers, QEMU's PL011, semihosting, a spinlock.

use core::cell::UnsafeCell;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

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
        // SAFETY: the model owns EL2 and the guest's EL1 state; each caller
        // writes a value that is valid for the register.
        unsafe { core::arch::asm!(concat!("msr ", $r, ", {}"), in(reg) v, options(nostack)) };
    }};
}
pub(crate) use {mrs, msr};

pub fn isb() {
    // SAFETY: barrier only.
    unsafe { core::arch::asm!("isb", options(nostack)) };
}
pub fn dsb() {
    // SAFETY: barrier only.
    unsafe { core::arch::asm!("dsb sy", options(nostack)) };
}

// ---------------------------------------------------------------- PL011
const PL011: usize = 0x0900_0000;

fn pl011_putc(c: u8) {
    // SAFETY: QEMU virt's PL011 is at 0x9000000, identity mapped as Device.
    unsafe {
        while core::ptr::read_volatile((PL011 + 0x18) as *const u32) & (1 << 5) != 0 {}
        core::ptr::write_volatile(PL011 as *mut u32, c as u32);
    }
}

/// A byte from QEMU's serial input, if any.
pub fn pl011_getc() -> Option<u8> {
    // SAFETY: as in `pl011_putc`.
    unsafe {
        if core::ptr::read_volatile((PL011 + 0x18) as *const u32) & (1 << 4) != 0 {
            None
        } else {
            Some(core::ptr::read_volatile(PL011 as *const u32) as u8)
        }
    }
}

pub fn pl011_has_input() -> bool {
    // SAFETY: as in `pl011_putc`.
    unsafe { core::ptr::read_volatile((PL011 + 0x18) as *const u32) & (1 << 4) == 0 }
}

/// Whether the last byte the guest printed ended a line (model lines must
/// start on a fresh line so they stay separable from guest output).
static GUEST_AT_BOL: AtomicBool = AtomicBool::new(true);
pub static CONSOLE_LOCK: SpinLock<()> = SpinLock::new(());

pub fn guest_putc(c: u8) {
    let _g = CONSOLE_LOCK.lock();
    pl011_putc(c);
    GUEST_AT_BOL.store(c == b'\n', Ordering::Relaxed);
}

pub struct ModelWriter;
impl fmt::Write for ModelWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            pl011_putc(b);
        }
        Ok(())
    }
}

pub fn model_print(args: fmt::Arguments) {
    let _g = CONSOLE_LOCK.lock();
    if !GUEST_AT_BOL.swap(true, Ordering::Relaxed) {
        pl011_putc(b'\n');
    }
    let _ = fmt::write(&mut ModelWriter, format_args!("[model] {}\n", args));
}

macro_rules! log {
    ($($a:tt)*) => { $crate::sys::model_print(format_args!($($a)*)) };
}
pub(crate) use log;

// ---------------------------------------------------------------- semihosting
fn semihost(op: u64, arg: u64) -> u64 {
    let ret: u64;
    // SAFETY: QEMU is started with semihosting enabled; `arg` points to a
    // parameter block valid for this call.
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

/// Writes `data` to the host file `path` (semihosting SYS_OPEN/WRITE/CLOSE).
pub fn write_host_file(path: &[u8], data: &[u8]) -> bool {
    let mut name = [0u8; 256];
    if path.len() >= name.len() {
        return false;
    }
    name[..path.len()].copy_from_slice(path);
    let open: [u64; 3] = [name.as_ptr() as u64, 5 /* "wb" */, path.len() as u64];
    let fd = semihost(0x01, open.as_ptr() as u64);
    if fd as i64 == -1 {
        return false;
    }
    let wr: [u64; 3] = [fd, data.as_ptr() as u64, data.len() as u64];
    let left = semihost(0x05, wr.as_ptr() as u64);
    let cl: [u64; 1] = [fd];
    semihost(0x02, cl.as_ptr() as u64);
    left == 0
}

// ---------------------------------------------------------------- spinlock
pub struct SpinLock<T> {
    locked: AtomicBool,
    val: UnsafeCell<T>,
}
// SAFETY: access to `val` is serialised by `locked`.
unsafe impl<T: Send> Sync for SpinLock<T> {}

pub struct Guard<'a, T> {
    l: &'a SpinLock<T>,
}

impl<T> SpinLock<T> {
    pub const fn new(v: T) -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
            val: UnsafeCell::new(v),
        }
    }
    pub fn lock(&self) -> Guard<'_, T> {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        Guard { l: self }
    }
}
impl<T> core::ops::Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the lock is held.
        unsafe { &*self.l.val.get() }
    }
}
impl<T> core::ops::DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the lock is held.
        unsafe { &mut *self.l.val.get() }
    }
}
impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.l.locked.store(false, Ordering::Release);
    }
}

/// Physical counter, in ticks of CNTFRQ_EL0.
pub fn now_ticks() -> u64 {
    isb();
    mrs!("cntpct_el0")
}
