//! An asynchronous virtio-blk queue for Unikraft's `uk_blkdev` driver API
//! (`docs/realm-io.md`): requests are submitted without waiting and completed
//! by polling, each buffer through [`crate::virtio::PoolHal`] (bounced in a realm).
//!
//! The C glue (`uk-glue/blkdev.c`) owns Unikraft's structures (`uk_blkdev`,
//! `uk_blkreq`); this module knows only sectors, buffers and an opaque cookie per
//! request. The queue must not move while requests are in flight (the device may
//! hold the addresses of its request headers): keep it in a static.
//!
//! The request layer is ours, on `virtio-drivers`' split virtqueue (`VirtQueue`),
//! because the crate's `VirtIOBlk` fixes its queue at 16 entries and real
//! kvmtool ignores the queue size a driver writes: it lays every ring out for
//! its own 256 entries (3.18, virtio/blk.c `set_size_vq`: "FIXME: dynamic"), so
//! the 17th request of a 16-entry queue is read past the driver's ring (a
//! request that never completes, or kvmtool itself crashing on EVENT_IDX's
//! fields). [`QUEUE`] is 256, what kvmtool, QEMU and Firecracker offer.

use crate::virtio::{self, PoolHal};
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::{DeviceStatus, Transport};

/// Entries of the request queue (a device offering fewer is refused).
pub const QUEUE: usize = 256;
/// Requests in flight at most.
pub const SLOTS: usize = 8;
/// Largest request the queue takes, in sectors (64 KiB); less if the bounce pool
/// is smaller ([`BlkQueue::max_sectors`]).
pub const MAX_SECTORS: u64 = 128;
/// Bytes per sector.
pub const SECTOR_SIZE: usize = 512;
/// Features the queue accepts: VERSION_1 and RO (the transport wrapper adds
/// ACCESS_PLATFORM where offered).
const FEATURES: u64 = virtio::F_VERSION_1 | F_RO;
const F_RO: u64 = 1 << 5;
const T_IN: u32 = 0;
const T_OUT: u32 = 1;
/// Configuration reads retried while the device's generation moves.
const CONFIG_RETRIES: usize = 8;

/// Why a request was refused or failed; [`BlkError::errno`] gives the value the
/// C side returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlkError {
    /// A bad request: no sectors, too many, beyond the disk, a write to a
    /// read-only disk, or a null buffer.
    Invalid,
    /// Every queue slot is in use: complete some requests first.
    QueueFull,
    /// The bounce pool has no room now, but requests in flight will free some.
    PoolBusy,
    /// The bounce pool cannot hold this request even with nothing in flight.
    NoMemory,
    /// The device misbehaved (a used id not in flight, a refused request) or
    /// reported an I/O error; after a misbehaving device the queue refuses
    /// everything.
    Io,
    /// The device reported the request unsupported.
    Unsupported,
}

impl BlkError {
    /// The negative errno Unikraft's drivers use for this.
    pub fn errno(self) -> i32 {
        match self {
            BlkError::Invalid => -22,     // EINVAL
            BlkError::QueueFull => -28,   // ENOSPC, as Unikraft's virtio-blk
            BlkError::PoolBusy => -11,    // EAGAIN
            BlkError::NoMemory => -12,    // ENOMEM
            BlkError::Io => -5,           // EIO
            BlkError::Unsupported => -95, // ENOTSUP
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    /// Index into `hdr`.
    slot: usize,
    buf: usize,
    len: usize,
    write: bool,
    cookie: usize,
}

/// A request header (type, reserved, sector; little-endian) and its status byte.
type Header = ([u8; 16], [u8; 1]);

/// A started virtio-blk device and its requests in flight.
pub struct BlkQueue<T: Transport> {
    transport: T,
    queue: VirtQueue<PoolHal, QUEUE>,
    /// Request header and status of each slot (the device reads and writes them,
    /// through the Hal like any buffer).
    hdr: [Header; SLOTS],
    hdr_used: [bool; SLOTS],
    /// By token (the chain's head descriptor).
    inflight: [Option<InFlight>; QUEUE],
    count: usize,
    capacity: u64,
    readonly: bool,
    max_sectors: u64,
    broken: bool,
}

/// The capacity in sectors from the configuration space, read again while the
/// device's configuration generation moves (a bounded number of times: a device
/// that never settles is an error, not a hang).
fn read_capacity<T: Transport>(t: &T) -> Result<u64, BlkError> {
    for _ in 0..CONFIG_RETRIES {
        let g = t.read_config_generation();
        let lo = t.read_config_space::<u32>(0).map_err(|_| BlkError::Io)?;
        let hi = t.read_config_space::<u32>(4).map_err(|_| BlkError::Io)?;
        if t.read_config_generation() == g {
            return Ok(u64::from(lo) | u64::from(hi) << 32);
        }
    }
    Err(BlkError::Io)
}

impl<T: Transport> BlkQueue<T> {
    /// Starts the device behind `transport` (rings from the bounce pool).
    ///
    /// # Errors
    ///
    /// [`BlkError::NoMemory`] when the pool cannot hold the rings, [`BlkError::Io`]
    /// when the device refuses to start or offers a queue under [`QUEUE`].
    pub fn new(mut transport: T) -> Result<Self, BlkError> {
        // As the crate's `begin_init`, with our own feature set.
        transport.set_status(DeviceStatus::empty());
        transport.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER);
        let features = transport.read_device_features() & FEATURES;
        transport.write_driver_features(features);
        transport.set_status(
            DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER | DeviceStatus::FEATURES_OK,
        );
        transport.set_guest_page_size(virtio::PAGE as u32);
        let capacity = read_capacity(&transport)?;
        let mut queue = VirtQueue::<PoolHal, QUEUE>::new(&mut transport, 0, false, false).map_err(
            |e| match e {
                virtio_drivers::Error::DmaError => BlkError::NoMemory,
                _ => BlkError::Io,
            },
        )?;
        // We poll the used ring: no used-buffer notifications (NO_INTERRUPT;
        // EVENT_IDX, which would override it, is never negotiated).
        queue.set_dev_notify(false);
        transport.finish_init();
        // What the pool can bounce in one request besides its header and status
        // (a normal VM bounces nothing: the pool holds only the rings).
        let (used, pages, _) = virtio::pool_stats();
        let room = pages.saturating_sub(used + 2) as u64 * (virtio::PAGE / SECTOR_SIZE) as u64;
        let max_sectors = if virtio::bouncing() {
            MAX_SECTORS.min(room)
        } else {
            MAX_SECTORS
        };
        if max_sectors == 0 {
            return Err(BlkError::NoMemory);
        }
        Ok(BlkQueue {
            transport,
            queue,
            hdr: [([0; 16], [0xff]); SLOTS],
            hdr_used: [false; SLOTS],
            inflight: [None; QUEUE],
            count: 0,
            capacity,
            readonly: features & F_RO != 0,
            max_sectors,
            broken: false,
        })
    }

    /// Disk size in 512-byte sectors.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Whether the device is read-only.
    pub fn readonly(&self) -> bool {
        self.readonly
    }

    /// Largest request in sectors.
    pub fn max_sectors(&self) -> u64 {
        self.max_sectors
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.count
    }

    /// Queues a read (or write) of `sectors` sectors from `sector` into (from)
    /// `buf` and notifies the device; `cookie` comes back from [`Self::poll`].
    /// Returns how many more requests the queue could take now.
    ///
    /// # Safety
    ///
    /// `buf` must be valid for `sectors * 512` bytes and not be accessed by anyone
    /// else until [`Self::poll`] returns its cookie; outside a realm it must be
    /// identity-mapped (the device gets its address).
    ///
    /// # Errors
    ///
    /// See [`BlkError`]; nothing reached the device then.
    pub unsafe fn submit(
        &mut self,
        write: bool,
        sector: u64,
        sectors: u64,
        buf: *mut u8,
        cookie: usize,
    ) -> Result<usize, BlkError> {
        if self.broken {
            return Err(BlkError::Io);
        }
        if buf.is_null()
            || sectors == 0
            || sectors > self.max_sectors
            || sector
                .checked_add(sectors)
                .is_none_or(|e| e > self.capacity)
            || (write && self.readonly)
        {
            return Err(BlkError::Invalid);
        }
        let Some(slot) = self.hdr_used.iter().position(|u| !u) else {
            return Err(BlkError::QueueFull);
        };
        let len = sectors as usize * SECTOR_SIZE;
        if virtio::reserve(&[16, len, 1]).is_err() {
            return Err(if self.count > 0 {
                BlkError::PoolBusy
            } else {
                BlkError::NoMemory
            });
        }
        let (req, resp) = &mut self.hdr[slot];
        req[..4].copy_from_slice(&(if write { T_OUT } else { T_IN }).to_le_bytes());
        req[4..8].fill(0);
        req[8..].copy_from_slice(&sector.to_le_bytes());
        resp[0] = 0xff;
        // SAFETY: the caller vouches for `buf`; `req`/`resp` live in `self`, which
        // does not move (see the module note) and keeps them until `poll` completes
        // this token.
        let token = unsafe {
            if write {
                let data = core::slice::from_raw_parts(buf, len);
                self.queue.add(&[req, data], &mut [resp])
            } else {
                let data = core::slice::from_raw_parts_mut(buf, len);
                self.queue.add(&[req], &mut [data, resp])
            }
        };
        virtio::release_reserved();
        let token = match token {
            Ok(t) => t,
            Err(virtio_drivers::Error::QueueFull) => return Err(BlkError::QueueFull),
            Err(_) => return Err(BlkError::Io),
        };
        if self.queue.should_notify() {
            self.transport.notify(0);
        }
        let Some(entry) = self.inflight.get_mut(usize::from(token)) else {
            self.broken = true;
            return Err(BlkError::Io);
        };
        *entry = Some(InFlight {
            slot,
            buf: buf as usize,
            len,
            write,
            cookie,
        });
        self.hdr_used[slot] = true;
        self.count += 1;
        Ok(SLOTS - self.count)
    }

    /// Completes the next request the device has finished: `Ok(Some((cookie,
    /// result)))` with `result` 0 or a negative errno, `Ok(None)` when none is
    /// ready.
    ///
    /// # Errors
    ///
    /// [`BlkError::Io`] when the device returned an id that is not in flight (the
    /// queue then refuses everything: one clear error, no copy anywhere).
    pub fn poll(&mut self) -> Result<Option<(usize, i32)>, BlkError> {
        if self.broken {
            return Err(BlkError::Io);
        }
        let Some(token) = self.queue.peek_used() else {
            return Ok(None);
        };
        let Some(f) = self
            .inflight
            .get_mut(usize::from(token))
            .and_then(Option::take)
        else {
            self.broken = true;
            return Err(BlkError::Io);
        };
        let (req, resp) = &mut self.hdr[f.slot];
        // SAFETY: the same header, status and buffer as `submit` queued under this
        // token (the caller keeps the buffer until its cookie comes back).
        let r = unsafe {
            if f.write {
                let data = core::slice::from_raw_parts(f.buf as *const u8, f.len);
                self.queue.pop_used(token, &[req, data], &mut [resp])
            } else {
                let data = core::slice::from_raw_parts_mut(f.buf as *mut u8, f.len);
                self.queue.pop_used(token, &[req], &mut [data, resp])
            }
        };
        self.hdr_used[f.slot] = false;
        self.count -= 1;
        let result = match r {
            // The status byte: 0 OK, 1 IOERR, 2 UNSUPP (anything else: IOERR).
            Ok(_) => match resp[0] {
                0 => 0,
                2 => BlkError::Unsupported.errno(),
                _ => BlkError::Io.errno(),
            },
            Err(_) => {
                // The used ring disagreed with the chain we queued (WrongToken and
                // the like): the device cannot be trusted any more.
                self.broken = true;
                BlkError::Io.errno()
            }
        };
        Ok(Some((f.cookie, result)))
    }
}
