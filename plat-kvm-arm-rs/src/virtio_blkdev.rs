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
/// Features the queue accepts: VERSION_1, RO and FLUSH (the transport wrapper
/// adds ACCESS_PLATFORM where offered). FLUSH as Unikraft's own driver: the
/// device may then cache writes (QEMU turns its write cache on), and
/// [`BlkQueue::submit_flush`] makes them durable; a device without it writes
/// through.
const FEATURES: u64 = virtio::F_VERSION_1 | F_RO | F_FLUSH;
const F_RO: u64 = 1 << 5;
const F_FLUSH: u64 = 1 << 9;
const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
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
    /// The device reported the request unsupported, or a flush was asked of a
    /// device that did not offer FLUSH (it writes through: nothing to flush, but
    /// `-ENOTSUP` as Unikraft's own driver).
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

/// What a request moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
    Flush,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    /// The chain's head descriptor, which the device returns.
    token: u16,
    buf: usize,
    len: usize,
    kind: Kind,
    cookie: usize,
}

const NO_SLOT: u8 = u8::MAX;
const _: () = assert!(SLOTS < NO_SLOT as usize);

/// A request header (type, reserved, sector; little-endian) and its status byte.
type Header = ([u8; 16], [u8; 1]);

/// A started virtio-blk device and its requests in flight.
pub struct BlkQueue<T: Transport> {
    transport: T,
    queue: VirtQueue<PoolHal, QUEUE>,
    /// Request header and status of each slot (the device reads and writes them,
    /// through the Hal like any buffer).
    hdr: [Header; SLOTS],
    /// The request of each slot.
    inflight: [Option<InFlight>; SLOTS],
    /// The slot of each token in flight ([`NO_SLOT`] otherwise): a table of
    /// bytes, so that the queue stays small enough to build on a boot stack.
    slot_of: [u8; QUEUE],
    count: usize,
    capacity: u64,
    readonly: bool,
    flush: bool,
    max_sectors: u64,
    broken: bool,
    /// Requests were queued since the device was last notified.
    unnotified: bool,
    notifications: u64,
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
            inflight: [None; SLOTS],
            slot_of: [NO_SLOT; QUEUE],
            count: 0,
            capacity,
            readonly: features & F_RO != 0,
            flush: features & F_FLUSH != 0,
            max_sectors,
            broken: false,
            unnotified: false,
            notifications: 0,
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

    /// Whether the device caches writes until a flush (FLUSH negotiated).
    pub fn has_flush(&self) -> bool {
        self.flush
    }

    /// Largest request in sectors.
    pub fn max_sectors(&self) -> u64 {
        self.max_sectors
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.count
    }

    /// Notifications sent to the device so far.
    pub fn notifications(&self) -> u64 {
        self.notifications
    }

    /// Notifies the device of the requests queued since the last notification,
    /// unless it asked not to be (`VRING_USED_F_NO_NOTIFY`: it is still working
    /// through the ring and will see them).
    fn kick(&mut self) {
        if core::mem::take(&mut self.unnotified) && self.queue.should_notify() {
            self.transport.notify(0);
            self.notifications += 1;
        }
    }

    /// Queues a read (or write) of `sectors` sectors from `sector` into (from)
    /// `buf`; `cookie` comes back from [`Self::poll`]. Returns how many more
    /// requests the queue could take now.
    ///
    /// The device is notified at the next [`Self::poll`], once for all the
    /// requests queued since the last one (as blk-mq's `commit_rqs`): a burst of
    /// submissions costs one doorbell, a VM exit (a REC exit in a realm). On
    /// QEMU, ringing it with the first request of each burst instead made a
    /// polled app's block I/O about 20% slower (`docs/realm-io.md`, seventh
    /// slice). The queue is polled, so the caller polls for completions anyway.
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
        let kind = if write { Kind::Write } else { Kind::Read };
        let len = sectors as usize * SECTOR_SIZE;
        // SAFETY: forwarded from our caller.
        unsafe { self.queue_request(kind, sector, buf, len, cookie) }
    }

    /// Queues a flush: the writes the device completed before it are durable
    /// when its cookie comes back from [`Self::poll`] with 0. Returns as
    /// [`Self::submit`].
    ///
    /// # Errors
    ///
    /// [`BlkError::Unsupported`] when FLUSH was not negotiated (the device
    /// writes through), else as [`Self::submit`].
    pub fn submit_flush(&mut self, cookie: usize) -> Result<usize, BlkError> {
        if !self.flush && !self.broken {
            return Err(BlkError::Unsupported);
        }
        // SAFETY: no data buffer (length 0).
        unsafe { self.queue_request(Kind::Flush, 0, core::ptr::null_mut(), 0, cookie) }
    }

    /// Header, then the data (unless a flush), then the status byte.
    ///
    /// # Safety
    ///
    /// As [`Self::submit`] for `buf..buf + len` (unused when `kind` is a flush).
    unsafe fn queue_request(
        &mut self,
        kind: Kind,
        sector: u64,
        buf: *mut u8,
        len: usize,
        cookie: usize,
    ) -> Result<usize, BlkError> {
        if self.broken {
            return Err(BlkError::Io);
        }
        let Some(slot) = self.inflight.iter().position(Option::is_none) else {
            return Err(BlkError::QueueFull);
        };
        let reserved = if kind == Kind::Flush {
            virtio::reserve(&[16, 1])
        } else {
            virtio::reserve(&[16, len, 1])
        };
        if reserved.is_err() {
            return Err(if self.count > 0 {
                BlkError::PoolBusy
            } else {
                BlkError::NoMemory
            });
        }
        let typ = match kind {
            Kind::Read => T_IN,
            Kind::Write => T_OUT,
            Kind::Flush => T_FLUSH,
        };
        let (req, resp) = &mut self.hdr[slot];
        req[..4].copy_from_slice(&typ.to_le_bytes());
        req[4..8].fill(0);
        req[8..].copy_from_slice(&sector.to_le_bytes());
        resp[0] = 0xff;
        // SAFETY: the caller vouches for `buf`; `req`/`resp` live in `self`, which
        // does not move (see the module note) and keeps them until `poll` completes
        // this token.
        let token = unsafe {
            match kind {
                Kind::Write => {
                    let data = core::slice::from_raw_parts(buf, len);
                    self.queue.add(&[req, data], &mut [resp])
                }
                Kind::Read => {
                    let data = core::slice::from_raw_parts_mut(buf, len);
                    self.queue.add(&[req], &mut [data, resp])
                }
                Kind::Flush => self.queue.add(&[req], &mut [resp]),
            }
        };
        virtio::release_reserved();
        let token = match token {
            Ok(t) => t,
            Err(virtio_drivers::Error::QueueFull) => return Err(BlkError::QueueFull),
            Err(_) => return Err(BlkError::Io),
        };
        self.unnotified = true;
        let Some(entry) = self.slot_of.get_mut(usize::from(token)) else {
            self.broken = true;
            return Err(BlkError::Io);
        };
        *entry = slot as u8;
        self.inflight[slot] = Some(InFlight {
            token,
            buf: buf as usize,
            len,
            kind,
            cookie,
        });
        self.count += 1;
        Ok(SLOTS - self.count)
    }

    /// Notifies the device of newly queued requests, then completes the next
    /// request the device has finished: `Ok(Some((cookie, result)))` with
    /// `result` 0 or a negative errno, `Ok(None)` when none is ready.
    ///
    /// # Errors
    ///
    /// [`BlkError::Io`] when the device returned an id that is not in flight (the
    /// queue then refuses everything: one clear error, no copy anywhere).
    pub fn poll(&mut self) -> Result<Option<(usize, i32)>, BlkError> {
        if self.broken {
            return Err(BlkError::Io);
        }
        self.kick();
        let Some(token) = self.queue.peek_used() else {
            return Ok(None);
        };
        let slot = match self.slot_of.get_mut(usize::from(token)) {
            Some(s) if *s != NO_SLOT => core::mem::replace(s, NO_SLOT),
            _ => {
                self.broken = true;
                return Err(BlkError::Io);
            }
        };
        let Some(f) = self
            .inflight
            .get_mut(usize::from(slot))
            .and_then(Option::take)
            .filter(|f| f.token == token)
        else {
            self.broken = true;
            return Err(BlkError::Io);
        };
        let (req, resp) = &mut self.hdr[usize::from(slot)];
        // SAFETY: the same header, status and buffer as `submit` queued under this
        // token (the caller keeps the buffer until its cookie comes back).
        let r = unsafe {
            match f.kind {
                Kind::Write => {
                    let data = core::slice::from_raw_parts(f.buf as *const u8, f.len);
                    self.queue.pop_used(token, &[req, data], &mut [resp])
                }
                Kind::Read => {
                    let data = core::slice::from_raw_parts_mut(f.buf as *mut u8, f.len);
                    self.queue.pop_used(token, &[req], &mut [data, resp])
                }
                Kind::Flush => self.queue.pop_used(token, &[req], &mut [resp]),
            }
        };
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

/// Bytes per request of [`blkq_selftest`] (8 sectors).
pub const SELFTEST_REQ: usize = 4096;
/// Bytes after each request buffer that [`blkq_selftest`] checks stay untouched
/// (a device reporting more than it was given must not write past a buffer).
const GUARD: usize = 64;
const GUARD_BYTE: u8 = 0xa5;
/// Bytes of scratch memory [`blkq_selftest`] needs: one buffer and guard per slot.
pub const SELFTEST_SCRATCH: usize = SLOTS * (SELFTEST_REQ + GUARD);
/// Write requests of [`blkq_selftest`]: more than [`QUEUE`], so that the rings'
/// indices wrap (a host that ignores the driver's queue size shows here).
pub const SELFTEST_WRITES: u64 = 300;

/// What [`blkq_selftest`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlkqReport {
    /// Requests completed (writes, the flush, reads).
    pub requests: u64,
    /// Flushes completed (0 when the device did not offer FLUSH).
    pub flushes: u64,
}

/// Why [`blkq_selftest`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlkqError {
    /// The disk is smaller than the test's range, or takes less than
    /// [`SELFTEST_REQ`] per request, or the scratch is too small.
    Range,
    /// The queue refused a request or the device failed one.
    Queue(BlkError),
    /// The device returned a request that is not in flight: the queue gave it up.
    BadUsed,
    /// A request did not complete within [`virtio::SELFTEST_POLLS`] polls.
    Timeout,
    /// The data read back differs from what was written, at this sector.
    Mismatch(u64),
    /// Bytes after a read buffer changed: the request wrote past its buffer.
    Overrun(u64),
}

impl BlkqError {
    /// The negative errno the harness hook returns for this.
    pub fn errno(self) -> i32 {
        match self {
            BlkqError::Range => -22, // EINVAL
            BlkqError::Queue(e) => e.errno(),
            BlkqError::BadUsed => -5,      // EIO
            BlkqError::Timeout => -110,    // ETIMEDOUT
            BlkqError::Mismatch(_) => -84, // EILSEQ
            BlkqError::Overrun(_) => -75,  // EOVERFLOW
        }
    }
}

fn pattern(sector: u64, i: usize) -> u8 {
    (sector.wrapping_mul(131) as u8) ^ (i as u8).wrapping_mul(7) ^ 0x3c
}

/// The queue behind Unikraft's `uk_blkdev` exercised without Unikraft (the
/// harness's `virtio-blkq-test`): [`SELFTEST_WRITES`] 4 KiB writes over
/// `regions` regions from sector `first`, up to [`SLOTS`] in flight, then a
/// flush (or the `Unsupported` refusal a device without FLUSH must give), then
/// each region read back and compared, with the bytes after every buffer
/// checked.
///
/// # Errors
///
/// See [`BlkqError`].
pub fn blkq_selftest<T: Transport>(
    q: &mut BlkQueue<T>,
    first: u64,
    regions: u64,
    scratch: &mut [u8],
) -> Result<BlkqReport, BlkqError> {
    let per = (SELFTEST_REQ / SECTOR_SIZE) as u64;
    if regions == 0
        || scratch.len() < SELFTEST_SCRATCH
        || q.max_sectors() < per
        || regions
            .checked_mul(per)
            .and_then(|n| n.checked_add(first))
            .is_none_or(|e| e > q.capacity())
    {
        return Err(BlkqError::Range);
    }
    let sector_of = |k: u64| first + k % regions * per;
    let mut report = BlkqReport {
        requests: 0,
        flushes: 0,
    };
    // Writes, then reads: request `k` uses a free slot's buffer; `fill` readies
    // it before submission, `check` inspects it after completion.
    for write in [true, false] {
        let total = if write { SELFTEST_WRITES } else { regions };
        let mut busy = [None::<u64>; SLOTS];
        let (mut next, mut done) = (0u64, 0u64);
        while done < total {
            for (s, b) in busy.iter_mut().enumerate() {
                if b.is_some() || next >= total {
                    continue;
                }
                let buf = &mut scratch[s * (SELFTEST_REQ + GUARD)..][..SELFTEST_REQ + GUARD];
                let sector = sector_of(next);
                for (i, x) in buf[..SELFTEST_REQ].iter_mut().enumerate() {
                    *x = if write {
                        pattern(sector + (i / SECTOR_SIZE) as u64, i % SECTOR_SIZE)
                    } else {
                        0
                    };
                }
                buf[SELFTEST_REQ..].fill(GUARD_BYTE);
                // SAFETY: `buf` is ours for the request's life: its slot is busy
                // until `poll` returns this cookie, and this function does not
                // return while requests are in flight except on a given-up queue.
                match unsafe { q.submit(write, sector, per, buf.as_mut_ptr(), s) } {
                    Ok(_) => {
                        *b = Some(next);
                        next += 1;
                    }
                    Err(BlkError::QueueFull | BlkError::PoolBusy) => break,
                    Err(e) => return Err(BlkqError::Queue(e)),
                }
            }
            // The first completion, then every other one already there, so that
            // the next round submits a burst (one notification for it).
            let mut next_done = Some(wait(q)?);
            while let Some((s, result)) = next_done {
                let Some(k) = busy.get_mut(s).and_then(Option::take) else {
                    return Err(BlkqError::BadUsed);
                };
                if result != 0 {
                    return Err(BlkqError::Queue(BlkError::Io));
                }
                done += 1;
                report.requests += 1;
                if !write {
                    let buf = &scratch[s * (SELFTEST_REQ + GUARD)..][..SELFTEST_REQ + GUARD];
                    check_read(buf, sector_of(k))?;
                }
                next_done = q.poll().map_err(|_| BlkqError::BadUsed)?;
            }
        }
        if write {
            match q.submit_flush(usize::MAX) {
                Ok(_) => {
                    let (c, result) = wait(q)?;
                    if c != usize::MAX || result != 0 {
                        return Err(BlkqError::Queue(BlkError::Io));
                    }
                    report.requests += 1;
                    report.flushes += 1;
                }
                Err(BlkError::Unsupported) if !q.has_flush() => {}
                Err(e) => return Err(BlkqError::Queue(e)),
            }
        }
    }
    Ok(report)
}

/// A read-back buffer (request and guard bytes) against the pattern written
/// from `sector`.
fn check_read(buf: &[u8], sector: u64) -> Result<(), BlkqError> {
    let (data, guard) = buf.split_at(SELFTEST_REQ);
    if let Some(i) = data
        .iter()
        .enumerate()
        .position(|(i, &x)| x != pattern(sector + (i / SECTOR_SIZE) as u64, i % SECTOR_SIZE))
    {
        return Err(BlkqError::Mismatch(sector + (i / SECTOR_SIZE) as u64));
    }
    if guard.iter().any(|&x| x != GUARD_BYTE) {
        return Err(BlkqError::Overrun(sector));
    }
    Ok(())
}

/// The next completion: (cookie, result).
fn wait<T: Transport>(q: &mut BlkQueue<T>) -> Result<(usize, i32), BlkqError> {
    for _ in 0..virtio::SELFTEST_POLLS {
        match q.poll() {
            Ok(Some(c)) => return Ok(c),
            Ok(None) => core::hint::spin_loop(),
            Err(_) => return Err(BlkqError::BadUsed),
        }
    }
    Err(BlkqError::Timeout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::{HAL_TESTS, PAGE, init_pool};
    use core::cell::RefCell;
    use std::boxed::Box;
    use std::rc::Rc;
    use std::vec;
    use std::vec::Vec;
    use virtio_drivers::transport::{DeviceType, InterruptStatus};
    use virtio_drivers::{PhysAddr, Result};
    use zerocopy::{FromBytes, Immutable, IntoBytes};

    /// A RAM-backed virtio-blk that serves its queue when notified (or when a
    /// test runs it, as a device that polls), on the host: the pool is
    /// identity-mapped, so ring and buffer addresses are host pointers.
    #[derive(Default)]
    struct Dev {
        disk: Vec<u8>,
        status: u32,
        rings: Option<(u64, u64, u64)>,
        last_avail: u16,
        notifies: u64,
        served: u64,
        /// Sets VRING_USED_F_NO_NOTIFY: the device says it polls.
        no_notify: bool,
    }

    const DESC_NEXT: u16 = 1;

    // The device's accesses: to the rings and buffers the queue under test
    // handed over, in memory this test owns (unaligned: request headers are
    // byte arrays, as DMA is to a device).
    fn rd<T: Copy>(a: u64) -> T {
        // SAFETY: see above.
        unsafe { core::ptr::read_unaligned(a as *const T) }
    }
    fn wr<T: Copy>(a: u64, v: T) {
        // SAFETY: see above.
        unsafe { core::ptr::write_unaligned(a as *mut T, v) }
    }

    impl Dev {
        fn serve(&mut self) {
            let Some((desc, avail, used)) = self.rings else {
                return;
            };
            wr::<u16>(used, u16::from(self.no_notify));
            let n = QUEUE as u16;
            while self.last_avail != rd::<u16>(avail + 2) {
                let head = rd::<u16>(avail + 4 + 2 * u64::from(self.last_avail % n));
                // The chain: header, data (unless a flush), status.
                let mut chain = Vec::new();
                let mut i = head;
                loop {
                    let d = desc + 16 * u64::from(i);
                    chain.push((rd::<u64>(d), rd::<u32>(d + 8) as usize));
                    if rd::<u16>(d + 12) & DESC_NEXT == 0 {
                        break;
                    }
                    i = rd::<u16>(d + 14);
                }
                let (hdr, _) = chain[0];
                let (status, _) = *chain.last().unwrap();
                let (typ, sector) = (rd::<u32>(hdr), rd::<u64>(hdr + 8));
                let mut written = 1;
                if chain.len() == 3 {
                    let (buf, len) = chain[1];
                    let at = sector as usize * SECTOR_SIZE;
                    // SAFETY: the request's data buffer, `len` bytes.
                    let data = unsafe { core::slice::from_raw_parts_mut(buf as *mut u8, len) };
                    match typ {
                        T_IN => {
                            data.copy_from_slice(&self.disk[at..at + len]);
                            written += len as u32;
                        }
                        T_OUT => self.disk[at..at + len].copy_from_slice(data),
                        _ => panic!("type {typ} with data"),
                    }
                }
                wr::<u8>(status, 0);
                let u = rd::<u16>(used + 2);
                let e = used + 4 + 8 * u64::from(u % n);
                wr::<u32>(e, u32::from(head));
                wr::<u32>(e + 4, written);
                wr::<u16>(used + 2, u.wrapping_add(1));
                self.last_avail = self.last_avail.wrapping_add(1);
                self.served += 1;
            }
        }
    }

    struct Fake(Rc<RefCell<Dev>>);

    impl Transport for Fake {
        fn device_type(&self) -> DeviceType {
            DeviceType::Block
        }
        fn read_device_features(&mut self) -> u64 {
            virtio::F_VERSION_1 | F_FLUSH
        }
        fn write_driver_features(&mut self, _: u64) {}
        fn max_queue_size(&mut self, _: u16) -> u32 {
            QUEUE as u32
        }
        fn notify(&mut self, _: u16) {
            let mut d = self.0.borrow_mut();
            d.notifies += 1;
            d.serve();
        }
        fn get_status(&self) -> DeviceStatus {
            DeviceStatus::from_bits_truncate(self.0.borrow().status)
        }
        fn set_status(&mut self, s: DeviceStatus) {
            self.0.borrow_mut().status = s.bits();
        }
        fn set_guest_page_size(&mut self, _: u32) {}
        fn requires_legacy_layout(&self) -> bool {
            false
        }
        fn queue_set(&mut self, _: u16, _: u32, desc: PhysAddr, avail: PhysAddr, used: PhysAddr) {
            self.0.borrow_mut().rings = Some((desc, avail, used));
        }
        fn queue_unset(&mut self, _: u16) {
            self.0.borrow_mut().rings = None;
        }
        fn queue_used(&mut self, _: u16) -> bool {
            self.0.borrow().rings.is_some()
        }
        fn ack_interrupt(&mut self) -> InterruptStatus {
            InterruptStatus::empty()
        }
        fn read_config_generation(&self) -> u32 {
            0
        }
        fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T> {
            let sectors = (self.0.borrow().disk.len() / SECTOR_SIZE) as u64;
            let cfg = sectors.to_le_bytes();
            T::read_from_bytes(&cfg[offset..offset + core::mem::size_of::<T>()])
                .map_err(|_| virtio_drivers::Error::ConfigSpaceMissing)
        }
        fn write_config_space<T: IntoBytes + Immutable>(&mut self, _: usize, _: T) -> Result<()> {
            Ok(())
        }
    }

    #[repr(C, align(4096))]
    struct Region([u8; 8 * PAGE]);

    type Started = (
        std::sync::MutexGuard<'static, ()>,
        Box<Region>,
        BlkQueue<Fake>,
        Rc<RefCell<Dev>>,
    );

    /// A started queue over a 64-sector disk, without bouncing, holding the
    /// global pool (bind in this order: the queue drops before its pool).
    fn start() -> Started {
        let g = HAL_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let region = Box::new(Region([0; 8 * PAGE]));
        init_pool(region.0.as_ptr() as u64, (8 * PAGE) as u64, false).unwrap();
        let dev = Rc::new(RefCell::new(Dev {
            disk: vec![0; 64 * SECTOR_SIZE],
            ..Dev::default()
        }));
        let q = BlkQueue::new(Fake(dev.clone())).unwrap();
        (g, region, q, dev)
    }

    /// Polls until a completion or `n` empty polls.
    fn next(q: &mut BlkQueue<Fake>, n: usize) -> Option<(usize, i32)> {
        (0..n).find_map(|_| q.poll().unwrap())
    }

    #[test]
    fn a_burst_costs_one_doorbell_at_the_next_poll() {
        let (_g, _region, mut q, dev) = start();
        let mut bufs = vec![[0u8; 1024]; 4];
        for (k, b) in bufs.iter_mut().enumerate() {
            b.fill(k as u8 + 1);
            // SAFETY: `b` lives, untouched, until its completion below.
            let more = unsafe { q.submit(true, 2 * k as u64, 2, b.as_mut_ptr(), k) }.unwrap();
            assert_eq!(more, SLOTS - k - 1);
        }
        assert_eq!(dev.borrow().notifies, 0, "submit only queues");
        assert_eq!(dev.borrow().served, 0);
        let mut done: Vec<usize> = (0..4).map(|_| next(&mut q, 1).unwrap().0).collect();
        done.sort();
        assert_eq!(done, [0, 1, 2, 3]);
        assert_eq!(dev.borrow().notifies, 1, "one doorbell for the burst");
        assert_eq!(q.notifications(), 1);
        assert_eq!(next(&mut q, 3), None);
        assert_eq!(dev.borrow().notifies, 1, "nothing queued, no doorbell");
        let disk = dev.borrow().disk.clone();
        for k in 0..4 {
            assert!(disk[k * 1024..][..1024].iter().all(|&x| x == k as u8 + 1));
        }

        // Read one back: one more doorbell, the data in the buffer.
        let mut back = [0u8; 1024];
        // SAFETY: as above.
        unsafe { q.submit(false, 4, 2, back.as_mut_ptr(), 9) }.unwrap();
        assert_eq!(next(&mut q, 1), Some((9, 0)));
        assert!(back.iter().all(|&x| x == 3));
        assert_eq!(q.notifications(), 2);
    }

    #[test]
    fn no_doorbell_when_the_device_says_it_polls() {
        let (_g, _region, mut q, dev) = start();
        dev.borrow_mut().no_notify = true;
        dev.borrow_mut().serve(); // publishes NO_NOTIFY
        let mut b = [7u8; 512];
        // SAFETY: `b` lives until its completion.
        unsafe { q.submit(true, 0, 1, b.as_mut_ptr(), 1) }.unwrap();
        assert_eq!(next(&mut q, 2), None, "not served yet");
        assert_eq!(dev.borrow().notifies, 0, "NO_NOTIFY honoured");
        dev.borrow_mut().serve(); // the device's own poll
        assert_eq!(next(&mut q, 1), Some((1, 0)));
        assert_eq!(q.notifications(), 0);
        assert!(dev.borrow().disk[..512].iter().all(|&x| x == 7));
    }

    #[test]
    fn a_used_id_not_in_flight_gives_the_device_up() {
        let (_g, _region, mut q, dev) = start();
        let mut b = [0u8; 512];
        // SAFETY: `b` lives until the queue is given up.
        unsafe { q.submit(false, 0, 1, b.as_mut_ptr(), 1) }.unwrap();
        assert_eq!(next(&mut q, 1), Some((1, 0)));
        // The device repeats a used entry for a token no longer in flight.
        let (_, _, used) = dev.borrow().rings.unwrap();
        let u = rd::<u16>(used + 2);
        wr::<u16>(used + 2, u.wrapping_add(1));
        assert_eq!(q.poll(), Err(BlkError::Io));
        // SAFETY: as above.
        let r = unsafe { q.submit(false, 0, 1, b.as_mut_ptr(), 2) };
        assert_eq!(r, Err(BlkError::Io), "given up: everything refused");
    }
}
