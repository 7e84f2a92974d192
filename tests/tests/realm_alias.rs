//! A realm's device-tree rewrite (`realm::alias_devices`) on every captured tree
//! (kvmtool, QEMU, Firecracker), checked with Google's `dtoolkit` as the reader:
//! every device address, and nothing else, gains the shared bit; the rewritten
//! tree still parses to the same boot information, with the devices at their
//! aliases; a second pass changes nothing.

use dtoolkit::fdt::{Fdt, FdtNode};
use dtoolkit::{Node, Property};
use plat_kvm_arm::bootinfo::{self, ImageLayout, ImageSegment};
use plat_kvm_arm::memregion::{MemRange, RegionFlags};
use plat_kvm_arm::realm::{self, AliasError};
use plat_tests::fixtures_dir;

/// The shared bit of a realm with a 40-bit IPA space (kvmtool-cca's default).
const SHARED: u64 = 1 << 39;

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let Some(dir) = fixtures_dir() else {
        println!("SKIPPED: fixtures directory ../shared/fixtures not found (set PLAT_FIXTURES)");
        return vec![];
    };
    let mut v = vec![];
    for sub in ["kvmtool", "qemu", "firecracker"] {
        for e in std::fs::read_dir(dir.join("dtb").join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "dtb") {
                v.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    assert!(!v.is_empty());
    v
}

/// A property's value, copied (the reader's values borrow the property).
fn prop(n: &FdtNode<'_>, name: &str) -> Option<Vec<u8>> {
    n.properties()
        .find(|p| p.name() == name)
        .map(|p| p.value().to_vec())
}

fn cells(n: &FdtNode<'_>) -> (usize, usize) {
    let get = |name, d| {
        prop(n, name).map_or(d, |v| {
            u32::from_be_bytes(v[..4].try_into().unwrap()) as usize
        })
    };
    (get("#address-cells", 2), get("#size-cells", 1))
}

fn num(v: &[u8], at: usize, n: usize) -> u64 {
    v[at * 4..(at + n) * 4].chunks(4).fold(0, |a, c| {
        (a << 32) | u64::from(u32::from_be_bytes(c.try_into().unwrap()))
    })
}

fn enabled(n: &FdtNode<'_>) -> bool {
    prop(n, "status").is_none_or(|v| v == b"okay\0" || v == b"ok\0")
}

/// The device addresses as an independent reader sees them: (address, size) of
/// each `reg` entry of the root's device children and of the children of
/// 1:1-mapped buses, and the CPU side of each PCI `ranges` entry.
fn device_addrs(blob: &[u8]) -> Vec<(u64, u64)> {
    let fdt = Fdt::new(total(blob)).expect("dtoolkit reads the fixture");
    let root = fdt.root();
    let (ra, rs) = cells(&root);
    let mut out = vec![];
    let regs = |v: &[u8], a: usize, s: usize, out: &mut Vec<(u64, u64)>| {
        for e in 0..v.len() / ((a + s) * 4) {
            out.push((num(v, e * (a + s), a), num(v, e * (a + s) + a, s)));
        }
    };
    for n in root.children() {
        let name = n.name();
        let base = name.split('@').next().unwrap();
        if ["chosen", "aliases", "cpus", "reserved-memory"].contains(&base)
            || prop(&n, "device_type").as_deref() == Some(&b"memory\0"[..])
            || !enabled(&n)
        {
            continue;
        }
        if let Some(v) = prop(&n, "reg") {
            regs(&v, ra, rs, &mut out);
        }
        if prop(&n, "device_type").as_deref() == Some(&b"pci\0"[..]) {
            let v = prop(&n, "ranges").unwrap();
            let (_, cs) = cells(&n);
            let entry = 3 + ra + cs;
            for e in 0..v.len() / (entry * 4) {
                out.push((num(&v, e * entry + 3, ra), num(&v, e * entry + 3 + ra, cs)));
            }
        } else if prop(&n, "ranges").is_some_and(|v| v.is_empty()) {
            let (ca, cs) = cells(&n);
            for c in n.children() {
                if let (Some(v), true) = (prop(&c, "reg"), enabled(&c)) {
                    regs(&v, ca, cs, &mut out);
                }
            }
        }
    }
    out
}

/// The blob without the padding after `totalsize` (kvmtool hands a 64 KiB window;
/// dtoolkit wants the exact size).
fn total(blob: &[u8]) -> &[u8] {
    let n = u32::from_be_bytes(blob[4..8].try_into().unwrap()) as usize;
    &blob[..n.min(blob.len())]
}

/// An image inside the first RAM bank, wherever that is.
fn image_for(blob: &[u8]) -> [ImageSegment; 1] {
    let fdt = Fdt::new(total(blob)).unwrap();
    let mem = fdt
        .root()
        .children()
        .find(|n| prop(n, "device_type").as_deref() == Some(&b"memory\0"[..]))
        .unwrap();
    let base = num(&prop(&mem, "reg").unwrap(), 0, 2);
    [ImageSegment {
        range: MemRange {
            start: base + 0x20_0000,
            end: base + 0x40_0000,
        },
        flags: RegionFlags::RW,
    }]
}

/// The DTB 16 MiB above the image, inside even the smallest fixture's RAM.
fn dtb_addr(blob: &[u8]) -> u64 {
    image_for(blob)[0].range.start + 0x100_0000
}

/// Ranges sorted, with overlapping or touching ones joined.
fn merged(it: impl Iterator<Item = (u64, u64)>) -> Vec<(u64, u64)> {
    let mut v: Vec<_> = it.collect();
    v.sort();
    let mut out: Vec<(u64, u64)> = vec![];
    for (s, e) in v {
        match out.last_mut() {
            Some(l) if s <= l.1 => l.1 = l.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

#[test]
fn every_device_address_and_nothing_else_gains_the_shared_bit() {
    for (name, orig) in fixtures() {
        let before = device_addrs(&orig);
        assert!(!before.is_empty(), "{name}: no devices");
        let mut blob = orig.clone();
        // QEMU's high PCI window at 512 GiB already lies in the unprotected half.
        let fresh = before.iter().filter(|&&(a, _)| a & SHARED == 0).count();
        let n = realm::alias_devices(&mut blob, SHARED).unwrap();
        assert_eq!(n, fresh, "{name}");
        let after = device_addrs(&blob);
        let want: Vec<_> = before.iter().map(|&(a, s)| (a | SHARED, s)).collect();
        assert_eq!(after, want, "{name}");
        // Only address cells changed, and each by exactly the shared bit's byte.
        let diff: Vec<usize> = (0..blob.len()).filter(|&i| blob[i] != orig[i]).collect();
        assert_eq!(diff.len(), fresh, "{name}: one byte per address");
        for i in diff {
            assert_eq!(blob[i] ^ orig[i], 0x80, "{name}: byte {i}");
        }
        // Idempotent: a second pass finds every address already aliased.
        assert_eq!(
            realm::alias_devices(&mut blob.clone(), SHARED),
            Ok(0),
            "{name}"
        );

        // The boot information of the rewritten tree: the same regions, RAM and
        // command line; devices (and the console) at their aliases.
        let seg = image_for(&orig);
        let img = ImageLayout { segments: &seg };
        let a = bootinfo::parse(&orig, dtb_addr(&orig), &img).unwrap();
        let b = bootinfo::parse(&blob, dtb_addr(&orig), &img).unwrap();
        assert_eq!(a.regions.as_slice(), b.regions.as_slice(), "{name}");
        assert_eq!(a.ram.as_slice(), b.ram.as_slice(), "{name}");
        assert_eq!(a.cmdline, b.cmdline, "{name}");
        // Compared as covered ranges: aliases may now touch a window that was
        // already unprotected (QEMU's high PCI window) and merge with it.
        let shifted = merged(
            a.devices
                .iter()
                .map(|d| (d.start | SHARED, (d.start | SHARED) + (d.end - d.start))),
        );
        assert_eq!(
            merged(b.devices.iter().map(|d| (d.start, d.end))),
            shifted,
            "{name}"
        );
        // The boot path's single walk locates the same addresses.
        let mut alone = plat_kvm_arm::memregion::FixedList::new();
        bootinfo::device_addresses(&orig, &mut alone).unwrap();
        let mut noted = plat_kvm_arm::memregion::FixedList::new();
        let mut d = bootinfo::BootInfo::empty();
        bootinfo::parse_into_noting(&orig, dtb_addr(&orig), &img, &mut d, Some(&mut noted))
            .unwrap();
        assert_eq!(alone.as_slice(), noted.as_slice(), "{name}");
        assert_eq!(
            realm::alias_patches_at(&orig, &noted, SHARED)
                .unwrap()
                .as_slice(),
            realm::alias_patches(&orig, SHARED).unwrap().as_slice(),
            "{name}"
        );
        // Aliasing the first parse in place gives the second parse.
        let mut c = a.clone();
        realm::alias_boot_info(&mut c, SHARED);
        assert_eq!(
            merged(c.devices.iter().map(|d| (d.start, d.end))),
            shifted,
            "{name}"
        );
        assert_eq!(c.gic, b.gic, "{name}");
        // The same UART; a second parse would no longer match it to an `earlycon=`
        // address on the command line (the protected one) and call it the first UART.
        assert_eq!(c.console.map(|u| u.0), b.console.map(|u| u.0), "{name}");
        assert_eq!(c.console.map(|u| u.1), a.console.map(|u| u.1), "{name}");
        assert_eq!(c.regions.as_slice(), b.regions.as_slice(), "{name}");
        let (ua, _) = a.console.unwrap();
        let (ub, _) = b.console.unwrap();
        assert_eq!(ub.base, ua.base | SHARED, "{name}");
    }
}

#[test]
fn a_device_beyond_the_protected_half_is_refused() {
    let Some((name, orig)) = fixtures().into_iter().find(|(n, _)| n.contains("kvmtool")) else {
        return;
    };
    // A 30-bit IPA space (shared bit 1 << 29): kvmtool's PCI ECAM at 0x40000000 and
    // memory window at 0x50000000 lie beyond it; the first such address is named.
    let mut blob = orig.clone();
    match realm::alias_devices(&mut blob, 1 << 29) {
        Err(AliasError::OutsideIpa(a)) => assert!(a >= 1 << 30, "{name}: {a:#x}"),
        other => panic!("{name}: {other:?}"),
    }
    assert_eq!(blob, orig, "{name}: nothing written on refusal");
}

/// A hand-made tree whose root uses one address cell: its alias cannot be written.
#[test]
fn one_address_cell_cannot_hold_the_alias() {
    let mut w = vm_fdt::FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    let mem = w.begin_node("memory@40000000").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u32("reg", &[0x4000_0000, 0x1000_0000])
        .unwrap();
    w.end_node(mem).unwrap();
    let uart = w.begin_node("uart@9000000").unwrap();
    w.property_string("compatible", "arm,pl011").unwrap();
    w.property_array_u32("reg", &[0x900_0000, 0x1000]).unwrap();
    w.end_node(uart).unwrap();
    w.end_node(root).unwrap();
    let mut blob = w.finish().unwrap();
    let orig = blob.clone();
    assert_eq!(
        realm::alias_devices(&mut blob, SHARED),
        Err(AliasError::TooNarrow(0x900_0000))
    );
    assert_eq!(blob, orig);
    // With a shared bit that fits in 32 bits, it is written.
    assert_eq!(realm::alias_devices(&mut blob, 1 << 31), Ok(1));
    assert_eq!(
        &blob[..],
        &{
            let mut o = orig.clone();
            let at = o.windows(4).position(|w| w == [0x09, 0, 0, 0]).unwrap();
            o[at] |= 0x80;
            o
        }[..]
    );
}
