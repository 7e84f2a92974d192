//! A RAM-backed virtio-blk on virtio-mmio (modern, version 2) for the realm,
//! laid out as kvmtool-cca gives it (and as the machine model's DTB describes
//! it): one window of 0x200 bytes at IPA 0x3000000 (reached by the realm at its
//! unprotected alias, so every register access is a REC exit with a syndrome),
//! one request queue, no interrupt (the realm's driver polls the used ring).
//!
//! The register semantics and the checks follow the machine model's device
//! (tests/vmm-model/model/src/virtio.rs). That file is not shared by `#[path]`:
//! it is written against the model's own configuration, memory layout, lock
//! and RIPAS tracker (`crate::cfg`, `crate::layout`, `crate::realm`), and
//! reaches guest RAM as one flat range. Here guest memory is only the realm's
//! unprotected IPAs, each page backed by whichever NS page the launcher mapped
//! there (`GuestMem`), so every copy goes page by page through that mapping.
//!
//! Everything the realm hands the device is hostile input: queue size,
//! indices, descriptor chains (bounded by the queue size, so loops end),
//! lengths and addresses are checked, and a bad one puts the device in
//! DEVICE_NEEDS_RESET instead of touching launcher memory. An address without
//! the shared bit (protected realm memory) is never read or written: it is
//! counted (`protected_dma`, the model's `virtio-protected-dma`) and refused.

use crate::sys::log;

/// Guest IPA of the device window (protected-half address; the realm uses it
/// with the shared bit) and its size (kvmtool's VIRTIO_MMIO_IO_SIZE).
pub const MMIO_IPA: u64 = 0x0300_0000;
pub const MMIO_SIZE: u64 = 0x200;
const QUEUE_MAX: u32 = 16;
const PAGE: u64 = 0x1000;

const F_VERSION_1: u64 = 1 << 32;
const F_ACCESS_PLATFORM: u64 = 1 << 33;
/// A realm's device: the driver must accept both (as kvmtool-cca offers them).
const FEATURES: u64 = F_VERSION_1 | F_ACCESS_PLATFORM;

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

/// The host side of the realm's shared memory.
pub trait GuestMem {
    /// The host (NS, identity-mapped) address of the page backing the
    /// unprotected IPA `page_ipa` (page aligned, shared bit set, inside the
    /// alias of realm RAM), mapping one if needed; `None` if the host cannot.
    fn unprotected_page(&mut self, page_ipa: u64) -> Option<u64>;
}

/// Why a request could not be served: the device stops (NEEDS_RESET).
pub struct Bad;

pub struct Blk {
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
    /// Host address and size in bytes of the disk (size 0: no device).
    disk: u64,
    size: u64,
    /// The realm's shared bit and its RAM [base, end) (protected IPAs).
    shared: u64,
    ram: (u64, u64),
    // counters
    pub requests: u64,
    /// Bytes moved through request buffers (headers, data, status bytes).
    pub bytes: u64,
    pub protected_dma: u64,
    pub mmio_exits: u64,
    pub notifies: u64,
}

#[derive(Clone, Copy)]
struct Desc {
    addr: u64,
    len: u32,
    flags: u16,
}

fn le16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}
fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}
fn le64(b: &[u8]) -> u64 {
    (le32(b) as u64) | (le32(&b[4..]) as u64) << 32
}

impl Blk {
    pub const fn new() -> Blk {
        Blk {
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
            shared: 0,
            ram: (0, 0),
            requests: 0,
            bytes: 0,
            protected_dma: 0,
            mmio_exits: 0,
            notifies: 0,
        }
    }

    /// A disk of `size` bytes at host address `disk` (zeroed by the caller)
    /// for a realm with shared bit `shared` and RAM [ram_base, ram_end).
    pub fn init(&mut self, disk: u64, size: u64, shared: u64, ram_base: u64, ram_end: u64) {
        self.disk = disk;
        self.size = size;
        self.shared = shared;
        self.ram = (ram_base, ram_end);
    }

    pub fn present(&self) -> bool {
        self.size != 0
    }

    /// Whether the device window holds `ipa` (shared bit cleared).
    pub fn claims(&self, ipa: u64) -> bool {
        self.present() && (MMIO_IPA..MMIO_IPA + MMIO_SIZE).contains(&ipa)
    }

    fn reset(&mut self) {
        self.queue_sel = 0;
        self.dev_feat_sel = 0;
        self.drv_feat_sel = 0;
        self.driver_features = 0;
        self.status = 0;
        self.queue_num = 0;
        self.ready = false;
        self.desc = 0;
        self.avail = 0;
        self.used = 0;
        self.last_avail = 0;
        self.isr = 0;
    }

    /// An access to the window at `ipa` (shared bit cleared): returns the
    /// value of a read.
    pub fn mmio(
        &mut self,
        mem: &mut impl GuestMem,
        ipa: u64,
        write: bool,
        val: u64,
        size: u64,
    ) -> u64 {
        self.mmio_exits += 1;
        let off = ipa - MMIO_IPA;
        if write {
            self.write(mem, off, size, val);
            0
        } else {
            self.read(off, size)
        }
    }

    fn read(&self, off: u64, size: u64) -> u64 {
        if off >= 0x100 {
            // Config space: capacity (u64, sectors) at 0.
            let cfg = (self.size / 512).to_le_bytes();
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
            0x010 => match self.dev_feat_sel {
                0 => FEATURES as u32,
                1 => (FEATURES >> 32) as u32,
                _ => 0,
            },
            0x034 if self.queue_sel == 0 => QUEUE_MAX,
            0x044 if self.queue_sel == 0 => self.ready as u32,
            0x060 => self.isr,
            0x070 => self.status,
            _ => 0,
        }) as u64
    }

    fn write(&mut self, mem: &mut impl GuestMem, off: u64, size: u64, val: u64) {
        if off >= 0x100 || size != 4 {
            return; // config space is read-only; the rest is 32-bit only
        }
        let v = val as u32;
        match off {
            0x014 => self.dev_feat_sel = v,
            0x020 => match self.drv_feat_sel {
                0 => self.driver_features = (self.driver_features & !0xffff_ffff) | v as u64,
                1 => self.driver_features = (self.driver_features & 0xffff_ffff) | (v as u64) << 32,
                _ => {}
            },
            0x024 => self.drv_feat_sel = v,
            // One queue, index 0: the others read QueueNumMax 0 and ignore writes.
            0x030 => self.queue_sel = v,
            _ if self.queue_sel != 0
                && (0x038..0x0b0).contains(&off)
                && off != 0x050
                && off != 0x064
                && off != 0x070 => {}
            0x038 => self.queue_num = v,
            0x044 => self.ready = v & 1 != 0,
            0x050 if v == 0 => {
                self.notifies += 1;
                self.process(mem);
            }
            0x064 => self.isr &= !v,
            0x070 => {
                if v == 0 {
                    self.reset();
                    return;
                }
                let mut v = v;
                if v & S_FEATURES_OK != 0 && self.status & S_FEATURES_OK == 0 {
                    // Accept only what was offered, and both VERSION_1 and
                    // ACCESS_PLATFORM (a realm's device).
                    let f = self.driver_features;
                    if f & !FEATURES != 0 || f & FEATURES != FEATURES {
                        log!(
                            "virtio-blk: driver features {:#x} refused (offered {:#x}): FEATURES_OK not set",
                            f,
                            FEATURES
                        );
                        v &= !S_FEATURES_OK;
                    }
                }
                self.status = v | (self.status & S_NEEDS_RESET);
            }
            0x080 => self.desc = (self.desc & !0xffff_ffff) | v as u64,
            0x084 => self.desc = (self.desc & 0xffff_ffff) | (v as u64) << 32,
            0x090 => self.avail = (self.avail & !0xffff_ffff) | v as u64,
            0x094 => self.avail = (self.avail & 0xffff_ffff) | (v as u64) << 32,
            0x0a0 => self.used = (self.used & !0xffff_ffff) | v as u64,
            0x0a4 => self.used = (self.used & 0xffff_ffff) | (v as u64) << 32,
            _ => {}
        }
    }

    /// Checks that [addr, addr + len) is shared realm memory (the RAM alias):
    /// an address without the shared bit is protected memory, counted and
    /// refused; anything outside the alias of RAM is refused.
    fn check(&mut self, addr: u64, len: u64) -> Result<(), Bad> {
        let sb = self.shared;
        let ipa = addr & !sb;
        let end = ipa.checked_add(len).ok_or(Bad)?;
        if addr & !(sb | (sb - 1)) != 0 || ipa < self.ram.0 || end > self.ram.1 {
            log!(
                "virtio-blk: DMA to {:#x}+{:#x} outside the realm's RAM: device needs reset",
                addr,
                len
            );
            return Err(Bad);
        }
        if addr & sb == 0 {
            self.protected_dma += 1;
            if self.protected_dma <= 8 {
                log!(
                    "virtio-blk: DMA to protected realm memory at {:#x}+{:#x} refused",
                    addr,
                    len
                );
            }
            return Err(Bad);
        }
        Ok(())
    }

    /// Walks the checked range [addr, addr + len) page by page through the
    /// host's mapping of the unprotected alias: `f(host address, offset in
    /// the range, bytes)` for each piece, each within one NS page.
    fn walk(
        &mut self,
        mem: &mut impl GuestMem,
        addr: u64,
        len: u64,
        mut f: impl FnMut(u64, usize, usize),
    ) -> Result<(), Bad> {
        self.check(addr, len)?;
        let mut a = addr;
        let end = addr + len; // no overflow: checked
        while a < end {
            let Some(pa) = mem.unprotected_page(a & !(PAGE - 1)) else {
                log!(
                    "virtio-blk: no host page for the shared IPA {:#x}: device needs reset",
                    a
                );
                return Err(Bad);
            };
            let n = (end - a).min(PAGE - (a & (PAGE - 1)));
            f(pa + (a & (PAGE - 1)), (a - addr) as usize, n as usize);
            a += n;
        }
        Ok(())
    }

    fn rd<const N: usize>(&mut self, mem: &mut impl GuestMem, addr: u64) -> Result<[u8; N], Bad> {
        let mut out = [0u8; N];
        self.walk(mem, addr, N as u64, |pa, off, n| {
            // SAFETY: `pa..pa + n` lies within one NS page the launcher
            // mapped (identity, Normal memory) as the realm's shared memory;
            // `off + n <= N` (walk splits [addr, addr + N)).
            unsafe { core::ptr::copy_nonoverlapping(pa as *const u8, out[off..].as_mut_ptr(), n) }
        })?;
        Ok(out)
    }

    fn wr(&mut self, mem: &mut impl GuestMem, addr: u64, data: &[u8]) -> Result<(), Bad> {
        self.walk(mem, addr, data.len() as u64, |pa, off, n| {
            // SAFETY: as in `rd`, with `off + n <= data.len()`.
            unsafe { core::ptr::copy_nonoverlapping(data[off..].as_ptr(), pa as *mut u8, n) }
        })
    }

    fn fail(&mut self, why: &str) {
        log!("virtio-blk: {}: device needs reset", why);
        self.status |= S_NEEDS_RESET;
    }

    /// QueueNotify: serves every available request (at most one pass over
    /// the ring).
    fn process(&mut self, mem: &mut impl GuestMem) {
        if self.status & S_DRIVER_OK == 0
            || self.status & S_FEATURES_OK == 0
            || self.status & S_NEEDS_RESET != 0
            || !self.ready
        {
            return;
        }
        let qn = self.queue_num;
        if qn == 0 || qn > QUEUE_MAX || !qn.is_power_of_two() {
            return self.fail("queue size not a power of two within QueueNumMax");
        }
        for _ in 0..qn {
            let Ok(v) = self.rd::<2>(mem, self.avail.wrapping_add(2)) else {
                return self.fail("avail ring unreachable");
            };
            let avail_idx = le16(&v);
            if avail_idx == self.last_avail {
                return;
            }
            if avail_idx.wrapping_sub(self.last_avail) as u32 > qn {
                return self.fail("avail index moved by more than the queue size");
            }
            let slot = (self.last_avail as u32 % qn) as u64;
            let Ok(v) = self.rd::<2>(mem, self.avail.wrapping_add(4 + 2 * slot)) else {
                return self.fail("avail ring unreachable");
            };
            let head = le16(&v);
            let Ok(written) = self.request(mem, head) else {
                return self.fail("bad request");
            };
            let Ok(v) = self.rd::<2>(mem, self.used.wrapping_add(2)) else {
                return self.fail("used ring unreachable");
            };
            let used_idx = le16(&v);
            let uslot = (used_idx as u32 % qn) as u64;
            let mut elem = [0u8; 8];
            elem[..4].copy_from_slice(&(head as u32).to_le_bytes());
            elem[4..].copy_from_slice(&written.to_le_bytes());
            if self
                .wr(mem, self.used.wrapping_add(4 + 8 * uslot), &elem)
                .is_err()
                || self
                    .wr(
                        mem,
                        self.used.wrapping_add(2),
                        &used_idx.wrapping_add(1).to_le_bytes(),
                    )
                    .is_err()
            {
                return self.fail("used ring unreachable");
            }
            self.last_avail = self.last_avail.wrapping_add(1);
            self.isr |= 1;
            self.requests += 1;
        }
    }

    /// Serves the chain at `head`: header (device-readable), data, status
    /// byte (device-writable). Returns the bytes written to the realm.
    fn request(&mut self, mem: &mut impl GuestMem, head: u16) -> Result<u32, Bad> {
        let qn = self.queue_num;
        let mut chain = [Desc {
            addr: 0,
            len: 0,
            flags: 0,
        }; QUEUE_MAX as usize];
        let mut n = 0usize;
        let mut i = head as u32;
        loop {
            // A chain longer than the queue loops.
            if i >= qn || n >= qn as usize {
                log!("virtio-blk: descriptor {} out of range or chain loops", i);
                return Err(Bad);
            }
            let d = self.rd::<16>(mem, self.desc.wrapping_add(16 * i as u64))?;
            let desc = Desc {
                addr: le64(&d[0..]),
                len: le32(&d[8..]),
                flags: le16(&d[12..]),
            };
            if desc.flags & DESC_F_INDIRECT != 0 {
                log!("virtio-blk: indirect descriptor not negotiated");
                return Err(Bad);
            }
            // Every buffer must be shared memory as a whole before the device uses it.
            self.check(desc.addr, desc.len as u64)?;
            chain[n] = desc;
            n += 1;
            if desc.flags & DESC_F_NEXT == 0 {
                break;
            }
            i = le16(&d[14..]) as u32;
        }
        if n < 2 {
            log!("virtio-blk: request of {} descriptor(s)", n);
            return Err(Bad);
        }
        let (hdr, status) = (chain[0], chain[n - 1]);
        if hdr.len < 16
            || hdr.flags & DESC_F_WRITE != 0
            || status.len < 1
            || status.flags & DESC_F_WRITE == 0
        {
            log!("virtio-blk: malformed request (header or status descriptor)");
            return Err(Bad);
        }
        let h = self.rd::<16>(mem, hdr.addr)?;
        self.bytes += 16;
        let typ = le32(&h[0..]);
        let sector = le64(&h[8..]);
        let data = &chain[1..n - 1];
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
                        .is_some_and(|e| e <= self.size);
                if !in_range {
                    st = BLK_IOERR;
                } else {
                    let mut pos = self.disk + sector * 512;
                    for d in data {
                        let (disk, len) = (pos, d.len as usize);
                        self.walk(mem, d.addr, d.len as u64, |pa, off, k| {
                            let at = disk + off as u64;
                            // SAFETY: `pa..pa + k` is within one NS page backing
                            // the realm's shared memory (walk); `at..at + k` is
                            // within the disk (the request's range was checked
                            // against its size, `off + k <= len`); the disk is
                            // launcher memory no NS page of the realm overlaps.
                            unsafe {
                                if typ == T_IN {
                                    core::ptr::copy_nonoverlapping(
                                        at as *const u8,
                                        pa as *mut u8,
                                        k,
                                    )
                                } else {
                                    core::ptr::copy_nonoverlapping(
                                        pa as *const u8,
                                        at as *mut u8,
                                        k,
                                    )
                                }
                            }
                        })?;
                        pos += len as u64;
                    }
                    self.bytes += total;
                    if typ == T_IN {
                        written = total as u32;
                    }
                }
            }
            T_GET_ID if st == BLK_OK => {
                let id = *b"rmm-launcher-blk\0\0\0\0";
                let mut left = &id[..];
                for d in data {
                    let k = (d.len as usize).min(left.len());
                    self.wr(mem, d.addr, &left[..k])?;
                    left = &left[k..];
                    written += k as u32;
                }
                self.bytes += written as u64;
            }
            T_FLUSH => {}
            T_IN | T_OUT | T_GET_ID => {}
            _ => st = BLK_UNSUPP,
        }
        self.wr(mem, status.addr, &[st])?;
        self.bytes += 1;
        Ok(written + 1)
    }

    /// The device's state, for the counters line.
    pub fn status_name(&self) -> &'static str {
        let s = self.status;
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
}
