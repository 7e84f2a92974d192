//! virtio-pci (modern) on kvmtool's generic ECAM bridge (`--virtio-pci`, kvmtool's
//! default transport on arm64): the virtio-blk and virtio-net move from
//! virtio-mmio to functions 00:00.0 and 00:01.0, each with one 32-bit memory BAR
//! of 16 KiB that the host assigns (as kvmtool does: 0x50000000 up) and the
//! virtio capabilities (common configuration, notification, ISR, device
//! configuration) in it.
//!
//! The devices behind are the virtio-mmio ones (`virtio.rs`, `virtio_net.rs`):
//! each access to a virtio structure becomes the virtio-mmio register access
//! with the same meaning, so the queues, the DMA checks (protected memory
//! refused and counted) and the counters are shared.
//!
//! For the driver's negative tests the bridge can lie (`vpci=...`): a
//! capability list that loops, a device-configuration capability beyond its
//! BAR, or a BAR that reads back an address in guest RAM whatever is written.

use crate::layout;
use crate::sys::SpinLock;

/// How the bridge misbehaves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Hostile {
    None,
    /// The last capability points back at the first.
    CapLoop,
    /// The device-configuration capability ends past its BAR.
    CapBar,
    /// BAR0 reads back the start of guest RAM once sized, whatever is written.
    BarRam,
}

const BAR_SIZE: u64 = 0x4000;
/// Where the host puts the BARs (the bridge's MEM32 window), one per function.
const BAR_BASE: u64 = 0x5000_0000;
const COMMON: u64 = 0x0000;
const NOTIFY: u64 = 0x1000;
const ISR: u64 = 0x2000;
const DEVICE: u64 = 0x3000;
const NOTIFY_MULT: u64 = 4;

#[derive(Clone, Copy)]
struct Func {
    command: u16,
    bar: u32,
    queue_sel: u16,
    /// The queue sizes the driver chose (QueueNum), per queue.
    queue_size: [u16; 2],
}

const F0: Func = Func {
    command: 0,
    bar: 0,
    queue_sel: 0,
    queue_size: [16; 2],
};

static FUNCS: SpinLock<[Func; 2]> = SpinLock::new([F0; 2]);

fn hostile() -> Hostile {
    crate::cfg().virtio_pci.unwrap_or(Hostile::None)
}

/// Whether function `dev` exists: 0 is the virtio-blk, 1 the virtio-net.
fn present(dev: usize) -> bool {
    let c = crate::cfg();
    c.virtio_pci.is_some()
        && match dev {
            0 => c.virtio_blk_kib != 0,
            1 => c.virtio_net.is_some(),
            _ => false,
        }
}

/// The host's initial BAR assignments (kvmtool assigns them itself).
pub fn init() {
    let mut f = FUNCS.lock();
    for (i, fx) in f.iter_mut().enumerate() {
        *fx = F0;
        fx.bar = (BAR_BASE + i as u64 * BAR_SIZE) as u32;
    }
}

/// The 256 bytes of function `dev`'s configuration space as read now.
fn config_space(dev: usize, f: &Func) -> [u8; 256] {
    let mut c = [0u8; 256];
    let w16 = |c: &mut [u8; 256], o: usize, v: u16| c[o..o + 2].copy_from_slice(&v.to_le_bytes());
    let w32 = |c: &mut [u8; 256], o: usize, v: u32| c[o..o + 4].copy_from_slice(&v.to_le_bytes());
    w16(&mut c, 0x00, 0x1af4);
    w16(&mut c, 0x02, if dev == 0 { 0x1042 } else { 0x1041 });
    w16(&mut c, 0x04, f.command);
    w16(&mut c, 0x06, 0x0010); // capability list
    c[0x08] = 1; // revision 1: a modern device
    c[0x0a..0x0c].copy_from_slice(if dev == 0 {
        &[0x80, 0x01]
    } else {
        &[0x00, 0x02]
    });
    // The liar answers BAR sizing honestly, then names guest RAM.
    let sizing = f.bar == !(BAR_SIZE as u32 - 1);
    let bar = if hostile() == Hostile::BarRam && !sizing {
        layout::RAM_IPA as u32
    } else {
        f.bar
    };
    w32(&mut c, 0x10, bar); // 32-bit memory BAR, not prefetchable
    w16(&mut c, 0x2c, 0x1af4);
    w16(&mut c, 0x2e, if dev == 0 { 2 } else { 1 });
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
            None if hostile() == Hostile::CapLoop => 0x40,
            None => 0,
        };
        let len = if typ == 4 && hostile() == Hostile::CapBar {
            BAR_SIZE
        } else {
            len
        };
        c[o] = 9;
        c[o + 1] = next;
        c[o + 2] = if typ == 2 { 20 } else { 16 };
        c[o + 3] = typ;
        c[o + 4] = 0;
        w32(&mut c, o + 8, off as u32);
        w32(&mut c, o + 12, len as u32);
        if typ == 2 {
            w32(&mut c, o + 16, NOTIFY_MULT as u32);
        }
    }
    c
}

/// An access at `addr` in the ECAM window: bus 0, functions 0 and 1 (device
/// numbers 0 and 1, function 0); the rest reads all ones.
pub fn ecam_read(addr: u64, size: u64) -> u64 {
    let off = addr - layout::ECAM_IPA;
    let (bus, dev, func, reg) = (
        off >> 20,
        (off >> 15) & 0x1f,
        (off >> 12) & 7,
        (off & 0xfff) as usize,
    );
    let ones = if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size * 8)) - 1
    };
    if bus != 0 || func != 0 || !present(dev as usize) {
        return ones;
    }
    if reg >= 256 {
        return 0;
    }
    let f = FUNCS.lock()[dev as usize];
    let c = config_space(dev as usize, &f);
    let mut v = 0u64;
    for i in 0..size.min(8) as usize {
        v |= (*c.get(reg + i).unwrap_or(&0) as u64) << (8 * i);
    }
    v
}

pub fn ecam_write(addr: u64, size: u64, val: u64) {
    let off = addr - layout::ECAM_IPA;
    let (bus, dev, func, reg) = (off >> 20, (off >> 15) & 0x1f, (off >> 12) & 7, off & 0xfff);
    if bus != 0 || func != 0 || !present(dev as usize) {
        return;
    }
    let mut fs = FUNCS.lock();
    let f = &mut fs[dev as usize];
    match (reg, size) {
        (0x04, 2 | 4) => f.command = val as u16 & 0x0407,
        // BAR sizing: writable bits are those above the size.
        (0x10, 4) => f.bar = val as u32 & !(BAR_SIZE as u32 - 1),
        _ => {}
    }
}

/// The function whose BAR (decoding enabled) holds `addr`, and the offset.
fn bar_hit(addr: u64) -> Option<(usize, u64)> {
    if hostile() == Hostile::BarRam {
        return None;
    }
    let fs = FUNCS.lock();
    (0..2).find_map(|d| {
        let f = &fs[d];
        let base = f.bar as u64;
        (present(d) && f.command & 2 != 0 && base != 0 && (base..base + BAR_SIZE).contains(&addr))
            .then_some((d, addr - base))
    })
}

/// Whether `addr` is in an enabled BAR.
pub fn claims(addr: u64) -> bool {
    crate::cfg().virtio_pci.is_some() && bar_hit(addr).is_some()
}

/// The virtio-mmio register access of device `dev` at offset `off`.
fn mmio_rd(dev: usize, off: u64) -> u32 {
    if dev == 0 {
        crate::virtio::mmio_read(crate::virtio::MMIO_IPA + off, 4) as u32
    } else {
        crate::virtio_net::mmio_read(crate::virtio_net::mmio_ipa() + off, 4) as u32
    }
}

fn mmio_wr(dev: usize, off: u64, v: u32) {
    if dev == 0 {
        crate::virtio::mmio_write(crate::virtio::MMIO_IPA + off, 4, v as u64)
    } else {
        crate::virtio_net::mmio_write(crate::virtio_net::mmio_ipa() + off, 4, v as u64)
    }
}

fn queues(dev: usize) -> u16 {
    if dev == 0 { 1 } else { 2 }
}

pub fn bar_read(addr: u64, size: u64) -> u64 {
    let Some((dev, off)) = bar_hit(addr) else {
        return 0;
    };
    if (DEVICE..DEVICE + 0x100).contains(&off) {
        let base = if dev == 0 {
            crate::virtio::MMIO_IPA
        } else {
            crate::virtio_net::mmio_ipa()
        };
        let a = base + 0x100 + (off - DEVICE);
        return if dev == 0 {
            crate::virtio::mmio_read(a, size)
        } else {
            crate::virtio_net::mmio_read(a, size)
        };
    }
    if off == ISR {
        // Reading the ISR clears it.
        let v = mmio_rd(dev, 0x060);
        mmio_wr(dev, 0x064, v);
        return v as u64;
    }
    let sel = FUNCS.lock()[dev].queue_sel;
    (match off - COMMON {
        0x00 => 0, // device_feature_select reads back unused
        0x04 => mmio_rd(dev, 0x010),
        0x10 => 0xffff, // config_msix_vector: NO_VECTOR
        0x12 => queues(dev) as u32,
        0x14 => mmio_rd(dev, 0x070) & 0xff,
        0x15 => 0,
        0x16 => sel as u32,
        0x18 if sel < queues(dev) => FUNCS.lock()[dev].queue_size[sel as usize] as u32,
        0x1a => 0xffff,
        0x1c => mmio_rd(dev, 0x044),
        0x1e => sel as u32, // queue_notify_off = the queue's index
        _ => 0,
    }) as u64
}

pub fn bar_write(addr: u64, size: u64, val: u64) {
    let Some((dev, off)) = bar_hit(addr) else {
        return;
    };
    let v = val as u32;
    if (NOTIFY..NOTIFY + 2 * NOTIFY_MULT).contains(&off) {
        mmio_wr(dev, 0x050, v & 0xffff);
        return;
    }
    if off >= ISR {
        return;
    }
    // The ring addresses are 64-bit fields: one 8-byte store or two 4-byte ones.
    if size == 8 && matches!(off - COMMON, 0x20 | 0x28 | 0x30) {
        let lo = 0x080 + (off - COMMON - 0x20) * 2;
        mmio_wr(dev, lo, v);
        mmio_wr(dev, lo + 4, (val >> 32) as u32);
        return;
    }
    match off - COMMON {
        0x00 => mmio_wr(dev, 0x014, v),
        0x08 => mmio_wr(dev, 0x024, v),
        0x0c => mmio_wr(dev, 0x020, v),
        0x14 => {
            if v & 0xff == 0 {
                FUNCS.lock()[dev].queue_size = [16; 2]; // a device reset
            }
            mmio_wr(dev, 0x070, v & 0xff)
        }
        0x16 => {
            FUNCS.lock()[dev].queue_sel = v as u16;
            mmio_wr(dev, 0x030, v & 0xffff);
        }
        0x18 => {
            let sel = FUNCS.lock()[dev].queue_sel;
            if sel < queues(dev) {
                FUNCS.lock()[dev].queue_size[sel as usize] = v as u16;
            }
            mmio_wr(dev, 0x038, v & 0xffff);
        }
        0x1c => mmio_wr(dev, 0x044, v & 1),
        0x20 => mmio_wr(dev, 0x080, v),
        0x24 => mmio_wr(dev, 0x084, v),
        0x28 => mmio_wr(dev, 0x090, v),
        0x2c => mmio_wr(dev, 0x094, v),
        0x30 => mmio_wr(dev, 0x0a0, v),
        0x34 => mmio_wr(dev, 0x0a4, v),
        _ => {}
    }
}
