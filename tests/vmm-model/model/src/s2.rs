//! Stage-2 translation tables (4 KiB granule, start at level 1) and the
//! model's own EL2 stage-1 identity map.

use crate::layout;
use crate::sys::{dsb, isb, msr};
use core::sync::atomic::{AtomicU64, Ordering};

pub const NORMAL: u64 = (0b1111 << 2) | (0b11 << 6) | (0b11 << 8) | (1 << 10);
/// Stage-2 execute-never (XN[54:53] = 0b10).
pub const XN: u64 = 0b10 << 53;
pub const DEVICE: u64 = (0b0001 << 2) | (0b11 << 6) | (1 << 10) | (0b10 << 53);
const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;

static POOL_NEXT: AtomicU64 = AtomicU64::new(layout::POOL);

/// Allocates zeroed, page-aligned memory from the model's pool.
pub fn alloc(bytes: u64) -> Option<u64> {
    let sz = (bytes + 0xfff) & !0xfff;
    let a = POOL_NEXT.fetch_add(sz, Ordering::Relaxed);
    if a + sz > layout::POOL_END {
        return None;
    }
    // SAFETY: [a, a+sz) lies in the pool, which only this allocator hands out.
    unsafe { core::ptr::write_bytes(a as *mut u8, 0, sz as usize) };
    Some(a)
}

fn table() -> u64 {
    match alloc(4096) {
        Some(a) => a,
        None => crate::fatal(format_args!("page-table pool exhausted")),
    }
}

fn entry(t: u64, idx: u64) -> *mut u64 {
    (t + idx * 8) as *mut u64
}

pub struct Stage2 {
    pub root: u64,
    pub ipa_bits: u32,
}

impl Stage2 {
    pub fn new(ipa_bits: u32) -> Stage2 {
        Stage2 {
            root: table(),
            ipa_bits,
        }
    }

    /// The level-3 entry for `ipa`, creating tables and splitting 2 MiB
    /// blocks on the way.
    fn pte(&self, ipa: u64) -> *mut u64 {
        let mut t = self.root;
        for level in 1..3u32 {
            let shift = 39 - 9 * level; // 30, 21
            let e = entry(t, (ipa >> shift) & 0x1ff);
            // SAFETY: `e` is inside a table page this module allocated.
            let v = unsafe { e.read_volatile() };
            let next = if v & 3 == 3 {
                v & ADDR_MASK
            } else {
                let nt = table();
                if v & 3 == 1 {
                    // split a block into next-level entries
                    let child = 1u64 << (shift - 9);
                    let attrs = v & !ADDR_MASK & !3;
                    let base = v & ADDR_MASK & !((1u64 << shift) - 1);
                    let kind = if level == 2 { 3 } else { 1 };
                    for i in 0..512 {
                        // SAFETY: `nt` is a fresh table page.
                        unsafe { entry(nt, i).write_volatile((base + i * child) | attrs | kind) };
                    }
                }
                // SAFETY: as above.
                unsafe { e.write_volatile(nt | 3) };
                nt
            };
            t = next;
        }
        entry(t, (ipa >> 12) & 0x1ff)
    }

    pub fn map_page(&self, ipa: u64, pa: u64, attrs: u64) {
        // SAFETY: `pte` returns a valid entry pointer.
        unsafe { self.pte(ipa).write_volatile((pa & ADDR_MASK) | attrs | 3) };
    }

    pub fn unmap_page(&self, ipa: u64) {
        // SAFETY: `pte` returns a valid entry pointer.
        unsafe { self.pte(ipa).write_volatile(0) };
    }

    /// Maps [ipa, ipa+size) to [pa, ...), with 2 MiB blocks where possible
    /// unless `pages` is set.
    pub fn map_range(&self, ipa: u64, pa: u64, size: u64, attrs: u64, pages: bool) {
        let mut off = 0;
        while off < size {
            let (i, p) = (ipa + off, pa + off);
            let blk = 1u64 << 21;
            if !pages && i % blk == 0 && p % blk == 0 && size - off >= blk {
                let l1 = entry(self.root, (i >> 30) & 0x1ff);
                // SAFETY: table entries allocated by this module.
                let v = unsafe { l1.read_volatile() };
                let l2 = if v & 3 == 3 {
                    v & ADDR_MASK
                } else {
                    let nt = table();
                    // SAFETY: as above.
                    unsafe { l1.write_volatile(nt | 3) };
                    nt
                };
                // SAFETY: as above.
                unsafe { entry(l2, (i >> 21) & 0x1ff).write_volatile(p | attrs | 1) };
                off += blk;
            } else {
                self.map_page(i, p, attrs);
                off += 4096;
            }
        }
    }

    pub fn vtcr(&self) -> u64 {
        (64 - self.ipa_bits as u64)
            | (1 << 6) // SL0: start at level 1
            | (1 << 8) | (1 << 10) | (3 << 12) // WB WA, inner shareable
            | (2 << 16) // PS: 40 bits
            | (1 << 31)
    }
}

pub fn tlb_flush_guest() {
    dsb();
    // SAFETY: TLB maintenance for the current VMID only.
    unsafe { core::arch::asm!("tlbi vmalls12e1is", "dsb ish", "isb", options(nostack)) };
}

#[repr(C, align(4096))]
struct Table([u64; 512]);
static mut EL2_L1: Table = Table([0; 512]);

/// Identity map for EL2: the first GiB (QEMU devices) as Device-nGnRnE,
/// the rest of the 512 GiB as normal write-back memory. Turns the MMU on.
pub fn el2_mmu_on() {
    // SAFETY: called once on the boot CPU before any other CPU runs; only
    // this function writes the table.
    let t = unsafe { &mut *core::ptr::addr_of_mut!(EL2_L1) };
    for (i, e) in t.0.iter_mut().enumerate() {
        let base = (i as u64) << 30;
        *e = if i == 0 {
            base | (1 << 10) | (1 << 54) | 1 // AttrIndx 0 (Device), AF, XN
        } else {
            base | (1 << 2) | (3 << 8) | (1 << 10) | 1 // AttrIndx 1, ISH, AF
        };
    }
    el2_mmu_enable_secondary();
}

/// Turns on the EL2 MMU with the table built by `el2_mmu_on`.
pub fn el2_mmu_enable_secondary() {
    let t = core::ptr::addr_of!(EL2_L1) as u64;
    msr!("mair_el2", 0xff00);
    msr!(
        "tcr_el2",
        25 | (1 << 8) | (1 << 10) | (3 << 12) | (2 << 16) | (1 << 23) | (1 << 31)
    );
    msr!("ttbr0_el2", t);
    dsb();
    // SAFETY: TLB maintenance for EL2.
    unsafe { core::arch::asm!("tlbi alle2", "dsb sy", options(nostack)) };
    isb();
    // M, C, I with the RES1 bits of SCTLR_EL2 (non-VHE).
    msr!("sctlr_el2", 0x30c5_0830 | 1 | (1 << 2) | (1 << 12));
    isb();
}
