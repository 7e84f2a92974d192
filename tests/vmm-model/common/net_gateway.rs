//! The gateway behind the test virtio-net devices of the machine model
//! (`model/src/virtio_net.rs`) and of `tools/rmm-launcher` (included by
//! `#[path]`): kvmtool's user-mode network defaults, 192.168.33.1 with MAC
//! 02:01:01:01:01:01, answering ARP for itself, ICMP echo requests to itself
//! and UDP datagrams to its port 7 (echoed). Everything else is dropped.
//!
//! The input is a frame the guest sent, so every length and checksum is
//! checked before it is used; a frame that does not parse gets no answer.

/// Largest Ethernet frame without the FCS (1500-byte MTU).
pub const FRAME_MAX: usize = 1514;

/// The gateway's addresses (kvmtool's user-mode defaults) and the guest MAC.
pub const GW_IP: [u8; 4] = [192, 168, 33, 1];
pub const GW_MAC: [u8; 6] = [0x02, 0x01, 0x01, 0x01, 0x01, 0x01];
pub const GUEST_MAC: [u8; 6] = [0x02, 0x15, 0x15, 0x15, 0x15, 0x15];
/// The UDP port the gateway echoes.
pub const UDP_ECHO_PORT: u16 = 7;

fn be16(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([b[o], b[o + 1]])
}

/// The Internet checksum's folded one's-complement sum of `data`, from `sum`.
fn csum_add(mut sum: u32, data: &[u8]) -> u32 {
    for c in data.chunks(2) {
        sum += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

fn csum(sum: u32, data: &[u8]) -> u16 {
    !(csum_add(sum, data) as u16)
}

/// The gateway's answer to `f` (an Ethernet frame), written to `out`; its length.
pub fn respond(f: &[u8], out: &mut [u8; FRAME_MAX]) -> Option<usize> {
    if f.len() < 14 {
        return None;
    }
    out[0..6].copy_from_slice(&f[6..12]);
    out[6..12].copy_from_slice(&GW_MAC);
    match be16(f, 12) {
        0x0806 => {
            let a = f.get(14..42)?;
            // Ethernet/IPv4 request for the gateway's address.
            if a[0..8] != [0, 1, 8, 0, 6, 4, 0, 1] || a[24..28] != GW_IP {
                return None;
            }
            out[12..14].copy_from_slice(&[8, 6]);
            out[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
            out[22..28].copy_from_slice(&GW_MAC);
            out[28..32].copy_from_slice(&GW_IP);
            out[32..42].copy_from_slice(&a[8..18]); // the asker's MAC and IP
            Some(42)
        }
        0x0800 => {
            let ip = &f[14..];
            if ip.len() < 20 || ip[0] != 0x45 || ip[16..20] != GW_IP {
                return None;
            }
            let tot = be16(ip, 2) as usize;
            if tot < 20 || tot > ip.len() || be16(ip, 6) & 0x3fff != 0 || csum(0, &ip[..20]) != 0 {
                return None;
            }
            let (proto, src, body) = (ip[9], [ip[12], ip[13], ip[14], ip[15]], &ip[20..tot]);
            let rlen = 14 + tot;
            out[12..14].copy_from_slice(&[8, 0]);
            let o = &mut out[14..rlen];
            o[..20].fill(0);
            o[0] = 0x45;
            o[2..4].copy_from_slice(&(tot as u16).to_be_bytes());
            o[8] = 64;
            o[9] = proto;
            o[12..16].copy_from_slice(&GW_IP);
            o[16..20].copy_from_slice(&src);
            let c = csum(0, &o[..20]);
            o[10..12].copy_from_slice(&c.to_be_bytes());
            let b = &mut o[20..];
            match proto {
                1 => {
                    if body.len() < 8 || body[0] != 8 || body[1] != 0 || csum(0, body) != 0 {
                        return None;
                    }
                    b.copy_from_slice(body);
                    b[0] = 0;
                    b[2..4].fill(0);
                    let c = csum(0, b);
                    b[2..4].copy_from_slice(&c.to_be_bytes());
                }
                17 => {
                    let ulen = body.get(4..6).map(|_| be16(body, 4) as usize)?;
                    if ulen < 8 || ulen != body.len() || be16(body, 2) != UDP_ECHO_PORT {
                        return None;
                    }
                    let pseudo = |s: &[u8; 4], d: &[u8; 4]| {
                        let mut p = [0u8; 12];
                        p[..4].copy_from_slice(s);
                        p[4..8].copy_from_slice(d);
                        p[9] = 17;
                        p[10..12].copy_from_slice(&(ulen as u16).to_be_bytes());
                        csum_add(0, &p)
                    };
                    if be16(body, 6) != 0 && csum(pseudo(&src, &GW_IP), body) != 0 {
                        return None;
                    }
                    b.copy_from_slice(body);
                    b[0..2].copy_from_slice(&UDP_ECHO_PORT.to_be_bytes());
                    b[2..4].copy_from_slice(&body[0..2]);
                    b[6..8].fill(0);
                    let c = match csum(pseudo(&GW_IP, &src), b) {
                        0 => 0xffff,
                        c => c,
                    };
                    b[6..8].copy_from_slice(&c.to_be_bytes());
                }
                _ => return None,
            }
            Some(rlen)
        }
        _ => None,
    }
}
