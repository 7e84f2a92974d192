//! Helpers shared by the fuzz targets: a structured device-tree generator
//! ([`tree`]) and the invariants every accepted boot info must satisfy
//! ([`check_bootinfo`]).

pub mod tree;

use plat_kvm_arm::bootinfo::{BootInfo, ImageLayout};
use plat_kvm_arm::memregion::{MemRange, PAGE_SIZE, RegionKind};

/// A 4 KiB page starting at `p`.
fn page(p: u64) -> MemRange {
    MemRange {
        start: p,
        end: p + PAGE_SIZE,
    }
}

/// Asserts what must hold of any boot info `parse` accepted, whatever the input:
///
/// - regions are sorted by start;
/// - every FREE region is non-empty, page-aligned, inside one RAM bank, and overlaps
///   no other region (FREE or not): the allocator never hands out the image, the
///   DTB, the initrd or a reservation;
/// - non-FREE regions may overlap each other (a `/memreserve/` covering the DTB is
///   legitimate), but every image segment and the DTB is listed;
/// - the DTB range is `[dtb_at, dtb_at + totalsize)`, `totalsize <= blob_len`;
/// - RAM banks are non-empty, sorted and disjoint; device windows are page-aligned,
///   sorted, disjoint and never touch a RAM page;
/// - completeness: a RAM page that overlaps no non-FREE region is inside a FREE one
///   (checked at the first, middle and last page of each bank).
pub fn check_bootinfo(bi: &BootInfo<'_>, image: &ImageLayout<'_>, dtb_at: u64, blob_len: usize) {
    let regions = bi.regions.as_slice();
    for w in regions.windows(2) {
        assert!(w[0].range.start <= w[1].range.start, "regions not sorted");
    }
    for (i, f) in regions.iter().enumerate() {
        if f.kind != RegionKind::Free {
            continue;
        }
        assert!(!f.range.is_empty(), "empty free region");
        assert!(
            f.range.start % PAGE_SIZE == 0 && f.range.end % PAGE_SIZE == 0,
            "free region {f:?} not page-aligned"
        );
        assert!(
            bi.ram.iter().any(|b| b.contains_range(&f.range)),
            "free region {f:?} outside RAM"
        );
        for (j, o) in regions.iter().enumerate() {
            if i != j {
                assert!(!f.range.overlaps(&o.range), "free {f:?} overlaps {o:?}");
            }
        }
    }
    for s in image.segments {
        assert!(
            regions
                .iter()
                .any(|r| r.kind == RegionKind::Kernel && r.range == s.range),
            "image segment {s:?} not listed"
        );
    }
    assert_eq!(bi.dtb.start, dtb_at, "DTB start");
    assert!(
        bi.dtb.len() as usize <= blob_len,
        "DTB longer than the blob"
    );
    assert!(
        regions
            .iter()
            .any(|r| r.kind == RegionKind::DeviceTree && r.range == bi.dtb),
        "DTB not listed"
    );
    let ram = bi.ram.as_slice();
    assert!(!ram.is_empty());
    for b in ram {
        assert!(!b.is_empty(), "empty RAM bank");
    }
    for w in ram.windows(2) {
        assert!(w[0].end <= w[1].start, "RAM banks unsorted or overlapping");
    }
    let devs = bi.devices.as_slice();
    for d in devs {
        assert!(!d.is_empty() && d.start % PAGE_SIZE == 0 && d.end % PAGE_SIZE == 0);
        assert!(
            !ram.iter().any(|b| b.page_outer().overlaps(d)),
            "device {d:?} overlaps RAM"
        );
    }
    for w in devs.windows(2) {
        assert!(
            w[0].end < w[1].start,
            "devices unsorted, overlapping or unmerged"
        );
    }
    // Completeness at a few pages per bank.
    for b in ram {
        let Some(inner) = page_inner(*b) else {
            continue;
        };
        let mid = (inner.start + (inner.len() / 2)) & !(PAGE_SIZE - 1);
        for p in [inner.start, mid, inner.end - PAGE_SIZE] {
            let pg = page(p);
            let taken = regions
                .iter()
                .any(|r| r.kind != RegionKind::Free && r.range.overlaps(&pg));
            if !taken {
                assert!(
                    regions
                        .iter()
                        .any(|r| r.kind == RegionKind::Free && r.range.contains_range(&pg)),
                    "free RAM page {p:#x} not listed as FREE"
                );
            }
        }
    }
}

/// `r` rounded inward to pages, if a whole page remains.
pub fn page_inner(r: MemRange) -> Option<MemRange> {
    let start = r.start.checked_add(PAGE_SIZE - 1)? & !(PAGE_SIZE - 1);
    let end = r.end & !(PAGE_SIZE - 1);
    (start < end).then_some(MemRange { start, end })
}

/// Splits the byte-level input format shared by `bootinfo` and `bootmap`: the first
/// 8 bytes (little-endian) are the DTB's address, the rest is the blob.
pub fn split_addr(data: &[u8]) -> (u64, &[u8]) {
    match data.split_first_chunk::<8>() {
        Some((a, blob)) => (u64::from_le_bytes(*a), blob),
        None => (0x83e0_0000, data),
    }
}
