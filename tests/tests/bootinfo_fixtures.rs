//! Boot info from device trees captured from real kvmtool 3.18.0, QEMU 10.0.2 and
//! Firecracker v1.7.0, v1.10.1 and v1.16.1 (`../shared/fixtures/dtb`). Every region, the console, the conduit and the
//! command line are asserted exactly.

use plat_kvm_arm::bootinfo::{self, ConsoleSource, GicDesc, ImageLayout, ImageSegment};
use plat_kvm_arm::console::UartKind;
use plat_kvm_arm::memregion::{MemRange, RegionFlags, RegionKind};
use plat_kvm_arm::psci::Conduit;
use plat_tests::fixtures_dir;

fn load(rel: &str) -> Option<Vec<u8>> {
    let Some(dir) = fixtures_dir() else {
        println!("SKIPPED: fixtures directory ../shared/fixtures not found (set PLAT_FIXTURES)");
        return None;
    };
    let path = dir.join("dtb").join(rel);
    Some(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn r(start: u64, end: u64) -> MemRange {
    MemRange { start, end }
}

/// An image laid out as a Unikraft LXBOOT build linked at `base + 1 MiB`.
fn segments(base: u64) -> [ImageSegment; 3] {
    let t = base + 0x10_0000;
    [
        ImageSegment {
            range: r(t, t + 0x4_0000),
            flags: RegionFlags::RX,
        },
        ImageSegment {
            range: r(t + 0x4_0000, t + 0x6_0000),
            flags: RegionFlags::READ,
        },
        ImageSegment {
            range: r(t + 0x6_0000, t + 0x10_0000),
            flags: RegionFlags::RW,
        },
    ]
}

type Expect = Vec<(u64, u64, RegionKind)>;

fn regions(bi: &bootinfo::BootInfo<'_>) -> Expect {
    bi.regions
        .iter()
        .map(|x| (x.range.start, x.range.end, x.kind))
        .collect()
}

fn dtb_size(b: &[u8]) -> u64 {
    u32::from_be_bytes(b[4..8].try_into().unwrap()) as u64
}

fn check_kvmtool(name: &str, ram_mib: u64, dtb_addr: u64, cpus: usize, cmdline: Option<&str>) {
    let Some(blob) = load(&format!("kvmtool/{name}.dtb")) else {
        return;
    };
    let seg = segments(0x8000_0000);
    let bi = bootinfo::parse(&blob, dtb_addr, &ImageLayout { segments: &seg }).unwrap();
    let ram_end = 0x8000_0000 + (ram_mib << 20);
    let dtb_end = dtb_addr + dtb_size(&blob);
    let page_up = (dtb_end + 0xfff) & !0xfff;
    use RegionKind::*;
    let mut want: Expect = vec![
        (0x8000_0000, 0x8010_0000, Free),
        (0x8010_0000, 0x8014_0000, Kernel),
        (0x8014_0000, 0x8016_0000, Kernel),
        (0x8016_0000, 0x8020_0000, Kernel),
        (0x8020_0000, dtb_addr, Free),
        (dtb_addr, dtb_end, DeviceTree),
    ];
    if page_up < ram_end {
        want.push((page_up, ram_end, Free));
    }
    assert_eq!(regions(&bi), want, "{name}");
    assert_eq!(bi.ram.iter().collect::<Vec<_>>(), [r(0x8000_0000, ram_end)]);
    let (uart, src) = bi.console.unwrap();
    assert_eq!(
        src,
        ConsoleSource::StdoutPath,
        "stdout-path serial0 via /aliases"
    );
    assert_eq!(uart.kind, UartKind::Ns16550);
    assert_eq!((uart.base, uart.size), (0x100_0000, 8));
    assert_eq!((uart.reg_shift, uart.reg_io_width), (0, 1));
    assert_eq!(uart.clock_hz, Some(1_843_200));
    assert_eq!(bi.psci, Some(Conduit::Hvc));
    assert_eq!(bi.cmdline, cmdline);
    assert_eq!(bi.cpu_count, cpus);
    let redist = 0x20000 * cpus as u64;
    assert_eq!(
        bi.gic,
        Some(GicDesc::V3 {
            dist: r(0x3fff_0000, 0x4000_0000),
            redist: r(0x3fff_0000 - redist, 0x3fff_0000)
        })
    );
    assert_eq!(bi.initrd, None);
    // Page-widened and merged: PCI I/O, the four UARTs, the RTC, then GIC (ITS,
    // redistributors, distributor) + ECAM + the 32-bit PCI window up to RAM.
    let gic_low = 0x3fff_0000 - redist - 0x2_0000;
    assert_eq!(
        bi.devices.iter().collect::<Vec<_>>(),
        [
            r(0, 0x1_0000),
            r(0x100_0000, 0x100_4000),
            r(0x101_0000, 0x101_1000),
            r(gic_low, 0x8000_0000)
        ]
    );
}

#[test]
fn kvmtool_m64_c1() {
    check_kvmtool("m64-c1", 64, 0x83e0_0000, 1, None);
    check_kvmtool("m64-c1-nonet", 64, 0x83e0_0000, 1, None);
}

#[test]
fn kvmtool_m64_c1_bootargs() {
    check_kvmtool(
        "m64-c1-bootargs",
        64,
        0x83e0_0000,
        1,
        Some("console=ttyS0 rig=1"),
    );
    check_kvmtool(
        "m64-c1-bootargs-nonet",
        64,
        0x83e0_0000,
        1,
        Some("console=ttyS0 rig=1"),
    );
}

#[test]
fn kvmtool_m256_c2_dtb_mid_ram() {
    // 256 MiB: the DTB sits at RAM end - 2 MiB = base + 254 MiB.
    check_kvmtool("m256-c2", 256, 0x8fe0_0000, 2, None);
    check_kvmtool("m256-c2-nonet", 256, 0x8fe0_0000, 2, None);
}

#[test]
fn kvmtool_dtb_in_the_middle_of_1gib() {
    // kvmtool with > 256 MiB keeps the DTB just below base + 256 MiB: free RAM on both sides.
    let Some(mut blob) = load("kvmtool/m256-c2.dtb") else {
        return;
    };
    // Patch /memory reg to 1 GiB (the size cell is the last u32 of the 16-byte reg).
    let reg = [0u8, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0];
    let at = blob.windows(16).position(|w| w == reg).expect("memory reg");
    blob[at + 12..at + 16].copy_from_slice(&0x4000_0000u32.to_be_bytes());
    let seg = segments(0x8000_0000);
    let bi = bootinfo::parse(&blob, 0x8fe0_0000, &ImageLayout { segments: &seg }).unwrap();
    let end = 0x8fe0_0000 + dtb_size(&blob);
    let free: Vec<_> = bi
        .regions
        .iter()
        .filter(|x| x.kind == RegionKind::Free)
        .map(|x| (x.range.start, x.range.end))
        .collect();
    assert_eq!(
        free,
        [
            (0x8000_0000, 0x8010_0000),
            (0x8020_0000, 0x8fe0_0000),
            ((end + 0xfff) & !0xfff, 0xc000_0000)
        ]
    );
}

fn check_qemu(name: &str, ram: u64, conduit: Conduit, gic_v3: bool, cpus: usize) {
    let Some(blob) = load(&format!("qemu/{name}.dtb")) else {
        return;
    };
    let seg = segments(0x4000_0000);
    // QEMU virt places the DTB at the start of RAM for non-Linux images.
    let bi = bootinfo::parse(&blob, 0x4000_0000, &ImageLayout { segments: &seg }).unwrap();
    let dtb_end = 0x4000_0000 + dtb_size(&blob);
    use RegionKind::*;
    let want: Expect = vec![
        (0x4000_0000, dtb_end, DeviceTree),
        ((dtb_end + 0xfff) & !0xfff, 0x4010_0000, Free),
        (0x4010_0000, 0x4014_0000, Kernel),
        (0x4014_0000, 0x4016_0000, Kernel),
        (0x4016_0000, 0x4020_0000, Kernel),
        (0x4020_0000, 0x4000_0000 + ram, Free),
    ];
    assert_eq!(regions(&bi), want, "{name}");
    let (uart, src) = bi.console.unwrap();
    assert_eq!(
        src,
        ConsoleSource::StdoutPath,
        "stdout-path is a full path on virt"
    );
    assert_eq!(
        (uart.kind, uart.base, uart.size),
        (UartKind::Pl011, 0x900_0000, 0x1000)
    );
    assert_eq!(bi.psci, Some(conduit));
    assert_eq!(bi.cmdline, None);
    assert_eq!(bi.cpu_count, cpus);
    match bi.gic.unwrap() {
        GicDesc::V3 { dist, .. } => assert!(gic_v3 && dist.start == 0x800_0000),
        GicDesc::V2 { dist, cpu } => {
            assert!(!gic_v3);
            assert_eq!((dist.start, cpu.start), (0x800_0000, 0x801_0000));
        }
    }
    assert!(
        bi.devices
            .iter()
            .any(|d| d.start <= 0x900_0000 && d.end >= 0x900_1000)
    );
}

#[test]
fn qemu_virt_m128() {
    check_qemu("virt-m128", 128 << 20, Conduit::Hvc, false, 1);
}

#[test]
fn qemu_virt_el2_gicv3() {
    check_qemu("virt-el2-gicv3-m256-c2", 256 << 20, Conduit::Smc, true, 2);
}

#[test]
fn qemu_virt_ram_above_4gib() {
    check_qemu("virt-m4096", 4096 << 20, Conduit::Hvc, false, 1);
}

#[test]
fn every_fixture_parses() {
    let Some(dir) = fixtures_dir() else {
        println!("SKIPPED: fixtures directory ../shared/fixtures not found (set PLAT_FIXTURES)");
        return;
    };
    let mut n = 0;
    for sub in ["kvmtool", "qemu"] {
        for e in std::fs::read_dir(dir.join("dtb").join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "dtb") {
                let blob = std::fs::read(&p).unwrap();
                let base = if sub == "kvmtool" {
                    0x8000_0000
                } else {
                    0x4000_0000
                };
                let seg = segments(base);
                let dtb_addr = base + 0x300_0000;
                let bi = bootinfo::parse(&blob, dtb_addr, &ImageLayout { segments: &seg })
                    .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                // The realm probe's shortcut must agree with the full parse.
                assert_eq!(bootinfo::psci_conduit(&blob), bi.psci, "{}", p.display());
                assert!(bi.psci.is_some());
                n += 1;
            }
        }
    }
    assert_eq!(n, 9, "expected the 6 kvmtool and 3 QEMU fixtures");
}

/// A Firecracker tree: no stdout-path and no aliases, the console named by the
/// `earlycon=uart,mmio,<addr>` Firecracker appends to the boot args. The image is
/// where Firecracker loads it (RAM base + 1 MiB of text offset), the DTB at RAM end
/// - 2 MiB.
fn check_firecracker(name: &str, ram: (u64, u64), uart_base: u64, cmdline: &str, cpus: usize) {
    let Some(blob) = load(&format!("firecracker/{name}.dtb")) else {
        return;
    };
    let (base, end) = ram;
    let seg = segments(base);
    let dtb_addr = end - 0x20_0000;
    let bi = bootinfo::parse(&blob, dtb_addr, &ImageLayout { segments: &seg })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let dtb_end = dtb_addr + dtb_size(&blob);
    use RegionKind::*;
    let t = base + 0x10_0000;
    let want: Expect = vec![
        (base, t, Free),
        (t, t + 0x4_0000, Kernel),
        (t + 0x4_0000, t + 0x6_0000, Kernel),
        (t + 0x6_0000, t + 0x10_0000, Kernel),
        (t + 0x10_0000, dtb_addr, Free),
        (dtb_addr, dtb_end, DeviceTree),
        ((dtb_end + 0xfff) & !0xfff, end, Free),
    ];
    assert_eq!(regions(&bi), want, "{name}");
    assert_eq!(bi.ram.iter().collect::<Vec<_>>(), [r(base, end)], "{name}");
    let (uart, src) = bi.console.unwrap();
    assert_eq!(src, ConsoleSource::Bootargs, "{name}: earlycon= names it");
    assert_eq!(
        (uart.kind, uart.base, uart.size),
        (UartKind::Ns16550, uart_base, 0x1000),
        "{name}"
    );
    assert_eq!((uart.reg_shift, uart.reg_io_width), (0, 1));
    assert_eq!(bi.psci, Some(Conduit::Hvc));
    assert_eq!(bi.cmdline, Some(cmdline));
    assert_eq!(bi.cpu_count, cpus);
    assert!(matches!(bi.gic, Some(GicDesc::V3 { dist, .. }) if dist.start == 0x3fff_0000));
    assert!(
        bi.devices
            .iter()
            .any(|d| d.start <= uart_base && d.end >= uart_base + 0x1000)
    );
    assert_eq!(bootinfo::psci_conduit(&blob), bi.psci);
}

#[test]
fn firecracker_v1_7_0() {
    let args = "console=ttyS0 earlycon=uart,mmio,0x40000000";
    check_firecracker(
        "v1.7.0-m64-c1",
        (0x8000_0000, 0x8400_0000),
        0x4000_0000,
        args,
        1,
    );
    check_firecracker(
        "v1.7.0-m1024-c2",
        (0x8000_0000, 0xc000_0000),
        0x4000_0000,
        args,
        2,
    );
}

#[test]
fn firecracker_v1_10_1_ram_from_0x80200000() {
    let args = "console=ttyS0 earlycon=uart,mmio,0x40000000";
    check_firecracker(
        "v1.10.1-m64-c1",
        (0x8020_0000, 0x8400_0000),
        0x4000_0000,
        args,
        1,
    );
}

#[test]
fn firecracker_v1_16_1_uart_moved() {
    let args = "console=ttyS0 pci=off earlycon=uart,mmio,0x40002000";
    check_firecracker(
        "v1.16.1-m64-c1",
        (0x8020_0000, 0x8400_0000),
        0x4000_2000,
        args,
        1,
    );
    check_firecracker(
        "v1.16.1-m1024-c2",
        (0x8020_0000, 0xc000_0000),
        0x4000_2000,
        args,
        2,
    );
}
