//! Boot page tables for the VMM layouts we boot on, checked with the software walker.

use plat_kvm_arm::pagetable::{
    L1_BLOCK_SIZE, L2_BLOCK_SIZE, MapError, MemAttr, PAGE_SIZE, PageTableBuilder, Table,
    UK_DIRECTMAP_BASE,
};
use proptest::prelude::*;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
/// `ID_AA64MMFR0_EL1.PARange` for 48-bit PAs.
const PA48: u64 = 5;

fn pool(n: usize) -> Vec<Table> {
    (0..n).map(|_| Table::ZERO).collect()
}

fn builder(p: &mut [Table]) -> PageTableBuilder<'_> {
    let pa = p.as_ptr() as u64;
    PageTableBuilder::new(p, pa, PA48).unwrap()
}

/// An image's sections, as the linker script lays them out.
struct Image {
    text: (u64, u64),
    rodata: (u64, u64),
    data: (u64, u64),
}

fn image_at(base: u64) -> Image {
    Image {
        text: (base, 0x6_0000),
        rodata: (base + 0x6_0000, 0x2_0000),
        data: (base + 0x8_0000, 0x4_0000),
    }
}

fn map_id(
    b: &mut PageTableBuilder<'_>,
    (base, len): (u64, u64),
    a: MemAttr,
) -> Result<(), MapError> {
    b.map(base, base, len, a)
}

/// RAM as big RW blocks, then the image and DTB at page granularity, then devices;
/// with `CONFIG_PAGING`, also Unikraft's direct map of the RAM below 512 GiB.
fn map_common(
    b: &mut PageTableBuilder<'_>,
    ram: (u64, u64),
    img: &Image,
    dtb: (u64, u64),
    devices: &[(u64, u64)],
    directmap: bool,
) -> Result<(), MapError> {
    map_id(b, ram, MemAttr::NormalRw)?;
    map_id(b, img.text, MemAttr::NormalRx)?;
    map_id(b, img.rodata, MemAttr::NormalRo)?;
    map_id(b, img.data, MemAttr::NormalRw)?;
    map_id(b, dtb, MemAttr::NormalRo)?;
    for &d in devices {
        map_id(b, d, MemAttr::Device)?;
    }
    if directmap {
        let end = (ram.0 + ram.1).min(512 * GIB);
        b.map(
            UK_DIRECTMAP_BASE + ram.0,
            ram.0,
            end - ram.0,
            MemAttr::NormalRw,
        )?;
    }
    Ok(())
}

const KVMTOOL_RAM: u64 = 0x8000_0000;
const KVMTOOL_UART: u64 = 0x100_0000;
const KVMTOOL_GICD: u64 = 0x3fff_0000;
const GICR_FRAME: u64 = 0x2_0000;

struct Kvmtool {
    ram_size: u64,
    cpus: u64,
}

impl Kvmtool {
    fn img(&self) -> Image {
        image_at(0x8010_0000)
    }
    fn dtb(&self) -> (u64, u64) {
        (KVMTOOL_RAM + self.ram_size / 2, 0x1_0000)
    }
    fn gicr(&self) -> (u64, u64) {
        let len = self.cpus * GICR_FRAME;
        (KVMTOOL_GICD - len, len)
    }
    fn map(&self, b: &mut PageTableBuilder<'_>, directmap: bool) -> Result<(), MapError> {
        let devices = [
            (KVMTOOL_UART, PAGE_SIZE),
            (KVMTOOL_GICD, 0x1_0000),
            self.gicr(),
        ];
        map_common(
            b,
            (KVMTOOL_RAM, self.ram_size),
            &self.img(),
            self.dtb(),
            &devices,
            directmap,
        )
    }
}

const QEMU_RAM: u64 = 0x4000_0000;
const QEMU_GICD: u64 = 0x800_0000;
const QEMU_GICR: u64 = 0x80a_0000;
const QEMU_PL011: u64 = 0x900_0000;

struct Qemu {
    ram_size: u64,
}

impl Qemu {
    fn img(&self) -> Image {
        image_at(0x4020_0000)
    }
    fn dtb(&self) -> (u64, u64) {
        (QEMU_RAM, MIB)
    }
    fn map(&self, b: &mut PageTableBuilder<'_>, directmap: bool) -> Result<(), MapError> {
        let devices = [
            (QEMU_GICD, 0x1_0000),
            (QEMU_GICR, 4 * GICR_FRAME),
            (QEMU_PL011, PAGE_SIZE),
        ];
        map_common(
            b,
            (QEMU_RAM, self.ram_size),
            &self.img(),
            self.dtb(),
            &devices,
            directmap,
        )
    }
}

/// The smallest pool the layout fits in; every smaller one must fail cleanly.
fn tables_needed(layout: impl Fn(&mut PageTableBuilder<'_>) -> Result<(), MapError>) -> usize {
    let mut p = pool(64);
    let mut b = builder(&mut p);
    layout(&mut b).unwrap();
    let needed = b.tables_used();
    for n in 1..needed {
        let mut p = pool(n);
        let mut b = builder(&mut p);
        assert_eq!(layout(&mut b), Err(MapError::PoolExhausted), "pool of {n}");
        assert_eq!(b.tables_used(), n);
    }
    needed
}

fn assert_range(b: &PageTableBuilder<'_>, (base, len): (u64, u64), a: MemAttr) {
    for va in [
        base,
        (base + len / 2) & !(PAGE_SIZE - 1),
        base + len - PAGE_SIZE,
        base + len - 1,
    ] {
        assert_eq!(b.translate(va), Some((va, a)), "{va:#x}");
    }
}

/// RAM, away from the image (near its start) and the DTB (at its start or middle).
fn assert_ram(b: &PageTableBuilder<'_>, (base, len): (u64, u64)) {
    for va in [base + len / 4, base + len - PAGE_SIZE, base + len - 1] {
        assert_eq!(b.translate(va), Some((va, MemAttr::NormalRw)), "{va:#x}");
    }
    assert_eq!(b.translate(base + len), None);
}

fn assert_image(b: &PageTableBuilder<'_>, img: &Image) {
    assert_range(b, img.text, MemAttr::NormalRx);
    assert_range(b, img.rodata, MemAttr::NormalRo);
    assert_range(b, img.data, MemAttr::NormalRw);
    assert_eq!(b.leaf(img.text.0).unwrap().level, 3);
    // Around the image, RAM is still RW.
    assert_eq!(
        b.translate(img.text.0 - PAGE_SIZE).unwrap().1,
        MemAttr::NormalRw
    );
    let after = img.data.0 + img.data.1;
    assert_eq!(b.translate(after).unwrap().1, MemAttr::NormalRw);
}

#[test]
fn kvmtool_64m() {
    let l = Kvmtool {
        ram_size: 64 * MIB,
        cpus: 4,
    };
    let mut p = pool(16);
    let mut b = builder(&mut p);
    l.map(&mut b, false).unwrap();
    assert_ram(&b, (KVMTOOL_RAM, 64 * MIB));
    assert_image(&b, &l.img());
    assert_range(&b, l.dtb(), MemAttr::NormalRo);
    assert_range(&b, (KVMTOOL_UART, PAGE_SIZE), MemAttr::Device);
    assert_range(&b, (KVMTOOL_GICD, 0x1_0000), MemAttr::Device);
    assert_range(&b, l.gicr(), MemAttr::Device);
    // 2 MiB RAM blocks away from the image and DTB.
    assert_eq!(b.leaf(KVMTOOL_RAM + 8 * MIB).unwrap().level, 2);
    for hole in [
        0,
        KVMTOOL_UART - PAGE_SIZE,
        KVMTOOL_UART + PAGE_SIZE,
        l.gicr().0 - PAGE_SIZE,
        KVMTOOL_GICD + 0x1_0000,
        KVMTOOL_RAM - PAGE_SIZE,
        KVMTOOL_RAM + 64 * MIB,
    ] {
        assert_eq!(b.translate(hole), None, "{hole:#x}");
    }
}

#[test]
fn kvmtool_2g() {
    let l = Kvmtool {
        ram_size: 2 * GIB,
        cpus: 8,
    };
    let mut p = pool(16);
    let mut b = builder(&mut p);
    l.map(&mut b, false).unwrap();
    assert_ram(&b, (KVMTOOL_RAM, 2 * GIB));
    assert_image(&b, &l.img());
    // The DTB at 3 GiB splits the second 1 GiB block.
    assert_range(&b, l.dtb(), MemAttr::NormalRo);
    assert_eq!(b.leaf(0xc000_0000).unwrap().level, 3);
    assert_eq!(b.leaf(0xc020_0000).unwrap().level, 2);
    assert_eq!(
        b.translate(0xc001_0000),
        Some((0xc001_0000, MemAttr::NormalRw))
    );
    assert_range(&b, l.gicr(), MemAttr::Device);
    assert_eq!(b.translate(KVMTOOL_RAM + 2 * GIB), None);
}

#[test]
fn kvmtool_directmap() {
    let l = Kvmtool {
        ram_size: 2 * GIB,
        cpus: 1,
    };
    let mut p = pool(16);
    let mut b = builder(&mut p);
    l.map(&mut b, true).unwrap();
    let dm = UK_DIRECTMAP_BASE + KVMTOOL_RAM;
    assert_eq!(b.translate(dm), Some((KVMTOOL_RAM, MemAttr::NormalRw)));
    assert_eq!(b.leaf(dm).unwrap().level, 1);
    assert_eq!(
        b.translate(dm + 2 * GIB - 1),
        Some((KVMTOOL_RAM + 2 * GIB - 1, MemAttr::NormalRw))
    );
    assert_eq!(b.translate(dm - PAGE_SIZE), None);
    // The identity map is unaffected.
    assert_image(&b, &l.img());
}

#[test]
fn qemu_virt_4g() {
    let l = Qemu { ram_size: 4 * GIB };
    let mut p = pool(16);
    let mut b = builder(&mut p);
    l.map(&mut b, false).unwrap();
    // RAM crosses 4 GiB: 1 GiB blocks on both sides.
    assert_ram(&b, (QEMU_RAM, 4 * GIB));
    assert_eq!(b.leaf(0xc000_0000).unwrap().level, 1);
    assert_eq!(b.leaf(0x1_0000_0000).unwrap().level, 1);
    assert_eq!(b.translate(0x1_4000_0000), None);
    assert_image(&b, &l.img());
    assert_range(&b, l.dtb(), MemAttr::NormalRo);
    assert_range(&b, (QEMU_PL011, PAGE_SIZE), MemAttr::Device);
    assert_range(&b, (QEMU_GICD, 0x1_0000), MemAttr::Device);
    assert_range(&b, (QEMU_GICR, 4 * GICR_FRAME), MemAttr::Device);
    for hole in [
        0,
        QEMU_GICD + 0x1_0000,
        QEMU_PL011 + PAGE_SIZE,
        QEMU_RAM - PAGE_SIZE,
    ] {
        assert_eq!(b.translate(hole), None, "{hole:#x}");
    }
}

#[test]
fn qemu_virt_512g() {
    let l = Qemu {
        ram_size: 512 * GIB,
    };
    let mut p = pool(16);
    let mut b = builder(&mut p);
    l.map(&mut b, true).unwrap();
    // RAM crosses the first root entry (512 GiB).
    let last = QEMU_RAM + 512 * GIB - PAGE_SIZE;
    assert_eq!(b.translate(last), Some((last, MemAttr::NormalRw)));
    assert_eq!(b.translate(512 * GIB), Some((512 * GIB, MemAttr::NormalRw)));
    let dm_last = UK_DIRECTMAP_BASE + 512 * GIB - PAGE_SIZE;
    assert_eq!(
        b.translate(dm_last),
        Some((512 * GIB - PAGE_SIZE, MemAttr::NormalRw))
    );
}

/// Tables per layout, for sizing the static pool. Exact counts, so a change in the
/// splitting or allocation policy shows up here. kvmtool, 64 MiB: root, L1 (0-512 GiB),
/// L2 (0-1 GiB) with L3s for the UART and GIC 2 MiB blocks, L2 (2-3 GiB) with L3s for
/// the image and DTB 2 MiB blocks = 8; the direct map adds an L1 and an L2. With
/// 2 GiB the DTB at 3 GiB splits a second 1 GiB block (L2 + L3) but the direct map
/// needs no L2. QEMU: the DTB and the image share a 1 GiB block; 512 GiB of RAM
/// needs a second L1.
#[test]
fn tables_per_layout() {
    type Layout = Box<dyn Fn(&mut PageTableBuilder<'_>) -> Result<(), MapError>>;
    let kvmtool =
        |ram_size, cpus, dm| -> Layout { Box::new(move |b| Kvmtool { ram_size, cpus }.map(b, dm)) };
    let qemu = |ram_size, dm| -> Layout { Box::new(move |b| Qemu { ram_size }.map(b, dm)) };
    let rows: [(&str, usize, Layout); 8] = [
        ("kvmtool 64 MiB", 8, kvmtool(64 * MIB, 4, false)),
        ("kvmtool 64 MiB + directmap", 10, kvmtool(64 * MIB, 4, true)),
        ("kvmtool 2 GiB", 9, kvmtool(2 * GIB, 8, false)),
        ("kvmtool 2 GiB + directmap", 10, kvmtool(2 * GIB, 8, true)),
        ("qemu 4 GiB", 8, qemu(4 * GIB, false)),
        ("qemu 4 GiB + directmap", 9, qemu(4 * GIB, true)),
        ("qemu 512 GiB", 9, qemu(512 * GIB, false)),
        ("qemu 512 GiB + directmap", 10, qemu(512 * GIB, true)),
    ];
    let mut bad = Vec::new();
    for (name, want, layout) in rows {
        let got = tables_needed(layout);
        eprintln!("{name}: {got} tables");
        if got != want {
            bad.push((name, want, got));
        }
    }
    assert!(bad.is_empty(), "(layout, want, got): {bad:?}");
}

#[test]
fn realm_shared_alias() {
    // A realm with a 33-bit IPA space: bit 32 selects the unprotected (shared) alias,
    // where devices live.
    let shared = 1u64 << 32;
    let uart = shared + KVMTOOL_UART;
    let mut p = pool(16);
    let mut b = builder(&mut p);
    b.map(KVMTOOL_RAM, KVMTOOL_RAM, 2 * GIB, MemAttr::NormalRw)
        .unwrap();
    b.map(uart, uart, PAGE_SIZE, MemAttr::Device).unwrap();
    assert_eq!(b.translate(uart), Some((0x1_0100_0000, MemAttr::Device)));
    assert_eq!(b.translate(KVMTOOL_UART), None);
    assert_eq!(
        b.translate(KVMTOOL_RAM),
        Some((KVMTOOL_RAM, MemAttr::NormalRw))
    );
    // Or keep the protected VA and point it at the shared IPA.
    b.map(KVMTOOL_UART, uart, PAGE_SIZE, MemAttr::Device)
        .unwrap();
    assert_eq!(
        b.translate(KVMTOOL_UART + 0x10),
        Some((uart + 0x10, MemAttr::Device))
    );
    // A 32-bit PA space cannot reach the alias.
    let mut p = pool(4);
    let pa = 0x1000_0000;
    let mut b = PageTableBuilder::new(&mut p, pa, 0).unwrap();
    assert_eq!(
        b.map(uart, uart, PAGE_SIZE, MemAttr::Device),
        Err(MapError::PaOutOfRange)
    );
    assert_eq!(
        b.map(KVMTOOL_UART, uart, PAGE_SIZE, MemAttr::Device),
        Err(MapError::PaOutOfRange)
    );
    b.map(uart, KVMTOOL_UART, PAGE_SIZE, MemAttr::Device)
        .unwrap();
}

/// Splits a 1 GiB block at both levels and checks every 4 KiB page of it.
#[test]
fn split_walk_every_page() {
    let base = 0x4000_0000;
    let mut p = pool(16);
    let mut b = builder(&mut p);
    b.map(base, base, GIB, MemAttr::NormalRwx).unwrap();
    let rx = (base + 0x60_3000, 3 * PAGE_SIZE);
    let ro_block = (base + 0x80_0000, L2_BLOCK_SIZE);
    let moved = (base + 0x3ff0_0000, PAGE_SIZE, 0x9_0000_0000);
    map_id(&mut b, rx, MemAttr::NormalRx).unwrap();
    map_id(&mut b, ro_block, MemAttr::NormalRo).unwrap();
    b.map(moved.0, moved.2, moved.1, MemAttr::Device).unwrap();
    // root, L1, L2 from the first split, two L3s.
    assert_eq!(b.tables_used(), 5);
    let inside = |(s, l): (u64, u64), va: u64| (s..s + l).contains(&va);
    for va in (base..base + GIB).step_by(PAGE_SIZE as usize) {
        let want = if inside(rx, va) {
            (va, MemAttr::NormalRx)
        } else if inside(ro_block, va) {
            (va, MemAttr::NormalRo)
        } else if inside((moved.0, moved.1), va) {
            (moved.2, MemAttr::Device)
        } else {
            (va, MemAttr::NormalRwx)
        };
        assert_eq!(
            b.translate(va + 0x123),
            Some((want.0 + 0x123, want.1)),
            "{va:#x}"
        );
        let level = b.leaf(va).unwrap().level;
        let split_2m = va & !(L2_BLOCK_SIZE - 1);
        let want_level = if split_2m == rx.0 & !(L2_BLOCK_SIZE - 1)
            || split_2m == moved.0 & !(L2_BLOCK_SIZE - 1)
        {
            3
        } else {
            2
        };
        assert_eq!(level, want_level, "{va:#x}");
    }
    assert_eq!(b.translate(base - 1), None);
    assert_eq!(b.translate(base + GIB), None);
    // Remapping the whole 1 GiB restores a single block.
    b.map(base, base, GIB, MemAttr::NormalRw).unwrap();
    assert_eq!(b.leaf(base + 0x60_3000).unwrap().level, 1);
    assert_eq!(b.translate(moved.0), Some((moved.0, MemAttr::NormalRw)));
}

#[test]
fn error_cases() {
    let mut p = pool(4);
    let mut b = builder(&mut p);
    let rw = MemAttr::NormalRw;
    assert_eq!(
        b.map(0x4000_0000, 0x4000_0000, 0, rw),
        Err(MapError::ZeroSize)
    );
    assert_eq!(
        b.map(0x4000_0800, 0x4000_0000, PAGE_SIZE, rw),
        Err(MapError::Unaligned)
    );
    assert_eq!(
        b.map(0x4000_0000, 0x4000_0008, PAGE_SIZE, rw),
        Err(MapError::Unaligned)
    );
    assert_eq!(
        b.map(0x4000_0000, 0x4000_0000, 0x1800, rw),
        Err(MapError::Unaligned)
    );
    assert_eq!(b.map(u64::MAX - 0xfff, 0, 0x2000, rw), Err(MapError::Wraps));
    assert_eq!(b.map(0, u64::MAX - 0xfff, 0x2000, rw), Err(MapError::Wraps));
    assert_eq!(
        b.map(1 << 48, 0, PAGE_SIZE, rw),
        Err(MapError::VaOutOfRange)
    );
    assert_eq!(
        b.map((1 << 48) - PAGE_SIZE, 0, 2 * PAGE_SIZE, rw),
        Err(MapError::VaOutOfRange)
    );
    assert_eq!(
        b.map(0, 1 << 48, PAGE_SIZE, rw),
        Err(MapError::PaOutOfRange)
    );
    // Nothing was written by the refused maps.
    assert_eq!(b.tables_used(), 1);
    // The last page of the VA and PA spaces is fine.
    let top = (1 << 48) - PAGE_SIZE;
    b.map(top, top, PAGE_SIZE, rw).unwrap();
    assert_eq!(b.translate(top + 0xfff), Some((top + 0xfff, rw)));
    assert_eq!(b.translate(1 << 48), None);
    assert_eq!(b.translate(u64::MAX), None);
    assert_eq!(b.tables_used(), 4);
    // Pool exhausted: reported, and the pool is not overrun (it is a slice).
    assert_eq!(b.map(0, 0, PAGE_SIZE, rw), Err(MapError::PoolExhausted));
    assert_eq!(b.tables_used(), 4);
    // A smaller configured PA size.
    let mut p = pool(4);
    let mut b = PageTableBuilder::new(&mut p, 0x1000_0000, 2).unwrap();
    assert_eq!(b.pa_bits(), 40);
    assert_eq!(
        b.map(0, (1 << 40) - PAGE_SIZE, 2 * PAGE_SIZE, rw),
        Err(MapError::PaOutOfRange)
    );
    b.map(0, (1 << 40) - PAGE_SIZE, PAGE_SIZE, rw).unwrap();
}

/// One random map: granularity (4 KiB, 2 MiB, 1 GiB) of its placement and size,
/// a few extra pages to misalign it, and an offset between VA and PA.
#[derive(Debug, Clone)]
struct Spec {
    gran: u64,
    gap: u64,
    skew: u64,
    units: u64,
    extra: u64,
    delta: u64,
    attr: MemAttr,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::sample::select(vec![PAGE_SIZE, L2_BLOCK_SIZE, L1_BLOCK_SIZE]),
        0u64..3,
        prop_oneof![3 => Just(0u64), 1 => 1u64..4],
        1u64..4,
        prop_oneof![3 => Just(0u64), 1 => 1u64..4],
        prop::sample::select(vec![0, PAGE_SIZE, L2_BLOCK_SIZE, GIB, 0x10_0000_0000]),
        prop::sample::select(vec![
            MemAttr::Device,
            MemAttr::DeviceNGnRnE,
            MemAttr::NormalRw,
            MemAttr::NormalRx,
            MemAttr::NormalRo,
            MemAttr::NormalRwx,
        ]),
    )
        .prop_map(|(gran, gap, skew, units, extra, delta, attr)| Spec {
            gran,
            gap,
            skew,
            units,
            extra,
            delta: misalign_cap(gran, delta),
            attr,
        })
}

/// Gigabytes of 4 KiB pages (a PA 4 KiB off a 1 GiB-granular VA) would need 512
/// tables per GiB; keep such misalignment to 2 MiB so the pool stays small.
fn misalign_cap(gran: u64, delta: u64) -> u64 {
    if gran == L1_BLOCK_SIZE && delta == PAGE_SIZE {
        L2_BLOCK_SIZE
    } else {
        delta
    }
}

/// (va, pa, size, attr)
type Map = (u64, u64, u64, MemAttr);

/// Addresses worth checking: both sides of every boundary, every 2 MiB inside.
fn probes(maps: &[Map]) -> Vec<u64> {
    let mut v = Vec::new();
    for &(va, _, size, _) in maps {
        for a in [va, va + size] {
            v.extend([a.wrapping_sub(PAGE_SIZE), a, a + PAGE_SIZE - 8]);
        }
        let mut a = (va + L2_BLOCK_SIZE) & !(L2_BLOCK_SIZE - 1);
        while a < va + size {
            v.extend([a - 8, a, (a + size / 3 % L2_BLOCK_SIZE) & !7]);
            a += L2_BLOCK_SIZE;
        }
    }
    v.retain(|&a| a < 1 << 48);
    v
}

/// What the last map covering `va` says.
fn model(maps: &[Map], va: u64) -> Option<(u64, MemAttr)> {
    maps.iter()
        .rev()
        .find(|&&(s, _, l, _)| (s..s + l).contains(&va))
        .map(|&(s, pa, _, a)| (pa + (va - s), a))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Disjoint maps: each translates as mapped, holes stay unmapped, and the largest
    /// block that fits is used.
    #[test]
    fn disjoint_maps(
        start in prop::sample::select(vec![0u64, 0x4000_0000, 0x7f_c000_0000]),
        specs in prop::collection::vec(spec(), 1..8),
    ) {
        let mut maps: Vec<Map> = Vec::new();
        let mut cursor = start;
        for s in &specs {
            let va = cursor.next_multiple_of(s.gran) + s.gap * s.gran + s.skew * PAGE_SIZE;
            let size = s.units * s.gran + s.extra * PAGE_SIZE;
            maps.push((va, va + s.delta, size, s.attr));
            cursor = va + size;
        }
        let mut p = pool(256);
        let mut b = builder(&mut p);
        for &(va, pa, size, a) in &maps {
            b.map(va, pa, size, a).unwrap();
        }
        for va in probes(&maps) {
            let want = model(&maps, va);
            prop_assert_eq!(b.translate(va), want, "{:#x}", va);
            let Some(leaf) = b.leaf(va) else { continue };
            // A block the map could have used must have been used.
            let &(s, pa, l, _) = maps.iter().find(|&&(s, _, l, _)| (s..s + l).contains(&va)).unwrap();
            for (level, bs) in [(1u8, L1_BLOCK_SIZE), (2, L2_BLOCK_SIZE)] {
                let blk = va & !(bs - 1);
                if blk >= s && blk + bs <= s + l && (blk - s + pa) % bs == 0 {
                    prop_assert!(leaf.level <= level, "{:#x}: level {}", va, leaf.level);
                }
            }
        }
    }

    /// Overlapping maps in a 4 GiB window: the last map wins everywhere, whatever was
    /// split or replaced on the way.
    #[test]
    fn overlapping_maps_last_wins(
        maps in prop::collection::vec(
            (
                prop::sample::select(vec![PAGE_SIZE, L2_BLOCK_SIZE, L1_BLOCK_SIZE]),
                0u64..4096,
                1u64..4,
                0u64..4,
                prop::sample::select(vec![0, PAGE_SIZE, L2_BLOCK_SIZE, GIB]),
                prop::sample::select(vec![MemAttr::Device, MemAttr::NormalRw, MemAttr::NormalRx, MemAttr::NormalRo]),
            ),
            1..10,
        ),
    ) {
        let base = 0x4000_0000u64;
        let maps: Vec<Map> = maps
            .into_iter()
            .map(|(gran, pos, units, extra, delta, a)| {
                let va = base + (pos * 0x10_0000 * 4) / gran * gran % (4 * GIB);
                (va, va + misalign_cap(gran, delta), units * gran + extra * PAGE_SIZE, a)
            })
            .collect();
        let mut p = pool(256);
        let mut b = builder(&mut p);
        for &(va, pa, size, a) in &maps {
            b.map(va, pa, size, a).unwrap();
        }
        for va in probes(&maps) {
            prop_assert_eq!(b.translate(va), model(&maps, va), "{:#x}", va);
        }
    }
}
