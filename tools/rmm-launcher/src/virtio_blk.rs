//! A RAM-backed virtio-blk on virtio-mmio (modern, version 2) for the realm,
//! laid out as kvmtool-cca gives it (and as the machine model's DTB describes
//! it): one window of 0x200 bytes at IPA 0x3000000 (reached by the realm at its
//! unprotected alias, so every register access is a REC exit with a syndrome),
//! one request queue, no interrupt (the realm's driver polls the used ring).
//!
//! The register semantics and the checks follow the machine model's device
//! (tests/vmm-model/model/src/virtio.rs). That file is not shared by `#[path]`:
//! it is written against the model's own configuration, memory layout, lock
//! and RIPAS tracker, and reaches guest RAM as one flat range. Here the realm's
//! shared memory and the virtqueue are reached through `virtq.rs`, which the
//! virtio-net shares; everything the realm hands the device is hostile input.

use crate::sys::log;
use crate::virtq::{
    Bad, CHAIN0, DESC_F_WRITE, Dma, GuestMem, QUEUE_MAX, Queue, S_DRIVER_OK, S_FEATURES_OK,
    S_NEEDS_RESET, config_read, status_name,
};

/// Guest IPA of the device window (protected-half address; the realm uses it
/// with the shared bit) and its size (kvmtool's VIRTIO_MMIO_IO_SIZE).
pub const MMIO_IPA: u64 = 0x0300_0000;
pub const MMIO_SIZE: u64 = 0x200;

const F_VERSION_1: u64 = 1 << 32;
const F_ACCESS_PLATFORM: u64 = 1 << 33;
/// Offered as kvmtool offers it (a RAM disk has nothing to flush; the driver's
/// flush path runs).
const F_FLUSH: u64 = 1 << 9;
/// A realm's device: the driver must accept VERSION_1 and ACCESS_PLATFORM (as
/// kvmtool-cca offers them).
const REQUIRED: u64 = F_VERSION_1 | F_ACCESS_PLATFORM;
const FEATURES: u64 = REQUIRED | F_FLUSH;

const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const T_GET_ID: u32 = 8;
const BLK_OK: u8 = 0;
const BLK_IOERR: u8 = 1;
const BLK_UNSUPP: u8 = 2;

pub struct Blk {
    queue_sel: u32,
    dev_feat_sel: u32,
    drv_feat_sel: u32,
    driver_features: u64,
    status: u32,
    q: Queue,
    isr: u32,
    /// Host address and size in bytes of the disk (size 0: no device).
    disk: u64,
    size: u64,
    pub dma: Dma,
    // counters
    pub requests: u64,
    /// Bytes moved through request buffers (headers, data, status bytes).
    pub bytes: u64,
    pub mmio_exits: u64,
    pub notifies: u64,
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
            q: Queue::RESET,
            isr: 0,
            disk: 0,
            size: 0,
            dma: Dma::new("virtio-blk"),
            requests: 0,
            bytes: 0,
            mmio_exits: 0,
            notifies: 0,
        }
    }

    /// A disk of `size` bytes at host address `disk` (zeroed by the caller)
    /// for a realm with shared bit `shared` and RAM [ram_base, ram_end).
    pub fn init(&mut self, disk: u64, size: u64, shared: u64, ram_base: u64, ram_end: u64) {
        self.disk = disk;
        self.size = size;
        self.dma.init(shared, ram_base, ram_end);
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
        self.q = Queue::RESET;
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
            return config_read(&cfg, off - 0x100, size);
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
            0x044 if self.queue_sel == 0 => self.q.ready as u32,
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
                    if f & !FEATURES != 0 || f & REQUIRED != REQUIRED {
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
            _ if self.queue_sel == 0 => self.q.write_reg(off, v),
            _ => {}
        }
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
            || !self.q.ready
        {
            return;
        }
        if !self.q.size_ok() {
            return self.fail("queue size not a power of two within QueueNumMax");
        }
        for _ in 0..self.q.num {
            let head = match self.q.next_avail(&mut self.dma, mem) {
                Ok(Some(h)) => h,
                Ok(None) => return,
                Err(why) => return self.fail(why),
            };
            let Ok(written) = self.request(mem, head) else {
                return self.fail("bad request");
            };
            if let Err(why) = self.q.push_used(&mut self.dma, mem, head as u32, written) {
                return self.fail(why);
            }
            self.isr |= 1;
            self.requests += 1;
        }
    }

    /// Serves the chain at `head`: header (device-readable), data, status
    /// byte (device-writable). Returns the bytes written to the realm.
    fn request(&mut self, mem: &mut impl GuestMem, head: u16) -> Result<u32, Bad> {
        let mut chain = CHAIN0;
        let n = self.q.chain(&mut self.dma, mem, head, &mut chain)?;
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
        let h = self.dma.rd::<16>(mem, hdr.addr)?;
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
                        self.dma.walk(mem, d.addr, d.len as u64, |pa, off, k| {
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
                    self.dma.wr(mem, d.addr, &left[..k])?;
                    left = &left[k..];
                    written += k as u32;
                }
                self.bytes += written as u64;
            }
            T_FLUSH => {}
            T_IN | T_OUT | T_GET_ID => {}
            _ => st = BLK_UNSUPP,
        }
        self.dma.wr(mem, status.addr, &[st])?;
        self.bytes += 1;
        Ok(written + 1)
    }

    /// The device's state, for the counters line.
    pub fn status_name(&self) -> &'static str {
        status_name(self.status)
    }
}
