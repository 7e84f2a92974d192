//! A bare-metal test guest for the kvmtool machine model. The case to run is
//! chosen by `test=NAME` in /chosen/bootargs; see README.md.

#![no_std]
#![no_main]

#[path = "../../common/fdt_read.rs"]
#[allow(dead_code)]
mod fdt_read;
mod rsi;
#[path = "../../common/sha256.rs"]
#[allow(dead_code)]
mod sha256;
#[path = "../../common/sha512.rs"]
#[allow(dead_code)]
mod sha512;

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

core::arch::global_asm!(
    r#"
.section .text.head, "ax"
.global _start
_start:
    b 1f                        // code0
    .word 0                     // code1
    .quad 0                     // text_offset
    .quad __image_size          // image_size (linker)
    .quad 0xa                   // flags: LE, 4K pages, anywhere
    .quad 0, 0, 0               // res2..res4
    .ascii "ARM\x64"            // magic
    .word 0                     // res5
1:  mov x19, x0
    adrp x1, __stack_top
    add x1, x1, :lo12:__stack_top
    mov sp, x1
    mov x0, x19
    bl guest_main
2:  wfe
    b 2b

.global secondary_start
secondary_start:
    adrp x1, __stack2_top
    add x1, x1, :lo12:__stack2_top
    mov sp, x1
    bl guest_secondary
3:  wfe
    b 3b

.macro gvec idx
    .balign 0x80
    mrs x0, esr_el1
    mrs x1, elr_el1
    mrs x2, far_el1
    mov x3, #\idx
    adrp x4, __stack_top
    add x4, x4, :lo12:__stack_top
    mov sp, x4
    bl guest_exception
.endm

.balign 2048
.global guest_vectors
guest_vectors:
    gvec 0
    gvec 1
    gvec 2
    gvec 3
    gvec 4
    gvec 5
    gvec 6
    gvec 7
    gvec 8
    gvec 9
    gvec 10
    gvec 11
    gvec 12
    gvec 13
    gvec 14
    gvec 15
"#
);

unsafe extern "C" {
    fn secondary_start();
    static guest_vectors: u8;
    static __bss_start: u8;
    static __bss_end: u8;
    static __image_start: u8;
    static __image_end: u8;
}

static UART: AtomicU64 = AtomicU64::new(0x0100_0000);
static SMC_CONDUIT: AtomicBool = AtomicBool::new(false);

fn mmio_w8(addr: u64, v: u8) {
    // SAFETY: a single strb to a device register (valid ISV syndrome).
    unsafe {
        core::arch::asm!("strb {v:w}, [{a}]", a = in(reg) addr, v = in(reg) v as u32, options(nostack))
    };
}
fn mmio_r8(addr: u64) -> u8 {
    let v: u32;
    // SAFETY: a single ldrb from a device register.
    unsafe {
        core::arch::asm!("ldrb {v:w}, [{a}]", a = in(reg) addr, v = out(reg) v, options(nostack))
    };
    v as u8
}
fn mmio_r32(addr: u64) -> u32 {
    let v: u32;
    // SAFETY: a single 32-bit ldr from a device register.
    unsafe {
        core::arch::asm!("ldr {v:w}, [{a}]", a = in(reg) addr, v = out(reg) v, options(nostack))
    };
    v
}

fn putc(c: u8) {
    let base = UART.load(Ordering::Relaxed);
    while mmio_r8(base + 5) & 0x20 == 0 {}
    mmio_w8(base, c);
}

pub struct Out;
impl Write for Out {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                putc(b'\r');
            }
            putc(b);
        }
        Ok(())
    }
}

macro_rules! say {
    ($($a:tt)*) => { let _ = core::fmt::Write::write_fmt(&mut $crate::Out, format_args!($($a)*)); let _ = core::fmt::Write::write_str(&mut $crate::Out, "\n"); };
}
pub(crate) use say;

/// An SMCCC call through HVC or SMC; returns x0..x3.
pub fn smccc(smc: bool, a: [u64; 4]) -> [u64; 4] {
    let (r0, r1, r2, r3): (u64, u64, u64, u64);
    // SAFETY: SMCCC calls to the hypervisor; x4-x17 may be clobbered.
    unsafe {
        if smc {
            core::arch::asm!("smc #0", inout("x0") a[0] => r0, inout("x1") a[1] => r1, inout("x2") a[2] => r2,
                inout("x3") a[3] => r3, out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _,
                out("x9") _, out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _,
                out("x15") _, out("x16") _, out("x17") _, options(nostack));
        } else {
            core::arch::asm!("hvc #0", inout("x0") a[0] => r0, inout("x1") a[1] => r1, inout("x2") a[2] => r2,
                inout("x3") a[3] => r3, out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _,
                out("x9") _, out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _,
                out("x15") _, out("x16") _, out("x17") _, options(nostack));
        }
    }
    [r0, r1, r2, r3]
}

fn psci(fid: u64, a1: u64, a2: u64, a3: u64) -> u64 {
    smccc(SMC_CONDUIT.load(Ordering::Relaxed), [fid, a1, a2, a3])[0]
}

fn system_off() -> ! {
    psci(0x8400_0008, 0, 0, 0);
    say!("guest: SYSTEM_OFF returned!");
    loop {
        core::hint::spin_loop();
    }
}

static FAILS: AtomicU64 = AtomicU64::new(0);
pub fn check(what: &str, ok: bool) {
    if ok {
        say!("guest: ok   {}", what);
    } else {
        FAILS.fetch_add(1, Ordering::Relaxed);
        say!("guest: FAIL {}", what);
    }
}

fn finish() -> ! {
    let f = FAILS.load(Ordering::Relaxed);
    if f == 0 {
        say!("guest: ALL CHECKS PASSED");
    } else {
        say!("guest: {} CHECK(S) FAILED", f);
        // SYSTEM_RESET signals failure to the test script.
        psci(0x8400_0009, 0, 0, 0);
    }
    system_off()
}

macro_rules! sysreg {
    ($r:literal) => {{
        let v: u64;
        // SAFETY: reading a system register.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $r), out(reg) v, options(nomem, nostack)) };
        v
    }};
}

fn set_vbar() {
    // SAFETY: installs this image's exception vectors.
    unsafe {
        let v = &raw const guest_vectors as u64;
        core::arch::asm!("msr vbar_el1, {}", "isb", in(reg) v, options(nostack));
    }
}

#[unsafe(no_mangle)]
extern "C" fn guest_exception(esr: u64, elr: u64, far: u64, vector: u64) -> ! {
    if vector == 5 {
        // IRQ at EL1 with SP_EL1
        let intid: u64;
        // SAFETY: acknowledge and end the interrupt at the GIC CPU interface.
        unsafe {
            core::arch::asm!("mrs {0}, icc_iar1_el1", "msr icc_eoir1_el1, {0}", "isb", out(reg) intid);
        }
        say!("guest: IRQ intid={}", intid);
        // switch the UART interrupt off again before powering off
        mmio_w8(UART.load(Ordering::Relaxed) + 1, 0);
        system_off()
    }
    say!(
        "guest: EXCEPTION esr={:#x} elr={:#x} far={:#x}",
        esr,
        elr,
        far
    );
    let after_hvc = AFTER_HVC.load(Ordering::Relaxed);
    if after_hvc != 0 {
        if elr == after_hvc {
            say!("guest: ELR = the instruction after the HVC");
        } else {
            say!(
                "guest: ELR is not the instruction after the HVC ({:#x})",
                after_hvc
            );
        }
    }
    EXPECTED_EXC.store(true, Ordering::Relaxed);
    system_off()
}
static EXPECTED_EXC: AtomicBool = AtomicBool::new(false);
/// The address after the HVC of test `realm-hvc` (0 otherwise).
pub static AFTER_HVC: AtomicU64 = AtomicU64::new(0);

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    say!("guest: PANIC {}", info);
    psci_reset()
}

fn bss_range() -> (u64, u64) {
    (&raw const __bss_start as u64, &raw const __bss_end as u64)
}

fn zero_bss() {
    let (s, e) = bss_range();
    let mut p = s;
    while p < e {
        // SAFETY: .bss belongs to this image and is not yet in use.
        unsafe { core::ptr::write_volatile(p as *mut u64, 0) };
        p += 8;
    }
}

fn bootarg<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split(' ')
        .find_map(|t| t.strip_prefix(key)?.strip_prefix('='))
}

#[unsafe(no_mangle)]
extern "C" fn guest_main(dtb: u64) -> ! {
    // SAFETY: x0 holds the DTB address kvmtool's rule gives.
    let fdt = unsafe { fdt_read::Fdt::from_addr(dtb as usize) };
    let method = fdt
        .as_ref()
        .and_then(|f| f.prop_str("/psci", "method"))
        .unwrap_or("hvc");
    let realm = method == "smc";
    SMC_CONDUIT.store(realm, Ordering::Relaxed);
    let cmdline = fdt
        .as_ref()
        .and_then(|f| f.prop_str("/chosen", "bootargs"))
        .unwrap_or("");
    let test = bootarg(cmdline, "test").unwrap_or(if realm { "realm" } else { "hello" });

    // A DTB inside the image would be destroyed by zeroing .bss.
    let (is, ie) = image_range();
    if dtb >= is && dtb < ie {
        SMC_CONDUIT.store(realm, Ordering::Relaxed);
        if !realm {
            say!(
                "guest: the DTB at {:#x} overlaps the image [{:#x}, {:#x}); refusing to boot",
                dtb,
                is,
                ie
            );
        }
        psci_reset();
    }
    // .bss and the stacks lie inside the image (header image_size), which
    // is RIPAS RAM from the start in a realm.
    zero_bss();
    SMC_CONDUIT.store(realm, Ordering::Relaxed);
    if realm {
        // Nothing outside the loaded image may be touched before RIPAS is set.
        rsi::realm_boot(dtb, fdt.as_ref(), test);
    }
    set_vbar_if(test);
    say!(
        "guest: hello from the test guest (test={}, dtb={:#x})",
        test,
        dtb
    );
    match test {
        "hello" => normal_checks(dtb, fdt.as_ref()),
        "reset" => {
            psci(0x8400_0009, 0, 0, 0);
            say!("guest: SYSTEM_RESET returned!");
            psci_reset()
        }
        "stp" => {
            let base = UART.load(Ordering::Relaxed);
            say!("guest: storing a pair to the UART (no syndrome)");
            // SAFETY: deliberately an stp to device memory (ISV = 0).
            unsafe { core::arch::asm!("stp xzr, xzr, [{}]", in(reg) base, options(nostack)) };
            say!("guest: the stp went through!");
            system_off()
        }
        "hang" => {
            say!("guest: spinning forever");
            loop {
                core::hint::spin_loop();
            }
        }
        "wfi" => {
            say!("guest: waiting for an interrupt that never comes");
            loop {
                // SAFETY: wait with interrupts masked.
                unsafe { core::arch::asm!("wfi") };
            }
        }
        "escape" => {
            say!("guest: jumping to an IPA with no RAM");
            // SAFETY: deliberately branches out of RAM.
            unsafe { core::arch::asm!("br {}", in(reg) 0x1000_0000u64, options(noreturn)) };
        }
        "smp" => smp_test(),
        "uart-irq" => uart_irq_test(),
        "virtio-hostile" => virtio_hostile_test(),
        "virtio-net-hostile" => virtio_net_hostile_test(),
        "echo" => {
            say!("guest: type a line");
            let b = UART.load(Ordering::Relaxed);
            let mut line = [0u8; 64];
            let mut n = 0;
            while n < line.len() {
                while mmio_r8(b + 5) & 0x01 == 0 {}
                let c = mmio_r8(b);
                if c == b'\n' || c == b'\r' {
                    break;
                }
                line[n] = c;
                n += 1;
            }
            say!(
                "guest: got '{}'",
                core::str::from_utf8(&line[..n]).unwrap_or("?")
            );
            system_off()
        }
        "fp" => {
            say!("guest: using FP with CPACR_EL1.FPEN = 0");
            // SAFETY: `fmov d0, xzr`, deliberately trapping (FP disabled at EL1).
            unsafe { core::arch::asm!(".inst 0x9e6703e0") };
            say!("guest: FP did not trap!");
            psci_reset()
        }
        "exception" => {
            // no VBAR set: the guest takes an exception to VBAR 0
            // SAFETY: deliberately undefined.
            unsafe { core::arch::asm!("udf #0") };
            psci_reset()
        }
        _ => rsi::realm_tests(test),
    }
}

fn set_vbar_if(test: &str) {
    if test != "exception" {
        set_vbar();
    }
}

fn normal_checks(dtb: u64, fdt: Option<&fdt_read::Fdt>) -> ! {
    let el = (sysreg!("CurrentEL") >> 2) & 3;
    check("entered at EL1", el == 1);
    check("DAIF masked at entry", sysreg!("daif") == 0x3c0);
    let sctlr = sysreg!("sctlr_el1");
    check(
        "SCTLR_EL1 M=C=I=0",
        sctlr & ((1 << 0) | (1 << 2) | (1 << 12)) == 0,
    );
    check("CPACR_EL1 = 0", sysreg!("cpacr_el1") == 0);
    check(
        "x0 = DTB, 2 MiB aligned",
        dtb.is_multiple_of(2 << 20) && fdt.is_some(),
    );
    if let Some(f) = fdt {
        let mem = f
            .prop("/memory", "reg")
            .and_then(|r| fdt_read::cell64(r, 1))
            .unwrap_or(0);
        let expect = 0x8000_0000 + mem.min(256 << 20) - (2 << 20);
        check("DTB at kvmtool's slot", dtb == expect);
        check(
            "stdout-path = serial0",
            f.prop_str("/chosen", "stdout-path") == Some("serial0"),
        );
    }
    // 16550 registers
    let b = UART.load(Ordering::Relaxed);
    check("LSR THRE|TEMT", mmio_r8(b + 5) & 0x60 == 0x60);
    mmio_w8(b + 7, 0x5a);
    check("SCR holds a value", mmio_r8(b + 7) == 0x5a);
    mmio_w8(b + 3, 0x83); // DLAB, 8N1
    mmio_w8(b, 0x01);
    mmio_w8(b + 1, 0x00);
    let dl = mmio_r8(b) == 1 && mmio_r8(b + 1) == 0;
    mmio_w8(b + 3, 0x03);
    check("divisor latch", dl);
    check("LCR readback", mmio_r8(b + 3) == 0x03);
    check("IIR no interrupt", mmio_r8(b + 2) & 0x0f == 0x01);
    // timers and GIC
    let t0 = sysreg!("cntvct_el0");
    let t1 = sysreg!("cntpct_el0");
    check("virtual and physical counters readable", t0 != 0 && t1 != 0);
    let typer = mmio_r32(0x3fff_0000 + 4);
    check(
        "GICD_TYPER readable at 0x3fff0004",
        typer != 0 && typer != u32::MAX,
    );
    // SAFETY: enable the ICC system-register interface at EL1.
    unsafe {
        core::arch::asm!("mrs x9, icc_sre_el1", "orr x9, x9, #1", "msr icc_sre_el1, x9", "isb", out("x9") _)
    };
    check("ICC_SRE_EL1.SRE set", sysreg!("icc_sre_el1") & 1 == 1);
    // SAFETY: cache maintenance on a device address; KVM skips it.
    unsafe { core::arch::asm!("dc civac, {}", in(reg) b, options(nostack)) };
    check("DC CIVAC on the UART is skipped", true);
    let ver = psci(0x8400_0000, 0, 0, 0);
    check("PSCI_VERSION >= 0.2", ver >= 2);
    check(
        "PSCI_FEATURES(CPU_ON)",
        psci(0x8400_000a, 0xc400_0003, 0, 0) == 0,
    );
    check(
        "PSCI_FEATURES(unknown) = NOT_SUPPORTED",
        psci(0x8400_000a, 0x8400_00ff, 0, 0) == u64::MAX,
    );
    check("AFFINITY_INFO(0) = ON", psci(0xc400_0004, 0, 0, 0) == 0);
    finish()
}

static SECONDARY_RAN: AtomicU64 = AtomicU64::new(0);
static RELEASE: AtomicBool = AtomicBool::new(false);

#[unsafe(no_mangle)]
extern "C" fn guest_secondary(ctx: u64) -> ! {
    let mpidr = sysreg!("mpidr_el1");
    say!(
        "guest: secondary vCPU up, mpidr={:#x} ctx={:#x}",
        mpidr,
        ctx
    );
    SECONDARY_RAN.store(ctx, Ordering::SeqCst);
    while !RELEASE.load(Ordering::SeqCst) {
        core::hint::spin_loop();
    }
    psci(0x8400_0002, 0, 0, 0); // CPU_OFF
    say!("guest: CPU_OFF returned!");
    psci_reset()
}

fn smp_test() -> ! {
    let r = psci(0xc400_0003, 1, secondary_start as *const () as u64, 0x1234);
    check("CPU_ON(1) = SUCCESS", r == 0);
    check("CPU_ON(1) again = ALREADY_ON or ON_PENDING", {
        let r2 = psci(0xc400_0003, 1, secondary_start as *const () as u64, 0) as i64;
        r2 == -4 || r2 == -5
    });
    check(
        "CPU_ON(7) = INVALID_PARAMETERS",
        psci(0xc400_0003, 7, 0, 0) as i64 == -2,
    );
    let mut n = 0u64;
    while SECONDARY_RAN.load(Ordering::SeqCst) != 0x1234 && n < 100_000_000 {
        n += 1;
        core::hint::spin_loop();
    }
    check(
        "secondary ran with its context id",
        SECONDARY_RAN.load(Ordering::SeqCst) == 0x1234,
    );
    check(
        "AFFINITY_INFO(1) = ON while it runs",
        psci(0xc400_0004, 1, 0, 0) == 0,
    );
    RELEASE.store(true, Ordering::SeqCst);
    let mut off = false;
    for _ in 0..10_000_000 {
        if psci(0xc400_0004, 1, 0, 0) == 1 {
            off = true;
            break;
        }
    }
    check("AFFINITY_INFO(1) = OFF after CPU_OFF", off);
    finish()
}

pub fn image_range() -> (u64, u64) {
    (
        &raw const __image_start as u64,
        &raw const __image_end as u64,
    )
}

pub fn set_uart(base: u64) {
    UART.store(base, Ordering::Relaxed);
}

pub fn finish_pub() -> ! {
    finish()
}

pub fn expected_exception() -> bool {
    EXPECTED_EXC.load(Ordering::Relaxed)
}

pub fn psci_reset() -> ! {
    psci(0x8400_0009, 0, 0, 0);
    loop {
        core::hint::spin_loop();
    }
}

fn mmio_w32(addr: u64, v: u32) {
    // SAFETY: a single 32-bit str to a device register.
    unsafe {
        core::arch::asm!("str {v:w}, [{a}]", a = in(reg) addr, v = in(reg) v, options(nostack))
    };
}

/// Enables UART0's SPI (INTID 32) at QEMU's GICv3 (at kvmtool's addresses)
/// and IER.THRI: an empty transmitter must interrupt at once.
fn uart_irq_test() -> ! {
    let gicd = 0x3fff_0000u64;
    let gicr = 0x3fff_0000u64 - 0x2_0000; // vCPU 0's redistributor (1 vCPU)
    mmio_w32(gicd, 0x12); // ARE, EnableGrp1 (single security state)
    mmio_w32(gicr + 0x14, mmio_r32(gicr + 0x14) & !2); // GICR_WAKER.ProcessorSleep = 0
    while mmio_r32(gicr + 0x14) & 4 != 0 {}
    mmio_w32(gicd + 0x84, 1); // IGROUPR1: INTID 32 in group 1
    mmio_w32(gicd + 0x420, 0xa0a0_a0a0); // priorities of INTID 32..35
    mmio_w32(gicd + 0x6100, 0); // IROUTER32 = affinity 0
    mmio_w32(gicd + 0x6104, 0);
    mmio_w32(gicd + 0x104, 1); // ISENABLER1: INTID 32
    // SAFETY: enables the system-register CPU interface, unmasks group 1.
    unsafe {
        core::arch::asm!(
            "mrs x9, icc_sre_el1", "orr x9, x9, #1", "msr icc_sre_el1, x9", "isb",
            "mov x9, #0xff", "msr icc_pmr_el1, x9",
            "mov x9, #1", "msr icc_igrpen1_el1, x9", "isb",
            out("x9") _
        )
    };
    let b = UART.load(Ordering::Relaxed);
    say!("guest: enabling IER.THRI with IRQs unmasked");
    mmio_w8(b + 1, 0x02);
    // SAFETY: unmask IRQs; the vector table is installed.
    unsafe { core::arch::asm!("msr daifclr, #2", "isb") };
    for _ in 0..10_000_000 {
        core::hint::spin_loop();
    }
    say!("guest: no UART interrupt arrived");
    psci_reset()
}

// ---------------------------------------------------------------- virtio-blk

const VB: u64 = 0x0300_0000; // the model's virtio-mmio window
const VQ: u64 = 0x8200_0000; // rings and buffers: RAM well away from the image and DTB
/// In a realm: the shared bit, which the virtio-blk checks put on the window
/// and on the rings and buffers (the device reaches only shared memory); 0 outside.
static VSB: AtomicU64 = AtomicU64::new(0);
fn vb() -> u64 {
    VB | VSB.load(Ordering::Relaxed)
}
fn vq() -> u64 {
    VQ | VSB.load(Ordering::Relaxed)
}
/// The driver's feature bits 32-63: VERSION_1, and ACCESS_PLATFORM in a realm.
fn features_hi() -> u32 {
    if VSB.load(Ordering::Relaxed) != 0 {
        3
    } else {
        1
    }
}

fn ram_w(addr: u64, v: u64, size: u32) {
    // SAFETY: guest RAM the test owns (VQ..VQ + 64 KiB), plain stores.
    unsafe {
        match size {
            1 => core::ptr::write_volatile(addr as *mut u8, v as u8),
            2 => core::ptr::write_volatile(addr as *mut u16, v as u16),
            4 => core::ptr::write_volatile(addr as *mut u32, v as u32),
            _ => core::ptr::write_volatile(addr as *mut u64, v),
        }
    }
}
fn ram_r(addr: u64, size: u32) -> u64 {
    // SAFETY: as `ram_w`.
    unsafe {
        match size {
            1 => core::ptr::read_volatile(addr as *const u8) as u64,
            2 => core::ptr::read_volatile(addr as *const u16) as u64,
            _ => core::ptr::read_volatile(addr as *const u32) as u64,
        }
    }
}

/// Resets the device and brings it up with one queue of `num` entries:
/// descriptors at vq(), avail at vq() + 0x1000, used at vq() + 0x2000 (all zeroed).
fn vb_setup(num: u32) {
    mmio_w32(vb() + 0x70, 0);
    for a in (vq()..vq() + 0x1_0000).step_by(8) {
        ram_w(a, 0, 8);
    }
    mmio_w32(vb() + 0x70, 3);
    mmio_w32(vb() + 0x24, 1);
    mmio_w32(vb() + 0x20, features_hi()); // VERSION_1 (+ ACCESS_PLATFORM in a realm)
    mmio_w32(vb() + 0x24, 0);
    mmio_w32(vb() + 0x20, 0);
    mmio_w32(vb() + 0x70, 3 | 8);
    mmio_w32(vb() + 0x30, 0);
    mmio_w32(vb() + 0x38, num);
    for (reg, a) in [(0x80, vq()), (0x90, vq() + 0x1000), (0xa0, vq() + 0x2000)] {
        mmio_w32(vb() + reg, a as u32);
        mmio_w32(vb() + reg + 4, (a >> 32) as u32);
    }
    mmio_w32(vb() + 0x44, 1);
    mmio_w32(vb() + 0x70, 3 | 8 | 4);
}

fn vb_desc(i: u64, addr: u64, len: u32, flags: u16, next: u16) {
    let d = vq() + 16 * i;
    ram_w(d, addr, 8);
    ram_w(d + 8, len as u64, 4);
    ram_w(d + 12, flags as u64, 2);
    ram_w(d + 14, next as u64, 2);
}

/// Offers chain `head` as avail entry `slot`, sets avail idx to `idx`, notifies;
/// returns (device status, used idx).
fn vb_kick(slot: u64, head: u16, idx: u16) -> (u32, u64) {
    ram_w(vq() + 0x1000 + 4 + 2 * slot, head as u64, 2);
    ram_w(vq() + 0x1000 + 2, idx as u64, 2);
    mmio_w32(vb() + 0x50, 0);
    (mmio_r32(vb() + 0x70), ram_r(vq() + 0x2000 + 2, 2))
}

/// A request chain: header (type, sector) at vq() + 0x3000, data at `data`, status
/// byte at vq() + 0x3100.
fn vb_request(typ: u32, sector: u64, data: u64, len: u32, write_data: bool) {
    ram_w(vq() + 0x3000, typ as u64, 4);
    ram_w(vq() + 0x3004, 0, 4);
    ram_w(vq() + 0x3008, sector, 8);
    ram_w(vq() + 0x3100, 0xff, 1);
    vb_desc(0, vq() + 0x3000, 16, 1, 1);
    vb_desc(1, data, len, 1 | if write_data { 2 } else { 0 }, 2);
    vb_desc(2, vq() + 0x3100, 1, 2, 0);
}

/// Hostile and valid requests to the model's virtio-blk: every bad value must
/// put the device in DEVICE_NEEDS_RESET (0x40) without completing anything,
/// and the model must carry on.
fn virtio_hostile_test() -> ! {
    if SMC_CONDUIT.load(Ordering::Relaxed) {
        // A realm: the window at its alias, rings and buffers in shared memory
        // (RIPAS EMPTY, used at the alias), ACCESS_PLATFORM accepted.
        VSB.store(rsi::shared_bit(), Ordering::Relaxed);
        check(
            "virtio: rings and buffers made RIPAS EMPTY",
            rsi::set_empty(VQ, VQ + 0x1_0000),
        );
    }
    check(
        "virtio: magic and version 2",
        mmio_r32(vb()) == 0x7472_6976 && mmio_r32(vb() + 4) == 2,
    );
    check("virtio: block device", mmio_r32(vb() + 8) == 2);
    check(
        "virtio: capacity 2048 sectors",
        mmio_r32(vb() + 0x100) == 2048 && mmio_r32(vb() + 0x104) == 0,
    );

    // A valid write then read of sector 5.
    vb_setup(8);
    let (buf, back) = (vq() + 0x4000, vq() + 0x5000);
    for i in 0..512 {
        ram_w(buf + i, (i * 3 + 1) & 0xff, 1);
    }
    vb_request(1, 5, buf, 512, false);
    let (st, used) = vb_kick(0, 0, 1);
    check(
        "virtio: write completes",
        st & 0x40 == 0 && used == 1 && ram_r(vq() + 0x3100, 1) == 0,
    );
    vb_request(0, 5, back, 512, true);
    let (st, used) = vb_kick(1, 0, 2);
    let same = (0..512).all(|i| ram_r(back + i, 1) == (i * 3 + 1) & 0xff);
    check(
        "virtio: read back what was written",
        st & 0x40 == 0 && used == 2 && same,
    );
    check(
        "virtio: used element = head 0, 513 bytes written",
        ram_r(vq() + 0x2000 + 4 + 8, 4) == 0 && ram_r(vq() + 0x2000 + 8 + 8, 4) == 513,
    );

    // A sector beyond the disk: completes with IOERR, the device stays up.
    vb_setup(8);
    vb_request(0, 2047, back, 1024, true);
    let (st, used) = vb_kick(0, 0, 1);
    check(
        "virtio: out-of-range sector gives IOERR",
        st & 0x40 == 0 && used == 1 && ram_r(vq() + 0x3100, 1) == 1,
    );

    let hostile = |what: &str, num: u32, setup: &dyn Fn(), head: u16, idx: u16| {
        vb_setup(num);
        setup();
        let (st, used) = vb_kick(0, head, idx);
        check(what, st & 0x40 != 0 && used == 0);
    };
    let ok_chain = || vb_request(0, 0, vq() + 0x4000, 512, true);
    hostile("virtio: head index beyond the queue", 8, &ok_chain, 100, 1);
    hostile(
        "virtio: avail index moved by more than the queue",
        8,
        &ok_chain,
        0,
        100,
    );
    hostile("virtio: queue size not a power of two", 3, &ok_chain, 0, 1);
    hostile(
        "virtio: queue size above QueueNumMax",
        1024,
        &ok_chain,
        0,
        1,
    );
    hostile(
        "virtio: buffer outside guest RAM",
        8,
        &|| vb_request(0, 0, 0x1000, 512, true),
        0,
        1,
    );
    hostile(
        "virtio: buffer running past the end of RAM",
        8,
        &|| {
            vb_request(
                0,
                0,
                (0x8400_0000 - 256) | VSB.load(Ordering::Relaxed),
                512,
                true,
            )
        },
        0,
        1,
    );
    hostile(
        "virtio: length that wraps the address space",
        8,
        &|| vb_request(0, 0, vq() + 0x4000, u32::MAX, true),
        0,
        1,
    );
    hostile(
        "virtio: descriptor chain that loops",
        8,
        &|| {
            ok_chain();
            vb_desc(2, vq() + 0x3100, 1, 2 | 1, 0);
        },
        0,
        1,
    );
    hostile(
        "virtio: next index beyond the queue",
        8,
        &|| {
            ok_chain();
            vb_desc(1, vq() + 0x4000, 512, 2 | 1, 9);
        },
        0,
        1,
    );
    hostile(
        "virtio: indirect descriptor (not negotiated)",
        8,
        &|| {
            ok_chain();
            vb_desc(0, vq() + 0x3000, 16, 4, 0);
        },
        0,
        1,
    );
    hostile(
        "virtio: rings outside guest RAM",
        8,
        &|| {
            mmio_w32(vb() + 0x70, 0);
            mmio_w32(vb() + 0x70, 3);
            mmio_w32(vb() + 0x24, 1);
            mmio_w32(vb() + 0x20, features_hi());
            mmio_w32(vb() + 0x70, 3 | 8);
            mmio_w32(vb() + 0x38, 8);
            mmio_w32(vb() + 0x90, 0x10);
            mmio_w32(vb() + 0x94, 0);
            mmio_w32(vb() + 0x44, 1);
            mmio_w32(vb() + 0x70, 3 | 8 | 4);
        },
        0,
        1,
    );
    if VSB.load(Ordering::Relaxed) != 0 {
        // A realm: a buffer at its protected address (no shared bit) is never
        // used; the device counts it and stops.
        hostile(
            "virtio: buffer at a protected address (realm)",
            8,
            &|| vb_request(0, 0, VQ + 0x4000, 512, true),
            0,
            1,
        );
    }
    // Without VERSION_1 the device refuses FEATURES_OK and runs nothing.
    vb_setup(8);
    mmio_w32(vb() + 0x70, 0);
    mmio_w32(vb() + 0x70, 3 | 8);
    let refused = mmio_r32(vb() + 0x70) & 8 == 0;
    mmio_w32(vb() + 0x38, 8);
    mmio_w32(vb() + 0x44, 1);
    mmio_w32(vb() + 0x70, 3 | 8 | 4);
    ok_chain();
    let (_, used) = vb_kick(0, 0, 1);
    check(
        "virtio: features refused, nothing processed",
        refused && used == 0,
    );
    // After a reset the device works again.
    vb_setup(8);
    vb_request(0, 5, back, 512, true);
    let (st, used) = vb_kick(0, 0, 1);
    check(
        "virtio: works again after reset",
        st & 0x40 == 0 && used == 1 && ram_r(vq() + 0x3100, 1) == 0,
    );
    finish()
}

// ---------------------------------------------------------------- virtio-net

/// The model's virtio-net window when it is the only virtio device.
const VN: u64 = 0x0300_0000;
/// Queue `q`'s rings: descriptors, avail, used (q0 receive, q1 transmit).
fn vn_ring(q: u64) -> (u64, u64, u64) {
    let b = VQ + 0x4000 * q;
    (b, b + 0x1000, b + 0x2000)
}
const VN_TX: u64 = VQ + 0x8000;
const VN_RX: u64 = VQ + 0x9000;

/// Resets the device and brings it up with both queues of 8 entries.
fn vn_setup() {
    mmio_w32(VN + 0x70, 0);
    for a in (VQ..VQ + 0x1_0000).step_by(8) {
        ram_w(a, 0, 8);
    }
    mmio_w32(VN + 0x70, 3);
    mmio_w32(VN + 0x24, 1);
    mmio_w32(VN + 0x20, 1); // VERSION_1
    mmio_w32(VN + 0x24, 0);
    mmio_w32(VN + 0x20, 1 << 5); // MAC
    mmio_w32(VN + 0x70, 3 | 8);
    for q in 0..2 {
        let (d, a, u) = vn_ring(q);
        mmio_w32(VN + 0x30, q as u32);
        mmio_w32(VN + 0x38, 8);
        for (reg, x) in [(0x80, d), (0x90, a), (0xa0, u)] {
            mmio_w32(VN + reg, x as u32);
            mmio_w32(VN + reg + 4, (x >> 32) as u32);
        }
        mmio_w32(VN + 0x44, 1);
    }
    mmio_w32(VN + 0x70, 3 | 8 | 4);
}

fn vn_desc(q: u64, i: u64, addr: u64, len: u32, flags: u16, next: u16) {
    let d = vn_ring(q).0 + 16 * i;
    ram_w(d, addr, 8);
    ram_w(d + 8, len as u64, 4);
    ram_w(d + 12, flags as u64, 2);
    ram_w(d + 14, next as u64, 2);
}

/// Offers `head` on queue `q` at avail slot 0 with avail idx `idx`, notifies;
/// returns (device status, used idx of q).
fn vn_kick(q: u64, head: u16, idx: u16) -> (u32, u64) {
    let (_, a, u) = vn_ring(q);
    ram_w(a + 4, head as u64, 2);
    ram_w(a + 2, idx as u64, 2);
    mmio_w32(VN + 0x50, q as u32);
    (mmio_r32(VN + 0x70), ram_r(u + 2, 2))
}

/// An ARP request for the gateway 192.168.33.1 behind a zero virtio_net_hdr, in
/// the transmit buffer; returns its length (12 + 42).
fn vn_arp() -> u32 {
    let f: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0x15, 0x15, 0x15, 0x15, 0x15, 8, 6, 0, 1, 8, 0, 6,
        4, 0, 1, 2, 0x15, 0x15, 0x15, 0x15, 0x15, 192, 168, 33, 15, 0, 0, 0, 0, 0, 0, 192, 168, 33,
        1,
    ];
    for i in 0..12 {
        ram_w(VN_TX + i, 0, 1);
    }
    for (i, b) in f.iter().enumerate() {
        ram_w(VN_TX + 12 + i as u64, *b as u64, 1);
    }
    54
}

/// Hostile and valid use of the model's virtio-net: every bad value must put the
/// device in DEVICE_NEEDS_RESET without completing the bad chain, and the model
/// must carry on.
fn virtio_net_hostile_test() -> ! {
    check(
        "virtio-net: magic, version 2, network card",
        mmio_r32(VN) == 0x7472_6976 && mmio_r32(VN + 4) == 2 && mmio_r32(VN + 8) == 1,
    );
    check(
        "virtio-net: MAC 02:15:15:15:15:15 in config space",
        mmio_r32(VN + 0x100) == 0x1515_1502 && mmio_r32(VN + 0x104) & 0xffff == 0x1515,
    );

    // Valid: a receive buffer, then an ARP request; the reply lands in it.
    vn_setup();
    vn_desc(0, 0, VN_RX, 2048, 2, 0);
    let (st, rxu) = vn_kick(0, 0, 1);
    check(
        "virtio-net: receive buffer posted, nothing yet",
        st & 0x40 == 0 && rxu == 0,
    );
    vn_desc(1, 0, VN_TX, vn_arp(), 0, 0);
    let (st, txu) = vn_kick(1, 0, 1);
    let rx_used = vn_ring(0).2;
    let reply_ok = ram_r(rx_used + 2, 2) == 1
        && ram_r(rx_used + 8, 4) == 54
        && ram_r(VN_RX + 12 + 12, 2) == 0x0608 // ethertype 0x0806
        && ram_r(VN_RX + 12 + 20, 2) == 0x0200 // op 2
        && ram_r(VN_RX + 12 + 22, 4) == 0x0101_0102; // sender MAC 02:01:01:01..
    check(
        "virtio-net: ARP request sent, gateway's reply received (54 bytes)",
        st & 0x40 == 0 && txu == 1 && reply_ok,
    );

    let hostile = |what: &str, q: u64, setup: &dyn Fn(), head: u16, idx: u16| {
        vn_setup();
        setup();
        let (st, used) = vn_kick(q, head, idx);
        check(what, st & 0x40 != 0 && used == 0);
    };
    let arp = || vn_desc(1, 0, VN_TX, vn_arp(), 0, 0);
    hostile("virtio-net: transmit head beyond the queue", 1, &arp, 50, 1);
    hostile("virtio-net: transmit avail index jumps", 1, &arp, 0, 40);
    hostile(
        "virtio-net: device-writable transmit buffer",
        1,
        &|| vn_desc(1, 0, VN_TX, vn_arp(), 2, 0),
        0,
        1,
    );
    hostile(
        "virtio-net: transmit chain longer than a frame",
        1,
        &|| vn_desc(1, 0, VN_TX, 12 + 1515, 0, 0),
        0,
        1,
    );
    hostile(
        "virtio-net: transmit chain shorter than the header",
        1,
        &|| vn_desc(1, 0, VN_TX, 4, 0, 0),
        0,
        1,
    );
    hostile(
        "virtio-net: transmit buffer outside guest RAM",
        1,
        &|| vn_desc(1, 0, 0x1000, 54, 0, 0),
        0,
        1,
    );
    hostile(
        "virtio-net: transmit chain that loops",
        1,
        &|| {
            vn_arp();
            vn_desc(1, 0, VN_TX, 12, 1, 1);
            vn_desc(1, 1, VN_TX + 12, 42, 1, 0);
        },
        0,
        1,
    );
    // A reply waiting for a receive buffer that cannot hold it, or is read-only:
    // the transmit completes, the receive never does.
    for (what, len, flags) in [
        ("virtio-net: receive buffer too small for the reply", 40, 2),
        ("virtio-net: read-only receive buffer", 2048, 0),
    ] {
        vn_setup();
        arp();
        let (_, txu) = vn_kick(1, 0, 1);
        vn_desc(0, 0, VN_RX, len, flags, 0);
        let (st, rxu) = vn_kick(0, 0, 1);
        check(what, txu == 1 && st & 0x40 != 0 && rxu == 0);
    }
    // A datagram not for the gateway's echo port is dropped, the device stays up.
    vn_setup();
    vn_desc(0, 0, VN_RX, 2048, 2, 0);
    vn_kick(0, 0, 1);
    vn_arp();
    ram_w(VN_TX + 12 + 41, 99, 1); // ARP for 192.168.33.99: nobody answers
    vn_desc(1, 0, VN_TX, 54, 0, 0);
    let (st, txu) = vn_kick(1, 0, 1);
    check(
        "virtio-net: ARP for another address: sent, no reply",
        st & 0x40 == 0 && txu == 1 && ram_r(rx_used + 2, 2) == 0,
    );
    // After a reset the device works again.
    vn_setup();
    vn_desc(0, 0, VN_RX, 2048, 2, 0);
    vn_kick(0, 0, 1);
    arp();
    let (st, txu) = vn_kick(1, 0, 1);
    check(
        "virtio-net: works again after reset",
        st & 0x40 == 0 && txu == 1 && ram_r(rx_used + 2, 2) == 1,
    );
    finish()
}
