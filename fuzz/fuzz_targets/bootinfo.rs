//! Fuzzes the DTB -> boot info path with arbitrary blobs and placements.
//!
//! Input: 8-byte little-endian DTB address, then the blob (seeds: the captured
//! fixtures at several addresses, written by tests/fuzz/seeds.py). Asserts the
//! invariants of `check_bootinfo` on every accepted blob, and those of the PCI
//! host bridge `virtio_pci::find_host` reads from the same blob.
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
    if let Ok(dt) = plat_kvm_arm::fdt::Dt::open(blob)
        && let Ok(Some(h)) = plat_kvm_arm::virtio_pci::find_host(&dt)
    {
        // A bridge is only accepted whole: an ECAM of at least one bus that does
        // not wrap, buses in order, windows that wrap on neither side.
        assert!(h.ecam_len >= 1 << 20 && h.ecam.checked_add(h.ecam_len).is_some());
        assert!(h.buses.0 <= h.buses.1);
        for w in h.windows() {
            assert!(w.len != 0 && w.pci.checked_add(w.len).is_some() && w.cpu.checked_add(w.len).is_some());
        }
    }
});
