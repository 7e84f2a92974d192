//! A RAM-backed virtio-blk device on virtio-mmio (modern, version 2), as
//! kvmtool's `--disk ... --virtio-transport mmio` gives a guest: one window of
//! 0x200 bytes in kvmtool's virtio-MMIO area (0x3000000), one request queue.
//!
//! Everything the guest hands the device is hostile input: queue sizes,
//! descriptor indices and chains, lengths and addresses are checked, and a bad
//! one puts the device in DEVICE_NEEDS_RESET (as QEMU's `virtio_error`) instead
//! of touching model memory. In realm mode the device may only reach memory the
//! realm has shared: an address without the shared bit, or a shared-alias granule
//! whose RIPAS is still RAM (on real hardware a different page from the realm's),
//! is counted in `virtio-protected-dma` and refused.

use crate::layout;
use crate::sys::{SpinLock, log};
use core::sync::atomic::{AtomicU64, Ordering};

/// Guest IPA of the device window and its size (kvmtool's VIRTIO_MMIO_IO_SIZE).
pub const MMIO_IPA: u64 = 0x0300_0000;
pub const MMIO_SIZE: u64 = 0x200;
/// The SPI (DT `interrupts` cell) given to the device: the first line after
/// the UARTs. The model raises no interrupt; the guest polls the used ring.
pub const SPI: u32 = 4;
/// Largest disk the model offers, and where it keeps it: the top of the
/// staging area (the image sits at its bottom; `init` checks they do not meet).
pub const MAX_KIB: u64 = 16 * 1024;
/// kvmtool's VIRTIO_BLK_QUEUE_SIZE; a driver may choose any power of two up
/// to it (kvmtool itself ignores the choice: docs/realm-io.md).
const QUEUE_MAX: u32 = 256;

/// Device accesses (DMA) refused because they aimed at protected realm memory.
pub static PROTECTED_DMA: AtomicU64 = AtomicU64::new(0);
/// Requests completed (any status).
pub static REQUESTS: AtomicU64 = AtomicU64::new(0);
/// Flush requests among them.
pub static FLUSHES: AtomicU64 = AtomicU64::new(0);
/// Queue notifications (doorbell writes) for queue 0.
pub static NOTIFIES: AtomicU64 = AtomicU64::new(0);

/// kvmtool offers FLUSH (virtio/blk.c); a RAM disk has nothing to flush, but
/// the driver's flush path is exercised and counted.
const F_FLUSH: u64 = 1 << 9;
const F_VERSION_1: u64 = 1 << 32;
const F_ACCESS_PLATFORM: u64 = 1 << 33;

const S_ACKNOWLEDGE: u32 = 1;
const S_DRIVER: u32 = 2;
const S_DRIVER_OK: u32 = 4;
const S_FEATURES_OK: u32 = 8;
const S_NEEDS_RESET: u32 = 0x40;
const S_FAILED: u32 = 0x80;

const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const T_GET_ID: u32 = 8;
const BLK_OK: u8 = 0;
const BLK_IOERR: u8 = 1;
const BLK_UNSUPP: u8 = 2;

const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
const DESC_F_INDIRECT: u16 = 4;

/// How `--virtio-blk-hostile` lies in the used ring.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BlkHostile {
    /// An id out of the queue's range.
    Id,
    /// A length 4 KiB beyond what the device wrote.
    Len,
}

struct Blk {
    queue_sel: u32,
    dev_feat_sel: u32,
    drv_feat_sel: u32,
    driver_features: u64,
    status: u32,
    queue_num: u32,
    ready: bool,
    desc: u64,
    avail: u64,
    used: u64,
    last_avail: u16,
    isr: u32,
    /// Model address of the disk and its size in bytes (0: no device).
    disk: u64,
    size: u64,
}

impl Blk {
    const RESET: Blk = Blk {
        queue_sel: 0,
        dev_feat_sel: 0,
        drv_feat_sel: 0,
        driver_features: 0,
        status: 0,
        queue_num: 0,
        ready: false,
        desc: 0,
        avail: 0,
        used: 0,
        last_avail: 0,
        isr: 0,
        disk: 0,
        size: 0,
    };

    fn reset(&mut self) {
        let (disk, size) = (self.disk, self.size);
        *self = Blk::RESET;
        self.disk = disk;
        self.size = size;
    }
}

static BLK: SpinLock<Blk> = SpinLock::new(Blk::RESET);

fn features() -> u64 {
    // kvmtool-cca offers ACCESS_PLATFORM to realms (the device goes through
    // the platform's translation: the realm's unprotected alias).
    F_VERSION_1
        | F_FLUSH
        | if crate::cfg().realm {
            F_ACCESS_PLATFORM
        } else {
            0
        }
}

/// Sets up the disk (`kib` KiB, zeroed) if the configuration asks for one.
/// Returns false if it would overlap the staged image.
pub fn init(kib: u64, img_end: u64) -> bool {
    if kib == 0 {
        return true;
    }
    let size = kib << 10;
    let disk = layout::STAGING_END - size;
    if kib > MAX_KIB || disk < img_end {
        return false;
    }
    // SAFETY: the top of the staging area, model memory the guest cannot map
    // (outside guest RAM) and not overlapping the staged image (checked).
    unsafe { core::ptr::write_bytes(disk as *mut u8, 0, size as usize) };
    let mut b = BLK.lock();
    b.disk = disk;
    b.size = size;
    true
}

/// Whether `addr` is in the device window (and a device exists).
pub fn claims(addr: u64) -> bool {
    (MMIO_IPA..MMIO_IPA + MMIO_SIZE).contains(&addr)
        && crate::cfg().virtio_blk_kib != 0
        && crate::cfg().virtio_pci.is_none()
}

pub fn mmio_read(addr: u64, size: u64) -> u64 {
    let b = BLK.lock();
    let off = addr - MMIO_IPA;
    if off >= 0x100 {
        // Config space: capacity (u64, sectors) at 0, blk_size absent.
        let cfg = (b.size / 512).to_le_bytes();
        let mut v = 0u64;
        for i in 0..size.min(8) {
            let o = (off - 0x100 + i) as usize;
            if o < 8 {
                v |= (cfg[o] as u64) << (8 * i);
            }
        }
        return v;
    }
    if size != 4 {
        return 0; // the register area is 32-bit only
    }
    (match off {
        0x000 => 0x7472_6976, // "virt"
        0x004 => 2,
        0x008 => 2,           // block device
        0x00c => 0x4d56_4b4c, // "LKVM", kvmtool's vendor id
        0x010 => match b.dev_feat_sel {
            0 => features() as u32,
            1 => (features() >> 32) as u32,
            _ => 0,
        },
        0x034 if b.queue_sel == 0 => QUEUE_MAX,
        0x044 if b.queue_sel == 0 => b.ready as u32,
        0x060 => b.isr,
        0x070 => b.status,
        0x0fc => 0,
        _ => 0,
    }) as u64
}

pub fn mmio_write(addr: u64, size: u64, val: u64) {
    let mut b = BLK.lock();
    let off = addr - MMIO_IPA;
    if off >= 0x100 || size != 4 {
        return; // config space is read-only; the rest is 32-bit only
    }
    let v = val as u32;
    match off {
        0x014 => b.dev_feat_sel = v,
        0x020 => match b.drv_feat_sel {
            0 => b.driver_features = (b.driver_features & !0xffff_ffff) | v as u64,
            1 => b.driver_features = (b.driver_features & 0xffff_ffff) | (v as u64) << 32,
            _ => {}
        },
        0x024 => b.drv_feat_sel = v,
        // One queue, index 0: the others read QueueNumMax 0 and ignore writes.
        0x030 => b.queue_sel = v,
        _ if b.queue_sel != 0
            && (0x038..0x0b0).contains(&off)
            && off != 0x050
            && off != 0x064
            && off != 0x070 => {}
        0x038 => b.queue_num = v,
        0x044 => b.ready = v & 1 != 0,
        0x050 if v == 0 => {
            NOTIFIES.fetch_add(1, Ordering::Relaxed);
            process(&mut b)
        }
        0x064 => b.isr &= !v,
        0x070 => {
            if v == 0 {
                b.reset();
                return;
            }
            let mut v = v;
            if v & S_FEATURES_OK != 0 && b.status & S_FEATURES_OK == 0 {
                // Accept only what was offered; a realm device needs
                // ACCESS_PLATFORM and VERSION_1 (as Linux requires of it).
                let f = b.driver_features;
                let need = F_VERSION_1 | (features() & F_ACCESS_PLATFORM);
                if f & !features() != 0 || f & need != need {
                    log!(
                        "virtio-blk: driver features {:#x} refused (offered {:#x}): FEATURES_OK not set",
                        f,
                        features()
                    );
                    v &= !S_FEATURES_OK;
                }
            }
            b.status = v | (b.status & S_NEEDS_RESET);
        }
        0x080 => b.desc = (b.desc & !0xffff_ffff) | v as u64,
        0x084 => b.desc = (b.desc & 0xffff_ffff) | (v as u64) << 32,
        0x090 => b.avail = (b.avail & !0xffff_ffff) | v as u64,
        0x094 => b.avail = (b.avail & 0xffff_ffff) | (v as u64) << 32,
        0x0a0 => b.used = (b.used & !0xffff_ffff) | v as u64,
        0x0a4 => b.used = (b.used & 0xffff_ffff) | (v as u64) << 32,
        _ => {}
    }
}

/// Why a request could not be served: the device stops (NEEDS_RESET).
pub(crate) struct Bad;

fn dma(addr: u64, len: u64) -> Result<u64, Bad> {
    dma_for("virtio-blk", addr, len)
}

/// Translates a guest DMA address range to model memory for device `dev` (the
/// name its log lines carry), or refuses it (counting protected accesses).
pub(crate) fn dma_for(dev: &str, addr: u64, len: u64) -> Result<u64, Bad> {
    let c = crate::cfg();
    let sb = c.shared_bit();
    let ipa = addr & !sb;
    let ram = layout::RAM_IPA;
    let end = ipa.checked_add(len).ok_or(Bad)?;
    if addr & !(sb | (sb.wrapping_sub(1))) != 0 && sb != 0 {
        return Err(Bad); // above the IPA space
    }
    if ipa < ram || end > ram + c.mem_bytes() {
        log!(
            "{}: DMA to {:#x}+{:#x} outside guest RAM: device needs reset",
            dev,
            addr,
            len
        );
        return Err(Bad);
    }
    if c.realm && (addr & sb == 0 || !crate::realm::range_is_empty(ipa, len)) {
        let n = PROTECTED_DMA.fetch_add(1, Ordering::Relaxed);
        if n < 8 {
            log!(
                "{}: DMA to protected realm memory at {:#x}+{:#x} refused",
                dev,
                addr,
                len
            );
        }
        return Err(Bad);
    }
    Ok(ipa - ram + layout::GUEST_RAM_PA)
}

fn rd<const N: usize>(addr: u64) -> Result<[u8; N], Bad> {
    let p = dma(addr, N as u64)?;
    let mut out = [0u8; N];
    // SAFETY: `dma` checked the range lies inside guest RAM, which the model
    // maps identically at EL2; bytes are copied, so any alignment works.
    unsafe { core::ptr::copy_nonoverlapping(p as *const u8, out.as_mut_ptr(), N) };
    Ok(out)
}

fn wr(addr: u64, data: &[u8]) -> Result<(), Bad> {
    let p = dma(addr, data.len() as u64)?;
    // SAFETY: as `rd`.
    unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), p as *mut u8, data.len()) };
    Ok(())
}

fn process(b: &mut Blk) {
    // Nothing runs before the features were accepted (FEATURES_OK kept).
    if b.status & S_DRIVER_OK == 0
        || b.status & S_FEATURES_OK == 0
        || b.status & S_NEEDS_RESET != 0
        || !b.ready
    {
        return;
    }
    if b.queue_num == 0 || b.queue_num > QUEUE_MAX || !b.queue_num.is_power_of_two() {
        fail(b, "queue size not a power of two within QueueNumMax");
        return;
    }
    // Bounded: at most one pass over the ring per notification.
    for _ in 0..b.queue_num {
        let avail_idx = match rd::<2>(b.avail + 2) {
            Ok(v) => u16::from_le_bytes(v),
            Err(_) => return fail(b, "avail ring unreachable"),
        };
        if avail_idx == b.last_avail {
            return;
        }
        if avail_idx.wrapping_sub(b.last_avail) as u32 > b.queue_num {
            return fail(b, "avail index moved by more than the queue size");
        }
        let slot = (b.last_avail as u32 % b.queue_num) as u64;
        let head = match rd::<2>(b.avail + 4 + 2 * slot) {
            Ok(v) => u16::from_le_bytes(v),
            Err(_) => return fail(b, "avail ring unreachable"),
        };
        let written = match request(b, head) {
            Ok(n) => n,
            Err(_) => return fail(b, "bad request"),
        };
        let used_idx = match rd::<2>(b.used + 2) {
            Ok(v) => u16::from_le_bytes(v),
            Err(_) => return fail(b, "used ring unreachable"),
        };
        let uslot = (used_idx as u32 % b.queue_num) as u64;
        // A hostile device (`--virtio-blk-hostile`): a used id that was never
        // posted, or a length beyond every buffer of the request.
        let (id, len) = match crate::cfg().virtio_blk_hostile {
            Some(BlkHostile::Id) => (b.queue_num + 5, written),
            Some(BlkHostile::Len) => (head as u32, written + 4096),
            None => (head as u32, written),
        };
        let mut elem = [0u8; 8];
        elem[..4].copy_from_slice(&id.to_le_bytes());
        elem[4..].copy_from_slice(&len.to_le_bytes());
        if wr(b.used + 4 + 8 * uslot, &elem).is_err()
            || wr(b.used + 2, &used_idx.wrapping_add(1).to_le_bytes()).is_err()
        {
            return fail(b, "used ring unreachable");
        }
        b.last_avail = b.last_avail.wrapping_add(1);
        b.isr |= 1;
        REQUESTS.fetch_add(1, Ordering::Relaxed);
    }
}

fn fail(b: &mut Blk, why: &str) {
    log!("virtio-blk: {}: device needs reset", why);
    b.status |= S_NEEDS_RESET;
}

#[derive(Clone, Copy)]
struct Desc {
    addr: u64,
    len: u32,
    flags: u16,
}

/// Serves the chain at `head`: header (device-readable), data, status byte
/// (device-writable). Returns the bytes written to the guest.
fn request(b: &Blk, head: u16) -> Result<u32, Bad> {
    let mut chain = [Desc {
        addr: 0,
        len: 0,
        flags: 0,
    }; QUEUE_MAX as usize];
    let mut n = 0usize;
    let mut i = head as u32;
    loop {
        if i >= b.queue_num || n >= b.queue_num as usize {
            log!("virtio-blk: descriptor {} out of range or chain loops", i);
            return Err(Bad);
        }
        let d = rd::<16>(b.desc + 16 * i as u64)?;
        let desc = Desc {
            addr: u64::from_le_bytes(d[0..8].try_into().unwrap_or_default()),
            len: u32::from_le_bytes(d[8..12].try_into().unwrap_or_default()),
            flags: u16::from_le_bytes(d[12..14].try_into().unwrap_or_default()),
        };
        if desc.flags & DESC_F_INDIRECT != 0 {
            log!("virtio-blk: indirect descriptor not negotiated");
            return Err(Bad);
        }
        // Every buffer must be reachable as a whole before the device uses it.
        dma(desc.addr, desc.len as u64)?;
        chain[n] = desc;
        n += 1;
        if desc.flags & DESC_F_NEXT == 0 {
            break;
        }
        i = u16::from_le_bytes(d[14..16].try_into().unwrap_or_default()) as u32;
    }
    if n < 2 {
        return Err(Bad);
    }
    let (hdr, status, data) = (chain[0], chain[n - 1], &chain[1..n - 1]);
    if hdr.len < 16
        || hdr.flags & DESC_F_WRITE != 0
        || status.len < 1
        || status.flags & DESC_F_WRITE == 0
    {
        log!("virtio-blk: malformed request (header or status descriptor)");
        return Err(Bad);
    }
    let h = rd::<16>(hdr.addr)?;
    let typ = u32::from_le_bytes(h[0..4].try_into().unwrap_or_default());
    let sector = u64::from_le_bytes(h[8..16].try_into().unwrap_or_default());
    let want_write = typ == T_IN || typ == T_GET_ID;
    let total: u64 = data.iter().map(|d| d.len as u64).sum();
    let mut st = BLK_OK;
    if data
        .iter()
        .any(|d| (d.flags & DESC_F_WRITE != 0) != want_write)
    {
        st = BLK_IOERR;
    }
    let mut written = 0u32;
    match typ {
        T_IN | T_OUT if st == BLK_OK => {
            let in_range = total.is_multiple_of(512)
                && sector
                    .checked_mul(512)
                    .and_then(|s| s.checked_add(total))
                    .is_some_and(|e| e <= b.size);
            if !in_range {
                st = BLK_IOERR;
            } else {
                let mut pos = b.disk + sector * 512;
                for d in data {
                    let p = dma(d.addr, d.len as u64)?;
                    // SAFETY: `p` is inside guest RAM (checked by `dma`) and
                    // `pos..pos + len` inside the disk (range checked above);
                    // the two never overlap (the disk is outside guest RAM).
                    unsafe {
                        if typ == T_IN {
                            core::ptr::copy_nonoverlapping(
                                pos as *const u8,
                                p as *mut u8,
                                d.len as usize,
                            );
                        } else {
                            core::ptr::copy_nonoverlapping(
                                p as *const u8,
                                pos as *mut u8,
                                d.len as usize,
                            );
                        }
                    }
                    pos += d.len as u64;
                }
                if typ == T_IN {
                    written = total as u32;
                }
            }
        }
        T_GET_ID if st == BLK_OK => {
            let id = *b"vmm-model-blk\0\0\0\0\0\0\0";
            let mut left = &id[..];
            for d in data {
                let k = (d.len as usize).min(left.len());
                wr(d.addr, &left[..k])?;
                left = &left[k..];
                written += k as u32;
            }
        }
        T_FLUSH => {
            FLUSHES.fetch_add(1, Ordering::Relaxed);
        }
        T_IN | T_OUT | T_GET_ID => {}
        _ => st = BLK_UNSUPP,
    }
    wr(status.addr, &[st])?;
    Ok(written + 1)
}

/// The device's state, for the log line printed at exit.
pub fn status_name() -> &'static str {
    let s = BLK.lock().status;
    if s & S_FAILED != 0 {
        "failed"
    } else if s & S_NEEDS_RESET != 0 {
        "needs-reset"
    } else if s & S_DRIVER_OK != 0 {
        "driver-ok"
    } else if s & (S_ACKNOWLEDGE | S_DRIVER) != 0 {
        "initialising"
    } else {
        "reset"
    }
}
