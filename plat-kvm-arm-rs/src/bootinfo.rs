//! Boot information from the device tree: the role of Unikraft's
//! `ukplat_bootinfo_fdt_setup` (and of `_init_dtb_mem` before it), made total.
//!
//! [`parse`] turns the DTB a VMM passed in x0, plus where the image lies, into typed
//! memory regions, the command line, the console, the PSCI conduit, the GIC and the
//! device windows the boot page tables must map. It allocates nothing, never panics
//! and rejects whatever a confused or hostile host could hand over (the DTB is
//! untrusted in a realm) with a specific [`BootInfoError`].

use crate::console::{UartDesc, UartKind};
use crate::fdt::{self, Cells, Dt, DtError, DtNode};
use crate::memregion::{FixedList, MemRange, Region, RegionFlags, RegionKind, carve_free};
use crate::psci::Conduit;
use dtoolkit::Node;

/// Most RAM banks accepted (several `/memory` nodes and several `reg` entries).
pub const MAX_RAM_BANKS: usize = 16;
/// Most `/memreserve/` plus `/reserved-memory` entries accepted.
pub const MAX_RESERVED: usize = 16;
/// Most memory regions produced.
pub const MAX_REGIONS: usize = 64;
/// Most device windows collected for the boot page tables.
pub const MAX_DEVICES: usize = 32;
/// Most image segments.
pub const MAX_SEGMENTS: usize = 4;

/// One loaded part of the image (text, rodata, data + bss + boot stack + tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSegment {
    /// Where it lies.
    pub range: MemRange,
    /// Its permissions (what the boot page tables will enforce).
    pub flags: RegionFlags,
}

/// Where the running image lies, from the linker's section symbols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLayout<'a> {
    /// The segments, in any order; together they are the image.
    pub segments: &'a [ImageSegment],
}

impl ImageLayout<'_> {
    /// The smallest range covering every segment.
    pub fn extent(&self) -> Option<MemRange> {
        let start = self.segments.iter().map(|s| s.range.start).min()?;
        let end = self.segments.iter().map(|s| s.range.end).max()?;
        Some(MemRange { start, end })
    }
}

/// Which part of the DTB a bad range came from (for the error message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A `/memory` node's `reg`.
    Memory,
    /// A `/memreserve/` entry.
    MemReserve,
    /// A `/reserved-memory` child's `reg`.
    ReservedMemory,
    /// `/chosen` `linux,initrd-start`/`-end`.
    Initrd,
    /// A device node's `reg`.
    Device,
    /// The DTB itself (x0 + `totalsize`).
    Dtb,
    /// The image layout the caller passed.
    Image,
}

impl Source {
    const fn as_str(self) -> &'static str {
        match self {
            Source::Memory => "/memory reg",
            Source::MemReserve => "/memreserve/",
            Source::ReservedMemory => "/reserved-memory",
            Source::Initrd => "/chosen initrd",
            Source::Device => "device reg",
            Source::Dtb => "device tree blob",
            Source::Image => "image layout",
        }
    }
}

/// Why boot information could not be derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootInfoError {
    /// The blob itself is malformed.
    Dt(DtError),
    /// No enabled `device_type = "memory"` node with a `reg`.
    NoMemory,
    /// A range of zero bytes.
    ZeroSized(Source),
    /// A range whose end overflows 64 bits.
    Wraps(Source),
    /// Two RAM ranges overlap.
    OverlappingRam,
    /// More entries than the fixed capacity (the blob is unusual or hostile).
    TooMany(Source),
    /// The image does not lie entirely inside one RAM range.
    ImageOutsideRam,
    /// The DTB overlaps the running image.
    DtbOverlapsImage,
    /// `linux,initrd-start` > `linux,initrd-end`, or only one of them.
    BadInitrd,
    /// A reserved range or the initrd overlaps the running image.
    OverlapsImage(Source),
    /// `/psci` `method` is neither "hvc" nor "smc".
    BadPsciMethod,
    /// A device window overlaps RAM: mapping it as a device would break the RAM
    /// (or, in a realm, expose protected memory through the alias).
    DeviceOverlapsRam,
    /// The caller's image layout is empty or has more than [`MAX_SEGMENTS`] segments.
    BadImageLayout,
}

impl From<DtError> for BootInfoError {
    fn from(e: DtError) -> Self {
        BootInfoError::Dt(e)
    }
}

impl core::fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BootInfoError::Dt(e) => write!(f, "invalid device tree: {}", e.as_str()),
            BootInfoError::NoMemory => f.write_str("device tree has no /memory node"),
            BootInfoError::ZeroSized(s) => write!(f, "zero-sized range in {}", s.as_str()),
            BootInfoError::Wraps(s) => {
                write!(f, "range wraps the address space in {}", s.as_str())
            }
            BootInfoError::OverlappingRam => f.write_str("/memory ranges overlap"),
            BootInfoError::TooMany(s) => write!(f, "too many entries in {}", s.as_str()),
            BootInfoError::ImageOutsideRam => f.write_str("image is not inside RAM"),
            BootInfoError::DtbOverlapsImage => f.write_str("device tree overlaps the image"),
            BootInfoError::BadInitrd => f.write_str("invalid initrd range in /chosen"),
            BootInfoError::OverlapsImage(s) => write!(f, "{} overlaps the image", s.as_str()),
            BootInfoError::BadPsciMethod => f.write_str("/psci method is not hvc or smc"),
            BootInfoError::DeviceOverlapsRam => f.write_str("a device window overlaps RAM"),
            BootInfoError::BadImageLayout => f.write_str("invalid image layout"),
        }
    }
}

/// How the console was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleSource {
    /// `/chosen/stdout-path` (through `/aliases` if needed) named it.
    StdoutPath,
    /// `stdout-path` was absent or unusable; the first supported UART was taken.
    FirstUart,
}

/// The interrupt controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GicDesc {
    /// GICv2 (`arm,cortex-a15-gic`, `arm,gic-400`): distributor and CPU interface.
    V2 {
        /// Distributor window.
        dist: MemRange,
        /// CPU interface window.
        cpu: MemRange,
    },
    /// GICv3 (`arm,gic-v3`): distributor and the (first) redistributor region.
    V3 {
        /// Distributor window.
        dist: MemRange,
        /// Redistributor window.
        redist: MemRange,
    },
}

/// Everything the platform needs from the device tree.
#[derive(Debug, Clone)]
pub struct BootInfo<'a> {
    /// Sorted, non-overlapping regions: FREE around everything else.
    pub regions: FixedList<Region, MAX_REGIONS>,
    /// The RAM banks, sorted.
    pub ram: FixedList<MemRange, MAX_RAM_BANKS>,
    /// Device windows (every enabled device node's `reg`, PCI windows), widened to
    /// pages, sorted and merged.
    pub devices: FixedList<MemRange, MAX_DEVICES>,
    /// `/chosen/bootargs`.
    pub cmdline: Option<&'a str>,
    /// The console UART and how it was found.
    pub console: Option<(UartDesc, ConsoleSource)>,
    /// The PSCI conduit from `/psci` `method`.
    pub psci: Option<Conduit>,
    /// The interrupt controller.
    pub gic: Option<GicDesc>,
    /// Where the DTB lies.
    pub dtb: MemRange,
    /// The initrd, if `/chosen` names one.
    pub initrd: Option<MemRange>,
    /// Number of `/cpus` nodes with `device_type = "cpu"`.
    pub cpu_count: usize,
}

fn range(base: u64, len: u64, src: Source) -> Result<MemRange, BootInfoError> {
    if len == 0 {
        return Err(BootInfoError::ZeroSized(src));
    }
    MemRange::from_base_len(base, len).ok_or(BootInfoError::Wraps(src))
}

fn is_memory_node(node: &DtNode<'_>) -> bool {
    fdt::prop(node, "device_type").is_some_and(|v| v == b"memory\0")
}

/// Derives the boot information.
///
/// `dtb` must start at the blob (it may run past `totalsize`); `dtb_addr` is the
/// address it was found at (x0); `image` is where the running image lies.
pub fn parse<'a>(
    dtb: &'a [u8],
    dtb_addr: u64,
    image: &ImageLayout<'_>,
) -> Result<BootInfo<'a>, BootInfoError> {
    let dt = Dt::open(dtb)?;
    let root = dt.root();
    let root_cells = Cells::of(&root)?;

    if image.segments.is_empty() || image.segments.len() > MAX_SEGMENTS {
        return Err(BootInfoError::BadImageLayout);
    }
    for s in image.segments {
        if s.range.is_empty() {
            return Err(BootInfoError::BadImageLayout);
        }
    }
    let img = image.extent().ok_or(BootInfoError::BadImageLayout)?;
    let dtb_range = range(dtb_addr, dt.total_size() as u64, Source::Dtb)?;
    if dtb_range.overlaps(&img) {
        return Err(BootInfoError::DtbOverlapsImage);
    }

    let ram = collect_ram(&root, root_cells)?;
    if !ram.iter().any(|r| r.contains_range(&img)) {
        return Err(BootInfoError::ImageOutsideRam);
    }

    let chosen = dt.find("/chosen");
    let initrd = match &chosen {
        Some(c) => parse_initrd(c)?,
        None => None,
    };
    if initrd.is_some_and(|r| r.overlaps(&img)) {
        return Err(BootInfoError::OverlapsImage(Source::Initrd));
    }
    let reserved = collect_reserved(&dt, &img)?;

    // Everything that is not free, then the free remainder of each bank.
    let mut regions = FixedList::<Region, MAX_REGIONS>::new();
    let too_many = |_| BootInfoError::TooMany(Source::Memory);
    for s in image.segments {
        regions
            .push(Region {
                range: s.range,
                kind: RegionKind::Kernel,
                flags: s.flags,
            })
            .map_err(too_many)?;
    }
    regions
        .push(Region {
            range: dtb_range,
            kind: RegionKind::DeviceTree,
            flags: RegionFlags::READ,
        })
        .map_err(too_many)?;
    if let Some(r) = initrd {
        regions
            .push(Region {
                range: r,
                kind: RegionKind::Initrd,
                flags: RegionFlags::READ,
            })
            .map_err(too_many)?;
    }
    for r in reserved.iter() {
        regions
            .push(Region {
                range: r,
                kind: RegionKind::Reserved,
                flags: RegionFlags::default(),
            })
            .map_err(too_many)?;
    }
    let holes_end = regions.len();
    for bank in ram.iter() {
        let holes = (0..holes_end).filter_map(|i| regions.get(i).map(|r| r.range));
        // Holes is cloned per bank by carve_free; collect first to avoid borrowing `regions`.
        let mut tmp = FixedList::<MemRange, MAX_REGIONS>::new();
        for h in holes {
            tmp.push(h).map_err(too_many)?;
        }
        carve_free(bank, tmp.iter(), &mut regions).map_err(too_many)?;
    }
    regions.sort_by_key(|r| (r.range.start, r.kind));

    let console = chosen
        .as_ref()
        .and_then(|c| console_from_stdout_path(&dt, c, root_cells))
        .map(|u| (u, ConsoleSource::StdoutPath))
        .or_else(|| first_uart(&root, root_cells).map(|u| (u, ConsoleSource::FirstUart)));
    let cmdline = match &chosen {
        Some(c) => fdt::prop_str(c, "bootargs")?,
        None => None,
    };

    let devices = collect_devices(&root, root_cells)?;
    if devices
        .iter()
        .any(|d| ram.iter().any(|r| r.page_outer().overlaps(&d)))
    {
        return Err(BootInfoError::DeviceOverlapsRam);
    }

    Ok(BootInfo {
        regions,
        ram,
        devices,
        cmdline,
        console,
        psci: parse_psci(&root)?,
        gic: parse_gic(&root, root_cells)?,
        dtb: dtb_range,
        initrd,
        cpu_count: dt.find("/cpus").map_or(0, |c| {
            c.children()
                .filter(|n| fdt::prop(n, "device_type") == Some(b"cpu\0"))
                .count()
        }),
    })
}

fn collect_ram(
    root: &DtNode<'_>,
    cells: Cells,
) -> Result<FixedList<MemRange, MAX_RAM_BANKS>, BootInfoError> {
    let mut ram = FixedList::<MemRange, MAX_RAM_BANKS>::new();
    for node in root.children() {
        if !is_memory_node(&node) || !fdt::is_enabled(&node) {
            continue;
        }
        let Some(regs) = fdt::reg(&node, cells)? else {
            continue;
        };
        for (base, len) in regs {
            let r = range(base, len, Source::Memory)?;
            ram.push(r)
                .map_err(|_| BootInfoError::TooMany(Source::Memory))?;
        }
    }
    if ram.is_empty() {
        return Err(BootInfoError::NoMemory);
    }
    ram.sort_by_key(|r| r.start);
    for i in 1..ram.len() {
        if let (Some(a), Some(b)) = (ram.get(i - 1), ram.get(i))
            && a.overlaps(&b)
        {
            return Err(BootInfoError::OverlappingRam);
        }
    }
    Ok(ram)
}

fn parse_initrd(chosen: &DtNode<'_>) -> Result<Option<MemRange>, BootInfoError> {
    let start = fdt::prop_u32_or_u64(chosen, "linux,initrd-start")?;
    let end = fdt::prop_u32_or_u64(chosen, "linux,initrd-end")?;
    match (start, end) {
        (None, None) => Ok(None),
        (Some(s), Some(e)) if s < e => Ok(Some(MemRange { start: s, end: e })),
        (Some(s), Some(e)) if s == e => Err(BootInfoError::ZeroSized(Source::Initrd)),
        _ => Err(BootInfoError::BadInitrd),
    }
}

fn collect_reserved(
    dt: &Dt<'_>,
    img: &MemRange,
) -> Result<FixedList<MemRange, MAX_RESERVED>, BootInfoError> {
    let mut out = FixedList::<MemRange, MAX_RESERVED>::new();
    let mut add = |base, len, src| -> Result<(), BootInfoError> {
        let r = range(base, len, src)?;
        if r.overlaps(img) {
            return Err(BootInfoError::OverlapsImage(src));
        }
        out.push(r).map_err(|_| BootInfoError::TooMany(src))
    };
    for (base, len) in dt.mem_reservations() {
        add(base, len, Source::MemReserve)?;
    }
    if let Some(rm) = dt.find("/reserved-memory") {
        let cells = Cells::of(&rm)?;
        for child in rm.children() {
            if !fdt::is_enabled(&child) {
                continue;
            }
            // Dynamic reservations (size without reg) are the OS's to place: none here.
            if let Some(regs) = fdt::reg(&child, cells)? {
                for (base, len) in regs {
                    add(base, len, Source::ReservedMemory)?;
                }
            }
        }
    }
    Ok(out)
}

fn uart_kind(node: &DtNode<'_>) -> Option<UartKind> {
    if fdt::is_compatible(node, "ns16550a") || fdt::is_compatible(node, "ns16550") {
        Some(UartKind::Ns16550)
    } else if fdt::is_compatible(node, "arm,pl011") {
        Some(UartKind::Pl011)
    } else {
        None
    }
}

/// A UART description from a node whose parent gives `cells`; `None` when the node
/// is not a usable supported UART.
fn uart_desc(node: &DtNode<'_>, cells: Cells) -> Option<UartDesc> {
    let kind = uart_kind(node)?;
    if !fdt::is_enabled(node) {
        return None;
    }
    let (base, size) = fdt::reg(node, cells).ok()??.next()?;
    MemRange::from_base_len(base, size)?;
    let reg_shift = fdt::prop_u32(node, "reg-shift").ok()?.unwrap_or(0);
    let reg_io_width = fdt::prop_u32(node, "reg-io-width").ok()?.unwrap_or(1);
    // Registers must fit the window; a shift beyond 4 or an odd width is not a 16550 we know.
    if reg_shift > 4 || !matches!(reg_io_width, 1 | 4) {
        return None;
    }
    Some(UartDesc {
        kind,
        base,
        size,
        reg_shift: reg_shift as u8,
        reg_io_width: reg_io_width as u8,
        clock_hz: fdt::prop_u32(node, "clock-frequency").ok().flatten(),
    })
}

/// Resolves `/chosen/stdout-path` ("serial0", "serial0:115200n8" or "/path@addr").
/// Only root children are accepted: deeper nodes would need `ranges` translation.
fn console_from_stdout_path(dt: &Dt<'_>, chosen: &DtNode<'_>, cells: Cells) -> Option<UartDesc> {
    let spec = fdt::prop_str(chosen, "stdout-path").ok()??;
    let spec = spec.split(':').next()?;
    let path = if spec.starts_with('/') {
        spec
    } else {
        let aliases = dt.find("/aliases")?;
        fdt::prop_str(&aliases, spec).ok()??
    };
    let path = path.split(':').next()?;
    // Alias values are arbitrary UTF-8: test with `strip_prefix`, never slice by index.
    let rest = path.strip_prefix('/')?;
    if rest.is_empty() || rest.contains('/') {
        return None;
    }
    uart_desc(&dt.find(path)?, cells)
}

fn first_uart(root: &DtNode<'_>, cells: Cells) -> Option<UartDesc> {
    root.children().find_map(|n| uart_desc(&n, cells))
}

fn parse_psci(root: &DtNode<'_>) -> Result<Option<Conduit>, BootInfoError> {
    let Some(node) = root.children().find(|n| {
        fdt::is_compatible(n, "arm,psci-1.0")
            || fdt::is_compatible(n, "arm,psci-0.2")
            || fdt::is_compatible(n, "arm,psci")
    }) else {
        return Ok(None);
    };
    match fdt::prop_str(&node, "method")? {
        Some("hvc") => Ok(Some(Conduit::Hvc)),
        Some("smc") => Ok(Some(Conduit::Smc)),
        _ => Err(BootInfoError::BadPsciMethod),
    }
}

fn parse_gic(root: &DtNode<'_>, cells: Cells) -> Result<Option<GicDesc>, BootInfoError> {
    for node in root.children() {
        let v3 = fdt::is_compatible(&node, "arm,gic-v3");
        let v2 = ["arm,cortex-a15-gic", "arm,gic-400", "arm,cortex-a9-gic"]
            .iter()
            .any(|c| fdt::is_compatible(&node, c));
        if !(v2 || v3) || !fdt::is_enabled(&node) {
            continue;
        }
        let Some(mut regs) = fdt::reg(&node, cells)? else {
            continue;
        };
        let mut next = || -> Result<Option<MemRange>, BootInfoError> {
            regs.next()
                .map(|(b, l)| range(b, l, Source::Device))
                .transpose()
        };
        let (Some(a), Some(b)) = (next()?, next()?) else {
            continue;
        };
        return Ok(Some(if v3 {
            GicDesc::V3 { dist: a, redist: b }
        } else {
            GicDesc::V2 { dist: a, cpu: b }
        }));
    }
    Ok(None)
}

/// Every window a driver may touch: `reg` of enabled root-level device nodes and of
/// their children when the parent maps 1:1 (empty `ranges`), plus PCI host windows.
fn collect_devices(
    root: &DtNode<'_>,
    cells: Cells,
) -> Result<FixedList<MemRange, MAX_DEVICES>, BootInfoError> {
    let mut out = FixedList::<MemRange, MAX_DEVICES>::new();
    let mut add = |r: MemRange| {
        out.insert_merged(r.page_outer())
            .map_err(|_| BootInfoError::TooMany(Source::Device))
    };
    for node in root.children() {
        let name = node.name_without_address();
        if is_memory_node(&node)
            || !fdt::is_enabled(&node)
            || matches!(
                name,
                "reserved-memory" | "chosen" | "aliases" | "cpus" | "memory"
            )
        {
            continue;
        }
        if let Some(regs) = fdt::reg(&node, cells)? {
            for (b, l) in regs {
                add(range(b, l, Source::Device)?)?;
            }
        }
        if fdt::prop(&node, "device_type") == Some(b"pci\0") {
            for r in pci_windows(&node, cells)?.iter() {
                add(r)?;
            }
        } else if fdt::prop(&node, "ranges").is_some_and(|v| v.is_empty()) {
            let child_cells = Cells::of(&node)?;
            for child in node.children() {
                if !fdt::is_enabled(&child) {
                    continue;
                }
                if let Some(regs) = fdt::reg(&child, child_cells)? {
                    for (b, l) in regs {
                        add(range(b, l, Source::Device)?)?;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The CPU-side windows of a PCI host bridge's `ranges` (3 child address cells).
fn pci_windows(node: &DtNode<'_>, parent: Cells) -> Result<FixedList<MemRange, 8>, BootInfoError> {
    let mut out = FixedList::<MemRange, 8>::new();
    let Some(v) = fdt::prop(node, "ranges") else {
        return Ok(out);
    };
    // PCI child addresses are 3 cells (phys.hi flags, then 64 bits); sizes 1 or 2.
    if fdt::prop_u32(node, "#address-cells")? != Some(3) {
        return Err(DtError::UnsupportedCells.into());
    }
    let child_size = fdt::prop_u32(node, "#size-cells")?.unwrap_or(2) as usize;
    if !(1..=2).contains(&child_size) {
        return Err(DtError::UnsupportedCells.into());
    }
    let entry = (3 + parent.address + child_size) * 4;
    if v.len() % entry != 0 {
        return Err(DtError::BadPropertyLength.into());
    }
    for e in v.chunks_exact(entry) {
        let cell = |i: usize| {
            u64::from(u32::from_be_bytes([
                e[i * 4],
                e[i * 4 + 1],
                e[i * 4 + 2],
                e[i * 4 + 3],
            ]))
        };
        let num = |at: usize, n: usize| {
            if n == 1 {
                cell(at)
            } else {
                (cell(at) << 32) | cell(at + 1)
            }
        };
        let cpu = num(3, parent.address);
        let len = num(3 + parent.address, child_size);
        out.push(range(cpu, len, Source::Device)?)
            .map_err(|_| BootInfoError::TooMany(Source::Device))?;
    }
    Ok(out)
}
