//! Fuzzes the DTB -> boot info path with arbitrary blobs and placements.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plat_kvm_arm::bootinfo::{self, ImageLayout, ImageSegment};
use plat_kvm_arm::memregion::{MemRange, RegionFlags, RegionKind};

const IMG: [ImageSegment; 2] = [
    ImageSegment {
        range: MemRange {
            start: 0x8010_0000,
            end: 0x8014_0000,
        },
        flags: RegionFlags::RX,
    },
    ImageSegment {
        range: MemRange {
            start: 0x8014_0000,
            end: 0x8020_0000,
        },
        flags: RegionFlags::RW,
    },
];

fuzz_target!(|data: &[u8]| {
    // The first 8 bytes choose where the blob "lies"; the rest is the blob.
    let (at, blob) = if data.len() >= 8 {
        (
            u64::from_le_bytes(data[..8].try_into().unwrap()),
            &data[8..],
        )
    } else {
        (0x83e0_0000, data)
    };
    if let Ok(bi) = bootinfo::parse(blob, at, &ImageLayout { segments: &IMG }) {
        for f in bi.regions.iter().filter(|r| r.kind == RegionKind::Free) {
            assert!(f.range.start % 4096 == 0 && f.range.end % 4096 == 0);
            assert!(bi.ram.iter().any(|b| b.contains_range(&f.range)));
            for o in bi.regions.iter().filter(|r| r.kind != RegionKind::Free) {
                assert!(!f.range.overlaps(&o.range));
            }
        }
    }
});
