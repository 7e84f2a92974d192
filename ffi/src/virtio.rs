//! Virtio block I/O for the conformance harness (feature `virtio`; see
//! `docs/realm-io.md`): the bounce pool and `ukplat_virtio_blk_selftest`.
//!
//! The pool is a static in `.bss`. In a realm, [`pool_alias_range`] gives the
//! boot map its unprotected alias (mapped read-write, identity of the alias), and
//! the first use makes the granules RIPAS EMPTY; from then on the pool is used
//! only at the alias, which is also the address the device gets. Outside a realm
//! the pool holds the rings and buffers are handed over where they are.

use crate::console;
use crate::state;
use core::cell::UnsafeCell;
use core::ffi::c_int;
use core::sync::atomic::{AtomicBool, Ordering};
use plat_kvm_arm::fdt::Dt;
use plat_kvm_arm::psci::Conduit;
use plat_kvm_arm::rsi::{self, ChangeDestroyed};
use plat_kvm_arm::virtio::{self, BlkError, MAX_MMIO};
#[cfg(any(feature = "virtio-blk", feature = "virtio-net"))]
use plat_kvm_arm::virtio_pci;
#[cfg(any(feature = "virtio-blk", feature = "virtio-net"))]
use virtio_drivers::transport::SomeTransport;
#[cfg(any(feature = "virtio-blk", feature = "virtio-net"))]
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};

/// Bytes of the bounce pool: Kconfig `PLATRS_VIRTIO_POOL_KB` in a Unikraft build
/// (Makefile.uk passes it as `PLAT_VIRTIO_POOL_KB`), 128 KiB otherwise.
const POOL_BYTES: usize = match option_env!("PLAT_VIRTIO_POOL_KB") {
    Some(v) => pool_bytes(v),
    None => 128 * 1024,
};

/// `kib` KiB, refused at build time unless a whole number of pages the pool's
/// bitmap can manage (16 KiB to 1 MiB).
const fn pool_bytes(kib: &str) -> usize {
    let b = kib.as_bytes();
    let mut i = 0;
    let mut n = 0;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "PLAT_VIRTIO_POOL_KB is not a number");
        n = n * 10 + (b[i] - b'0') as usize;
        i += 1;
    }
    let bytes = n * 1024;
    assert!(
        bytes.is_multiple_of(virtio::PAGE)
            && bytes >= 4 * virtio::PAGE
            && bytes <= virtio::MAX_POOL_PAGES * virtio::PAGE,
        "PLAT_VIRTIO_POOL_KB: a multiple of 4 between 16 and 1024"
    );
    bytes
}

#[repr(C, align(4096))]
struct Pool(UnsafeCell<[u8; POOL_BYTES]>);
// SAFETY: only its address is used here; its bytes are accessed through the
// `virtio` module's pool lock, at the alias in a realm.
unsafe impl Sync for Pool {}
static POOL: Pool = Pool(UnsafeCell::new([0; POOL_BYTES]));

static READY: AtomicBool = AtomicBool::new(false);

/// The pool's protected range `[start, end)`.
fn pool_range() -> (u64, u64) {
    let a = POOL.0.get() as u64;
    (a, a + POOL_BYTES as u64)
}

/// In a realm (`shared_bit` != 0): the range the boot map must map read-write at
/// itself, the pool's unprotected alias. `None` outside a realm.
pub(crate) fn pool_alias_range(shared_bit: u64) -> Option<(u64, u64)> {
    let (s, e) = pool_range();
    (shared_bit != 0).then_some((s | shared_bit, e | shared_bit))
}

/// Shares the pool with the host (in a realm) and installs it, once; with
/// `no_bounce`, buffers are not copied through it (negative tests).
pub(crate) fn ensure_pool(no_bounce: bool) -> Result<(), c_int> {
    if READY.load(Ordering::Acquire) {
        return Ok(());
    }
    let sb = state::shared_bit();
    let (s, e) = pool_range();
    if sb != 0 {
        let r = rsi::set_ripas_empty(&Conduit::Smc, s..e, ChangeDestroyed::ChangeDestroyed);
        if let Err(err) = r {
            console::print(format_args!(
                "virtio: sharing the bounce pool failed: {err:?}\n"
            ));
            return Err(-5); // EIO
        }
    }
    if virtio::init_pool(s | sb, e - s, sb != 0 && !no_bounce).is_err() {
        return Err(-22); // EINVAL
    }
    READY.store(true, Ordering::Release);
    Ok(())
}

/// Flag of [`ukplat_virtio_blk_selftest`]: hand the device the buffers' own
/// (protected, in a realm) addresses instead of bouncing them.
pub const VIRTIO_SELFTEST_NO_BOUNCE: u64 = 1;
/// Flag of [`ukplat_virtio_blk_selftest`]: do not accept ACCESS_PLATFORM.
pub const VIRTIO_SELFTEST_NO_ACCESS_PLATFORM: u64 = 2;

/// `int ukplat_virtio_blk_selftest(uint64_t dtb, uint64_t first, uint64_t count,
/// uint64_t flags, uint64_t out[4])`: finds the first `virtio,mmio` block device in the DTB at
/// `dtb`, writes a pattern to `count` (1..=8) sectors from `first`, reads them
/// back and compares. On success `out` holds the capacity in sectors, the sectors
/// checked, the bytes bounced through the pool (0 outside a realm) and the pool
/// pages left in use (0). Returns 0, -ENODEV (no virtio-mmio block device),
/// -EINVAL (bad range), -ENOMEM (the bounce pool is full), -EPERM (the device refused the features), -EIO (driver or
/// device error), -ETIMEDOUT (a request never completed), -EILSEQ (data read back
/// differs). `flags` (negative tests, 0 otherwise): 1 = no bounce (the first call
/// decides), 2 = do not accept ACCESS_PLATFORM. Harness test hook, not Unikraft
/// API.
///
/// # Safety
///
/// `out` must point at four writable `uint64_t`; no other code may use the
/// device or the pool during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ukplat_virtio_blk_selftest(
    dtb: u64,
    first: u64,
    count: u64,
    flags: u64,
    out: *mut u64,
) -> c_int {
    if out.is_null() {
        return -22;
    }
    let Ok(blob) = crate::dtb::blob(dtb) else {
        return -22;
    };
    let Ok(dt) = Dt::open(blob) else { return -22 };
    let mut w = [(0, 0); MAX_MMIO];
    let Ok(n) = virtio::find_mmio(&dt, &mut w) else {
        return -22;
    };
    if let Err(e) = ensure_pool(flags & VIRTIO_SELFTEST_NO_BOUNCE != 0) {
        return e;
    }
    let sb = state::shared_bit();
    for &(base, size) in &w[..n] {
        // SAFETY: a virtio-mmio window from the DT, mapped by the boot map (at its
        // alias in a realm); the caller promises nobody else uses it.
        let r = unsafe {
            virtio::blk_selftest(
                base | sb,
                size,
                first,
                count,
                flags & VIRTIO_SELFTEST_NO_ACCESS_PLATFORM == 0,
            )
        };
        let code = match r {
            Ok(rep) => {
                let v = [rep.capacity, rep.sectors, rep.bounced, rep.leaked_pages];
                for (i, x) in v.iter().enumerate() {
                    // SAFETY: the caller vouches for four writable u64 at `out`.
                    unsafe { out.add(i).write(*x) };
                }
                return 0;
            }
            Err(BlkError::NotBlock) => continue,
            Err(BlkError::Range) => -22,
            Err(BlkError::Timeout) => {
                console::print(format_args!("virtio-blk: request not completed\n"));
                -110
            }
            Err(BlkError::FeaturesRefused) => -1,
            Err(BlkError::NoMemory) => {
                console::print(format_args!("virtio-blk: bounce pool exhausted\n"));
                -12
            }
            Err(BlkError::Mismatch(s)) => {
                console::print(format_args!("virtio-blk: data differs at sector {s}\n"));
                -84
            }
            Err(BlkError::Driver(e)) => {
                console::print(format_args!("virtio-blk: driver error: {e:?}\n"));
                -5
            }
        };
        return code;
    }
    -19 // ENODEV
}

/// Starts the first virtio device of type `want` in the DTB at `dtb`: a
/// virtio-mmio window, else a function behind the generic ECAM host bridge
/// (virtio-pci), each reached at its alias in a realm. `start` is the driver's
/// constructor; it runs after the pool exists. A device that clears FEATURES_OK,
/// a constructor that fails, or a PCI bridge that answers nonsense is one console
/// line naming `name`. Returns the driver, or -EINVAL (bad DTB), -ENODEV (no such
/// device), -ENOMEM (no pool), -EPERM (features refused), -EIO (refused PCI
/// function) or the constructor's `errno`.
#[cfg(any(feature = "virtio-blk", feature = "virtio-net"))]
pub(crate) fn start_first_device<Q, E: core::fmt::Debug>(
    dtb: u64,
    want: virtio_drivers::transport::DeviceType,
    name: &str,
    start: impl FnOnce(virtio::AccessPlatform<SomeTransport<'static>>) -> Result<Q, E>,
    errno: impl FnOnce(&E) -> c_int,
) -> Result<Q, c_int> {
    use virtio_drivers::transport::Transport;
    let blob = crate::dtb::blob(dtb).map_err(|_| -22)?;
    let dt = Dt::open(blob).map_err(|_| -22)?;
    let mut w = [(0, 0); MAX_MMIO];
    let n = virtio::find_mmio(&dt, &mut w).map_err(|_| -22)?;
    ensure_pool(false)?;
    let sb = state::shared_bit();
    let mut found = None;
    for &(base, size) in &w[..n] {
        let Some(header) = core::ptr::NonNull::new((base | sb) as *mut VirtIOHeader) else {
            continue;
        };
        // SAFETY: a virtio-mmio window from the DT, mapped by the boot map (at its
        // alias in a realm), used by this driver only.
        let Ok(mmio) = (unsafe { MmioTransport::new(header, size as usize) }) else {
            continue;
        };
        if mmio.device_type() == want {
            found = Some((SomeTransport::from(mmio), base));
            break;
        }
    }
    if found.is_none()
        && let Some(host) = virtio_pci::find_host(&dt).map_err(|_| -22)?
    {
        // SAFETY: the ECAM window and the bridge's windows come from the DT and are
        // mapped by the boot map as device memory (at their alias in a realm); only
        // this driver uses them.
        match unsafe { virtio_pci::probe::<virtio::PoolHal>(&host, host.ecam | sb, want) } {
            Ok(pci) => found = Some((SomeTransport::from(pci), host.ecam)),
            Err(virtio_pci::PciError::NotFound) => {}
            Err(e) => {
                console::print(format_args!(
                    "{name}: the PCI host bridge at {:#x} gave a function we refuse: {e:?}\n",
                    host.ecam
                ));
                return Err(-5);
            }
        }
    }
    let Some((transport, base)) = found else {
        return Err(-19);
    };
    virtio::take_features_refused();
    let q = start(virtio::AccessPlatform::new(transport));
    if virtio::take_features_refused() {
        console::print(format_args!(
            "{name}: the device at {base:#x} refused the features\n"
        ));
        return Err(-1);
    }
    q.map_err(|e| {
        console::print(format_args!(
            "{name}: the device at {base:#x} did not start: {e:?}\n"
        ));
        errno(&e)
    })
}
