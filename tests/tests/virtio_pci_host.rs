//! The generic ECAM host bridge as `virtio_pci::find_host` reads it, on every
//! captured tree (kvmtool, QEMU, Firecracker), checked against Google's
//! `dtoolkit` as an independent reader; the values of the kvmtool and QEMU
//! bridges spelled out; and malformed bridges refused.

use dtoolkit::fdt::{Fdt, FdtNode};
use dtoolkit::{Node, Property};
use plat_kvm_arm::fdt::Dt;
use plat_kvm_arm::virtio_pci::{Window, find_host};
use plat_tests::fixtures_dir;

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

fn prop(n: &FdtNode<'_>, name: &str) -> Option<Vec<u8>> {
    n.properties()
        .find(|p| p.name() == name)
        .map(|p| p.value().to_vec())
}

fn num(v: &[u8], at: usize, n: usize) -> u64 {
    v[at * 4..(at + n) * 4].chunks(4).fold(0, |a, c| {
        (a << 32) | u64::from(u32::from_be_bytes(c.try_into().unwrap()))
    })
}

fn cell(n: &FdtNode<'_>, name: &str, d: usize) -> usize {
    prop(n, name).map_or(d, |v| num(&v, 0, 1) as usize)
}

/// (ECAM, ECAM size, buses, memory windows) by dtoolkit, or None without a bridge.
type Expected = (u64, u64, (u8, u8), Vec<Window>);

/// The blob without the padding after `totalsize` (kvmtool hands over a 64 KiB
/// window), which dtoolkit does not accept.
fn total(blob: &[u8]) -> &[u8] {
    let n = u32::from_be_bytes(blob[4..8].try_into().unwrap()) as usize;
    &blob[..n.min(blob.len())]
}

fn expected(blob: &[u8]) -> Option<Expected> {
    let fdt = Fdt::new(total(blob)).unwrap();
    let root = fdt.root();
    let (ra, rs) = (
        cell(&root, "#address-cells", 2),
        cell(&root, "#size-cells", 1),
    );
    let n = root.children().find(|c| {
        prop(c, "compatible")
            .is_some_and(|v| v.split(|&b| b == 0).any(|s| s == b"pci-host-ecam-generic"))
            && prop(c, "status").is_none_or(|v| v == b"okay\0" || v == b"ok\0")
    })?;
    let reg = prop(&n, "reg").unwrap();
    let (ecam, len) = (num(&reg, 0, ra), num(&reg, ra, rs));
    let buses =
        prop(&n, "bus-range").map_or((0, 255), |v| (num(&v, 0, 1) as u8, num(&v, 1, 1) as u8));
    let cs = cell(&n, "#size-cells", 2);
    let ranges = prop(&n, "ranges").unwrap_or_default();
    let entry = 3 + ra + cs;
    let mut w = vec![];
    for e in 0..ranges.len() / 4 / entry {
        let at = e * entry;
        let hi = num(&ranges, at, 1);
        let space = (hi >> 24) & 3;
        let size = num(&ranges, at + 3 + ra, cs);
        if space >= 2 && size != 0 {
            w.push(Window {
                pci: num(&ranges, at + 1, 2),
                cpu: num(&ranges, at + 3, ra),
                len: size,
                mem64: space == 3,
            });
        }
    }
    Some((ecam, len, buses, w))
}

#[test]
fn every_fixture_matches_an_independent_reader() {
    let mut bridges = 0;
    for (name, blob) in fixtures() {
        let dt = Dt::open(&blob).unwrap();
        let got = find_host(&dt).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let want = expected(&blob);
        match (got, want) {
            (None, None) => {}
            (Some(h), Some((ecam, len, buses, w))) => {
                bridges += 1;
                assert_eq!((h.ecam, h.ecam_len, h.buses), (ecam, len, buses), "{name}");
                assert_eq!(h.windows(), &w[..], "{name}");
            }
            (g, w) => panic!("{name}: find_host {g:?}, dtoolkit {w:?}"),
        }
    }
    if fixtures_dir().is_some() {
        assert!(bridges >= 2, "kvmtool's and QEMU's trees have a bridge");
    }
}

#[test]
fn kvmtool_and_qemu_bridges() {
    let Some(dir) = fixtures_dir() else {
        println!("SKIPPED: fixtures directory not found");
        return;
    };
    let read = |p: &str| std::fs::read(dir.join("dtb").join(p)).unwrap();
    let k = read("kvmtool/m64-c1.dtb");
    let h = find_host(&Dt::open(&k).unwrap()).unwrap().unwrap();
    // kvmtool's arm64 map: ECAM at 1 GiB, one bus, MEM32 0x50000000-0x80000000.
    assert_eq!(
        (h.ecam, h.ecam_len, h.buses),
        (0x4000_0000, 0x1000_0000, (0, 0))
    );
    assert_eq!(
        h.windows(),
        &[Window {
            pci: 0x5000_0000,
            cpu: 0x5000_0000,
            len: 0x3000_0000,
            mem64: false
        }]
    );
    let q = read("qemu/virt-m128.dtb");
    let h = find_host(&Dt::open(&q).unwrap()).unwrap().unwrap();
    // QEMU virt's high ECAM, 256 buses, a 32-bit and a 64-bit window.
    assert_eq!(
        (h.ecam, h.ecam_len, h.buses),
        (0x40_1000_0000, 0x1000_0000, (0, 255))
    );
    assert_eq!(h.windows().len(), 2);
    assert_eq!(
        (h.windows()[0].pci, h.windows()[0].cpu, h.windows()[0].mem64),
        (0x1000_0000, 0x1000_0000, false)
    );
    assert!(h.windows()[1].mem64);
}

/// A tree with one bridge whose properties are `props` (name, big-endian cells).
fn bridge_tree(props: &[(&str, Vec<u32>)], compatible: &str) -> Vec<u8> {
    use vm_fdt::FdtWriter;
    let mut w = FdtWriter::new().unwrap();
    let r = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let n = w.begin_node("pci").unwrap();
    w.property_string("compatible", compatible).unwrap();
    w.property_string("device_type", "pci").unwrap();
    w.property_u32("#address-cells", 3).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    for (name, v) in props {
        w.property_array_u32(name, v).unwrap();
    }
    w.end_node(n).unwrap();
    w.end_node(r).unwrap();
    w.finish().unwrap()
}

/// A bridge's properties: (name, cells).
type Props<'a> = Vec<(&'a str, Vec<u32>)>;

const MEM32: [u32; 7] = [0x0200_0000, 0, 0x5000_0000, 0, 0x5000_0000, 0, 0x3000_0000];

#[test]
fn malformed_bridges_are_refused() {
    let ok_reg = vec![0, 0x4000_0000, 0, 0x1000_0000];
    let cases: [(&str, Props); 5] = [
        // The ECAM smaller than one bus.
        (
            "small ecam",
            vec![
                ("reg", vec![0, 0x4000_0000, 0, 0x1000]),
                ("ranges", MEM32.to_vec()),
            ],
        ),
        // The ECAM wraps the address space.
        (
            "wrapping ecam",
            vec![("reg", vec![0xffff_ffff, 0xfff0_0000, 0, 0x1000_0000])],
        ),
        // Buses backwards.
        (
            "bus-range",
            vec![("reg", ok_reg.clone()), ("bus-range", vec![5, 1])],
        ),
        // A ranges entry cut short.
        (
            "ranges",
            vec![("reg", ok_reg.clone()), ("ranges", MEM32[..6].to_vec())],
        ),
        // A window that wraps.
        (
            "wrapping window",
            vec![
                ("reg", ok_reg.clone()),
                (
                    "ranges",
                    vec![
                        0x0200_0000,
                        0,
                        0x5000_0000,
                        0xffff_ffff,
                        0xf000_0000,
                        0x1,
                        0,
                    ],
                ),
            ],
        ),
    ];
    for (what, props) in cases {
        let t = bridge_tree(&props, "pci-host-ecam-generic");
        assert!(
            find_host(&Dt::open(&t).unwrap()).is_err(),
            "{what} accepted"
        );
    }
    // The same bridge well formed is found; another compatible is not a bridge.
    let good = [("reg", ok_reg), ("ranges", MEM32.to_vec())];
    let h = find_host(&Dt::open(&bridge_tree(&good, "pci-host-ecam-generic")).unwrap()).unwrap();
    assert_eq!(h.map(|h| h.windows().len()), Some(1));
    let other = bridge_tree(&good, "pci-host-cam-generic");
    assert_eq!(find_host(&Dt::open(&other).unwrap()).unwrap(), None);
}
