//! The boot identity map built from captured kvmtool and QEMU device trees.

use plat_kvm_arm::bootinfo::{self, ImageLayout, ImageSegment};
use plat_kvm_arm::bootmap;
use plat_kvm_arm::memregion::{MemRange, RegionFlags};
use plat_kvm_arm::pagetable::{MemAttr, PageTableBuilder, Table};
use plat_tests::fixtures_dir;

fn segs(base: u64) -> [ImageSegment; 3] {
    let t = base + 0x10_0000;
    let r = |a, b| MemRange {
        start: t + a,
        end: t + b,
    };
    [
        ImageSegment {
            range: r(0, 0x4_0000),
            flags: RegionFlags::RX,
        },
        ImageSegment {
            range: r(0x4_0000, 0x6_0000),
            flags: RegionFlags::READ,
        },
        ImageSegment {
            range: r(0x6_0000, 0x10_0000),
            flags: RegionFlags::RW,
        },
    ]
}

type Translation = Option<(u64, MemAttr)>;

/// Builds the map for a fixture and returns (tables used, lookup).
fn build(
    rel: &str,
    base: u64,
    dtb_at: u64,
    alias: u64,
) -> Option<(usize, impl Fn(u64) -> Translation)> {
    let Some(dir) = fixtures_dir() else {
        println!("SKIPPED: fixtures directory ../shared/fixtures not found (set PLAT_FIXTURES)");
        return None;
    };
    let blob = std::fs::read(dir.join("dtb").join(rel)).unwrap();
    let seg = segs(base);
    let img = ImageLayout { segments: &seg };
    let bi = bootinfo::parse(&blob, dtb_at, &img).unwrap();
    let pool: Box<[Table]> = (0..32).map(|_| Table::ZERO).collect();
    let pa = pool.as_ptr() as u64;
    let pool: &'static mut [Table] = Box::leak(pool);
    let mut b = PageTableBuilder::new(pool, pa, 5).unwrap();
    bootmap::build(&mut b, &bi, &img, alias, true).unwrap();
    let used = b.tables_used();
    Some((used, move |va| b.translate(va)))
}

#[test]
fn kvmtool_map() {
    for (f, ram) in [
        ("kvmtool/m64-c1.dtb", 64u64 << 20),
        ("kvmtool/m256-c2.dtb", 256 << 20),
    ] {
        let dtb_at = 0x8000_0000 + ram - 0x20_0000;
        let Some((used, t)) = build(f, 0x8000_0000, dtb_at, 0) else {
            return;
        };
        assert!(used <= 12, "{f}: {used} tables");
        assert_eq!(t(0x100_0000), Some((0x100_0000, MemAttr::Device)), "UART");
        assert_eq!(t(0x3fff_0000), Some((0x3fff_0000, MemAttr::Device)), "GICD");
        assert_eq!(
            t(0x8010_0000),
            Some((0x8010_0000, MemAttr::NormalRx)),
            "text"
        );
        assert_eq!(
            t(0x8014_0000),
            Some((0x8014_0000, MemAttr::NormalRo)),
            "rodata"
        );
        assert_eq!(
            t(0x801f_f000),
            Some((0x801f_f000, MemAttr::NormalRw)),
            "bss"
        );
        assert_eq!(
            t(0x8000_0000),
            Some((0x8000_0000, MemAttr::NormalRw)),
            "RAM below image"
        );
        assert_eq!(
            t(dtb_at),
            Some((dtb_at, MemAttr::NormalRw)),
            "DTB inside RAM"
        );
        assert_eq!(
            t(0x8000_0000 + ram - 0x1000).map(|x| x.1),
            Some(MemAttr::NormalRw)
        );
        assert_eq!(t(0x8000_0000 + ram), None, "nothing past RAM");
        assert_eq!(t(0x200_0000), None, "holes stay unmapped");
    }
}

#[test]
fn kvmtool_realm_alias_map() {
    let Some((_, t)) = build("kvmtool/m64-c1.dtb", 0x8000_0000, 0x83e0_0000, 1 << 32) else {
        return;
    };
    assert_eq!(
        t(0x1_0100_0000),
        Some((0x1_0100_0000, MemAttr::Device)),
        "UART alias"
    );
    assert_eq!(t(0x100_0000), None, "no device at the protected address");
    assert_eq!(t(0x8010_0000).map(|x| x.1), Some(MemAttr::NormalRx));
}

#[test]
fn qemu_map_above_4gib() {
    let Some((used, t)) = build("qemu/virt-m4096.dtb", 0x4000_0000, 0x4000_0000, 0) else {
        return;
    };
    assert!(used <= 12, "{used} tables");
    assert_eq!(t(0x900_0000), Some((0x900_0000, MemAttr::Device)), "pl011");
    assert_eq!(t(0x800_0000).map(|x| x.1), Some(MemAttr::Device), "GICD");
    assert_eq!(
        t(0x1_3fff_f000).map(|x| x.1),
        Some(MemAttr::NormalRw),
        "RAM above 4 GiB"
    );
    assert_eq!(t(0x1_4000_0000), None);
    assert_eq!(t(0x4010_0000).map(|x| x.1), Some(MemAttr::NormalRx));
}

#[test]
fn realm_devices_only_at_their_alias_and_the_direct_map() {
    let Some(dir) = fixtures_dir() else {
        println!("SKIPPED: fixtures directory ../shared/fixtures not found (set PLAT_FIXTURES)");
        return;
    };
    let blob = std::fs::read(dir.join("dtb/kvmtool/m64-c1.dtb")).unwrap();
    let seg = segs(0x8000_0000);
    let img = ImageLayout { segments: &seg };
    let bi = bootinfo::parse(&blob, 0x83e0_0000, &img).unwrap();
    let pool: Box<[Table]> = (0..32).map(|_| Table::ZERO).collect();
    let pa = pool.as_ptr() as u64;
    let pool: &'static mut [Table] = Box::leak(pool);
    let mut b = PageTableBuilder::new(pool, pa, 5).unwrap();
    let alias = 1 << 32;
    bootmap::build(&mut b, &bi, &img, alias, true).unwrap();
    bootmap::map_ram_at(&mut b, &bi, 0xff80_0000_0000).unwrap();
    // The UART's alias is mapped; its protected address is not (a realm's device
    // tree names the alias: boot::alias_device_tree).
    assert_eq!(b.translate(0x100_0000), None);
    assert_eq!(
        b.translate(0x1_0100_0000),
        Some((0x1_0100_0000, MemAttr::Device))
    );
    // RAM appears again, read-write, at the direct map; the identity map is untouched.
    assert_eq!(
        b.translate(0xff80_8000_0000),
        Some((0x8000_0000, MemAttr::NormalRw))
    );
    assert_eq!(
        b.translate(0xff80_0000_0000 + 0x8400_0000 - 0x1000)
            .map(|x| x.1),
        Some(MemAttr::NormalRw)
    );
    assert_eq!(b.translate(0xff80_0000_0000 + 0x8400_0000), None);
    assert_eq!(
        b.translate(0x8010_0000).map(|x| x.1),
        Some(MemAttr::NormalRx)
    );
}
