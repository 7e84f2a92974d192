//! A validating, allocation-free, single-pass reader for an untrusted flattened
//! device tree (DTSpec v0.4 §5).
//!
//! The boot path reads the whole tree exactly once, as a stream of [`Token`]s, and
//! every read is bounds-checked as it happens: a hostile blob yields a [`DtError`],
//! never a panic or an out-of-bounds read. See `docs/dtb-parser.md` for why this is
//! ours rather than `fdt` or `dtoolkit` (which the tests use as an oracle).

/// Size of the fixed FDT header.
pub const HEADER_SIZE: usize = 40;
/// Largest DTB accepted. kvmtool's blob is 64 KiB, QEMU pads to 1 MiB; anything
/// bigger is refused rather than trusted as a length to map or read.
pub const MAX_DTB_SIZE: usize = 2 << 20;
/// Deepest node nesting accepted (real trees use 4 or 5 levels).
pub const MAX_DEPTH: usize = 32;
const FDT_MAGIC: u32 = 0xd00d_feed;
const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;

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
    /// A version this parser does not read (it needs version >= 16, last_comp <= 17).
    UnsupportedVersion,
    /// The header's block offsets or sizes are inconsistent.
    BadHeader,
    /// The structure block is malformed (bad token, nesting, or runs past its end).
    BadStructure,
    /// A string (node name, property name, string property) is unterminated or not UTF-8.
    BadString,
    /// The memory-reservation block is unterminated or malformed.
    BadMemReserve,
    /// `#address-cells` or `#size-cells` is not 1 or 2.
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

fn be64(b: &[u8], off: usize) -> Option<u64> {
    Some((u64::from(be32(b, off)?) << 32) | u64::from(be32(b, off + 4)?))
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

/// A device tree whose header and block bounds have been checked.
#[derive(Clone, Copy, Debug)]
pub struct Dt<'a> {
    total: usize,
    structure: &'a [u8],
    strings: &'a [u8],
    rsvmap: &'a [u8],
}

impl<'a> Dt<'a> {
    /// Checks the header of `buf` (which may be longer than the blob: kvmtool and
    /// QEMU pad it). The structure block is validated as it is walked.
    pub fn open(buf: &'a [u8]) -> Result<Self, DtError> {
        let total = total_size(buf, buf.len())?;
        let blob = &buf[..total];
        let h = |i: usize| be32(blob, i * 4).ok_or(DtError::Truncated);
        let (off_struct, off_strings, off_rsv) = (h(2)? as usize, h(3)? as usize, h(4)? as usize);
        let (version, last_comp) = (h(5)?, h(6)?);
        if version < 16 || last_comp > 17 {
            return Err(DtError::UnsupportedVersion);
        }
        let size_strings = h(8)? as usize;
        // Version 16 has no size_dt_struct: the block then runs to the strings.
        let size_struct = if version >= 17 {
            h(9)? as usize
        } else {
            off_strings.saturating_sub(off_struct)
        };
        let block = |off: usize, len: usize| {
            off.checked_add(len)
                .filter(|&end| off >= HEADER_SIZE && end <= total)
                .map(|end| &blob[off..end])
                .ok_or(DtError::BadHeader)
        };
        if !off_struct.is_multiple_of(4) || !off_rsv.is_multiple_of(8) {
            return Err(DtError::BadHeader);
        }
        Ok(Self {
            total,
            structure: block(off_struct, size_struct)?,
            strings: block(off_strings, size_strings)?,
            rsvmap: block(off_rsv, total - off_rsv.min(total))?,
        })
    }

    /// Size of the blob from its header.
    pub fn total_size(&self) -> usize {
        self.total
    }

    /// The structure block as a stream of tokens, validated as it goes.
    pub fn tokens(&self) -> Tokens<'a> {
        Tokens {
            dt: *self,
            pos: 0,
            depth: 0,
            started: false,
            done: false,
            name_off: [0; NAME_CACHE],
            name_len: [0; NAME_CACHE],
        }
    }

    /// `/memreserve/` entries as (address, size), up to the terminating empty entry.
    pub fn mem_reservations(&self) -> MemReservations<'a> {
        MemReservations {
            rsvmap: self.rsvmap,
            pos: 0,
            done: false,
        }
    }

    fn string(&self, off: usize) -> Result<&'a [u8], DtError> {
        let s = self.strings.get(off..).ok_or(DtError::BadString)?;
        let nul = s.iter().position(|&b| b == 0).ok_or(DtError::BadString)?;
        Ok(&s[..nul])
    }
}

/// Iterator over `/memreserve/` entries; yields an error if the block is unterminated.
pub struct MemReservations<'a> {
    rsvmap: &'a [u8],
    pos: usize,
    done: bool,
}

impl Iterator for MemReservations<'_> {
    type Item = Result<(u64, u64), DtError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let entry = be64(self.rsvmap, self.pos).zip(be64(self.rsvmap, self.pos + 8));
        self.pos += 16;
        match entry {
            None => {
                self.done = true;
                Some(Err(DtError::BadMemReserve))
            }
            Some((0, 0)) => {
                self.done = true;
                None
            }
            Some(e) => Some(Ok(e)),
        }
    }
}

/// One element of the structure block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token<'a> {
    /// A node starts; its name (empty for the root), at `depth` (root = 1).
    Begin {
        /// Node name including any unit address.
        name: &'a [u8],
        /// Nesting depth, the root being 1.
        depth: usize,
    },
    /// The innermost open node ends.
    End,
    /// A property of the innermost open node.
    Prop {
        /// Property name.
        name: &'a [u8],
        /// The name's offset in the strings block: equal offsets, equal names, which
        /// lets a reader cache what it decided about a name.
        nameoff: u32,
        /// Raw value.
        value: &'a [u8],
    },
}

/// Slots of the property-name cache (direct-mapped by string offset).
const NAME_CACHE: usize = 32;

/// The structure block's tokens; an error ends the iteration.
pub struct Tokens<'a> {
    dt: Dt<'a>,
    pos: usize,
    depth: usize,
    started: bool,
    done: bool,
    /// Validated property names: `nameoff + 1` (0: empty slot) and length. Trees
    /// repeat a few dozen names hundreds of times; each is scanned once.
    name_off: [u64; NAME_CACHE],
    name_len: [u32; NAME_CACHE],
}

impl<'a> Tokens<'a> {
    fn step(&mut self) -> Result<Option<Token<'a>>, DtError> {
        let s = self.dt.structure;
        loop {
            let tag = be32(s, self.pos).ok_or(DtError::BadStructure)?;
            self.pos += 4;
            match tag {
                NOP => continue,
                BEGIN_NODE => {
                    let rest = s.get(self.pos..).ok_or(DtError::BadStructure)?;
                    let nul = rest
                        .iter()
                        .position(|&b| b == 0)
                        .ok_or(DtError::BadString)?;
                    let name = &rest[..nul];
                    if (self.depth == 0) != name.is_empty() || (self.depth == 0 && self.started) {
                        return Err(DtError::BadStructure);
                    }
                    self.pos += (nul + 4) & !3;
                    self.depth += 1;
                    self.started = true;
                    if self.depth > MAX_DEPTH {
                        return Err(DtError::BadStructure);
                    }
                    return Ok(Some(Token::Begin {
                        name,
                        depth: self.depth,
                    }));
                }
                END_NODE => {
                    if self.depth == 0 {
                        return Err(DtError::BadStructure);
                    }
                    self.depth -= 1;
                    return Ok(Some(Token::End));
                }
                PROP => {
                    let len = be32(s, self.pos).ok_or(DtError::BadStructure)? as usize;
                    let nameoff = be32(s, self.pos + 4).ok_or(DtError::BadStructure)? as usize;
                    let start = self.pos + 8;
                    let value = start
                        .checked_add(len)
                        .and_then(|end| s.get(start..end))
                        .ok_or(DtError::BadStructure)?;
                    if self.depth == 0 {
                        return Err(DtError::BadStructure);
                    }
                    self.pos = start + ((len + 3) & !3);
                    // Slots hold `nameoff + 1` (0: empty), computed in u64 so a hostile
                    // offset of u32::MAX cannot wrap onto an empty slot.
                    let slot = nameoff % NAME_CACHE;
                    let key = nameoff as u64 + 1;
                    let cached = (self.name_off[slot] == key).then(|| {
                        let l = self.name_len[slot] as usize;
                        self.dt.strings.get(nameoff..nameoff + l)
                    });
                    let name = match cached.flatten() {
                        Some(n) => n,
                        None => {
                            let n = self.dt.string(nameoff)?;
                            self.name_off[slot] = key;
                            self.name_len[slot] = n.len() as u32;
                            n
                        }
                    };
                    return Ok(Some(Token::Prop {
                        name,
                        nameoff: nameoff as u32,
                        value,
                    }));
                }
                END => {
                    if self.depth != 0 || !self.started {
                        return Err(DtError::BadStructure);
                    }
                    return Ok(None);
                }
                _ => return Err(DtError::BadStructure),
            }
        }
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Result<Token<'a>, DtError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.step().transpose();
        if !matches!(r, Some(Ok(_))) {
            self.done = true;
        }
        r
    }
}

/// A property value as a single big-endian u32.
pub fn value_u32(v: &[u8]) -> Result<u32, DtError> {
    if v.len() != 4 {
        return Err(DtError::BadPropertyLength);
    }
    be32(v, 0).ok_or(DtError::BadPropertyLength)
}

/// A value holding one number in one or two cells (e.g. `linux,initrd-start`).
pub fn value_u32_or_u64(v: &[u8]) -> Result<u64, DtError> {
    match v.len() {
        4 => value_u32(v).map(u64::from),
        8 => be64(v, 0).ok_or(DtError::BadPropertyLength),
        _ => Err(DtError::BadPropertyLength),
    }
}

/// A value as a NUL-terminated UTF-8 string (the first string of a list).
pub fn value_str(v: &[u8]) -> Result<&str, DtError> {
    let nul = v.iter().position(|&b| b == 0).ok_or(DtError::BadString)?;
    core::str::from_utf8(&v[..nul]).map_err(|_| DtError::BadString)
}

/// Whether a string-list value contains `want`. Unterminated lists match nothing.
pub fn strlist_contains(v: &[u8], want: &str) -> bool {
    if v.last() != Some(&0) {
        return false;
    }
    v[..v.len() - 1]
        .split(|&b| b == 0)
        .any(|s| s == want.as_bytes())
}

/// Whether a `status` value means enabled ("okay", "ok"); an absent status does too.
pub fn status_enabled(v: Option<&[u8]>) -> bool {
    match v {
        None => true,
        Some(v) => matches!(value_str(v), Ok("okay") | Ok("ok")),
    }
}

/// `#address-cells` and `#size-cells` a node gives its children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cells {
    /// Cells per address (1 or 2).
    pub address: usize,
    /// Cells per size (1 or 2).
    pub size: usize,
}

impl Cells {
    /// The spec's defaults when a node says nothing: 2 and 1.
    pub const DEFAULT: Cells = Cells {
        address: 2,
        size: 1,
    };

    /// Cells from the raw `#address-cells`/`#size-cells` values (absent = default).
    /// Values we cannot represent in 64 bits are refused.
    pub fn from_values(address: Option<&[u8]>, size: Option<&[u8]>) -> Result<Self, DtError> {
        let a = address.map(value_u32).transpose()?.unwrap_or(2) as usize;
        let s = size.map(value_u32).transpose()?.unwrap_or(1) as usize;
        if !(1..=2).contains(&a) || !(1..=2).contains(&s) {
            return Err(DtError::UnsupportedCells);
        }
        Ok(Self {
            address: a,
            size: s,
        })
    }
}

/// Reads `n` (1 or 2) big-endian cells at cell index `at` as one number.
pub fn read_cells(v: &[u8], at: usize, n: usize) -> Option<u64> {
    match n {
        1 => be32(v, at.checked_mul(4)?).map(u64::from),
        2 => be64(v, at.checked_mul(4)?),
        _ => None,
    }
}

/// Iterator over the (address, size) pairs of a `reg` value.
#[derive(Clone)]
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

/// The entries of a `reg` value laid out with `cells` (the parent's).
pub fn reg(v: &[u8], cells: Cells) -> Result<RegIter<'_>, DtError> {
    let entry = (cells.address + cells.size) * 4;
    if v.is_empty() || !v.len().is_multiple_of(entry) {
        return Err(DtError::BadPropertyLength);
    }
    Ok(RegIter { v, cells, at: 0 })
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
        assert_eq!(value_str(b"abc"), Err(DtError::BadString));
        assert_eq!(value_str(b"abc\0def\0"), Ok("abc"));
        assert!(status_enabled(Some(b"okay\0")));
        assert!(!status_enabled(Some(b"disabled\0")));
        assert!(!status_enabled(Some(b"okay")));
    }

    /// Found by the fuzzer: a property whose name offset is u32::MAX once wrapped
    /// the name cache's key onto an empty slot and indexed out of bounds.
    #[test]
    fn name_offset_u32_max_is_an_error() {
        // Header (40 bytes), empty reservation map (16), then the structure block:
        // BEGIN_NODE "" | PROP len 0 nameoff 0xffffffff | END_NODE | END; no strings.
        let mut b = std::vec![0u8; 40 + 16];
        let words: [u32; 8] = [1, 0, 3, 0, u32::MAX, 2, 9, 0];
        for w in &words[..7] {
            b.extend_from_slice(&w.to_be_bytes());
        }
        let total = b.len() as u32;
        let put = |b: &mut std::vec::Vec<u8>, at: usize, v: u32| {
            b[at..at + 4].copy_from_slice(&v.to_be_bytes())
        };
        put(&mut b, 0, FDT_MAGIC);
        put(&mut b, 4, total);
        put(&mut b, 8, 56); // off_dt_struct
        put(&mut b, 12, total); // off_dt_strings
        put(&mut b, 16, 40); // off_mem_rsvmap
        put(&mut b, 20, 17);
        put(&mut b, 24, 16);
        put(&mut b, 32, 0); // size_dt_strings
        put(&mut b, 36, total - 56); // size_dt_struct
        let dt = Dt::open(&b).unwrap();
        let r: std::vec::Vec<_> = dt.tokens().collect();
        assert_eq!(r.last(), Some(&Err(DtError::BadString)));
    }

    #[test]
    fn cells_decode() {
        let v = [0, 0, 0, 1, 0, 0, 0, 2];
        assert_eq!(read_cells(&v, 0, 2), Some(0x1_0000_0002));
        assert_eq!(read_cells(&v, 1, 1), Some(2));
        assert_eq!(read_cells(&v, 1, 2), None);
        assert_eq!(read_cells(&v, 0, 3), None);
        assert_eq!(read_cells(&v, usize::MAX, 1), None);
    }
}
