//! A virtio-net self-test through `virtio-drivers`' allocation-free
//! `VirtIONetRaw`, on the same bounce-pool `Hal` and ACCESS_PLATFORM transport
//! wrapper as the block device (`crate::virtio`; see `docs/realm-io.md`).
//!
//! [`net_selftest`] does three exchanges with a gateway: ARP (learns its MAC),
//! ICMP echo and UDP echo, and checks each reply against the one it expects, byte
//! for byte where the reply is fully determined by the request (the ARP reply, the
//! whole ICMP message, the UDP ports and payload), and by validation where a
//! responder may choose (IPv4 identification, TTL, flags: the header checksum
//! must hold). What the device hands back is hostile input: a used id that is not
//! the outstanding receive buffer, or a used length larger than that buffer, is
//! one error ([`NetError::BadUsed`]) and nothing is read past the buffer.

use crate::virtio::{
    AccessPlatform, PoolHal, pool_stats, release_reserved, reserve, take_features_refused,
};
use crate::virtio_netdev::{NetError as QError, NetQueue, RX_BUF};
use core::ptr::NonNull;
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};

/// Descriptors per queue (the model offers 16; QEMU 256).
const QUEUE: usize = 16;
/// Largest frame the test sends (Ethernet + IPv4 + UDP/ICMP + payload).
const TX_FRAME: usize = 14 + 20 + 8 + PAYLOAD;
/// Bytes of ICMP and UDP payload.
pub const PAYLOAD: usize = 64;
/// Source port of the UDP exchange.
pub const UDP_SRC_PORT: u16 = 40007;
/// Frames not meant for the test (or ARP requests it answered) tolerated while
/// waiting for one reply.
const MAX_STRAY: u32 = 16;
/// Polls of a used ring before [`NetError::Timeout`].
pub const NET_POLLS: u32 = 20_000_000;

/// The addresses the test uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetConfig {
    /// This guest's IPv4 address.
    pub guest_ip: [u8; 4],
    /// The gateway's IPv4 address (it must answer ARP, ICMP echo and UDP echo).
    pub gw_ip: [u8; 4],
    /// The gateway's UDP echo port.
    pub udp_port: u16,
}

/// What [`net_selftest`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetReport {
    /// The device's MAC address (from its config space).
    pub mac: [u8; 6],
    /// The gateway's MAC address (from its ARP reply).
    pub gw_mac: [u8; 6],
    /// Frames transmitted.
    pub sent: u64,
    /// Frames received (including strays).
    pub received: u64,
    /// Bytes copied through the bounce pool (0 without bouncing).
    pub bounced: u64,
    /// Pool pages still in use after the device was dropped (0 expected).
    pub leaked_pages: u64,
}

/// Which exchange a failure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// ARP request for the gateway.
    Arp,
    /// ICMP echo to the gateway.
    Icmp,
    /// UDP echo to the gateway.
    Udp,
}

/// Why [`net_selftest`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetError {
    /// Not a virtio-mmio network device.
    NotNet,
    /// The device refused the features the driver accepted (FEATURES_OK cleared).
    FeaturesRefused,
    /// The driver reported an error.
    Driver(virtio_drivers::Error),
    /// A used-ring element the device wrote is impossible: `id` is not the
    /// outstanding buffer's, or `len` exceeds the buffer (`cap` bytes).
    BadUsed {
        /// The descriptor id the device reported.
        id: u16,
        /// The length the device reported (0 if the id was already wrong).
        len: u64,
        /// The buffer's size.
        cap: u64,
    },
    /// No matching reply within the polling budget (or too many strays).
    Timeout(Stage),
    /// A reply for the test that differs from the expected one.
    Mismatch(Stage),
    /// The bounce pool has no room for the rings or a buffer.
    NoMemory,
}

type Dev<'a> = VirtIONetRaw<PoolHal, AccessPlatform<MmioTransport<'a>>, QUEUE>;

fn sum16(mut s: u32, d: &[u8]) -> u32 {
    for c in d.chunks(2) {
        s += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s
}

/// The Internet checksum of `d` starting from the partial sum `s`.
pub fn inet_csum(s: u32, d: &[u8]) -> u16 {
    !(sum16(s, d) as u16)
}

fn udp_pseudo(src: &[u8; 4], dst: &[u8; 4], len: usize) -> u32 {
    let mut p = [0u8; 12];
    p[..4].copy_from_slice(src);
    p[4..8].copy_from_slice(dst);
    p[9] = 17;
    p[10..12].copy_from_slice(&(len as u16).to_be_bytes());
    sum16(0, &p)
}

fn payload(seed: u8) -> [u8; PAYLOAD] {
    let mut p = [0u8; PAYLOAD];
    for (i, b) in p.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(29) ^ seed;
    }
    p
}

/// Ethernet + ARP request (`op` 1) or reply (2), 42 bytes.
pub fn arp_frame(
    op: u8,
    eth_dst: [u8; 6],
    sha: [u8; 6],
    spa: [u8; 4],
    tha: [u8; 6],
    tpa: [u8; 4],
) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&eth_dst);
    f[6..12].copy_from_slice(&sha);
    f[12..14].copy_from_slice(&[8, 6]);
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, op]);
    f[22..28].copy_from_slice(&sha);
    f[28..32].copy_from_slice(&spa);
    f[32..38].copy_from_slice(&tha);
    f[38..42].copy_from_slice(&tpa);
    f
}

/// Ethernet + IPv4 (no options, DF clear, TTL 64) + `l4`; returns the length.
/// `l4` is the ICMP message or UDP datagram, checksums already filled in.
pub fn ipv4_frame(
    out: &mut [u8],
    dst: [u8; 6],
    src: [u8; 6],
    sip: [u8; 4],
    dip: [u8; 4],
    proto: u8,
    l4: &[u8],
) -> usize {
    let tot = 20 + l4.len();
    out[0..6].copy_from_slice(&dst);
    out[6..12].copy_from_slice(&src);
    out[12..14].copy_from_slice(&[8, 0]);
    let ip = &mut out[14..34];
    ip.fill(0);
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(tot as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&sip);
    ip[16..20].copy_from_slice(&dip);
    let c = inet_csum(0, ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    out[34..34 + l4.len()].copy_from_slice(l4);
    14 + tot
}

/// An ICMP echo message (`typ` 8 request, 0 reply) with checksum.
pub fn icmp_echo(typ: u8, id: u16, seq: u16, data: &[u8; PAYLOAD]) -> [u8; 8 + PAYLOAD] {
    let mut m = [0u8; 8 + PAYLOAD];
    m[0] = typ;
    m[4..6].copy_from_slice(&id.to_be_bytes());
    m[6..8].copy_from_slice(&seq.to_be_bytes());
    m[8..].copy_from_slice(data);
    let c = inet_csum(0, &m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// A UDP datagram from `sip:sport` to `dip:dport` with checksum.
pub fn udp_datagram(
    sip: [u8; 4],
    dip: [u8; 4],
    sport: u16,
    dport: u16,
    data: &[u8; PAYLOAD],
) -> [u8; 8 + PAYLOAD] {
    let mut u = [0u8; 8 + PAYLOAD];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + PAYLOAD) as u16).to_be_bytes());
    u[8..].copy_from_slice(data);
    let c = match inet_csum(udp_pseudo(&sip, &dip, u.len()), &u) {
        0 => 0xffff,
        c => c,
    };
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

/// What a received frame is to the test.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// The reply awaited, as expected.
    Match,
    /// The reply awaited (same exchange) but wrong.
    Wrong,
    /// An ARP request for the guest's address: answer it.
    ArpForUs([u8; 6], [u8; 4]),
    /// Something else (ignored).
    Stray,
}

/// Checks an IPv4 frame from the gateway to the guest carrying `proto`, and
/// returns its transport part (trailing Ethernet padding cut), or `None` if it is
/// not such a frame.
fn ipv4_from_gw<'f>(f: &'f [u8], cfg: &NetConfig, mac: [u8; 6], proto: u8) -> Option<&'f [u8]> {
    if f.len() < 34 || f[12..14] != [8, 0] || f[0..6] != mac {
        return None;
    }
    let ip = &f[14..];
    if ip[9] != proto || ip[12..16] != cfg.gw_ip || ip[16..20] != cfg.guest_ip {
        return None;
    }
    let tot = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    if ip[0] != 0x45 || tot < 20 || tot > ip.len() {
        return Some(&[]); // ours, but malformed
    }
    Some(&ip[20..tot])
}

/// Classifies frame `f` while waiting for `stage`'s reply.
#[allow(clippy::too_many_arguments)]
fn classify(
    f: &[u8],
    stage: Stage,
    cfg: &NetConfig,
    mac: [u8; 6],
    gw_mac: [u8; 6],
    icmp_req: &[u8],
    udp_payload: &[u8; PAYLOAD],
) -> Verdict {
    if f.len() >= 42 && f[12..14] == [8, 6] && f[14..22] == [0, 1, 8, 0, 6, 4, 0, 1] {
        if f[38..42] == cfg.guest_ip {
            let (sha, spa) = (&f[22..28], &f[28..32]);
            let mut m = [0u8; 6];
            let mut a = [0u8; 4];
            m.copy_from_slice(sha);
            a.copy_from_slice(spa);
            return Verdict::ArpForUs(m, a);
        }
        return Verdict::Stray;
    }
    match stage {
        Stage::Arp => {
            if f.len() < 42 || f[12..14] != [8, 6] || f[20..22] != [0, 2] || f[28..32] != cfg.gw_ip
            {
                return Verdict::Stray;
            }
            let mut sha = [0u8; 6];
            sha.copy_from_slice(&f[22..28]);
            let want = arp_frame(2, mac, sha, cfg.gw_ip, mac, cfg.guest_ip);
            // The Ethernet source must be the MAC the gateway claims.
            if f[..42] == want {
                Verdict::Match
            } else {
                Verdict::Wrong
            }
        }
        Stage::Icmp => {
            let Some(l4) = ipv4_from_gw(f, cfg, mac, 1) else {
                return Verdict::Stray;
            };
            if f[6..12] != gw_mac
                || inet_csum(0, &f[14..34]) != 0
                || f[20] & 0x3f != 0
                || f[21] != 0
            {
                return Verdict::Wrong;
            }
            let mut want = [0u8; 8 + PAYLOAD];
            want.copy_from_slice(icmp_req);
            want[0] = 0;
            want[2..4].fill(0);
            let c = inet_csum(0, &want);
            want[2..4].copy_from_slice(&c.to_be_bytes());
            if l4 == want {
                Verdict::Match
            } else {
                Verdict::Wrong
            }
        }
        Stage::Udp => {
            let Some(l4) = ipv4_from_gw(f, cfg, mac, 17) else {
                return Verdict::Stray;
            };
            if f[6..12] != gw_mac
                || inet_csum(0, &f[14..34]) != 0
                || f[20] & 0x3f != 0
                || f[21] != 0
            {
                return Verdict::Wrong;
            }
            if l4.len() != 8 + PAYLOAD
                || l4[0..2] != cfg.udp_port.to_be_bytes()
                || l4[2..4] != UDP_SRC_PORT.to_be_bytes()
                || l4[4..6] != ((8 + PAYLOAD) as u16).to_be_bytes()
                || l4[8..] != udp_payload[..]
            {
                return Verdict::Wrong;
            }
            // The checksum is optional in IPv4 (0); if present it must hold.
            let ck = u16::from_be_bytes([l4[6], l4[7]]);
            if ck != 0 && inet_csum(udp_pseudo(&cfg.gw_ip, &cfg.guest_ip, l4.len()), l4) != 0 {
                return Verdict::Wrong;
            }
            Verdict::Match
        }
    }
}

struct Counts {
    sent: u64,
    received: u64,
}

/// What the exchanges run over: the raw device ([`net_selftest`]) or the
/// `uk_netdev` queue ([`netq_selftest`]).
trait Link {
    fn mac(&self) -> [u8; 6];
    /// Sends `frame` and waits until the device has taken it.
    fn send(&mut self, frame: &[u8], c: &mut Counts) -> Result<(), NetError>;
    /// Waits for one frame; returns its range in `rx`.
    fn recv(
        &mut self,
        rx: &mut [u8; RX_BUF],
        stage: Stage,
        c: &mut Counts,
    ) -> Result<(usize, usize), NetError>;
}

/// The transmit buffer: header and frame.
type TxBuf = [u8; 12 + TX_FRAME];

/// The raw device, one buffer on each ring at a time.
struct Raw<'a, 'b> {
    dev: Dev<'a>,
    tx: &'b mut TxBuf,
}

impl Link for Raw<'_, '_> {
    fn mac(&self) -> [u8; 6] {
        self.dev.mac_address()
    }

    fn send(&mut self, frame: &[u8], c: &mut Counts) -> Result<(), NetError> {
        let (dev, buf) = (&mut self.dev, &mut *self.tx);
        let h = dev.fill_buffer_header(buf).map_err(NetError::Driver)?;
        let len = h + frame.len();
        if len > buf.len() {
            return Err(NetError::Driver(virtio_drivers::Error::InvalidParam));
        }
        buf[h..len].copy_from_slice(frame);
        // One bounce slot per buffer, or -ENOMEM before the device sees anything.
        reserve(&[len]).map_err(|_| NetError::NoMemory)?;
        // SAFETY: `buf` is not accessed until `transmit_complete`; if we return
        // early with it still posted, the caller drops the device (which resets
        // it) before `buf` goes out of scope.
        let t = unsafe { dev.transmit_begin(&buf[..len]) };
        release_reserved();
        let t = t.map_err(NetError::Driver)?;
        for _ in 0..NET_POLLS {
            if let Some(u) = dev.poll_transmit() {
                if u != t {
                    return Err(NetError::BadUsed {
                        id: u,
                        len: 0,
                        cap: len as u64,
                    });
                }
                // SAFETY: the same buffer as `transmit_begin`'s.
                unsafe { dev.transmit_complete(t, &buf[..len]) }.map_err(NetError::Driver)?;
                c.sent += 1;
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(NetError::Timeout(Stage::Arp))
    }

    fn recv(
        &mut self,
        rx: &mut [u8; RX_BUF],
        stage: Stage,
        c: &mut Counts,
    ) -> Result<(usize, usize), NetError> {
        let dev = &mut self.dev;
        // One bounce slot per buffer, or -ENOMEM before the device sees anything.
        reserve(&[RX_BUF]).map_err(|_| NetError::NoMemory)?;
        // SAFETY: `rx` is not accessed until `receive_complete`; if we return early
        // with the buffer still posted, the caller drops the device (which resets
        // it) before `rx` goes out of scope.
        let t = unsafe { dev.receive_begin(rx) };
        release_reserved();
        let t = t.map_err(NetError::Driver)?;
        for _ in 0..NET_POLLS {
            if let Some(u) = dev.poll_receive() {
                if u != t {
                    return Err(NetError::BadUsed {
                        id: u,
                        len: 0,
                        cap: RX_BUF as u64,
                    });
                }
                // SAFETY: the same buffer as `receive_begin`'s. The Hal copies back
                // at most `RX_BUF` bytes whatever length the device claims.
                let (hdr, len) =
                    unsafe { dev.receive_complete(t, rx) }.map_err(NetError::Driver)?;
                // The crate does not bound the device's length by the buffer.
                if hdr.checked_add(len).is_none_or(|e| e > RX_BUF) {
                    return Err(NetError::BadUsed {
                        id: u,
                        len: (hdr as u64).saturating_add(len as u64),
                        cap: RX_BUF as u64,
                    });
                }
                c.received += 1;
                return Ok((hdr, hdr + len));
            }
            core::hint::spin_loop();
        }
        Err(NetError::Timeout(stage))
    }
}

impl From<QError> for NetError {
    fn from(e: QError) -> Self {
        match e {
            QError::BadUsed { id, len, cap } => NetError::BadUsed { id, len, cap },
            QError::NoMemory => NetError::NoMemory,
            QError::Timeout => NetError::Timeout(Stage::Arp),
            QError::Invalid => NetError::Driver(virtio_drivers::Error::InvalidParam),
            QError::Io | QError::GivenUp => NetError::Driver(virtio_drivers::Error::IoError),
        }
    }
}

/// The `uk_netdev` queue: several receive buffers posted, frames by copy.
impl<T: Transport> Link for NetQueue<'_, T> {
    fn mac(&self) -> [u8; 6] {
        NetQueue::mac(self)
    }

    fn send(&mut self, frame: &[u8], c: &mut Counts) -> Result<(), NetError> {
        NetQueue::send(self, frame)?;
        c.sent += 1;
        Ok(())
    }

    fn recv(
        &mut self,
        rx: &mut [u8; RX_BUF],
        stage: Stage,
        c: &mut Counts,
    ) -> Result<(usize, usize), NetError> {
        for _ in 0..NET_POLLS {
            if let Some(n) = NetQueue::recv(self, &mut rx[..])? {
                c.received += 1;
                return Ok((0, n));
            }
            core::hint::spin_loop();
        }
        Err(NetError::Timeout(stage))
    }
}

/// Sends `req` and waits for the reply `stage` expects, answering ARP requests
/// for the guest's address on the way. Returns the reply's Ethernet source.
#[allow(clippy::too_many_arguments)]
fn exchange<L: Link>(
    link: &mut L,
    rx: &mut [u8; RX_BUF],
    req: &[u8],
    stage: Stage,
    cfg: &NetConfig,
    gw_mac: [u8; 6],
    icmp_req: &[u8],
    udp_payload: &[u8; PAYLOAD],
    c: &mut Counts,
) -> Result<[u8; 6], NetError> {
    let mac = link.mac();
    link.send(req, c).map_err(|e| match e {
        NetError::Timeout(_) => NetError::Timeout(stage),
        e => e,
    })?;
    for _ in 0..MAX_STRAY {
        let (s, e) = link.recv(rx, stage, c)?;
        let f = &rx[s..e];
        match classify(f, stage, cfg, mac, gw_mac, icmp_req, udp_payload) {
            Verdict::Match => {
                let mut src = [0u8; 6];
                src.copy_from_slice(&f[6..12]);
                return Ok(src);
            }
            Verdict::Wrong => return Err(NetError::Mismatch(stage)),
            Verdict::ArpForUs(sha, spa) => {
                let a = arp_frame(2, sha, mac, cfg.guest_ip, sha, spa);
                link.send(&a, c)?;
            }
            Verdict::Stray => {}
        }
    }
    Err(NetError::Timeout(stage))
}

/// The three exchanges (ARP, ICMP echo, UDP echo) over `link`; returns the
/// gateway's MAC.
fn exchanges<L: Link>(
    link: &mut L,
    rx: &mut [u8; RX_BUF],
    cfg: &NetConfig,
    c: &mut Counts,
) -> Result<[u8; 6], NetError> {
    let mac = link.mac();
    let none = [0u8; PAYLOAD];
    let arp = arp_frame(1, [0xff; 6], mac, cfg.guest_ip, [0; 6], cfg.gw_ip);
    let gw_mac = exchange(link, rx, &arp, Stage::Arp, cfg, [0; 6], &[], &none, c)?;

    // The echo's last 8 bytes are zero: kvmtool's user-mode network (uip)
    // leaves the last 8 bytes of an echo out of its reply's ICMP checksum
    // (net/uip/csum.c, uip_csum_icmp, kvmtool 3.18), which then comes out right
    // only for such a payload; the reply is still checked byte for byte.
    let mut echo = payload(0x49);
    echo[PAYLOAD - 8..].fill(0);
    let ping = icmp_echo(8, 0x5052, 1, &echo);
    let mut f = [0u8; TX_FRAME];
    let n = ipv4_frame(&mut f, gw_mac, mac, cfg.guest_ip, cfg.gw_ip, 1, &ping);
    exchange(link, rx, &f[..n], Stage::Icmp, cfg, gw_mac, &ping, &none, c)?;

    let data = payload(0x55);
    let udp = udp_datagram(cfg.guest_ip, cfg.gw_ip, UDP_SRC_PORT, cfg.udp_port, &data);
    let n = ipv4_frame(&mut f, gw_mac, mac, cfg.guest_ip, cfg.gw_ip, 17, &udp);
    exchange(link, rx, &f[..n], Stage::Udp, cfg, gw_mac, &[], &data, c)?;
    Ok(gw_mac)
}

/// The same three exchanges through a started `uk_netdev` queue (the driver
/// behind Unikraft's `uk_netdev`, `PLATRS_VIRTIO_NET`). `leaked_pages` reports
/// the pool pages in use afterwards, which include the queue's own rings and
/// posted buffers (the queue stays up).
///
/// # Errors
///
/// See [`NetError`].
pub fn netq_selftest<T: Transport>(
    q: &mut NetQueue<'_, T>,
    cfg: &NetConfig,
) -> Result<NetReport, NetError> {
    let copied0 = pool_stats().2;
    let mut c = Counts {
        sent: 0,
        received: 0,
    };
    let mut rx = [0u8; RX_BUF];
    let gw_mac = exchanges(q, &mut rx, cfg, &mut c)?;
    let (used, _, copied) = pool_stats();
    Ok(NetReport {
        mac: q.mac(),
        gw_mac,
        sent: c.sent,
        received: c.received,
        bounced: copied - copied0,
        leaked_pages: used as u64,
    })
}

/// ARP, ICMP echo and UDP echo with the gateway of `cfg` through the first
/// virtio-mmio network device at `base`. Uses [`PoolHal`] (so
/// [`crate::virtio::init_pool`] first) through [`AccessPlatform`] (not accepting
/// ACCESS_PLATFORM when `access_platform` is false: negative tests). Every wait is
/// bounded by [`NET_POLLS`] polls.
///
/// # Safety
///
/// `base` must be a virtio-mmio window of `size` bytes, mapped as device memory at
/// that address, that nothing else uses during the call.
///
/// # Errors
///
/// See [`NetError`].
pub unsafe fn net_selftest(
    base: u64,
    size: u64,
    cfg: &NetConfig,
    access_platform: bool,
) -> Result<NetReport, NetError> {
    let header = NonNull::new(base as *mut VirtIOHeader).ok_or(NetError::NotNet)?;
    // SAFETY: forwarded from our caller (a mapped virtio-mmio window, ours alone).
    let mmio =
        unsafe { MmioTransport::new(header, size as usize) }.map_err(|_| NetError::NotNet)?;
    if mmio.device_type() != DeviceType::Network {
        return Err(NetError::NotNet);
    }
    let copied0 = pool_stats().2;
    take_features_refused();
    let t = if access_platform {
        AccessPlatform::new(mmio)
    } else {
        AccessPlatform::without(mmio)
    };
    // Declared before `dev`: dropped after it, so a buffer still posted when a
    // step fails outlives the device (whose drop resets it).
    let mut rx = [0u8; RX_BUF];
    let mut tx: TxBuf = [0; 12 + TX_FRAME];
    let dev = Dev::new(t);
    if take_features_refused() {
        return Err(NetError::FeaturesRefused);
    }
    let dev = dev.map_err(|e| match e {
        virtio_drivers::Error::DmaError => NetError::NoMemory,
        e => NetError::Driver(e),
    })?;
    let mac = dev.mac_address();
    let mut c = Counts {
        sent: 0,
        received: 0,
    };
    let mut link = Raw { dev, tx: &mut tx };
    let gw_mac = exchanges(&mut link, &mut rx, cfg, &mut c)?;
    drop(link);
    let (used, _, copied) = pool_stats();
    Ok(NetReport {
        mac,
        gw_mac,
        sent: c.sent,
        received: c.received,
        bounced: copied - copied0,
        leaked_pages: used as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: NetConfig = NetConfig {
        guest_ip: [10, 0, 2, 15],
        gw_ip: [10, 0, 2, 2],
        udp_port: 7,
    };
    const MAC: [u8; 6] = [2, 0x15, 0x15, 0x15, 0x15, 0x15];
    const GW: [u8; 6] = [0x52, 0x55, 10, 0, 2, 2];

    #[test]
    fn checksums() {
        // RFC 1071's example: the sum of 0001 f203 f4f5 f6f7 is ddf2.
        assert_eq!(sum16(0, &[0, 1, 0xf2, 3, 0xf4, 0xf5, 0xf6, 0xf7]), 0xddf2);
        let m = icmp_echo(8, 1, 2, &payload(3));
        assert_eq!(inet_csum(0, &m), 0, "a filled-in checksum verifies");
        let u = udp_datagram(CFG.guest_ip, CFG.gw_ip, 1, 7, &payload(4));
        assert_eq!(
            inet_csum(udp_pseudo(&CFG.guest_ip, &CFG.gw_ip, u.len()), &u),
            0
        );
        let mut f = [0u8; TX_FRAME];
        let n = ipv4_frame(&mut f, GW, MAC, CFG.guest_ip, CFG.gw_ip, 17, &u);
        assert_eq!(n, 14 + 20 + 8 + PAYLOAD);
        assert_eq!(inet_csum(0, &f[14..34]), 0);
    }

    #[test]
    fn arp_reply_checked_byte_for_byte() {
        let good = arp_frame(2, MAC, GW, CFG.gw_ip, MAC, CFG.guest_ip);
        let v = |f: &[u8]| classify(f, Stage::Arp, &CFG, MAC, [0; 6], &[], &[0; PAYLOAD]);
        assert_eq!(v(&good), Verdict::Match);
        let mut padded = [0u8; 60];
        padded[..42].copy_from_slice(&good);
        assert_eq!(v(&padded), Verdict::Match, "Ethernet padding is allowed");
        // The Ethernet source must be the sender hardware address.
        let mut bad = good;
        bad[6] ^= 1;
        assert_eq!(v(&bad), Verdict::Wrong);
        // Addressed to another target protocol address.
        let mut bad = good;
        bad[41] ^= 1;
        assert_eq!(v(&bad), Verdict::Wrong);
        // A reply from another host is not ours.
        let mut other = good;
        other[31] ^= 1;
        assert_eq!(v(&other), Verdict::Stray);
        assert_eq!(v(&good[..41]), Verdict::Stray, "short");
        // An ARP request for our address is answered, not matched.
        let req = arp_frame(1, [0xff; 6], GW, CFG.gw_ip, [0; 6], CFG.guest_ip);
        assert_eq!(v(&req), Verdict::ArpForUs(GW, CFG.gw_ip));
    }

    fn reply_frame(proto: u8, l4: &[u8]) -> ([u8; 256], usize) {
        let mut f = [0u8; 256];
        let n = ipv4_frame(&mut f, MAC, GW, CFG.gw_ip, CFG.guest_ip, proto, l4);
        (f, n)
    }

    #[test]
    fn icmp_reply_checked() {
        let req = icmp_echo(8, 9, 1, &payload(1));
        let rep = icmp_echo(0, 9, 1, &payload(1));
        let v = |f: &[u8]| classify(f, Stage::Icmp, &CFG, MAC, GW, &req, &[0; PAYLOAD]);
        let (f, n) = reply_frame(1, &rep);
        assert_eq!(v(&f[..n]), Verdict::Match);
        // A different TTL and identification (checksum redone) are the responder's.
        let mut g = f;
        g[14 + 8] = 255;
        g[14 + 4] = 0x12;
        g[24..26].fill(0);
        let c = inet_csum(0, &g[14..34]);
        g[24..26].copy_from_slice(&c.to_be_bytes());
        assert_eq!(v(&g[..n]), Verdict::Match);
        // One payload byte, the sequence, the header checksum, a fragment offset.
        for at in [n - 1, 34 + 7, 24, 21] {
            let mut b = f;
            b[at] ^= 0x40;
            assert_eq!(v(&b[..n]), Verdict::Wrong, "byte {at}");
        }
        assert_eq!(v(&f[..n - 1]), Verdict::Wrong, "truncated");
        // From elsewhere: not ours.
        let mut b = f;
        b[14 + 15] ^= 1;
        assert_eq!(v(&b[..n]), Verdict::Stray);
    }

    #[test]
    fn udp_reply_checked() {
        let data = payload(7);
        let rep = udp_datagram(CFG.gw_ip, CFG.guest_ip, 7, UDP_SRC_PORT, &data);
        let v = |f: &[u8]| classify(f, Stage::Udp, &CFG, MAC, GW, &[], &data);
        let (f, n) = reply_frame(17, &rep);
        assert_eq!(v(&f[..n]), Verdict::Match);
        let mut no_ck = f;
        no_ck[34 + 6..34 + 8].fill(0);
        assert_eq!(v(&no_ck[..n]), Verdict::Match, "no UDP checksum is allowed");
        for at in [n - 1, 34, 34 + 3, 34 + 6] {
            let mut b = f;
            b[at] ^= 0x01;
            assert_eq!(v(&b[..n]), Verdict::Wrong, "byte {at}");
        }
        assert_eq!(
            v(&reply_frame(1, &icmp_echo(0, 1, 1, &data)).0[..n]),
            Verdict::Stray
        );
    }
}
