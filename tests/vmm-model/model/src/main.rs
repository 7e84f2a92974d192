//! A small EL2 hypervisor that presents kvmtool's arm64 machine (and, in
//! realm mode, TF-RMM's realm ABI) to one guest, under QEMU
//! `virt,virtualization=on`. See ../README.md.

#![no_std]
#![no_main]

mod config;
mod devices;
mod dtb;
#[path = "../../common/fdt_read.rs"]
#[allow(dead_code)]
mod fdt_read;
mod layout;
#[path = "../../common/net_gateway.rs"]
mod net_gateway;
mod realm;
mod s2;
#[path = "../../common/sha256.rs"]
mod sha256;
#[path = "../../common/sha512.rs"]
mod sha512;
mod sys;
mod token;
mod virtio;
mod virtio_net;
mod virtio_pci;
#[path = "../../common/virtio_pci.rs"]
mod virtio_pci_common;

use config::{Config, Misbehave};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use sys::{log, mrs, msr};

core::arch::global_asm!(include_str!("entry.S"));

pub const MAX_CPUS: usize = 8;

/// Exit statuses of the QEMU process (see README.md).
pub mod status {
    pub const SYSTEM_OFF: u32 = 0;
    pub const SYSTEM_RESET: u32 = 10;
    pub const GUEST_EXCEPTION: u32 = 11;
    pub const MMIO_NO_SYNDROME: u32 = 12;
    pub const TIMEOUT: u32 = 13;
    pub const MODEL_ERROR: u32 = 14;
    pub const CONFIG_ERROR: u32 = 15;
    pub const REALM_FATAL: u32 = 16;
}

/// A vCPU's general-purpose registers, saved by the vectors in entry.S
/// (offsets 0..248 are fixed by that code).
#[repr(C)]
pub struct VCpu {
    pub x: [u64; 31],
    pub idx: usize,
    /// Last exception-vector address the model injected into (loop check).
    pub last_inject: u64,
    pub entry: u64,
    pub ctx: u64,
}

const PSCI_OFF: u32 = 0;
const PSCI_ON: u32 = 1;
const PSCI_PENDING: u32 = 2;

static CPU_STATE: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(PSCI_OFF) }; MAX_CPUS];
static mut VCPUS: [VCpu; MAX_CPUS] = [const {
    VCpu {
        x: [0; 31],
        idx: 0,
        last_inject: u64::MAX,
        entry: 0,
        ctx: 0,
    }
}; MAX_CPUS];

/// Set once by the boot CPU before any guest runs, then read-only.
static mut CONFIG: Option<Config> = None;
static mut STAGE2: Option<s2::Stage2> = None;
static DEADLINE: AtomicU64 = AtomicU64::new(u64::MAX);

pub fn cfg() -> &'static Config {
    match try_cfg() {
        Some(c) => c,
        None => fatal(format_args!("config used before set")),
    }
}

/// The config, or `None` before it is set (for the stop path, which runs on
/// config errors too and must not recurse into [`fatal`]).
pub fn try_cfg() -> Option<&'static Config> {
    // SAFETY: CONFIG is written once by the boot CPU before guests start.
    unsafe { (*core::ptr::addr_of!(CONFIG)).as_ref() }
}

pub fn stage2() -> &'static s2::Stage2 {
    // SAFETY: as `cfg`; stage-2 updates are serialised by the realm lock.
    match unsafe { (*core::ptr::addr_of!(STAGE2)).as_ref() } {
        Some(s) => s,
        None => fatal(format_args!("stage 2 used before set")),
    }
}

pub fn stop(code: u32, why: core::fmt::Arguments) -> ! {
    log!("{}", why);
    realm::print_counters();
    log!("exit status {}", code);
    sys::exit(code)
}

pub fn fatal(why: core::fmt::Arguments) -> ! {
    stop(status::MODEL_ERROR, format_args!("MODEL ERROR: {}", why))
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    log!("MODEL PANIC: {}", info);
    sys::exit(status::MODEL_ERROR)
}

#[unsafe(no_mangle)]
extern "C" fn rust_model_fault(kind: u64, sp: u64) -> ! {
    let esr = mrs!("esr_el2");
    let elr = mrs!("elr_el2");
    let far = mrs!("far_el2");
    fatal(format_args!(
        "exception in the model: vector {} esr={:#x} elr={:#x} far={:#x} sp={:#x}",
        kind, esr, elr, far, sp
    ))
}

fn read_qemu_args() -> &'static str {
    // SAFETY: QEMU places its DTB at the start of RAM for a bare ELF; it is
    // never written afterwards.
    let fdt = match unsafe { fdt_read::Fdt::from_addr(layout::QEMU_DTB) } {
        Some(f) => f,
        None => fatal(format_args!("no QEMU DTB at {:#x}", layout::QEMU_DTB)),
    };
    let qemu_mem = fdt
        .prop("/memory", "reg")
        .and_then(|r| fdt_read::cell64(r, 1))
        .unwrap_or(0);
    QEMU_MEM.store(qemu_mem, Ordering::Relaxed);
    fdt.prop_str("/chosen", "bootargs").unwrap_or("")
}
static QEMU_MEM: AtomicU64 = AtomicU64::new(0);

#[unsafe(no_mangle)]
extern "C" fn rust_entry(cpu: usize, current_el: u64) -> ! {
    if cpu == 0 {
        s2::el2_mmu_on();
    } else {
        s2::el2_mmu_enable_secondary();
    }
    if (current_el >> 2) & 3 != 2 {
        fatal(format_args!(
            "model entered at EL{}, needs EL2",
            (current_el >> 2) & 3
        ));
    }
    if cpu == 0 {
        boot_primary()
    } else {
        boot_secondary(cpu)
    }
}

fn boot_primary() -> ! {
    let args = read_qemu_args();
    let c = match Config::parse(args) {
        Ok(c) => c,
        Err(e) => stop(
            status::CONFIG_ERROR,
            format_args!("bad model arguments ({}): {:?}", e, args),
        ),
    };
    let need = layout::GUEST_RAM_PA - layout::QEMU_RAM + c.mem_bytes();
    if QEMU_MEM.load(Ordering::Relaxed) < need {
        stop(
            status::CONFIG_ERROR,
            format_args!("QEMU -m too small: need {} MiB", need >> 20),
        );
    }
    if c.img_addr < layout::STAGING || c.img_addr + c.img_size > layout::STAGING_END {
        stop(
            status::CONFIG_ERROR,
            format_args!("image staging area out of range"),
        );
    }
    // SAFETY: single-threaded here (no other CPU is on yet).
    unsafe { *core::ptr::addr_of_mut!(CONFIG) = Some(c) };
    let c = cfg();
    virtio_pci::init();
    if !virtio::init(c.virtio_blk_kib, c.img_addr + c.img_size) {
        stop(
            status::CONFIG_ERROR,
            format_args!("virtio-blk disk does not fit above the staged image"),
        );
    }
    log!(
        "{}{} machine: {} MiB RAM at {:#x}, {} vCPU(s), IPA {} bits{}",
        match c.profile {
            config::Profile::Kvmtool => "kvmtool",
            config::Profile::Fc17 => "firecracker-1.7",
            config::Profile::Fc116 => "firecracker-1.16",
        },
        if c.realm { "-cca realm" } else { "" },
        c.mem_mib,
        c.ram_dt_base(),
        c.cpus,
        c.ipa_bits,
        if c.misbehave != Misbehave::None {
            ", host misbehaving"
        } else {
            ""
        }
    );
    if c.timeout_s != 0 {
        let f = mrs!("cntfrq_el0");
        DEADLINE.store(sys::now_ticks() + c.timeout_s * f, Ordering::Relaxed);
    }

    // ---- load the image as kvmtool does
    let ram = layout::RAM_IPA;
    let ram_size = c.mem_bytes();
    let limit = ram + ram_size.min(256 << 20) - 1;
    // SAFETY: the staging area was filled by QEMU's loader device and is
    // inside QEMU RAM (checked above).
    let img = unsafe { core::slice::from_raw_parts(c.img_addr as *const u8, c.img_size as usize) };
    let mut text_offset = 0x8_0000u64;
    let mut hdr_image_size = 0u64;
    if img.len() >= 64 && &img[56..60] == b"ARM\x64" {
        let le = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&img[o..o + 8]);
            u64::from_le_bytes(a)
        };
        hdr_image_size = le(16);
        if hdr_image_size != 0 {
            text_offset = le(8);
        }
    }
    // Firecracker >= 1.9 starts RAM (and the Image) 2 MiB higher.
    let kern = if c.misbehave == Misbehave::LoadAtRamBase {
        c.ram_dt_base()
    } else {
        c.ram_dt_base() + text_offset
    };
    if kern + c.img_size > limit {
        stop(
            status::CONFIG_ERROR,
            format_args!("kernel image too big to contain in guest memory"),
        );
    }
    let dst = (kern - ram + layout::GUEST_RAM_PA) as *mut u8;
    // SAFETY: destination is guest RAM (QEMU RAM, checked above), disjoint
    // from the staging area.
    unsafe { core::ptr::copy_nonoverlapping(img.as_ptr(), dst, img.len()) };
    log!("loaded kernel to {:#x} ({} bytes)", kern, img.len());

    // ---- the DTB
    let mut dtb_addr =
        (limit - (dtb::FDT_MAX_SIZE as u64 + (2 << 20)) + (2 << 20) - 1) & !((2 << 20) - 1);
    if c.misbehave == Misbehave::DtbOverlapImage {
        // Inside the image's memory footprint (header image_size), just
        // after the file: where the guest's .bss lies.
        dtb_addr = (kern + c.img_size + 0xfff) & !0xfff;
    } else if dtb_addr < kern + c.img_size {
        stop(
            status::CONFIG_ERROR,
            format_args!("fdt overlaps with kernel image"),
        );
    }
    let mut buf = [0u8; dtb::FDT_MAX_SIZE];
    let Some(dtb_size) = dtb::build(c, &mut buf) else {
        fatal(format_args!("DTB too large"))
    };
    let ddst = (dtb_addr - ram + layout::GUEST_RAM_PA) as *mut u8;
    // SAFETY: destination is guest RAM.
    unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr(), ddst, dtb_size) };
    log!("placing fdt at {:#x} ({} bytes)", dtb_addr, dtb_size);
    if let Some(p) = c.dump_path()
        && !sys::write_host_file(p, &buf[..dtb_size])
    {
        fatal(format_args!("cannot write the DTB dump file"));
    }

    // ---- stage 2
    // SAFETY: single-threaded here.
    unsafe { *core::ptr::addr_of_mut!(STAGE2) = Some(s2::Stage2::new(c.ipa_bits)) };
    let s2 = stage2();
    let sb = c.shared_bit();
    // GIC pass-through (at the alias in a realm: the RMM's GIC emulation is
    // not modelled, the host's GIC is reached through unprotected IPAs).
    let n = c.cpus as u64;
    let gicr = layout::GICD_IPA - n * layout::GICR_STRIDE;
    let gits = gicr - layout::GITS_SIZE;
    s2.map_range(
        sb | layout::GICD_IPA,
        layout::QEMU_GICD,
        layout::GICD_SIZE,
        s2::DEVICE,
        true,
    );
    s2.map_range(
        sb | gicr,
        layout::QEMU_GICR,
        n * layout::GICR_STRIDE,
        s2::DEVICE,
        true,
    );
    s2.map_range(
        sb | gits,
        layout::QEMU_GITS,
        layout::GITS_SIZE,
        s2::DEVICE,
        true,
    );
    if c.realm {
        realm::init(
            c,
            kern,
            c.img_size.max(hdr_image_size),
            dtb_addr,
            &buf[..dtb_size],
        );
    } else {
        s2.map_range(ram, layout::GUEST_RAM_PA, ram_size, s2::NORMAL, false);
    }
    s2::tlb_flush_guest();

    // SAFETY: only this CPU touches its own VCpu.
    let v = unsafe { &mut (*core::ptr::addr_of_mut!(VCPUS))[0] };
    v.x = [0; 31];
    v.x[0] = dtb_addr;
    CPU_STATE[0].store(PSCI_ON, Ordering::SeqCst);
    log!("entering guest at {:#x}, x0={:#x}", kern, dtb_addr);
    enter_guest(0, kern)
}

fn boot_secondary(cpu: usize) -> ! {
    // SAFETY: only this CPU touches its own VCpu.
    let v = unsafe { &mut (*core::ptr::addr_of_mut!(VCPUS))[cpu] };
    let (entry, ctx) = (v.entry, v.ctx);
    v.x = [0; 31];
    v.x[0] = ctx;
    CPU_STATE[cpu].store(PSCI_ON, Ordering::SeqCst);
    enter_guest(cpu, entry)
}

unsafe extern "C" {
    fn guest_resume(v: *mut VCpu) -> !;
    fn secondary_entry();
}

/// Sets up EL2 and the guest's EL1 state for vCPU `cpu` and enters it at
/// `pc` in EL1h with DAIF masked, MMU and caches off.
fn enter_guest(cpu: usize, pc: u64) -> ! {
    let c = cfg();
    let s2 = stage2();
    // SAFETY: only this CPU touches its own VCpu.
    let v = unsafe { &mut (*core::ptr::addr_of_mut!(VCPUS))[cpu] };
    v.idx = cpu;
    v.last_inject = u64::MAX;
    msr!("tpidr_el2", v as *mut VCpu as u64);
    // HCR_EL2: VM, TSC (SMC traps), RW (EL1 is AArch64), APK|API (no
    // pointer-auth traps). IMO/FMO/AMO clear: the guest owns the physical
    // GIC CPU interface and takes its interrupts directly.
    msr!("hcr_el2", 1 | (1 << 19) | (1 << 31) | (1 << 40) | (1 << 41));
    msr!("vtcr_el2", s2.vtcr());
    msr!("vttbr_el2", s2.root | (1 << 48));
    // CPTR_EL2: RES1 bits only: FP/SIMD, SVE and SME not trapped to EL2.
    msr!("cptr_el2", 0x22ff);
    msr!("cnthctl_el2", 0b11); // EL1PCTEN | EL1PCEN
    msr!("cntvoff_el2", 0);
    msr!("cnthp_ctl_el2", 0);
    msr!("vpidr_el2", mrs!("midr_el1"));
    msr!("vmpidr_el2", (1 << 31) | cpu as u64);
    // ICC_SRE_EL2: SRE, DFB, DIB, Enable (EL1 may use the system registers).
    msr!("icc_sre_el2", 0xf);
    msr!("ich_hcr_el2", 0);
    msr!("mdcr_el2", mrs!("mdcr_el2") & 0x1f); // keep HPMN, no debug traps
    // Features whose EL1 use needs EL2 consent, enabled as KVM enables them
    // for a guest that sees them: HCRX_EL2.MSCEn (memcpy/memset
    // instructions), TCR2En and SCTLR2En; and the largest SVE/SME vector
    // lengths (ZCR_EL2/SMCR_EL2.LEN, clamped by the CPU).
    if (mrs!("id_aa64mmfr1_el1") >> 40) & 0xf != 0 {
        msr!("S3_4_C1_C2_2", (1 << 11) | (1 << 14) | (1 << 15)); // HCRX_EL2
    }
    if (mrs!("id_aa64pfr0_el1") >> 32) & 0xf != 0 {
        msr!("S3_4_C1_C2_0", 0xf); // ZCR_EL2
    }
    if (mrs!("id_aa64pfr1_el1") >> 24) & 0xf != 0 {
        msr!("S3_4_C1_C2_6", 0xf); // SMCR_EL2
    }
    // Guest EL1 state at reset.
    // KVM's reset value; in a realm TF-RMM's SCTLR_EL1_FLAGS (SA, SA0,
    // CP15BEN, nAA, EOS, nTWI, nTWE, EIS, SPAN). M = C = I = 0 in both.
    msr!("sctlr_el1", if c.realm { 0x00c5_0878 } else { 0x00c5_0078 });
    msr!("cpacr_el1", 0);
    msr!("tcr_el1", 0);
    msr!("mair_el1", 0);
    msr!("ttbr0_el1", 0);
    msr!("ttbr1_el1", 0);
    msr!("vbar_el1", 0);
    msr!("sp_el1", 0);
    msr!("sp_el0", 0);
    msr!("cntkctl_el1", 0);
    msr!("cntv_ctl_el0", 0);
    msr!("cntp_ctl_el0", 0);
    msr!("tpidr_el1", 0);
    msr!("tpidr_el0", 0);
    msr!("elr_el1", 0);
    msr!("spsr_el1", 0);
    msr!("esr_el1", 0);
    msr!("far_el1", 0);
    msr!("elr_el2", pc);
    msr!("spsr_el2", 0x3c5);
    s2::tlb_flush_guest();
    // SAFETY: all EL2 state for the guest is set; guest_resume loads the
    // registers from `v` and returns to EL1.
    unsafe { guest_resume(v) }
}

// ---------------------------------------------------------------- traps

pub const EC_UNKNOWN: u64 = 0x00;
const EC_HVC64: u64 = 0x16;
const EC_SMC64: u64 = 0x17;
const EC_IABT_LOW: u64 = 0x20;
const EC_DABT_LOW: u64 = 0x24;

pub static EXITS: AtomicU64 = AtomicU64::new(0);

#[unsafe(no_mangle)]
extern "C" fn rust_trap(v: &mut VCpu, kind: u64) {
    EXITS.fetch_add(1, Ordering::Relaxed);
    if sys::now_ticks() > DEADLINE.load(Ordering::Relaxed) {
        stop(
            status::TIMEOUT,
            format_args!("TIMEOUT: guest still running after {} s", cfg().timeout_s),
        );
    }
    devices::poll();
    let esr = mrs!("esr_el2");
    let elr = mrs!("elr_el2");
    if kind != 0 {
        stop(
            status::GUEST_EXCEPTION,
            format_args!(
                "UNEXPECTED {} from the guest at EL2 (esr={:#x} pc={:#x})",
                ["sync", "IRQ", "FIQ", "SError"][kind as usize & 3],
                esr,
                elr
            ),
        );
    }
    let ec = esr >> 26;
    match ec {
        EC_HVC64 => {
            if cfg().realm {
                // HVC is UNDEFINED in a realm. As TF-RMM's
                // realm_inject_undef_abort, ELR_EL1 = ELR_EL2 of the HVC trap:
                // the instruction after the HVC.
                realm::count_hvc();
                inject_undef(v, elr);
            } else if esr & 0xffff != 0 {
                v.x[0] = u64::MAX;
            } else {
                smccc_call(v, false);
            }
        }
        EC_SMC64 => {
            msr!("elr_el2", elr + 4);
            if esr & 0xffff != 0 {
                v.x[0] = u64::MAX;
            } else if cfg().realm {
                if !realm::rsi_call(v) {
                    smccc_call(v, true);
                }
            } else {
                smccc_call(v, false);
            }
        }
        EC_DABT_LOW => data_abort(v, esr, elr),
        EC_IABT_LOW => {
            let ipa = fault_ipa();
            if cfg().realm && realm::instruction_abort(v, esr, ipa) {
                return;
            }
            stop(
                status::GUEST_EXCEPTION,
                format_args!(
                    "GUEST EXCEPTION: instruction fetch from IPA {:#x} (no RAM) at pc={:#x} esr={:#x}",
                    ipa, elr, esr
                ),
            )
        }
        _ => stop(
            status::GUEST_EXCEPTION,
            format_args!(
                "GUEST EXCEPTION: unhandled trap to EL2, EC={:#x} esr={:#x} pc={:#x} far={:#x}",
                ec,
                esr,
                elr,
                mrs!("far_el2")
            ),
        ),
    }
}

pub fn fault_ipa() -> u64 {
    ((mrs!("hpfar_el2") >> 4) << 12) | (mrs!("far_el2") & 0xfff)
}

fn data_abort(v: &mut VCpu, esr: u64, elr: u64) {
    let ipa = fault_ipa();
    let dfsc = esr & 0x3f;
    let s1ptw = esr & (1 << 7) != 0;
    let c = cfg();
    if c.realm && realm::data_abort_filter(v, esr, ipa) {
        return;
    }
    if s1ptw || !(0x04..=0x07).contains(&dfsc) {
        stop(
            status::GUEST_EXCEPTION,
            format_args!(
                "GUEST EXCEPTION: stage-2 data abort the model cannot handle at IPA {:#x} (dfsc={:#x}, s1ptw={}) pc={:#x}",
                ipa, dfsc, s1ptw, elr
            ),
        );
    }
    // Cache maintenance by VA on an address with no memory: KVM skips the
    // instruction (there is nothing to clean or invalidate).
    if esr & (1 << 8) != 0 {
        msr!("elr_el2", elr + 4);
        return;
    }
    // MMIO: the hardware syndrome must describe the access (ISV), else
    // KVM cannot emulate it.
    if esr & (1 << 24) == 0 {
        stop(
            status::MMIO_NO_SYNDROME,
            format_args!(
                "MMIO WITHOUT SYNDROME (ISV=0) at IPA {:#x}, pc={:#x}, esr={:#x}: KVM cannot emulate this access \
                 (ldp/stp, writeback, SIMD, atomics or exclusives on device memory)",
                ipa, elr, esr
            ),
        );
    }
    let sas = (esr >> 22) & 3;
    let size = 1u64 << sas;
    let sse = esr & (1 << 21) != 0;
    let srt = ((esr >> 16) & 0x1f) as usize;
    let sf = esr & (1 << 15) != 0;
    let write = esr & (1 << 6) != 0;
    let addr = ipa & !c.shared_bit();
    if write {
        let val = if srt == 31 { 0 } else { v.x[srt] };
        let val = if size == 8 {
            val
        } else {
            val & ((1u64 << (size * 8)) - 1)
        };
        devices::mmio_write(addr, size, val);
    } else {
        let mut val = devices::mmio_read(addr, size);
        if sse && size < 8 {
            let sh = 64 - size * 8;
            val = (((val << sh) as i64) >> sh) as u64;
        }
        if !sf {
            val &= 0xffff_ffff;
        }
        if srt != 31 {
            v.x[srt] = val;
        }
    }
    msr!("elr_el2", elr + 4);
}

/// Injects an exception into EL1 as the architecture takes it: ESR/FAR/ELR/
/// SPSR_EL1 set, PC at the right VBAR_EL1 offset, DAIF masked.
pub fn inject_sync(v: &mut VCpu, esr: u64, far: Option<u64>, pc: u64) {
    let spsr = mrs!("spsr_el2");
    let from_el0 = spsr & 0xc == 0;
    let off = if from_el0 {
        0x400
    } else if spsr & 1 == 1 {
        0x200
    } else {
        0
    };
    let target = mrs!("vbar_el1") + off;
    if v.last_inject == target && pc == target {
        stop(
            status::GUEST_EXCEPTION,
            format_args!(
                "GUEST EXCEPTION: the guest faulted in its own exception vector at {:#x}",
                pc
            ),
        );
    }
    v.last_inject = target;
    let mut esr = esr;
    if from_el0 {
        // lower-EL variants of the exception classes
        let ec = esr >> 26;
        if ec == 0x25 || ec == 0x21 {
            esr = (esr & !(0x3f << 26)) | ((ec - 1) << 26);
        }
    }
    msr!("esr_el1", esr);
    if let Some(f) = far {
        msr!("far_el1", f);
    }
    msr!("elr_el1", pc);
    msr!("spsr_el1", spsr);
    msr!("elr_el2", target);
    msr!("spsr_el2", 0x3c5);
}

pub fn inject_undef(v: &mut VCpu, pc: u64) {
    inject_sync(v, 1 << 25, None, pc);
}

// ---------------------------------------------------------------- PSCI

const PSCI_VERSION: u64 = 0x8400_0000;
const PSCI_CPU_SUSPEND: u64 = 0x8400_0001;
const PSCI_CPU_OFF: u64 = 0x8400_0002;
const PSCI_CPU_ON: u64 = 0x8400_0003;
const PSCI_AFFINITY_INFO: u64 = 0x8400_0004;
const PSCI_MIGRATE_INFO_TYPE: u64 = 0x8400_0006;
const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
const PSCI_SYSTEM_RESET: u64 = 0x8400_0009;
const PSCI_FEATURES: u64 = 0x8400_000a;
const SMCCC_VERSION: u64 = 0x8000_0000;
const SMCCC_ARCH_FEATURES: u64 = 0x8000_0001;

const NOT_SUPPORTED: u64 = -1i64 as u64;
const INVALID_PARAMETERS: u64 = -2i64 as u64;
const ALREADY_ON: u64 = -4i64 as u64;
const ON_PENDING: u64 = -5i64 as u64;

fn smc_to_qemu(fid: u64, a1: u64, a2: u64, a3: u64) -> u64 {
    let r: u64;
    // SAFETY: QEMU (no EL3, virtualization=on) implements PSCI on SMC from EL2.
    unsafe {
        core::arch::asm!("smc #0", inout("x0") fid => r, inout("x1") a1 => _, inout("x2") a2 => _,
            inout("x3") a3 => _, options(nostack));
    }
    r
}

/// The PSCI functions answered: KVM's PSCI 1.1 set (32-bit IDs, plus the
/// 64-bit forms of the calls that take addresses), or TF-RMM's (the same
/// without MIGRATE_INFO_TYPE; runtime/rsi/psci.c).
fn psci_supported(fid: u64, realm: bool) -> bool {
    const SMC64: u64 = 0x4000_0000;
    match fid {
        PSCI_VERSION | PSCI_CPU_SUSPEND | PSCI_CPU_OFF | PSCI_CPU_ON | PSCI_AFFINITY_INFO
        | PSCI_SYSTEM_OFF | PSCI_SYSTEM_RESET | PSCI_FEATURES => true,
        PSCI_MIGRATE_INFO_TYPE => !realm,
        f if f == PSCI_CPU_SUSPEND | SMC64
            || f == PSCI_CPU_ON | SMC64
            || f == PSCI_AFFINITY_INFO | SMC64 =>
        {
            true
        }
        _ => false,
    }
}

/// PSCI and SMCCC calls, as KVM (normal mode) or the RMM (realm) answers them.
fn smccc_call(v: &mut VCpu, realm: bool) {
    // The SMCCC 1.3 SVE hint (bit 16) is ignored, as TF-RMM and KVM do.
    let fid = v.x[0] & 0xfffe_ffff;
    realm::count_psci(realm);
    let f = fid & !0x4000_0000;
    let ret = match (fid, f) {
        // KVM reports SMCCC 1.1, TF-RMM 1.2.
        (SMCCC_VERSION, _) => {
            if realm {
                0x1_0002
            } else {
                0x1_0001
            }
        }
        (SMCCC_ARCH_FEATURES, _) => NOT_SUPPORTED,
        _ if !psci_supported(fid, realm) => NOT_SUPPORTED,
        (_, PSCI_VERSION) => 0x1_0001, // PSCI 1.1
        (_, PSCI_FEATURES) => {
            let q = v.x[1] & 0xffff_ffff;
            if psci_supported(q, realm) || q == SMCCC_VERSION {
                0
            } else {
                NOT_SUPPORTED
            }
        }
        (_, PSCI_CPU_SUSPEND) => 0,
        (_, PSCI_MIGRATE_INFO_TYPE) => 2, // no migration needed
        (_, PSCI_SYSTEM_OFF) => stop(status::SYSTEM_OFF, format_args!("guest: PSCI SYSTEM_OFF")),
        (_, PSCI_SYSTEM_RESET) => stop(
            status::SYSTEM_RESET,
            format_args!("guest: PSCI SYSTEM_RESET"),
        ),
        (_, PSCI_CPU_OFF) => {
            CPU_STATE[v.idx].store(PSCI_OFF, Ordering::SeqCst);
            smc_to_qemu(PSCI_CPU_OFF, 0, 0, 0);
            fatal(format_args!("QEMU PSCI CPU_OFF returned"))
        }
        (_, PSCI_CPU_ON) => {
            let mpidr = v.x[1] & 0xff_00ff_ffff;
            let target = mpidr as usize;
            if target >= cfg().cpus {
                INVALID_PARAMETERS
            } else if realm && (v.x[2] >= 1 << (cfg().ipa_bits - 1)) {
                -9i64 as u64 // INVALID_ADDRESS: entry outside the protected space
            } else {
                match CPU_STATE[target].compare_exchange(
                    PSCI_OFF,
                    PSCI_PENDING,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                ) {
                    Err(PSCI_ON) => ALREADY_ON,
                    Err(_) => ON_PENDING,
                    Ok(_) => {
                        // SAFETY: the target CPU is off; nobody else uses its VCpu.
                        let t = unsafe { &mut (*core::ptr::addr_of_mut!(VCPUS))[target] };
                        t.entry = v.x[2];
                        t.ctx = v.x[3];
                        let r = smc_to_qemu(
                            0xc400_0003,
                            target as u64,
                            secondary_entry as *const () as u64,
                            target as u64,
                        );
                        if r != 0 {
                            CPU_STATE[target].store(PSCI_OFF, Ordering::SeqCst);
                            log!("QEMU PSCI CPU_ON({}) failed: {:#x}", target, r);
                        }
                        r
                    }
                }
            }
        }
        (_, PSCI_AFFINITY_INFO) => {
            // Levels 1..3 ask about the whole cluster (all vCPUs share
            // Aff1..Aff3 = 0 here); level 0 about one vCPU.
            let level = v.x[2];
            let target = (v.x[1] & 0xff_00ff_ffff) as usize;
            let n = cfg().cpus;
            let states = |r: core::ops::Range<usize>| {
                let mut st = 1; // OFF
                for s in &CPU_STATE[r] {
                    match s.load(Ordering::SeqCst) {
                        PSCI_ON => return 0,
                        PSCI_PENDING => st = 2,
                        _ => {}
                    }
                }
                st
            };
            if level > 3 {
                INVALID_PARAMETERS
            } else if level == 0 {
                if target >= n {
                    INVALID_PARAMETERS
                } else {
                    states(target..target + 1)
                }
            } else if (target >> 8) != 0 {
                INVALID_PARAMETERS
            } else {
                states(0..n)
            }
        }
        _ => NOT_SUPPORTED,
    };
    // KVM and TF-RMM both write x0..x3 (results, then zeros).
    v.x[0] = ret;
    v.x[1] = 0;
    v.x[2] = 0;
    v.x[3] = 0;
}
