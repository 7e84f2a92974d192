//! rmm-launcher: a Normal-world EL2 host (the BL33 role) that creates an Arm CCA
//! realm through RMI v1.0 (TF-RMM v0.8.0) or v2.0 (TF-RMM v0.9.0) and runs an
//! arm64 Image in it the way kvmtool-cca launches one. See ../README.md.

#![no_std]
#![no_main]

#[path = "../../../tests/vmm-model/common/net_gateway.rs"]
mod net_gateway;
mod rmi;
#[path = "../../../tests/vmm-model/common/sha256.rs"]
#[allow(dead_code)]
mod sha256;
#[path = "../../../tests/vmm-model/common/sha512.rs"]
#[allow(dead_code)]
mod sha512;
mod sys;
mod vgic;
mod virtio_blk;
mod virtio_net;
mod virtio_pci;
#[path = "../../../tests/vmm-model/common/virtio_pci.rs"]
mod virtio_pci_common;
mod virtq;

use sha512::Algo;
use sys::{log, mrs};

core::arch::global_asm!(include_str!("entry.S"));

/// Exit statuses of the QEMU process (the machine model's table, README.md).
pub mod status {
    pub const SYSTEM_OFF: u32 = 0;
    pub const SYSTEM_RESET: u32 = 10;
    pub const GUEST_EXCEPTION: u32 = 11;
    pub const MMIO_NO_SYNDROME: u32 = 12;
    pub const LAUNCHER_ERROR: u32 = 14;
    pub const CONFIG_ERROR: u32 = 15;
    pub const REALM_FATAL: u32 = 16;
}

// ---- host (QEMU physical) layout; the runner's `-device loader`s fill the first three
const PARAMS: u64 = 0x4700_0000;
const IMAGE: u64 = 0x4800_0000;
const IMAGE_MAX: u64 = 0x0400_0000;
const DTB: u64 = 0x4c00_0000;
/// The virtio-blk disk (`--virtio-blk`): NS DRAM below the launcher (0x60000000).
const DISK: u64 = 0x5000_0000;
const DISK_MAX: u64 = 0x1000_0000;
/// NS pages the launcher shares with the RMM (params, REC run) and hands to the
/// realm as unprotected memory.
const NS_SCRATCH: u64 = 0x7000_0000;
const NS_SCRATCH_END: u64 = 0x8000_0000;
/// Granules delegated to the realm world (RD, RTTs, RECs, DATA).
const POOL: u64 = 0x8000_0000;
const POOL_END: u64 = 0xc000_0000;

// ---- guest IPA layout (kvmtool's arm64 map)
const RAM_IPA: u64 = 0x8000_0000;
const UART_IPA: u64 = 0x0100_0000;
const GRANULE: u64 = 0x1000;
const FDT_MAX_SIZE: u64 = 0x1_0000;

const PSCI_CPU_OFF: u64 = 0x8400_0002;
const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
const PSCI_SYSTEM_RESET: u64 = 0x8400_0009;
const PSCI_CPU_ON_64: u64 = 0xc400_0003;
const PSCI_CPU_ON_32: u64 = 0x8400_0003;
const PSCI_AFFINITY_INFO_64: u64 = 0xc400_0004;
const PSCI_AFFINITY_INFO_32: u64 = 0x8400_0004;

const FLAG_RIPAS_IMAGE: u64 = 1 << 0;
const FLAG_REJECT_RIPAS: u64 = 1 << 1;
const FLAG_POPULATE_ALL: u64 = 1 << 2;
const FLAG_SHA512: u64 = 1 << 3;
const FLAG_NO_TEARDOWN: u64 = 1 << 4;
const FLAG_TRACE: u64 = 1 << 5;
const FLAG_ONE_GRANULE: u64 = 1 << 6;
const FLAG_DESTROY_GRANULE: u64 = 1 << 7;
/// The virtio devices on the PCI bridge; bits 9-10: how the bridge lies
/// (0 not, 1 capability loop, 2 capability beyond its BAR, 3 BAR in RAM).
const FLAG_VIRTIO_PCI: u64 = 1 << 8;
const PCI_HOSTILE_SHIFT: u64 = 9;

/// The runner's parameter block at PARAMS.
#[repr(C)]
struct Params {
    magic: [u8; 8],
    image_size: u64,
    dtb_size: u64,
    mem_bytes: u64,
    flags: u64,
    ipa_bits: u64,
    cpus: u64,
    rpv_len: u64,
    rpv: [u8; 64],
    /// Version 2 of the block (magic RMMLNCH2) and later: virtio-blk sectors (0: none).
    virtio_blk_sectors: u64,
    /// Version 3 (RMMLNCH3) only: the virtio-net (0: none, 1: well behaved,
    /// 2: hostile used length, 3: hostile used id).
    virtio_net: u64,
}

fn stop(code: u32, args: core::fmt::Arguments) -> ! {
    sys::print(args);
    log!("exit status {}", code);
    sys::exit(code)
}

#[unsafe(no_mangle)]
extern "C" fn rust_fault(kind: u64, esr: u64, elr: u64, far: u64) -> ! {
    stop(
        status::LAUNCHER_ERROR,
        format_args!("LAUNCHER ERROR: EL2 exception {kind} esr={esr:#x} elr={elr:#x} far={far:#x}"),
    )
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    stop(
        status::LAUNCHER_ERROR,
        format_args!("LAUNCHER ERROR: {info}"),
    )
}

fn fail(what: &str, r: rmi::Ret) -> ! {
    stop(
        status::LAUNCHER_ERROR,
        format_args!(
            "LAUNCHER ERROR: {what}: RMI status {} index {} (x0={:#x})",
            r.status(),
            r.index(),
            r.0[0]
        ),
    )
}

// ---------------------------------------------------------------- bookkeeping
const MAX_DELEGATED: usize = 1 << 18;
const MAX_RTTS: usize = 4096;
const MAX_UNPROT: usize = 4096;
const MAX_RECS: usize = 8;

struct Host {
    /// RMI 2.0 (TF-RMM v0.9.0) rather than 1.0.
    v2: bool,
    /// RMI 2.0: the NS page holding RMI address lists (donate, reclaim).
    list: u64,
    /// RMI 2.0: granules donated to stateful operations (REC auxiliary state).
    donated: u64,
    rd: u64,
    algo: Algo,
    shared: u64,
    ram_end: u64,
    flags: u64,
    ns_next: u64,
    pool_next: u64,
    n_delegated: usize,
    /// (IPA, level) of every RTT created, in creation order.
    rtts: [(u64, u64); MAX_RTTS],
    n_rtts: usize,
    /// Unprotected IPAs mapped with RTT_MAP_UNPROTECTED (level 3), and the
    /// NS page behind each.
    unprot: [u64; MAX_UNPROT],
    unprot_pa: [u64; MAX_UNPROT],
    n_unprot: usize,
    /// Protected IPAs holding DATA granules.
    n_data: usize,
    recs: [u64; MAX_RECS],
    runs: [u64; MAX_RECS],
    mpidrs: [u64; MAX_RECS],
    n_recs: usize,
    rim: [u8; 64],
    /// The granule a misbehaving host destroyed (0: none).
    destroyed: u64,
    // counters
    exits: u64,
    mmio: u64,
    lazy: u64,
    ripas_changes: u64,
    host_calls: u64,
    psci: u64,
    irq_exits: u64,
}

static mut DELEGATED: [u64; MAX_DELEGATED] = [0; MAX_DELEGATED];
static mut DATA_IPAS: [u64; MAX_DELEGATED] = [0; MAX_DELEGATED];

fn delegated() -> &'static mut [u64; MAX_DELEGATED] {
    // SAFETY: single CPU; only the launcher's own code touches this table.
    unsafe { &mut *core::ptr::addr_of_mut!(DELEGATED) }
}
fn data_ipas() -> &'static mut [u64; MAX_DELEGATED] {
    // SAFETY: as above.
    unsafe { &mut *core::ptr::addr_of_mut!(DATA_IPAS) }
}

fn zero_page(pa: u64) {
    // SAFETY: `pa` is an NS page of the launcher's scratch area or pool,
    // identity mapped, not in use by anything else.
    unsafe { core::ptr::write_bytes(pa as *mut u8, 0, GRANULE as usize) };
}

fn page(pa: u64) -> &'static mut [u8; 4096] {
    // SAFETY: as in zero_page.
    unsafe { &mut *(pa as *mut [u8; 4096]) }
}

fn put64(p: &mut [u8], off: usize, v: u64) {
    p[off..off + 8].copy_from_slice(&v.to_le_bytes());
}
fn get64(p: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&p[off..off + 8]);
    u64::from_le_bytes(a)
}

impl Host {
    fn trace(&self) -> bool {
        self.flags & FLAG_TRACE != 0
    }

    fn ns_page(&mut self) -> u64 {
        if self.ns_next >= NS_SCRATCH_END {
            stop(
                status::LAUNCHER_ERROR,
                format_args!("LAUNCHER ERROR: NS scratch exhausted"),
            );
        }
        let p = self.ns_next;
        self.ns_next += GRANULE;
        zero_page(p);
        p
    }

    /// A granule from the pool, delegated to the realm PAS.
    fn granule(&mut self) -> u64 {
        if self.pool_next >= POOL_END || self.n_delegated >= MAX_DELEGATED {
            stop(
                status::LAUNCHER_ERROR,
                format_args!("LAUNCHER ERROR: granule pool exhausted"),
            );
        }
        let g = self.pool_next;
        self.pool_next += GRANULE;
        let r = self.delegate(g);
        if !r.ok() {
            fail("GRANULE_DELEGATE", r);
        }
        delegated()[self.n_delegated] = g;
        self.n_delegated += 1;
        g
    }

    /// GRANULE_DELEGATE of `g`; RMI 2.0: GRANULE_RANGE_DELEGATE, which may
    /// stop early (TF-RMM v0.9.0 does one granule per call): go on from the
    /// next address it returns.
    fn delegate(&self, g: u64) -> rmi::Ret {
        if !self.v2 {
            return rmi::c1(rmi::GRANULE_DELEGATE, g);
        }
        range_op(rmi::v2::GRANULE_RANGE_DELEGATE, g, g + GRANULE)
    }

    fn undelegate(&self, g: u64) -> rmi::Ret {
        if !self.v2 {
            return rmi::c1(rmi::GRANULE_UNDELEGATE, g);
        }
        range_op(rmi::v2::GRANULE_RANGE_UNDELEGATE, g, g + GRANULE)
    }

    /// RMI 2.0: drives a stateful operation that `r`, the result of the
    /// command that started it (the handle in x1), left INCOMPLETE: donates
    /// or takes back granules when the RMM asks, otherwise OP_CONTINUE.
    /// Returns the final result.
    fn finish_op(&mut self, mut r: rmi::Ret) -> rmi::Ret {
        let handle = r.0[1];
        while r.status() == rmi::v2::INCOMPLETE {
            r = match r.mem_req() {
                rmi::v2::MEM_REQ_DONATE => self.donate(handle, r.0[2]),
                // The granules come back delegated; they are in the
                // delegated list and undelegated with the rest at teardown.
                rmi::v2::MEM_REQ_RECLAIM => {
                    rmi::c3(rmi::v2::OP_MEM_RECLAIM, handle, self.list, 512)
                }
                _ => rmi::c2(rmi::v2::OP_CONTINUE, handle, 0),
            };
        }
        r
    }

    /// RMI 2.0: OP_MEM_DONATE of fresh delegated granules, as many as the
    /// RmiOpMemDonateReq `req` asks for (4 KiB blocks, delegated, at most one
    /// address list page).
    fn donate(&mut self, handle: u64, req: u64) -> rmi::Ret {
        let (block, count) = (req & 3, (req >> 2) & 0x3fff);
        if block != 0 || req & (1 << 17) != 0 {
            stop(
                status::LAUNCHER_ERROR,
                format_args!("LAUNCHER ERROR: unsupported donation request {req:#x}"),
            );
        }
        let n = count.min(GRANULE / 8);
        for i in 0..n as usize {
            let g = self.granule();
            put64(page(self.list), 8 * i, g | (1 << 2)); // one 4 KiB block
        }
        self.donated += n;
        rmi::c3(rmi::v2::OP_MEM_DONATE, handle, self.list, n)
    }

    fn rtt_create(&mut self, ipa: u64, level: u64) {
        let g = self.granule();
        let span = GRANULE << (9 * (4 - level)); // the area one level-`level` table maps
        let base = ipa & !(span - 1);
        let r = rmi::c4(rmi::RTT_CREATE, self.rd, g, base, level);
        if !r.ok() {
            fail("RTT_CREATE", r);
        }
        if self.n_rtts >= MAX_RTTS {
            stop(
                status::LAUNCHER_ERROR,
                format_args!("LAUNCHER ERROR: too many RTTs"),
            );
        }
        self.rtts[self.n_rtts] = (base, level);
        self.n_rtts += 1;
    }

    /// Runs `op` until it succeeds, creating the RTT it reports missing
    /// (RMI_ERROR_RTT with the level the walk stopped at) for `ipa`.
    fn with_rtts(
        &mut self,
        what: &str,
        ipa: u64,
        mut op: impl FnMut(&Host) -> rmi::Ret,
    ) -> rmi::Ret {
        loop {
            let r = op(self);
            if r.status() == rmi::ERROR_RTT && r.index() < 3 {
                self.rtt_create(ipa, r.index() + 1);
                continue;
            }
            if !r.ok() {
                fail(what, r);
            }
            return r;
        }
    }

    fn init_ripas(&mut self, base: u64, top: u64) {
        let mut a = base;
        while a < top {
            let r = self.with_rtts("RTT_INIT_RIPAS", a, |h| {
                rmi::c3(rmi::RTT_INIT_RIPAS, h.rd, a, top)
            });
            if !self.v2 {
                // RMI 2.0 (TF-RMM v0.9.0) no longer measures RTT_INIT_RIPAS.
                rim_ripas(self.algo, &mut self.rim, a, r.0[1]);
            }
            a = r.0[1];
        }
    }

    fn note_data(&mut self, ipa: u64) {
        data_ipas()[self.n_data] = ipa;
        self.n_data += 1;
    }

    /// DATA_CREATE of one granule with `src` (an NS page) as content,
    /// measured (RMI 2.0: RTT_DATA_MAP_INIT, the same call renamed).
    fn data_create(&mut self, ipa: u64, src: u64) {
        let g = self.granule();
        let (what, fid) = if self.v2 {
            ("RTT_DATA_MAP_INIT", rmi::v2::RTT_DATA_MAP_INIT)
        } else {
            ("DATA_CREATE", rmi::DATA_CREATE)
        };
        self.with_rtts(what, ipa, |h| {
            rmi::c5(fid, h.rd, g, ipa, src, rmi::MEASURE_CONTENT)
        });
        rim_data(self.algo, &mut self.rim, ipa, page(src));
        self.note_data(ipa);
    }

    /// An unmeasured zeroed granule at `ipa` (RMI 2.0: RTT_DATA_MAP of one
    /// granule).
    fn data_create_unknown(&mut self, ipa: u64) {
        let g = self.granule();
        if self.v2 {
            self.with_rtts("RTT_DATA_MAP", ipa, |h| {
                let single = rmi::v2::ADDR_TYPE_SINGLE;
                rmi::c5(rmi::v2::RTT_DATA_MAP, h.rd, ipa, ipa + GRANULE, single, g)
            });
        } else {
            self.with_rtts("DATA_CREATE_UNKNOWN", ipa, |h| {
                rmi::c3(rmi::DATA_CREATE_UNKNOWN, h.rd, g, ipa)
            });
        }
        self.note_data(ipa);
    }

    /// DATA_DESTROY of the granule at `ipa` (RMI 2.0: RTT_DATA_UNMAP).
    fn data_destroy(&self, ipa: u64) -> rmi::Ret {
        if !self.v2 {
            return rmi::c2(rmi::DATA_DESTROY, self.rd, ipa);
        }
        let single = rmi::v2::ADDR_TYPE_SINGLE;
        rmi::c5(
            rmi::v2::RTT_DATA_UNMAP,
            self.rd,
            ipa,
            ipa + GRANULE,
            single,
            0,
        )
    }

    fn map_unprotected(&mut self, ipa: u64) -> u64 {
        let ns = self.ns_page();
        let desc = ns | (1 << 4) | (2 << 2) | (3 << 6); // FWB Normal WB, S2AP RW
        self.with_rtts("RTT_MAP_UNPROTECTED", ipa, |h| {
            rmi::c4(rmi::RTT_MAP_UNPROTECTED, h.rd, ipa, 3, desc)
        });
        if self.n_unprot < MAX_UNPROT {
            self.unprot[self.n_unprot] = ipa;
            self.unprot_pa[self.n_unprot] = ns;
            self.n_unprot += 1;
        }
        ns
    }
}

/// The device side of shared memory: the NS page behind an unprotected IPA.
impl virtq::GuestMem for Host {
    fn unprotected_page(&mut self, page_ipa: u64) -> Option<u64> {
        if let Some(i) = self.unprot[..self.n_unprot]
            .iter()
            .position(|&a| a == page_ipa)
        {
            return Some(self.unprot_pa[i]);
        }
        // Shared memory the realm has not touched yet (a buffer only the
        // device writes): back it now, as the realm's own first access would,
        // while the host has room to (a hostile length cannot exhaust it:
        // the device then errs instead).
        let prot = page_ipa & !self.shared;
        if page_ipa & self.shared == 0
            || !(RAM_IPA..self.ram_end).contains(&prot)
            || self.n_unprot >= MAX_UNPROT
            || self.ns_next >= NS_SCRATCH_END
        {
            return None;
        }
        Some(self.map_unprotected(page_ipa))
    }
}

/// RMI 2.0: GRANULE_RANGE_(UN)DELEGATE over [base, top), following the next
/// address each call returns.
fn range_op(fid: u64, base: u64, top: u64) -> rmi::Ret {
    let mut a = base;
    loop {
        let r = rmi::c2(fid, a, top);
        if !r.ok() || r.0[1] >= top {
            return r;
        }
        if r.0[1] <= a {
            return rmi::Ret([rmi::v2::BUSY, a, 0, 0, 0]); // no progress
        }
        a = r.0[1];
    }
}

// ---------------------------------------------------------------- RIM (TF-RMM descriptors)
fn rim_ripas(algo: Algo, rim: &mut [u8; 64], base: u64, top: u64) {
    // RTT_INIT_RIPAS measures one descriptor per RTT entry; `top` may span
    // several entries of one size: split as the RMM did.
    let mut cur = base;
    while cur < top {
        let mut bs = GRANULE;
        for l in [1u32, 2] {
            let s = GRANULE << (9 * (3 - l));
            if cur.is_multiple_of(s) && top - cur >= s {
                bs = s;
                break;
            }
        }
        let mut d = [0u8; 0x100];
        d[0] = 2;
        put64(&mut d, 8, 0x100);
        d[0x10..0x50].copy_from_slice(rim);
        put64(&mut d, 0x50, cur);
        put64(&mut d, 0x58, cur + bs);
        *rim = algo.hash(&d);
        cur += bs;
    }
}

fn rim_data(algo: Algo, rim: &mut [u8; 64], ipa: u64, content: &[u8; 4096]) {
    let mut d = [0u8; 0x100];
    d[0] = 0;
    put64(&mut d, 8, 0x100);
    d[0x10..0x50].copy_from_slice(rim);
    put64(&mut d, 0x50, ipa);
    put64(&mut d, 0x58, rmi::MEASURE_CONTENT);
    d[0x60..0xa0].copy_from_slice(&algo.hash(content));
    *rim = algo.hash(&d);
}

fn rim_rec(algo: Algo, rim: &mut [u8; 64], params: &[u8; 4096]) {
    let mut m = [0u8; 0x1000];
    m[0..8].copy_from_slice(&params[0..8]); // flags
    m[0x200..0x208].copy_from_slice(&params[0x200..0x208]); // pc
    m[0x300..0x340].copy_from_slice(&params[0x300..0x340]); // gprs[0..8]
    let mut d = [0u8; 0x100];
    d[0] = 1;
    put64(&mut d, 8, 0x100);
    d[0x10..0x50].copy_from_slice(rim);
    d[0x50..0x90].copy_from_slice(&algo.hash(&m));
    *rim = algo.hash(&d);
}

struct Hex<'a>(&'a [u8]);
impl core::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- 16550 model
struct Uart {
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    dll: u8,
    dlm: u8,
}
static mut UART0: Uart = Uart {
    ier: 0,
    lcr: 0,
    mcr: 0x08,
    scr: 0,
    dll: 0x0c,
    dlm: 0,
};

fn uart_access(n: u64, off: u64, write: bool, val: u64) -> u64 {
    // SAFETY: single CPU.
    let u = unsafe { &mut *core::ptr::addr_of_mut!(UART0) };
    let dlab = u.lcr & 0x80 != 0;
    if write {
        let v = val as u8;
        match off {
            0 if dlab => u.dll = v,
            0 if n == 0 => sys::guest_putc(v),
            0 => {}
            1 if dlab => u.dlm = v,
            1 => u.ier = v & 0x0f,
            3 => u.lcr = v,
            4 => u.mcr = v & 0x1f,
            7 => u.scr = v,
            _ => {}
        }
        0
    } else {
        (match off {
            0 if dlab => u.dll,
            0 => 0,
            1 if dlab => u.dlm,
            1 => u.ier,
            2 => 0xc1, // FIFOs enabled, no interrupt pending
            3 => u.lcr,
            4 => u.mcr,
            5 => 0x60, // THRE | TEMT
            6 => 0xb0, // DCD | DSR | CTS
            7 => u.scr,
            _ => 0,
        }) as u64
    }
}

/// MMIO at an unprotected IPA: returns the value for a read.
fn mmio(h: &mut Host, ipa: u64, write: bool, val: u64, size: u64) -> u64 {
    h.mmio += 1;
    let a = ipa & !h.shared;
    if (UART_IPA..UART_IPA + 4 * 0x1000).contains(&a) && (a & 0xfff) < 8 {
        return uart_access((a - UART_IPA) >> 12, a & 7, write, val);
    }
    let p = pci();
    if p.claims(a) {
        return p.mmio(h, a, write, val, size);
    }
    if !p.on() && blk().claims(a) {
        return blk().mmio(h, a, write, val, size);
    }
    if !p.on() && net().claims(a) {
        return net().mmio(h, a, write, val, size);
    }
    let g = vgic();
    if g.claims(a) {
        return g.mmio(a, write, val, size);
    }
    if h.trace() {
        log!(
            "unhandled MMIO {} {:#x} size {} val {:#x}",
            if write { "write" } else { "read" },
            ipa,
            size,
            val
        );
    }
    0
}

static mut VGIC: vgic::VGic = vgic::VGic::new();
static mut BLK: virtio_blk::Blk = virtio_blk::Blk::new();
static mut NET: virtio_net::Net = virtio_net::Net::new();
static mut PCI: virtio_pci::Pci = virtio_pci::Pci::new();

fn blk() -> &'static mut virtio_blk::Blk {
    // SAFETY: single CPU; only the REC_ENTER loop's MMIO handler and the
    // final counters use it, never at the same time.
    unsafe { &mut *core::ptr::addr_of_mut!(BLK) }
}

fn net() -> &'static mut virtio_net::Net {
    // SAFETY: as `blk`.
    unsafe { &mut *core::ptr::addr_of_mut!(NET) }
}

fn pci() -> &'static mut virtio_pci::Pci {
    // SAFETY: as `blk`; the bridge reaches the devices through `blk`/`net`,
    // never while their own MMIO path holds them.
    unsafe { &mut *core::ptr::addr_of_mut!(PCI) }
}

fn vgic() -> &'static mut vgic::VGic {
    // SAFETY: single CPU; only the REC_ENTER loop and its MMIO handler use it.
    unsafe { &mut *core::ptr::addr_of_mut!(VGIC) }
}

// ---------------------------------------------------------------- entry
#[unsafe(no_mangle)]
extern "C" fn rust_main() -> ! {
    sys::mmu_on();
    let t0 = sys::now_ticks();
    let freq = mrs!("cntfrq_el0").max(1);
    // SAFETY: the runner's loader wrote the block; it is plain data.
    let p = unsafe { &*(PARAMS as *const Params) };
    // Version 1 of the block ends before `virtio_blk_sectors`, version 2
    // before `virtio_net`.
    let v3_block = &p.magic == b"RMMLNCH3";
    let v2_block = &p.magic == b"RMMLNCH2" || v3_block;
    if &p.magic != b"RMMLNCH1" && !v2_block {
        stop(
            status::CONFIG_ERROR,
            format_args!("CONFIG ERROR: no parameter block at {PARAMS:#x} (use the runner)"),
        );
    }
    log!(
        "rmm-launcher: NS EL2 host (BL33), CurrentEL {}",
        (mrs!("CurrentEL") >> 2) & 3
    );

    // ---- RMI version and features
    let v = rmi_version(1);
    // TF-RMM v0.9.0 implements only RMI 2.0 and answers a 1.0 request with
    // ERROR_INPUT, higher = 2.0: request the highest revision offered.
    let v2 = v.0[2] >> 16 >= 2;
    if v2 {
        let v = rmi_version(2);
        if !v.ok() {
            fail("RMI_VERSION 2.0", v);
        }
    } else if !v.ok() {
        fail("RMI_VERSION 1.0", v);
    }
    let f0 = rmi::c1(rmi::FEATURES, 0);
    if !f0.ok() {
        fail("RMI_FEATURES", f0);
    }
    let feat = f0.0[1];
    let max_s2sz = feat & 0xff;
    let num_bps = (feat >> 14) & 0x3f;
    let num_wps = (feat >> 20) & 0x3f;
    let nr_lrs = if v2 {
        log_features_v2(feat)
    } else {
        ((feat >> 34) & 0xf) as usize + 1
    };
    if !v2 {
        log!(
            "RMI_FEATURES[0] {:#x}: S2SZ {} LPA2 {} SVE {} NUM_BPS {} NUM_WPS {} PMU {} ({} ctrs) SHA256 {} SHA512 {} GICv3 LRs {}",
            feat,
            max_s2sz,
            (feat >> 8) & 1,
            (feat >> 9) & 1,
            num_bps,
            num_wps,
            (feat >> 26) & 1,
            (feat >> 27) & 0x1f,
            (feat >> 32) & 1,
            (feat >> 33) & 1,
            (feat >> 34) & 0xf
        );
    }

    // ---- configuration
    let mem = p.mem_bytes;
    if !((16 << 20)..=(POOL_END - POOL) - (64 << 20)).contains(&mem) || !mem.is_multiple_of(GRANULE)
    {
        stop(
            status::CONFIG_ERROR,
            format_args!("CONFIG ERROR: RAM size {mem:#x} out of range"),
        );
    }
    let ram_end = RAM_IPA + mem;
    let fls = 64 - (ram_end - 1).leading_zeros();
    let ipa_bits = if p.ipa_bits != 0 {
        p.ipa_bits as u32
    } else {
        fls.max(32) + 1
    };
    if ipa_bits as u64 > max_s2sz || ipa_bits > 39 {
        stop(
            status::CONFIG_ERROR,
            format_args!("CONFIG ERROR: IPA width {ipa_bits} not supported"),
        );
    }
    let algo = if p.flags & FLAG_SHA512 != 0 {
        Algo::Sha512
    } else {
        Algo::Sha256
    };
    let mut h = Host {
        v2,
        list: 0,
        donated: 0,
        rd: 0,
        algo,
        shared: 1 << (ipa_bits - 1),
        ram_end,
        flags: p.flags,
        ns_next: NS_SCRATCH,
        pool_next: POOL,
        n_delegated: 0,
        rtts: [(0, 0); MAX_RTTS],
        n_rtts: 0,
        unprot: [0; MAX_UNPROT],
        unprot_pa: [0; MAX_UNPROT],
        n_unprot: 0,
        n_data: 0,
        recs: [0; MAX_RECS],
        runs: [0; MAX_RECS],
        mpidrs: [0; MAX_RECS],
        n_recs: 0,
        rim: [0; 64],
        destroyed: 0,
        exits: 0,
        mmio: 0,
        lazy: 0,
        ripas_changes: 0,
        host_calls: 0,
        psci: 0,
        irq_exits: 0,
    };
    let cpus = p.cpus.clamp(1, MAX_RECS as u64) as usize;
    vgic().init(cpus, nr_lrs);
    let sectors = if v2_block { p.virtio_blk_sectors } else { 0 };
    if sectors != 0 {
        if sectors > DISK_MAX / 512 {
            stop(
                status::CONFIG_ERROR,
                format_args!(
                    "CONFIG ERROR: virtio-blk of {sectors} sectors (at most {})",
                    DISK_MAX / 512
                ),
            );
        }
        // SAFETY: NS DRAM below the launcher's image, used by nothing else
        // (the runner's blobs end at DTB + 64 KiB).
        unsafe { core::ptr::write_bytes(DISK as *mut u8, 0, (sectors * 512) as usize) };
        blk().init(DISK, sectors * 512, h.shared, RAM_IPA, ram_end);
        if p.flags & FLAG_VIRTIO_PCI != 0 {
            log!(
                "virtio-blk: {} sectors (RAM-backed) as virtio-pci function 00:00.0",
                sectors
            );
        } else {
            log!(
                "virtio-blk: {} sectors (RAM-backed) on virtio-mmio at IPA {:#x} (unprotected alias {:#x})",
                sectors,
                virtio_blk::MMIO_IPA,
                virtio_blk::MMIO_IPA | h.shared
            );
        }
    }
    let net_mode = if v3_block { p.virtio_net } else { 0 };
    if net_mode != 0 {
        use virtio_net::Hostile;
        let hostile = match net_mode {
            1 => Hostile::None,
            2 => Hostile::Len,
            3 => Hostile::Id,
            m => stop(
                status::CONFIG_ERROR,
                format_args!("CONFIG ERROR: virtio-net mode {m} (1..3)"),
            ),
        };
        // The machine model's DTB: the window after the virtio-blk's, if any
        // (kvmtool hands virtio-mmio windows out in order).
        let base = virtio_blk::MMIO_IPA
            + if sectors != 0 {
                virtio_blk::MMIO_SIZE
            } else {
                0
            };
        net().init(base, hostile, h.shared, RAM_IPA, ram_end);
        let lie = match hostile {
            Hostile::None => "",
            Hostile::Len => "; hostile: used lengths beyond the buffer",
            Hostile::Id => "; hostile: used ids outside the queue",
        };
        if p.flags & FLAG_VIRTIO_PCI != 0 {
            log!(
                "virtio-net: gateway 192.168.33.1 (ARP, ICMP echo, UDP echo on port 7) as virtio-pci function 00:01.0{}",
                lie
            );
        } else {
            log!(
                "virtio-net: gateway 192.168.33.1 (ARP, ICMP echo, UDP echo on port 7) on virtio-mmio at IPA {:#x} (unprotected alias {:#x}){}",
                base,
                base | h.shared,
                lie
            );
        }
    }
    if p.flags & FLAG_VIRTIO_PCI != 0 {
        use virtio_pci_common::Hostile;
        let hostile = match (p.flags >> PCI_HOSTILE_SHIFT) & 3 {
            0 => Hostile::None,
            1 => Hostile::CapLoop,
            2 => Hostile::CapBar,
            _ => Hostile::BarRam,
        };
        pci().init(hostile, RAM_IPA);
        log!(
            "virtio-pci: the virtio devices as functions of the ECAM bridge at IPA {:#x} (unprotected alias {:#x}), BARs from {:#x}{}",
            virtio_pci::ECAM_IPA,
            virtio_pci::ECAM_IPA | h.shared,
            virtio_pci_common::BAR_BASE,
            match hostile {
                Hostile::None => "",
                Hostile::CapLoop => "; hostile: a capability list that loops",
                Hostile::CapBar => "; hostile: a capability beyond its BAR",
                Hostile::BarRam => "; hostile: a BAR in realm RAM",
            }
        );
    }
    if v2 {
        rmm_activate(&mut h);
    }

    // ---- the image, as kvmtool loads `-k`
    if p.image_size == 0 || p.image_size > IMAGE_MAX || p.dtb_size == 0 || p.dtb_size > FDT_MAX_SIZE
    {
        stop(
            status::CONFIG_ERROR,
            format_args!("CONFIG ERROR: bad image or DTB size"),
        );
    }
    // SAFETY: the staging area was filled by QEMU's loader.
    let img = unsafe { core::slice::from_raw_parts(IMAGE as *const u8, p.image_size as usize) };
    let mut text_offset = 0x8_0000u64;
    let mut hdr_size = 0u64;
    if img.len() >= 64 && &img[56..60] == b"ARM\x64" && get64(img, 16) != 0 {
        text_offset = get64(img, 8);
        hdr_size = get64(img, 16);
    }
    let kern = RAM_IPA + text_offset;
    let limit = RAM_IPA + mem.min(256 << 20) - 1;
    let dtb = (limit - (FDT_MAX_SIZE + (2 << 20)) + (2 << 20) - 1) & !((2 << 20) - 1);
    if !kern.is_multiple_of(GRANULE) || kern + p.image_size > limit || dtb < kern + p.image_size {
        stop(
            status::CONFIG_ERROR,
            format_args!("CONFIG ERROR: image does not fit below the DTB"),
        );
    }
    let kern_footprint = kern + hdr_size.max(p.image_size);
    log!(
        "realm: {} MiB RAM at {:#x}, IPA width {} (shared bit {:#x}), image {:#x} ({} bytes), DTB {:#x} ({} bytes), {} REC(s)",
        mem >> 20,
        RAM_IPA,
        ipa_bits,
        h.shared,
        kern,
        p.image_size,
        dtb,
        p.dtb_size,
        cpus
    );

    // ---- REALM_CREATE
    let rd = h.granule();
    h.rd = rd;
    // Start level and concatenation as KVM sets up its stage 2 (at most 16
    // concatenated tables at the start level).
    let table_bits = ipa_bits - 12;
    let mut levels = table_bits.div_ceil(9);
    if table_bits - 9 * (levels - 1) <= 4 {
        levels -= 1;
    }
    let sl = 4 - levels as u64;
    let num_root = 1u64 << table_bits.saturating_sub(9 * levels); // one partly used table (e.g. 36 bits)
    // Root RTTs: contiguous, aligned to their total size.
    let align = num_root * GRANULE;
    h.pool_next = (h.pool_next + align - 1) & !(align - 1);
    let rtt_base = h.pool_next;
    for _ in 0..num_root {
        h.granule();
    }
    let rp = h.ns_page();
    {
        let b = page(rp);
        put64(b, 0, 0); // flags0: no LPA2, SVE, PMU, DA
        b[0x8] = ipa_bits as u8; // s2sz
        b[0x18] = num_bps as u8;
        b[0x20] = num_wps as u8;
        b[0x30] = if algo == Algo::Sha512 { 1 } else { 0 };
        let n = (p.rpv_len as usize).min(64);
        b[0x400..0x400 + n].copy_from_slice(&p.rpv[..n]);
        if !v2 {
            // RMI 2.0 allocates the VMID itself (the field is gone).
            b[0x800..0x802].copy_from_slice(&1u16.to_le_bytes()); // VMID
        }
        put64(b, 0x808, rtt_base);
        put64(b, 0x810, sl);
        b[0x818..0x81c].copy_from_slice(&(num_root as u32).to_le_bytes());
    }
    let r = rmi::c2(rmi::REALM_CREATE, rd, rp);
    if !r.ok() {
        fail("REALM_CREATE", r);
    }
    {
        // RIM init: the measured fields of RmiRealmParams.
        let b = page(rp);
        let mut m = [0u8; 0x1000];
        m[0..8].copy_from_slice(&b[0..8]);
        m[0x8..0x38].copy_from_slice(&b[0x8..0x38]);
        h.rim = algo.hash(&m);
    }
    log!(
        "REALM_CREATE: rd {:#x} s2sz {} num_bps {} num_wps {} hash {} RTT start level {} x{} at {:#x}",
        rd,
        ipa_bits,
        num_bps,
        num_wps,
        algo.name(),
        sl,
        num_root,
        rtt_base
    );

    // ---- RIPAS (RTT_INIT_RIPAS), then measured DATA granules, as kvmtool-cca
    let up = |x: u64| (x + GRANULE - 1) & !(GRANULE - 1);
    let kbase = kern & !(GRANULE - 1);
    let (img_s, img_e, img_fp) = (kbase, up(kern + p.image_size), up(kern_footprint));
    let (dtb_s, dtb_e) = (dtb, dtb + FDT_MAX_SIZE);
    if p.flags & FLAG_RIPAS_IMAGE != 0 {
        h.init_ripas(img_s, img_fp.min(ram_end));
        h.init_ripas(dtb_s, dtb_e.min(ram_end));
    } else {
        h.init_ripas(RAM_IPA, ram_end);
    }
    let src = h.ns_page();
    let mut a = img_s;
    while a < img_e {
        zero_page(src);
        let off = a - kern;
        let n = (p.image_size - off).min(GRANULE) as usize;
        page(src)[..n].copy_from_slice(&img[off as usize..off as usize + n]);
        h.data_create(a, src);
        a += GRANULE;
    }
    // SAFETY: the loader wrote the DTB at DTB.
    let dtb_blob = unsafe { core::slice::from_raw_parts(DTB as *const u8, p.dtb_size as usize) };
    let mut a = dtb_s;
    while a < dtb_e {
        zero_page(src);
        let off = (a - dtb) as usize;
        if off < dtb_blob.len() {
            let n = (dtb_blob.len() - off).min(GRANULE as usize);
            page(src)[..n].copy_from_slice(&dtb_blob[off..off + n]);
        }
        h.data_create(a, src);
        a += GRANULE;
    }
    if p.flags & FLAG_POPULATE_ALL != 0 {
        // Eager population of the rest of RIPAS RAM (unmeasured).
        let mut a = RAM_IPA;
        while a < ram_end {
            let in_blob = (img_s..img_e).contains(&a) || (dtb_s..dtb_e).contains(&a);
            let ram = p.flags & FLAG_RIPAS_IMAGE == 0 || (img_s..img_fp).contains(&a);
            if !in_blob && ram {
                h.data_create_unknown(a);
            }
            a += GRANULE;
        }
    }

    // ---- RECs (RMI 2.0: no REC_AUX_COUNT; REC_CREATE asks for the
    // auxiliary granules as a stateful operation)
    let naux = if v2 { 0 } else { rec_aux_count(rd) };
    for i in 0..cpus {
        let rec = h.granule();
        let pp = h.ns_page();
        {
            let b = page(pp);
            put64(b, 0, if i == 0 { 1 } else { 0 }); // flags: runnable
            put64(b, 0x100, i as u64); // MPIDR Aff0
            if i == 0 {
                put64(b, 0x200, kern);
                put64(b, 0x300, dtb);
            }
            if !v2 {
                put64(b, 0x800, naux);
            }
        }
        for k in 0..naux as usize {
            let g = h.granule();
            put64(page(pp), 0x808 + 8 * k, g);
        }
        let mut r = rmi::c3(rmi::REC_CREATE, rd, rec, pp);
        if v2 {
            r = h.finish_op(r);
        }
        if !r.ok() {
            fail("REC_CREATE", r);
        }
        if i == 0 {
            // TF-RMM measures only runnable RECs (rec.c, smc_rec_create).
            rim_rec(algo, &mut h.rim, page(pp));
        }
        h.recs[i] = rec;
        h.runs[i] = h.ns_page();
        h.mpidrs[i] = i as u64;
        h.n_recs += 1;
    }
    if v2 {
        log!(
            "REC_CREATE: {} granules donated for {} REC(s)",
            h.donated,
            cpus
        );
    }
    let r = rmi::c1(rmi::REALM_ACTIVATE, rd);
    if !r.ok() {
        fail("REALM_ACTIVATE", r);
    }
    if p.flags & FLAG_DESTROY_GRANULE != 0 {
        // Misbehaving host: destroy the RAM granule at RAM base + RAM/2 (DATA
        // in an active realm, then DATA_DESTROY: RIPAS DESTROYED).
        let ipa = RAM_IPA + mem / 2;
        h.data_create_unknown(ipa);
        h.n_data -= 1;
        let r = h.data_destroy(ipa);
        if !r.ok() {
            fail("DATA_DESTROY", r);
        }
        h.destroyed = ipa;
        log!("host destroyed the granule at IPA {:#x} (misbehave)", ipa);
    }
    let t1 = sys::now_ticks();
    log!(
        "realm activated: RIM {}:{} ({} granules delegated, {} RTTs, {} RMI calls, {} ms)",
        algo.name(),
        Hex(&h.rim[..algo.len()]),
        h.n_delegated,
        h.n_rtts,
        // SAFETY: single CPU.
        unsafe { rmi::CALLS },
        (t1 - t0) * 1000 / freq
    );
    log!("entering REC 0 at {:#x}, x0={:#x}", kern, dtb);

    let code = run(&mut h);
    sys::disarm_preempt_timer();
    let t2 = sys::now_ticks();
    log!(
        "counters: exits={} mmio={} lazy-data={} ripas-changes={} host-calls={} psci={} irq-exits={} virq-injected={} run-ms={}",
        h.exits,
        h.mmio,
        h.lazy,
        h.ripas_changes,
        h.host_calls,
        h.psci,
        h.irq_exits,
        vgic().injected,
        (t2 - t1) * 1000 / freq
    );
    let b = blk();
    if b.present() {
        log!(
            "virtio-blk: requests={} bytes={} virtio-protected-dma={} mmio-exits={} notifies={} shared-pages={} device {}",
            b.requests,
            b.bytes,
            b.dma.protected,
            b.mmio_exits,
            b.notifies,
            h.n_unprot,
            b.status_name()
        );
    }
    if pci().on() {
        log!(
            "virtio-pci: ecam-exits={} bar-exits={}",
            pci().ecam_exits,
            pci().bar_exits
        );
    }
    let n = net();
    if n.present() {
        log!(
            "virtio-net: sent={} received={} dropped={} virtio-protected-dma={} mmio-exits={} notifies={} shared-pages={} device {}",
            n.tx,
            n.rx,
            n.dropped,
            n.dma.protected,
            n.mmio_exits,
            n.notifies,
            h.n_unprot,
            n.status_name()
        );
    }
    if p.flags & FLAG_NO_TEARDOWN == 0 {
        teardown(&mut h);
    }
    log!("exit status {}", code);
    sys::exit(code)
}

/// RMI 1.0: the number of auxiliary granules a REC needs.
fn rec_aux_count(rd: u64) -> u64 {
    let aux = rmi::c1(rmi::REC_AUX_COUNT, rd);
    if !aux.ok() {
        fail("REC_AUX_COUNT", aux);
    }
    log!("REC_AUX_COUNT: {}", aux.0[1]);
    aux.0[1]
}

/// RMI 2.0: feature registers 0 and 1 (the hash algorithms moved to 1, the
/// GIC's list registers are the host's own: ICH_VTR_EL2). Returns the number
/// of list registers.
fn log_features_v2(feat: u64) -> usize {
    let f1 = rmi::c1(rmi::FEATURES, 1);
    if !f1.ok() {
        fail("RMI_FEATURES 1", f1);
    }
    let f1 = f1.0[1];
    sys::gic_init(); // ICC_SRE_EL2.SRE: the ICH registers
    let nr_lrs = vgic::hw_nr_lrs();
    log!(
        "RMI_FEATURES[0] {:#x}: S2SZ {} LPA2 {} SVE {} NUM_BPS {} NUM_WPS {} PMU {} ({} ctrs); [1] {:#x}: SHA256 {} SHA512 {}; ICH_VTR_EL2 LRs {}",
        feat,
        feat & 0xff,
        (feat >> 8) & 1,
        (feat >> 9) & 1,
        (feat >> 14) & 0x3f,
        (feat >> 20) & 0x3f,
        (feat >> 26) & 1,
        (feat >> 27) & 0x1f,
        f1,
        (f1 >> 3) & 1,
        (f1 >> 5) & 1,
        nr_lrs
    );
    nr_lrs
}

/// RMI 2.0: RMM_CONFIG_SET (the configuration RMM_CONFIG_GET reports: 4 KiB
/// granules, 1 GiB tracking regions) and RMM_ACTIVATE, which every other
/// command but VERSION/FEATURES/CONFIG_GET waits for.
fn rmm_activate(h: &mut Host) {
    let cfg = h.ns_page();
    let r = rmi::c1(rmi::v2::RMM_CONFIG_GET, cfg);
    if !r.ok() {
        fail("RMM_CONFIG_GET", r);
    }
    let r = rmi::c1(rmi::v2::RMM_CONFIG_SET, cfg);
    if !r.ok() {
        fail("RMM_CONFIG_SET", r);
    }
    let r = rmi::call(rmi::v2::RMM_ACTIVATE, [0; 6]);
    if !r.ok() {
        fail("RMM_ACTIVATE", r);
    }
    let b = page(cfg);
    log!(
        "RMM_ACTIVATE: RmiRmmConfig tracking_region_size {} rmi_granule_size {} (1 GiB, 4 KiB)",
        get64(b, 0),
        get64(b, 8)
    );
    h.list = h.ns_page();
}

/// The REC_ENTER loop over the runnable RECs. Returns the exit status.
fn run(h: &mut Host) -> u32 {
    let mut runnable = [false; MAX_RECS];
    runnable[0] = true;
    let mut cur = 0usize;
    let mut entry_flags = [0u64; MAX_RECS];
    let mut entry_gprs = [[0u64; 31]; MAX_RECS];
    // EL1 timer state (CNTP_CTL, CNTV_CTL) each REC reported at its last exit.
    let mut timers = [(0u64, 0u64); MAX_RECS];
    sys::gic_init();
    let slice = mrs!("cntfrq_el0") / 100; // 10 ms time slices between RECs
    let mut slice_start = sys::now_ticks();
    let mut yield_now = false;
    loop {
        let run = h.runs[cur];
        let others = (0..h.n_recs).any(|i| i != cur && runnable[i]);
        if others {
            // Preempt through the EL2 physical timer (an NS interrupt makes
            // the RMM exit the REC), and trap WFI/WFE to switch RECs.
            sys::arm_preempt_timer(slice);
            entry_flags[cur] |= rmi::ENTRY_TRAP_WFI | rmi::ENTRY_TRAP_WFE;
        } else {
            sys::disarm_preempt_timer();
        }
        {
            let b = page(run);
            b[..0x800].fill(0);
            put64(b, 0, entry_flags[cur]);
            for (i, v) in entry_gprs[cur].iter().enumerate() {
                put64(b, 0x200 + 8 * i, *v);
            }
            let lrs = vgic().entry_lrs(cur, timers[cur].1, timers[cur].0);
            if h.v2 {
                // RMI 2.0: no GIC fields in the REC run; the RMM uses the
                // host's ICH registers as they are.
                vgic().hw_load(cur, &lrs);
            } else {
                for (i, v) in lrs.iter().enumerate() {
                    put64(b, 0x308 + 8 * i, *v);
                }
            }
        }
        entry_flags[cur] = 0;
        entry_gprs[cur] = [0; 31];
        let r = rmi::c2(rmi::REC_ENTER, h.recs[cur], run);
        if !r.ok() {
            fail("REC_ENTER", r);
        }
        h.exits += 1;
        let b = page(run);
        let reason = get64(b, 0x800);
        let esr = get64(b, 0x900);
        let far = get64(b, 0x908);
        let hpfar = get64(b, 0x910);
        let gpr = |i: usize| get64(b, 0xa00 + 8 * i);
        let mut exit_lrs = [0u64; 16];
        if h.v2 {
            exit_lrs = vgic().hw_save(cur);
        } else {
            for (i, lr) in exit_lrs.iter_mut().enumerate() {
                *lr = get64(b, 0xb08 + 8 * i);
            }
        }
        vgic().save(cur, &exit_lrs);
        timers[cur] = (get64(b, 0xc00), get64(b, 0xc10));
        match reason {
            rmi::EXIT_SYNC => {
                let ec = esr >> 26;
                let ipa = ((hpfar >> 4) << 12) | (far & 0xfff);
                match ec {
                    0x24 | 0x20 => {
                        let page_ipa = (hpfar >> 4) << 12;
                        if page_ipa & h.shared != 0 {
                            let prot = page_ipa & !h.shared;
                            if ec == 0x24
                                && esr & (1 << 24) != 0
                                && !(RAM_IPA..h.ram_end).contains(&prot)
                            {
                                let size = 1u64 << ((esr >> 22) & 3);
                                let write = esr & (1 << 6) != 0;
                                let v = mmio(h, ipa, write, gpr(0), size);
                                entry_flags[cur] = rmi::ENTRY_EMUL_MMIO;
                                entry_gprs[cur][0] = v;
                            } else if (RAM_IPA..h.ram_end).contains(&prot) {
                                // Shared memory: back the alias with an NS page.
                                h.map_unprotected(page_ipa);
                            } else {
                                log!(
                                    "guest: MMIO without syndrome at {:#x} (esr {:#x})",
                                    ipa,
                                    esr
                                );
                                return status::MMIO_NO_SYNDROME;
                            }
                        } else if page_ipa == h.destroyed {
                            log!(
                                "REALM FATAL: access to a DESTROYED granule at IPA {:#x}",
                                page_ipa
                            );
                            return status::REALM_FATAL;
                        } else if (RAM_IPA..h.ram_end).contains(&page_ipa) {
                            // Unassigned RIPAS RAM: populate lazily.
                            if h.trace() && h.lazy < 4 {
                                log!(
                                    "lazy DATA_CREATE_UNKNOWN at {:#x} (esr {:#x})",
                                    page_ipa,
                                    esr
                                );
                            }
                            h.data_create_unknown(page_ipa);
                            h.lazy += 1;
                        } else {
                            log!(
                                "guest: abort at protected IPA {:#x} outside RAM (esr {:#x})",
                                page_ipa,
                                esr
                            );
                            return status::GUEST_EXCEPTION;
                        }
                    }
                    0x01 => yield_now = true, // WFI/WFE (trapped when other RECs run)
                    _ => {
                        log!(
                            "guest: unexpected sync exit esr {:#x} far {:#x} hpfar {:#x}",
                            esr,
                            far,
                            hpfar
                        );
                        return status::GUEST_EXCEPTION;
                    }
                }
            }
            rmi::EXIT_IRQ | rmi::EXIT_FIQ => {
                h.irq_exits += 1;
                if h.trace() && h.irq_exits < 20 {
                    log!(
                        "REC {} exit: {}",
                        cur,
                        if reason == rmi::EXIT_IRQ {
                            "IRQ"
                        } else {
                            "FIQ"
                        }
                    );
                }
            }
            rmi::EXIT_SERROR => {
                log!("guest: SError exit esr {:#x}", esr);
                return status::GUEST_EXCEPTION;
            }
            rmi::EXIT_RIPAS_CHANGE => {
                h.ripas_changes += 1;
                let base = get64(b, 0xd00);
                let top = get64(b, 0xd08);
                let val = b[0xd10];
                if h.trace() {
                    log!("RIPAS change [{:#x}, {:#x}) -> {}", base, top, val);
                }
                if h.flags & FLAG_REJECT_RIPAS != 0 {
                    entry_flags[cur] = rmi::ENTRY_RIPAS_REJECT;
                } else {
                    let rec = h.recs[cur];
                    // Misbehaving host: one granule of progress per exit.
                    let top = if h.flags & FLAG_ONE_GRANULE != 0 {
                        top.min(base + GRANULE)
                    } else {
                        top
                    };
                    let mut a = base;
                    while a < top {
                        let r = rmi::c4(rmi::RTT_SET_RIPAS, h.rd, rec, a, top);
                        if r.ok() {
                            a = r.0[1];
                        } else if r.status() == rmi::ERROR_RTT && r.index() < 3 {
                            // A block entry covers less than the range: go one level deeper.
                            h.rtt_create(a, r.index() + 1);
                        } else if r.status() == rmi::ERROR_RTT {
                            // The RMM cannot change this granule (a DESTROYED one
                            // without CHANGE_DESTROYED): the host answers REJECT,
                            // as the model's host does.
                            log!(
                                "RIPAS change stops at {:#x} (RTT_SET_RIPAS status {}): REJECT",
                                a,
                                r.status()
                            );
                            entry_flags[cur] = rmi::ENTRY_RIPAS_REJECT;
                            break;
                        } else {
                            fail("RTT_SET_RIPAS", r);
                        }
                    }
                }
            }
            rmi::EXIT_HOST_CALL => {
                h.host_calls += 1;
                let imm = get64(b, 0xe00) & 0xffff_ffff;
                log!(
                    "guest: host call imm {:#x} x0={:#x} x1={:#x}",
                    imm,
                    gpr(0),
                    gpr(1)
                );
                // RSI_HOST_CALL returns the gprs the host gives on entry:
                // hand back the ones the realm passed, unchanged.
                for (i, r) in entry_gprs[cur].iter_mut().enumerate() {
                    *r = gpr(i);
                }
            }
            rmi::EXIT_PSCI => {
                h.psci += 1;
                let fid = gpr(0);
                match fid {
                    PSCI_SYSTEM_OFF => {
                        log!("guest: PSCI SYSTEM_OFF");
                        return status::SYSTEM_OFF;
                    }
                    PSCI_SYSTEM_RESET => {
                        log!("guest: PSCI SYSTEM_RESET");
                        return status::SYSTEM_RESET;
                    }
                    PSCI_CPU_ON_64
                    | PSCI_CPU_ON_32
                    | PSCI_AFFINITY_INFO_64
                    | PSCI_AFFINITY_INFO_32 => {
                        let target = gpr(1);
                        match (0..h.n_recs).find(|&i| h.mpidrs[i] == target & 0xff_00ff_ffff) {
                            Some(t) => {
                                let r = rmi::c3(rmi::PSCI_COMPLETE, h.recs[cur], h.recs[t], 0);
                                if !r.ok() {
                                    fail("PSCI_COMPLETE", r);
                                }
                                if fid == PSCI_CPU_ON_64 || fid == PSCI_CPU_ON_32 {
                                    runnable[t] = true;
                                }
                            }
                            None => log!("guest: PSCI {:#x} for unknown MPIDR {:#x}", fid, target),
                        }
                    }
                    PSCI_CPU_OFF => {
                        runnable[cur] = false;
                    }
                    0x8400_0001 | 0xc400_0001 => yield_now = true, // CPU_SUSPEND
                    _ => {}
                }
                if h.trace() {
                    log!("REC {} PSCI exit {:#x} x1={:#x}", cur, fid, gpr(1));
                }
            }
            _ => {
                log!("guest: unknown exit reason {}", reason);
                return status::GUEST_EXCEPTION;
            }
        }
        // Round-robin over runnable RECs (one physical CPU): switch when the
        // REC waits, stops, or has used its time slice.
        let now = sys::now_ticks();
        if !(yield_now || !runnable[cur] || now - slice_start >= slice) {
            continue;
        }
        yield_now = false;
        slice_start = now;
        let mut n = cur;
        for _ in 0..h.n_recs {
            n = (n + 1) % h.n_recs;
            if runnable[n] {
                break;
            }
        }
        if !runnable[n] {
            log!("guest: no runnable REC left");
            return status::GUEST_EXCEPTION;
        }
        if h.trace() && n != cur {
            log!("schedule: REC {} -> REC {}", cur, n);
        }
        cur = n;
    }
}

/// Destroys the realm and undelegates every granule.
fn teardown(h: &mut Host) {
    let mut errors = 0u64;
    for i in 0..h.n_recs {
        let mut r = rmi::c1(rmi::REC_DESTROY, h.recs[i]);
        if h.v2 {
            // RMI 2.0: the RMM hands back the REC's auxiliary granules.
            r = h.finish_op(r);
        }
        if !r.ok() {
            errors += 1;
            log!(
                "teardown: REC_DESTROY {:#x}: status {}",
                h.recs[i],
                r.status()
            );
        }
    }
    for i in 0..h.n_unprot {
        let r = rmi::c3(rmi::RTT_UNMAP_UNPROTECTED, h.rd, h.unprot[i], 3);
        if !r.ok() {
            errors += 1;
        }
    }
    for i in 0..h.n_data {
        let ipa = data_ipas()[i];
        let r = h.data_destroy(ipa);
        if !r.ok() {
            errors += 1;
            if errors < 8 {
                log!(
                    "teardown: DATA_DESTROY {:#x}: status {} index {}",
                    ipa,
                    r.status(),
                    r.index()
                );
            }
        }
    }
    // Deepest RTTs first.
    for level in [3u64, 2, 1] {
        for i in (0..h.n_rtts).rev() {
            let (ipa, l) = h.rtts[i];
            if l != level {
                continue;
            }
            let r = rmi::c3(rmi::RTT_DESTROY, h.rd, ipa, l);
            if !r.ok() {
                errors += 1;
                if errors < 8 {
                    log!(
                        "teardown: RTT_DESTROY {:#x} L{}: status {} index {}",
                        ipa,
                        l,
                        r.status(),
                        r.index()
                    );
                }
            }
        }
    }
    let r = rmi::c1(rmi::REALM_DESTROY, h.rd);
    if !r.ok() {
        errors += 1;
        log!(
            "teardown: REALM_DESTROY: status {} index {}",
            r.status(),
            r.index()
        );
    }
    let mut undelegated = 0;
    for i in 0..h.n_delegated {
        let g = delegated()[i];
        let r = h.undelegate(g);
        if r.ok() {
            undelegated += 1;
        } else {
            errors += 1;
        }
    }
    log!(
        "teardown: {} of {} granules undelegated, {} errors",
        undelegated,
        h.n_delegated,
        errors
    );
}

/// RMI_VERSION(`major`.0), logged as the runner and run-tests read it.
fn rmi_version(major: u64) -> rmi::Ret {
    let v = rmi::c1(rmi::VERSION, major << 16);
    log!(
        "RMI_VERSION({}.0): status {} lower {}.{} higher {}.{}",
        major,
        v.0[0],
        v.0[1] >> 16,
        v.0[1] & 0xffff,
        v.0[2] >> 16,
        v.0[2] & 0xffff
    );
    v
}
