//! A minimal GICv3 for the realm, as KVM's vGIC presents it at kvmtool's
//! addresses: distributor and redistributor registers (emulated MMIO through
//! the unprotected alias) and delivery of the EL1 timer PPIs through the REC's
//! list registers (RMI 1.0: the REC entry's gicv3_lrs; RMI 2.0: the host's own
//! ICH_LR<n>_EL2, which TF-RMM v0.9.0 leaves live while Plane 0 runs). SPIs,
//! SGIs between RECs, LPIs and the ITS are not emulated.

use crate::sys::{isb, mrs, msr};

pub const GICD_IPA: u64 = 0x3fff_0000;
const GICD_SIZE: u64 = 0x1_0000;
const GICR_STRIDE: u64 = 0x2_0000;
pub const MAX_CPUS: usize = 8;
const VTIMER_PPI: u32 = 27;
const PTIMER_PPI: u32 = 30;

const LR_STATE_PENDING: u64 = 1 << 62;
const LR_STATE_MASK: u64 = 3 << 62;
const LR_GROUP1: u64 = 1 << 60;

#[derive(Clone, Copy)]
struct Redist {
    ctlr: u32,
    waker: u32,
    igroupr0: u32,
    enabled: u32,
    pending: u32,
    active: u32,
    icfgr1: u32,
    prio: [u8; 32],
}

pub struct VGic {
    cpus: usize,
    nr_lrs: usize,
    gicd_ctlr: u32,
    gicr: [Redist; MAX_CPUS],
    /// The list registers each REC returned at its last exit.
    lrs: [[u64; 16]; MAX_CPUS],
    /// RMI 2.0: each REC's ICH_VMCR_EL2 and ICH_AP{0,1}R0_EL2 (the RECs share
    /// the one CPU interface, and the host owns it).
    vmcr: [u64; MAX_CPUS],
    aprs: [(u64, u64); MAX_CPUS],
    pub injected: u64,
}

/// TIMER_ASSERTED: ENABLE and ISTATUS set, IMASK clear.
fn asserted(ctl: u64) -> bool {
    ctl & 0b111 == 0b101
}

impl VGic {
    pub const fn new() -> Self {
        VGic {
            cpus: 1,
            nr_lrs: 1,
            gicd_ctlr: 0,
            gicr: [Redist {
                ctlr: 0,
                waker: 0b110, // ProcessorSleep | ChildrenAsleep
                igroupr0: 0,
                enabled: 0,
                pending: 0,
                active: 0,
                icfgr1: 0,
                prio: [0; 32],
            }; MAX_CPUS],
            lrs: [[0; 16]; MAX_CPUS],
            vmcr: [0; MAX_CPUS],
            aprs: [(0, 0); MAX_CPUS],
            injected: 0,
        }
    }

    pub fn init(&mut self, cpus: usize, nr_lrs: usize) {
        self.cpus = cpus.min(MAX_CPUS);
        self.nr_lrs = nr_lrs.clamp(1, 16);
    }

    fn gicr_base(&self) -> u64 {
        GICD_IPA - self.cpus as u64 * GICR_STRIDE
    }

    /// Whether `a` (an IPA without the shared bit) is a GIC register.
    pub fn claims(&self, a: u64) -> bool {
        (self.gicr_base()..GICD_IPA + GICD_SIZE).contains(&a)
    }

    /// An emulated access; returns the value of a read.
    pub fn mmio(&mut self, a: u64, write: bool, val: u64, size: u64) -> u64 {
        if a >= GICD_IPA {
            self.gicd(a - GICD_IPA, write, val as u32) as u64
        } else {
            let off = a - self.gicr_base();
            let cpu = (off / GICR_STRIDE) as usize;
            self.gicr(cpu, off % GICR_STRIDE, write, val, size)
        }
    }

    fn gicd(&mut self, off: u64, write: bool, val: u32) -> u32 {
        match (off, write) {
            (0x0, true) => {
                // ARE is RAO/WI in a single security state with affinity routing.
                self.gicd_ctlr = (val & 0x3) | 0x10;
                0
            }
            (0x0, false) => self.gicd_ctlr | 0x10,
            // TYPER: 64 INTIDs (ITLinesNumber 1), CPUNumber, IDbits 9 (10 bits).
            (0x4, false) => 1 | (((self.cpus as u32 - 1) & 7) << 5) | (9 << 19),
            (0x8, false) => 0x0000_043b, // IIDR: Arm
            (0xffe8, false) => 0x3b,     // PIDR2: GICv3
            _ => 0,                      // SPI registers: RAZ/WI (no SPI sources)
        }
    }

    fn gicr(&mut self, cpu: usize, off: u64, write: bool, val: u64, size: u64) -> u64 {
        if cpu >= self.cpus {
            return 0;
        }
        let last = cpu + 1 == self.cpus;
        let r = &mut self.gicr[cpu];
        let v = val as u32;
        let typer = ((cpu as u64) << 32) | ((cpu as u64) << 8) | if last { 1 << 4 } else { 0 };
        let ppi = |o: u64| (o - 0x1_0400) as usize;
        match (off, write) {
            (0x0, true) => r.ctlr = v & 1,
            (0x0, false) => return r.ctlr as u64,
            (0x4, false) => return 0x0000_043b,
            (0x8, false) => {
                return if size == 8 {
                    typer
                } else {
                    typer & 0xffff_ffff
                };
            }
            (0xc, false) => return typer >> 32,
            (0x14, true) => {
                // ChildrenAsleep follows ProcessorSleep at once.
                r.waker = if v & 2 != 0 { 0b110 } else { 0 };
            }
            (0x14, false) => return r.waker as u64,
            (0xffe8, false) => return 0x3b,
            (0x1_0080, true) => r.igroupr0 = v,
            (0x1_0080, false) => return r.igroupr0 as u64,
            (0x1_0100, true) => r.enabled |= v,
            (0x1_0180, true) => r.enabled &= !v,
            (0x1_0100, false) | (0x1_0180, false) => return r.enabled as u64,
            (0x1_0200, true) => r.pending |= v,
            (0x1_0280, true) => r.pending &= !v,
            (0x1_0200, false) | (0x1_0280, false) => return r.pending as u64,
            (0x1_0300, true) => r.active |= v,
            (0x1_0380, true) => r.active &= !v,
            (0x1_0300, false) | (0x1_0380, false) => return r.active as u64,
            (0x1_0400..=0x1_041f, true) => {
                let i = ppi(off);
                for k in 0..(size as usize).min(32 - i) {
                    r.prio[i + k] = (val >> (8 * k)) as u8;
                }
            }
            (0x1_0400..=0x1_041f, false) => {
                let i = ppi(off);
                let mut out = 0u64;
                for k in 0..(size as usize).min(32 - i) {
                    out |= (r.prio[i + k] as u64) << (8 * k);
                }
                return out;
            }
            (0x1_0c00, false) => return 0xaaaa_aaaa, // SGIs: edge
            (0x1_0c04, true) => r.icfgr1 = v,
            (0x1_0c04, false) => return r.icfgr1 as u64,
            _ => {}
        }
        0
    }

    /// Records the list registers of REC `cpu` from its exit.
    pub fn save(&mut self, cpu: usize, exit_lrs: &[u64; 16]) {
        self.lrs[cpu] = *exit_lrs;
    }

    /// The list registers for the next entry of REC `cpu`: the ones still
    /// pending or active, plus the EL1 timers whose output is asserted (as the
    /// exit reported them) and whose PPI the guest enabled.
    pub fn entry_lrs(&mut self, cpu: usize, cntv_ctl: u64, cntp_ctl: u64) -> [u64; 16] {
        let mut lrs = [0u64; 16];
        for (i, lr) in self.lrs[cpu].iter().enumerate().take(self.nr_lrs) {
            if lr & LR_STATE_MASK != 0 {
                lrs[i] = *lr;
            }
        }
        // Group 1 must be enabled for the virtual CPU interface to signal
        // anything; the distributor's EnableGrp1 gates forwarding.
        if self.gicd_ctlr & 0x2 == 0 {
            return lrs;
        }
        let r = self.gicr[cpu];
        for (intid, ctl) in [(VTIMER_PPI, cntv_ctl), (PTIMER_PPI, cntp_ctl)] {
            let bit = 1u32 << intid;
            if !asserted(ctl) || r.enabled & bit == 0 {
                continue;
            }
            if lrs
                .iter()
                .any(|lr| lr & LR_STATE_MASK != 0 && lr & 0xffff_ffff == intid as u64)
            {
                continue;
            }
            if let Some(free) = lrs
                .iter()
                .take(self.nr_lrs)
                .position(|lr| lr & LR_STATE_MASK == 0)
            {
                let prio = (r.prio[intid as usize] & 0xf8) as u64;
                lrs[free] = LR_STATE_PENDING | LR_GROUP1 | (prio << 48) | intid as u64;
                self.injected += 1;
            }
        }
        lrs
    }

    /// RMI 2.0: loads REC `cpu`'s virtual CPU interface state and the list
    /// registers `lrs` into the ICH registers, and enables the interface
    /// (the RMM clears ICH_HCR_EL2.En again at REC exit).
    pub fn hw_load(&self, cpu: usize, lrs: &[u64; 16]) {
        for (i, lr) in lrs.iter().enumerate().take(self.nr_lrs) {
            write_lr(i, *lr);
        }
        msr!("ich_vmcr_el2", self.vmcr[cpu]);
        msr!("ich_ap0r0_el2", self.aprs[cpu].0);
        msr!("ich_ap1r0_el2", self.aprs[cpu].1);
        msr!("ich_hcr_el2", 1); // En
        isb();
    }

    /// RMI 2.0: the list registers and CPU interface state REC `cpu` left in
    /// the ICH registers at its exit.
    pub fn hw_save(&mut self, cpu: usize) -> [u64; 16] {
        let mut lrs = [0u64; 16];
        for (i, lr) in lrs.iter_mut().enumerate().take(self.nr_lrs) {
            *lr = read_lr(i);
        }
        self.vmcr[cpu] = mrs!("ich_vmcr_el2");
        self.aprs[cpu] = (mrs!("ich_ap0r0_el2"), mrs!("ich_ap1r0_el2"));
        lrs
    }
}

/// RMI 2.0: the number of list registers (ICH_VTR_EL2.ListRegs + 1); RMI 1.0
/// reports it in RMI_FEATURES register 0 instead.
pub fn hw_nr_lrs() -> usize {
    (mrs!("ich_vtr_el2") & 0x1f) as usize + 1
}

macro_rules! lr_regs {
    ($($n:literal),*) => {
        fn write_lr(i: usize, v: u64) {
            match i {
                // SAFETY: the host owns the ICH registers between REC runs
                // (ICH_HCR_EL2.En is clear at REC exit); no memory effects.
                $($n => unsafe {
                    core::arch::asm!(concat!("msr ich_lr", $n, "_el2, {}"), in(reg) v, options(nomem, nostack))
                },)*
                _ => {}
            }
        }
        fn read_lr(i: usize) -> u64 {
            let mut v = 0u64;
            match i {
                // SAFETY: reading a system register has no memory effects.
                $($n => unsafe {
                    core::arch::asm!(concat!("mrs {}, ich_lr", $n, "_el2"), out(reg) v, options(nomem, nostack))
                },)*
                _ => {}
            }
            v
        }
    };
}
lr_regs!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
