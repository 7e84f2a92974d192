//! Realm-side boot and checks: RSI calls as a realm guest makes them.

use crate::fdt_read::{Fdt, cell64};
use crate::sha512::Algo;
use crate::{check, say, smccc};
use core::sync::atomic::{AtomicU64, Ordering};

const RSI_VERSION: u64 = 0xc400_0190;
const RSI_FEATURES: u64 = 0xc400_0191;
const RSI_MEASUREMENT_READ: u64 = 0xc400_0192;
const RSI_MEASUREMENT_EXTEND: u64 = 0xc400_0193;
const RSI_TOKEN_INIT: u64 = 0xc400_0194;
const RSI_TOKEN_CONTINUE: u64 = 0xc400_0195;
const RSI_REALM_CONFIG: u64 = 0xc400_0196;
const RSI_IPA_STATE_SET: u64 = 0xc400_0197;
const RSI_IPA_STATE_GET: u64 = 0xc400_0198;
const RSI_HOST_CALL: u64 = 0xc400_0199;

const SUCCESS: u64 = 0;
const ERROR_INPUT: u64 = 1;
const ERROR_STATE: u64 = 2;
const INCOMPLETE: u64 = 3;

static RAM_BASE: AtomicU64 = AtomicU64::new(0);
static RAM_SIZE: AtomicU64 = AtomicU64::new(0);
static SHARED: AtomicU64 = AtomicU64::new(0);
static IPA_BITS: AtomicU64 = AtomicU64::new(0);
static SET_CALLS: AtomicU64 = AtomicU64::new(0);
static LAST_REJECT: AtomicU64 = AtomicU64::new(0);

#[repr(C, align(4096))]
struct Page([u8; 4096]);
static mut CONFIG: Page = Page([0; 4096]);
static mut TOKEN: [Page; 2] = [Page([0; 4096]), Page([0; 4096])];
static mut HOSTCALL: Page = Page([0; 4096]);

/// An RSI call: x0 = FID, x1..x10 arguments; returns x0..x8.
fn rsi(args: &[u64]) -> [u64; 9] {
    let mut a = [0u64; 11];
    a[..args.len()].copy_from_slice(args);
    let mut r = [0u64; 9];
    // SAFETY: an SMC to the RMM (model); results in x0..x8, x9..x17 may be clobbered.
    unsafe {
        core::arch::asm!("smc #0",
            inout("x0") a[0] => r[0], inout("x1") a[1] => r[1], inout("x2") a[2] => r[2],
            inout("x3") a[3] => r[3], inout("x4") a[4] => r[4], inout("x5") a[5] => r[5],
            inout("x6") a[6] => r[6], inout("x7") a[7] => r[7], inout("x8") a[8] => r[8],
            inout("x9") a[9] => _, inout("x10") a[10] => _, out("x11") _, out("x12") _,
            out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _, options(nostack));
    }
    r
}

/// IPA_STATE_SET over [base, top) until done; returns false on REJECT or error.
fn set_ripas(base: u64, top: u64, ripas: u64, flags: u64) -> bool {
    let mut b = base;
    while b < top {
        let r = rsi(&[RSI_IPA_STATE_SET, b, top, ripas, flags]);
        SET_CALLS.fetch_add(1, Ordering::Relaxed);
        if r[0] != SUCCESS {
            say!("guest: IPA_STATE_SET error {}", r[0]);
            return false;
        }
        if r[2] != 0 {
            LAST_REJECT.store(r[1], Ordering::Relaxed);
            say!("guest: IPA_STATE_SET REJECTED at {:#x}", r[1]);
            return false;
        }
        if r[1] <= b || r[1] > top {
            say!("guest: IPA_STATE_SET bad progress {:#x}", r[1]);
            return false;
        }
        b = r[1];
    }
    true
}

/// The realm's shared bit (after `realm_boot`).
pub fn shared_bit() -> u64 {
    SHARED.load(Ordering::Relaxed)
}

/// Makes [base, top) RIPAS EMPTY (shared memory, used at the alias).
pub fn set_empty(base: u64, top: u64) -> bool {
    set_ripas(base, top, 0, 1)
}

fn ripas_get(ipa: u64) -> u64 {
    let r = rsi(&[RSI_IPA_STATE_GET, ipa, ipa + 4096]);
    if r[0] == SUCCESS { r[2] } else { 99 }
}

pub fn realm_boot(_dtb: u64, fdt: Option<&Fdt>, test: &str) {
    let v = rsi(&[RSI_VERSION, 0x1_0000]);
    if v[0] != SUCCESS {
        // No console yet (the UART needs the shared bit): give up loudly.
        crate::psci_reset();
    }
    let reg = fdt.and_then(|f| f.prop("/memory", "reg"));
    let base = reg.and_then(|r| cell64(r, 0)).unwrap_or(0x8000_0000);
    let size = reg.and_then(|r| cell64(r, 1)).unwrap_or(0);
    RAM_BASE.store(base, Ordering::Relaxed);
    RAM_SIZE.store(size, Ordering::Relaxed);
    // The realm config tells the shared bit; the buffer is in .bss (RAM).
    let cfg = &raw mut CONFIG as u64;
    let r = rsi(&[RSI_REALM_CONFIG, cfg]);
    if r[0] != SUCCESS {
        crate::psci_reset();
    }
    // SAFETY: the RMM wrote the config granule.
    let bits = unsafe { core::ptr::read_volatile(cfg as *const u64) };
    IPA_BITS.store(bits, Ordering::Relaxed);
    let shared = 1u64 << (bits - 1);
    SHARED.store(shared, Ordering::Relaxed);
    crate::set_uart(0x0100_0000 | shared);
    say!(
        "guest: realm, RSI 1.0 ok, IPA width {}, shared bit {:#x}, UART via the alias",
        bits,
        shared
    );
    if base.checked_add(size).is_none_or(|end| end > shared) {
        say!(
            "guest: DTB memory [{:#x}, +{:#x}) lies beyond the protected IPA space; halting",
            base,
            size
        );
        crate::psci_reset();
    }
    let end_ripas = ripas_get(base + size - 4096);
    say!("guest: initial RIPAS at the end of RAM = {}", end_ripas);
    // Make all DT memory RIPAS RAM before using it (never resurrects DESTROYED).
    if !set_ripas(base, base + size, 1, 0) {
        if test == "realm-touch-destroyed" {
            let a = LAST_REJECT.load(Ordering::Relaxed);
            say!("guest: touching the granule the host refused at {:#x}", a);
            // SAFETY: deliberately touches a granule that is not RIPAS RAM.
            unsafe { core::ptr::read_volatile(a as *const u64) };
        }
        say!("guest: cannot make RAM RIPAS RAM; halting");
        crate::psci_reset();
    }
    say!(
        "guest: RAM [{:#x}, {:#x}) is RIPAS RAM after {} IPA_STATE_SET call(s)",
        base,
        base + size,
        SET_CALLS.load(Ordering::Relaxed)
    );
}

fn hex(b: &[u8], out: &mut [u8]) -> usize {
    const H: &[u8; 16] = b"0123456789abcdef";
    for (i, x) in b.iter().enumerate() {
        out[2 * i] = H[(x >> 4) as usize];
        out[2 * i + 1] = H[(x & 15) as usize];
    }
    2 * b.len()
}

/// One CBOR item head at `*pos`: (major type, argument); the argument of a
/// definite-length item only (indefinite lengths and floats are refused).
fn cbor_head(b: &[u8], pos: &mut usize) -> Option<(u8, u64)> {
    let ib = *b.get(*pos)?;
    *pos += 1;
    let n = match ib & 0x1f {
        v @ 0..=23 => return Some((ib >> 5, v as u64)),
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        _ => return None,
    };
    let bytes = b.get(*pos..*pos + n)?;
    *pos += n;
    Some((
        ib >> 5,
        bytes.iter().fold(0u64, |a, &x| (a << 8) | x as u64),
    ))
}

/// A byte string at `*pos`, skipped.
fn cbor_bstr(b: &[u8], pos: &mut usize) -> bool {
    match cbor_head(b, pos) {
        Some((2, len)) if (len as usize) <= b.len() - *pos => {
            *pos += len as usize;
            true
        }
        _ => false,
    }
}

/// The outer structure of a CCA attestation token: RMM 1.0 (TF-RMM v0.8.0,
/// the model): tag 399 around {44234: bstr, 44241: bstr}; RMM 2.0 (TF-RMM
/// v0.9.0): tag 907, a CMW collection whose two entries are [263, bstr].
/// Both keys once each, nothing after the map.
fn cca_token_ok(tok: &[u8]) -> bool {
    let mut pos = 0;
    let cmw = match cbor_head(tok, &mut pos) {
        Some((6, 399)) => false,
        Some((6, 907)) => true,
        _ => return false,
    };
    if cbor_head(tok, &mut pos) != Some((5, 2)) {
        return false;
    }
    let mut seen = [false; 2];
    for _ in 0..2 {
        let k = match cbor_head(tok, &mut pos) {
            Some((0, 44234)) => 0,
            Some((0, 44241)) => 1,
            _ => return false,
        };
        if seen[k] {
            return false;
        }
        seen[k] = true;
        if cmw
            && (cbor_head(tok, &mut pos) != Some((4, 2))
                || cbor_head(tok, &mut pos) != Some((0, 263)))
        {
            return false;
        }
        if !cbor_bstr(tok, &mut pos) {
            return false;
        }
    }
    pos == tok.len()
}

fn words_to_bytes(w: &[u64]) -> [u8; 64] {
    let mut b = [0u8; 64];
    for (i, x) in w.iter().enumerate().take(8) {
        b[i * 8..i * 8 + 8].copy_from_slice(&x.to_le_bytes());
    }
    b
}

fn realm_checks() -> ! {
    let base = RAM_BASE.load(Ordering::Relaxed);
    let size = RAM_SIZE.load(Ordering::Relaxed);
    let shared = SHARED.load(Ordering::Relaxed);
    // VERSION negotiation (TF-RMM main: 1.0 and 1.1).
    let v = rsi(&[RSI_VERSION, 0x1_0001]);
    if v[0] == SUCCESS {
        say!("guest: the RMM speaks RSI 1.1 (TF-RMM main)");
        check(
            "RSI_VERSION(1.1) = SUCCESS, lower 1.1, higher 1.1",
            v[1] == 0x1_0001 && v[2] == 0x1_0001,
        );
        let v = rsi(&[RSI_VERSION, 0x2_0000]);
        check(
            "RSI_VERSION(2.0) = ERROR_INPUT, 1.1",
            v[0] == ERROR_INPUT && v[1] == 0x1_0001 && v[2] == 0x1_0001,
        );
    } else {
        say!("guest: the RMM speaks RSI 1.0 only (rel0)");
        check(
            "RSI_VERSION(1.1) = ERROR_INPUT, 1.0, 1.0",
            v[0] == ERROR_INPUT && v[1] == 0x1_0000 && v[2] == 0x1_0000,
        );
        let v = rsi(&[RSI_VERSION, 0x1_0000]);
        check(
            "RSI_VERSION(1.0) = SUCCESS, 1.0, 1.0",
            v[0] == SUCCESS && v[1] == 0x1_0000 && v[2] == 0x1_0000,
        );
    }
    let f = rsi(&[RSI_FEATURES, 0]);
    check("RSI_FEATURES(0) = 0", f[0] == SUCCESS && f[1] == 0);
    check(
        "IPA width 33 with <= 2 GiB",
        IPA_BITS.load(Ordering::Relaxed) == 33 || size > (2 << 30),
    );
    // SAFETY: the config granule was written by the RMM.
    let algo = unsafe { core::ptr::read_volatile((&raw const CONFIG as u64 + 8) as *const u8) };
    check(
        "REALM_CONFIG hash algorithm is SHA-256 or SHA-512 (byte @8)",
        algo <= 1,
    );
    let halg = if algo == 1 {
        Algo::Sha512
    } else {
        Algo::Sha256
    };
    let hl = halg.len();
    say!("guest: measurement algorithm {}", halg.name());
    // SAFETY: as above.
    let rpv0 = unsafe { core::ptr::read_volatile((&raw const CONFIG as u64 + 0x200) as *const u8) };
    say!("guest: RPV first byte {:#x}", rpv0);
    check(
        "REALM_CONFIG unaligned = ERROR_INPUT",
        rsi(&[RSI_REALM_CONFIG, &raw const CONFIG as u64 + 8])[0] == ERROR_INPUT,
    );
    check(
        "REALM_CONFIG outside the protected half = ERROR_INPUT",
        rsi(&[RSI_REALM_CONFIG, shared | base])[0] == ERROR_INPUT,
    );

    // Measurements.
    let rim = rsi(&[RSI_MEASUREMENT_READ, 0]);
    check(
        "MEASUREMENT_READ(RIM)",
        rim[0] == SUCCESS
            && rim[1..1 + hl / 8].iter().any(|&w| w != 0)
            && rim[1 + hl / 8..9].iter().all(|&w| w == 0),
    );
    let mut hx = [0u8; 128];
    let n = hex(&words_to_bytes(&rim[1..9])[..hl], &mut hx);
    say!(
        "guest: RIM {}",
        core::str::from_utf8(&hx[..n]).unwrap_or("?")
    );
    check(
        "MEASUREMENT_READ(5) = ERROR_INPUT",
        rsi(&[RSI_MEASUREMENT_READ, 5])[0] == ERROR_INPUT,
    );
    let before = rsi(&[RSI_MEASUREMENT_READ, 1]);
    let data: [u64; 8] = [0x1122_3344_5566_7788, 2, 3, 4, 5, 6, 7, 8];
    let e = rsi(&[
        RSI_MEASUREMENT_EXTEND,
        1,
        40,
        data[0],
        data[1],
        data[2],
        data[3],
        data[4],
        data[5],
        data[6],
        data[7],
    ]);
    check("MEASUREMENT_EXTEND(REM0, 40 bytes)", e[0] == SUCCESS);
    let after = rsi(&[RSI_MEASUREMENT_READ, 1]);
    let mut h = halg.hasher();
    h.update(&words_to_bytes(&before[1..9])[..hl]);
    h.update(&words_to_bytes(&data)[..40]);
    let want = h.finish();
    check(
        "REM0 = H(old REM0 || data)",
        words_to_bytes(&after[1..9]) == want,
    );
    check(
        "MEASUREMENT_EXTEND(RIM) = ERROR_INPUT",
        rsi(&[RSI_MEASUREMENT_EXTEND, 0, 8])[0] == ERROR_INPUT,
    );
    check(
        "MEASUREMENT_EXTEND(size 65) = ERROR_INPUT",
        rsi(&[RSI_MEASUREMENT_EXTEND, 2, 65])[0] == ERROR_INPUT,
    );

    // RIPAS.
    // The answer may stop short of `end` (top <= end): TF-RMM stops at the end
    // of the last-level RTT holding the base, the model at 2 MiB boundaries.
    // Ask again from `top` until the end.
    let first = rsi(&[RSI_IPA_STATE_GET, base, base + size])[1];
    let (mut b, mut ok) = (base, true);
    while ok && b < base + size {
        let g = rsi(&[RSI_IPA_STATE_GET, b, base + size]);
        ok = g[0] == SUCCESS && g[1] > b && g[1] <= base + size && g[2] == 1;
        b = g[1];
    }
    check("IPA_STATE_GET(RAM) = RAM up to the end", ok);
    // Both stop at the end of the level-3 table at the RAM base (the image
    // is there, so TF-RMM has one).
    check(
        "IPA_STATE_GET(RAM base) stops at the 2 MiB boundary",
        first == base + 0x20_0000,
    );
    check(
        "IPA_STATE_GET(device IPA) = EMPTY",
        ripas_get(0x0100_0000) == 0,
    );
    check(
        "IPA_STATE_GET(end beyond PAR) = ERROR_INPUT",
        rsi(&[RSI_IPA_STATE_GET, base, shared + 4096])[0] == ERROR_INPUT,
    );
    check(
        "IPA_STATE_SET(ripas 2) = ERROR_INPUT",
        rsi(&[RSI_IPA_STATE_SET, base, base + 4096, 2, 0])[0] == ERROR_INPUT,
    );
    check(
        "IPA_STATE_SET(unaligned) = ERROR_INPUT",
        rsi(&[RSI_IPA_STATE_SET, base + 8, base + 4096, 1, 0])[0] == ERROR_INPUT,
    );
    check(
        "IPA_STATE_SET(top <= base) = ERROR_INPUT",
        rsi(&[RSI_IPA_STATE_SET, base + 4096, base + 4096, 1, 0])[0] == ERROR_INPUT,
    );
    check(
        "IPA_STATE_SET(beyond PAR) = ERROR_INPUT",
        rsi(&[RSI_IPA_STATE_SET, base, shared + 4096, 1, 0])[0] == ERROR_INPUT,
    );
    // Share one page: EMPTY, then use it through the alias, then take it back.
    let page = base + size - 0x10_0000;
    check(
        "IPA_STATE_SET(page, EMPTY, CHANGE_DESTROYED)",
        set_ripas(page, page + 4096, 0, 1),
    );
    check("IPA_STATE_GET(page) = EMPTY", ripas_get(page) == 0);
    // SAFETY: the shared alias of a page this guest just made EMPTY.
    unsafe { core::ptr::write_volatile((page | shared) as *mut u64, 0xfeed) };
    // SAFETY: as above.
    check(
        "shared page usable through the alias",
        unsafe { core::ptr::read_volatile((page | shared) as *const u64) } == 0xfeed,
    );
    check(
        "IPA_STATE_SET(page, RAM)",
        set_ripas(page, page + 4096, 1, 0),
    );
    // SAFETY: the page is RIPAS RAM again.
    check(
        "re-accepted page reads as zero",
        unsafe { core::ptr::read_volatile(page as *const u64) } == 0,
    );

    // Attestation.
    let tok0 = &raw mut TOKEN as u64;
    check(
        "TOKEN_CONTINUE before INIT = ERROR_STATE",
        rsi(&[RSI_TOKEN_CONTINUE, tok0, 0, 4096])[0] == ERROR_STATE,
    );
    let ch: [u64; 8] = [0x6368_616c_6c65_6e67, 1, 2, 3, 4, 5, 6, 7];
    let i = rsi(&[
        RSI_TOKEN_INIT,
        ch[0],
        ch[1],
        ch[2],
        ch[3],
        ch[4],
        ch[5],
        ch[6],
        ch[7],
    ]);
    check(
        "TOKEN_INIT = SUCCESS with an upper bound",
        i[0] == SUCCESS && i[1] >= 512,
    );
    check(
        "TOKEN_CONTINUE(offset+size > 4096) = ERROR_INPUT",
        rsi(&[RSI_TOKEN_CONTINUE, tok0, 4000, 200])[0] == ERROR_INPUT,
    );
    let mut total = 0u64;
    let mut calls = 0;
    let ok = loop {
        let gran = tok0 + (total / 4096) * 4096;
        let off = total % 4096;
        // small chunks to exercise INCOMPLETE
        let r = rsi(&[RSI_TOKEN_CONTINUE, gran, off, 256.min(4096 - off)]);
        calls += 1;
        if r[0] != SUCCESS && r[0] != INCOMPLETE {
            break false;
        }
        total += r[1];
        if r[0] == SUCCESS {
            break true;
        }
        if calls > 100 || total >= 8192 {
            break false;
        }
    };
    check("TOKEN_CONTINUE loop ends with SUCCESS", ok && calls > 1);
    say!("guest: token {} bytes in {} call(s)", total, calls);
    // SAFETY: the token pages were written by the RMM.
    let tok = unsafe { core::slice::from_raw_parts(tok0 as *const u8, total as usize) };
    check(
        "token is a CCA token (CBOR tag 399, or tag 907 with [263, bstr] entries)",
        cca_token_ok(tok),
    );
    let mut line = [0u8; 128];
    for chunk in tok.chunks(64) {
        let n = hex(chunk, &mut line);
        say!(
            "guest: token: {}",
            core::str::from_utf8(&line[..n]).unwrap_or("?")
        );
    }
    check(
        "TOKEN_CONTINUE after SUCCESS = ERROR_STATE",
        rsi(&[RSI_TOKEN_CONTINUE, tok0, 0, 4096])[0] == ERROR_STATE,
    );

    // Host call.
    let hc = &raw mut HOSTCALL as u64;
    // SAFETY: our own RAM page.
    unsafe { core::ptr::write_volatile(hc as *mut u32, 0x42) };
    check(
        "HOST_CALL = SUCCESS",
        rsi(&[RSI_HOST_CALL, hc])[0] == SUCCESS,
    );
    check(
        "HOST_CALL(misaligned) = ERROR_INPUT",
        rsi(&[RSI_HOST_CALL, hc + 8])[0] == ERROR_INPUT,
    );
    // PSCI / SMCCC over SMC.
    check(
        "SMCCC_VERSION over SMC",
        smccc(true, [0x8000_0000, 0, 0, 0])[0] >= 0x1_0000,
    );
    check(
        "PSCI_VERSION over SMC",
        smccc(true, [0x8400_0000, 0, 0, 0])[0] >= 2,
    );
    check(
        "unknown SMC = NOT_SUPPORTED",
        smccc(true, [0xc300_0042, 0, 0, 0])[0] == u64::MAX,
    );
    crate::finish_pub()
}

pub fn realm_tests(test: &str) -> ! {
    let base = RAM_BASE.load(Ordering::Relaxed);
    let size = RAM_SIZE.load(Ordering::Relaxed);
    match test {
        "realm" => realm_checks(),
        "realm-empty" => {
            let page = base + size / 2;
            set_ripas(page, page + 4096, 0, 1);
            say!("guest: reading RIPAS EMPTY memory at {:#x}", page);
            // SAFETY: deliberately touches EMPTY memory (expects an SEA).
            let v = unsafe { core::ptr::read_volatile(page as *const u64) };
            say!("guest: read {:#x} from EMPTY memory!", v);
            crate::psci_reset()
        }
        "realm-protmmio" => {
            say!("guest: reading the UART at its protected address 0x1000005");
            // SAFETY: deliberately a device access without the shared bit.
            let v = unsafe { core::ptr::read_volatile(0x0100_0005 as *const u8) };
            say!("guest: protected MMIO read {:#x}!", v);
            crate::psci_reset()
        }
        "realm-exec-shared" => {
            let f = crate::psci_reset as *const () as u64 | SHARED.load(Ordering::Relaxed);
            say!(
                "guest: jumping to the shared alias {:#x} of its own code",
                f
            );
            // SAFETY: deliberately executes from unprotected IPA (expects an SEA).
            unsafe { core::arch::asm!("blr {}", in(reg) f) };
            crate::psci_reset()
        }
        "realm-hvc" => {
            say!("guest: issuing HVC in a realm");
            // SAFETY: PSCI_VERSION by HVC (expects an UNDEF); the address after
            // the HVC goes to AFTER_HVC first, for the exception handler.
            unsafe {
                core::arch::asm!(
                    "adr {t}, 2f",
                    "str {t}, [{p}]",
                    "hvc #0",
                    "2:",
                    t = out(reg) _,
                    p = in(reg) crate::AFTER_HVC.as_ptr(),
                    inout("x0") 0x8400_0000u64 => _,
                    out("x1") _, out("x2") _, out("x3") _,
                    options(nostack),
                );
            }
            say!("guest: HVC returned!");
            crate::psci_reset()
        }
        _ => {
            say!("guest: unknown test {}", test);
            check("known test name", false);
            crate::finish_pub()
        }
    }
}
