//! The device tree x0 points at.

use plat_kvm_arm::{bootinfo, fdt};

/// Why the DTB cannot be used.
pub(crate) enum DtbError {
    /// x0 is 0 or not 8-byte aligned.
    Address(u64),
    /// The header is not a DTB's.
    Header(fdt::DtError),
}

impl core::fmt::Display for DtbError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DtbError::Address(a) => write!(f, "x0 = {a:#x} is not a device tree address"),
            DtbError::Header(e) => write!(f, "{}", bootinfo::BootInfoError::Dt(*e)),
        }
    }
}

/// The DTB at `dtb`, bounded by its header's `totalsize` (at most
/// `fdt::MAX_DTB_SIZE`, which is what the entry code maps).
pub(crate) fn blob(dtb: u64) -> Result<&'static [u8], DtbError> {
    if dtb == 0 || !dtb.is_multiple_of(8) {
        return Err(DtbError::Address(dtb));
    }
    // SAFETY: the boot protocol says x0 points at the DTB, and the entry code mapped
    // MAX_DTB_SIZE bytes from it; only its header is read before `total_size` bounds
    // the rest. A host that lies here gets a data abort, which the early vectors report.
    let header = unsafe { core::slice::from_raw_parts(dtb as *const u8, fdt::HEADER_SIZE) };
    let total = fdt::total_size(header, fdt::MAX_DTB_SIZE).map_err(DtbError::Header)?;
    // SAFETY: `total` is bounded by MAX_DTB_SIZE; the only write to the blob (a
    // realm's aliasing, `boot::alias_device_tree`) happens when no slice of it is
    // alive but the command line, whose bytes it does not touch.
    Ok(unsafe { core::slice::from_raw_parts(dtb as *const u8, total) })
}
