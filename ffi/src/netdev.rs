//! The virtio-net driver behind Unikraft's `uk_netdev` (feature `virtio-net`,
//! Kconfig `PLATRS_VIRTIO_NET`): `uk-glue/netdev.c` registers the device with
//! lib/uknetdev and calls these functions; the queue itself is
//! `plat_kvm_arm::virtio_netdev` (see `docs/realm-io.md`).
//!
//! One device (the first virtio-mmio network device in the DTB), one queue pair,
//! polled.

use crate::console;
use crate::virtio::ensure_pool;
use core::ffi::{c_int, c_void};
use plat_kvm_arm::virtio::{self, AccessPlatform};
use plat_kvm_arm::virtio_netdev::{MAX_FRAME, NetBufs, NetError, NetQueue};
use spin::Mutex;
use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::SomeTransport;

type Queue = NetQueue<'static, AccessPlatform<SomeTransport<'static>>>;

/// The device, once probed.
static DEV: Mutex<Option<Queue>> = Mutex::new(None);
/// Its frame buffers (the device holds their addresses): lent to the queue in
/// `DEV`, and only while `DEV` is locked and empty (see `probe`).
static mut BUFS: NetBufs = NetBufs::new();

/// `int platrs_vnet_probe(uint64_t dtb, uint8_t mac[6], uint16_t *mtu)`: starts
/// the first virtio-mmio network device in the DTB at `dtb` (once; later calls
/// report the same device), posts its receive buffers and stores its MAC address
/// and MTU. Returns 0, -ENODEV (none), -EINVAL (bad DTB or arguments), -ENOMEM
/// (the bounce pool cannot hold the rings and buffers), -EPERM (the device
/// refused the features), -EIO.
///
/// # Safety
///
/// `mac` must point at six writable bytes and `mtu` at a writable `uint16_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn platrs_vnet_probe(dtb: u64, mac: *mut u8, mtu: *mut u16) -> c_int {
    if mac.is_null() || mtu.is_null() {
        return -22;
    }
    let mut dev = DEV.lock();
    if dev.is_none() {
        match probe(dtb) {
            Ok(q) => *dev = Some(q),
            Err(e) => return e,
        }
        // Posted only now that the queue sits in the static for good.
        if let Some(q) = dev.as_mut()
            && let Err(e) = q.start()
        {
            console::print(format_args!(
                "virtio-net: cannot post the receive buffers: {e:?}\n"
            ));
            *dev = None;
            return e.errno();
        }
    }
    let Some(q) = dev.as_ref() else { return -5 };
    let m = q.mac();
    // SAFETY: the caller vouches for six writable bytes at `mac` and a writable
    // u16 at `mtu`.
    unsafe {
        core::ptr::copy_nonoverlapping(m.as_ptr(), mac, 6);
        mtu.write((MAX_FRAME - 14) as u16);
    }
    0
}

/// Call only with `DEV` locked and empty (it lends `BUFS` to the new queue).
fn probe(dtb: u64) -> Result<Queue, c_int> {
    // SAFETY: called only with `DEV` locked and empty, so no other queue holds
    // `BUFS` (one that did was dropped, its device reset, before `DEV` emptied).
    let bufs = unsafe { &mut *core::ptr::addr_of_mut!(BUFS) };
    crate::virtio::start_first_device(
        dtb,
        DeviceType::Network,
        "virtio-net",
        |t| NetQueue::new(t, bufs),
        |e| e.errno(),
    )
}

fn given_up(e: NetError) -> c_int {
    match e {
        NetError::BadUsed { id, len: 0, .. } => console::print(format_args!(
            "virtio-net: device returned used id {id}, not an outstanding buffer's: refused; device given up\n"
        )),
        NetError::BadUsed { len, cap, .. } => console::print(format_args!(
            "virtio-net: device returned used length {len} for a {cap}-byte buffer: refused; device given up\n"
        )),
        NetError::Timeout => console::print(format_args!(
            "virtio-net: the device did not complete a transmission; device given up\n"
        )),
        _ => {}
    }
    e.errno()
}

/// `int platrs_vnet_send(const void *frame, uint64_t len)`: transmits one
/// Ethernet frame (without FCS, at most 1514 bytes) and waits until the device
/// has taken it. Returns 0, or -EINVAL, -ENOMEM, -ETIMEDOUT, -EPROTO (the device
/// misbehaved; it is given up, with one console line), -EIO, -ENODEV.
///
/// # Safety
///
/// `frame` must be readable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn platrs_vnet_send(frame: *const c_void, len: u64) -> c_int {
    if frame.is_null() || len == 0 || len > MAX_FRAME as u64 {
        return -22;
    }
    let mut dev = DEV.lock();
    let Some(q) = dev.as_mut() else { return -19 };
    // SAFETY: the caller vouches for `len` readable bytes at `frame`.
    let f = unsafe { core::slice::from_raw_parts(frame.cast::<u8>(), len as usize) };
    match q.send(f) {
        Ok(()) => 0,
        Err(e) => given_up(e),
    }
}

/// `int platrs_vnet_recv(void *buf, uint64_t cap, uint64_t *len)`: copies the
/// next received frame into `buf` and stores its length. Returns 1 (a frame), 0
/// (none waiting; also, quietly, every call after the device was given up, so
/// that a polling stack is not flooded), -EINVAL (`cap` too small: that frame is
/// dropped), -EPROTO (the device misbehaved: given up now, one console line),
/// -ENOMEM, -EIO, -ENODEV.
///
/// # Safety
///
/// `buf` must be writable for `cap` bytes and `len` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn platrs_vnet_recv(buf: *mut c_void, cap: u64, len: *mut u64) -> c_int {
    if buf.is_null() || len.is_null() {
        return -22;
    }
    let mut dev = DEV.lock();
    let Some(q) = dev.as_mut() else { return -19 };
    // SAFETY: the caller vouches for `cap` writable bytes at `buf`.
    let out = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), cap as usize) };
    match q.recv(out) {
        Ok(None) => 0,
        Ok(Some(n)) => {
            // SAFETY: the caller vouches for a writable u64 at `len`.
            unsafe { len.write(n as u64) };
            1
        }
        Err(NetError::GivenUp) => 0,
        Err(e) => given_up(e),
    }
}

/// `int platrs_vnet_stats(uint64_t out[4])`: frames sent, received and dropped
/// (larger than the caller's buffer), and bytes copied through the bounce pool
/// so far (all devices; 0 outside a realm). Returns 0, -EINVAL or -ENODEV.
///
/// # Safety
///
/// `out` must point at four writable `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn platrs_vnet_stats(out: *mut u64) -> c_int {
    if out.is_null() {
        return -22;
    }
    let dev = DEV.lock();
    let Some(q) = dev.as_ref() else { return -19 };
    let v = [
        q.counts.sent,
        q.counts.received,
        q.counts.dropped,
        virtio::pool_stats().2,
    ];
    for (i, x) in v.iter().enumerate() {
        // SAFETY: the caller vouches for four writable u64 at `out`.
        unsafe { out.add(i).write(*x) };
    }
    0
}

/// `int ukplat_virtio_netq_selftest(uint64_t dtb, uint32_t guest_ip, uint32_t
/// gw_ip, uint32_t udp_port, uint64_t flags, uint64_t out[6])`: the harness's
/// ARP, ICMP echo and UDP echo exchanges (as `ukplat_virtio_net_selftest`, same
/// arguments, `out` and return values) through the queue behind Unikraft's
/// `uk_netdev` (the one [`platrs_vnet_probe`] starts), so that the driver Unikraft
/// uses is exercised without a Unikraft tree. `flags` bit 0 (no bounce) as for
/// the block test; `out[5]` is the pool pages in use afterwards, the queue's
/// rings and posted buffers included (it stays up). Harness test hook, not
/// Unikraft API.
///
/// # Safety
///
/// `out` must point at six writable `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ukplat_virtio_netq_selftest(
    dtb: u64,
    guest_ip: u32,
    gw_ip: u32,
    udp_port: u32,
    flags: u64,
    out: *mut u64,
) -> c_int {
    use plat_kvm_arm::virtio_net::{self, NetConfig, NetError as TestError};
    let Ok(port) = u16::try_from(udp_port) else {
        return -22;
    };
    if out.is_null() || port == 0 {
        return -22;
    }
    if let Err(e) = ensure_pool(flags & crate::virtio::VIRTIO_SELFTEST_NO_BOUNCE != 0) {
        return e;
    }
    let (mut mac, mut mtu) = ([0u8; 6], 0u16);
    // SAFETY: local, writable.
    let rc = unsafe { platrs_vnet_probe(dtb, mac.as_mut_ptr(), &mut mtu) };
    if rc != 0 {
        return rc;
    }
    let cfg = NetConfig {
        guest_ip: guest_ip.to_be_bytes(),
        gw_ip: gw_ip.to_be_bytes(),
        udp_port: port,
    };
    let mut dev = DEV.lock();
    let Some(q) = dev.as_mut() else { return -19 };
    match virtio_net::netq_selftest(q, &cfg) {
        // The queue's own wording: it gives the device up.
        Err(TestError::BadUsed { id, len, cap }) => given_up(NetError::BadUsed { id, len, cap }),
        r => crate::virtio_net::report(r, out).unwrap_or(-19),
    }
}
