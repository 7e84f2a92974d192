//! Realm mode: what TF-RMM does toward a realm (RSI commands, RIPAS,
//! aborts at protected EMPTY / unprotected IPAs), with the model acting as
//! the (kvmtool-cca + KVM) host where the RMM exits to it. Facts from
//! TF-RMM's runtime/rsi/*.c, runtime/core/exit.c and runtime/rmi/run.c.

use crate::config::{Config, InitRipas, Misbehave};
use crate::layout;
use crate::sha512::Algo;
use crate::sys::{SpinLock, log, mrs};
use crate::{VCpu, cfg, inject_sync, stage2, status, stop};
use core::sync::atomic::{AtomicU64, Ordering};

pub static RSI_CALLS: AtomicU64 = AtomicU64::new(0);
pub static PSCI_CALLS: AtomicU64 = AtomicU64::new(0);
pub static EMPTY_TOUCHES: AtomicU64 = AtomicU64::new(0);
pub static PROTECTED_MMIO: AtomicU64 = AtomicU64::new(0);
pub static HVC_CALLS: AtomicU64 = AtomicU64::new(0);
pub static SEA_INJECTED: AtomicU64 = AtomicU64::new(0);

pub fn count_hvc() {
    HVC_CALLS.fetch_add(1, Ordering::Relaxed);
}
pub fn count_psci(_realm: bool) {
    PSCI_CALLS.fetch_add(1, Ordering::Relaxed);
}

pub fn print_counters() {
    log!(
        "counters: exits={} psci-calls={} rsi-calls={} empty-touches={} protected-mmio={} hvc-in-realm={} sea-injected={} unhandled-mmio={} virtio-protected-dma={}",
        crate::EXITS.load(Ordering::Relaxed),
        PSCI_CALLS.load(Ordering::Relaxed),
        RSI_CALLS.load(Ordering::Relaxed),
        EMPTY_TOUCHES.load(Ordering::Relaxed),
        PROTECTED_MMIO.load(Ordering::Relaxed),
        HVC_CALLS.load(Ordering::Relaxed),
        SEA_INJECTED.load(Ordering::Relaxed),
        crate::devices::UNHANDLED_MMIO.load(Ordering::Relaxed),
        crate::virtio::PROTECTED_DMA.load(Ordering::Relaxed),
    );
    // Also printed on a config error, before there is a config.
    let Some(c) = crate::try_cfg() else { return };
    if c.virtio_blk_kib != 0 {
        log!(
            "virtio-blk: {} request(s), device {}, {} flush(es), {} notification(s)",
            crate::virtio::REQUESTS.load(Ordering::Relaxed),
            crate::virtio::status_name(),
            crate::virtio::FLUSHES.load(Ordering::Relaxed),
            crate::virtio::NOTIFIES.load(Ordering::Relaxed)
        );
    }
    if c.virtio_net.is_some() {
        let (tx, rx, dropped, mmio, notifies, st) = crate::virtio_net::summary();
        log!(
            "virtio-net: {} frame(s) sent, {} reply(ies) received, {} dropped, device {}, {} MMIO exit(s) ({} notify)",
            tx,
            rx,
            dropped,
            st,
            mmio,
            notifies
        );
    }
}

/// Whether every granule of `[ipa, ipa + len)` is RAM whose RIPAS is EMPTY,
/// i.e. memory the realm has given up and the host may use (for the device
/// model's DMA through the shared alias).
pub fn range_is_empty(ipa: u64, len: u64) -> bool {
    let g = STATE.lock();
    let Some(st) = g.as_ref() else { return false };
    let mut a = ipa & !(GRANULE - 1);
    let end = ipa.saturating_add(len.max(1));
    while a < end {
        if ripas_ptr(st, a).is_none() || ripas_of(st, a) != RIPAS_EMPTY {
            return false;
        }
        a += GRANULE;
    }
    true
}

// RSI function IDs and values (smc-rsi.h).
const RSI_VERSION: u64 = 0xc400_0190;
const RSI_FEATURES: u64 = 0xc400_0191;
const RSI_MEASUREMENT_READ: u64 = 0xc400_0192;
const RSI_MEASUREMENT_EXTEND: u64 = 0xc400_0193;
const RSI_ATTEST_TOKEN_INIT: u64 = 0xc400_0194;
const RSI_ATTEST_TOKEN_CONTINUE: u64 = 0xc400_0195;
const RSI_REALM_CONFIG: u64 = 0xc400_0196;
const RSI_IPA_STATE_SET: u64 = 0xc400_0197;
const RSI_IPA_STATE_GET: u64 = 0xc400_0198;
const RSI_HOST_CALL: u64 = 0xc400_0199;

const SUCCESS: u64 = 0;
const ERROR_INPUT: u64 = 1;
const ERROR_STATE: u64 = 2;
const INCOMPLETE: u64 = 3;

const RIPAS_EMPTY: u8 = 0;
const RIPAS_RAM: u8 = 1;
const RIPAS_DESTROYED: u8 = 2;

const ACCEPT: u64 = 0;
const REJECT: u64 = 1;
const CHANGE_DESTROYED: u64 = 1;

const VERSION_1_0: u64 = 0x1_0000;
const VERSION_1_1: u64 = 0x1_0001;

const GRANULE: u64 = 4096;
/// The span of a level-3 RTT (512 granules).
const BLOCK_2M: u64 = 0x20_0000;
pub const TOKEN_BUF_SIZE: usize = 4096;

struct Token {
    /// 0: no INIT pending; otherwise the token length.
    len: usize,
    copied: usize,
    challenge: [u8; 64],
    buf: u64, // TOKEN_BUF_SIZE bytes from the pool
}

struct State {
    ripas: u64, // address of one byte per RAM granule (pool)
    granules: u64,
    rim: [u8; 64],
    rem: [[u8; 64]; 4],
    token: [Token; crate::MAX_CPUS],
}

static STATE: SpinLock<Option<State>> = SpinLock::new(None);

fn ripas_ptr(st: &State, ipa: u64) -> Option<*mut u8> {
    let ram = layout::RAM_IPA;
    if ipa < ram || ipa >= ram + st.granules * GRANULE {
        return None;
    }
    Some((st.ripas + (ipa - ram) / GRANULE) as *mut u8)
}

fn ripas_of(st: &State, ipa: u64) -> u8 {
    match ripas_ptr(st, ipa) {
        // SAFETY: the pointer is inside the RIPAS array.
        Some(p) => unsafe { p.read() },
        None => RIPAS_EMPTY, // protected IPAs without RAM are never populated
    }
}

fn pa_of(ipa: u64) -> u64 {
    ipa - layout::RAM_IPA + layout::GUEST_RAM_PA
}

/// Sets the RIPAS of one RAM granule and updates stage 2 (mapped iff RAM).
fn set_ripas(st: &State, ipa: u64, r: u8) {
    let Some(p) = ripas_ptr(st, ipa) else { return };
    // SAFETY: inside the RIPAS array.
    let old = unsafe { p.read() };
    // SAFETY: as above.
    unsafe { p.write(r) };
    let s2 = stage2();
    if r == RIPAS_RAM {
        if old != RIPAS_RAM {
            // A granule newly backed by the host arrives zeroed (the RMM
            // scrubs delegated granules).
            // SAFETY: guest RAM owned by the model, not mapped to the guest.
            unsafe { core::ptr::write_bytes(pa_of(ipa) as *mut u8, 0, GRANULE as usize) };
        }
        s2.map_page(ipa, pa_of(ipa), crate::s2::NORMAL);
    } else {
        s2.unmap_page(ipa);
    }
}

fn hash_granule(algo: Algo, ipa: u64) -> [u8; 64] {
    // SAFETY: `ipa` is a RAM granule (checked by callers).
    let d = unsafe { core::slice::from_raw_parts(pa_of(ipa) as *const u8, GRANULE as usize) };
    algo.hash(d)
}

/// RIM extension with a DATA descriptor (TF-RMM measurement_desc_data).
fn rim_data(algo: Algo, rim: &mut [u8; 64], ipa: u64) {
    let mut d = [0u8; 0x100];
    d[0] = 0; // MEASURE_DESC_TYPE_DATA
    d[8..16].copy_from_slice(&0x100u64.to_le_bytes());
    d[0x10..0x50].copy_from_slice(rim);
    d[0x50..0x58].copy_from_slice(&ipa.to_le_bytes());
    d[0x58..0x60].copy_from_slice(&1u64.to_le_bytes()); // RMI_MEASURE_CONTENT
    d[0x60..0xa0].copy_from_slice(&hash_granule(algo, ipa));
    *rim = algo.hash(&d);
}

/// Block sizes of the realm's RTT (bit mask), with concatenated tables at
/// the start level when it would have at most 16 entries, as KVM sets up.
fn rtt_block_sizes(ipa_bits: u32) -> u64 {
    let table_bits = ipa_bits - 12;
    let mut levels = table_bits.div_ceil(9);
    if table_bits - 9 * (levels - 1) <= 4 {
        levels -= 1;
    }
    let mut sizes = 0;
    for l in (4 - levels)..4 {
        sizes |= GRANULE << (9 * (3 - l));
    }
    sizes
}

/// RIM extension with RIPAS descriptors for RMI_RTT_INIT_RIPAS over
/// [base, top): one per RTT entry, using the largest blocks that fit.
fn rim_init_ripas(algo: Algo, rim: &mut [u8; 64], base: u64, top: u64, ipa_bits: u32) {
    let all = rtt_block_sizes(ipa_bits);
    let mut cur = base;
    while cur < top {
        let mut sizes = all;
        if cur != 0 {
            sizes &= (1u64 << (cur.trailing_zeros() + 1)) - 1;
        }
        let mut bs;
        loop {
            bs = 1u64 << (63 - sizes.leading_zeros());
            if top - cur >= bs || sizes == bs {
                break;
            }
            sizes &= !bs;
        }
        let mut d = [0u8; 0x100];
        d[0] = 2; // MEASURE_DESC_TYPE_RIPAS
        d[8..16].copy_from_slice(&0x100u64.to_le_bytes());
        d[0x10..0x50].copy_from_slice(rim);
        d[0x50..0x58].copy_from_slice(&cur.to_le_bytes());
        d[0x58..0x60].copy_from_slice(&(cur + bs).to_le_bytes());
        *rim = algo.hash(&d);
        cur += bs;
    }
}

/// RIM extension with a REC descriptor (flags, pc, gprs measured).
fn rim_rec(algo: Algo, rim: &mut [u8; 64], runnable: bool, pc: u64, x0: u64) {
    let mut params = [0u8; 0x1000];
    params[0..8].copy_from_slice(&(runnable as u64).to_le_bytes());
    params[0x200..0x208].copy_from_slice(&pc.to_le_bytes());
    params[0x300..0x308].copy_from_slice(&x0.to_le_bytes());
    let content = algo.hash(&params);
    let mut d = [0u8; 0x100];
    d[0] = 1; // MEASURE_DESC_TYPE_REC
    d[8..16].copy_from_slice(&0x100u64.to_le_bytes());
    d[0x10..0x50].copy_from_slice(rim);
    d[0x50..0x90].copy_from_slice(&content);
    *rim = algo.hash(&d);
}

/// Builds the realm: RIPAS of RAM, stage 2, and the RIM over realm
/// parameters, the populated image and DTB granules, and the RECs.
pub fn init(c: &Config, kern: u64, kern_size: u64, dtb: u64, _dtb_blob: &[u8]) {
    let granules = c.mem_bytes() / GRANULE;
    let Some(ripas) = crate::s2::alloc(granules) else {
        crate::fatal(format_args!("pool exhausted"))
    };
    let token_bufs = match crate::s2::alloc((TOKEN_BUF_SIZE * crate::MAX_CPUS) as u64) {
        Some(a) => a,
        None => crate::fatal(format_args!("pool exhausted")),
    };
    let mut st = State {
        ripas,
        granules,
        rim: [0; 64],
        rem: [[0; 64]; 4],
        token: core::array::from_fn(|i| Token {
            len: 0,
            copied: 0,
            challenge: [0; 64],
            buf: token_bufs + (i * TOKEN_BUF_SIZE) as u64,
        }),
    };
    let s2 = stage2();
    let ram = layout::RAM_IPA;
    let sb = c.shared_bit();
    // Unprotected alias of RAM: shared memory, the same host pages; execute
    // never, so that an instruction fetch from it faults and gets an SEA.
    s2.map_range(
        sb | ram,
        layout::GUEST_RAM_PA,
        c.mem_bytes(),
        crate::s2::NORMAL | crate::s2::XN,
        false,
    );

    // RIM as TF-RMM v1.0 computes it, over kvmtool-cca's creation sequence
    // (the order of Veraison's realm-vm spec): RMI_REALM_CREATE parameters,
    // RMI_RTT_INIT_RIPAS per RTT entry, RMI_DATA_CREATE per granule in
    // ascending IPA, then the one runnable REC.
    let dfr0 = mrs!("id_aa64dfr0_el1");
    let mut params = [0u8; 0x1000];
    params[8] = c.ipa_bits as u8; // s2sz
    // num_bps/num_wps: ID_AA64DFR0_EL1.BRPs/WRPs as they stand (the number of
    // breakpoints/watchpoints minus one), as TF-RMM's RMI_FEATURES reports them.
    params[0x18] = ((dfr0 >> 12) & 0xf) as u8;
    params[0x20] = ((dfr0 >> 20) & 0xf) as u8;
    params[0x30] = c.algo as u8; // RmiHashAlgorithm: 0 SHA-256, 1 SHA-512
    st.rim = c.algo.hash(&params);

    let up = |x: u64| (x + GRANULE - 1) & !(GRANULE - 1);
    let kbase = kern & !(GRANULE - 1);
    let dend = dtb + crate::dtb::FDT_MAX_SIZE as u64;
    // Blobs in ascending IPA: (base, end of the measured data, end of the
    // RIPAS RAM footprint).
    let mut blobs = [
        (kbase, up(kern + c.img_size), up(kern + kern_size)),
        (dtb, dend, dend),
    ];
    if blobs[1].0 < blobs[0].0 {
        blobs.swap(0, 1);
    }
    let ram_end = ram + c.mem_bytes();
    let set_ram = |st: &mut State, s: u64, e: u64| {
        let mut a = s;
        while a < e {
            if let Some(p) = ripas_ptr(st, a) {
                // SAFETY: inside the RIPAS array.
                unsafe { p.write(RIPAS_RAM) };
            }
            a += GRANULE;
        }
    };
    // RMM 2.0 (TF-RMM v0.9.0) no longer measures RMI_RTT_INIT_RIPAS.
    let measure_ripas = !c.rmm_v2;
    if c.ripas == InitRipas::All {
        if measure_ripas {
            rim_init_ripas(c.algo, &mut st.rim, ram, ram_end, c.ipa_bits);
        }
        set_ram(&mut st, ram, ram_end);
    } else {
        for &(s, _, e) in &blobs {
            let e = e.min(ram_end);
            if s < e {
                if measure_ripas {
                    rim_init_ripas(c.algo, &mut st.rim, s, e, c.ipa_bits);
                }
                set_ram(&mut st, s, e);
            }
        }
    }
    for &(s, e, _) in &blobs {
        let mut a = s;
        while a < e.min(ram_end) {
            rim_data(c.algo, &mut st.rim, a);
            a += GRANULE;
        }
    }
    rim_rec(c.algo, &mut st.rim, true, kern, dtb);
    if c.misbehave == Misbehave::RipasDestroyed {
        let g = granules / 2;
        // SAFETY: inside the RIPAS array.
        unsafe { ((ripas + g) as *mut u8).write(RIPAS_DESTROYED) };
        log!(
            "realm: host destroyed the granule at IPA {:#x} (misbehave)",
            ram + g * GRANULE
        );
    }
    // Stage 2 for protected RAM: mapped iff RIPAS RAM.
    let mut g = 0;
    while g < granules {
        // SAFETY: inside the RIPAS array.
        if unsafe { ((ripas + g) as *const u8).read() } == RIPAS_RAM {
            s2.map_page(
                ram + g * GRANULE,
                layout::GUEST_RAM_PA + g * GRANULE,
                crate::s2::NORMAL,
            );
        }
        g += 1;
    }
    let mut hex = [0u8; 128];
    let hl = c.algo.len();
    for (i, b) in st.rim[..hl].iter().enumerate() {
        const H: &[u8; 16] = b"0123456789abcdef";
        hex[2 * i] = H[(b >> 4) as usize];
        hex[2 * i + 1] = H[(b & 15) as usize];
    }
    log!(
        "realm: IPA width {} (shared bit {:#x}), initial RIPAS RAM over {}, RIM {}:{}",
        c.ipa_bits,
        sb,
        if c.ripas == InitRipas::All {
            "all RAM"
        } else {
            "image + DTB only"
        },
        c.algo.name(),
        core::str::from_utf8(&hex[..2 * hl]).unwrap_or("?")
    );
    log!(
        "realm params: s2sz={} num_bps={} num_wps={} sve_vl=0 pmu=off hash={}",
        c.ipa_bits,
        params[0x18],
        params[0x20],
        c.algo.name()
    );
    *STATE.lock() = Some(st);
}

fn protected_size() -> u64 {
    1u64 << (cfg().ipa_bits - 1)
}
fn in_par(ipa: u64) -> bool {
    ipa < protected_size()
}

/// Logs an SEA injection; after 16 of them, quietly (the counters go on).
fn sea_log(args: core::fmt::Arguments) {
    let n = SEA_INJECTED.load(Ordering::Relaxed);
    if n < 16 {
        log!("{}", args);
    } else if n == 16 {
        log!("realm: further SEA messages suppressed (see the counters)");
    }
}

static SEA_LAST_PC: AtomicU64 = AtomicU64::new(u64::MAX);
static SEA_REPEATS: AtomicU64 = AtomicU64::new(0);
/// Consecutive SEAs at one PC after which the run ends (a guest that
/// retries a faulting access forever would otherwise only time out).
const SEA_STORM: u64 = 10_000;

fn sea(v: &mut VCpu, esr_el2: u64) {
    SEA_INJECTED.fetch_add(1, Ordering::Relaxed);
    let pc = mrs!("elr_el2");
    if SEA_LAST_PC.swap(pc, Ordering::Relaxed) == pc {
        if SEA_REPEATS.fetch_add(1, Ordering::Relaxed) + 1 >= SEA_STORM {
            stop(
                status::GUEST_EXCEPTION,
                format_args!(
                    "GUEST WEDGED: {} synchronous external aborts in a row at pc={:#x} (the guest retries the faulting access)",
                    SEA_STORM, pc
                ),
            );
        }
    } else {
        SEA_REPEATS.store(0, Ordering::Relaxed);
    }
    // ESR_EL2 copied except EC (same-EL abort class), FSC = SEA, FnV and
    // S1PTW cleared, EA (bit 9) set (TF-RMM calc_esr_idabort).
    let ec = (esr_el2 >> 26) + 1; // 0x20 -> 0x21, 0x24 -> 0x25 (lower-EL fix in inject_sync)
    let esr =
        (esr_el2 & !((0x3f << 26) | 0x3f | (1 << 10) | (1 << 7))) | (ec << 26) | (1 << 9) | 0x10;
    let far = mrs!("far_el2");
    inject_sync(v, esr, Some(far), pc);
}

/// Realm data aborts the RMM handles itself. Returns true when handled.
pub fn data_abort_filter(v: &mut VCpu, esr: u64, ipa: u64) -> bool {
    let sb = cfg().shared_bit();
    let dfsc = esr & 0x3f;
    if dfsc <= 0x03 || ipa >= 2 * protected_size() {
        // address size fault: outside the IPA space
        sea(v, esr);
        return true;
    }
    if ipa & sb != 0 {
        return false; // unprotected: exit to the host (emulation)
    }
    let r = {
        let g = STATE.lock();
        match g.as_ref() {
            Some(st) => ripas_of(st, ipa & !(GRANULE - 1)),
            None => RIPAS_EMPTY,
        }
    };
    match r {
        RIPAS_EMPTY => {
            if ipa < layout::RAM_IPA {
                PROTECTED_MMIO.fetch_add(1, Ordering::Relaxed);
                sea_log(format_args!(
                    "realm: data access to protected IPA {:#x} (device address without the shared bit): SEA injected",
                    ipa
                ));
            } else {
                EMPTY_TOUCHES.fetch_add(1, Ordering::Relaxed);
                sea_log(format_args!(
                    "realm: data access to RIPAS EMPTY IPA {:#x}: SEA injected",
                    ipa
                ));
            }
            sea(v, esr);
            true
        }
        RIPAS_DESTROYED => stop(
            status::REALM_FATAL,
            format_args!(
                "REALM FATAL: access to a DESTROYED granule at IPA {:#x}: the host cannot map it",
                ipa
            ),
        ),
        _ => false,
    }
}

pub fn instruction_abort(v: &mut VCpu, esr: u64, ipa: u64) -> bool {
    let sb = cfg().shared_bit();
    let r = {
        let g = STATE.lock();
        g.as_ref()
            .map(|st| ripas_of(st, ipa & !(GRANULE - 1)))
            .unwrap_or(RIPAS_EMPTY)
    };
    if ipa & sb != 0 || r == RIPAS_EMPTY {
        if ipa & sb == 0 && ipa >= layout::RAM_IPA {
            EMPTY_TOUCHES.fetch_add(1, Ordering::Relaxed);
        }
        sea_log(format_args!(
            "realm: instruction fetch from {} IPA {:#x}: SEA injected",
            if ipa & sb != 0 {
                "unprotected"
            } else {
                "EMPTY"
            },
            ipa
        ));
        sea(v, esr);
        return true;
    }
    false
}

/// Handles an SMC if it is an RSI call. Returns false for other FIDs.
pub fn rsi_call(v: &mut VCpu) -> bool {
    let fid = v.x[0] & 0xfffe_ffff; // SVE hint bit ignored
    if !(RSI_VERSION..=0xc400_01af).contains(&fid) {
        return false;
    }
    RSI_CALLS.fetch_add(1, Ordering::Relaxed);
    let c = cfg();
    let mut g = STATE.lock();
    let Some(st) = g.as_mut() else {
        crate::fatal(format_args!("realm state missing"))
    };
    let x = v.x;
    let mut out = [0u64; 9];
    match fid {
        RSI_VERSION => {
            if c.misbehave == Misbehave::Rsi2Only {
                // An RMM whose lowest revision is 2.0: every 1.x request refused.
                const VERSION_2_0: u64 = 2 << 16;
                out[0] = if x[1] == VERSION_2_0 {
                    SUCCESS
                } else {
                    ERROR_INPUT
                };
                out[1] = VERSION_2_0;
                out[2] = VERSION_2_0;
            } else if c.rmm_rel0 {
                // rel0: exactly 1.0; x1 = x2 = 1.0
                out[0] = if x[1] == VERSION_1_0 {
                    SUCCESS
                } else {
                    ERROR_INPUT
                };
                out[1] = VERSION_1_0;
                out[2] = VERSION_1_0;
            } else {
                // main: 1.0 or 1.1 (x1 = the request); x2 = 1.1
                if x[1] == VERSION_1_0 || x[1] == VERSION_1_1 {
                    out[0] = SUCCESS;
                    out[1] = x[1];
                } else {
                    out[0] = ERROR_INPUT;
                    out[1] = VERSION_1_1;
                }
                out[2] = VERSION_1_1;
            }
        }
        RSI_FEATURES => {
            out[0] = SUCCESS;
            out[1] = 0;
        }
        RSI_MEASUREMENT_READ => {
            if x[1] > 4 {
                out[0] = ERROR_INPUT;
            } else {
                let m = if x[1] == 0 {
                    &st.rim
                } else {
                    &st.rem[x[1] as usize - 1]
                };
                for i in 0..8 {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(&m[i * 8..i * 8 + 8]);
                    // the hash's words; zeros past its length
                    out[i + 1] = u64::from_le_bytes(w);
                }
                out[0] = SUCCESS;
            }
        }
        RSI_MEASUREMENT_EXTEND => {
            if x[1] == 0 || x[1] > 4 || x[2] > 64 {
                out[0] = ERROR_INPUT;
            } else {
                let mut data = [0u8; 64];
                for i in 0..8 {
                    data[i * 8..i * 8 + 8].copy_from_slice(&x[3 + i].to_le_bytes());
                }
                let m = &mut st.rem[x[1] as usize - 1];
                let mut h = c.algo.hasher();
                h.update(&m[..c.algo.len()]);
                h.update(&data[..x[2] as usize]);
                *m = h.finish();
                out[0] = SUCCESS;
            }
        }
        RSI_ATTEST_TOKEN_INIT => {
            let t = &mut st.token[v.idx];
            for i in 0..8 {
                t.challenge[i * 8..i * 8 + 8].copy_from_slice(&x[1 + i].to_le_bytes());
            }
            t.copied = 0;
            // SAFETY: the token buffer is TOKEN_BUF_SIZE bytes of pool memory.
            let buf = unsafe { core::slice::from_raw_parts_mut(t.buf as *mut u8, TOKEN_BUF_SIZE) };
            let (rim, rem) = (st.rim, st.rem);
            let t = &mut st.token[v.idx];
            t.len = crate::token::build(buf, &t.challenge, c.algo, &rim, &rem, &c.rpv, c.rmm_v2);
            out[0] = SUCCESS;
            out[1] = TOKEN_BUF_SIZE as u64;
        }
        RSI_ATTEST_TOKEN_CONTINUE => {
            let (ipa, off, size) = (x[1], x[2], x[3]);
            // Argument checks, then the token state, then the granule's
            // RIPAS (the order of TF-RMM's handler).
            let bad_args = !ipa.is_multiple_of(GRANULE)
                || off >= GRANULE
                || off.checked_add(size).is_none_or(|e| e > GRANULE)
                || !in_par(ipa);
            if bad_args {
                out[0] = ERROR_INPUT;
            } else if st.token[v.idx].len == 0 {
                out[0] = ERROR_STATE;
            } else if ripas_of(st, ipa) != RIPAS_RAM {
                out[0] = ERROR_INPUT;
            } else if size == 0 {
                out[0] = INCOMPLETE;
            } else {
                let t = &mut st.token[v.idx];
                let left = t.len - t.copied;
                let n = (size as usize).min(left);
                // SAFETY: destination is inside one RIPAS-RAM granule of guest
                // RAM (checked), source inside the token buffer.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        (t.buf as usize + t.copied) as *const u8,
                        (pa_of(ipa) + off) as *mut u8,
                        n,
                    )
                };
                t.copied += n;
                out[1] = n as u64;
                if t.copied == t.len {
                    t.len = 0;
                    t.copied = 0;
                    out[0] = SUCCESS;
                } else {
                    out[0] = INCOMPLETE;
                }
            }
        }
        RSI_REALM_CONFIG => {
            let ipa = x[1];
            if !ipa.is_multiple_of(GRANULE) || !in_par(ipa) || ripas_of(st, ipa) != RIPAS_RAM {
                out[0] = ERROR_INPUT;
            } else {
                let p = pa_of(ipa);
                let vtr = mrs!("ich_vtr_el2") as u32;
                // SAFETY: one RIPAS-RAM granule of guest RAM.
                unsafe {
                    core::ptr::write_unaligned(p as *mut u64, c.ipa_bits as u64);
                    core::ptr::write((p + 8) as *mut u8, c.algo as u8); // RsiHashAlgorithm
                    if !c.rmm_rel0 {
                        core::ptr::write_unaligned((p + 0x10) as *mut u64, 0); // num_aux_planes
                        core::ptr::write_unaligned((p + 0x18) as *mut u32, vtr);
                        core::ptr::write_unaligned((p + 0x20) as *mut u64, 0); // ats_plane
                    }
                    core::ptr::copy_nonoverlapping(c.rpv.as_ptr(), (p + 0x200) as *mut u8, 64);
                }
                out[0] = SUCCESS;
            }
        }
        RSI_IPA_STATE_SET => {
            let (base, top, r, flags) = (x[1], x[2], x[3], x[4]);
            if r > RIPAS_RAM as u64
                || base % GRANULE != 0
                || top % GRANULE != 0
                || top <= base
                || top > protected_size()
            {
                out[0] = ERROR_INPUT;
            } else {
                let (next, resp) = host_set_ripas(
                    st,
                    base,
                    top,
                    r as u8,
                    flags == CHANGE_DESTROYED,
                    c.misbehave,
                );
                crate::s2::tlb_flush_guest();
                out[0] = SUCCESS;
                out[1] = next;
                out[2] = resp;
            }
        }
        RSI_IPA_STATE_GET => {
            let (start, end) = (x[1], x[2]);
            if start % GRANULE != 0
                || end % GRANULE != 0
                || !in_par(start)
                || end == 0
                || !in_par(end - 1)
                || start >= end
            {
                out[0] = ERROR_INPUT;
            } else {
                // Like TF-RMM, stop at the end of the last-level RTT that
                // holds `start`: the model always assumes a level-3 table
                // there, so the answer ends at the next 2 MiB boundary.
                let limit = end.min((start | (BLOCK_2M - 1)) + 1);
                let r = ripas_of(st, start);
                let mut a = start + GRANULE;
                while a < limit && ripas_of(st, a) == r {
                    a += GRANULE;
                }
                out[0] = SUCCESS;
                out[1] = a;
                out[2] = r as u64;
            }
        }
        RSI_HOST_CALL => {
            let ipa = x[1];
            // 256-byte aligned (so inside one granule), protected, RIPAS RAM.
            let ok = ipa.is_multiple_of(0x100)
                && in_par(ipa)
                && ripas_of(st, ipa & !(GRANULE - 1)) == RIPAS_RAM;
            if !ok {
                out[0] = ERROR_INPUT;
            } else {
                // SAFETY: 256-byte aligned struct inside a RAM granule.
                let imm = unsafe { core::ptr::read_volatile(pa_of(ipa) as *const u32) } & 0xffff;
                // SAFETY: as above.
                let g0 = unsafe { core::ptr::read_volatile((pa_of(ipa) + 8) as *const u64) };
                log!(
                    "realm: RSI_HOST_CALL imm={:#x} x0={:#x} (host returns the registers unchanged)",
                    imm,
                    g0
                );
                out[0] = SUCCESS;
            }
        }
        _ => {
            out[0] = u64::MAX; // SMC_UNKNOWN for RSI FIDs the model lacks
        }
    }
    // TF-RMM writes x0..x3 (results, then zeros) and keeps x4 and up,
    // except MEASUREMENT_READ, which writes x1..x8.
    let n = match fid {
        RSI_MEASUREMENT_READ => 9,
        _ => 4,
    };
    v.x[..n].copy_from_slice(&out[..n]);
    true
}

/// The host side of RSI_IPA_STATE_SET (KVM + kvmtool-cca): applies the
/// change granule by granule; returns (next, response).
fn host_set_ripas(
    st: &State,
    base: u64,
    top: u64,
    r: u8,
    change_destroyed: bool,
    mis: Misbehave,
) -> (u64, u64) {
    if r == RIPAS_RAM && mis == Misbehave::RipasReject {
        log!(
            "realm: host REJECTS the RIPAS change [{:#x}, {:#x}) to RAM (misbehave)",
            base,
            top
        );
        return (base, REJECT);
    }
    let mut a = base;
    while a < top {
        let cur = ripas_of(st, a);
        let in_ram = ripas_ptr(st, a).is_some();
        if r == RIPAS_RAM {
            if !in_ram {
                // No memory behind this IPA: the host cannot make it RAM.
                break;
            }
            if cur == RIPAS_DESTROYED && !change_destroyed {
                break;
            }
            set_ripas(st, a, RIPAS_RAM);
        } else if in_ram && cur != RIPAS_EMPTY {
            set_ripas(st, a, RIPAS_EMPTY);
        }
        a += GRANULE;
        if mis == Misbehave::RipasOneGranule {
            break;
        }
    }
    let resp = if r == RIPAS_RAM && a != top && mis != Misbehave::RipasOneGranule {
        REJECT
    } else {
        ACCEPT
    };
    (a, resp)
}
