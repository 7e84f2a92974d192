//! A device tree described by `arbitrary` input and written with `vm-fdt`, plus
//! what `bootinfo::parse` must report for it when it accepts it.
//!
//! Values are drawn mostly from plausible choices (RAM-relative addresses, small
//! page counts, the compatibles the platform knows) with a raw escape hatch each,
//! so most inputs get past the cross-checks and reach the interesting code.

use arbitrary::{Arbitrary, Unstructured};
use plat_kvm_arm::bootinfo::{ImageSegment, MAX_SEGMENTS};
use plat_kvm_arm::memregion::{MemRange, PAGE_SIZE, RegionFlags};
use vm_fdt::{FdtReserveEntry, FdtWriter};

/// `#address-cells` / `#size-cells` of a node.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum CellsSel {
    /// 2/2 (QEMU, kvmtool, Firecracker).
    TwoTwo,
    /// 1/1.
    OneOne,
    /// 2/1.
    TwoOne,
    /// 2/0 (unsupported).
    SizeZero,
    /// 3/2 (unsupported).
    Three,
    /// Anything 0..=3 each, or the properties left out (`None`: defaults 2/1).
    Raw(Option<(u8, u8)>),
}

impl CellsSel {
    /// The values written (`None`: properties absent).
    fn values(self) -> Option<(u32, u32)> {
        Some(match self {
            CellsSel::TwoTwo => (2, 2),
            CellsSel::OneOne => (1, 1),
            CellsSel::TwoOne => (2, 1),
            CellsSel::SizeZero => (2, 0),
            CellsSel::Three => (3, 2),
            CellsSel::Raw(v) => {
                let (a, s) = v?;
                (u32::from(a % 4), u32::from(s % 4))
            }
        })
    }

    /// The cells a reader uses (defaults 2/1 when absent).
    fn effective(self) -> (u32, u32) {
        self.values().unwrap_or((2, 1))
    }
}

/// Whether `c` is what `bootinfo` supports.
fn supported((a, s): (u32, u32)) -> bool {
    (1..=2).contains(&a) && (1..=2).contains(&s)
}

/// Encodes `v` in `n` big-endian cells (0 cells: nothing; 3+: zero-extended).
fn cells(v: u64, n: u32, out: &mut Vec<u32>) {
    match n {
        0 => {}
        1 => out.push(v as u32),
        _ => {
            out.extend(std::iter::repeat_n(0, n as usize - 2));
            out.extend([(v >> 32) as u32, v as u32]);
        }
    }
}

/// What a reader with `n` cells gets back from `v` written with `n` cells.
fn readback(v: u64, n: u32) -> u64 {
    if n == 1 { u64::from(v as u32) } else { v }
}

/// Start of a RAM bank.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Base {
    /// 2 GiB (kvmtool, Firecracker).
    Hi,
    /// 1 GiB (QEMU virt).
    Lo,
    /// 4 GiB.
    Above4g,
    /// Anything.
    Raw(u64),
}

/// Size of a RAM bank or reservation.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Size {
    /// A few pages (plus a sub-page remainder).
    Pages(u16, u8),
    /// 64 MiB.
    M64,
    /// 256 MiB.
    M256,
    /// 4 GiB.
    G4,
    /// Anything.
    Raw(u64),
}

impl Size {
    fn get(self) -> u64 {
        match self {
            Size::Pages(p, b) => u64::from(p) * PAGE_SIZE + u64::from(b) * 16,
            Size::M64 => 64 << 20,
            Size::M256 => 256 << 20,
            Size::G4 => 4 << 30,
            Size::Raw(v) => v,
        }
    }
}

/// An address, usually relative to the RAM banks or the usual MMIO area.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Addr {
    /// `page` pages into bank `bank`.
    Ram(u8, u16),
    /// `pages` pages below the end of bank `bank` (2 MiB below: 512).
    RamEnd(u8, u16),
    /// `page` pages into the 128 MiB-256 MiB MMIO area.
    Mmio(u16),
    /// Anything.
    Raw(u64),
}

impl Addr {
    fn get(self, banks: &[(u64, u64)]) -> u64 {
        let bank = |i: u8| banks.get(usize::from(i) % banks.len().max(1)).copied();
        match self {
            Addr::Ram(b, p) => bank(b).map_or(0, |(s, _)| s.wrapping_add(u64::from(p) * PAGE_SIZE)),
            Addr::RamEnd(b, p) => bank(b).map_or(0, |(s, l)| {
                s.wrapping_add(l).wrapping_sub(u64::from(p) * PAGE_SIZE)
            }),
            Addr::Mmio(p) => 0x0800_0000 + u64::from(p) * PAGE_SIZE,
            Addr::Raw(v) => v,
        }
    }
}

/// One more RAM bank.
#[derive(Arbitrary, Debug)]
pub struct Bank {
    /// Gap after the previous bank, in pages (or an absolute base).
    at: Result<u16, u64>,
    size: Size,
    /// In its own `/memory@...` node rather than another `reg` entry of the first.
    own_node: bool,
    /// That own node has `status = "disabled"`.
    disabled: bool,
}

/// A UART node.
#[derive(Arbitrary, Debug)]
pub struct Uart {
    /// 0: ns16550a, 1: ns16550, 2: arm,pl011 (+ arm,primecell), other: unknown.
    compat: u8,
    base: Addr,
    reg_shift: Option<u8>,
    reg_io_width: Option<u8>,
    clock: Option<u32>,
    disabled: bool,
}

/// `/chosen/stdout-path`.
#[derive(Arbitrary, Debug)]
pub enum Stdout {
    /// `/<uart name>`, optionally with `:115200n8`.
    Path(u8, bool),
    /// `/<uart name without unit address>`.
    NoUnit(u8),
    /// `serialN`, optionally with options.
    Alias(u8, bool),
    /// Anything.
    Raw(String),
}

/// `linux,initrd-start` / `-end`.
#[derive(Arbitrary, Debug)]
pub struct Initrd {
    start: Addr,
    len: Size,
    /// Start as 8 bytes (else 4).
    wide_start: bool,
    /// End as 8 bytes (else 4).
    wide_end: bool,
    /// Only one of the two properties (0: start only, 1: end only), else both.
    only: Option<bool>,
}

/// `/psci` `method`.
#[derive(Arbitrary, Debug)]
pub enum Method {
    /// "hvc".
    Hvc,
    /// "smc".
    Smc,
    /// Anything else.
    Bogus(String),
}

/// A GIC node.
#[derive(Arbitrary, Debug)]
pub struct Gic {
    v3: bool,
    dist: Addr,
    second: Addr,
    /// Only the first `reg` entry.
    one_reg: bool,
}

/// A bus with empty `ranges` (1:1) whose children's `reg` are device windows.
#[derive(Arbitrary, Debug)]
pub struct Bus {
    cells: CellsSel,
    children: Vec<(Addr, u16)>,
}

/// A PCI host bridge (`device_type = "pci"`) with CPU windows in `ranges`.
#[derive(Arbitrary, Debug)]
pub struct Pci {
    /// Child `#size-cells` (1 or 2 valid).
    size_cells: u8,
    windows: Vec<(Addr, Size)>,
}

/// An image segment.
#[derive(Arbitrary, Debug)]
pub struct Segment {
    /// Pages (plus one).
    pages: u8,
    /// 0: RX, 1: R, 2: RW, 3: RWX.
    flags: u8,
}

/// The whole tree, its placement and the image layout.
#[derive(Arbitrary, Debug)]
pub struct Spec {
    cells: CellsSel,
    base: Base,
    size: Size,
    banks: Vec<Bank>,
    memreserve: Vec<(Addr, Size)>,
    reserved_memory: Option<(CellsSel, Vec<(Addr, Size, bool)>)>,
    uarts: Vec<Uart>,
    /// `serialN` -> UART index (or a raw path).
    aliases: Vec<(u8, Result<u8, String>)>,
    stdout: Option<Stdout>,
    bootargs: Option<String>,
    initrd: Option<Initrd>,
    psci: Option<Method>,
    gic: Option<Gic>,
    bus: Option<Bus>,
    pci: Option<Pci>,
    cpus: u8,
    dtb_at: Addr,
    /// Image base: pages above bank 0's start plus 1 MiB, or anything.
    image_at: Result<u8, u64>,
    segments: Vec<Segment>,
}

/// What `parse` must report if it accepts the tree.
#[derive(Debug, Default)]
pub struct Expect {
    /// The root's cells are unsupported: `parse` must fail.
    pub must_fail: bool,
    /// Enabled RAM banks as a reader sees them (sorted by `parse`, not here).
    pub ram: Vec<(u64, u64)>,
    /// `Some(true)`: hvc, `Some(false)`: smc, `None`: no `/psci`. A bogus method
    /// sets `must_fail`.
    pub psci_hvc: Option<bool>,
    /// The initrd `[start, end)` if both properties were written.
    pub initrd: Option<(u64, u64)>,
    /// Bases of the enabled UARTs with a usable description.
    pub uart_bases: Vec<u64>,
    /// `/chosen/bootargs`.
    pub bootargs: Option<String>,
    /// `/cpus` children.
    pub cpus: usize,
}

/// A generated tree.
pub struct Built {
    /// The blob.
    pub blob: Vec<u8>,
    /// Where it lies.
    pub dtb_at: u64,
    /// The image layout.
    pub segments: Vec<ImageSegment>,
    /// The oracle.
    pub expect: Expect,
}

type W = FdtWriter;
type R<T> = Result<T, vm_fdt::Error>;

impl Spec {
    /// Draws a spec from raw bytes (any bytes give one).
    pub fn from_bytes(data: &[u8]) -> Option<Spec> {
        Spec::arbitrary_take_rest(Unstructured::new(data)).ok()
    }

    /// Writes the tree. `None` if vm-fdt refuses what was asked (e.g. an invalid
    /// name): such inputs say nothing about the parser.
    pub fn build(&self) -> Option<Built> {
        self.write().ok()
    }

    fn write(&self) -> R<Built> {
        let mut ex = Expect::default();
        let root_cells = self.cells.effective();
        ex.must_fail = !supported(root_cells);
        let (ac, sc) = root_cells;

        // RAM banks: bank 0, then each extra one after the previous (or absolute).
        let base0 = match self.base {
            Base::Hi => 0x8000_0000,
            Base::Lo => 0x4000_0000,
            Base::Above4g => 0x1_0000_0000,
            Base::Raw(v) => v,
        };
        let mut banks = vec![(base0, self.size.get(), true, false)];
        for b in self.banks.iter().take(6) {
            let (s, l, _, _) = *banks.last().unwrap();
            let start = match b.at {
                Ok(gap) => s.wrapping_add(l).wrapping_add(u64::from(gap) * PAGE_SIZE),
                Err(abs) => abs,
            };
            banks.push((start, b.size.get(), !b.own_node, b.disabled && b.own_node));
        }
        let plain: Vec<(u64, u64)> = banks.iter().map(|b| (b.0, b.1)).collect();
        for &(s, l, _, disabled) in &banks {
            if !disabled {
                ex.ram.push((readback(s, ac), readback(l, sc)));
            }
        }

        // /memreserve/: vm-fdt refuses overlapping or empty entries, so drop those.
        let mut rsv: Vec<FdtReserveEntry> = Vec::new();
        let mut taken: Vec<(u64, u64)> = Vec::new();
        for &(a, sz) in self.memreserve.iter().take(6) {
            let (a, l) = (a.get(&plain), sz.get());
            let Some(end) = a.checked_add(l) else {
                continue;
            };
            if l == 0 || taken.iter().any(|&(s, e)| a < e && s < end) {
                continue;
            }
            taken.push((a, end));
            rsv.push(FdtReserveEntry::new(a, l)?);
        }

        let mut w = W::new_with_mem_reserv(&rsv)?;
        let root = w.begin_node("")?;
        if let Some((a, s)) = self.cells.values() {
            w.property_u32("#address-cells", a)?;
            w.property_u32("#size-cells", s)?;
        }
        w.property_string("compatible", "linux,dummy-virt")?;

        // /chosen and /aliases come first, as QEMU writes them.
        let uart_names: Vec<String> = self
            .uarts
            .iter()
            .take(6)
            .map(|u| format!("uart@{:x}", u.base.get(&plain)))
            .collect();
        let uart_name = |i: u8| uart_names.get(usize::from(i) % uart_names.len().max(1));
        let chosen = w.begin_node("chosen")?;
        if let Some(b) = &self.bootargs {
            w.property_string("bootargs", b)?;
            ex.bootargs = Some(b.clone());
        }
        if let Some(s) = &self.stdout {
            let v = match s {
                Stdout::Path(i, opts) => {
                    uart_name(*i).map(|n| format!("/{n}{}", if *opts { ":115200n8" } else { "" }))
                }
                Stdout::NoUnit(_) => Some("/uart".into()),
                Stdout::Alias(i, opts) => {
                    Some(format!("serial{i}{}", if *opts { ":115200n8" } else { "" }))
                }
                Stdout::Raw(r) => Some(r.clone()),
            };
            if let Some(v) = v {
                w.property_string("stdout-path", &v)?;
            }
        }
        if let Some(i) = &self.initrd {
            let s = i.start.get(&plain);
            let e = s.wrapping_add(i.len.get());
            let put = |w: &mut W, name, v: u64, wide| {
                if wide {
                    w.property_u64(name, v)
                } else {
                    w.property_u32(name, v as u32)
                }
            };
            if i.only != Some(false) {
                put(&mut w, "linux,initrd-start", s, i.wide_start)?;
            }
            if i.only != Some(true) {
                put(&mut w, "linux,initrd-end", e, i.wide_end)?;
            }
            if i.only.is_none() {
                let rb = |v: u64, wide| if wide { v } else { u64::from(v as u32) };
                ex.initrd = Some((rb(s, i.wide_start), rb(e, i.wide_end)));
            }
        }
        w.end_node(chosen)?;
        let aliases = w.begin_node("aliases")?;
        for (n, t) in self.aliases.iter().take(6) {
            let v = match t {
                Ok(i) => uart_name(*i).map(|n| format!("/{n}")),
                Err(raw) => Some(raw.clone()),
            };
            if let Some(v) = v {
                w.property_string(&format!("serial{n}"), &v)?;
            }
        }
        w.end_node(aliases)?;

        // /cpus
        let cpus = w.begin_node("cpus")?;
        w.property_u32("#address-cells", 1)?;
        w.property_u32("#size-cells", 0)?;
        for c in 0..u32::from(self.cpus % 9) {
            let n = w.begin_node(&format!("cpu@{c}"))?;
            w.property_string("device_type", "cpu")?;
            w.property_string("compatible", "arm,arm-v8")?;
            w.property_u32("reg", c)?;
            w.end_node(n)?;
        }
        ex.cpus = usize::from(self.cpus % 9);
        w.end_node(cpus)?;

        // /memory: bank 0 and the banks sharing its node, then one node per other.
        let mut reg = Vec::new();
        for &(s, l, shared, _) in &banks {
            if shared {
                cells(s, ac, &mut reg);
                cells(l, sc, &mut reg);
            }
        }
        let m = w.begin_node(&format!("memory@{base0:x}"))?;
        w.property_string("device_type", "memory")?;
        w.property_array_u32("reg", &reg)?;
        w.end_node(m)?;
        for &(s, l, shared, disabled) in &banks {
            if !shared {
                let m = w.begin_node(&format!("memory@{s:x}"))?;
                w.property_string("device_type", "memory")?;
                if disabled {
                    w.property_string("status", "disabled")?;
                }
                let mut reg = Vec::new();
                cells(s, ac, &mut reg);
                cells(l, sc, &mut reg);
                w.property_array_u32("reg", &reg)?;
                w.end_node(m)?;
            }
        }

        // /reserved-memory
        if let Some((c, kids)) = &self.reserved_memory {
            let rm = w.begin_node("reserved-memory")?;
            let (a, s) = c.effective();
            if let Some((a, s)) = c.values() {
                w.property_u32("#address-cells", a)?;
                w.property_u32("#size-cells", s)?;
            }
            w.property_null("ranges")?;
            for (i, (at, sz, disabled)) in kids.iter().take(6).enumerate() {
                let n = w.begin_node(&format!("region@{i}"))?;
                let mut reg = Vec::new();
                cells(at.get(&plain), a, &mut reg);
                cells(sz.get(), s, &mut reg);
                w.property_array_u32("reg", &reg)?;
                if *disabled {
                    w.property_string("status", "disabled")?;
                }
                w.end_node(n)?;
            }
            w.end_node(rm)?;
        }

        // UARTs
        for (u, name) in self.uarts.iter().zip(&uart_names) {
            let base = u.base.get(&plain);
            let n = w.begin_node(name)?;
            match u.compat % 4 {
                0 => w.property_string("compatible", "ns16550a")?,
                1 => w.property_string("compatible", "ns16550")?,
                2 => w.property_string_list(
                    "compatible",
                    vec!["arm,pl011".into(), "arm,primecell".into()],
                )?,
                _ => w.property_string("compatible", "vendor,uart")?,
            }
            let mut reg = Vec::new();
            cells(base, ac, &mut reg);
            cells(0x1000, sc, &mut reg);
            w.property_array_u32("reg", &reg)?;
            if let Some(s) = u.reg_shift {
                w.property_u32("reg-shift", u32::from(s % 6))?;
            }
            if let Some(x) = u.reg_io_width {
                w.property_u32("reg-io-width", u32::from(x % 5))?;
            }
            if let Some(c) = u.clock {
                w.property_u32("clock-frequency", c)?;
            }
            if u.disabled {
                w.property_string("status", "disabled")?;
            }
            w.end_node(n)?;
            let usable = u.compat % 4 < 3
                && !u.disabled
                && u.reg_shift.is_none_or(|s| s % 6 <= 4)
                && u.reg_io_width.is_none_or(|x| matches!(x % 5, 1 | 4))
                && readback(base, ac).checked_add(0x1000).is_some();
            if usable {
                ex.uart_bases.push(readback(base, ac));
            }
        }

        // /psci
        if let Some(m) = &self.psci {
            let n = w.begin_node("psci")?;
            w.property_string_list(
                "compatible",
                vec!["arm,psci-1.0".into(), "arm,psci-0.2".into()],
            )?;
            let method = match m {
                Method::Hvc => "hvc",
                Method::Smc => "smc",
                Method::Bogus(s) => s.as_str(),
            };
            w.property_string("method", method)?;
            w.end_node(n)?;
            match method {
                "hvc" => ex.psci_hvc = Some(true),
                "smc" => ex.psci_hvc = Some(false),
                _ => ex.must_fail = true,
            }
        }

        // GIC
        if let Some(g) = &self.gic {
            let n = w.begin_node(&format!("intc@{:x}", g.dist.get(&plain)))?;
            let c = if g.v3 {
                "arm,gic-v3"
            } else {
                "arm,cortex-a15-gic"
            };
            w.property_string("compatible", c)?;
            w.property_null("interrupt-controller")?;
            let mut reg = Vec::new();
            cells(g.dist.get(&plain), ac, &mut reg);
            cells(0x1_0000, sc, &mut reg);
            if !g.one_reg {
                cells(g.second.get(&plain), ac, &mut reg);
                cells(0x2_0000, sc, &mut reg);
            }
            w.property_array_u32("reg", &reg)?;
            w.end_node(n)?;
        }

        // A simple-bus with 1:1 ranges.
        if let Some(b) = &self.bus {
            let n = w.begin_node("soc")?;
            w.property_string("compatible", "simple-bus")?;
            let (a, s) = b.cells.effective();
            if let Some((a, s)) = b.cells.values() {
                w.property_u32("#address-cells", a)?;
                w.property_u32("#size-cells", s)?;
            }
            w.property_null("ranges")?;
            for (i, (at, pages)) in b.children.iter().take(6).enumerate() {
                let c = w.begin_node(&format!("dev@{i}"))?;
                let mut reg = Vec::new();
                cells(at.get(&plain), a, &mut reg);
                cells(u64::from(*pages) * PAGE_SIZE + 0x100, s, &mut reg);
                w.property_array_u32("reg", &reg)?;
                w.end_node(c)?;
            }
            w.end_node(n)?;
        }

        // A PCI host bridge.
        if let Some(p) = &self.pci {
            let n = w.begin_node("pcie@10000000")?;
            w.property_string("compatible", "pci-host-ecam-generic")?;
            w.property_string("device_type", "pci")?;
            w.property_u32("#address-cells", 3)?;
            let cs = u32::from(p.size_cells % 3);
            w.property_u32("#size-cells", cs)?;
            let mut ranges = Vec::new();
            for &(at, sz) in p.windows.iter().take(4) {
                let a = at.get(&plain);
                ranges.extend([0x0200_0000, (a >> 32) as u32, a as u32]);
                cells(a, ac, &mut ranges);
                cells(sz.get(), cs, &mut ranges);
            }
            w.property_array_u32("ranges", &ranges)?;
            w.end_node(n)?;
        }

        w.end_node(root)?;
        let blob = w.finish()?;

        // Image: contiguous segments from its base.
        let mut at = match self.image_at {
            Ok(p) => base0.wrapping_add(0x10_0000 + u64::from(p) * PAGE_SIZE),
            Err(raw) => raw,
        };
        let mut segments = Vec::new();
        let default = [
            Segment {
                pages: 63,
                flags: 0,
            },
            Segment {
                pages: 31,
                flags: 1,
            },
            Segment {
                pages: 159,
                flags: 2,
            },
        ];
        let segs = if self.segments.is_empty() {
            &default[..]
        } else {
            &self.segments[..self.segments.len().min(MAX_SEGMENTS)]
        };
        for s in segs {
            let end = at.wrapping_add((u64::from(s.pages) + 1) * PAGE_SIZE);
            let flags = match s.flags % 4 {
                0 => RegionFlags::RX,
                1 => RegionFlags::READ,
                2 => RegionFlags::RW,
                _ => RegionFlags(7),
            };
            segments.push(ImageSegment {
                range: MemRange { start: at, end },
                flags,
            });
            at = end;
        }
        Ok(Built {
            blob,
            dtb_at: self.dtb_at.get(&plain),
            segments,
            expect: ex,
        })
    }
}
