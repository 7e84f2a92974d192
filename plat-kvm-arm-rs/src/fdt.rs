//! Fallible, allocation-free access to an untrusted flattened device tree.
//!
//! Structure validation is delegated to `dtoolkit`, which walks the whole blob once
//! in [`Dt::open`] (tokens, string offsets, names, the reservation block) and is
//! fuzzed upstream; see `docs/dtb-parser.md` for why it was chosen over `fdt`.
//! Property *values* are decoded here, from raw bytes, with every length checked,
//! so a hostile value yields an error and never a panic or an out-of-bounds read.

use dtoolkit::error::FdtErrorKind;
use dtoolkit::fdt::{Fdt, FdtNode};
use dtoolkit::{Node, Property};

/// Size of the fixed FDT header.
pub const HEADER_SIZE: usize = 40;
/// Largest DTB accepted. kvmtool's blob is 64 KiB, QEMU pads to 1 MiB; anything
/// bigger is refused rather than trusted as a length to map or read.
pub const MAX_DTB_SIZE: usize = 2 << 20;
const FDT_MAGIC: u32 = 0xd00d_feed;

/// Why a device tree was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtError {
    /// The first word is not 0xd00dfeed.
    BadMagic,
    /// Fewer bytes than a header, or `totalsize` smaller than a header.
    Truncated,
    /// `totalsize` says the blob extends past the memory it was given in.
    TotalSizeBeyondBuffer,
    /// `totalsize` exceeds [`MAX_DTB_SIZE`].
    TooLarge,
    /// A version this parser does not read (it needs 16 <= version, last_comp <= 17).
    UnsupportedVersion,
    /// The header's block offsets or sizes are inconsistent.
    BadHeader,
    /// The structure block is malformed (bad token, nesting, name or offset).
    BadStructure,
    /// A string (node name, property name, string property) is unterminated or not UTF-8.
    BadString,
    /// The memory-reservation block is unterminated or malformed.
    BadMemReserve,
    /// `#address-cells` or `#size-cells` is not 1 or 2 (or absent where required).
    UnsupportedCells,
    /// A property has a length that does not fit its type (e.g. `reg` not a whole
    /// number of entries).
    BadPropertyLength,
}

impl DtError {
    /// A one-line human description for the boot console.
    pub const fn as_str(self) -> &'static str {
        match self {
            DtError::BadMagic => "bad magic (x0 does not point at a device tree)",
            DtError::Truncated => "truncated header",
            DtError::TotalSizeBeyondBuffer => "totalsize runs past the available memory",
            DtError::TooLarge => "totalsize larger than 2 MiB",
            DtError::UnsupportedVersion => "unsupported FDT version",
            DtError::BadHeader => "inconsistent header offsets",
            DtError::BadStructure => "malformed structure block",
            DtError::BadString => "unterminated or invalid string",
            DtError::BadMemReserve => "malformed /memreserve/ block",
            DtError::UnsupportedCells => "#address-cells/#size-cells not 1 or 2",
            DtError::BadPropertyLength => "property has an invalid length",
        }
    }
}

fn be32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Reads and checks the header of a blob, returning its `totalsize`.
///
/// Only the first [`HEADER_SIZE`] bytes are read, so the boot path can call this
/// before it knows how much memory it may look at. `available` is how many bytes
/// the caller can vouch for from the start of the blob.
pub fn total_size(header: &[u8], available: usize) -> Result<usize, DtError> {
    let magic = be32(header, 0).ok_or(DtError::Truncated)?;
    if magic != FDT_MAGIC {
        return Err(DtError::BadMagic);
    }
    let total = be32(header, 4).ok_or(DtError::Truncated)? as usize;
    if total < HEADER_SIZE {
        return Err(DtError::Truncated);
    }
    if total > MAX_DTB_SIZE {
        return Err(DtError::TooLarge);
    }
    if total > available {
        return Err(DtError::TotalSizeBeyondBuffer);
    }
    Ok(total)
}

/// A validated device tree.
#[derive(Clone, Copy)]
pub struct Dt<'a> {
    fdt: Fdt<'a>,
}

/// A node of a validated device tree.
pub type DtNode<'a> = FdtNode<'a>;

impl<'a> Dt<'a> {
    /// Validates `buf` (which may be longer than the blob: kvmtool and QEMU pad it).
    pub fn open(buf: &'a [u8]) -> Result<Self, DtError> {
        let total = total_size(buf, buf.len())?;
        let fdt = Fdt::new(&buf[..total]).map_err(|e| match e.kind {
            FdtErrorKind::InvalidMagic => DtError::BadMagic,
            FdtErrorKind::UnsupportedVersion(_) => DtError::UnsupportedVersion,
            FdtErrorKind::InvalidLength => DtError::BadStructure,
            FdtErrorKind::InvalidHeader(_) => DtError::BadHeader,
            FdtErrorKind::InvalidString
            | FdtErrorKind::InvalidNodeName
            | FdtErrorKind::InvalidPropertyName => DtError::BadString,
            FdtErrorKind::MemReserveNotTerminated | FdtErrorKind::MemReserveInvalid => {
                DtError::BadMemReserve
            }
            _ => DtError::BadStructure,
        })?;
        Ok(Self { fdt })
    }

    /// Size of the blob from its header.
    pub fn total_size(&self) -> usize {
        self.fdt.data().len()
    }

    /// The root node.
    pub fn root(&self) -> DtNode<'a> {
        self.fdt.root()
    }

    /// Looks a node up by absolute path (unit addresses optional, as in libfdt).
    pub fn find(&self, path: &str) -> Option<DtNode<'a>> {
        self.fdt.find_node(path)
    }

    /// `/memreserve/` entries, as (address, size).
    pub fn mem_reservations(&self) -> impl Iterator<Item = (u64, u64)> + 'a {
        self.fdt
            .memory_reservations()
            .map(|r| (r.address(), r.size()))
    }
}

/// Raw bytes of a property, if present.
pub fn prop<'a>(node: &DtNode<'a>, name: &str) -> Option<&'a [u8]> {
    // `value_as` (unlike `value`) yields a slice with the blob's lifetime.
    node.properties()
        .find(|p| p.name() == name)
        .and_then(|p| p.value_as::<&'a [u8]>().ok())
}

/// A property as a single big-endian u32.
pub fn prop_u32(node: &DtNode<'_>, name: &str) -> Result<Option<u32>, DtError> {
    match prop(node, name) {
        None => Ok(None),
        Some(v) if v.len() == 4 => Ok(be32(v, 0)),
        Some(_) => Err(DtError::BadPropertyLength),
    }
}

/// A property holding one number in one or two cells (e.g. `linux,initrd-start`).
pub fn prop_u32_or_u64(node: &DtNode<'_>, name: &str) -> Result<Option<u64>, DtError> {
    match prop(node, name) {
        None => Ok(None),
        Some(v) => read_cells(v, 0, v.len() / 4)
            .filter(|_| v.len() == 4 || v.len() == 8)
            .map(Some)
            .ok_or(DtError::BadPropertyLength),
    }
}

/// A property as a NUL-terminated UTF-8 string (the first string of a list).
pub fn prop_str<'a>(node: &DtNode<'a>, name: &str) -> Result<Option<&'a str>, DtError> {
    match prop(node, name) {
        None => Ok(None),
        Some(v) => first_str(v).map(Some),
    }
}

fn first_str(v: &[u8]) -> Result<&str, DtError> {
    let nul = v.iter().position(|&b| b == 0).ok_or(DtError::BadString)?;
    core::str::from_utf8(&v[..nul]).map_err(|_| DtError::BadString)
}

/// Whether a string-list property contains `want`. Unterminated lists match nothing.
pub fn strlist_contains(v: &[u8], want: &str) -> bool {
    if v.last() != Some(&0) {
        return false;
    }
    v[..v.len() - 1]
        .split(|&b| b == 0)
        .any(|s| s == want.as_bytes())
}

/// Whether a node's `compatible` contains `want`.
pub fn is_compatible(node: &DtNode<'_>, want: &str) -> bool {
    prop(node, "compatible").is_some_and(|v| strlist_contains(v, want))
}

/// Whether a node is enabled (`status` absent, "okay" or "ok").
pub fn is_enabled(node: &DtNode<'_>) -> bool {
    match prop(node, "status") {
        None => true,
        Some(v) => matches!(first_str(v), Ok("okay") | Ok("ok")),
    }
}

/// Reads `n` (1 or 2) big-endian cells at cell index `at` as one number.
fn read_cells(v: &[u8], at: usize, n: usize) -> Option<u64> {
    match n {
        1 => be32(v, at * 4).map(u64::from),
        2 => Some((u64::from(be32(v, at * 4)?) << 32) | u64::from(be32(v, at * 4 + 4)?)),
        _ => None,
    }
}

/// `#address-cells` and `#size-cells` a node gives its children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cells {
    /// Cells per address (1 or 2).
    pub address: usize,
    /// Cells per size (1 or 2; 0 is accepted only where sizes are absent).
    pub size: usize,
}

impl Cells {
    /// Reads the cells a node defines for its children, with the spec's defaults
    /// (2 and 1) when absent. Values we cannot represent in 64 bits are refused.
    pub fn of(node: &DtNode<'_>) -> Result<Self, DtError> {
        let address = prop_u32(node, "#address-cells")?.unwrap_or(2) as usize;
        let size = prop_u32(node, "#size-cells")?.unwrap_or(1) as usize;
        if !(1..=2).contains(&address) || !(1..=2).contains(&size) {
            return Err(DtError::UnsupportedCells);
        }
        Ok(Self { address, size })
    }
}

/// Iterator over the (address, size) pairs of a `reg` property.
pub struct RegIter<'a> {
    v: &'a [u8],
    cells: Cells,
    at: usize,
}

impl Iterator for RegIter<'_> {
    type Item = (u64, u64);
    fn next(&mut self) -> Option<(u64, u64)> {
        let addr = read_cells(self.v, self.at, self.cells.address)?;
        let size = read_cells(self.v, self.at + self.cells.address, self.cells.size)?;
        self.at += self.cells.address + self.cells.size;
        Some((addr, size))
    }
}

/// The `reg` entries of `node`, whose parent defines `cells`. `Ok(None)` when absent.
pub fn reg<'a>(node: &DtNode<'a>, cells: Cells) -> Result<Option<RegIter<'a>>, DtError> {
    let Some(v) = prop(node, "reg") else {
        return Ok(None);
    };
    let entry = (cells.address + cells.size) * 4;
    if v.is_empty() || v.len() % entry != 0 {
        return Err(DtError::BadPropertyLength);
    }
    Ok(Some(RegIter { v, cells, at: 0 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_checks() {
        let mut h = [0u8; 40];
        assert_eq!(total_size(&h, 40), Err(DtError::BadMagic));
        h[..4].copy_from_slice(&FDT_MAGIC.to_be_bytes());
        assert_eq!(total_size(&h, 40), Err(DtError::Truncated));
        h[4..8].copy_from_slice(&100u32.to_be_bytes());
        assert_eq!(total_size(&h, 99), Err(DtError::TotalSizeBeyondBuffer));
        assert_eq!(total_size(&h, 100), Ok(100));
        h[4..8].copy_from_slice(&(3u32 << 20).to_be_bytes());
        assert_eq!(total_size(&h, usize::MAX), Err(DtError::TooLarge));
        assert_eq!(total_size(&h[..6], 6), Err(DtError::Truncated));
    }

    #[test]
    fn string_lists() {
        assert!(strlist_contains(b"arm,psci-0.2\0arm,psci\0", "arm,psci"));
        assert!(!strlist_contains(b"arm,psci-0.2\0arm,psci", "arm,psci"));
        assert!(!strlist_contains(b"", "x"));
        assert_eq!(first_str(b"abc"), Err(DtError::BadString));
        assert_eq!(first_str(b"abc\0def\0"), Ok("abc"));
    }

    #[test]
    fn cells_decode() {
        let v = [0, 0, 0, 1, 0, 0, 0, 2];
        assert_eq!(read_cells(&v, 0, 2), Some(0x1_0000_0002));
        assert_eq!(read_cells(&v, 1, 1), Some(2));
        assert_eq!(read_cells(&v, 1, 2), None);
        assert_eq!(read_cells(&v, 0, 3), None);
    }
}
