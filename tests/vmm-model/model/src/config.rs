//! Run parameters, passed by the runner as QEMU's `-append` string, which QEMU
//! stores in /chosen/bootargs of the DTB it hands to the model.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Misbehave {
    None,
    /// IPA_STATE_SET: the host rejects every RIPAS change to RAM.
    RipasReject,
    /// IPA_STATE_SET: the host changes one granule per call.
    RipasOneGranule,
    /// The host destroys one RAM granule (RAM base + RAM/2) before the
    /// realm starts: its RIPAS is DESTROYED.
    RipasDestroyed,
    /// The DTB /memory claims more RAM than exists (beyond the IPA space).
    DtbMemBeyondIpa,
    /// The DTB is placed on top of the kernel image.
    DtbOverlapImage,
    /// The DTB has no /chosen/stdout-path and no /aliases (as Firecracker's):
    /// the guest must find its console another way.
    NoStdoutPath,
    /// The Image is loaded at the RAM base, ignoring its header's text_offset (as
    /// `lkvm -f` does): the guest runs 1 MiB below where it was linked.
    LoadAtRamBase,
    /// RSI_VERSION: the RMM implements only RSI 2.0 (refuses every 1.x request).
    Rsi2Only,
}

/// Whose machine the model presents to the guest.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Profile {
    /// kvmtool's arm64 layout (the default).
    Kvmtool,
    /// Firecracker up to v1.8 (v1.7.0's tree in the fixtures): RAM at 0x80000000,
    /// one 16550 at 0x40000000, no stdout-path, `earlycon=` appended to the boot
    /// args, no PCI.
    Fc17,
    /// Firecracker v1.9 and later (v1.16.1's tree): RAM from 0x80200000 (the 2 MiB
    /// below hold vmgenid and vmclock), the Image at 0x80200000 + text_offset, the
    /// 16550 at 0x40002000.
    Fc116,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InitRipas {
    All,
    Image,
}

pub struct Config {
    pub realm: bool,
    pub profile: Profile,
    /// Emulate TF-RMM rmm-spec-v1.0-rel0 instead of main where they differ
    /// (RSI_VERSION accepts only 1.0; REALM_CONFIG writes no 1.1 fields).
    pub rmm_rel0: bool,
    /// Emulate TF-RMM v0.9.0 (RMM 2.0) where it differs from main: the RIM is not
    /// extended by RMI_RTT_INIT_RIPAS and the token is a CMW collection (tag 907).
    pub rmm_v2: bool,
    /// Realm measurement algorithm (`--measurement-algo`).
    pub algo: crate::sha512::Algo,
    pub mem_mib: u64,
    pub cpus: usize,
    pub img_addr: u64,
    pub img_size: u64,
    pub ripas: InitRipas,
    pub misbehave: Misbehave,
    pub timeout_s: u64,
    pub ipa_bits: u32,
    cmdline: [u8; 2048],
    cmdline_len: usize,
    pub dump: [u8; 256],
    pub dump_len: usize,
    pub rpv: [u8; 64],
    /// Size of the virtio-blk disk in KiB (0: no virtio device).
    pub virtio_blk_kib: u64,
    /// The virtio-blk lies in its used ring (`vblkh=id|len`).
    pub virtio_blk_hostile: Option<crate::virtio::BlkHostile>,
    /// The virtio-net device, and how it misbehaves (None: no device).
    pub virtio_net: Option<crate::virtio_net::Hostile>,
    /// The virtio devices on the PCI bridge instead of virtio-mmio, and how the
    /// bridge misbehaves (None: virtio-mmio).
    pub virtio_pci: Option<crate::virtio_pci::Hostile>,
}

impl Config {
    /// Where RAM starts in the guest's device tree (and where the Image goes, plus
    /// its text_offset).
    pub fn ram_dt_base(&self) -> u64 {
        match self.profile {
            Profile::Fc116 => crate::layout::RAM_IPA + 0x20_0000,
            _ => crate::layout::RAM_IPA,
        }
    }

    /// The emulated 16550s: base and count. Firecracker creates its one UART
    /// only when the boot args have `console=` (none otherwise).
    pub fn uarts(&self) -> (u64, u64) {
        let fc_uart = self.cmdline().is_some_and(|c| c.contains("console="));
        match self.profile {
            Profile::Kvmtool => (crate::layout::UART_IPA, crate::layout::UART_COUNT),
            Profile::Fc17 => (0x4000_0000, fc_uart as u64),
            Profile::Fc116 => (0x4000_2000, fc_uart as u64),
        }
    }
}

fn parse_num(s: &str) -> Option<u64> {
    if let Some(h) = s.strip_prefix("0x") {
        u64::from_str_radix(h, 16).ok()
    } else {
        s.parse().ok()
    }
}

fn unhex(s: &str, out: &mut [u8]) -> Option<usize> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) || b.len() / 2 > out.len() {
        return None;
    }
    let d = |c: u8| (c as char).to_digit(16);
    for i in 0..b.len() / 2 {
        out[i] = (d(b[2 * i])? * 16 + d(b[2 * i + 1])?) as u8;
    }
    Some(b.len() / 2)
}

impl Config {
    pub fn parse(args: &str) -> Result<Config, &'static str> {
        let mut c = Config {
            realm: false,
            rmm_rel0: false,
            rmm_v2: false,
            algo: crate::sha512::Algo::Sha256,
            mem_mib: 64,
            cpus: 1,
            img_addr: 0,
            img_size: 0,
            ripas: InitRipas::All,
            misbehave: Misbehave::None,
            profile: Profile::Kvmtool,
            timeout_s: 0,
            ipa_bits: 0,
            cmdline: [0; 2048],
            cmdline_len: 0,
            dump: [0; 256],
            dump_len: 0,
            rpv: [0; 64],
            virtio_blk_kib: 0,
            virtio_blk_hostile: None,
            virtio_net: None,
            virtio_pci: None,
        };
        let mut have_cmdline = false;
        for tok in args.split(' ').filter(|t| !t.is_empty()) {
            let (k, v) = tok.split_once('=').ok_or("option without '='")?;
            match k {
                "mode" => {
                    c.realm = match v {
                        "normal" => false,
                        "realm" => true,
                        _ => return Err("mode must be normal or realm"),
                    }
                }
                "rmm" => {
                    (c.rmm_rel0, c.rmm_v2) = match v {
                        "main" => (false, false),
                        "rel0" => (true, false),
                        "v2" => (false, true),
                        _ => return Err("rmm must be main, rel0 or v2"),
                    }
                }
                "hash" => {
                    c.algo = match v {
                        "sha256" => crate::sha512::Algo::Sha256,
                        "sha512" => crate::sha512::Algo::Sha512,
                        _ => return Err("hash must be sha256 or sha512"),
                    }
                }
                "mem" => c.mem_mib = parse_num(v).ok_or("bad mem")?,
                "cpus" => c.cpus = parse_num(v).ok_or("bad cpus")? as usize,
                "img" => {
                    let (a, s) = v.split_once(':').ok_or("img=ADDR:SIZE")?;
                    c.img_addr = parse_num(a).ok_or("bad img addr")?;
                    c.img_size = parse_num(s).ok_or("bad img size")?;
                }
                "cmdline" => {
                    c.cmdline_len = unhex(v, &mut c.cmdline).ok_or("bad cmdline hex")?;
                    have_cmdline = true;
                }
                "dump" => c.dump_len = unhex(v, &mut c.dump).ok_or("bad dump path hex")?,
                "rpv" => {
                    unhex(v, &mut c.rpv).ok_or("bad rpv hex")?;
                }
                "ripas" => {
                    c.ripas = match v {
                        "all" => InitRipas::All,
                        "image" => InitRipas::Image,
                        _ => return Err("ripas must be all or image"),
                    }
                }
                "misbehave" => {
                    c.misbehave = match v {
                        "none" => Misbehave::None,
                        "ripas-reject" => Misbehave::RipasReject,
                        "ripas-one-granule" => Misbehave::RipasOneGranule,
                        "ripas-destroyed" => Misbehave::RipasDestroyed,
                        "dtb-mem-beyond-ipa" => Misbehave::DtbMemBeyondIpa,
                        "dtb-overlap-image" => Misbehave::DtbOverlapImage,
                        "no-stdout-path" => Misbehave::NoStdoutPath,
                        "load-at-ram-base" => Misbehave::LoadAtRamBase,
                        "rsi-2-only" => Misbehave::Rsi2Only,
                        _ => return Err("unknown misbehave"),
                    }
                }
                "profile" => {
                    c.profile = match v {
                        "kvmtool" => Profile::Kvmtool,
                        "firecracker-1.7" => Profile::Fc17,
                        "firecracker-1.16" => Profile::Fc116,
                        _ => return Err("unknown profile"),
                    }
                }
                "timeout" => c.timeout_s = parse_num(v).ok_or("bad timeout")?,
                "vblk" => c.virtio_blk_kib = parse_num(v).ok_or("bad vblk")?,
                "vblkh" => {
                    use crate::virtio::BlkHostile;
                    c.virtio_blk_hostile = Some(match v {
                        "id" => BlkHostile::Id,
                        "len" => BlkHostile::Len,
                        _ => return Err("unknown vblkh"),
                    })
                }
                "vnet" => {
                    use crate::virtio_net::Hostile;
                    c.virtio_net = Some(match v {
                        "on" => Hostile::None,
                        "len" => Hostile::Len,
                        "id" => Hostile::Id,
                        _ => return Err("unknown vnet"),
                    })
                }
                "vpci" => {
                    use crate::virtio_pci::Hostile;
                    c.virtio_pci = Some(match v {
                        "on" => Hostile::None,
                        "caploop" => Hostile::CapLoop,
                        "capbar" => Hostile::CapBar,
                        "bar-ram" => Hostile::BarRam,
                        _ => return Err("unknown vpci"),
                    })
                }
                "ipa" => c.ipa_bits = parse_num(v).ok_or("bad ipa")? as u32,
                _ => return Err("unknown option"),
            }
        }
        if !have_cmdline {
            c.cmdline_len = usize::MAX;
        }
        if !(16..=crate::layout::MAX_MEM_MIB).contains(&c.mem_mib) {
            return Err("mem out of range");
        }
        if c.cpus == 0 || c.cpus > crate::MAX_CPUS {
            return Err("cpus out of range");
        }
        if c.virtio_blk_kib > crate::virtio::MAX_KIB || !c.virtio_blk_kib.is_multiple_of(4) {
            return Err("vblk must be a multiple of 4 KiB, at most 16 MiB");
        }
        if c.virtio_blk_kib != 0 && c.profile != Profile::Kvmtool {
            return Err("vblk needs the kvmtool profile");
        }
        if c.virtio_blk_hostile.is_some() && c.virtio_blk_kib == 0 {
            return Err("vblkh needs vblk");
        }
        if c.virtio_net.is_some() && c.profile != Profile::Kvmtool {
            return Err("vnet needs the kvmtool profile");
        }
        if c.virtio_pci.is_some() && c.profile != Profile::Kvmtool {
            return Err("vpci needs the kvmtool profile");
        }
        if c.img_size == 0 {
            return Err("no image");
        }
        // IPA size as KVM computes it (max(32, fls(RAM end - 1))); a realm
        // adds the shared bit on top (kvmtool-cca).
        let end = crate::layout::RAM_IPA + c.mem_bytes() - 1;
        let fls = 64 - end.leading_zeros();
        let base_bits = fls.max(32);
        let want = if c.realm { base_bits + 1 } else { base_bits };
        if c.ipa_bits == 0 {
            c.ipa_bits = want;
        } else if c.ipa_bits < want || c.ipa_bits > 39 {
            return Err("ipa width too small for RAM or above 39");
        }
        Ok(c)
    }

    pub fn mem_bytes(&self) -> u64 {
        self.mem_mib << 20
    }

    pub fn cmdline(&self) -> Option<&str> {
        if self.cmdline_len == usize::MAX {
            None
        } else {
            core::str::from_utf8(&self.cmdline[..self.cmdline_len]).ok()
        }
    }

    pub fn dump_path(&self) -> Option<&[u8]> {
        if self.dump_len == 0 {
            None
        } else {
            Some(&self.dump[..self.dump_len])
        }
    }

    /// The unprotected-alias bit in realm mode.
    pub fn shared_bit(&self) -> u64 {
        if self.realm {
            1 << (self.ipa_bits - 1)
        } else {
            0
        }
    }
}
