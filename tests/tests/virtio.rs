//! `virtio,mmio` windows found in device trees: QEMU virt's captured tree (32
//! transports), kvmtool's without virtio, and kvmtool's `--virtio-transport mmio`
//! node as the machine model writes it.

use plat_kvm_arm::fdt::Dt;
use plat_kvm_arm::virtio::{MAX_MMIO, find_mmio};
use plat_tests::fixtures_dir;
use vm_fdt::FdtWriter;

fn find(blob: &[u8]) -> Vec<(u64, u64)> {
    let dt = Dt::open(blob).expect("valid tree");
    let mut out = [(0, 0); MAX_MMIO];
    let n = find_mmio(&dt, &mut out).expect("well-formed");
    out[..n].to_vec()
}

#[test]
fn captured_trees() {
    let Some(dir) = fixtures_dir() else {
        println!("SKIPPED: fixtures directory ../shared/fixtures not found (set PLAT_FIXTURES)");
        return;
    };
    let qemu = std::fs::read(dir.join("dtb/qemu/virt-m128.dtb")).expect("fixture");
    let w = find(&qemu);
    assert_eq!(w.len(), 32, "QEMU virt's 32 transports");
    for (a, s) in &w {
        assert_eq!(*s, 0x200);
        assert!(
            (0xa00_0000..0xa00_4000).contains(a) && a % 0x200 == 0,
            "{a:#x}"
        );
    }
    for f in ["m64-c1.dtb", "m64-c1-nonet.dtb", "m256-c2.dtb"] {
        let k = std::fs::read(dir.join("dtb/kvmtool").join(f)).expect("fixture");
        assert!(
            find(&k).is_empty(),
            "{f}: kvmtool's PCI transport has no virtio,mmio"
        );
    }
}

fn tree(status: Option<&str>, nested: bool) -> Vec<u8> {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let parent = if nested {
        Some(w.begin_node("bus").unwrap())
    } else {
        None
    };
    let n = w.begin_node("virtio@3000000").unwrap();
    w.property_string("compatible", "virtio,mmio").unwrap();
    w.property_array_u64("reg", &[0x300_0000, 0x200]).unwrap();
    w.property_null("dma-coherent").unwrap();
    w.property_array_u32("interrupts", &[0, 4, 1]).unwrap();
    if let Some(s) = status {
        w.property_string("status", s).unwrap();
    }
    w.end_node(n).unwrap();
    if let Some(p) = parent {
        w.end_node(p).unwrap();
    }
    let m = w.begin_node("rtc").unwrap();
    w.property_string("compatible", "motorola,mc146818")
        .unwrap();
    w.property_array_u64("reg", &[0x101_0000, 2]).unwrap();
    w.end_node(m).unwrap();
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

#[test]
fn model_node() {
    assert_eq!(find(&tree(None, false)), vec![(0x300_0000, 0x200)]);
    assert_eq!(find(&tree(Some("okay"), false)), vec![(0x300_0000, 0x200)]);
    assert!(find(&tree(Some("disabled"), false)).is_empty());
    assert!(
        find(&tree(None, true)).is_empty(),
        "only nodes under the root"
    );
}
