//! An asynchronous virtio-blk queue for Unikraft's `uk_blkdev` driver API
//! (`docs/realm-io.md`): requests are submitted without waiting and completed
//! by polling, each buffer through [`crate::virtio::PoolHal`] (bounced in a realm).
//!
//! The C glue (`uk-glue/blkdev.c`) owns Unikraft's structures (`uk_blkdev`,
//! `uk_blkreq`); this module knows only sectors, buffers and an opaque cookie per
//! request. The queue must not move while requests are in flight (the device may
//! hold the addresses of its request headers): keep it in a static.

use crate::virtio::{self, PoolHal};
use virtio_drivers::device::blk::{BlkReq, BlkResp, SECTOR_SIZE, VirtIOBlk};
use virtio_drivers::transport::Transport;

/// Requests in flight at most (`virtio-drivers`' block queue size).
pub const SLOTS: usize = 16;
/// Descriptors a request takes.
const DESCS_PER_REQ: usize = 3;
/// Largest request the queue takes, in sectors (64 KiB); less if the bounce pool
/// is smaller ([`BlkQueue::max_sectors`]).
pub const MAX_SECTORS: u64 = 128;

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

/// A started virtio-blk device and its requests in flight.
pub struct BlkQueue<T: Transport> {
    blk: VirtIOBlk<PoolHal, T>,
    /// Request header and status of each slot (the device reads and writes them,
    /// at their own address without bouncing).
    hdr: [(BlkReq, BlkResp); SLOTS],
    hdr_used: [bool; SLOTS],
    /// By token (the chain's head descriptor).
    inflight: [Option<InFlight>; SLOTS],
    count: usize,
    capacity: u64,
    readonly: bool,
    max_sectors: u64,
    broken: bool,
}

impl<T: Transport> BlkQueue<T> {
    /// Starts the device behind `transport` (rings from the bounce pool).
    ///
    /// # Errors
    ///
    /// [`BlkError::NoMemory`] when the pool cannot hold the rings, [`BlkError::Io`]
    /// when the device refuses to start.
    pub fn new(transport: T) -> Result<Self, BlkError> {
        let mut blk = VirtIOBlk::<PoolHal, _>::new(transport).map_err(|e| match e {
            virtio_drivers::Error::DmaError => BlkError::NoMemory,
            _ => BlkError::Io,
        })?;
        // We poll the used ring: no used-buffer notifications (NO_INTERRUPT;
        // EVENT_IDX, which would override it, is never negotiated).
        blk.disable_interrupts();
        let capacity = blk.capacity();
        let readonly = blk.readonly();
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
            blk,
            hdr: Default::default(),
            hdr_used: [false; SLOTS],
            inflight: [None; SLOTS],
            count: 0,
            capacity,
            readonly,
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
        if virtio::reserve(&[size_of::<BlkReq>(), len, size_of::<BlkResp>()]).is_err() {
            return Err(if self.count > 0 {
                BlkError::PoolBusy
            } else {
                BlkError::NoMemory
            });
        }
        let (req, resp) = &mut self.hdr[slot];
        // SAFETY: the caller vouches for `buf`; `req`/`resp` live in `self`, which
        // does not move (see the module note) and keeps them until `poll` completes
        // this token.
        let token = unsafe {
            if write {
                let data = core::slice::from_raw_parts(buf, len);
                self.blk.write_blocks_nb(sector as usize, req, data, resp)
            } else {
                let data = core::slice::from_raw_parts_mut(buf, len);
                self.blk.read_blocks_nb(sector as usize, req, data, resp)
            }
        };
        virtio::release_reserved();
        let token = match token {
            Ok(t) => t,
            Err(virtio_drivers::Error::QueueFull) => return Err(BlkError::QueueFull),
            Err(_) => return Err(BlkError::Io),
        };
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
        // Each request takes three descriptors (header, data, status: no
        // indirect descriptors without `alloc`), so at most 5 are in flight.
        Ok((SLOTS - DESCS_PER_REQ * self.count) / DESCS_PER_REQ)
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
        let Some(token) = self.blk.peek_used() else {
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
                self.blk.complete_write_blocks(token, req, data, resp)
            } else {
                let data = core::slice::from_raw_parts_mut(f.buf as *mut u8, f.len);
                self.blk.complete_read_blocks(token, req, data, resp)
            }
        };
        self.hdr_used[f.slot] = false;
        self.count -= 1;
        let result = match r {
            Ok(()) => 0,
            Err(virtio_drivers::Error::Unsupported) => BlkError::Unsupported.errno(),
            Err(virtio_drivers::Error::IoError) => BlkError::Io.errno(),
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
