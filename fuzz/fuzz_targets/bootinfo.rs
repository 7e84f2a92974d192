//! Fuzzes the DTB -> boot info path with arbitrary blobs and placements.
//!
//! Input: 8-byte little-endian DTB address, then the blob (seeds: the captured
//! fixtures at several addresses, written by tests/fuzz/seeds.py). Asserts the
//! invariants of `check_bootinfo` on every accepted blob.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plat_kvm_arm::bootinfo::{self, ImageLayout, ImageSegment};
use plat_kvm_arm::memregion::{MemRange, RegionFlags};
use plat_kvm_arm_fuzz::{check_bootinfo, split_addr};

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
    let (at, blob) = split_addr(data);
    let image = ImageLayout { segments: &IMG };
    if let Ok(bi) = bootinfo::parse(blob, at, &image) {
        check_bootinfo(&bi, &image, at, blob.len());
    }
});
