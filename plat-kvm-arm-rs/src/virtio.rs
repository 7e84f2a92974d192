//! Virtio devices through the `virtio-drivers` crate, with DMA confined to a
//! bounce pool (see `docs/realm-io.md`).
//!
//! - [`BouncePool`]: a page allocator over one region the device may see. In a
//!   realm the region is RIPAS EMPTY and used only at its unprotected alias, so the
//!   addresses it hands out are at once the CPU's (identity map of the alias) and
//!   the device's; outside a realm it is ordinary memory.
//! - [`PoolHal`]: `virtio_drivers::Hal` over the global pool ([`init_pool`]):
//!   rings come from the pool; `share` copies a buffer into a pool slot and
//!   `unshare` copies what the device wrote back (bounded by the buffer's own
//!   length, whatever the device claims). Without bouncing (a normal VM), `share`
//!   hands the device the buffer's own address.
//! - [`AccessPlatform`]: a transport wrapper that accepts VIRTIO_F_ACCESS_PLATFORM
//!   when the device offers it (`VirtIOBlk` 0.13 does not list it) and notices a
//!   device that refuses FEATURES_OK.
//! - [`find_mmio`]: `virtio,mmio` windows in the device tree.

use crate::fdt::{self, Cells, Dt, Token};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};
use spin::Mutex;
use virtio_drivers::device::blk::{BlkReq, BlkResp, SECTOR_SIZE, VirtIOBlk};
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

/// Page size of the pool (and of `virtio-drivers`' DMA allocations).
pub const PAGE: usize = 4096;
/// Most pages a pool manages (the bitmap's size).
pub const MAX_POOL_PAGES: usize = 256;
/// VIRTIO_F_ACCESS_PLATFORM (feature bit 33).
pub const F_ACCESS_PLATFORM: u64 = 1 << 33;
/// VIRTIO_F_EVENT_IDX (feature bit 29).
pub const F_EVENT_IDX: u64 = 1 << 29;
/// VIRTIO_F_VERSION_1 (feature bit 32).
pub const F_VERSION_1: u64 = 1 << 32;

/// Why the pool refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolError {
    /// The region is not page-aligned, empty, too large, or wraps.
    BadRegion,
    /// No run of free pages long enough.
    Exhausted,
    /// A free of pages that are not an allocation of this pool.
    NotAllocated,
}

/// A first-fit page allocator over `[base, base + pages * PAGE)`.
///
/// It only does the bookkeeping: addresses in, addresses out. Whoever owns the
/// memory accesses it.
#[derive(Debug, Clone)]
pub struct BouncePool {
    base: u64,
    pages: usize,
    used: [u64; MAX_POOL_PAGES / 64],
}

impl BouncePool {
    /// A pool with no memory (every allocation fails).
    pub const EMPTY: BouncePool = BouncePool {
        base: 0,
        pages: 0,
        used: [0; MAX_POOL_PAGES / 64],
    };

    /// A pool over `len` bytes at `base` (both page-aligned, at most
    /// [`MAX_POOL_PAGES`] pages).
    ///
    /// # Errors
    ///
    /// [`PoolError::BadRegion`] otherwise.
    pub fn new(base: u64, len: u64) -> Result<Self, PoolError> {
        let pages = len / PAGE as u64;
        if !base.is_multiple_of(PAGE as u64)
            || !len.is_multiple_of(PAGE as u64)
            || pages == 0
            || pages > MAX_POOL_PAGES as u64
            || base.checked_add(len).is_none()
        {
            return Err(PoolError::BadRegion);
        }
        Ok(BouncePool {
            base,
            pages: pages as usize,
            used: [0; MAX_POOL_PAGES / 64],
        })
    }

    fn is_used(&self, p: usize) -> bool {
        self.used[p / 64] & (1 << (p % 64)) != 0
    }

    fn mark(&mut self, p: usize, on: bool) {
        if on {
            self.used[p / 64] |= 1 << (p % 64);
        } else {
            self.used[p / 64] &= !(1 << (p % 64));
        }
    }

    /// Allocates `n` contiguous pages; returns their address.
    ///
    /// # Errors
    ///
    /// [`PoolError::Exhausted`] (also for `n == 0`).
    pub fn alloc(&mut self, n: usize) -> Result<u64, PoolError> {
        if n == 0 || n > self.pages {
            return Err(PoolError::Exhausted);
        }
        let mut start = 0;
        while start + n <= self.pages {
            match (start..start + n).find(|&p| self.is_used(p)) {
                Some(busy) => start = busy + 1,
                None => {
                    for p in start..start + n {
                        self.mark(p, true);
                    }
                    return Ok(self.base + (start * PAGE) as u64);
                }
            }
        }
        Err(PoolError::Exhausted)
    }

    /// Frees `n` pages at `addr`, which must all be allocated.
    ///
    /// # Errors
    ///
    /// [`PoolError::NotAllocated`] for a range outside the pool, unaligned, or with
    /// a free page (nothing is freed then).
    pub fn free(&mut self, addr: u64, n: usize) -> Result<(), PoolError> {
        let first = self.page_of(addr, n).ok_or(PoolError::NotAllocated)?;
        if (first..first + n).any(|p| !self.is_used(p)) {
            return Err(PoolError::NotAllocated);
        }
        for p in first..first + n {
            self.mark(p, false);
        }
        Ok(())
    }

    fn page_of(&self, addr: u64, n: usize) -> Option<usize> {
        let off = addr.checked_sub(self.base)?;
        if off % PAGE as u64 != 0 || n == 0 {
            return None;
        }
        let first = usize::try_from(off / PAGE as u64).ok()?;
        (first.checked_add(n)? <= self.pages).then_some(first)
    }

    /// Whether `[addr, addr + len)` lies inside the pool.
    pub fn contains(&self, addr: u64, len: usize) -> bool {
        let end = self.base + (self.pages * PAGE) as u64;
        addr >= self.base && addr.checked_add(len as u64).is_some_and(|e| e <= end)
    }

    /// Pages in use.
    pub fn used_pages(&self) -> usize {
        self.used.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Pages managed.
    pub fn pages(&self) -> usize {
        self.pages
    }
}

/// Pages needed for `len` bytes (at least one).
pub fn pages_for(len: usize) -> usize {
    len.div_ceil(PAGE).max(1)
}

/// Most bounce slots one [`reserve`] call sets aside (a block request needs 3:
/// header, data, status).
pub const MAX_RESERVED: usize = 4;

struct Global {
    pool: BouncePool,
    /// Bytes copied into and out of the pool by `share`/`unshare`.
    copied: u64,
    /// Slots [`reserve`] allocated for the next `share` calls: (address, pages).
    reserved: [(u64, usize); MAX_RESERVED],
}

/// Copy buffers through the pool (a realm) or hand out their own address. Read
/// without the lock, so that a normal VM's `share`, `unshare`, `reserve` and
/// `release_reserved` take none (it never changes after [`init_pool`], which
/// writes it under the lock).
static BOUNCE: AtomicBool = AtomicBool::new(false);

static POOL: Mutex<Global> = Mutex::new(Global {
    pool: BouncePool::EMPTY,
    copied: 0,
    reserved: [(0, 0); MAX_RESERVED],
});

/// Installs the pool [`PoolHal`] allocates from: `len` bytes at `addr`, which must
/// be mapped read-write at that address (in a realm: the unprotected alias of
/// granules already RIPAS EMPTY) and be the address the device uses too. With
/// `bounce`, `share` copies buffers through the pool; without it, buffers are
/// handed to the device where they are (identity-mapped memory only).
///
/// # Errors
///
/// As [`BouncePool::new`].
pub fn init_pool(addr: u64, len: u64, bounce: bool) -> Result<(), PoolError> {
    let pool = BouncePool::new(addr, len)?;
    let mut g = POOL.lock();
    *g = Global {
        pool,
        copied: 0,
        reserved: [(0, 0); MAX_RESERVED],
    };
    BOUNCE.store(bounce, Ordering::Release);
    Ok(())
}

/// Sets aside one bounce slot per length in `lens` for the `share` calls of the
/// next request, so that a pool that runs out is an error the driver returns to
/// its caller before anything reaches the device (`Hal::share` cannot fail).
/// Without bouncing it reserves nothing. Release what `share` did not take with
/// [`release_reserved`].
///
/// # Errors
///
/// [`PoolError::Exhausted`] (nothing stays reserved then), also for more than
/// [`MAX_RESERVED`] lengths or slots still reserved from an earlier call.
pub fn reserve(lens: &[usize]) -> Result<(), PoolError> {
    if !bouncing() {
        return Ok(());
    }
    let mut g = POOL.lock();
    if lens.len() > MAX_RESERVED || g.reserved.iter().any(|r| r.1 != 0) {
        return Err(PoolError::Exhausted);
    }
    for (i, &len) in lens.iter().enumerate() {
        let n = pages_for(len);
        match g.pool.alloc(n) {
            Ok(a) => g.reserved[i] = (a, n),
            Err(e) => {
                drop(g);
                release_reserved();
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Frees the slots [`reserve`] set aside that no `share` took.
pub fn release_reserved() {
    if !bouncing() {
        return; // nothing is ever reserved then
    }
    let mut g = POOL.lock();
    for i in 0..MAX_RESERVED {
        let (a, n) = core::mem::take(&mut g.reserved[i]);
        if n != 0 {
            // Ours, allocated by `reserve`: cannot be refused.
            let _ = g.pool.free(a, n);
        }
    }
}

/// Whether `share` copies buffers through the pool (a realm).
pub fn bouncing() -> bool {
    BOUNCE.load(Ordering::Acquire)
}

/// Pool pages free now (not in use, not reserved).
pub fn free_pages() -> usize {
    let g = POOL.lock();
    g.pool.pages() - g.pool.used_pages()
}

/// Pool statistics: pages in use, pages managed, bytes bounced so far.
pub fn pool_stats() -> (usize, usize, u64) {
    let g = POOL.lock();
    (g.pool.used_pages(), g.pool.pages(), g.copied)
}

/// `virtio_drivers::Hal` over the global pool ([`init_pool`]).
pub struct PoolHal;

/// Copies `len` bytes from `src` to `dst`, eight at a time when both are 8-byte
/// aligned. Not `copy_nonoverlapping`, which calls the C library's `memcpy`: on
/// Unikraft 0.17 (nolibc) that copies one byte at a time, which made a realm's
/// bounced block I/O 8x slower than a normal VM's on the model. The volatile
/// accesses keep LLVM from turning the loop back into that call.
///
/// # Safety
///
/// `src` readable and `dst` writable for `len` bytes, not overlapping.
unsafe fn copy_bytes(dst: *mut u8, src: *const u8, len: usize) {
    let mut i = 0;
    if (dst as usize | src as usize) & 7 == 0 {
        while i + 8 <= len {
            // SAFETY: in bounds (i + 8 <= len) and 8-byte aligned (checked above).
            unsafe {
                let w = core::ptr::read_volatile(src.add(i) as *const u64);
                core::ptr::write_volatile(dst.add(i) as *mut u64, w);
            }
            i += 8;
        }
    }
    while i < len {
        // SAFETY: in bounds.
        unsafe { core::ptr::write_volatile(dst.add(i), core::ptr::read_volatile(src.add(i))) };
        i += 1;
    }
}

/// Zeroes `len` bytes at `dst`, eight at a time when aligned (as [`copy_bytes`],
/// not the C library's byte-wise `memset`).
///
/// # Safety
///
/// `dst` writable for `len` bytes.
unsafe fn zero_bytes(dst: *mut u8, len: usize) {
    let mut i = 0;
    if dst as usize & 7 == 0 {
        while i + 8 <= len {
            // SAFETY: in bounds and aligned.
            unsafe { core::ptr::write_volatile(dst.add(i) as *mut u64, 0) };
            i += 8;
        }
    }
    while i < len {
        // SAFETY: in bounds.
        unsafe { core::ptr::write_volatile(dst.add(i), 0) };
        i += 1;
    }
}

// SAFETY: `dma_alloc` returns zeroed, page-aligned pool memory that no one else
// uses until `dma_dealloc` (the bitmap hands each page out once); `share` returns
// an address the device may use for the whole buffer (a pool slot of enough pages,
// or the identity-mapped buffer itself) and `unshare` copies back at most the
// buffer's length.
unsafe impl Hal for PoolHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        // A physical address of 0 is `virtio-drivers`' failure value: `Dma::new`
        // returns `Error::DmaError` and the device is not set up.
        let Ok(a) = POOL.lock().pool.alloc(pages) else {
            return (0, NonNull::dangling());
        };
        let Some(p) = NonNull::new(a as *mut u8) else {
            return (0, NonNull::dangling());
        };
        // SAFETY: `a` is `pages` fresh pool pages, mapped read-write (init_pool's
        // contract) and owned by this allocation.
        unsafe { zero_bytes(a as *mut u8, pages * PAGE) };
        (a, p)
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        let mut g = POOL.lock();
        if !g.pool.contains(paddr, pages * PAGE) {
            return -1;
        }
        // Freed pages are left clear, as `unshare` leaves its slots.
        // SAFETY: `pages` pool pages of this allocation (checked inside the
        // pool; `free` below refuses anything that is not an allocation).
        unsafe { zero_bytes(paddr as *mut u8, pages * PAGE) };
        match g.pool.free(paddr, pages) {
            Ok(()) => 0,
            Err(_) => -1,
        }
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        // Only virtio-pci asks (a BAR region, by bus address). It must lie in a
        // window of the host bridge, which the boot map maps as device memory (at
        // the alias in a realm): a host that moved a BAR elsewhere (protected
        // memory, say) stops the platform here instead.
        match crate::virtio_pci::bus_to_cpu(paddr, size as u64)
            .and_then(|a| NonNull::new(a as *mut u8))
        {
            Some(p) => p,
            None => panic!(
                "virtio-pci: BAR region {paddr:#x}+{size:#x} outside the host bridge's windows"
            ),
        }
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        let len = buffer.len();
        if !bouncing() {
            return buffer.cast::<u8>().as_ptr() as u64;
        }
        let mut g = POOL.lock();
        let n = pages_for(len);
        // A slot `reserve` set aside for this request, else a fresh one. Drivers
        // reserve first (a full pool is then their caller's error); a share that
        // finds neither is a driver bug, and handing the device any other address
        // would expose or corrupt memory, so it stops the guest.
        let a = match g.reserved.iter().position(|r| r.1 == n) {
            Some(i) => core::mem::take(&mut g.reserved[i]).0,
            None => match g.pool.alloc(n) {
                Ok(a) => a,
                Err(e) => panic!("virtio: share of {len} bytes without a reserved slot: {e:?}"),
            },
        };
        let dst = a as *mut u8;
        // A device-to-driver slot is not cleared first: whatever it holds is
        // shared memory the host can write at any time, and the device writes
        // the data anyway (free slots were cleared by `unshare` and
        // `dma_dealloc`, which is hygiene, not a guarantee). That saves a
        // realm's read a pass over its buffer.
        if direction != BufferDirection::DeviceToDriver {
            // SAFETY: the caller vouches for `buffer` (valid, not accessed
            // concurrently); `dst` has `n * PAGE >= len` bytes; the pool never
            // overlaps a driver buffer.
            unsafe { copy_bytes(dst, buffer.cast::<u8>().as_ptr(), len) };
            g.copied += len as u64;
        }
        a
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        let len = buffer.len();
        if !bouncing() {
            return;
        }
        let mut g = POOL.lock();
        let n = pages_for(len);
        if !g.pool.contains(paddr, len) {
            panic!("virtio: unshare of {paddr:#x} outside the bounce pool");
        }
        if direction != BufferDirection::DriverToDevice {
            // Never more than the buffer's own length, whatever the device wrote.
            // SAFETY: `paddr..+len` is inside the pool (checked); `buffer` is the
            // caller's, valid for `len` bytes.
            unsafe { copy_bytes(buffer.cast::<u8>().as_ptr(), paddr as *const u8, len) };
            g.copied += len as u64;
        }
        // The slot keeps no data of this request for the next one.
        // SAFETY: as above, pool memory of this slot.
        unsafe { zero_bytes(paddr as *mut u8, n * PAGE) };
        if g.pool.free(paddr, n).is_err() {
            panic!("virtio: unshare of {paddr:#x} not a bounce slot");
        }
    }
}

/// Set when a device cleared FEATURES_OK (it refused the features the driver
/// accepted). `virtio-drivers` does not read the status back.
static FEATURES_REFUSED: AtomicBool = AtomicBool::new(false);

/// Whether a device refused FEATURES_OK since the last call (and clears it).
pub fn take_features_refused() -> bool {
    FEATURES_REFUSED.swap(false, Ordering::Relaxed)
}

/// A transport that also accepts VIRTIO_F_ACCESS_PLATFORM when the device offers
/// it: the device then translates DMA addresses through the platform, here the
/// realm's unprotected alias the pool hands out. Everything else is `T`'s.
#[derive(Debug)]
pub struct AccessPlatform<T: Transport> {
    inner: T,
    offered: u64,
    accept: bool,
}

impl<T: Transport> AccessPlatform<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        AccessPlatform {
            inner,
            offered: 0,
            accept: true,
        }
    }

    /// Wraps `inner` but leaves ACCESS_PLATFORM out, as a driver unaware of it
    /// would (negative tests: a realm's device must then refuse FEATURES_OK).
    pub fn without(inner: T) -> Self {
        AccessPlatform {
            inner,
            offered: 0,
            accept: false,
        }
    }
}

impl<T: Transport> Transport for AccessPlatform<T> {
    fn device_type(&self) -> DeviceType {
        self.inner.device_type()
    }
    fn read_device_features(&mut self) -> u64 {
        self.offered = self.inner.read_device_features();
        // Not VIRTIO_F_EVENT_IDX: with it, `virtio-drivers` moves `used_event`
        // along with every completion it takes, so the device interrupts for
        // nearly every request, and `disable_interrupts` cannot stop it (it only
        // sets the ring's NO_INTERRUPT flag, which EVENT_IDX overrides). Our
        // drivers poll; each of those interrupts cost the host an injection (on
        // QEMU TCG, 1,698 for 4,096 block requests, and a slower read path than
        // Unikraft's driver, which keeps them off).
        self.offered & !F_EVENT_IDX
    }
    fn write_driver_features(&mut self, driver_features: u64) {
        self.inner.write_driver_features(if self.accept {
            driver_features | (self.offered & F_ACCESS_PLATFORM)
        } else {
            driver_features
        });
    }
    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.inner.max_queue_size(queue)
    }
    fn notify(&mut self, queue: u16) {
        self.inner.notify(queue)
    }
    fn get_status(&self) -> DeviceStatus {
        self.inner.get_status()
    }
    fn set_status(&mut self, status: DeviceStatus) {
        self.inner.set_status(status);
        if status.contains(DeviceStatus::FEATURES_OK)
            && !self.inner.get_status().contains(DeviceStatus::FEATURES_OK)
        {
            FEATURES_REFUSED.store(true, Ordering::Relaxed);
        }
    }
    fn set_guest_page_size(&mut self, guest_page_size: u32) {
        self.inner.set_guest_page_size(guest_page_size)
    }
    fn requires_legacy_layout(&self) -> bool {
        self.inner.requires_legacy_layout()
    }
    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        self.inner
            .queue_set(queue, size, descriptors, driver_area, device_area)
    }
    fn queue_unset(&mut self, queue: u16) {
        self.inner.queue_unset(queue)
    }
    fn queue_used(&mut self, queue: u16) -> bool {
        self.inner.queue_used(queue)
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        self.inner.ack_interrupt()
    }
    fn read_config_generation(&self) -> u32 {
        self.inner.read_config_generation()
    }
    fn read_config_space<V: zerocopy::FromBytes + zerocopy::IntoBytes>(
        &self,
        offset: usize,
    ) -> virtio_drivers::Result<V> {
        self.inner.read_config_space(offset)
    }
    fn write_config_space<V: zerocopy::IntoBytes + zerocopy::Immutable>(
        &mut self,
        offset: usize,
        value: V,
    ) -> virtio_drivers::Result<()> {
        self.inner.write_config_space(offset, value)
    }
}

/// Most virtio-mmio windows [`find_mmio`] reports (QEMU virt has 32).
pub const MAX_MMIO: usize = 32;

/// The `reg` windows of enabled `compatible = "virtio,mmio"` nodes directly under
/// the root (where QEMU virt and kvmtool put them), in tree order; unused slots
/// are `(0, 0)`. Returns how many were found.
///
/// # Errors
///
/// A malformed tree.
pub fn find_mmio(dt: &Dt<'_>, out: &mut [(u64, u64); MAX_MMIO]) -> Result<usize, fdt::DtError> {
    let mut root = (None, None);
    let mut n = 0;
    let mut depth = 0usize;
    let (mut compat, mut status, mut reg): (bool, Option<&[u8]>, Option<&[u8]>) =
        (false, None, None);
    for t in dt.tokens() {
        match t? {
            Token::Begin { depth: d, .. } => {
                depth = d;
                (compat, status, reg) = (false, None, None);
            }
            Token::Prop { name, value, .. } => match (depth, name) {
                (1, b"#address-cells") => root.0 = Some(value),
                (1, b"#size-cells") => root.1 = Some(value),
                (2, b"compatible") => compat = fdt::strlist_contains(value, "virtio,mmio"),
                (2, b"status") => status = Some(value),
                (2, b"reg") => reg = Some(value),
                _ => {}
            },
            Token::End => {
                if depth == 2
                    && compat
                    && fdt::status_enabled(status)
                    && let Some(r) = reg
                {
                    let cells = Cells::from_values(root.0, root.1)?;
                    if let Some(w) = fdt::reg(r, cells)?.next()
                        && n < MAX_MMIO
                    {
                        out[n] = w;
                        n += 1;
                    }
                }
                (compat, status, reg) = (false, None, None);
                depth = depth.saturating_sub(1);
            }
        }
    }
    Ok(n)
}

/// What [`blk_selftest`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlkReport {
    /// The disk's capacity in 512-byte sectors.
    pub capacity: u64,
    /// Sectors written and read back.
    pub sectors: u64,
    /// Bytes copied through the bounce pool (0 without bouncing).
    pub bounced: u64,
    /// Pool pages still in use after the device was dropped (0 expected).
    pub leaked_pages: u64,
}

/// Why [`blk_selftest`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlkError {
    /// Not a virtio-mmio version-2 block device.
    NotBlock,
    /// The device refused the features the driver accepted (FEATURES_OK cleared).
    FeaturesRefused,
    /// The driver reported an error (including a used ring the device corrupted).
    Driver(virtio_drivers::Error),
    /// The disk is smaller than the test range, or the range is empty or too long.
    Range,
    /// The data read back differs from what was written, at this sector.
    Mismatch(u64),
    /// The device did not complete a request within the polling budget (a device
    /// that stopped, e.g. after refusing a DMA address).
    Timeout,
    /// The bounce pool has no room for the request (or for the rings).
    NoMemory,
}

/// Polls of the used ring [`blk_selftest`] spends per request before
/// [`BlkError::Timeout`].
pub const SELFTEST_POLLS: u32 = 10_000_000;

fn wait_used<T: Transport>(blk: &mut VirtIOBlk<PoolHal, T>, token: u16) -> Result<(), BlkError> {
    for _ in 0..SELFTEST_POLLS {
        if let Some(t) = blk.peek_used() {
            return if t == token {
                Ok(())
            } else {
                Err(BlkError::Driver(virtio_drivers::Error::WrongToken))
            };
        }
        core::hint::spin_loop();
    }
    Err(BlkError::Timeout)
}

fn rw<T: Transport>(
    blk: &mut VirtIOBlk<PoolHal, T>,
    sector: u64,
    buf: &mut [u8],
    write: bool,
) -> Result<(), BlkError> {
    let mut req = BlkReq::default();
    let mut resp = BlkResp::default();
    let e = BlkError::Driver;
    reserve(&[size_of::<BlkReq>(), buf.len(), size_of::<BlkResp>()])
        .map_err(|_| BlkError::NoMemory)?;
    // SAFETY: `req`, `buf` and `resp` outlive the request: it is completed (or
    // the function fails and the device is reset when `blk` is dropped) before
    // they go out of scope.
    let t = unsafe {
        if write {
            blk.write_blocks_nb(sector as usize, &mut req, buf, &mut resp)
        } else {
            blk.read_blocks_nb(sector as usize, &mut req, buf, &mut resp)
        }
    };
    release_reserved();
    let t = t.map_err(e)?;
    wait_used(blk, t)?;
    // SAFETY: the same buffers as the submission, which the device has finished.
    unsafe {
        if write {
            blk.complete_write_blocks(t, &req, buf, &mut resp)
        } else {
            blk.complete_read_blocks(t, &req, buf, &mut resp)
        }
    }
    .map_err(e)
}

/// Most sectors [`blk_selftest`] writes in one request (the stack buffer).
pub const SELFTEST_MAX_SECTORS: u64 = 8;

fn pattern(sector: u64, i: usize) -> u8 {
    (sector.wrapping_mul(131) as u8) ^ (i as u8).wrapping_mul(7) ^ 0x5a
}

/// Writes a pattern to `count` sectors from `first` in one request, reads them
/// back one request per sector and then all in one, and compares. Uses
/// [`PoolHal`] (so [`init_pool`] first) through [`AccessPlatform`] (without
/// accepting ACCESS_PLATFORM when `access_platform` is false: negative tests).
/// Each request is polled at most [`SELFTEST_POLLS`] times.
///
/// # Safety
///
/// `base` must be a virtio-mmio window of `size` bytes, mapped as device memory at
/// that address, that nothing else uses during the call.
///
/// # Errors
///
/// See [`BlkError`].
pub unsafe fn blk_selftest(
    base: u64,
    size: u64,
    first: u64,
    count: u64,
    access_platform: bool,
) -> Result<BlkReport, BlkError> {
    if count == 0 || count > SELFTEST_MAX_SECTORS {
        return Err(BlkError::Range);
    }
    let header = NonNull::new(base as *mut VirtIOHeader).ok_or(BlkError::NotBlock)?;
    // SAFETY: forwarded from our caller (a mapped virtio-mmio window, ours alone).
    let mmio =
        unsafe { MmioTransport::new(header, size as usize) }.map_err(|_| BlkError::NotBlock)?;
    if mmio.device_type() != DeviceType::Block {
        return Err(BlkError::NotBlock);
    }
    let copied0 = pool_stats().2;
    take_features_refused();
    let t = if access_platform {
        AccessPlatform::new(mmio)
    } else {
        AccessPlatform::without(mmio)
    };
    let blk = VirtIOBlk::<PoolHal, _>::new(t);
    if take_features_refused() {
        return Err(BlkError::FeaturesRefused);
    }
    let mut blk = blk.map_err(|e| match e {
        virtio_drivers::Error::DmaError => BlkError::NoMemory,
        e => BlkError::Driver(e),
    })?;
    let capacity = blk.capacity();
    if first.checked_add(count).is_none_or(|e| e > capacity) {
        return Err(BlkError::Range);
    }
    let n = count as usize * SECTOR_SIZE;
    let mut buf = [0u8; SELFTEST_MAX_SECTORS as usize * SECTOR_SIZE];
    for (i, b) in buf[..n].iter_mut().enumerate() {
        *b = pattern(first + (i / SECTOR_SIZE) as u64, i % SECTOR_SIZE);
    }
    rw(&mut blk, first, &mut buf[..n], true)?;
    let check = |sector: u64, data: &[u8]| {
        data.iter()
            .enumerate()
            .all(|(i, &b)| b == pattern(sector, i))
    };
    for k in 0..count {
        let mut one = [0u8; SECTOR_SIZE];
        rw(&mut blk, first + k, &mut one, false)?;
        if !check(first + k, &one) {
            return Err(BlkError::Mismatch(first + k));
        }
    }
    buf.fill(0);
    rw(&mut blk, first, &mut buf[..n], false)?;
    for k in 0..count {
        let s = k as usize * SECTOR_SIZE;
        if !check(first + k, &buf[s..s + SECTOR_SIZE]) {
            return Err(BlkError::Mismatch(first + k));
        }
    }
    drop(blk);
    let (used, _, copied) = pool_stats();
    Ok(BlkReport {
        capacity,
        sectors: count,
        bounced: copied - copied0,
        leaked_pages: used as u64,
    })
}

/// The global pool is shared by the host tests that install one (here and in
/// `virtio_blkdev`).
#[cfg(test)]
pub(crate) static HAL_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_copy_and_zero_match_byte_semantics() {
        let mut src = [0u8; 100];
        for (i, b) in src.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37) ^ 0x5a;
        }
        // Aligned and unaligned ends, every length up to 40 and a long one.
        for (so, d_o) in [(0, 0), (1, 0), (0, 3), (5, 5), (8, 16)] {
            for len in (0..40).chain([83]) {
                if so + len > src.len() || d_o + len > 100 {
                    continue;
                }
                let mut dst = [0xeeu8; 112];
                // 8-byte aligned base for the destination.
                let base = dst.as_mut_ptr().align_offset(8);
                // SAFETY: both ranges in bounds, distinct vectors.
                unsafe { copy_bytes(dst.as_mut_ptr().add(base + d_o), src.as_ptr().add(so), len) };
                assert_eq!(&dst[base + d_o..base + d_o + len], &src[so..so + len]);
                assert!(dst[..base + d_o].iter().all(|&b| b == 0xee), "before");
                assert!(dst[base + d_o + len..].iter().all(|&b| b == 0xee), "after");
                // SAFETY: in bounds.
                unsafe { zero_bytes(dst.as_mut_ptr().add(base + d_o), len) };
                assert!(dst[base + d_o..base + d_o + len].iter().all(|&b| b == 0));
                assert!(
                    dst[base + d_o + len..].iter().all(|&b| b == 0xee),
                    "zero after"
                );
            }
        }
    }

    #[test]
    fn pool_alloc_free() {
        let mut p = BouncePool::new(0x10_0000, 8 * PAGE as u64).unwrap();
        let a = p.alloc(3).unwrap();
        let b = p.alloc(2).unwrap();
        assert_eq!(a, 0x10_0000);
        assert_eq!(b, 0x10_3000);
        assert_eq!(p.used_pages(), 5);
        assert_eq!(p.alloc(4), Err(PoolError::Exhausted));
        p.free(a, 3).unwrap();
        assert_eq!(
            p.alloc(4),
            Err(PoolError::Exhausted),
            "3 + 3 free, not contiguous"
        );
        assert_eq!(p.alloc(3), Ok(a));
        assert_eq!(p.alloc(3), Ok(0x10_5000));
        assert_eq!(p.alloc(1), Err(PoolError::Exhausted));
        assert_eq!(p.used_pages(), 8);
    }

    #[test]
    fn pool_refuses_bad_frees() {
        let mut p = BouncePool::new(0x10_0000, 4 * PAGE as u64).unwrap();
        let a = p.alloc(2).unwrap();
        assert_eq!(p.free(a + 1, 1), Err(PoolError::NotAllocated));
        assert_eq!(p.free(a, 3), Err(PoolError::NotAllocated));
        assert_eq!(p.free(0x0f_f000, 1), Err(PoolError::NotAllocated));
        assert_eq!(p.free(a + 4 * PAGE as u64, 1), Err(PoolError::NotAllocated));
        assert_eq!(p.free(a, 0), Err(PoolError::NotAllocated));
        assert_eq!(p.used_pages(), 2, "a refused free frees nothing");
        p.free(a, 2).unwrap();
        assert_eq!(p.free(a, 2), Err(PoolError::NotAllocated), "double free");
    }

    #[test]
    fn pool_regions() {
        assert!(BouncePool::new(0x1001, 0x1000).is_err());
        assert!(BouncePool::new(0x1000, 0x1001).is_err());
        assert!(BouncePool::new(0x1000, 0).is_err());
        assert!(BouncePool::new(0x1000, (MAX_POOL_PAGES as u64 + 1) * 0x1000).is_err());
        assert!(BouncePool::new(!0xfff, 0x2000).is_err());
        let p = BouncePool::new(0x1000, 0x2000).unwrap();
        assert!(p.contains(0x1000, 0x2000));
        assert!(!p.contains(0x1000, 0x2001));
        assert!(!p.contains(0xfff, 1));
        assert!(!p.contains(u64::MAX, 2));
        assert_eq!(
            BouncePool::EMPTY.clone().alloc(1),
            Err(PoolError::Exhausted)
        );
    }

    #[test]
    fn pool_full_bitmap() {
        let mut p = BouncePool::new(0, (MAX_POOL_PAGES * PAGE) as u64).unwrap();
        for i in 0..MAX_POOL_PAGES {
            assert_eq!(p.alloc(1), Ok((i * PAGE) as u64));
        }
        assert_eq!(p.alloc(1), Err(PoolError::Exhausted));
        p.free((130 * PAGE) as u64, 1).unwrap();
        assert_eq!(p.alloc(1), Ok((130 * PAGE) as u64));
    }

    #[test]
    fn hal_bounces_and_bounds_copies() {
        use std::boxed::Box;
        use std::vec;
        let _g = HAL_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        #[repr(C, align(4096))]
        struct Region([u8; 8 * PAGE]);
        let region: Box<Region> = Box::new(Region([0xee; 8 * PAGE]));
        let base = region.0.as_ptr() as u64;
        init_pool(base, (8 * PAGE) as u64, true).unwrap();

        // Rings: zeroed pool pages.
        let (pa, va) = PoolHal::dma_alloc(2, BufferDirection::Both);
        assert_eq!(pa, base);
        assert_eq!(va.as_ptr() as u64, base);
        assert!(region.0[..2 * PAGE].iter().all(|&b| b == 0));

        // A driver-to-device buffer is copied in; nothing comes back.
        let mut out = vec![7u8; 100];
        let nn = |v: &mut [u8]| NonNull::from(v);
        // SAFETY: `out` is a valid buffer used by nobody else.
        let d = unsafe { PoolHal::share(nn(&mut out), BufferDirection::DriverToDevice) };
        assert!(d >= base + 2 * PAGE as u64 && d < base + 8 * PAGE as u64);
        assert_ne!(d, out.as_ptr() as u64, "bounced, not the buffer itself");
        let off = (d - base) as usize;
        assert_eq!(&region.0[off..off + 100], &out[..]);
        // The device scribbles over the slot: the buffer is not touched.
        // SAFETY: the slot is pool memory owned by this test.
        unsafe { core::ptr::write_bytes(d as *mut u8, 0x11, PAGE) };
        // SAFETY: `d` came from `share` of this buffer.
        unsafe { PoolHal::unshare(d, nn(&mut out), BufferDirection::DriverToDevice) };
        assert!(out.iter().all(|&b| b == 7));
        assert!(
            region.0[off..off + PAGE].iter().all(|&b| b == 0),
            "slot cleared"
        );

        // Device-to-driver: the slot is handed over as it is (shared memory the
        // host can write anyway; here what the "host" left in the free pages),
        // and at most the buffer's length comes back even if the device wrote
        // past it.
        let free = (2 * PAGE) as u64;
        // SAFETY: free pool pages (the rings end at 2 pages, the slot above was freed).
        unsafe { core::ptr::write_bytes((base + free) as *mut u8, 0x5a, 6 * PAGE) };
        let mut inb = vec![0u8; 5000];
        // SAFETY: as above.
        let d = unsafe { PoolHal::share(nn(&mut inb), BufferDirection::DeviceToDriver) };
        let off = (d - base) as usize;
        assert!(
            region.0[off..off + 5000].iter().all(|&b| b == 0x5a),
            "not cleared by share"
        );
        // SAFETY: two pool pages of this slot, plus the device writing beyond 5000.
        unsafe { core::ptr::write_bytes(d as *mut u8, 0x42, 2 * PAGE) };
        let mut small = inb[..5000].to_vec();
        // SAFETY: as above.
        unsafe { PoolHal::unshare(d, nn(&mut small), BufferDirection::DeviceToDriver) };
        assert!(small.iter().all(|&b| b == 0x42));
        assert_eq!(pool_stats().0, 2, "only the rings stay allocated");

        // SAFETY: the ring pages, owned by this test.
        unsafe { core::ptr::write_bytes(pa as *mut u8, 0x33, 2 * PAGE) };
        // SAFETY: the ring allocation above.
        assert_eq!(unsafe { PoolHal::dma_dealloc(pa, va, 2) }, 0);
        assert!(
            region.0[..2 * PAGE].iter().all(|&b| b == 0),
            "freed ring pages cleared"
        );
        // SAFETY: a double free is refused, not corrupting.
        assert_eq!(unsafe { PoolHal::dma_dealloc(pa, va, 2) }, -1);
        assert_eq!(pool_stats().0, 0);
        assert_eq!(pool_stats().2, 100 + 5000);

        // Without bouncing, the device gets the buffer's own address.
        init_pool(base, (8 * PAGE) as u64, false).unwrap();
        // SAFETY: as above.
        let d = unsafe { PoolHal::share(nn(&mut out), BufferDirection::Both) };
        assert_eq!(d, out.as_ptr() as u64);
        // SAFETY: as above.
        unsafe { PoolHal::unshare(d, nn(&mut out), BufferDirection::Both) };
        assert_eq!(pool_stats(), (0, 8, 0));
    }

    #[test]
    fn hal_full_pool_is_an_error_not_a_panic() {
        use std::boxed::Box;
        let _g = HAL_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        #[repr(C, align(4096))]
        struct Region([u8; 4 * PAGE]);
        let region: Box<Region> = Box::new(Region([0; 4 * PAGE]));
        let base = region.0.as_ptr() as u64;
        init_pool(base, (4 * PAGE) as u64, true).unwrap();

        // Rings: a full pool gives virtio-drivers' failure value (paddr 0), which
        // its `Dma::new` (hal.rs, private) turns into `Error::DmaError`.
        let (pa, va) = PoolHal::dma_alloc(3, BufferDirection::Both);
        assert_eq!(pa, base);
        assert_eq!(PoolHal::dma_alloc(2, BufferDirection::Both).0, 0);
        assert_eq!(free_pages(), 1);

        // A request of three buffers does not fit in one free page: refused
        // whole, nothing stays reserved.
        assert_eq!(reserve(&[16, 512, 1]), Err(PoolError::Exhausted));
        assert_eq!(free_pages(), 1);
        // One buffer fits; `share` takes the reserved slot, not a fresh page.
        reserve(&[100]).unwrap();
        assert_eq!(free_pages(), 0);
        assert_eq!(reserve(&[1]), Err(PoolError::Exhausted), "still reserved");
        let mut out = [9u8; 100];
        // SAFETY: `out` is a valid buffer used by nobody else.
        let d =
            unsafe { PoolHal::share(NonNull::from(&mut out[..]), BufferDirection::DriverToDevice) };
        assert_eq!(d, base + 3 * PAGE as u64);
        assert_eq!(region.0[3 * PAGE], 9);
        // SAFETY: `d` came from `share` of this buffer.
        unsafe {
            PoolHal::unshare(
                d,
                NonNull::from(&mut out[..]),
                BufferDirection::DriverToDevice,
            )
        };
        assert_eq!(free_pages(), 1);
        // An unused reservation is given back.
        reserve(&[4096]).unwrap();
        assert_eq!(free_pages(), 0);
        release_reserved();
        assert_eq!(free_pages(), 1);
        assert_eq!(
            reserve(&[1, 1, 1, 1, 1]),
            Err(PoolError::Exhausted),
            "too many"
        );
        // SAFETY: the ring allocation above.
        assert_eq!(unsafe { PoolHal::dma_dealloc(pa, va, 3) }, 0);
        assert_eq!(free_pages(), 4);
        reserve(&[16, 8192, 1]).unwrap();
        assert_eq!(free_pages(), 0);
        release_reserved();

        // Without bouncing nothing is reserved (buffers are not copied).
        init_pool(base, (4 * PAGE) as u64, false).unwrap();
        reserve(&[16, 1 << 20, 1]).unwrap();
        assert_eq!(free_pages(), 4);
    }

    #[test]
    fn pages() {
        assert_eq!(pages_for(0), 1);
        assert_eq!(pages_for(1), 1);
        assert_eq!(pages_for(4096), 1);
        assert_eq!(pages_for(4097), 2);
    }
}
