//! Shared helpers for the host integration tests in `tests/tests/`.

use plat_kvm_arm::bootinfo::ImageSegment;
use plat_kvm_arm::memregion::{MemRange, RegionFlags};
use std::path::PathBuf;

/// A small image at kvmtool's load address (text RX, then data RW), for tests
/// that need one but do not care about its layout.
pub const TEST_IMAGE: [ImageSegment; 2] = [
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

/// Where the captured fixtures live (`../shared/fixtures` next to the checkout, or `$PLAT_FIXTURES`).
pub fn fixtures_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("PLAT_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"));
    dir.is_dir().then_some(dir)
}
