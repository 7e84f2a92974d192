//! RMI calls to TF-RMM (SMC64 fast calls 0xC4000150 + n): v1.0 as in TF-RMM
//! v0.8.0, v2.0 as in TF-RMM v0.9.0 (lib/smc/include/smc-rmi.h). Calls whose
//! number and arguments did not change serve both.

pub const VERSION: u64 = 0xC400_0150;
pub const GRANULE_DELEGATE: u64 = 0xC400_0151;
pub const GRANULE_UNDELEGATE: u64 = 0xC400_0152;
pub const DATA_CREATE: u64 = 0xC400_0153;
pub const DATA_CREATE_UNKNOWN: u64 = 0xC400_0154;
pub const DATA_DESTROY: u64 = 0xC400_0155;
pub const REALM_ACTIVATE: u64 = 0xC400_0157;
pub const REALM_CREATE: u64 = 0xC400_0158;
pub const REALM_DESTROY: u64 = 0xC400_0159;
pub const REC_CREATE: u64 = 0xC400_015A;
pub const REC_DESTROY: u64 = 0xC400_015B;
pub const REC_ENTER: u64 = 0xC400_015C;
pub const RTT_CREATE: u64 = 0xC400_015D;
pub const RTT_DESTROY: u64 = 0xC400_015E;
pub const RTT_MAP_UNPROTECTED: u64 = 0xC400_015F;
pub const RTT_UNMAP_UNPROTECTED: u64 = 0xC400_0162;
pub const PSCI_COMPLETE: u64 = 0xC400_0164;
pub const FEATURES: u64 = 0xC400_0165;
pub const REC_AUX_COUNT: u64 = 0xC400_0167;
pub const RTT_INIT_RIPAS: u64 = 0xC400_0168;
pub const RTT_SET_RIPAS: u64 = 0xC400_0169;

/// RMI 2.0 only (DATA_CREATE kept its number as RTT_DATA_MAP_INIT).
pub mod v2 {
    pub const RTT_DATA_MAP_INIT: u64 = 0xC400_0153;
    pub const RMM_CONFIG_SET: u64 = 0xC400_016E;
    pub const RMM_CONFIG_GET: u64 = 0xC400_01EC;
    pub const GRANULE_RANGE_DELEGATE: u64 = 0xC400_01F1;
    pub const GRANULE_RANGE_UNDELEGATE: u64 = 0xC400_01F2;
    pub const RTT_DATA_MAP: u64 = 0xC400_01F5;
    pub const RTT_DATA_UNMAP: u64 = 0xC400_01F6;
    pub const RMM_ACTIVATE: u64 = 0xC400_0202;
    pub const OP_CONTINUE: u64 = 0xC400_0203;
    pub const OP_MEM_DONATE: u64 = 0xC400_0208;
    pub const OP_MEM_RECLAIM: u64 = 0xC400_0209;

    /// RTT_DATA_MAP/UNMAP flags: one output address (RMI_ADDR_TYPE_SINGLE).
    pub const ADDR_TYPE_SINGLE: u64 = 1;

    pub const BUSY: u64 = 10;
    pub const INCOMPLETE: u64 = 13;

    /// RmiOpMemReq, bits 9:8 of an INCOMPLETE result.
    pub const MEM_REQ_DONATE: u64 = 1;
    pub const MEM_REQ_RECLAIM: u64 = 2;
}

pub const SUCCESS: u64 = 0;
pub const ERROR_RTT: u64 = 4;

pub const MEASURE_CONTENT: u64 = 1;

pub const EXIT_SYNC: u64 = 0;
pub const EXIT_IRQ: u64 = 1;
pub const EXIT_FIQ: u64 = 2;
pub const EXIT_PSCI: u64 = 3;
pub const EXIT_RIPAS_CHANGE: u64 = 4;
pub const EXIT_HOST_CALL: u64 = 5;
pub const EXIT_SERROR: u64 = 6;

pub const ENTRY_EMUL_MMIO: u64 = 1 << 0;
pub const ENTRY_TRAP_WFI: u64 = 1 << 2;
pub const ENTRY_TRAP_WFE: u64 = 1 << 3;
pub const ENTRY_RIPAS_REJECT: u64 = 1 << 4;

/// x0..x4 after the call.
#[derive(Clone, Copy, Debug)]
pub struct Ret(pub [u64; 5]);

impl Ret {
    pub fn status(&self) -> u64 {
        self.0[0] & 0xff
    }
    pub fn index(&self) -> u64 {
        (self.0[0] >> 8) & 0xff
    }
    pub fn ok(&self) -> bool {
        self.0[0] == SUCCESS
    }
    /// RmiOpMemReq of an INCOMPLETE stateful operation (RMI 2.0).
    pub fn mem_req(&self) -> u64 {
        (self.0[0] >> 8) & 3
    }
}

pub static mut CALLS: u64 = 0;

pub fn call(fid: u64, a: [u64; 6]) -> Ret {
    let (mut x0, mut x1, mut x2, mut x3, mut x4) = (fid, a[0], a[1], a[2], a[3]);
    // SAFETY: an SMC to EL3, forwarded to the RMM. The RMM reads and writes
    // only granules the arguments name (delegated ones, or NS parameter
    // pages this launcher owns). x5..x17 may be clobbered (SMCCC).
    unsafe {
        CALLS += 1;
        core::arch::asm!(
            "smc #0",
            inout("x0") x0, inout("x1") x1, inout("x2") x2, inout("x3") x3, inout("x4") x4,
            inout("x5") a[4] => _, inout("x6") a[5] => _,
            out("x7") _, out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _,
            options(nostack)
        );
    }
    Ret([x0, x1, x2, x3, x4])
}

pub fn c1(fid: u64, a: u64) -> Ret {
    call(fid, [a, 0, 0, 0, 0, 0])
}
pub fn c2(fid: u64, a: u64, b: u64) -> Ret {
    call(fid, [a, b, 0, 0, 0, 0])
}
pub fn c3(fid: u64, a: u64, b: u64, c: u64) -> Ret {
    call(fid, [a, b, c, 0, 0, 0])
}
pub fn c4(fid: u64, a: u64, b: u64, c: u64, d: u64) -> Ret {
    call(fid, [a, b, c, d, 0, 0])
}
pub fn c5(fid: u64, a: u64, b: u64, c: u64, d: u64, e: u64) -> Ret {
    call(fid, [a, b, c, d, e, 0])
}
