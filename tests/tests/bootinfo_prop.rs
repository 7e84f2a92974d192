//! Bounded property tests of the DTB -> boot info path (the fuzz target's invariants,
//! run in `make test`): arbitrary corruption never panics, and whatever is accepted
//! is self-consistent.

use plat_kvm_arm::bootinfo::{self, BootInfo, ImageLayout};
use plat_kvm_arm::memregion::RegionKind;
use proptest::prelude::*;
use vm_fdt::FdtWriter;

use plat_tests::TEST_IMAGE as IMG;

fn base_tree(mem: &[(u64, u64)], initrd: Option<(u64, u64)>) -> Vec<u8> {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let c = w.begin_node("chosen").unwrap();
    w.property_string("bootargs", "console=ttyS0").unwrap();
    w.property_string("stdout-path", "/uart@1000000").unwrap();
    if let Some((s, e)) = initrd {
        w.property_u64("linux,initrd-start", s).unwrap();
        w.property_u64("linux,initrd-end", e).unwrap();
    }
    w.end_node(c).unwrap();
    for (i, &(b, l)) in mem.iter().enumerate() {
        let m = w.begin_node(&format!("memory@{i:x}")).unwrap();
        w.property_string("device_type", "memory").unwrap();
        w.property_array_u64("reg", &[b, l]).unwrap();
        w.end_node(m).unwrap();
    }
    let u = w.begin_node("uart@1000000").unwrap();
    w.property_string("compatible", "ns16550a").unwrap();
    w.property_array_u64("reg", &[0x100_0000, 8]).unwrap();
    w.end_node(u).unwrap();
    let p = w.begin_node("psci").unwrap();
    w.property_string("compatible", "arm,psci-0.2").unwrap();
    w.property_string("method", "hvc").unwrap();
    w.end_node(p).unwrap();
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

/// What must hold of any accepted result.
fn check_invariants(bi: &BootInfo<'_>, dtb_at: u64, len: usize) {
    let regions: Vec<_> = bi.regions.iter().collect();
    for w in regions.windows(2) {
        assert!(w[0].range.start <= w[1].range.start, "sorted");
    }
    let kernel: Vec<_> = regions
        .iter()
        .filter(|r| r.kind == RegionKind::Kernel)
        .collect();
    assert_eq!(kernel.len(), IMG.len());
    for f in regions.iter().filter(|r| r.kind == RegionKind::Free) {
        assert!(!f.range.is_empty());
        assert_eq!(f.range.start % 4096, 0);
        assert_eq!(f.range.end % 4096, 0);
        assert!(
            bi.ram.iter().any(|b| b.contains_range(&f.range)),
            "free inside RAM"
        );
        for o in regions.iter().filter(|r| r.kind != RegionKind::Free) {
            assert!(!f.range.overlaps(&o.range), "free {f:?} overlaps {o:?}");
        }
        for o in regions
            .iter()
            .filter(|r| r.kind == RegionKind::Free && *r != f)
        {
            assert!(!f.range.overlaps(&o.range));
        }
    }
    assert_eq!(bi.dtb.start, dtb_at);
    assert!(bi.dtb.len() as usize <= len);
    for b in bi.ram.iter() {
        assert!(!b.is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn corrupted_blobs_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        dtb_at in prop_oneof![Just(0x83e0_0000u64), Just(0x8000_0000), any::<u64>()],
    ) {
        let mut blob = base_tree(&[(0x8000_0000, 64 << 20)], Some((0x8300_0000, 0x8310_0000)));
        for (i, v) in flips {
            let at = i.index(blob.len());
            blob[at] = v;
        }
        let len = cut.index(blob.len() + 1);
        let blob = &blob[..len];
        if let Ok(bi) = bootinfo::parse(blob, dtb_at, &ImageLayout { segments: &IMG }) {
            check_invariants(&bi, dtb_at, len);
        }
    }

    #[test]
    fn arbitrary_memory_layouts_are_consistent(
        banks in proptest::collection::vec((0u64..0x4_0000_0000, 0u64..0x1_0000_0000), 1..6),
        initrd in proptest::option::of((0x8000_0000u64..0x9000_0000, 1u64..0x100_0000)),
        dtb_at in 0u64..0x2_0000_0000,
    ) {
        let mut banks = banks;
        banks.push((0x8000_0000, 64 << 20));
        let blob = base_tree(&banks, initrd.map(|(s, l)| (s, s + l)));
        if let Ok(bi) = bootinfo::parse(&blob, dtb_at, &ImageLayout { segments: &IMG }) {
            check_invariants(&bi, dtb_at, blob.len());
            // Every accepted bank really was in the tree.
            for b in bi.ram.iter() {
                prop_assert!(banks.iter().any(|&(s, l)| s == b.start && s + l == b.end));
            }
        }
    }
}
