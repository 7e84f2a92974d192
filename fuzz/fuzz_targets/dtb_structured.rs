//! Structured device trees (written with vm-fdt from arbitrary input) through
//! `bootinfo::parse`: gets past the blob checks every time, so the fuzzer spends
//! its effort on the walk and the cross-checks.
//!
//! Asserts, beyond "no panic": the generic invariants of `check_bootinfo` (free
//! regions page-aligned, in RAM, disjoint from everything; sorted regions; DTB and
//! image never free) and an oracle from the generator: unsupported root cells or
//! a bogus PSCI method are refused; otherwise the RAM banks, PSCI conduit, initrd,
//! command line, CPU count and console are the ones written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plat_kvm_arm::bootinfo::{self, ImageLayout};
use plat_kvm_arm::psci::Conduit;
use plat_kvm_arm_fuzz::{check_bootinfo, tree::Spec};

fuzz_target!(|data: &[u8]| {
    let Some(built) = Spec::from_bytes(data).and_then(|s| s.build()) else {
        return;
    };
    let image = ImageLayout {
        segments: &built.segments,
    };
    let ex = &built.expect;
    let Ok(bi) = bootinfo::parse(&built.blob, built.dtb_at, &image) else {
        return;
    };
    assert!(!ex.must_fail, "accepted a tree it must refuse: {ex:?}");
    check_bootinfo(&bi, &image, built.dtb_at, built.blob.len());

    let mut ram = ex.ram.clone();
    ram.sort_unstable();
    let got: Vec<_> = bi.ram.iter().map(|r| (r.start, r.len())).collect();
    assert_eq!(got, ram, "RAM banks");
    let psci = ex
        .psci_hvc
        .map(|h| if h { Conduit::Hvc } else { Conduit::Smc });
    assert_eq!(bi.psci, psci, "PSCI conduit");
    assert_eq!(
        bi.initrd.map(|r| (r.start, r.end)),
        ex.initrd,
        "initrd range"
    );
    assert_eq!(bi.cmdline, ex.bootargs.as_deref(), "bootargs");
    assert_eq!(bi.cpu_count, ex.cpus, "CPU count");
    // Any usable UART yields a console, and the console is one of them.
    match bi.console {
        Some((u, _)) => assert!(ex.uart_bases.contains(&u.base), "console {u:?}"),
        None => assert!(ex.uart_bases.is_empty(), "no console among {ex:?}"),
    }
});
