//! virtio-pci (modern) in front of a virtio-mmio device model, shared by the
//! machine model (`model/src/virtio_pci.rs`) and `tools/rmm-launcher` (by
//! `#[path]`): the configuration space of one function (a 32-bit memory BAR of
//! 16 KiB holding the common configuration, notification, ISR and device
//! configuration structures) and the translation of each access to a virtio
//! structure into the virtio-mmio register access with the same meaning, so the
//! device behind (queues, DMA checks, counters) is the virtio-mmio one.
//!
//! For a driver's negative tests the function can lie ([`Hostile`]).

/// Bytes of BAR0.
pub const BAR_SIZE: u64 = 0x4000;
/// Where a host puts the BARs, one per function (kvmtool's MEM32 window).
pub const BAR_BASE: u64 = 0x5000_0000;
const COMMON: u64 = 0x0000;
const NOTIFY: u64 = 0x1000;
const ISR: u64 = 0x2000;
const DEVICE: u64 = 0x3000;
const NOTIFY_MULT: u64 = 4;
/// What queue_size reads before the driver writes its own: the devices'
/// QueueNumMax (kvmtool's 256).
const QUEUE_MAX: u16 = 256;

/// How the function misbehaves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Hostile {
    None,
    /// The last capability points back at the first.
    CapLoop,
    /// The device-configuration capability ends past its BAR.
    CapBar,
    /// BAR0 reads back `ram` once sized, whatever is written.
    BarRam,
}

/// What the function is: the virtio device type (1 network, 2 block) and its
/// number of queues.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub device: u16,
    pub queues: u16,
}

pub const BLK: Kind = Kind {
    device: 2,
    queues: 1,
};
pub const NET: Kind = Kind {
    device: 1,
    queues: 2,
};

/// The device behind: its virtio-mmio registers (4-byte accesses at offsets
/// below 0x100) and configuration space (at 0x100 up).
pub trait MmioRegs {
    fn rd(&mut self, off: u64) -> u32;
    fn wr(&mut self, off: u64, v: u32);
    fn cfg_rd(&mut self, off: u64, size: u64) -> u64;
}

/// One function's PCI state.
#[derive(Clone, Copy)]
pub struct Func {
    pub kind: Kind,
    pub hostile: Hostile,
    /// Where BAR0 reads back when `hostile` is `BarRam`.
    pub ram: u32,
    command: u16,
    bar: u32,
    queue_sel: u16,
    /// The queue sizes: QueueNumMax until the driver writes its own, per queue.
    queue_size: [u16; 2],
}

/// The decoded ECAM offset: (bus, device, function, register).
pub fn ecam_decode(off: u64) -> (u64, u64, u64, usize) {
    (
        off >> 20,
        (off >> 15) & 0x1f,
        (off >> 12) & 7,
        (off & 0xfff) as usize,
    )
}

impl Func {
    /// A function of `kind` with BAR0 at `bar` (assigned by the host).
    pub const fn new(kind: Kind, bar: u32, hostile: Hostile, ram: u32) -> Func {
        Func {
            kind,
            hostile,
            ram,
            command: 0,
            bar,
            queue_sel: 0,
            queue_size: [QUEUE_MAX; 2],
        }
    }

    fn bar_now(&self) -> u32 {
        // The liar answers BAR sizing honestly, then names guest RAM.
        let sizing = self.bar == !(BAR_SIZE as u32 - 1);
        if self.hostile == Hostile::BarRam && !sizing {
            self.ram
        } else {
            self.bar
        }
    }

    /// The 256 bytes of configuration space as read now.
    fn config_space(&self) -> [u8; 256] {
        let mut c = [0u8; 256];
        let w16 =
            |c: &mut [u8; 256], o: usize, v: u16| c[o..o + 2].copy_from_slice(&v.to_le_bytes());
        let w32 =
            |c: &mut [u8; 256], o: usize, v: u32| c[o..o + 4].copy_from_slice(&v.to_le_bytes());
        w16(&mut c, 0x00, 0x1af4);
        w16(&mut c, 0x02, 0x1040 + self.kind.device);
        w16(&mut c, 0x04, self.command);
        w16(&mut c, 0x06, 0x0010); // capability list
        c[0x08] = 1; // revision 1: a modern device
        // Class: network controller, or mass storage (other).
        c[0x0a..0x0c].copy_from_slice(if self.kind.device == 1 {
            &[0x00, 0x02]
        } else {
            &[0x80, 0x01]
        });
        w32(&mut c, 0x10, self.bar_now()); // 32-bit memory BAR, not prefetchable
        w16(&mut c, 0x2c, 0x1af4);
        w16(&mut c, 0x2e, self.kind.device);
        c[0x34] = 0x40;
        // Vendor capabilities: id, next, length, cfg_type, bar, pad[3], offset, length.
        let caps: [(usize, u8, u64, u64); 4] = [
            (0x40, 1, COMMON, 0x38),
            (0x50, 2, NOTIFY, 2 * NOTIFY_MULT),
            (0x64, 3, ISR, 4),
            (0x74, 4, DEVICE, 0x100),
        ];
        for (i, &(o, typ, off, len)) in caps.iter().enumerate() {
            let next = match caps.get(i + 1) {
                Some(n) => n.0 as u8,
                None if self.hostile == Hostile::CapLoop => 0x40,
                None => 0,
            };
            let len = if typ == 4 && self.hostile == Hostile::CapBar {
                BAR_SIZE
            } else {
                len
            };
            c[o] = 9;
            c[o + 1] = next;
            c[o + 2] = if typ == 2 { 20 } else { 16 };
            c[o + 3] = typ;
            w32(&mut c, o + 8, off as u32);
            w32(&mut c, o + 12, len as u32);
            if typ == 2 {
                w32(&mut c, o + 16, NOTIFY_MULT as u32);
            }
        }
        c
    }

    /// A configuration-space read of `size` bytes at `reg`.
    pub fn config_read(&self, reg: usize, size: u64) -> u64 {
        let c = self.config_space();
        let mut v = 0u64;
        for i in 0..size.min(8) as usize {
            v |= (*c.get(reg + i).unwrap_or(&0) as u64) << (8 * i);
        }
        v
    }

    /// A configuration-space write: the command register and BAR0 (sizing:
    /// only the bits above the size are writable); the rest is read-only.
    pub fn config_write(&mut self, reg: usize, size: u64, val: u64) {
        match (reg, size) {
            (0x04, 2 | 4) => self.command = val as u16 & 0x0407,
            (0x10, 4) => self.bar = val as u32 & !(BAR_SIZE as u32 - 1),
            _ => {}
        }
    }

    /// The offset in BAR0 of `addr`, if BAR0 decodes it.
    pub fn bar_offset(&self, addr: u64) -> Option<u64> {
        let base = self.bar as u64;
        (self.hostile != Hostile::BarRam
            && self.command & 2 != 0
            && base != 0
            && (base..base + BAR_SIZE).contains(&addr))
        .then(|| addr - base)
    }

    /// A read at `off` in BAR0.
    pub fn bar_read(&mut self, off: u64, size: u64, regs: &mut impl MmioRegs) -> u64 {
        if (DEVICE..DEVICE + 0x100).contains(&off) {
            return regs.cfg_rd(off - DEVICE, size);
        }
        if off == ISR {
            // Reading the ISR clears it.
            let v = regs.rd(0x060);
            regs.wr(0x064, v);
            return v as u64;
        }
        let sel = self.queue_sel;
        (match off - COMMON {
            0x04 => regs.rd(0x010),
            0x10 => 0xffff, // config_msix_vector: NO_VECTOR
            0x12 => self.kind.queues as u32,
            0x14 => regs.rd(0x070) & 0xff,
            0x16 => sel as u32,
            0x18 if sel < self.kind.queues => self.queue_size[sel as usize] as u32,
            0x1a => 0xffff,
            0x1c => regs.rd(0x044),
            0x1e => sel as u32, // queue_notify_off: the queue's index
            _ => 0,
        }) as u64
    }

    /// A write at `off` in BAR0.
    pub fn bar_write(&mut self, off: u64, size: u64, val: u64, regs: &mut impl MmioRegs) {
        let v = val as u32;
        if (NOTIFY..NOTIFY + 2 * NOTIFY_MULT).contains(&off) {
            return regs.wr(0x050, v & 0xffff);
        }
        if off >= ISR {
            return;
        }
        let off = off - COMMON;
        // The ring addresses are 64-bit fields: one 8-byte store or two 4-byte ones.
        if size == 8 && matches!(off, 0x20 | 0x28 | 0x30) {
            let lo = 0x080 + (off - 0x20) * 2;
            regs.wr(lo, v);
            return regs.wr(lo + 4, (val >> 32) as u32);
        }
        match off {
            0x00 => regs.wr(0x014, v),
            0x08 => regs.wr(0x024, v),
            0x0c => regs.wr(0x020, v),
            0x14 => {
                if v & 0xff == 0 {
                    self.queue_size = [QUEUE_MAX; 2]; // a device reset
                }
                regs.wr(0x070, v & 0xff)
            }
            0x16 => {
                self.queue_sel = v as u16;
                regs.wr(0x030, v & 0xffff)
            }
            0x18 => {
                if self.queue_sel < self.kind.queues {
                    self.queue_size[self.queue_sel as usize] = v as u16;
                }
                regs.wr(0x038, v & 0xffff)
            }
            0x1c => regs.wr(0x044, v & 1),
            // queue_desc, queue_driver, queue_device: low and high halves.
            0x20..=0x37 if off & 3 == 0 => regs.wr(0x080 + (off - 0x20) / 8 * 0x10 + (off & 4), v),
            _ => {}
        }
    }
}
