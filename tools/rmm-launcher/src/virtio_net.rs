//! A virtio-net on virtio-mmio (modern, version 2) for the realm, where the
//! machine model's DTB puts it (`--virtio-net`, as kvmtool hands windows out in
//! order): the window after the virtio-blk's when there is one, else at
//! 0x3000000. A receive queue (0) and a transmit queue (1), no interrupt (the
//! realm's driver polls the used rings).
//!
//! Behind it is the machine model's gateway (`tests/vmm-model/common/
//! net_gateway.rs`, shared by `#[path]`): 192.168.33.1 answers ARP, ICMP echo
//! and UDP echo on port 7. The register semantics and checks are the model's
//! device (`tests/vmm-model/model/src/virtio_net.rs`); the shared memory and the
//! queues are reached through `virtq.rs`, so the device touches the realm only
//! at unprotected IPAs, and anything hostile puts it in DEVICE_NEEDS_RESET.
//!
//! For the driver's negative tests the device can itself misbehave, as the
//! model's: a used length larger than the receive buffer, or a used id outside
//! the queue.

use crate::net_gateway::{FRAME_MAX, GUEST_MAC, respond};
use crate::sys::log;
use crate::virtq::{
    CHAIN0, DESC_F_WRITE, Dma, GuestMem, QUEUE_MAX, Queue, S_DRIVER_OK, S_FEATURES_OK,
    S_NEEDS_RESET, config_read, status_name,
};

pub const MMIO_SIZE: u64 = 0x200;
/// virtio_net_hdr with VERSION_1 (num_buffers included).
const HDR: usize = 12;
/// Replies waiting for a receive buffer.
const PENDING: usize = 4;

const F_MAC: u64 = 1 << 5;
const F_STATUS: u64 = 1 << 16;
const F_VERSION_1: u64 = 1 << 32;
const F_ACCESS_PLATFORM: u64 = 1 << 33;
const FEATURES: u64 = F_VERSION_1 | F_MAC | F_STATUS | F_ACCESS_PLATFORM;
/// A realm's device: the driver must accept these.
const NEED: u64 = F_VERSION_1 | F_ACCESS_PLATFORM;

/// How the device misbehaves (the runner's `--virtio-net=len|id`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    None,
    /// Receive completions claim 64 bytes more than the buffer holds.
    Len,
    /// Receive completions name a descriptor id outside the queue.
    Id,
}

pub struct Net {
    /// The window's IPA (0: no device).
    base: u64,
    hostile: Hostile,
    queue_sel: u32,
    dev_feat_sel: u32,
    drv_feat_sel: u32,
    driver_features: u64,
    status: u32,
    q: [Queue; 2],
    isr: u32,
    pending: [[u8; FRAME_MAX]; PENDING],
    pending_len: [usize; PENDING],
    /// Oldest pending reply and how many there are.
    first: usize,
    count: usize,
    pub dma: Dma,
    // counters
    /// Frames the realm sent, replies delivered, frames dropped (not for the
    /// gateway, malformed, or no slot left).
    pub tx: u64,
    pub rx: u64,
    pub dropped: u64,
    pub mmio_exits: u64,
    pub notifies: u64,
}

impl Net {
    pub const fn new() -> Net {
        Net {
            base: 0,
            hostile: Hostile::None,
            queue_sel: 0,
            dev_feat_sel: 0,
            drv_feat_sel: 0,
            driver_features: 0,
            status: 0,
            q: [Queue::RESET; 2],
            isr: 0,
            pending: [[0; FRAME_MAX]; PENDING],
            pending_len: [0; PENDING],
            first: 0,
            count: 0,
            dma: Dma::new("virtio-net"),
            tx: 0,
            rx: 0,
            dropped: 0,
            mmio_exits: 0,
            notifies: 0,
        }
    }

    /// The device at IPA `base` for a realm with shared bit `shared` and RAM
    /// [ram_base, ram_end).
    pub fn init(&mut self, base: u64, hostile: Hostile, shared: u64, ram_base: u64, ram_end: u64) {
        self.base = base;
        self.hostile = hostile;
        self.dma.init(shared, ram_base, ram_end);
    }

    pub fn present(&self) -> bool {
        self.base != 0
    }

    /// The window's IPA.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Whether the device window holds `ipa` (shared bit cleared).
    pub fn claims(&self, ipa: u64) -> bool {
        self.present() && (self.base..self.base + MMIO_SIZE).contains(&ipa)
    }

    fn reset(&mut self) {
        self.queue_sel = 0;
        self.dev_feat_sel = 0;
        self.drv_feat_sel = 0;
        self.driver_features = 0;
        self.status = 0;
        self.q = [Queue::RESET; 2];
        self.isr = 0;
        self.count = 0;
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
        let off = ipa - self.base;
        if write {
            self.write(mem, off, size, val);
            0
        } else {
            self.read(off, size)
        }
    }

    fn read(&self, off: u64, size: u64) -> u64 {
        if off >= 0x100 {
            // Config space: mac[6], status (LINK_UP), max_virtqueue_pairs.
            let mut cfg = [0u8; 12];
            cfg[..6].copy_from_slice(&GUEST_MAC);
            cfg[6] = 1;
            cfg[8] = 1;
            return config_read(&cfg, off - 0x100, size);
        }
        if size != 4 {
            return 0;
        }
        let q = self.q.get(self.queue_sel as usize);
        (match off {
            0x000 => 0x7472_6976,
            0x004 => 2,
            0x008 => 1, // network card
            0x00c => 0x4d56_4b4c,
            0x010 => match self.dev_feat_sel {
                0 => FEATURES as u32,
                1 => (FEATURES >> 32) as u32,
                _ => 0,
            },
            0x034 => q.map_or(0, |_| QUEUE_MAX),
            0x044 => q.map_or(0, |q| q.ready as u32),
            0x060 => self.isr,
            0x070 => self.status,
            _ => 0,
        }) as u64
    }

    fn write(&mut self, mem: &mut impl GuestMem, off: u64, size: u64, val: u64) {
        if off >= 0x100 || size != 4 {
            return;
        }
        let v = val as u32;
        let sel = self.queue_sel as usize;
        match off {
            0x014 => self.dev_feat_sel = v,
            0x020 => match self.drv_feat_sel {
                0 => self.driver_features = (self.driver_features & !0xffff_ffff) | v as u64,
                1 => self.driver_features = (self.driver_features & 0xffff_ffff) | (v as u64) << 32,
                _ => {}
            },
            0x024 => self.drv_feat_sel = v,
            0x030 => self.queue_sel = v,
            0x050 if v < 2 => {
                self.notifies += 1;
                self.process(mem)
            }
            0x064 => self.isr &= !v,
            0x070 => {
                if v == 0 {
                    self.reset();
                    return;
                }
                let mut v = v;
                if v & S_FEATURES_OK != 0 && self.status & S_FEATURES_OK == 0 {
                    let f = self.driver_features;
                    if f & !FEATURES != 0 || f & NEED != NEED {
                        log!(
                            "virtio-net: driver features {:#x} refused (offered {:#x}): FEATURES_OK not set",
                            f,
                            FEATURES
                        );
                        v &= !S_FEATURES_OK;
                    }
                }
                self.status = v | (self.status & S_NEEDS_RESET);
            }
            _ if sel < 2 => self.q[sel].write_reg(off, v),
            _ => {} // queues other than 0 and 1 ignore writes
        }
    }

    fn fail(&mut self, why: &str) {
        log!("virtio-net: {}: device needs reset", why);
        self.status |= S_NEEDS_RESET;
    }

    fn process(&mut self, mem: &mut impl GuestMem) {
        if self.status & S_DRIVER_OK == 0
            || self.status & S_FEATURES_OK == 0
            || self.status & S_NEEDS_RESET != 0
        {
            return;
        }
        if self.q.iter().any(|q| q.ready && !q.size_ok()) {
            return self.fail("queue size not a power of two within QueueNumMax");
        }
        if let Err(why) = self.transmit(mem).and_then(|()| self.receive(mem)) {
            self.fail(why);
        }
    }

    /// Serves every frame the realm queued for transmission (one pass).
    fn transmit(&mut self, mem: &mut impl GuestMem) -> Result<(), &'static str> {
        let mut q = self.q[1];
        let r = self.transmit_on(&mut q, mem);
        self.q[1] = q;
        r
    }

    fn transmit_on(&mut self, q: &mut Queue, mem: &mut impl GuestMem) -> Result<(), &'static str> {
        if !q.ready {
            return Ok(());
        }
        let mut descs = CHAIN0;
        for _ in 0..q.num {
            let Some(head) = q.next_avail(&mut self.dma, mem)? else {
                break;
            };
            let k = q
                .chain(&mut self.dma, mem, head, &mut descs)
                .map_err(|_| "bad transmit chain")?;
            // Header and frame, all device-readable, together at most a full frame.
            let mut buf = [0u8; HDR + FRAME_MAX];
            let mut len = 0usize;
            for d in &descs[..k] {
                if d.flags & DESC_F_WRITE != 0 || d.len as usize > buf.len() - len {
                    return Err("transmit chain writable or longer than a frame");
                }
                self.dma
                    .rd_into(mem, d.addr, &mut buf[len..len + d.len as usize])
                    .map_err(|_| "transmit buffer unreachable")?;
                len += d.len as usize;
            }
            if len < HDR {
                return Err("transmit chain shorter than the virtio-net header");
            }
            self.tx += 1;
            let mut reply = [0u8; FRAME_MAX];
            match respond(&buf[HDR..len], &mut reply) {
                Some(rl) if self.count < PENDING => {
                    let slot = (self.first + self.count) % PENDING;
                    self.pending[slot][..rl].copy_from_slice(&reply[..rl]);
                    self.pending_len[slot] = rl;
                    self.count += 1;
                }
                _ => self.dropped += 1,
            }
            q.push_used(&mut self.dma, mem, head as u32, 0)?;
            self.isr |= 1;
        }
        Ok(())
    }

    /// Delivers pending replies into the realm's receive buffers.
    fn receive(&mut self, mem: &mut impl GuestMem) -> Result<(), &'static str> {
        let mut q = self.q[0];
        let r = self.receive_on(&mut q, mem);
        self.q[0] = q;
        r
    }

    fn receive_on(&mut self, q: &mut Queue, mem: &mut impl GuestMem) -> Result<(), &'static str> {
        if !q.ready {
            return Ok(());
        }
        let mut descs = CHAIN0;
        while self.count > 0 {
            let Some(head) = q.next_avail(&mut self.dma, mem)? else {
                break;
            };
            let k = q
                .chain(&mut self.dma, mem, head, &mut descs)
                .map_err(|_| "bad receive chain")?;
            let cap: u64 = descs[..k].iter().map(|d| d.len as u64).sum();
            let flen = self.pending_len[self.first];
            // Without MRG_RXBUF every buffer must take a whole frame (and the header).
            if descs[..k].iter().any(|d| d.flags & DESC_F_WRITE == 0) || cap < (HDR + flen) as u64 {
                return Err("receive buffer read-only or too small for the frame");
            }
            let mut pkt = [0u8; HDR + FRAME_MAX];
            pkt[10] = 1; // num_buffers
            pkt[HDR..HDR + flen].copy_from_slice(&self.pending[self.first][..flen]);
            let mut left = &pkt[..HDR + flen];
            for d in &descs[..k] {
                let m = (d.len as usize).min(left.len());
                self.dma
                    .wr(mem, d.addr, &left[..m])
                    .map_err(|_| "receive buffer unreachable")?;
                left = &left[m..];
            }
            let (id, len) = match self.hostile {
                Hostile::None => (head as u32, (HDR + flen) as u32),
                Hostile::Len => (head as u32, cap as u32 + 64),
                Hostile::Id => (q.num + 5, (HDR + flen) as u32),
            };
            q.push_used(&mut self.dma, mem, id, len)?;
            self.first = (self.first + 1) % PENDING;
            self.count -= 1;
            self.isr |= 1;
            self.rx += 1;
        }
        Ok(())
    }

    /// The device's state, for the counters line.
    pub fn status_name(&self) -> &'static str {
        status_name(self.status)
    }
}
