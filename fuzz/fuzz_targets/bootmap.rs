//! Accepted boot info -> boot page tables (`bootmap::build` over a
//! `PageTableBuilder`), then the extra maps Unikraft's paging needs.
//!
//! Input: 4 parameter bytes, then either (byte 0 bit 7 clear) the byte-level
//! format of `bootinfo` (8-byte DTB address + blob; fixture-derived seeds) or (bit
//! 7 set) an arbitrary `Spec` for a vm-fdt tree.
//!   byte 0 bits 0-2: PARange field (0: 32 bits ... 5+: 48 bits)
//!   byte 1: pool size (>= 16: 64 tables, else byte + 1)
//!   byte 2: device alias (0: none, else the shared bit 1 << (31 + byte % 21))
//!   byte 3: bit 0 W^X, bit 1 also `map_ram_at` the direct map (bit 2 selected
//!           `map_devices_at_dt_addresses`, gone: a realm's device tree now names
//!           the aliases, which `build` maps)
//!
//! Asserts: never panics; when the build succeeds, sampled pages (first, middle,
//! last) of every RAM bank, device window, the DTB and each image segment
//! translate exactly as the last map covering them says (an oracle replaying the
//! documented order); text (RX) pages are NormalRx, no page is writable and
//! executable under W^X, device windows map with Device attributes; the realm
//! checks agree with the boot info.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plat_kvm_arm::bootinfo::{self, BootInfo, ImageLayout, ImageSegment};
use plat_kvm_arm::memregion::{MemRange, PAGE_SIZE, RegionFlags};
use plat_kvm_arm::pagetable::{MemAttr, PageTableBuilder, Table, UK_DIRECTMAP_BASE};
use plat_kvm_arm::psci::Conduit;
use plat_kvm_arm::{bootmap, realm};
use plat_kvm_arm_fuzz::{page_inner, split_addr, tree::Spec};

/// Where the pool "lies" (only encoded in table descriptors).
const POOL_PA: u64 = 0x1000_0000;

/// The image of the kvmtool/QEMU tests, 1 MiB above `ram`.
fn image_at(ram: u64) -> [ImageSegment; 3] {
    let t = ram + 0x10_0000;
    let seg = |a, b, flags| ImageSegment {
        range: MemRange {
            start: t + a,
            end: t + b,
        },
        flags,
    };
    [
        seg(0, 0x4_0000, RegionFlags::RX),
        seg(0x4_0000, 0x6_0000, RegionFlags::READ),
        seg(0x6_0000, 0x10_0000, RegionFlags::RW),
    ]
}

/// One map call: `[va, va + len)` -> `pa..` with `attr`.
#[derive(Debug, Clone, Copy)]
struct Layer {
    va: MemRange,
    pa: u64,
    attr: MemAttr,
}

/// What `bootmap` maps, in its order (later layers win).
fn attr_for(flags: RegionFlags, wxn: bool) -> MemAttr {
    match (
        flags.contains(RegionFlags::WRITE),
        flags.contains(RegionFlags::EXEC),
    ) {
        (true, true) if !wxn => MemAttr::NormalRwx,
        (true, _) => MemAttr::NormalRw,
        (false, true) => MemAttr::NormalRx,
        (false, false) => MemAttr::NormalRo,
    }
}

fn identity(r: MemRange, attr: MemAttr) -> Layer {
    Layer {
        va: r,
        pa: r.start,
        attr,
    }
}

fn base_layers(bi: &BootInfo<'_>, segs: &[ImageSegment], alias: u64, wxn: bool) -> Vec<Layer> {
    let mut l = Vec::new();
    for d in bi.devices.iter() {
        let va = d.start | alias;
        l.push(identity(
            MemRange {
                start: va,
                end: va + d.len(),
            },
            MemAttr::Device,
        ));
    }
    for b in bi.ram.iter() {
        if let Some(r) = page_inner(b) {
            l.push(identity(r, MemAttr::NormalRw));
        }
    }
    if !bi.ram.iter().any(|b| b.contains_range(&bi.dtb)) {
        l.push(identity(bi.dtb.page_outer(), MemAttr::NormalRo));
    }
    for s in segs {
        l.push(identity(s.range, attr_for(s.flags, wxn)));
    }
    l
}

/// Checks first, middle and last page of every layer against the last layer
/// covering it.
fn check(b: &PageTableBuilder<'_>, layers: &[Layer]) {
    for l in layers {
        let r = l.va;
        let mid = (r.start + r.len() / 2) & !(PAGE_SIZE - 1);
        for va in [r.start, mid, r.end - PAGE_SIZE, r.end - 1] {
            let want = layers
                .iter()
                .rev()
                .find(|x| x.va.start <= va && va < x.va.end)
                .map(|x| (x.pa + (va - x.va.start), x.attr));
            assert_eq!(b.translate(va), want, "va {va:#x} (layer {l:?})");
        }
    }
}

fn run(params: [u8; 4], bi: &BootInfo<'_>, segs: &[ImageSegment]) {
    let pa_range = u64::from(params[0] & 7);
    let tables = if params[1] >= 16 {
        64
    } else {
        usize::from(params[1]) + 1
    };
    let alias = if params[2] == 0 {
        0
    } else {
        1u64 << (31 + params[2] % 21)
    };
    let wxn = params[3] & 1 != 0;

    // realm.rs: `check` agrees with the boot info; RIPAS ranges lie inside banks.
    if alias != 0 {
        if realm::check(bi, alias).is_ok() {
            assert!(bi.ram.iter().all(|r| r.end <= alias));
            assert!(bi.devices.iter().all(|d| d.end <= alias));
            assert_eq!(bi.psci, Some(Conduit::Smc));
        }
        for r in realm::ram_ranges(bi) {
            assert!(r.start % PAGE_SIZE == 0 && r.end % PAGE_SIZE == 0 && r.start < r.end);
            assert!(bi.ram.iter().any(|b| b.start <= r.start && r.end <= b.end));
        }
    }

    // One pool for every run, left dirty by the previous one: allocating 256 KiB
    // of zeroed tables per run was most of the run time, and the builder must clear
    // each table it takes anyway (stale descriptors would show in the oracle).
    POOL.with_borrow_mut(|pool| {
        check_build(params, bi, segs, &mut pool[..tables], pa_range, alias, wxn)
    });
}

thread_local! {
    static POOL: core::cell::RefCell<Vec<Table>> = core::cell::RefCell::new((0..64).map(|_| Table::ZERO).collect());
}

fn check_build(
    params: [u8; 4],
    bi: &BootInfo<'_>,
    segs: &[ImageSegment],
    pool: &mut [Table],
    pa_range: u64,
    alias: u64,
    wxn: bool,
) {
    let Ok(mut b) = PageTableBuilder::new(pool, POOL_PA, pa_range) else {
        return;
    };
    let image = ImageLayout { segments: segs };
    if bootmap::build(&mut b, bi, &image, alias, wxn).is_err() {
        return;
    }
    let mut layers = base_layers(bi, segs, alias, wxn);
    check(&b, &layers);
    // The explicit properties (implied by the oracle, stated for the reader).
    for s in segs {
        let attr = b.translate(s.range.start).map(|(_, a)| a);
        if s.flags == RegionFlags::RX {
            assert_eq!(attr, Some(MemAttr::NormalRx), "text {s:?}");
        }
        if wxn {
            assert_ne!(attr, Some(MemAttr::NormalRwx), "W+X image page {s:?}");
        }
    }
    for d in bi.devices.iter() {
        let va = d.start | alias;
        if !layers[bi.devices.len()..]
            .iter()
            .any(|l| l.va.start <= va && va < l.va.end)
        {
            assert_eq!(b.translate(va), Some((va, MemAttr::Device)), "device {d:?}");
        }
    }

    // The extra maps, each checked with the layers it adds.
    if params[3] & 2 != 0 && bootmap::map_ram_at(&mut b, bi, UK_DIRECTMAP_BASE).is_ok() {
        for r in bi.ram.iter().filter_map(page_inner) {
            let va = MemRange {
                start: UK_DIRECTMAP_BASE + r.start,
                end: UK_DIRECTMAP_BASE + r.end,
            };
            layers.push(Layer {
                va,
                pa: r.start,
                attr: MemAttr::NormalRw,
            });
        }
        check(&b, &layers);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((params, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    if params[0] & 0x80 == 0 {
        // A (fixture-derived) blob: the image goes where the tree has RAM.
        let (at, blob) = split_addr(rest);
        for ram in [0x8000_0000, 0x8020_0000, 0x4000_0000] {
            let segs = image_at(ram);
            if let Ok(bi) = bootinfo::parse(blob, at, &ImageLayout { segments: &segs }) {
                run(*params, &bi, &segs);
                return;
            }
        }
    } else if let Some(built) = Spec::from_bytes(rest).and_then(|s| s.build()) {
        let image = ImageLayout {
            segments: &built.segments,
        };
        if let Ok(bi) = bootinfo::parse(&built.blob, built.dtb_at, &image) {
            run(*params, &bi, &built.segments);
        }
    }
});
