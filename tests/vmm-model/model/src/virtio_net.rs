//! A virtio-net device on virtio-mmio (modern, version 2), as kvmtool's
//! `--network mode=user --virtio-transport mmio` gives a guest: the next window
//! and SPI after the virtio-blk one (kvmtool hands them out in order), a receive
//! queue (0) and a transmit queue (1).
//!
//! Behind it is a tiny host in the spirit of kvmtool's user-mode network (uip):
//! the gateway 192.168.33.1 (MAC 02:01:01:01:01:01) answers ARP for itself, ICMP
//! echo requests to itself, and echoes UDP datagrams sent to its port 7. Other
//! frames are dropped. Replies wait in a few slots until the guest posts receive
//! buffers.
//!
//! Everything the guest hands the device is hostile input, as for the virtio-blk
//! (`virtio.rs`, whose DMA checks this reuses): a bad queue, chain, length or
//! address puts the device in DEVICE_NEEDS_RESET; in realm mode a DMA to protected
//! memory is counted in `virtio-protected-dma` and refused.
//!
//! For the driver's negative tests the device can itself misbehave
//! (`vnet=len`: a used length larger than the receive buffer; `vnet=id`: a used
//! id outside the queue).

use crate::net_gateway::{FRAME_MAX, GUEST_MAC, respond};
use crate::sys::{SpinLock, log};
use crate::virtio::{Bad, dma_for};
use core::sync::atomic::{AtomicU64, Ordering};

/// Size of the window (kvmtool's VIRTIO_MMIO_IO_SIZE).
pub const MMIO_SIZE: u64 = 0x200;
/// kvmtool's VIRTIO_NET_QUEUE_SIZE (see `virtio.rs`).
const QUEUE_MAX: u32 = 256;
/// virtio_net_hdr with VERSION_1 (num_buffers included).
const HDR: usize = 12;
/// Replies waiting for a receive buffer.
const PENDING: usize = 4;

/// Frames the guest sent, replies delivered, frames dropped (not for the gateway,
/// malformed, or no slot left).
pub static TX: AtomicU64 = AtomicU64::new(0);
pub static RX: AtomicU64 = AtomicU64::new(0);
pub static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Guest accesses to the window (each one a VM exit), and queue notifications
/// among them.
pub static MMIO: AtomicU64 = AtomicU64::new(0);
pub static NOTIFIES: AtomicU64 = AtomicU64::new(0);

const F_MAC: u64 = 1 << 5;
const F_STATUS: u64 = 1 << 16;
const F_VERSION_1: u64 = 1 << 32;
const F_ACCESS_PLATFORM: u64 = 1 << 33;

const S_ACKNOWLEDGE: u32 = 1;
const S_DRIVER: u32 = 2;
const S_DRIVER_OK: u32 = 4;
const S_FEATURES_OK: u32 = 8;
const S_NEEDS_RESET: u32 = 0x40;

const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
const DESC_F_INDIRECT: u16 = 4;

/// How the device misbehaves (negative tests of the driver).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Hostile {
    None,
    /// Receive completions claim 64 bytes more than the buffer holds.
    Len,
    /// Receive completions name a descriptor id outside the queue.
    Id,
}

#[derive(Clone, Copy)]
struct Queue {
    num: u32,
    ready: bool,
    desc: u64,
    avail: u64,
    used: u64,
    last_avail: u16,
}

const Q0: Queue = Queue {
    num: 0,
    ready: false,
    desc: 0,
    avail: 0,
    used: 0,
    last_avail: 0,
};

struct Net {
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
}

impl Net {
    const RESET: Net = Net {
        queue_sel: 0,
        dev_feat_sel: 0,
        drv_feat_sel: 0,
        driver_features: 0,
        status: 0,
        q: [Q0; 2],
        isr: 0,
        pending: [[0; FRAME_MAX]; PENDING],
        pending_len: [0; PENDING],
        first: 0,
        count: 0,
    };
}

static NET: SpinLock<Net> = SpinLock::new(Net::RESET);

/// The device's window: the next one after the virtio-blk's when there is one.
pub fn mmio_ipa() -> u64 {
    crate::virtio::MMIO_IPA
        + if crate::cfg().virtio_blk_kib != 0 {
            MMIO_SIZE
        } else {
            0
        }
}

/// The device's SPI (DT `interrupts` cell): the next line after the virtio-blk's.
pub fn spi() -> u32 {
    crate::virtio::SPI + (crate::cfg().virtio_blk_kib != 0) as u32
}

fn features() -> u64 {
    F_VERSION_1
        | F_MAC
        | F_STATUS
        | if crate::cfg().realm {
            F_ACCESS_PLATFORM
        } else {
            0
        }
}

/// Whether `addr` is in the device window (and the device exists).
pub fn claims(addr: u64) -> bool {
    crate::cfg().virtio_net.is_some()
        && crate::cfg().virtio_pci.is_none()
        && (mmio_ipa()..mmio_ipa() + MMIO_SIZE).contains(&addr)
}

pub fn mmio_read(addr: u64, size: u64) -> u64 {
    MMIO.fetch_add(1, Ordering::Relaxed);
    let n = NET.lock();
    let off = addr - mmio_ipa();
    if off >= 0x100 {
        // Config space: mac[6], status (LINK_UP), max_virtqueue_pairs, mtu.
        let mut cfg = [0u8; 12];
        cfg[..6].copy_from_slice(&GUEST_MAC);
        cfg[6] = 1;
        cfg[8] = 1;
        let mut v = 0u64;
        for i in 0..size.min(8) {
            let o = (off - 0x100 + i) as usize;
            if o < cfg.len() {
                v |= (cfg[o] as u64) << (8 * i);
            }
        }
        return v;
    }
    if size != 4 {
        return 0;
    }
    let q = n.q.get(n.queue_sel as usize);
    (match off {
        0x000 => 0x7472_6976,
        0x004 => 2,
        0x008 => 1, // network card
        0x00c => 0x4d56_4b4c,
        0x010 => match n.dev_feat_sel {
            0 => features() as u32,
            1 => (features() >> 32) as u32,
            _ => 0,
        },
        0x034 => q.map_or(0, |_| QUEUE_MAX),
        0x044 => q.map_or(0, |q| q.ready as u32),
        0x060 => n.isr,
        0x070 => n.status,
        _ => 0,
    }) as u64
}

pub fn mmio_write(addr: u64, size: u64, val: u64) {
    MMIO.fetch_add(1, Ordering::Relaxed);
    let mut n = NET.lock();
    let off = addr - mmio_ipa();
    if off >= 0x100 || size != 4 {
        return;
    }
    let v = val as u32;
    let sel = n.queue_sel as usize;
    match off {
        0x014 => n.dev_feat_sel = v,
        0x020 => match n.drv_feat_sel {
            0 => n.driver_features = (n.driver_features & !0xffff_ffff) | v as u64,
            1 => n.driver_features = (n.driver_features & 0xffff_ffff) | (v as u64) << 32,
            _ => {}
        },
        0x024 => n.drv_feat_sel = v,
        0x030 => n.queue_sel = v,
        0x050 if v < 2 => {
            NOTIFIES.fetch_add(1, Ordering::Relaxed);
            process(&mut n)
        }
        0x064 => n.isr &= !v,
        0x070 => {
            if v == 0 {
                *n = Net::RESET;
                return;
            }
            let mut v = v;
            if v & S_FEATURES_OK != 0 && n.status & S_FEATURES_OK == 0 {
                let f = n.driver_features;
                let need = F_VERSION_1 | (features() & F_ACCESS_PLATFORM);
                if f & !features() != 0 || f & need != need {
                    log!(
                        "virtio-net: driver features {:#x} refused (offered {:#x}): FEATURES_OK not set",
                        f,
                        features()
                    );
                    v &= !S_FEATURES_OK;
                }
            }
            n.status = v | (n.status & S_NEEDS_RESET);
        }
        _ if sel >= 2 => {} // queues other than 0 and 1 ignore writes
        0x038 => n.q[sel].num = v,
        0x044 => n.q[sel].ready = v & 1 != 0,
        0x080 => n.q[sel].desc = (n.q[sel].desc & !0xffff_ffff) | v as u64,
        0x084 => n.q[sel].desc = (n.q[sel].desc & 0xffff_ffff) | (v as u64) << 32,
        0x090 => n.q[sel].avail = (n.q[sel].avail & !0xffff_ffff) | v as u64,
        0x094 => n.q[sel].avail = (n.q[sel].avail & 0xffff_ffff) | (v as u64) << 32,
        0x0a0 => n.q[sel].used = (n.q[sel].used & !0xffff_ffff) | v as u64,
        0x0a4 => n.q[sel].used = (n.q[sel].used & 0xffff_ffff) | (v as u64) << 32,
        _ => {}
    }
}

fn dma(addr: u64, len: u64) -> Result<u64, Bad> {
    dma_for("virtio-net", addr, len)
}

fn rd<const N: usize>(addr: u64) -> Result<[u8; N], Bad> {
    let p = dma(addr, N as u64)?;
    let mut out = [0u8; N];
    // SAFETY: `dma` checked the range lies inside guest RAM, which the model maps
    // identically at EL2; bytes are copied, so any alignment works.
    unsafe { core::ptr::copy_nonoverlapping(p as *const u8, out.as_mut_ptr(), N) };
    Ok(out)
}

fn rd_into(addr: u64, out: &mut [u8]) -> Result<(), Bad> {
    let p = dma(addr, out.len() as u64)?;
    // SAFETY: as `rd`.
    unsafe { core::ptr::copy_nonoverlapping(p as *const u8, out.as_mut_ptr(), out.len()) };
    Ok(())
}

fn wr(addr: u64, data: &[u8]) -> Result<(), Bad> {
    let p = dma(addr, data.len() as u64)?;
    // SAFETY: as `rd`.
    unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), p as *mut u8, data.len()) };
    Ok(())
}

fn fail(n: &mut Net, why: &str) {
    log!("virtio-net: {}: device needs reset", why);
    n.status |= S_NEEDS_RESET;
}

#[derive(Clone, Copy)]
struct Desc {
    addr: u64,
    len: u32,
    flags: u16,
}

/// Reads the chain at `head` of queue `q`: every descriptor in range, no loop, no
/// indirect, each buffer inside guest RAM (and shared, in a realm).
fn chain(q: &Queue, head: u16, out: &mut [Desc; QUEUE_MAX as usize]) -> Result<usize, Bad> {
    let mut n = 0usize;
    let mut i = head as u32;
    loop {
        if i >= q.num || n >= q.num as usize {
            log!("virtio-net: descriptor {} out of range or chain loops", i);
            return Err(Bad);
        }
        let d = rd::<16>(q.desc + 16 * i as u64)?;
        let desc = Desc {
            addr: u64::from_le_bytes(d[0..8].try_into().unwrap_or_default()),
            len: u32::from_le_bytes(d[8..12].try_into().unwrap_or_default()),
            flags: u16::from_le_bytes(d[12..14].try_into().unwrap_or_default()),
        };
        if desc.flags & DESC_F_INDIRECT != 0 {
            log!("virtio-net: indirect descriptor not negotiated");
            return Err(Bad);
        }
        dma(desc.addr, desc.len as u64)?;
        out[n] = desc;
        n += 1;
        if desc.flags & DESC_F_NEXT == 0 {
            return Ok(n);
        }
        i = u16::from_le_bytes(d[14..16].try_into().unwrap_or_default()) as u32;
    }
}

/// The next available head of queue `q`, if any.
fn next_avail(q: &Queue) -> Result<Option<u16>, &'static str> {
    let idx = rd::<2>(q.avail + 2).map_err(|_| "avail ring unreachable")?;
    let idx = u16::from_le_bytes(idx);
    if idx == q.last_avail {
        return Ok(None);
    }
    if idx.wrapping_sub(q.last_avail) as u32 > q.num {
        return Err("avail index moved by more than the queue size");
    }
    let slot = (q.last_avail as u32 % q.num) as u64;
    let head = rd::<2>(q.avail + 4 + 2 * slot).map_err(|_| "avail ring unreachable")?;
    Ok(Some(u16::from_le_bytes(head)))
}

fn push_used(q: &mut Queue, id: u32, len: u32) -> Result<(), &'static str> {
    let used_idx = rd::<2>(q.used + 2).map_err(|_| "used ring unreachable")?;
    let used_idx = u16::from_le_bytes(used_idx);
    let slot = (used_idx as u32 % q.num) as u64;
    let mut elem = [0u8; 8];
    elem[..4].copy_from_slice(&id.to_le_bytes());
    elem[4..].copy_from_slice(&len.to_le_bytes());
    wr(q.used + 4 + 8 * slot, &elem).map_err(|_| "used ring unreachable")?;
    wr(q.used + 2, &used_idx.wrapping_add(1).to_le_bytes()).map_err(|_| "used ring unreachable")?;
    q.last_avail = q.last_avail.wrapping_add(1);
    Ok(())
}

fn process(n: &mut Net) {
    if n.status & S_DRIVER_OK == 0 || n.status & S_FEATURES_OK == 0 || n.status & S_NEEDS_RESET != 0
    {
        return;
    }
    for q in &n.q {
        if q.ready && (q.num == 0 || q.num > QUEUE_MAX || !q.num.is_power_of_two()) {
            return fail(n, "queue size not a power of two within QueueNumMax");
        }
    }
    if let Err(why) = transmit(n).and_then(|()| receive(n)) {
        fail(n, why);
    }
}

/// Serves every frame the guest queued for transmission (bounded: one pass).
fn transmit(n: &mut Net) -> Result<(), &'static str> {
    let mut q = n.q[1];
    if !q.ready {
        return Ok(());
    }
    let mut descs = [Desc {
        addr: 0,
        len: 0,
        flags: 0,
    }; QUEUE_MAX as usize];
    let mut r = Ok(());
    for _ in 0..q.num {
        let head = match next_avail(&q) {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(e) => {
                r = Err(e);
                break;
            }
        };
        let Ok(k) = chain(&q, head, &mut descs) else {
            r = Err("bad transmit chain");
            break;
        };
        // Header and frame, all device-readable, together at most a full frame.
        let mut buf = [0u8; HDR + FRAME_MAX];
        let mut len = 0usize;
        for d in &descs[..k] {
            if d.flags & DESC_F_WRITE != 0 || d.len as usize > buf.len() - len {
                r = Err("transmit chain writable or longer than a frame");
                break;
            }
            if rd_into(d.addr, &mut buf[len..len + d.len as usize]).is_err() {
                r = Err("transmit buffer unreachable");
                break;
            }
            len += d.len as usize;
        }
        if r.is_err() {
            break;
        }
        if len < HDR {
            r = Err("transmit chain shorter than the virtio-net header");
            break;
        }
        TX.fetch_add(1, Ordering::Relaxed);
        let mut reply = [0u8; FRAME_MAX];
        match respond(&buf[HDR..len], &mut reply) {
            Some(rl) if n.count < PENDING => {
                let slot = (n.first + n.count) % PENDING;
                n.pending[slot][..rl].copy_from_slice(&reply[..rl]);
                n.pending_len[slot] = rl;
                n.count += 1;
            }
            _ => {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Err(e) = push_used(&mut q, head as u32, 0) {
            r = Err(e);
            break;
        }
        n.isr |= 1;
    }
    n.q[1] = q;
    r
}

/// Delivers pending replies into the guest's receive buffers.
fn receive(n: &mut Net) -> Result<(), &'static str> {
    let mut q = n.q[0];
    if !q.ready {
        return Ok(());
    }
    let mut descs = [Desc {
        addr: 0,
        len: 0,
        flags: 0,
    }; QUEUE_MAX as usize];
    let hostile = crate::cfg().virtio_net.unwrap_or(Hostile::None);
    let mut r = Ok(());
    while n.count > 0 {
        let head = match next_avail(&q) {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(e) => {
                r = Err(e);
                break;
            }
        };
        let Ok(k) = chain(&q, head, &mut descs) else {
            r = Err("bad receive chain");
            break;
        };
        let cap: u64 = descs[..k].iter().map(|d| d.len as u64).sum();
        let flen = n.pending_len[n.first];
        // Without MRG_RXBUF every buffer must take a whole frame (and the header).
        if descs[..k].iter().any(|d| d.flags & DESC_F_WRITE == 0) || cap < (HDR + flen) as u64 {
            r = Err("receive buffer read-only or too small for the frame");
            break;
        }
        let mut pkt = [0u8; HDR + FRAME_MAX];
        pkt[10] = 1; // num_buffers
        pkt[HDR..HDR + flen].copy_from_slice(&n.pending[n.first][..flen]);
        let mut left = &pkt[..HDR + flen];
        for d in &descs[..k] {
            let m = (d.len as usize).min(left.len());
            if wr(d.addr, &left[..m]).is_err() {
                r = Err("receive buffer unreachable");
                break;
            }
            left = &left[m..];
        }
        if r.is_err() {
            break;
        }
        let (id, len) = match hostile {
            Hostile::None => (head as u32, (HDR + flen) as u32),
            Hostile::Len => (head as u32, cap as u32 + 64),
            Hostile::Id => (q.num + 5, (HDR + flen) as u32),
        };
        if let Err(e) = push_used(&mut q, id, len) {
            r = Err(e);
            break;
        }
        n.first = (n.first + 1) % PENDING;
        n.count -= 1;
        n.isr |= 1;
        RX.fetch_add(1, Ordering::Relaxed);
    }
    n.q[0] = q;
    r
}

/// The device's state and counts, for the log line printed at exit.
pub fn summary() -> (u64, u64, u64, u64, u64, &'static str) {
    let s = NET.lock().status;
    let st = if s & S_NEEDS_RESET != 0 {
        "needs-reset"
    } else if s & S_DRIVER_OK != 0 {
        "driver-ok"
    } else if s & (S_ACKNOWLEDGE | S_DRIVER) != 0 {
        "initialising"
    } else {
        "reset"
    };
    (
        TX.load(Ordering::Relaxed),
        RX.load(Ordering::Relaxed),
        DROPPED.load(Ordering::Relaxed),
        MMIO.load(Ordering::Relaxed),
        NOTIFIES.load(Ordering::Relaxed),
        st,
    )
}
