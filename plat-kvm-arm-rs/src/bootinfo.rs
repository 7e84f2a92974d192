//! Boot information from the device tree: the role of Unikraft's
//! `ukplat_bootinfo_fdt_setup` (and of `_init_dtb_mem` before it), made total.
//!
//! [`parse`] turns the DTB a VMM passed in x0, plus where the image lies, into typed
//! memory regions, the command line, the console, the PSCI conduit, the GIC and the
//! device windows the boot page tables must map. It allocates nothing, never panics
//! and rejects whatever a confused or hostile host could hand over (the DTB is
//! untrusted in a realm) with a specific [`BootInfoError`].

use crate::console::{UartDesc, UartKind};
use crate::fdt::{self, Cells, Dt, DtError, Token};
use crate::memregion::{FixedList, MemRange, Region, RegionFlags, RegionKind, carve_free};
use crate::psci::Conduit;

/// Most RAM banks accepted (several `/memory` nodes and several `reg` entries).
pub const MAX_RAM_BANKS: usize = 16;
/// Most `/memreserve/` plus `/reserved-memory` entries accepted.
pub const MAX_RESERVED: usize = 16;
/// Most memory regions produced.
pub const MAX_REGIONS: usize = 64;
/// Most device windows collected for the boot page tables (after merging).
pub const MAX_DEVICES: usize = 32;
/// Most supported UART nodes remembered while looking for the console.
const MAX_UARTS: usize = 8;
/// Most `/aliases` entries remembered (only the one `stdout-path` names is used).
const MAX_ALIASES: usize = 16;
/// Most image segments.
pub const MAX_SEGMENTS: usize = 4;
/// Most device addresses [`device_addresses`] reports (`reg` entries and PCI
/// window addresses, before any merging).
pub const MAX_DEVICE_ADDRS: usize = 64;

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
    /// No usable `stdout-path`; the boot args named its address, as Linux reads
    /// them (`console=` or `earlycon=` `uart,mmio,<addr>`, `uart8250,mmio32,<addr>`,
    /// `pl011,<addr>`...): Firecracker appends `earlycon=uart,mmio,<addr>`.
    Bootargs,
    /// Neither named one; the first supported UART was taken (a guess).
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

impl BootInfo<'_> {
    /// Nothing found yet.
    pub fn empty() -> Self {
        BootInfo {
            regions: FixedList::new(),
            ram: FixedList::new(),
            devices: FixedList::new(),
            cmdline: None,
            console: None,
            psci: None,
            gic: None,
            dtb: MemRange::default(),
            initrd: None,
            cpu_count: 0,
        }
    }
}

fn range(base: u64, len: u64, src: Source) -> Result<MemRange, BootInfoError> {
    if len == 0 {
        return Err(BootInfoError::ZeroSized(src));
    }
    MemRange::from_base_len(base, len).ok_or(BootInfoError::Wraps(src))
}

/// Declares the properties a node is read for, as indices into [`Node::vals`], with
/// an accessor each.
macro_rules! props {
    ($($id:ident $get:ident $name:literal,)*) => {
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Clone, Copy)]
        #[repr(u8)]
        enum P { $($id,)* COUNT }

        impl P {
            /// The property `name` is, if we read it.
            fn of(name: &[u8]) -> Option<P> {
                match name {
                    $($name => Some(P::$id),)*
                    _ => None,
                }
            }
        }

        impl<'a> Node<'a> {
            /// Remembers the value of property `p`.
            fn record(&mut self, p: P, value: &'a [u8]) {
                self.vals[p as usize] = value;
                self.present |= 1 << p as u32;
            }

            $(
                fn $get(&self) -> Option<&'a [u8]> {
                    self.get(P::$id)
                }
            )*
        }
    };
}

props! {
    Compatible compatible b"compatible",
    Reg reg b"reg",
    Status status b"status",
    DeviceType device_type b"device_type",
    Ranges ranges b"ranges",
    Method method b"method",
    AddressCells address_cells b"#address-cells",
    SizeCells size_cells b"#size-cells",
    RegShift reg_shift b"reg-shift",
    RegIoWidth reg_io_width b"reg-io-width",
    ClockFrequency clock_frequency b"clock-frequency",
    Bootargs bootargs b"bootargs",
    StdoutPath stdout_path b"stdout-path",
    InitrdStart initrd_start b"linux,initrd-start",
    InitrdEnd initrd_end b"linux,initrd-end",
}

/// The properties of one node that matter here, gathered while its tokens stream by.
/// Starting a node only resets `present` (no copying or clearing of `vals`): the
/// boot path may run on a C library whose `memset` is a byte loop.
#[derive(Clone, Copy)]
struct Node<'a> {
    name: &'a [u8],
    /// Bit `p` set: `vals[p]` holds property `p`.
    present: u16,
    vals: [&'a [u8]; P::COUNT as usize],
    /// Whether the node was already handled (at its first child or its end).
    done: bool,
}

impl<'a> Node<'a> {
    const EMPTY: Node<'static> = Node {
        name: &[],
        present: 0,
        vals: [&[]; P::COUNT as usize],
        done: false,
    };

    fn start(&mut self, name: &'a [u8]) {
        self.name = name;
        self.present = 0;
        self.done = false;
    }

    fn get(&self, p: P) -> Option<&'a [u8]> {
        (self.present & (1 << p as u32) != 0).then(|| self.vals[p as usize])
    }

    fn enabled(&self) -> bool {
        fdt::status_enabled(self.status())
    }

    /// What the node is, from its `compatible` list, in one pass over it.
    fn kind(&self) -> Kind {
        let Some(v) = self.compatible() else {
            return Kind::Other;
        };
        // An unterminated list matches nothing (as `strlist_contains`).
        let Some((&0, list)) = v.split_last() else {
            return Kind::Other;
        };
        for c in list.split(|&b| b == 0) {
            let k = match c {
                b"arm,psci-1.0" | b"arm,psci-0.2" | b"arm,psci" => Kind::Psci,
                b"arm,gic-v3" => Kind::GicV3,
                b"arm,cortex-a15-gic" | b"arm,gic-400" | b"arm,cortex-a9-gic" => Kind::GicV2,
                b"ns16550a" | b"ns16550" => Kind::Uart(UartKind::Ns16550),
                b"arm,pl011" => Kind::Uart(UartKind::Pl011),
                _ => continue,
            };
            return k;
        }
        Kind::Other
    }

    fn is_memory(&self) -> bool {
        self.device_type() == Some(b"memory\0")
    }

    fn child_cells(&self) -> Result<Cells, DtError> {
        Cells::from_values(self.address_cells(), self.size_cells())
    }

    /// The node's `reg` entries laid out with the parent's `cells` (none if absent).
    fn regs(&self, cells: Cells) -> Result<Option<fdt::RegIter<'a>>, DtError> {
        self.reg().map(|v| fdt::reg(v, cells)).transpose()
    }
}

/// The device classes the platform itself drives or needs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Psci,
    GicV2,
    GicV3,
    Uart(UartKind),
    Other,
}

/// What a parent is to its children, for the grandchildren we read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Parent {
    /// Children are not looked at.
    Other,
    /// `/reserved-memory`: children's `reg` are reservations.
    Reserved(Cells),
    /// `/cpus`: children are CPUs.
    Cpus,
    /// A node with an empty `ranges` (1:1): children's `reg` are device windows.
    Identity(Cells),
}

/// Everything gathered in the single walk, before the cross-checks. RAM and
/// devices go straight into the caller's [`BootInfo`].
struct Walk<'a, 'b> {
    root_cells: Cells,
    ram: &'b mut FixedList<MemRange, MAX_RAM_BANKS>,
    reserved: FixedList<MemRange, MAX_RESERVED>,
    devices: &'b mut FixedList<MemRange, MAX_DEVICES>,
    uarts: FixedList<(&'a [u8], UartDesc), MAX_UARTS>,
    aliases: FixedList<(&'a [u8], &'a [u8]), MAX_ALIASES>,
    chosen: Option<Node<'a>>,
    psci: Option<Conduit>,
    gic: Option<GicDesc>,
    cpu_count: usize,
    /// Where each device address lies in the blob, for [`device_addresses`].
    addrs: Option<AddrSink<'b>>,
}

/// Where [`Walk`] records device addresses: the blob's start, and the list.
struct AddrSink<'b> {
    base: usize,
    out: &'b mut FixedList<DeviceAddr, MAX_DEVICE_ADDRS>,
}

impl<'a, 'b> Walk<'a, 'b> {
    fn new(
        ram: &'b mut FixedList<MemRange, MAX_RAM_BANKS>,
        devices: &'b mut FixedList<MemRange, MAX_DEVICES>,
    ) -> Self {
        Walk {
            root_cells: Cells::DEFAULT,
            ram,
            reserved: FixedList::new(),
            devices,
            uarts: FixedList::new(),
            aliases: FixedList::new(),
            chosen: None,
            psci: None,
            gic: None,
            cpu_count: 0,
            addrs: None,
        }
    }

    /// Records that cells `at..at + cells` of `v` (a value inside the blob) hold a
    /// device address (only when a sink is attached).
    fn note(&mut self, v: &[u8], at: usize, cells: usize) -> Result<(), BootInfoError> {
        let Some(sink) = self.addrs.as_mut() else {
            return Ok(());
        };
        let offset = (v.as_ptr() as usize - sink.base) + at * 4;
        sink.out
            .push(DeviceAddr {
                offset: offset as u32,
                cells: cells as u8,
            })
            .map_err(|_| BootInfoError::TooMany(Source::Device))
    }

    /// Every entry of a device's `reg` (laid out with the parent's `cells`): a
    /// device window, and a device address.
    fn device_regs(&mut self, v: Option<&'a [u8]>, cells: Cells) -> Result<(), BootInfoError> {
        let Some(v) = v else {
            return Ok(());
        };
        let stride = cells.address + cells.size;
        for (i, (b, l)) in fdt::reg(v, cells)?.enumerate() {
            self.device(range(b, l, Source::Device)?)?;
            self.note(v, i * stride, cells.address)?;
        }
        Ok(())
    }

    fn device(&mut self, r: MemRange) -> Result<(), BootInfoError> {
        // A window in the last page of the 64-bit space cannot be widened to whole
        // pages (the end would wrap): no real device lies there (found by fuzzing:
        // the widened window came out empty).
        let page = r.page_outer();
        if page.is_empty() {
            return Err(BootInfoError::Wraps(Source::Device));
        }
        self.devices
            .insert_merged(page)
            .map_err(|_| BootInfoError::TooMany(Source::Device))
    }

    /// A child of the root, complete with its properties. Returns what it is to its
    /// own children.
    fn root_child(&mut self, n: &Node<'a>) -> Result<Parent, BootInfoError> {
        let cells = self.root_cells;
        match n.name {
            b"chosen" => {
                self.chosen = Some(*n);
                return Ok(Parent::Other);
            }
            b"aliases" => return Ok(Parent::Other),
            b"cpus" => return Ok(Parent::Cpus),
            b"reserved-memory" => return Ok(Parent::Reserved(n.child_cells()?)),
            _ => {}
        }
        if !n.enabled() {
            return Ok(Parent::Other);
        }
        if n.is_memory() {
            if let Some(regs) = n.regs(cells)? {
                for (base, len) in regs {
                    self.ram
                        .push(range(base, len, Source::Memory)?)
                        .map_err(|_| BootInfoError::TooMany(Source::Memory))?;
                }
            }
            return Ok(Parent::Other);
        }
        let kind = n.kind();
        if self.psci.is_none() && kind == Kind::Psci {
            self.psci = match n.method().map(fdt::value_str).transpose()? {
                Some("hvc") => Some(Conduit::Hvc),
                Some("smc") => Some(Conduit::Smc),
                _ => return Err(BootInfoError::BadPsciMethod),
            };
        }
        if self.gic.is_none() {
            self.gic = gic(n, kind, cells)?;
        }
        if let Kind::Uart(uk) = kind
            && let Some(u) = uart_desc(n, uk, cells)
        {
            // More UARTs than we remember are simply not candidates.
            let _ = self.uarts.push((n.name, u));
        }
        self.device_regs(n.reg(), cells)?;
        if n.device_type() == Some(b"pci\0") {
            pci_windows(n, cells, self)?;
        } else if n.ranges().is_some_and(|v| v.is_empty()) {
            return Ok(Parent::Identity(n.child_cells()?));
        }
        Ok(Parent::Other)
    }

    fn grandchild(&mut self, parent: Parent, n: &Node<'a>) -> Result<(), BootInfoError> {
        match parent {
            Parent::Other => {}
            Parent::Cpus => {
                if n.device_type() == Some(b"cpu\0") {
                    self.cpu_count += 1;
                }
            }
            Parent::Reserved(cells) if n.enabled() => {
                // Dynamic reservations (size without reg) are the OS's to place: none here.
                if let Some(regs) = n.regs(cells)? {
                    for (base, len) in regs {
                        let r = range(base, len, Source::ReservedMemory)?;
                        self.reserved
                            .push(r)
                            .map_err(|_| BootInfoError::TooMany(Source::ReservedMemory))?;
                    }
                }
            }
            Parent::Identity(cells) if n.enabled() => self.device_regs(n.reg(), cells)?,
            Parent::Reserved(_) | Parent::Identity(_) => {}
        }
        Ok(())
    }
}

/// Walks the structure block once, handing each node of depth 1-3 over as soon as
/// its properties are known (at its first child or at its end).
fn walk<'a>(dt: &Dt<'a>, w: &mut Walk<'a, '_>) -> Result<(), BootInfoError> {
    // Open nodes at depths 1, 2, 3 (deeper ones are skipped), and what the depth-2
    // node is to its children.
    let mut open: [Node<'a>; 3] = [Node::EMPTY; 3];
    let mut parent = Parent::Other;
    let mut depth = 0;
    let finish = |w: &mut Walk<'a, '_>,
                  open: &mut [Node<'a>; 3],
                  parent: &mut Parent,
                  d: usize|
     -> Result<(), BootInfoError> {
        let n = &mut open[d - 1];
        if n.done {
            return Ok(());
        }
        n.done = true;
        let n = &open[d - 1];
        match d {
            1 => w.root_cells = n.child_cells()?,
            2 => *parent = w.root_child(n)?,
            _ => w.grandchild(*parent, n)?,
        }
        Ok(())
    };
    let mut in_aliases = false;
    const PROP_CACHE: usize = 32;
    let mut prop_cache: [(u64, Option<P>); PROP_CACHE] = [(0, None); PROP_CACHE];
    for t in dt.tokens() {
        match t? {
            Token::Begin { name, depth: d } => {
                if (2..=4).contains(&d) {
                    finish(w, &mut open, &mut parent, d - 1)?;
                }
                if d <= 3 {
                    open[d - 1].start(name);
                }
                if d == 2 {
                    parent = Parent::Other;
                }
                in_aliases = d == 2 && name == b"aliases";
                depth = d;
            }
            Token::Prop {
                name,
                nameoff,
                value,
            } => {
                if in_aliases && depth == 2 {
                    let _ = w.aliases.push((name, value));
                } else if depth <= 3 {
                    // Which property a name is, cached by its string offset.
                    // Keys are `nameoff + 1` in u64 (0: empty), so no offset wraps.
                    let slot = nameoff as usize % PROP_CACHE;
                    let key = u64::from(nameoff) + 1;
                    let p = if prop_cache[slot].0 == key {
                        prop_cache[slot].1
                    } else {
                        let p = P::of(name);
                        prop_cache[slot] = (key, p);
                        p
                    };
                    if let Some(p) = p {
                        open[depth - 1].record(p, value);
                    }
                }
            }
            Token::End => {
                if depth <= 3 {
                    finish(w, &mut open, &mut parent, depth)?;
                }
                in_aliases = false;
                depth -= 1;
            }
        }
    }
    Ok(())
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
    let mut bi = BootInfo::empty();
    parse_into(dtb, dtb_addr, image, &mut bi)?;
    Ok(bi)
}

/// [`parse`], filling `bi` in place: the boot path keeps the (few KiB) result where
/// it is built rather than moving it, which matters on a C library whose `memcpy`
/// is a byte loop. On error `bi` holds a partial result and must not be used.
pub fn parse_into<'a>(
    dtb: &'a [u8],
    dtb_addr: u64,
    image: &ImageLayout<'_>,
    bi: &mut BootInfo<'a>,
) -> Result<(), BootInfoError> {
    parse_into_noting(dtb, dtb_addr, image, bi, None)
}

/// [`parse_into`], also listing into `addrs` what [`device_addresses`] would, from
/// the same walk (an Arm CCA realm's boot then walks the tree once).
pub fn parse_into_noting<'a>(
    dtb: &'a [u8],
    dtb_addr: u64,
    image: &ImageLayout<'_>,
    bi: &mut BootInfo<'a>,
    addrs: Option<&mut FixedList<DeviceAddr, MAX_DEVICE_ADDRS>>,
) -> Result<(), BootInfoError> {
    let dt = Dt::open(dtb)?;
    if image.segments.is_empty()
        || image.segments.len() > MAX_SEGMENTS
        || image.segments.iter().any(|s| s.range.is_empty())
    {
        return Err(BootInfoError::BadImageLayout);
    }
    let img = image.extent().ok_or(BootInfoError::BadImageLayout)?;
    bi.ram = FixedList::new();
    bi.devices = FixedList::new();
    let mut w = Walk::new(&mut bi.ram, &mut bi.devices);
    w.addrs = addrs.map(|out| AddrSink {
        base: dtb.as_ptr() as usize,
        out,
    });
    walk(&dt, &mut w)?;

    let dtb_range = range(dtb_addr, dt.total_size() as u64, Source::Dtb)?;
    if dtb_range.overlaps(&img) {
        return Err(BootInfoError::DtbOverlapsImage);
    }
    let ram = &mut *w.ram;
    if ram.is_empty() {
        return Err(BootInfoError::NoMemory);
    }
    ram.sort_by_key(|r| r.start);
    if ram.as_slice().windows(2).any(|p| p[0].overlaps(&p[1])) {
        return Err(BootInfoError::OverlappingRam);
    }
    if !ram.iter().any(|r| r.contains_range(&img)) {
        return Err(BootInfoError::ImageOutsideRam);
    }
    if w.devices
        .iter()
        .any(|d| ram.iter().any(|r| r.page_outer().overlaps(&d)))
    {
        return Err(BootInfoError::DeviceOverlapsRam);
    }

    let initrd = match &w.chosen {
        Some(c) => parse_initrd(c)?,
        None => None,
    };
    if initrd.is_some_and(|r| r.overlaps(&img)) {
        return Err(BootInfoError::OverlapsImage(Source::Initrd));
    }
    let mut reserved = FixedList::<MemRange, MAX_RESERVED>::new();
    for e in dt.mem_reservations() {
        let (base, len) = e?;
        reserved
            .push(range(base, len, Source::MemReserve)?)
            .map_err(|_| BootInfoError::TooMany(Source::MemReserve))?;
    }
    for r in w.reserved.iter() {
        reserved
            .push(r)
            .map_err(|_| BootInfoError::TooMany(Source::ReservedMemory))?;
    }
    for (i, r) in reserved.iter().enumerate() {
        if r.overlaps(&img) {
            let src = if i < reserved.len() - w.reserved.len() {
                Source::MemReserve
            } else {
                Source::ReservedMemory
            };
            return Err(BootInfoError::OverlapsImage(src));
        }
    }

    // Everything that is not free, then the free remainder of each bank.
    let regions = &mut bi.regions;
    *regions = FixedList::new();
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
    let mut add = |range, kind, flags| regions.push(Region { range, kind, flags });
    add(dtb_range, RegionKind::DeviceTree, RegionFlags::READ).map_err(too_many)?;
    if let Some(r) = initrd {
        add(r, RegionKind::Initrd, RegionFlags::READ).map_err(too_many)?;
    }
    for r in reserved.iter() {
        add(r, RegionKind::Reserved, RegionFlags::default()).map_err(too_many)?;
    }
    let mut holes = FixedList::<MemRange, MAX_REGIONS>::new();
    for r in regions.iter() {
        holes.push(r.range).map_err(too_many)?;
    }
    for bank in w.ram.iter() {
        carve_free(bank, holes.iter(), regions).map_err(too_many)?;
    }
    regions.sort_by_key(|r| (r.range.start, r.kind));

    bi.cmdline = match w.chosen.as_ref().and_then(|c| c.bootargs()) {
        Some(v) => Some(fdt::value_str(v)?),
        None => None,
    };
    bi.console = w
        .chosen
        .as_ref()
        .and_then(|c| console_from_stdout_path(c, &w))
        .map(|u| (u, ConsoleSource::StdoutPath))
        .or_else(|| {
            bi.cmdline
                .and_then(|args| console_from_bootargs(args, &w))
                .map(|u| (u, ConsoleSource::Bootargs))
        })
        .or_else(|| w.uarts.get(0).map(|(_, u)| (u, ConsoleSource::FirstUart)));
    bi.psci = w.psci;
    bi.gic = w.gic;
    bi.dtb = dtb_range;
    bi.initrd = initrd;
    bi.cpu_count = w.cpu_count;
    Ok(())
}

/// Where a device tree names a device address: `cells` big-endian 32-bit cells,
/// `offset` bytes into the blob (a `reg` entry's address, or the CPU-side address
/// of a PCI `ranges` entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceAddr {
    /// Byte offset of the first cell from the start of the blob.
    pub offset: u32,
    /// Number of cells (1 or 2).
    pub cells: u8,
}

/// Every device address [`parse`] reads windows from, located in the blob, in
/// blob order: what an Arm CCA realm rewrites to the unprotected alias so that an
/// OS taking addresses from the device tree reaches its devices (see
/// [`crate::realm::alias_patches`]). Only for a blob [`parse`] accepted; the
/// classification is the same walk's.
pub fn device_addresses(
    dtb: &[u8],
    out: &mut FixedList<DeviceAddr, MAX_DEVICE_ADDRS>,
) -> Result<(), BootInfoError> {
    let dt = Dt::open(dtb)?;
    let mut ram = FixedList::new();
    let mut devices = FixedList::new();
    let mut w = Walk::new(&mut ram, &mut devices);
    w.addrs = Some(AddrSink {
        base: dtb.as_ptr() as usize,
        out,
    });
    walk(&dt, &mut w)
}

/// The PSCI conduit alone, from a token walk that stops at `/psci`: what the Arm CCA
/// realm probe needs to decide whether an SMC is safe, before anything else of the
/// tree is looked at (and before `.bss` may be touched). `None` if the tree is
/// malformed, has no PSCI node, or names another method.
pub fn psci_conduit(dtb: &[u8]) -> Option<Conduit> {
    let dt = Dt::open(dtb).ok()?;
    let mut node = Node::EMPTY;
    let mut depth = 0;
    let conduit = |n: &Node<'_>| match n.method().map(fdt::value_str) {
        Some(Ok("hvc")) => Some(Conduit::Hvc),
        Some(Ok("smc")) => Some(Conduit::Smc),
        _ => None,
    };
    for t in dt.tokens() {
        match t.ok()? {
            Token::Begin { name, depth: d } => {
                // A root child's properties are complete at its first child.
                if depth == 2 && node.kind() == Kind::Psci {
                    return conduit(&node);
                }
                if d == 2 {
                    node.start(name);
                }
                depth = d;
            }
            Token::Prop { name, value, .. } => {
                if depth == 2
                    && let Some(p) = P::of(name)
                {
                    node.record(p, value);
                }
            }
            Token::End => {
                if depth == 2 && node.kind() == Kind::Psci {
                    return conduit(&node);
                }
                depth -= 1;
            }
        }
    }
    None
}

fn parse_initrd(chosen: &Node<'_>) -> Result<Option<MemRange>, BootInfoError> {
    let start = chosen
        .initrd_start()
        .map(fdt::value_u32_or_u64)
        .transpose()?;
    let end = chosen.initrd_end().map(fdt::value_u32_or_u64).transpose()?;
    match (start, end) {
        (None, None) => Ok(None),
        (Some(s), Some(e)) if s < e => Ok(Some(MemRange { start: s, end: e })),
        (Some(s), Some(e)) if s == e => Err(BootInfoError::ZeroSized(Source::Initrd)),
        _ => Err(BootInfoError::BadInitrd),
    }
}

/// A UART description from a root child; `None` when it is not a usable supported UART.
fn uart_desc(n: &Node<'_>, kind: UartKind, cells: Cells) -> Option<UartDesc> {
    let (base, size) = n.regs(cells).ok()??.next()?;
    MemRange::from_base_len(base, size)?;
    let reg_shift = n
        .reg_shift()
        .map(fdt::value_u32)
        .transpose()
        .ok()?
        .unwrap_or(0);
    let reg_io_width = n
        .reg_io_width()
        .map(fdt::value_u32)
        .transpose()
        .ok()?
        .unwrap_or(1);
    // A shift beyond 4 or an odd width is not a 16550 we know how to drive.
    if reg_shift > 4 || !matches!(reg_io_width, 1 | 4) {
        return None;
    }
    Some(UartDesc {
        kind,
        base,
        size,
        reg_shift: reg_shift as u8,
        reg_io_width: reg_io_width as u8,
        clock_hz: n.clock_frequency().and_then(|v| fdt::value_u32(v).ok()),
    })
}

/// A console named by the boot args the way Linux reads them: the last `console=`
/// with an MMIO address, else the last `earlycon=`. Forms: `<name>,<addr>` or
/// `<name>,<iotype>,<addr>[,<options>]`, with name `uart`, `uart8250`, `ns16550`,
/// `ns16550a` (a 16550) or `pl011`, iotype `mmio`/`mmio32`/..., addr hex (`0x`) or
/// decimal. Only a UART the device tree describes at that address is taken (its
/// node gives the register layout, and only device-tree windows are mapped).
fn console_from_bootargs(args: &str, w: &Walk<'_, '_>) -> Option<UartDesc> {
    let spec = |key: &str| {
        args.split_ascii_whitespace()
            .rev()
            .filter_map(|t| t.strip_prefix(key))
            .find_map(parse_console_spec)
    };
    let (kind, base) = spec("console=").or_else(|| spec("earlycon="))?;
    w.uarts
        .iter()
        .map(|(_, u)| u)
        .find(|u| u.base == base && u.kind == kind)
}

/// `(kind, address)` of a `console=`/`earlycon=` value such as `uart,mmio,0x40002000`.
fn parse_console_spec(v: &str) -> Option<(UartKind, u64)> {
    let mut parts = v.split(',');
    let kind = match parts.next()? {
        "uart" | "uart8250" | "ns16550" | "ns16550a" => UartKind::Ns16550,
        "pl011" => UartKind::Pl011,
        _ => return None,
    };
    let mut addr = parts.next()?;
    if addr.starts_with("mmio") || addr == "io" {
        addr = parts.next()?;
    }
    let n = match addr.strip_prefix("0x").or_else(|| addr.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => addr.parse().ok()?,
    };
    Some((kind, n))
}

/// Resolves `/chosen/stdout-path` ("serial0", "serial0:115200n8" or "/path@addr").
/// Only root children are accepted: deeper nodes would need `ranges` translation.
fn console_from_stdout_path(chosen: &Node<'_>, w: &Walk<'_, '_>) -> Option<UartDesc> {
    let spec = fdt::value_str(chosen.stdout_path()?).ok()?;
    let spec = spec.split(':').next()?;
    let path = if spec.starts_with('/') {
        spec
    } else {
        let (_, v) = w.aliases.iter().find(|(k, _)| *k == spec.as_bytes())?;
        fdt::value_str(v).ok()?
    };
    let path = path.split(':').next()?;
    // Alias values are arbitrary UTF-8: test with `strip_prefix`, never slice by index.
    let rest = path.strip_prefix('/')?;
    if rest.is_empty() || rest.contains('/') {
        return None;
    }
    // A path without a unit address matches a node name with one (as libfdt does).
    w.uarts
        .iter()
        .find(|(name, _)| {
            *name == rest.as_bytes()
                || (!rest.contains('@')
                    && name.split(|&b| b == b'@').next() == Some(rest.as_bytes()))
        })
        .map(|(_, u)| u)
}

fn gic(n: &Node<'_>, kind: Kind, cells: Cells) -> Result<Option<GicDesc>, BootInfoError> {
    let v3 = match kind {
        Kind::GicV3 => true,
        Kind::GicV2 => false,
        _ => return Ok(None),
    };
    let Some(mut regs) = n.regs(cells)? else {
        return Ok(None);
    };
    let mut next = || {
        regs.next()
            .map(|(b, l)| range(b, l, Source::Device))
            .transpose()
    };
    let (Some(a), Some(b)) = (next()?, next()?) else {
        return Ok(None);
    };
    Ok(Some(if v3 {
        GicDesc::V3 { dist: a, redist: b }
    } else {
        GicDesc::V2 { dist: a, cpu: b }
    }))
}

/// The CPU-side windows of a PCI host bridge's `ranges` (3 child address cells).
fn pci_windows(n: &Node<'_>, parent: Cells, w: &mut Walk<'_, '_>) -> Result<(), BootInfoError> {
    let Some(v) = n.ranges() else {
        return Ok(());
    };
    // PCI child addresses are 3 cells (phys.hi flags, then 64 bits); sizes 1 or 2.
    if n.address_cells().map(fdt::value_u32).transpose()? != Some(3) {
        return Err(DtError::UnsupportedCells.into());
    }
    let child_size = n.size_cells().map(fdt::value_u32).transpose()?.unwrap_or(2) as usize;
    if !(1..=2).contains(&child_size) {
        return Err(DtError::UnsupportedCells.into());
    }
    let entry = (3 + parent.address + child_size) * 4;
    if !v.len().is_multiple_of(entry) {
        return Err(DtError::BadPropertyLength.into());
    }
    for (i, e) in v.chunks_exact(entry).enumerate() {
        let cpu = fdt::read_cells(e, 3, parent.address).ok_or(DtError::BadPropertyLength)?;
        let len =
            fdt::read_cells(e, 3 + parent.address, child_size).ok_or(DtError::BadPropertyLength)?;
        w.device(range(cpu, len, Source::Device)?)?;
        w.note(v, i * entry / 4 + 3, parent.address)?;
    }
    Ok(())
}
