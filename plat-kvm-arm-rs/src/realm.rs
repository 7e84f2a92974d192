//! What an Arm CCA realm must check in the boot information before it trusts it.
//!
//! In a realm the host writes the DTB (it is measured, but a verifier may not look
//! closely), so its claims are validated against the realm's own view: RAM must lie
//! in the protected half of the IPA space, where the RMM guarantees integrity; every
//! device must be reachable at its unprotected alias, inside the IPA space; PSCI must
//! go to the RMM (SMC).

use crate::bootinfo::{self, BootInfo, BootInfoError, DeviceAddr, GicDesc, MAX_DEVICE_ADDRS};
use crate::fdt;
use crate::memregion::{FixedList, MemRange, PAGE_SIZE};
use crate::psci::Conduit;
use core::ops::Range;

/// Why a realm refuses the boot information.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RealmError {
    /// A `/memory` range reaches the unprotected half (or beyond the IPA space).
    MemoryNotProtected(MemRange),
    /// A device window's alias would fall outside the IPA space.
    DeviceUnreachable(MemRange),
    /// The DTB or initrd lies outside protected memory.
    BlobNotProtected(MemRange),
    /// `/psci` is absent or not `smc`: in a realm only the RMM serves PSCI.
    PsciNotSmc,
}

impl core::fmt::Display for RealmError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RealmError::MemoryNotProtected(r) => write!(
                f,
                "/memory [{:#x}, {:#x}) is outside the protected IPA space",
                r.start, r.end
            ),
            RealmError::DeviceUnreachable(r) => write!(
                f,
                "device [{:#x}, {:#x}) has no alias inside the IPA space",
                r.start, r.end
            ),
            RealmError::BlobNotProtected(r) => write!(
                f,
                "boot blob [{:#x}, {:#x}) is outside protected RAM",
                r.start, r.end
            ),
            RealmError::PsciNotSmc => f.write_str("/psci method is not smc, as a realm needs"),
        }
    }
}

/// Why the device tree's device addresses cannot be rewritten to their aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AliasError {
    /// The blob could not be walked (it was not accepted by [`bootinfo::parse`]).
    Parse(BootInfoError),
    /// A device address is one cell wide, and its alias needs more than 32 bits.
    TooNarrow(u64),
    /// A device address lies outside the protected half of the IPA space.
    OutsideIpa(u64),
}

impl core::fmt::Display for AliasError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AliasError::Parse(e) => write!(f, "{e}"),
            AliasError::TooNarrow(a) => write!(
                f,
                "device address {a:#x} has one address cell: its unprotected alias does not fit"
            ),
            AliasError::OutsideIpa(a) => {
                write!(f, "device address {a:#x} has no alias inside the IPA space")
            }
        }
    }
}

/// One rewrite of a device address: store `value` in the cells at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AliasPatch {
    /// Where the address lies in the blob.
    pub at: DeviceAddr,
    /// The unprotected alias to store there.
    pub value: u64,
}

impl AliasPatch {
    /// The big-endian bytes to write at `at.offset` (`at.cells * 4` of them).
    pub fn bytes(&self) -> ([u8; 8], usize) {
        let n = usize::from(self.at.cells) * 4;
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&self.value.to_be_bytes()[8 - n..]);
        (b, n)
    }
}

/// The rewrites that make every device address in `dtb` name its unprotected alias
/// (`| shared_bit`), so that an OS that takes addresses from the device tree and
/// maps them 1:1 (Unikraft's `uk_bus_pf_devmap` with paging) reaches the device
/// and never the protected IPA. Addresses that already carry the bit are left as
/// they are. `dtb` must be a blob [`bootinfo::parse`] accepted.
pub fn alias_patches(
    dtb: &[u8],
    shared_bit: u64,
) -> Result<FixedList<AliasPatch, MAX_DEVICE_ADDRS>, AliasError> {
    let mut addrs = FixedList::new();
    bootinfo::device_addresses(dtb, &mut addrs).map_err(AliasError::Parse)?;
    alias_patches_at(dtb, &addrs, shared_bit)
}

/// [`alias_patches`] for addresses already located (by
/// [`bootinfo::parse_into_noting`] on the same blob).
pub fn alias_patches_at(
    dtb: &[u8],
    addrs: &FixedList<DeviceAddr, MAX_DEVICE_ADDRS>,
    shared_bit: u64,
) -> Result<FixedList<AliasPatch, MAX_DEVICE_ADDRS>, AliasError> {
    let mut patches = FixedList::new();
    for at in addrs.iter() {
        let cells = usize::from(at.cells);
        let addr = fdt::read_cells(dtb, at.offset as usize / 4, cells)
            .filter(|_| at.offset % 4 == 0)
            .ok_or(AliasError::Parse(BootInfoError::Dt(
                fdt::DtError::Truncated,
            )))?;
        // Beyond the unprotected half too, the address names nothing in the IPA space.
        if addr >= shared_bit << 1 {
            return Err(AliasError::OutsideIpa(addr));
        }
        if addr & shared_bit != 0 {
            continue;
        }
        let value = addr | shared_bit;
        if cells == 1 && value > u64::from(u32::MAX) {
            return Err(AliasError::TooNarrow(addr));
        }
        // As many patches as addresses: the capacities are equal.
        let _ = patches.push(AliasPatch { at, value });
    }
    Ok(patches)
}

/// [`alias_patches`] applied to a blob the caller owns; returns how many addresses
/// changed.
pub fn alias_devices(dtb: &mut [u8], shared_bit: u64) -> Result<usize, AliasError> {
    let patches = alias_patches(dtb, shared_bit)?;
    for p in patches.iter() {
        let (b, n) = p.bytes();
        let o = p.at.offset as usize;
        dtb[o..o + n].copy_from_slice(&b[..n]);
    }
    Ok(patches.len())
}

/// `bi` as [`crate::bootinfo::parse`] reads it from the blob after
/// [`alias_devices`]: device windows, the console and the GIC at their aliases; RAM,
/// regions and the command line unchanged. Saves a second walk of the tree.
pub fn alias_boot_info(bi: &mut BootInfo<'_>, shared_bit: u64) {
    let alias = |r: MemRange| {
        let start = r.start | shared_bit;
        MemRange {
            start,
            end: start.saturating_add(r.len()),
        }
    };
    let mut devices = FixedList::new();
    for d in bi.devices.iter() {
        // Never more ranges than before: the list cannot fill.
        let _ = devices.insert_merged(alias(d));
    }
    bi.devices = devices;
    if let Some((u, _)) = bi.console.as_mut() {
        u.base |= shared_bit;
    }
    bi.gic = bi.gic.map(|g| match g {
        GicDesc::V2 { dist, cpu } => GicDesc::V2 {
            dist: alias(dist),
            cpu: alias(cpu),
        },
        GicDesc::V3 { dist, redist } => GicDesc::V3 {
            dist: alias(dist),
            redist: alias(redist),
        },
    });
}

/// Validates `bi` for a realm whose unprotected bit is `shared_bit`.
pub fn check(bi: &BootInfo<'_>, shared_bit: u64) -> Result<(), RealmError> {
    for r in bi.ram.iter() {
        if r.end > shared_bit {
            return Err(RealmError::MemoryNotProtected(r));
        }
    }
    for d in bi.devices.iter() {
        // The alias is d | shared_bit; it stays inside the IPA space [0, 2 * shared_bit)
        // only if the window lies below the shared bit.
        if d.end > shared_bit {
            return Err(RealmError::DeviceUnreachable(d));
        }
    }
    for b in core::iter::once(bi.dtb).chain(bi.initrd) {
        if !bi.ram.iter().any(|r| r.contains_range(&b)) {
            return Err(RealmError::BlobNotProtected(b));
        }
    }
    if bi.psci != Some(Conduit::Smc) {
        return Err(RealmError::PsciNotSmc);
    }
    Ok(())
}

/// The RAM ranges to make RIPAS RAM: each bank, rounded inward to granules.
pub fn ram_ranges<'b>(bi: &'b BootInfo<'_>) -> impl Iterator<Item = Range<u64>> + 'b {
    bi.ram.iter().filter_map(|r| {
        let start = r.start.checked_add(PAGE_SIZE - 1)? & !(PAGE_SIZE - 1);
        let end = r.end & !(PAGE_SIZE - 1);
        (start < end).then_some(start..end)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootinfo::ConsoleSource;
    use crate::memregion::FixedList;

    fn bi() -> BootInfo<'static> {
        let mut ram = FixedList::new();
        ram.push(MemRange {
            start: 0x8000_0000,
            end: 0x8400_0000,
        })
        .unwrap();
        let mut devices = FixedList::new();
        devices
            .push(MemRange {
                start: 0x100_0000,
                end: 0x100_4000,
            })
            .unwrap();
        BootInfo {
            regions: FixedList::new(),
            ram,
            devices,
            cmdline: None,
            console: Some((Default::default(), ConsoleSource::StdoutPath)),
            psci: Some(Conduit::Smc),
            gic: None,
            dtb: MemRange {
                start: 0x83e0_0000,
                end: 0x83e0_1000,
            },
            initrd: None,
            cpu_count: 1,
        }
    }

    #[test]
    fn accepts_kvmtool_realm_layout() {
        assert_eq!(check(&bi(), 1 << 32), Ok(()));
        let ranges: std::vec::Vec<_> = ram_ranges(&bi()).collect();
        assert_eq!(ranges, std::vec![0x8000_0000u64..0x8400_0000]);
    }

    #[test]
    fn refuses_what_a_host_could_lie_about() {
        // A 33-bit realm with 4 GiB of "RAM" from 2 GiB runs into the alias.
        let mut b = bi();
        b.ram = FixedList::new();
        b.ram
            .push(MemRange {
                start: 0x8000_0000,
                end: 0x1_8000_0000,
            })
            .unwrap();
        assert!(matches!(
            check(&b, 1 << 32),
            Err(RealmError::MemoryNotProtected(_))
        ));
        let mut b = bi();
        b.devices
            .push(MemRange {
                start: 0x1_0100_0000,
                end: 0x1_0100_1000,
            })
            .unwrap();
        assert!(matches!(
            check(&b, 1 << 32),
            Err(RealmError::DeviceUnreachable(_))
        ));
        let mut b = bi();
        b.psci = Some(Conduit::Hvc);
        assert_eq!(check(&b, 1 << 32), Err(RealmError::PsciNotSmc));
        let mut b = bi();
        b.dtb = MemRange {
            start: 0x7000_0000,
            end: 0x7000_1000,
        };
        assert!(matches!(
            check(&b, 1 << 32),
            Err(RealmError::BlobNotProtected(_))
        ));
    }
}
