//! virtio-pci on kvmtool's generic ECAM bridge (`--virtio-pci`): the launcher's
//! virtio-blk and virtio-net as functions 00:00.0 and 00:01.0 instead of
//! virtio-mmio windows, each with a 32-bit memory BAR of 16 KiB the host assigns
//! (0x50000000 up, as kvmtool). The configuration space and the translation of
//! each access to a virtio structure into the device's virtio-mmio register
//! access are the machine model's (`tests/vmm-model/common/virtio_pci.rs`, shared
//! by `#[path]`); the devices behind are `virtio_blk.rs` and `virtio_net.rs`, so
//! their checks and counters apply unchanged. The ECAM and the BARs are reached by
//! the realm at their unprotected alias: every access is a REC exit with a
//! syndrome.

use crate::virtio_pci_common::{self as common, BAR_BASE, BAR_SIZE, Func, Hostile, MmioRegs};
use crate::virtq::GuestMem;
use crate::{blk, net};

/// kvmtool's ECAM window (bus 0 only).
pub const ECAM_IPA: u64 = 0x4000_0000;
pub const ECAM_SIZE: u64 = 0x1000_0000;

pub struct Pci {
    on: bool,
    funcs: [Func; 2],
    /// Configuration and BAR accesses (REC exits).
    pub ecam_exits: u64,
    pub bar_exits: u64,
}

impl Pci {
    pub const fn new() -> Pci {
        Pci {
            on: false,
            funcs: [
                Func::new(common::BLK, 0, Hostile::None, 0),
                Func::new(common::NET, 0, Hostile::None, 0),
            ],
            ecam_exits: 0,
            bar_exits: 0,
        }
    }

    /// Puts the present devices on the bridge; `ram` is where a lying BAR points.
    pub fn init(&mut self, hostile: Hostile, ram: u64) {
        self.on = true;
        for (i, kind) in [common::BLK, common::NET].into_iter().enumerate() {
            self.funcs[i] = Func::new(
                kind,
                (BAR_BASE + i as u64 * BAR_SIZE) as u32,
                hostile,
                ram as u32,
            );
        }
    }

    pub fn on(&self) -> bool {
        self.on
    }

    fn present(&self, dev: u64) -> bool {
        self.on
            && match dev {
                0 => blk().present(),
                1 => net().present(),
                _ => false,
            }
    }

    /// Whether the bridge answers at `ipa` (shared bit cleared): the ECAM, or an
    /// enabled BAR of a present function.
    pub fn claims(&self, ipa: u64) -> bool {
        self.on && ((ECAM_IPA..ECAM_IPA + ECAM_SIZE).contains(&ipa) || self.bar_hit(ipa).is_some())
    }

    fn bar_hit(&self, ipa: u64) -> Option<(usize, u64)> {
        (0..2).find_map(|d| {
            self.present(d as u64)
                .then(|| self.funcs[d].bar_offset(ipa))
                .flatten()
                .map(|o| (d, o))
        })
    }

    /// An access at `ipa` (shared bit cleared); returns the value of a read.
    pub fn mmio(
        &mut self,
        mem: &mut impl GuestMem,
        ipa: u64,
        write: bool,
        val: u64,
        size: u64,
    ) -> u64 {
        if (ECAM_IPA..ECAM_IPA + ECAM_SIZE).contains(&ipa) {
            self.ecam_exits += 1;
            let (bus, dev, func, reg) = common::ecam_decode(ipa - ECAM_IPA);
            let here = bus == 0 && func == 0 && self.present(dev);
            return match (here, write) {
                (false, false) => {
                    if size >= 8 {
                        u64::MAX
                    } else {
                        (1u64 << (size * 8)) - 1
                    }
                }
                (false, true) => 0,
                (true, false) => self.funcs[dev as usize].config_read(reg, size),
                (true, true) => {
                    self.funcs[dev as usize].config_write(reg, size, val);
                    0
                }
            };
        }
        let Some((dev, off)) = self.bar_hit(ipa) else {
            return 0;
        };
        self.bar_exits += 1;
        let mut regs = Regs { mem, dev };
        let f = &mut self.funcs[dev];
        if write {
            f.bar_write(off, size, val, &mut regs);
            0
        } else {
            f.bar_read(off, size, &mut regs)
        }
    }
}

/// The device behind function `dev`, reached through its virtio-mmio registers.
struct Regs<'a, M: GuestMem> {
    mem: &'a mut M,
    dev: usize,
}

impl<M: GuestMem> Regs<'_, M> {
    fn access(&mut self, off: u64, write: bool, val: u64, size: u64) -> u64 {
        if self.dev == 0 {
            let b = blk();
            b.mmio(
                self.mem,
                crate::virtio_blk::MMIO_IPA + off,
                write,
                val,
                size,
            )
        } else {
            let n = net();
            let base = n.base();
            n.mmio(self.mem, base + off, write, val, size)
        }
    }
}

impl<M: GuestMem> MmioRegs for Regs<'_, M> {
    fn rd(&mut self, off: u64) -> u32 {
        self.access(off, false, 0, 4) as u32
    }
    fn wr(&mut self, off: u64, v: u32) {
        self.access(off, true, v as u64, 4);
    }
    fn cfg_rd(&mut self, off: u64, size: u64) -> u64 {
        self.access(0x100 + off, false, 0, size)
    }
}
