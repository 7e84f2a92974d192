//! What the launcher's virtio devices (`virtio_blk.rs`, `virtio_net.rs`) share:
//! access to the realm's shared memory and the split virtqueue.
//!
//! Guest memory is only the realm's unprotected IPAs, each page backed by
//! whichever NS page the launcher mapped there (`GuestMem`), so every copy
//! goes page by page through that mapping. Everything the realm hands a
//! device is hostile input: queue sizes, indices, descriptor chains (bounded by
//! the queue size, so loops end), lengths and addresses are checked, and a bad
//! one gives `Bad` (the device then goes to DEVICE_NEEDS_RESET) instead of
//! touching launcher memory. An address without the shared bit (protected
//! realm memory) is never read or written: it is counted (`protected`, the
//! machine model's `virtio-protected-dma`) and refused.

use crate::sys::log;

/// Largest queue the devices offer (QueueNumMax): kvmtool's 256.
pub const QUEUE_MAX: u32 = 256;
const PAGE: u64 = 0x1000;

/// Device status bits.
pub const S_ACKNOWLEDGE: u32 = 1;
pub const S_DRIVER: u32 = 2;
pub const S_DRIVER_OK: u32 = 4;
pub const S_FEATURES_OK: u32 = 8;
pub const S_NEEDS_RESET: u32 = 0x40;
pub const S_FAILED: u32 = 0x80;

pub const DESC_F_NEXT: u16 = 1;
pub const DESC_F_WRITE: u16 = 2;
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

/// One device's view of the realm's shared memory.
pub struct Dma {
    /// The device's name in log lines.
    dev: &'static str,
    /// The realm's shared bit and its RAM [base, end) (protected IPAs).
    shared: u64,
    ram: (u64, u64),
    /// Accesses refused because they named protected memory.
    pub protected: u64,
}

impl Dma {
    pub const fn new(dev: &'static str) -> Dma {
        Dma {
            dev,
            shared: 0,
            ram: (0, 0),
            protected: 0,
        }
    }

    /// For a realm with shared bit `shared` and RAM [ram_base, ram_end).
    pub fn init(&mut self, shared: u64, ram_base: u64, ram_end: u64) {
        self.shared = shared;
        self.ram = (ram_base, ram_end);
    }

    /// Checks that [addr, addr + len) is shared realm memory (the RAM alias):
    /// an address without the shared bit is protected memory, counted and
    /// refused; anything outside the alias of RAM is refused.
    pub fn check(&mut self, addr: u64, len: u64) -> Result<(), Bad> {
        let sb = self.shared;
        let ipa = addr & !sb;
        let end = ipa.checked_add(len).ok_or(Bad)?;
        if addr & !(sb | (sb - 1)) != 0 || ipa < self.ram.0 || end > self.ram.1 {
            log!(
                "{}: DMA to {:#x}+{:#x} outside the realm's RAM: device needs reset",
                self.dev,
                addr,
                len
            );
            return Err(Bad);
        }
        if addr & sb == 0 {
            self.protected += 1;
            if self.protected <= 8 {
                log!(
                    "{}: DMA to protected realm memory at {:#x}+{:#x} refused",
                    self.dev,
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
    pub fn walk(
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
                    "{}: no host page for the shared IPA {:#x}: device needs reset",
                    self.dev,
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

    /// Reads `out.len()` bytes of shared memory at `addr`.
    pub fn rd_into(
        &mut self,
        mem: &mut impl GuestMem,
        addr: u64,
        out: &mut [u8],
    ) -> Result<(), Bad> {
        self.walk(mem, addr, out.len() as u64, |pa, off, n| {
            // SAFETY: `pa..pa + n` lies within one NS page the launcher
            // mapped (identity, Normal memory) as the realm's shared memory;
            // `off + n <= out.len()` (walk splits [addr, addr + len)).
            unsafe { core::ptr::copy_nonoverlapping(pa as *const u8, out[off..].as_mut_ptr(), n) }
        })
    }

    pub fn rd<const N: usize>(
        &mut self,
        mem: &mut impl GuestMem,
        addr: u64,
    ) -> Result<[u8; N], Bad> {
        let mut out = [0u8; N];
        self.rd_into(mem, addr, &mut out)?;
        Ok(out)
    }

    pub fn wr(&mut self, mem: &mut impl GuestMem, addr: u64, data: &[u8]) -> Result<(), Bad> {
        self.walk(mem, addr, data.len() as u64, |pa, off, n| {
            // SAFETY: as in `rd_into`, with `off + n <= data.len()`.
            unsafe { core::ptr::copy_nonoverlapping(data[off..].as_ptr(), pa as *mut u8, n) }
        })
    }
}

#[derive(Clone, Copy)]
pub struct Desc {
    pub addr: u64,
    pub len: u32,
    pub flags: u16,
}

const DESC0: Desc = Desc {
    addr: 0,
    len: 0,
    flags: 0,
};

/// A chain's descriptors, at most a queue's worth.
pub type Chain = [Desc; QUEUE_MAX as usize];
pub const CHAIN0: Chain = [DESC0; QUEUE_MAX as usize];

fn le16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

/// A split virtqueue as the driver configured it (all addresses the realm's).
#[derive(Clone, Copy)]
pub struct Queue {
    pub num: u32,
    pub ready: bool,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    pub last_avail: u16,
}

impl Queue {
    pub const RESET: Queue = Queue {
        num: 0,
        ready: false,
        desc: 0,
        avail: 0,
        used: 0,
        last_avail: 0,
    };

    /// Whether the size the driver chose is one the device can serve.
    pub fn size_ok(&self) -> bool {
        self.num != 0 && self.num <= QUEUE_MAX && self.num.is_power_of_two()
    }

    /// A register write at `off` of the virtio-mmio queue block (QueueNum,
    /// QueueReady, the three ring addresses); other offsets are ignored.
    pub fn write_reg(&mut self, off: u64, v: u32) {
        let lo = |a: &mut u64| *a = (*a & !0xffff_ffff) | v as u64;
        let hi = |a: &mut u64| *a = (*a & 0xffff_ffff) | (v as u64) << 32;
        match off {
            0x038 => self.num = v,
            0x044 => self.ready = v & 1 != 0,
            0x080 => lo(&mut self.desc),
            0x084 => hi(&mut self.desc),
            0x090 => lo(&mut self.avail),
            0x094 => hi(&mut self.avail),
            0x0a0 => lo(&mut self.used),
            0x0a4 => hi(&mut self.used),
            _ => {}
        }
    }

    /// The next available head, if any (the size must have been checked).
    pub fn next_avail(
        &self,
        dma: &mut Dma,
        mem: &mut impl GuestMem,
    ) -> Result<Option<u16>, &'static str> {
        let idx = dma
            .rd::<2>(mem, self.avail.wrapping_add(2))
            .map_err(|_| "avail ring unreachable")?;
        let idx = le16(&idx);
        if idx == self.last_avail {
            return Ok(None);
        }
        if idx.wrapping_sub(self.last_avail) as u32 > self.num {
            return Err("avail index moved by more than the queue size");
        }
        let slot = (self.last_avail as u32 % self.num) as u64;
        let head = dma
            .rd::<2>(mem, self.avail.wrapping_add(4 + 2 * slot))
            .map_err(|_| "avail ring unreachable")?;
        Ok(Some(le16(&head)))
    }

    /// Reads the chain at `head` into `out`: every descriptor in range, no
    /// loop, no indirect, each buffer shared realm memory as a whole.
    /// Returns the number of descriptors.
    pub fn chain(
        &self,
        dma: &mut Dma,
        mem: &mut impl GuestMem,
        head: u16,
        out: &mut Chain,
    ) -> Result<usize, Bad> {
        let mut n = 0usize;
        let mut i = head as u32;
        loop {
            // A chain longer than the queue loops.
            if i >= self.num || n >= self.num as usize {
                log!("{}: descriptor {} out of range or chain loops", dma.dev, i);
                return Err(Bad);
            }
            let d = dma.rd::<16>(mem, self.desc.wrapping_add(16 * i as u64))?;
            let desc = Desc {
                addr: u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]),
                len: u32::from_le_bytes([d[8], d[9], d[10], d[11]]),
                flags: le16(&d[12..]),
            };
            if desc.flags & DESC_F_INDIRECT != 0 {
                log!("{}: indirect descriptor not negotiated", dma.dev);
                return Err(Bad);
            }
            dma.check(desc.addr, desc.len as u64)?;
            out[n] = desc;
            n += 1;
            if desc.flags & DESC_F_NEXT == 0 {
                return Ok(n);
            }
            i = le16(&d[14..]) as u32;
        }
    }

    /// Completes one request: a used element (`id`, `len`) and the used
    /// index, then moves past the avail slot it came from.
    pub fn push_used(
        &mut self,
        dma: &mut Dma,
        mem: &mut impl GuestMem,
        id: u32,
        len: u32,
    ) -> Result<(), &'static str> {
        const E: &str = "used ring unreachable";
        let used_idx = le16(&dma.rd::<2>(mem, self.used.wrapping_add(2)).map_err(|_| E)?);
        let slot = (used_idx as u32 % self.num) as u64;
        let mut elem = [0u8; 8];
        elem[..4].copy_from_slice(&id.to_le_bytes());
        elem[4..].copy_from_slice(&len.to_le_bytes());
        dma.wr(mem, self.used.wrapping_add(4 + 8 * slot), &elem)
            .map_err(|_| E)?;
        dma.wr(
            mem,
            self.used.wrapping_add(2),
            &used_idx.wrapping_add(1).to_le_bytes(),
        )
        .map_err(|_| E)?;
        self.last_avail = self.last_avail.wrapping_add(1);
        Ok(())
    }
}

/// A read of `size` bytes at `off` of a device's config space `cfg`
/// (little-endian; bytes beyond it read 0).
pub fn config_read(cfg: &[u8], off: u64, size: u64) -> u64 {
    let mut v = 0u64;
    for i in 0..size.min(8) {
        if let Some(&b) = usize::try_from(off + i).ok().and_then(|o| cfg.get(o)) {
            v |= (b as u64) << (8 * i);
        }
    }
    v
}

/// A device status register's state, for the counters lines.
pub fn status_name(s: u32) -> &'static str {
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
