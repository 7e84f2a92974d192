//! Virtio-net for the conformance harness (feature `virtio`; see
//! `docs/realm-io.md`): `ukplat_virtio_net_selftest`, on the bounce pool of
//! `virtio.rs`.

use crate::console;
use crate::state;
use crate::virtio::{VIRTIO_SELFTEST_NO_ACCESS_PLATFORM, VIRTIO_SELFTEST_NO_BOUNCE, ensure_pool};
use core::ffi::c_int;
use plat_kvm_arm::fdt::Dt;
use plat_kvm_arm::virtio::{self, MAX_MMIO};
use plat_kvm_arm::virtio_net::{self, NetConfig, NetError};

fn mac64(m: [u8; 6]) -> u64 {
    m.iter().fold(0, |a, &b| a << 8 | b as u64)
}

/// A self-test's result as the harness hooks return it: `out[0..6]` filled and 0,
/// or a negative errno with one console line saying why; `None` for a window that
/// is not a network device.
pub(crate) fn report(r: Result<virtio_net::NetReport, NetError>, out: *mut u64) -> Option<c_int> {
    Some(match r {
        Ok(rep) => {
            let v = [
                mac64(rep.mac),
                mac64(rep.gw_mac),
                rep.sent,
                rep.received,
                rep.bounced,
                rep.leaked_pages,
            ];
            for (i, x) in v.iter().enumerate() {
                // SAFETY: the hooks' callers vouch for six writable u64 at `out`.
                unsafe { out.add(i).write(*x) };
            }
            0
        }
        Err(NetError::NotNet) => return None,
        Err(NetError::FeaturesRefused) => -1,
        Err(NetError::NoMemory) => {
            console::print(format_args!("virtio-net: bounce pool full\n"));
            -12
        }
        Err(NetError::Timeout(s)) => {
            console::print(format_args!("virtio-net: no {s:?} reply\n"));
            -110
        }
        Err(NetError::Mismatch(s)) => {
            console::print(format_args!(
                "virtio-net: {s:?} reply differs from the expected one\n"
            ));
            -84
        }
        Err(NetError::BadUsed { id, len: 0, .. }) => {
            console::print(format_args!(
                "virtio-net: device returned used id {id}, not the outstanding buffer's: refused\n"
            ));
            -71
        }
        Err(NetError::BadUsed { len, cap, .. }) => {
            console::print(format_args!(
                "virtio-net: device returned used length {len} for a {cap}-byte buffer: refused\n"
            ));
            -71
        }
        Err(NetError::Driver(e)) => {
            console::print(format_args!("virtio-net: driver error: {e:?}\n"));
            -5
        }
    })
}

/// `int ukplat_virtio_net_selftest(uint64_t dtb, uint32_t guest_ip, uint32_t
/// gw_ip, uint32_t udp_port, uint64_t flags, uint64_t out[6])`: through the first
/// `virtio,mmio` network device in the DTB at `dtb`, asks the gateway `gw_ip` for
/// its MAC (ARP), pings it (ICMP echo) and sends a UDP datagram to its echo port
/// `udp_port`, from `guest_ip` (addresses in network order packed as
/// `a << 24 | b << 16 | c << 8 | d`), checking each reply. On success `out` holds
/// the device's MAC, the gateway's MAC (48-bit values), frames sent, frames
/// received, bytes bounced through the pool (0 outside a realm) and pool pages
/// left in use (0). Returns 0, -ENODEV (no virtio-mmio network device), -EINVAL
/// (bad arguments), -EPERM (the device refused the features), -ENOMEM (the
/// bounce pool has no room), -EIO (driver error), -EPROTO (the device reported a used id or length that cannot be: one
/// console line says which), -ETIMEDOUT (no reply), -EILSEQ (a reply differs from
/// the expected one). `flags` as for `ukplat_virtio_blk_selftest`. Harness test
/// hook, not Unikraft API.
///
/// # Safety
///
/// `out` must point at six writable `uint64_t`; no other code may use the device
/// or the pool during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ukplat_virtio_net_selftest(
    dtb: u64,
    guest_ip: u32,
    gw_ip: u32,
    udp_port: u32,
    flags: u64,
    out: *mut u64,
) -> c_int {
    let Ok(port) = u16::try_from(udp_port) else {
        return -22;
    };
    if out.is_null() || port == 0 {
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
    let cfg = NetConfig {
        guest_ip: guest_ip.to_be_bytes(),
        gw_ip: gw_ip.to_be_bytes(),
        udp_port: port,
    };
    let sb = state::shared_bit();
    for &(base, size) in &w[..n] {
        // SAFETY: a virtio-mmio window from the DT, mapped by the boot map (at its
        // alias in a realm); the caller promises nobody else uses it.
        let r = unsafe {
            virtio_net::net_selftest(
                base | sb,
                size,
                &cfg,
                flags & VIRTIO_SELFTEST_NO_ACCESS_PLATFORM == 0,
            )
        };
        match report(r, out) {
            Some(code) => return code,
            None => continue, // not a network device
        }
    }
    -19 // ENODEV
}
