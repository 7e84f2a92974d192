//! Unikraft RELEASE-0.17.0's boot-info ABI: `struct ukplat_bootinfo` and
//! `struct ukplat_memregion_desc`, and the translation from the core crate's
//! region types. Everything version-specific about memory regions lives here.
//!
//! The layouts are hand-written with compile-time checks against the offsets of
//! `plat/common/include/uk/plat/common/bootinfo.h` and `include/uk/plat/memory.h`
//! (without `CONFIG_UKPLAT_MEMRNAME`); inside a Unikraft build the glue also runs
//! bindgen on the real headers and checks them against these.

use core::mem::{offset_of, size_of};
use plat_kvm_arm::memregion::{PAGE_SIZE, Region, RegionKind};

/// `UKPLAT_BOOTINFO_MAGIC`.
pub const BOOTINFO_MAGIC: u32 = 0xb007_b0b0;

/// `UKPLAT_MEMRT_*` in 0.17 (the values moved in 0.18).
pub mod memrt {
    /// Free memory.
    pub const FREE: u16 = 0x01;
    /// Reserved memory.
    pub const RESERVED: u16 = 0x02;
    /// The kernel image.
    pub const KERNEL: u16 = 0x04;
    /// An initrd.
    pub const INITRD: u16 = 0x08;
    /// The command line.
    pub const CMDLINE: u16 = 0x10;
    /// The device tree.
    pub const DEVICETREE: u16 = 0x20;
    /// A stack.
    pub const STACK: u16 = 0x40;
    /// A device window.
    pub const DEVICE: u16 = 0x80;
}

/// `struct ukplat_memregion_desc` (packed, 8-byte aligned, 48 bytes).
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemregionDesc {
    /// Page-aligned physical base.
    pub pbase: u64,
    /// Page-aligned virtual base.
    pub vbase: u64,
    /// Offset of the resource in its first page.
    pub pg_off: u64,
    /// Length of the resource in bytes.
    pub len: u64,
    /// Pages the region spans.
    pub pg_count: u64,
    /// `UKPLAT_MEMRT_*`.
    pub r#type: u16,
    /// `UKPLAT_MEMRF_*` (READ 1, WRITE 2, EXECUTE 4).
    pub flags: u16,
}

/// `struct ukplat_memregion_list` header (the descriptors follow it).
#[repr(C)]
#[derive(Debug)]
pub struct MemregionList {
    /// How many descriptors fit.
    pub capacity: u32,
    /// How many are used.
    pub count: u32,
}

/// `struct ukplat_bootinfo` (80 bytes, then the descriptors).
#[repr(C, align(8))]
#[derive(Debug)]
pub struct Bootinfo {
    /// [`BOOTINFO_MAGIC`].
    pub magic: u32,
    /// 1.
    pub version: u8,
    /// Padding.
    pub _pad0: [u8; 3],
    /// NUL-terminated boot loader name.
    pub bootloader: [u8; 16],
    /// NUL-terminated boot protocol name.
    pub bootprotocol: [u8; 16],
    /// Command line address (not necessarily NUL-terminated).
    pub cmdline: u64,
    /// Command line length without a terminator.
    pub cmdline_len: u64,
    /// Device tree address.
    pub dtb: u64,
    /// UEFI system table (0 here).
    pub efi_st: u64,
    /// The region list header.
    pub mrds: MemregionList,
}

const _: () = {
    assert!(size_of::<MemregionDesc>() == 48);
    assert!(offset_of!(MemregionDesc, pg_count) == 32);
    assert!(offset_of!(MemregionDesc, r#type) == 40);
    assert!(offset_of!(MemregionDesc, flags) == 42);
    assert!(size_of::<Bootinfo>() == 80);
    assert!(offset_of!(Bootinfo, cmdline) == 40);
    assert!(offset_of!(Bootinfo, dtb) == 56);
    assert!(offset_of!(Bootinfo, mrds) == 72);
};

/// The 0.17 type of a core region kind.
pub const fn memrt_of(kind: RegionKind) -> u16 {
    match kind {
        RegionKind::Free => memrt::FREE,
        RegionKind::Reserved => memrt::RESERVED,
        RegionKind::Kernel => memrt::KERNEL,
        RegionKind::Initrd => memrt::INITRD,
        RegionKind::DeviceTree => memrt::DEVICETREE,
        RegionKind::Device => memrt::DEVICE,
    }
}

/// A descriptor for `r` that satisfies `UK_ASSERT_VALID_MRD`: page-aligned bases,
/// `pg_off` < 4 KiB, `pg_count` covering `pg_off + len` (free regions are already
/// page-aligned, so their `pg_off` is 0 and `len` a whole number of pages).
pub fn desc_of(r: &Region) -> MemregionDesc {
    let pbase = r.range.start & !(PAGE_SIZE - 1);
    let pg_off = r.range.start - pbase;
    let len = r.range.len();
    MemregionDesc {
        pbase,
        vbase: pbase,
        pg_off,
        len,
        pg_count: (pg_off + len).div_ceil(PAGE_SIZE),
        r#type: memrt_of(r.kind),
        flags: r.flags.0,
    }
}

/// The boot info's region list is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapacityExceeded;

/// Appends descriptors to a bootinfo's list, refusing to write past `capacity`.
///
/// # Safety
///
/// `bi` must point at a `struct ukplat_bootinfo` followed by room for
/// `bi.mrds.capacity` descriptors, not aliased during the call.
pub unsafe fn push_regions(
    bi: *mut Bootinfo,
    regions: impl Iterator<Item = Region>,
) -> Result<(), CapacityExceeded> {
    // SAFETY: the caller guarantees `bi` is valid and exclusive.
    let b = unsafe { &mut *bi };
    // SAFETY: the descriptor array starts right after the 80-byte header.
    let base = unsafe { bi.add(1) }.cast::<MemregionDesc>();
    for r in regions {
        if b.mrds.count >= b.mrds.capacity {
            return Err(CapacityExceeded);
        }
        // SAFETY: count < capacity, and the caller vouches for `capacity` slots.
        unsafe { base.add(b.mrds.count as usize).write(desc_of(&r)) };
        b.mrds.count += 1;
    }
    Ok(())
}

/// Whether the list already holds a descriptor of type `memrt` (Unikraft's
/// `mkbootinfo.py` pre-fills one KERNEL descriptor per loadable segment).
///
/// # Safety
///
/// As for [`push_regions`].
pub unsafe fn has_type(bi: *const Bootinfo, memrt: u16) -> bool {
    // SAFETY: the caller guarantees `bi` is valid, with `count` descriptors after it.
    let b = unsafe { &*bi };
    // SAFETY: the descriptor array starts right after the 80-byte header.
    let base = unsafe { bi.add(1) }.cast::<MemregionDesc>();
    (0..b.mrds.count.min(b.mrds.capacity) as usize)
        // SAFETY: i < count <= capacity.
        .any(|i| unsafe { (*base.add(i)).r#type } == memrt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use plat_kvm_arm::memregion::{MemRange, RegionFlags};

    #[test]
    fn descriptors_are_valid_mrds() {
        let r = Region {
            range: MemRange {
                start: 0x8fe0_0010,
                end: 0x8fe0_2000,
            },
            kind: RegionKind::DeviceTree,
            flags: RegionFlags::READ,
        };
        let d = desc_of(&r);
        assert_eq!(
            (d.pbase, d.pg_off, d.len, d.pg_count),
            (0x8fe0_0000, 0x10, 0x1ff0, 2)
        );
        assert_eq!((d.r#type, d.flags), (0x20, 1));
    }

    #[test]
    fn push_respects_capacity() {
        #[repr(C)]
        struct Bi {
            h: Bootinfo,
            d: [MemregionDesc; 2],
        }
        let zero = MemregionDesc {
            pbase: 0,
            vbase: 0,
            pg_off: 0,
            len: 0,
            pg_count: 0,
            r#type: 0,
            flags: 0,
        };
        let mut bi = Bi {
            h: Bootinfo {
                magic: BOOTINFO_MAGIC,
                version: 1,
                _pad0: [0; 3],
                bootloader: [0; 16],
                bootprotocol: [0; 16],
                cmdline: 0,
                cmdline_len: 0,
                dtb: 0,
                efi_st: 0,
                mrds: MemregionList {
                    capacity: 2,
                    count: 1,
                },
            },
            d: [zero; 2],
        };
        let r = Region {
            range: MemRange {
                start: 0x1000,
                end: 0x3000,
            },
            kind: RegionKind::Free,
            flags: RegionFlags::RW,
        };
        let p = core::ptr::addr_of_mut!(bi).cast::<Bootinfo>();
        // SAFETY: `Bi` places two descriptors right after the header.
        assert_eq!(unsafe { push_regions(p, [r].into_iter()) }, Ok(()));
        // SAFETY: as above.
        assert_eq!(
            unsafe { push_regions(p, [r].into_iter()) },
            Err(CapacityExceeded)
        );
        assert_eq!(bi.h.mrds.count, 2);
        // SAFETY: as above.
        assert!(unsafe { has_type(p, memrt::FREE) });
        // SAFETY: as above.
        assert!(!unsafe { has_type(p, memrt::KERNEL) });
        assert_eq!(bi.d[1].r#type, memrt::FREE);
        assert_eq!(bi.d[1].pg_count, 2);
    }
}
