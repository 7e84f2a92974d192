//! A minimal flattened-device-tree reader shared by the model and the test
//! guest: just enough to find a property of a node given by its path.
//! Everything is read with byte loads, so it works on Device memory too.

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

pub struct Fdt<'a> {
    blob: &'a [u8],
    off_struct: usize,
    off_strings: usize,
}

fn be32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn cstr_len(b: &[u8], off: usize) -> Option<usize> {
    b.get(off..)?.iter().position(|&c| c == 0)
}

impl<'a> Fdt<'a> {
    /// # Safety
    /// `addr` must point to readable memory holding a device tree whose header
    /// `totalsize` is accurate, and the memory must stay unchanged for `'a`.
    pub unsafe fn from_addr(addr: usize) -> Option<Fdt<'a>> {
        // SAFETY: the caller guarantees the header is readable.
        let hdr = unsafe { core::slice::from_raw_parts(addr as *const u8, 40) };
        if be32(hdr, 0)? != FDT_MAGIC {
            return None;
        }
        let total = be32(hdr, 4)? as usize;
        // SAFETY: the caller guarantees `totalsize` bytes are readable.
        let blob = unsafe { core::slice::from_raw_parts(addr as *const u8, total) };
        Self::new(blob)
    }

    pub fn new(blob: &'a [u8]) -> Option<Fdt<'a>> {
        if be32(blob, 0)? != FDT_MAGIC {
            return None;
        }
        Some(Fdt {
            blob,
            off_struct: be32(blob, 8)? as usize,
            off_strings: be32(blob, 12)? as usize,
        })
    }

    /// Value of property `name` in the node at `path` ("/chosen", "/" ...).
    pub fn prop(&self, path: &str, name: &str) -> Option<&'a [u8]> {
        let want: &[u8] = path.trim_start_matches('/').as_bytes();
        let b = self.blob;
        let mut off = self.off_struct;
        // Current path, kept as the byte range of `want` matched so far.
        let mut depth = 0usize; // nesting depth of the cursor
        let mut matched_depth = 0usize; // depth up to which `want` matches
        let mut matched_len = 0usize; // bytes of `want` matched
        loop {
            let tok = be32(b, off)?;
            off += 4;
            match tok {
                FDT_BEGIN_NODE => {
                    let n = cstr_len(b, off)?;
                    let nm = &b[off..off + n];
                    off = (off + n + 1 + 3) & !3;
                    if depth == 0 {
                        // root node
                        depth = 1;
                        matched_depth = 1;
                        continue;
                    }
                    if matched_depth == depth && matched_len < want.len() {
                        let rest = &want[matched_len..];
                        let rest = rest.strip_prefix(b"/").unwrap_or(rest);
                        let seg_end = rest.iter().position(|&c| c == b'/').unwrap_or(rest.len());
                        let seg = &rest[..seg_end];
                        let base = nm.split(|&c| c == b'@').next().unwrap_or(nm);
                        if seg == nm || (!seg.contains(&b'@') && seg == base) {
                            matched_depth = depth + 1;
                            matched_len = want.len() - rest.len() + seg_end;
                        }
                    }
                    depth += 1;
                }
                FDT_END_NODE => {
                    if matched_depth == depth && depth > 1 {
                        // leaving a node that matched: the search failed below it
                        return None;
                    }
                    depth -= 1;
                }
                FDT_PROP => {
                    let len = be32(b, off)? as usize;
                    let nameoff = be32(b, off + 4)? as usize;
                    let val = b.get(off + 8..off + 8 + len)?;
                    off = (off + 8 + len + 3) & !3;
                    if matched_depth == depth && matched_len == want.len() {
                        let so = self.off_strings + nameoff;
                        let n = cstr_len(b, so)?;
                        if &b[so..so + n] == name.as_bytes() {
                            return Some(val);
                        }
                    }
                }
                FDT_NOP => {}
                FDT_END => return None,
                _ => return None,
            }
        }
    }

    /// A string property without its terminating NUL.
    pub fn prop_str(&self, path: &str, name: &str) -> Option<&'a str> {
        let v = self.prop(path, name)?;
        let v = v.strip_suffix(&[0]).unwrap_or(v);
        core::str::from_utf8(v).ok()
    }
}

/// Reads the `idx`-th big-endian u64 of a cell array.
pub fn cell64(v: &[u8], idx: usize) -> Option<u64> {
    let s = v.get(idx * 8..idx * 8 + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_be_bytes(a))
}
