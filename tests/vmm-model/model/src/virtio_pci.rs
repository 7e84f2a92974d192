//! virtio-pci on kvmtool's generic ECAM bridge (`--virtio-pci`, kvmtool's default
//! transport on arm64): the virtio-blk and virtio-net move from virtio-mmio to
//! functions 00:00.0 and 00:01.0, each with one 32-bit memory BAR of 16 KiB that
//! the host assigns (as kvmtool does: 0x50000000 up).
//!
//! The configuration space and the translation of each access to a virtio
//! structure into the virtio-mmio register access with the same meaning are
//! `common/virtio_pci.rs` (shared with `tools/rmm-launcher`); the devices behind
//! are the virtio-mmio ones (`virtio.rs`, `virtio_net.rs`), so the queues, the DMA
//! checks (protected memory refused and counted) and the counters are theirs.
//!
//! For the driver's negative tests the bridge can lie (`vpci=caploop|capbar|
//! bar-ram`): a capability list that loops, a device-configuration capability
//! beyond its BAR, a BAR that names guest RAM once sized.

use crate::layout;
use crate::sys::SpinLock;
pub use crate::virtio_pci_common::Hostile;
use crate::virtio_pci_common::{self as common, BAR_BASE, BAR_SIZE, Func, MmioRegs};

static FUNCS: SpinLock<[Func; 2]> = SpinLock::new([
    Func::new(common::BLK, 0, Hostile::None, 0),
    Func::new(common::NET, 0, Hostile::None, 0),
]);

/// Whether function `dev` exists: 0 is the virtio-blk, 1 the virtio-net.
fn present(dev: u64) -> bool {
    let c = crate::cfg();
    c.virtio_pci.is_some()
        && match dev {
            0 => c.virtio_blk_kib != 0,
            1 => c.virtio_net.is_some(),
            _ => false,
        }
}

/// The host's BAR assignments (kvmtool assigns them itself).
pub fn init() {
    let h = crate::cfg().virtio_pci.unwrap_or(Hostile::None);
    let mut f = FUNCS.lock();
    for (i, kind) in [common::BLK, common::NET].into_iter().enumerate() {
        f[i] = Func::new(
            kind,
            (BAR_BASE + i as u64 * BAR_SIZE) as u32,
            h,
            layout::RAM_IPA as u32,
        );
    }
}

/// A read at `addr` in the ECAM window: bus 0, devices 0 and 1, function 0;
/// all ones elsewhere.
pub fn ecam_read(addr: u64, size: u64) -> u64 {
    let (bus, dev, func, reg) = common::ecam_decode(addr - layout::ECAM_IPA);
    if bus != 0 || func != 0 || !present(dev) {
        return if size >= 8 {
            u64::MAX
        } else {
            (1u64 << (size * 8)) - 1
        };
    }
    FUNCS.lock()[dev as usize].config_read(reg, size)
}

pub fn ecam_write(addr: u64, size: u64, val: u64) {
    let (bus, dev, func, reg) = common::ecam_decode(addr - layout::ECAM_IPA);
    if bus == 0 && func == 0 && present(dev) {
        FUNCS.lock()[dev as usize].config_write(reg, size, val);
    }
}

/// The function whose BAR holds `addr`, and the offset.
fn bar_hit(addr: u64) -> Option<(usize, u64)> {
    let fs = FUNCS.lock();
    (0..2).find_map(|d| {
        (present(d as u64))
            .then(|| fs[d].bar_offset(addr))
            .flatten()
            .map(|o| (d, o))
    })
}

/// Whether `addr` is in an enabled BAR.
pub fn claims(addr: u64) -> bool {
    crate::cfg().virtio_pci.is_some() && bar_hit(addr).is_some()
}

/// The virtio-mmio device behind function 0 (blk) or 1 (net).
struct Regs(usize);

impl MmioRegs for Regs {
    fn rd(&mut self, off: u64) -> u32 {
        if self.0 == 0 {
            crate::virtio::mmio_read(crate::virtio::MMIO_IPA + off, 4) as u32
        } else {
            crate::virtio_net::mmio_read(crate::virtio_net::mmio_ipa() + off, 4) as u32
        }
    }
    fn wr(&mut self, off: u64, v: u32) {
        if self.0 == 0 {
            crate::virtio::mmio_write(crate::virtio::MMIO_IPA + off, 4, v as u64)
        } else {
            crate::virtio_net::mmio_write(crate::virtio_net::mmio_ipa() + off, 4, v as u64)
        }
    }
    fn cfg_rd(&mut self, off: u64, size: u64) -> u64 {
        if self.0 == 0 {
            crate::virtio::mmio_read(crate::virtio::MMIO_IPA + 0x100 + off, size)
        } else {
            crate::virtio_net::mmio_read(crate::virtio_net::mmio_ipa() + 0x100 + off, size)
        }
    }
}

pub fn bar_read(addr: u64, size: u64) -> u64 {
    let Some((dev, off)) = bar_hit(addr) else {
        return 0;
    };
    // A copy: the device behind takes its own lock.
    let mut f = FUNCS.lock()[dev];
    let v = f.bar_read(off, size, &mut Regs(dev));
    FUNCS.lock()[dev] = f;
    v
}

pub fn bar_write(addr: u64, size: u64, val: u64) {
    let Some((dev, off)) = bar_hit(addr) else {
        return;
    };
    let mut f = FUNCS.lock()[dev];
    f.bar_write(off, size, val, &mut Regs(dev));
    FUNCS.lock()[dev] = f;
}
