//! The boot identity map, derived from the boot information rather than from a
//! per-VMM table (the role of Unikraft's `qemu_bpt64.S` / `firecracker_bpt64.S`).
//!
//! Order matters because later maps override earlier ones: device windows first,
//! then RAM (normal, read-write, never executable), then the device tree (read-only
//! where it is outside RAM), then the image's segments with their own permissions,
//! so the text stays executable and read-only whatever the host claimed.

use crate::bootinfo::{BootInfo, ImageLayout};
use crate::memregion::{MemRange, PAGE_SIZE, RegionFlags};
use crate::pagetable::{MapError, MemAttr, PageTableBuilder};

/// Why the boot map could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootMapError {
    /// The page-table builder refused a range (what, and why).
    Map(&'static str, MapError),
    /// An image segment does not start and end on page boundaries, so its
    /// permissions cannot be enforced without affecting its neighbours.
    UnalignedSegment,
}

impl core::fmt::Display for BootMapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BootMapError::Map(what, e) => write!(f, "cannot map {what}: {e}"),
            BootMapError::UnalignedSegment => f.write_str("image segment not page-aligned"),
        }
    }
}

fn attr_for(flags: RegionFlags, wxn: bool) -> MemAttr {
    let w = flags.contains(RegionFlags::WRITE);
    let x = flags.contains(RegionFlags::EXEC);
    match (w, x) {
        (true, true) if !wxn => MemAttr::NormalRwx,
        (true, _) => MemAttr::NormalRw,
        (false, true) => MemAttr::NormalRx,
        (false, false) => MemAttr::NormalRo,
    }
}

/// RAM rounded inward: a partial page at either end belongs to something else.
fn page_inner(r: MemRange) -> Option<MemRange> {
    let start = r.start.checked_add(PAGE_SIZE - 1)? & !(PAGE_SIZE - 1);
    let end = r.end & !(PAGE_SIZE - 1);
    (start < end).then_some(MemRange { start, end })
}

fn map(
    b: &mut PageTableBuilder<'_>,
    what: &'static str,
    va: u64,
    pa: u64,
    len: u64,
    attr: MemAttr,
) -> Result<(), BootMapError> {
    b.map(va, pa, len, attr)
        .map_err(|e| BootMapError::Map(what, e))
}

/// Maps everything the boot path and Unikraft's early code touch.
///
/// `device_alias` is ORed into the output address of device windows (and into
/// their virtual address, keeping the map an identity of the alias): 0 normally,
/// the shared ("unprotected") IPA bit in an Arm CCA realm, where emulated devices
/// answer only there. `wxn` refuses writable+executable segments (W^X).
pub fn build(
    b: &mut PageTableBuilder<'_>,
    bi: &BootInfo<'_>,
    image: &ImageLayout<'_>,
    device_alias: u64,
    wxn: bool,
) -> Result<(), BootMapError> {
    for d in bi.devices.iter() {
        let va = d.start | device_alias;
        map(b, "a device window", va, va, d.len(), MemAttr::Device)?;
    }
    for bank in bi.ram.iter() {
        if let Some(r) = page_inner(bank) {
            map(b, "RAM", r.start, r.start, r.len(), MemAttr::NormalRw)?;
        }
    }
    if !bi.ram.iter().any(|bank| bank.contains_range(&bi.dtb)) {
        let r = bi.dtb.page_outer();
        map(
            b,
            "the device tree",
            r.start,
            r.start,
            r.len(),
            MemAttr::NormalRo,
        )?;
    }
    for s in image.segments {
        let r = s.range;
        if r.start % PAGE_SIZE != 0 || r.end % PAGE_SIZE != 0 {
            return Err(BootMapError::UnalignedSegment);
        }
        map(
            b,
            "the image",
            r.start,
            r.start,
            r.len(),
            attr_for(s.flags, wxn),
        )?;
    }
    Ok(())
}

/// Maps every RAM bank again at `va_base + pa`, read-write: Unikraft's direct map
/// (`CONFIG_PAGING`), which its paging code writes through before it switches to
/// its own tables.
pub fn map_ram_at(
    b: &mut PageTableBuilder<'_>,
    bi: &BootInfo<'_>,
    va_base: u64,
) -> Result<(), BootMapError> {
    for bank in bi.ram.iter() {
        if let Some(r) = page_inner(bank) {
            let va = va_base
                .checked_add(r.start)
                .ok_or(BootMapError::Map("the direct map", MapError::Wraps))?;
            map(b, "the direct map", va, r.start, r.len(), MemAttr::NormalRw)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootinfo::ImageSegment;
    use crate::pagetable::Table;
    use std::boxed::Box;

    #[test]
    fn attrs() {
        assert_eq!(attr_for(RegionFlags::RX, true), MemAttr::NormalRx);
        assert_eq!(attr_for(RegionFlags::READ, true), MemAttr::NormalRo);
        assert_eq!(attr_for(RegionFlags::RW, true), MemAttr::NormalRw);
        assert_eq!(attr_for(RegionFlags(7), true), MemAttr::NormalRw);
        assert_eq!(attr_for(RegionFlags(7), false), MemAttr::NormalRwx);
    }

    #[test]
    fn inner_rounding() {
        let r = |start, end| MemRange { start, end };
        assert_eq!(page_inner(r(0x1001, 0x3fff)), Some(r(0x2000, 0x3000)));
        assert_eq!(page_inner(r(0x1001, 0x1fff)), None);
        assert_eq!(page_inner(r(u64::MAX - 5, u64::MAX)), None);
    }

    #[test]
    fn unaligned_segment_is_refused() {
        let mut pool: Box<[Table]> = (0..8).map(|_| Table::ZERO).collect();
        let pa = pool.as_ptr() as u64;
        let mut b = PageTableBuilder::new(&mut pool, pa, 5).unwrap();
        let seg = [ImageSegment {
            range: MemRange {
                start: 0x4000_0800,
                end: 0x4000_2000,
            },
            flags: RegionFlags::RX,
        }];
        let img = ImageLayout { segments: &seg };
        // No boot info needed to hit the check: an empty RAM/device list is fine.
        let bi = crate::bootinfo::BootInfo {
            regions: Default::default(),
            ram: Default::default(),
            devices: Default::default(),
            cmdline: None,
            console: None,
            psci: None,
            gic: None,
            dtb: MemRange {
                start: 0x4800_0000,
                end: 0x4800_1000,
            },
            initrd: None,
            cpu_count: 1,
        };
        assert_eq!(
            build(&mut b, &bi, &img, 0, true),
            Err(BootMapError::UnalignedSegment)
        );
    }
}
