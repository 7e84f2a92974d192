//! The virtio-blk driver behind Unikraft's `uk_blkdev` (feature `virtio-blk`,
//! Kconfig `PLATRS_VIRTIO_BLK`): `uk-glue/blkdev.c` registers the device with
//! lib/ukblkdev and calls these three functions; the queue itself is
//! `plat_kvm_arm::virtio_blkdev` (see `docs/realm-io.md`).
//!
//! One device (the first virtio-mmio block device in the DTB), one queue,
//! polled: Unikraft's `finish_reqs` completes what the device has finished.

use crate::console;
use core::ffi::{c_int, c_void};
use plat_kvm_arm::virtio::{self, AccessPlatform};
use plat_kvm_arm::virtio_blkdev::{BlkQueue, SELFTEST_SCRATCH};
use spin::Mutex;
use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::SomeTransport;

type Queue = BlkQueue<AccessPlatform<SomeTransport<'static>>>;

/// The device, once probed. A static: the device holds the addresses of the
/// queue's request headers (see `virtio_blkdev`).
static DEV: Mutex<Option<Queue>> = Mutex::new(None);

/// `int platrs_vblk_probe(uint64_t dtb, uint64_t info[3])`: starts the first
/// virtio-mmio block device in the DTB at `dtb` (once; later calls report the
/// same device) and fills `info` with its capacity in sectors, the largest
/// request in sectors, and 1 if it is read-only. Returns 0, -ENODEV (none),
/// -EINVAL (bad DTB), -ENOMEM (the bounce pool cannot hold the rings), -EPERM
/// (the device refused the features), -EIO.
///
/// # Safety
///
/// `info` must point at three writable `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn platrs_vblk_probe(dtb: u64, info: *mut u64) -> c_int {
    if info.is_null() {
        return -22;
    }
    let mut dev = DEV.lock();
    if dev.is_none() {
        match probe(dtb) {
            Ok(q) => *dev = Some(q),
            Err(e) => return e,
        }
    }
    let Some(q) = dev.as_ref() else { return -5 };
    let v = [q.capacity(), q.max_sectors(), u64::from(q.readonly())];
    for (i, x) in v.iter().enumerate() {
        // SAFETY: the caller vouches for three writable u64 at `info`.
        unsafe { info.add(i).write(*x) };
    }
    0
}

fn probe(dtb: u64) -> Result<Queue, c_int> {
    crate::virtio::start_first_device(dtb, DeviceType::Block, "virtio-blk", BlkQueue::new, |e| {
        e.errno()
    })
}

/// `int platrs_vblk_submit(int op, uint64_t sector, uint64_t count, void *buf,
/// void *cookie)`: `op` 0 queues a read of `count` sectors from `sector` into
/// `buf`, 1 a write from `buf`, 2 a flush (`sector`, `count` and `buf`
/// ignored). The device is notified at the next [`platrs_vblk_poll`], once
/// for everything queued since the last (see `BlkQueue::submit`). Returns how
/// many more requests fit now (>= 0), or -EINVAL (bad request), -ENOSPC (queue
/// full), -EAGAIN (bounce pool full until requests in flight complete), -ENOMEM
/// (the pool cannot hold it), -ENOTSUP (a flush, the device writes through),
/// -EIO, -ENODEV (no device probed).
///
/// # Safety
///
/// `buf` must be valid for `count * 512` bytes and left alone until
/// [`platrs_vblk_poll`] returns `cookie`; outside a realm it must be
/// identity-mapped (Unikraft without paging).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn platrs_vblk_submit(
    op: c_int,
    sector: u64,
    count: u64,
    buf: *mut c_void,
    cookie: *mut c_void,
) -> c_int {
    let mut dev = DEV.lock();
    let Some(q) = dev.as_mut() else { return -19 };
    let r = match op {
        // SAFETY: forwarded from our caller.
        0 | 1 => unsafe { q.submit(op == 1, sector, count, buf.cast(), cookie as usize) },
        2 => q.submit_flush(cookie as usize),
        _ => return -22,
    };
    match r {
        Ok(more) => more as c_int,
        Err(e) => e.errno(),
    }
}

/// `int platrs_vblk_poll(void **cookie, int *result)`: notifies the device of
/// the requests queued since the last poll, then: 1 when a request
/// completed (its cookie and 0 or a negative errno stored), 0 when none is
/// ready, -EIO when the device returned an id not in flight (the device is then
/// given up), -ENODEV without a device.
///
/// # Safety
///
/// `cookie` and `result` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn platrs_vblk_poll(cookie: *mut *mut c_void, result: *mut c_int) -> c_int {
    if cookie.is_null() || result.is_null() {
        return -22;
    }
    let mut dev = DEV.lock();
    let Some(q) = dev.as_mut() else { return -19 };
    match q.poll() {
        Ok(None) => 0,
        Ok(Some((c, r))) => {
            // SAFETY: the caller vouches for both pointers.
            unsafe {
                cookie.write(c as *mut c_void);
                result.write(r);
            }
            1
        }
        Err(e) => {
            given_up();
            e.errno()
        }
    }
}

/// `int platrs_vblk_stats(uint64_t out[2])`: bytes copied through the bounce
/// pool so far (0 outside a realm) and pool pages in use. For benchmarks and
/// leak checks (app-blk declares it weak, so the same app links on Unikraft's own
/// driver). Returns 0, or -EINVAL.
///
/// # Safety
///
/// `out` must point at two writable `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn platrs_vblk_stats(out: *mut u64) -> c_int {
    if out.is_null() {
        return -22;
    }
    let (used, _, copied) = virtio::pool_stats();
    // SAFETY: the caller vouches for two writable u64 at `out`.
    unsafe {
        out.write(copied);
        out.add(1).write(used as u64);
    }
    0
}

/// Bytes of [`ukplat_virtio_blkq_selftest`]'s request buffers: a static, as the
/// device gets their addresses outside a realm (identity-mapped `.bss`).
static SCRATCH: Mutex<[u8; SELFTEST_SCRATCH]> = Mutex::new([0; SELFTEST_SCRATCH]);

/// `int ukplat_virtio_blkq_selftest(uint64_t dtb, uint64_t flags, uint64_t
/// out[6])`: the queue behind Unikraft's `uk_blkdev` (the one
/// [`platrs_vblk_probe`] starts, virtio-mmio or virtio-pci) exercised without a
/// Unikraft tree: 300 writes of 4 KiB over sectors 16-335 with up to 8 in
/// flight, a flush, each region read back and compared
/// (`plat_kvm_arm::virtio_blkdev::blkq_selftest`). On success `out` holds the
/// capacity in sectors, the requests completed, the flushes, the bytes bounced
/// through the pool (0 outside a realm), the pool pages in use afterwards
/// (the queue stays up) and the notifications the queue has sent the device.
/// Returns 0, the probe's errors, -EINVAL (disk too small), -EIO (the device failed a request, or returned one not in flight:
/// one line, the device given up), -ETIMEDOUT, -EILSEQ (data read back differs),
/// -EOVERFLOW (a read wrote past its buffer). `flags` bit 0: no bounce, as for
/// the block test. Harness test hook, not Unikraft API.
///
/// # Safety
///
/// `out` must point at six writable `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ukplat_virtio_blkq_selftest(dtb: u64, flags: u64, out: *mut u64) -> c_int {
    use plat_kvm_arm::virtio_blkdev::{BlkqError, blkq_selftest};
    if out.is_null() {
        return -22;
    }
    if let Err(e) =
        crate::virtio::ensure_pool(flags & crate::virtio::VIRTIO_SELFTEST_NO_BOUNCE != 0)
    {
        return e;
    }
    let mut info = [0u64; 3];
    // SAFETY: local, three writable u64.
    let rc = unsafe { platrs_vblk_probe(dtb, info.as_mut_ptr()) };
    if rc != 0 {
        return rc;
    }
    let copied0 = virtio::pool_stats().2;
    let mut dev = DEV.lock();
    let Some(q) = dev.as_mut() else { return -19 };
    let r = blkq_selftest(q, 16, 40, &mut *SCRATCH.lock());
    let (used, _, copied) = virtio::pool_stats();
    match r {
        Ok(rep) => {
            let v = [
                info[0],
                rep.requests,
                rep.flushes,
                copied - copied0,
                used as u64,
                q.notifications(),
            ];
            for (i, x) in v.iter().enumerate() {
                // SAFETY: the caller vouches for six writable u64 at `out`.
                unsafe { out.add(i).write(*x) };
            }
            0
        }
        Err(e) => {
            if e == BlkqError::BadUsed {
                given_up();
            }
            e.errno()
        }
    }
}

/// The one line for a device that returned a request not in flight (the queue
/// refuses everything after it).
fn given_up() {
    console::print(format_args!(
        "virtio-blk: the device returned a request that is not in flight; device given up\n"
    ));
}
