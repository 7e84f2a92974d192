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
///
/// `None` lets a test skip when they are missing, except under `CI=true`: CI must
/// run the fixture tests, so a missing directory panics there instead of passing
/// silently.
pub fn fixtures_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("PLAT_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"));
    if dir.join("dtb").is_dir() {
        return Some(dir);
    }
    assert!(
        !in_ci(),
        "CI=true but the fixtures are missing: no {}/dtb (set PLAT_FIXTURES)",
        dir.display()
    );
    None
}

/// Whether this run is CI (`CI=true` or `CI=1`), where a missing prerequisite fails.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Deterministic printable text with about one newline per 21 bytes (console tests
/// and the console bench).
pub fn text(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            match seed % 64 {
                0..=2 => b'\n',
                n => b' ' + (n * 7 % 95) as u8,
            }
        })
        .collect()
}

/// `input` with every `\n` turned into `\r\n`, as the drivers send it.
pub fn crlf(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() * 2);
    for &b in input {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}
