//! virtio-pci behind a generic ECAM host bridge (`pci-host-ecam-generic`:
//! kvmtool's default virtio transport on arm64, QEMU virt's PCIe), through
//! `virtio-drivers`' `PciTransport`.
//!
//! - [`find_host`]: the bridge in the device tree: its ECAM window, bus range and
//!   memory windows (`ranges`, PCI bus address to CPU address).
//! - [`probe`]: finds a virtio function of a given type, gives its memory BARs
//!   addresses where the host left them unassigned (QEMU without firmware) or
//!   outside the bridge's windows, enables memory decoding and bus mastering, and
//!   builds the transport.
//!
//! The host emulates the ECAM, so in a realm everything read from it is hostile
//! input. Three things bound what a lying host can do:
//! - [`CountedCam`]: every configuration read is counted, and past a budget the
//!   probe stops with one line, so a capability list that loops (or changes
//!   between two walks) cannot hang the boot;
//! - our own walk of the capabilities before the crate's: each virtio structure
//!   must lie inside its BAR (the crate adds offset and length in 32 bits);
//! - [`bus_to_cpu`] (the `Hal`'s `mmio_phys_to_virt`): a BAR region the crate is
//!   about to use must lie inside one of the bridge's windows, which the boot map
//!   maps as device memory (at the unprotected alias in a realm), else the platform
//!   stops with one line. Realm memory is never reached through a BAR.

use crate::fdt::{self, Cells, Dt, DtError, Token};
use core::cell::Cell;
use spin::Mutex;
use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::pci::bus::{
    BarInfo, Cam, Command, ConfigurationAccess, DeviceFunction, MemoryBarType, MmioCam, PciRoot,
};
use virtio_drivers::transport::pci::{PciTransport, virtio_device_type};

/// Most memory windows of a bridge we keep (QEMU virt has two, kvmtool one).
pub const MAX_WINDOWS: usize = 4;
/// Configuration-space reads one probe may make: enumerating a full bus with
/// a few functions and walking their capabilities takes a few hundred.
pub const READ_BUDGET: u32 = 16384;
const CAP_VENDOR: u8 = 9;
/// A configuration space's capabilities fit between 0x40 and 0x100, 4 bytes each.
const MAX_CAPS: usize = 48;

/// One memory window of a bridge: PCI bus addresses `[pci, pci + len)` appear
/// to the CPU at `[cpu, cpu + len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    /// Bus address of the window.
    pub pci: u64,
    /// CPU address (in a realm, the unprotected alias once the DT is aliased).
    pub cpu: u64,
    /// Bytes.
    pub len: u64,
    /// A 64-bit memory space (else 32-bit).
    pub mem64: bool,
}

/// A generic ECAM host bridge from the device tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciHost {
    /// CPU address and size of the ECAM window.
    pub ecam: u64,
    /// Bytes of the ECAM window (1 MiB per bus).
    pub ecam_len: u64,
    /// First and last bus number (`bus-range`).
    pub buses: (u8, u8),
    windows: [Window; MAX_WINDOWS],
    n_windows: usize,
}

impl PciHost {
    /// The bridge's memory windows.
    pub fn windows(&self) -> &[Window] {
        &self.windows[..self.n_windows]
    }

    /// The buses to scan: the root bus only. Functions behind a PCI-to-PCI
    /// bridge would need bus numbers given to the bridge first, which neither
    /// kvmtool (one bus) nor QEMU without firmware does; scanning all 256 of
    /// QEMU's buses would cost 8,192 configuration reads (each a VM exit) to find
    /// nothing. The root bus lies inside the ECAM window (it is at least 1 MiB).
    fn bus_iter(&self) -> impl Iterator<Item = u8> {
        core::iter::once(self.buses.0)
    }
}

/// Why [`probe`] found no usable device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PciError {
    /// No function of the wanted type.
    NotFound,
    /// The host answered more configuration reads than a probe needs (a
    /// looping capability list, or values that change between reads).
    ReadBudget,
    /// A capability list longer than configuration space can hold.
    CapabilityLoop,
    /// A virtio structure outside its BAR, or in an I/O or absent BAR.
    BadCapability,
    /// A BAR the bridge's windows cannot hold.
    NoBarSpace,
    /// `virtio-drivers` refused the function.
    Transport,
    /// A bridge whose ECAM window cannot be addressed from bus 0 (its first
    /// bus's offset would lie below address 0).
    BadBridge,
}

/// The first enabled `pci-host-ecam-generic` node directly under the root, or
/// `None`. I/O windows are ignored; a malformed node is an error.
///
/// # Errors
///
/// A malformed tree, `reg`, `bus-range` or `ranges`.
pub fn find_host(dt: &Dt<'_>) -> Result<Option<PciHost>, DtError> {
    let mut root = (None, None);
    let mut depth = 0usize;
    #[derive(Default)]
    struct Node<'a> {
        compat: bool,
        status: Option<&'a [u8]>,
        reg: Option<&'a [u8]>,
        bus_range: Option<&'a [u8]>,
        ranges: Option<&'a [u8]>,
        size_cells: Option<&'a [u8]>,
    }
    let mut n = Node::default();
    for t in dt.tokens() {
        match t? {
            Token::Begin { depth: d, .. } => {
                depth = d;
                if d == 2 {
                    n = Node::default();
                }
            }
            Token::Prop { name, value, .. } => match (depth, name) {
                (1, b"#address-cells") => root.0 = Some(value),
                (1, b"#size-cells") => root.1 = Some(value),
                (2, b"compatible") => {
                    n.compat = fdt::strlist_contains(value, "pci-host-ecam-generic")
                }
                (2, b"status") => n.status = Some(value),
                (2, b"reg") => n.reg = Some(value),
                (2, b"bus-range") => n.bus_range = Some(value),
                (2, b"ranges") => n.ranges = Some(value),
                (2, b"#size-cells") => n.size_cells = Some(value),
                _ => {}
            },
            Token::End => {
                if depth == 2 && n.compat && fdt::status_enabled(n.status) {
                    let cells = Cells::from_values(root.0, root.1)?;
                    return host_from(&n.reg, n.bus_range, n.ranges, n.size_cells, cells).map(Some);
                }
                depth = depth.saturating_sub(1);
            }
        }
    }
    Ok(None)
}

fn host_from(
    reg: &Option<&[u8]>,
    bus_range: Option<&[u8]>,
    ranges: Option<&[u8]>,
    size_cells: Option<&[u8]>,
    parent: Cells,
) -> Result<PciHost, DtError> {
    let (ecam, ecam_len) = fdt::reg(reg.ok_or(DtError::BadPropertyLength)?, parent)?
        .next()
        .ok_or(DtError::BadPropertyLength)?;
    if ecam_len < 1 << 20 || ecam.checked_add(ecam_len).is_none() {
        return Err(DtError::BadPropertyLength);
    }
    let buses = match bus_range {
        None => (0, 255),
        Some(v) => {
            let (a, b) = (
                fdt::read_cells(v, 0, 1).ok_or(DtError::BadPropertyLength)?,
                fdt::read_cells(v, 1, 1).ok_or(DtError::BadPropertyLength)?,
            );
            if v.len() != 8 || a > b || b > 255 {
                return Err(DtError::BadPropertyLength);
            }
            (a as u8, b as u8)
        }
    };
    let child_size = size_cells.map(fdt::value_u32).transpose()?.unwrap_or(2) as usize;
    if !(1..=2).contains(&child_size) {
        return Err(DtError::UnsupportedCells);
    }
    let mut host = PciHost {
        ecam,
        ecam_len,
        buses,
        windows: [Window::default(); MAX_WINDOWS],
        n_windows: 0,
    };
    let v = ranges.unwrap_or(&[]);
    let entry = (3 + parent.address + child_size) * 4;
    if !v.len().is_multiple_of(entry) {
        return Err(DtError::BadPropertyLength);
    }
    for e in v.chunks_exact(entry) {
        let hi = fdt::read_cells(e, 0, 1).ok_or(DtError::BadPropertyLength)?;
        let pci = fdt::read_cells(e, 1, 2).ok_or(DtError::BadPropertyLength)?;
        let cpu = fdt::read_cells(e, 3, parent.address).ok_or(DtError::BadPropertyLength)?;
        let len =
            fdt::read_cells(e, 3 + parent.address, child_size).ok_or(DtError::BadPropertyLength)?;
        let space = (hi >> 24) & 3;
        if space < 2 || len == 0 || host.n_windows == MAX_WINDOWS {
            continue; // configuration or I/O space, empty, or one window too many
        }
        if pci.checked_add(len).is_none() || cpu.checked_add(len).is_none() {
            return Err(DtError::BadPropertyLength);
        }
        host.windows[host.n_windows] = Window {
            pci,
            cpu,
            len,
            mem64: space == 3,
        };
        host.n_windows += 1;
    }
    Ok(host)
}

/// The bridge the transports in use sit behind, for [`bus_to_cpu`].
static WINDOWS: Mutex<([Window; MAX_WINDOWS], usize)> =
    Mutex::new(([Window::default_const(); MAX_WINDOWS], 0));

impl Window {
    const fn default_const() -> Window {
        Window {
            pci: 0,
            cpu: 0,
            len: 0,
            mem64: false,
        }
    }
}

/// The CPU address of the bus range `[bus, bus + len)`, which must lie inside a
/// window of the bridge [`probe`] last used; `None` otherwise.
pub fn bus_to_cpu(bus: u64, len: u64) -> Option<u64> {
    let g = WINDOWS.lock();
    let end = bus.checked_add(len)?;
    g.0[..g.1]
        .iter()
        .find(|w| bus >= w.pci && end <= w.pci + w.len)
        .map(|w| w.cpu + (bus - w.pci))
}

/// `MmioCam` with a read budget: past [`READ_BUDGET`] reads it answers all-ones
/// (no device, end of lists) and remembers that it ran out.
pub struct CountedCam<'a> {
    inner: MmioCam<'a>,
    /// Shared by every `CountedCam` of one probe.
    reads: &'a Cell<u32>,
}

impl CountedCam<'_> {
    /// Whether the budget ran out.
    pub fn exhausted(&self) -> bool {
        self.reads.get() >= READ_BUDGET
    }
}

impl ConfigurationAccess for CountedCam<'_> {
    fn read_word(&self, df: DeviceFunction, off: u8) -> u32 {
        let n = self.reads.get();
        if n >= READ_BUDGET {
            return 0xffff_ffff;
        }
        self.reads.set(n + 1);
        self.inner.read_word(df, off)
    }

    fn write_word(&mut self, df: DeviceFunction, off: u8, data: u32) {
        self.inner.write_word(df, off, data)
    }

    unsafe fn unsafe_clone(&self) -> Self {
        CountedCam {
            // SAFETY: forwarded: the caller keeps the clone to read-only fields.
            inner: unsafe { self.inner.unsafe_clone() },
            reads: self.reads,
        }
    }
}

/// Gives the function's memory BARs addresses inside the bridge's windows where
/// they have none (or one outside them), bump-allocating from `next` (per
/// window), then enables memory decoding and bus mastering.
fn assign_bars(
    root: &mut PciRoot<CountedCam<'_>>,
    df: DeviceFunction,
    host: &PciHost,
    next: &mut [u64; MAX_WINDOWS],
) -> Result<[Option<(u64, u64)>; 6], PciError> {
    let bars = root.bars(df).map_err(|_| PciError::Transport)?;
    let mut out = [None; 6];
    for (i, b) in bars.iter().enumerate() {
        let Some(BarInfo::Memory {
            address,
            size,
            address_type,
            ..
        }) = b
        else {
            continue;
        };
        let (mut address, size) = (*address, *size);
        if size == 0 {
            continue;
        }
        let is64 = *address_type == MemoryBarType::Width64;
        let inside = address != 0
            && host.windows().iter().any(|w| {
                address >= w.pci
                    && address
                        .checked_add(size)
                        .is_some_and(|e| e <= w.pci + w.len)
            });
        if !inside {
            let align = size
                .checked_next_power_of_two()
                .ok_or(PciError::NoBarSpace)?;
            let mut placed = None;
            for (wi, w) in host.windows().iter().enumerate() {
                // A 32-bit BAR needs a bus address below 4 GiB.
                let base = next[wi].max(w.pci).checked_next_multiple_of(align);
                if let Some(a) = base
                    && a.checked_add(size).is_some_and(|e| e <= w.pci + w.len)
                    && (is64 || a + size <= 1 << 32)
                {
                    next[wi] = a + size;
                    placed = Some(a);
                    break;
                }
            }
            address = placed.ok_or(PciError::NoBarSpace)?;
            if is64 {
                root.set_bar_64(df, i as u8, address);
            } else {
                root.set_bar_32(df, i as u8, address as u32);
            }
        }
        out[i] = Some((address, size));
    }
    root.set_command(df, Command::MEMORY_SPACE | Command::BUS_MASTER);
    Ok(out)
}

/// Walks the function's capabilities (at most [`MAX_CAPS`]) and checks that
/// each virtio structure (common, notify, ISR, device configuration) lies
/// inside a memory BAR of `bars`.
fn check_caps(
    cam: &CountedCam<'_>,
    df: DeviceFunction,
    bars: &[Option<(u64, u64)>; 6],
) -> Result<(), PciError> {
    let status = cam.read_word(df, 0x04) >> 16;
    if status & 0x10 == 0 {
        return Err(PciError::BadCapability); // no capability list
    }
    let mut off = (cam.read_word(df, 0x34) & 0xfc) as u8;
    let mut seen = 0;
    while off != 0 {
        if seen == MAX_CAPS || off < 0x40 {
            return Err(PciError::CapabilityLoop);
        }
        seen += 1;
        let hdr = cam.read_word(df, off);
        if hdr as u8 == CAP_VENDOR && (1..=4).contains(&((hdr >> 24) as u8)) {
            let bar = cam.read_word(df, off + 4) as u8;
            let offset = cam.read_word(df, off + 8) as u64;
            let length = cam.read_word(df, off + 12) as u64;
            let Some(Some((_, size))) = bars.get(bar as usize) else {
                return Err(PciError::BadCapability);
            };
            if offset + length > *size {
                return Err(PciError::BadCapability);
            }
        }
        off = ((hdr >> 8) as u8) & 0xfc;
    }
    if cam.exhausted() {
        return Err(PciError::ReadBudget);
    }
    Ok(())
}

/// Finds the first virtio function of type `want` behind `host` and builds its
/// transport with `H`, whose `mmio_phys_to_virt` must map through
/// [`bus_to_cpu`]. `ecam` is where the CPU reaches the ECAM window (its alias in
/// a realm).
///
/// # Safety
///
/// `ecam` must be mapped as device memory for `host.ecam_len` bytes, and the
/// bridge's windows likewise at their CPU addresses, used by nothing else.
pub unsafe fn probe<H: virtio_drivers::Hal>(
    host: &PciHost,
    ecam: u64,
    want: DeviceType,
) -> Result<PciTransport, PciError> {
    {
        let mut g = WINDOWS.lock();
        g.0 = host.windows;
        g.1 = host.n_windows;
    }
    // The crate's `Cam::Ecam` spans 256 MiB; only the root bus is read, whose
    // configuration space is the first MiB of the window the boot map mapped.
    let reads = Cell::new(0);
    // The window starts at the first bus of `bus-range`; the crate addresses
    // buses from 0.
    let base = ecam
        .checked_sub(u64::from(host.buses.0) << 20)
        .filter(|b| b & 3 == 0)
        .ok_or(PciError::BadBridge)?;
    // SAFETY: the caller's contract: the root bus's configuration space, the
    // only one read, is the first MiB of the mapped window.
    let inner = unsafe { MmioCam::new(base as *mut u8, Cam::Ecam) };
    // SAFETY: as above; this second view only reads (capability checks), never
    // while the root is in the middle of an access.
    let reader = unsafe { MmioCam::new(base as *mut u8, Cam::Ecam) };
    let reader = CountedCam {
        inner: reader,
        reads: &reads,
    };
    let mut root = PciRoot::new(CountedCam {
        inner,
        reads: &reads,
    });
    let mut next = [0u64; MAX_WINDOWS];
    for bus in host.bus_iter() {
        // Collected first: the iterator borrows the root.
        let mut found = [None; 32];
        let mut nf = 0;
        for (df, info) in root.enumerate_bus(bus) {
            if virtio_device_type(&info) == Some(want) && nf < found.len() {
                found[nf] = Some(df);
                nf += 1;
            }
        }
        if let Some(df) = found[..nf].iter().flatten().next() {
            let bars = assign_bars(&mut root, *df, host, &mut next)?;
            check_caps(&reader, *df, &bars)?;
            let t = PciTransport::new::<H, _>(&mut root, *df).map_err(|_| PciError::Transport);
            if reader.exhausted() {
                return Err(PciError::ReadBudget);
            }
            return t;
        }
        if reader.exhausted() {
            return Err(PciError::ReadBudget);
        }
    }
    Err(PciError::NotFound)
}
