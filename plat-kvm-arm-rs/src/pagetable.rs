//! Boot page tables, built at run time from the device tree.
//!
//! This plays the role of Unikraft's hard-coded `plat/kvm/arm/qemu_bpt64.S` and
//! `firecracker_bpt64.S`: the boot CPU fills a static pool of 4 KiB [`Table`]s (in
//! `.bss`) with [`PageTableBuilder::map`], then assembly installs
//! [`PageTableBuilder::root_pa`] in `TTBR0_EL1`, [`MAIR_EL1`] and [`tcr_el1`] in their
//! registers, and applies [`SCTLR_EL1_SET`] / [`SCTLR_EL1_CLEAR`].
//!
//! # Geometry
//!
//! 4 KiB granule, 48-bit VA (`T0SZ = 16`), four levels, TTBR0 only. Levels use the Arm
//! numbering: level 0 is the root (512 GiB per entry), level 1 maps 1 GiB blocks,
//! level 2 2 MiB blocks and level 3 4 KiB pages. (Unikraft's paging API numbers them
//! the other way round.)
//!
//! # Compatibility with Unikraft's paging (`CONFIG_PAGING`)
//!
//! The MAIR layout, TCR flags, SCTLR masks and the descriptor attribute encodings are
//! those of Unikraft RELEASE-0.17.0 (`arch/arm/arm64/include/uk/asm/lcpu.h`,
//! `arch.h`, `plat/common/include/arm/arm64/paging.h`), so `ukplat_paging_init()` can
//! take over. Note that it writes its frame allocator's metadata through Unikraft's
//! direct map *before* switching tables, so with `CONFIG_PAGING` the boot tables must
//! also map RAM at [`UK_DIRECTMAP_BASE`]` + pa` (a `va != pa` map).
//!
//! # Environment
//!
//! The builder runs at EL1 with the MMU and caches on (the platform's entry code
//! turns them on with a small early map first), so it writes tables with plain
//! stores; the walker is configured cacheable (TCR IRGN/ORGN = WBWA) and so sees them
//! once a `DSB` has completed them. Installing the tables while another set is live
//! is the caller's business (break-before-make).
//!
//! # Not for live tables
//!
//! Remapping and block splitting overwrite valid descriptors in place, without
//! break-before-make or TLB maintenance. That is only correct while the tables are
//! not in use by any translation regime (not yet installed). Once they
//! are live, use Unikraft's paging API instead.
//!
//! # Why not `aarch64-paging`
//!
//! Its `Translation::allocate_table` is infallible, so an exhausted static pool could
//! only be reported by panicking; it also brings its own attribute model and
//! break-before-make policy for live tables. What boot needs is small: one
//! allocation-free mapper with splitting, about 300 lines, written here.

use core::fmt;

/// Size of a page, a table, and the mapping granule.
pub const PAGE_SIZE: u64 = 1 << 12;
/// Size of a level-2 block.
pub const L2_BLOCK_SIZE: u64 = 1 << 21;
/// Size of a level-1 block.
pub const L1_BLOCK_SIZE: u64 = 1 << 30;
/// Virtual address bits translated through `TTBR0_EL1` (`T0SZ = 16`).
pub const VA_BITS: u32 = 48;
/// Entries in a table.
pub const ENTRIES: usize = 512;

/// Start of Unikraft's direct map of physical memory (`DIRECTMAP_AREA_START` in
/// `plat/common/include/arm/arm64/paging.h`): `va = UK_DIRECTMAP_BASE + pa`, for PAs
/// below 512 GiB.
pub const UK_DIRECTMAP_BASE: u64 = 0x0000_ff80_0000_0000;

/// Attribute indices into [`MAIR_EL1`], as Unikraft numbers them (`lcpu.h`).
pub mod mair_idx {
    /// Device-nGnRnE.
    pub const DEVICE_NGNRNE: u64 = 0;
    /// Device-nGnRE.
    pub const DEVICE_NGNRE: u64 = 1;
    /// Device-GRE.
    pub const DEVICE_GRE: u64 = 2;
    /// Normal, inner and outer non-cacheable.
    pub const NORMAL_NC: u64 = 3;
    /// Normal, inner and outer write-through non-transient.
    pub const NORMAL_WT: u64 = 4;
    /// Normal, inner and outer write-back non-transient.
    pub const NORMAL_WB: u64 = 5;
    /// Normal write-back, MTE tagged.
    pub const NORMAL_WB_TAGGED: u64 = 6;
}

/// `MAIR_EL1`: Unikraft's `MAIR_INIT_ATTR`, one byte per [`mair_idx`] index.
pub const MAIR_EL1: u64 = (0x00 << (8 * mair_idx::DEVICE_NGNRNE))
    | (0x04 << (8 * mair_idx::DEVICE_NGNRE))
    | (0x0c << (8 * mair_idx::DEVICE_GRE))
    | (0x44 << (8 * mair_idx::NORMAL_NC))
    | (0xbb << (8 * mair_idx::NORMAL_WT))
    | (0xff << (8 * mair_idx::NORMAL_WB))
    | (0xf0 << (8 * mair_idx::NORMAL_WB_TAGGED));

/// Bits of VMSAv8-64 stage-1 descriptors (4 KiB granule).
pub mod desc {
    /// Bit 0: the descriptor is valid.
    pub const VALID: u64 = 1 << 0;
    /// Bits 1:0, the descriptor type.
    pub const TYPE_MASK: u64 = 0b11;
    /// Block descriptor (levels 1 and 2).
    pub const TYPE_BLOCK: u64 = 0b01;
    /// Table descriptor (levels 0 to 2).
    pub const TYPE_TABLE: u64 = 0b11;
    /// Page descriptor (level 3; the same encoding as a table one level up).
    pub const TYPE_PAGE: u64 = 0b11;
    /// Bits 4:2, AttrIndx: index into `MAIR_EL1`.
    pub const ATTR_IDX_SHIFT: u32 = 2;
    /// Mask of AttrIndx.
    pub const ATTR_IDX_MASK: u64 = 0b111 << ATTR_IDX_SHIFT;
    /// Bit 6, AP\[1\]: EL0 access. Never set: nothing runs at EL0.
    pub const AP_EL0: u64 = 1 << 6;
    /// Bit 7, AP\[2\]: read-only (Unikraft's `PTE_ATTR_AP_RW_BIT`).
    pub const AP_RO: u64 = 1 << 7;
    /// Bits 9:8, SH = 0b11: inner shareable. Unikraft sets it on Device mappings
    /// too, where the architecture ignores it.
    pub const SH_IS: u64 = 0b11 << 8;
    /// Bit 10, AF: access flag. Always set, as there is no access-flag fault handler.
    pub const AF: u64 = 1 << 10;
    /// Bit 11, nG: not global. Never set (boot mappings are global, as in Unikraft).
    pub const NG: u64 = 1 << 11;
    /// Bits 47:12: output address (of the next table, the page, or the block; a
    /// block's low bits below its size are RES0).
    pub const OA_MASK: u64 = 0x0000_ffff_ffff_f000;
    /// Bit 50, GP: BTI guarded page (only with `CONFIG_ARM64_FEAT_BTI`; not set here).
    pub const GP: u64 = 1 << 50;
    /// Bit 53, PXN: not executable at EL1.
    pub const PXN: u64 = 1 << 53;
    /// Bit 54, UXN: not executable at EL0.
    pub const UXN: u64 = 1 << 54;
    /// PXN | UXN (Unikraft's `PTE_ATTR_XN`).
    pub const XN: u64 = PXN | UXN;
}

use desc::*;

/// Memory type and permissions of a mapping, encoded as Unikraft's `PTE_ATTR_*`
/// (without `CONFIG_ARM64_FEAT_MTE` / `CONFIG_ARM64_FEAT_BTI`).
///
/// All carry AF and SH = inner shareable (Unikraft's `PTE_ATTR_DEFAULT`), and none
/// grants EL0 access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemAttr {
    /// Device-nGnRE, XN (`PTE_ATTR_DEVICE_nGnRE`): MMIO such as UARTs and the GIC.
    Device,
    /// Device-nGnRnE, XN (`PTE_ATTR_DEVICE_nGnRnE`): e.g. PCIe configuration space.
    DeviceNGnRnE,
    /// Normal WB, read-write, XN (`PTE_ATTR_NORMAL_RW`): RAM, data, bss, stacks.
    NormalRw,
    /// Normal WB, read-only, executable at EL1, UXN (`PTE_ATTR_NORMAL_RX`): text.
    NormalRx,
    /// Normal WB, read-only, XN (`PTE_ATTR_NORMAL_RO`): rodata, the DTB.
    NormalRo,
    /// Normal WB, read-write, executable at EL1, UXN (`PTE_ATTR_NORMAL_RWX`): only
    /// for images built without W^X.
    NormalRwx,
}

impl MemAttr {
    const ALL: [MemAttr; 6] = [
        MemAttr::Device,
        MemAttr::DeviceNGnRnE,
        MemAttr::NormalRw,
        MemAttr::NormalRx,
        MemAttr::NormalRo,
        MemAttr::NormalRwx,
    ];

    /// The descriptor's attribute bits (everything but the output address and type).
    pub const fn bits(self) -> u64 {
        const DEFAULT: u64 = AF | SH_IS;
        const fn idx(i: u64) -> u64 {
            i << ATTR_IDX_SHIFT
        }
        match self {
            MemAttr::Device => DEFAULT | XN | idx(mair_idx::DEVICE_NGNRE),
            MemAttr::DeviceNGnRnE => DEFAULT | XN | idx(mair_idx::DEVICE_NGNRNE),
            MemAttr::NormalRw => DEFAULT | XN | idx(mair_idx::NORMAL_WB),
            MemAttr::NormalRx => DEFAULT | UXN | AP_RO | idx(mair_idx::NORMAL_WB),
            MemAttr::NormalRo => DEFAULT | XN | AP_RO | idx(mair_idx::NORMAL_WB),
            MemAttr::NormalRwx => DEFAULT | UXN | idx(mair_idx::NORMAL_WB),
        }
    }

    /// The attribute whose bits a block or page descriptor carries, if any.
    pub fn from_descriptor(d: u64) -> Option<MemAttr> {
        let bits = d & !(OA_MASK | TYPE_MASK);
        Self::ALL.into_iter().find(|a| a.bits() == bits)
    }
}

/// `SCTLR_EL1` bits to set when enabling the MMU (Unikraft's `SCTLR_SET_BITS`): M, C,
/// SA, SA0, CP15BEN, SED, EOS, I, DZE, UCT, nTWI, nTWE, bit 20 (UWXN/TSCXT), EIS,
/// SPAN, UCI, nTLSMD, LSMAOE.
pub const SCTLR_EL1_SET: u64 = bits(&[
    0, 2, 3, 4, 5, 8, 11, 12, 14, 15, 16, 18, 20, 22, 23, 26, 28, 29,
]);

/// `SCTLR_EL1` bits to clear (Unikraft's `SCTLR_CLEAR_BITS`): A, nAA, ITD, UMA,
/// EnRCTX, EnDB, bit 17, WXN, IESB, E0E, EE, EnDA, EnIB, EnIA. Clearing A keeps
/// unaligned Normal accesses legal; clearing WXN lets [`MemAttr::NormalRwx`] execute.
pub const SCTLR_EL1_CLEAR: u64 = bits(&[1, 6, 7, 9, 10, 13, 17, 19, 21, 24, 25, 27, 30, 31]);

const fn bits(list: &[u32]) -> u64 {
    let mut v = 0;
    let mut i = 0;
    while i < list.len() {
        v |= 1 << list[i];
        i += 1;
    }
    v
}

/// `TCR_EL1.IPS` encoding for a `ID_AA64MMFR0_EL1.PARange` value, capped at 48 bits
/// (encoding 5): 52-bit output addresses would need FEAT_LPA descriptors.
const fn ips(pa_range_field: u64) -> u64 {
    let f = pa_range_field & 0xf;
    if f > 5 { 5 } else { f }
}

/// Physical (output) address bits for an `ID_AA64MMFR0_EL1.PARange` value, capped at
/// 48. Only bits 3:0 are looked at, so the raw register value may be passed.
pub const fn pa_bits(pa_range_field: u64) -> u32 {
    const BITS: [u32; 6] = [32, 36, 40, 42, 44, 48];
    BITS[ips(pa_range_field) as usize]
}

/// `TCR_EL1` as Unikraft's `CONFIG_PAGING` `TCR_INIT_FLAGS`: T0SZ = 16, TTBR0 walks
/// inner/outer write-back write-allocate and inner shareable (and the same for the
/// disabled TTBR1), 4 KiB granule, EPD1 (no TTBR1 walks), 16-bit ASIDs. Unlike
/// Unikraft, IPS comes from `pa_range_field` (`ID_AA64MMFR0_EL1` or its PARange field)
/// capped at 48 bits, instead of being fixed at 48.
///
/// Caveat: with `CONFIG_UKDEBUG`, Unikraft's `pgarch_init()` crashes unless IPS
/// encodes 48 bits. Where that check must pass on a PE with a smaller PARange, use
/// `tcr_el1(5)`: the Arm ARM treats an IPS above the implemented PA size as the
/// implemented size.
pub const fn tcr_el1(pa_range_field: u64) -> u64 {
    const T0SZ: u64 = 64 - VA_BITS as u64;
    const IRGN0_WBWA: u64 = 1 << 8;
    const ORGN0_WBWA: u64 = 1 << 10;
    const SH0_IS: u64 = 0b11 << 12;
    const TG0_4K: u64 = 0b00 << 14;
    const EPD1: u64 = 1 << 23;
    const IRGN1_WBWA: u64 = 1 << 24;
    const ORGN1_WBWA: u64 = 1 << 26;
    const SH1_IS: u64 = 0b11 << 28;
    const AS: u64 = 1 << 36;
    T0SZ | IRGN0_WBWA
        | ORGN0_WBWA
        | SH0_IS
        | TG0_4K
        | EPD1
        | IRGN1_WBWA
        | ORGN1_WBWA
        | SH1_IS
        | (ips(pa_range_field) << 32)
        | AS
}

/// A 4 KiB translation table.
#[repr(C, align(4096))]
pub struct Table(pub [u64; ENTRIES]);

impl Table {
    /// An empty table, usable to initialise a static pool:
    /// `static mut POOL: [Table; 16] = [Table::ZERO; 16];`.
    pub const ZERO: Table = Table([0; ENTRIES]);
}

impl Default for Table {
    fn default() -> Self {
        Self::ZERO
    }
}

/// Why a mapping (or the builder) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// The pool has no free table left (or is empty). Parts of the range that were
    /// reached before may already be mapped.
    PoolExhausted,
    /// An address or size is not a multiple of 4 KiB.
    Unaligned,
    /// The size is zero.
    ZeroSize,
    /// The range wraps around the 64-bit address space.
    Wraps,
    /// The virtual range goes beyond 2^48.
    VaOutOfRange,
    /// The physical range goes beyond the configured PA size.
    PaOutOfRange,
    /// A table descriptor points outside the used pool: the tables were corrupted.
    Corrupt,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MapError::PoolExhausted => "page-table pool exhausted",
            MapError::Unaligned => "address or size not 4 KiB aligned",
            MapError::ZeroSize => "empty mapping",
            MapError::Wraps => "range wraps around",
            MapError::VaOutOfRange => "virtual address beyond 48 bits",
            MapError::PaOutOfRange => "physical address beyond the PA size",
            MapError::Corrupt => "page tables corrupted",
        })
    }
}

/// The descriptor that maps an address, as found by [`PageTableBuilder::leaf`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leaf {
    /// Level of the descriptor: 1 (1 GiB block), 2 (2 MiB block) or 3 (page).
    pub level: u8,
    /// The raw descriptor.
    pub desc: u64,
}

impl Leaf {
    /// Bytes mapped by the descriptor.
    pub const fn size(&self) -> u64 {
        1 << level_shift(self.level as u32)
    }
}

/// log2 of the span of one entry at `level`.
const fn level_shift(level: u32) -> u32 {
    12 + 9 * 3u32.saturating_sub(level)
}

/// Builds boot page tables in a caller-provided pool of [`Table`]s.
///
/// Table 0 of the pool is the root. Tables are handed out in order and never freed:
/// a table replaced by a block when a later map covers its whole span is leaked.
pub struct PageTableBuilder<'a> {
    pool: &'a mut [Table],
    pool_pa: u64,
    used: usize,
    pa_bits: u32,
}

impl<'a> PageTableBuilder<'a> {
    /// Starts empty tables in `pool`, whose first table is at physical address
    /// `pool_pa` (the pool's own address when identity-mapped at boot; only used to
    /// encode table descriptors, never dereferenced). `pa_range_field` is
    /// `ID_AA64MMFR0_EL1` (or its PARange field): output addresses, including the
    /// pool's, must fit in [`pa_bits`] of it. The root table is cleared, other tables
    /// as they are allocated, so the pool may hold garbage.
    pub fn new(pool: &'a mut [Table], pool_pa: u64, pa_range_field: u64) -> Result<Self, MapError> {
        let pa_bits = pa_bits(pa_range_field);
        if pool.is_empty() {
            return Err(MapError::PoolExhausted);
        }
        if !pool_pa.is_multiple_of(PAGE_SIZE) {
            return Err(MapError::Unaligned);
        }
        let end = (pool.len() as u64)
            .checked_mul(PAGE_SIZE)
            .and_then(|len| pool_pa.checked_add(len))
            .ok_or(MapError::Wraps)?;
        if end > 1 << pa_bits {
            return Err(MapError::PaOutOfRange);
        }
        let mut b = Self {
            pool,
            pool_pa,
            used: 0,
            pa_bits,
        };
        b.alloc()?;
        Ok(b)
    }

    /// Maps `[va, va + size)` to `[pa, pa + size)` with `attr`, using the largest
    /// blocks alignment allows (1 GiB, 2 MiB, else 4 KiB pages). Overrides what was
    /// mapped there before; a block only partly remapped is first split into a
    /// next-level table that keeps its old mapping. Not for live tables (see the
    /// module documentation).
    ///
    /// Checks happen before anything is written, except for
    /// [`MapError::PoolExhausted`] (and [`MapError::Corrupt`]), after which part of
    /// the range may be mapped.
    pub fn map(&mut self, va: u64, pa: u64, size: u64, attr: MemAttr) -> Result<(), MapError> {
        if size == 0 {
            return Err(MapError::ZeroSize);
        }
        if !(va | pa | size).is_multiple_of(PAGE_SIZE) {
            return Err(MapError::Unaligned);
        }
        let va_end = va.checked_add(size).ok_or(MapError::Wraps)?;
        let pa_end = pa.checked_add(size).ok_or(MapError::Wraps)?;
        if va_end > 1 << VA_BITS {
            return Err(MapError::VaOutOfRange);
        }
        if pa_end > 1 << self.pa_bits {
            return Err(MapError::PaOutOfRange);
        }
        self.map_in(0, 0, va, pa, va_end, attr.bits())
    }

    /// Maps `[va, end)` within the table `tbl` at `level` (recursion depth <= 4).
    fn map_in(
        &mut self,
        tbl: usize,
        level: u32,
        mut va: u64,
        mut pa: u64,
        end: u64,
        attr: u64,
    ) -> Result<(), MapError> {
        let span = 1u64 << level_shift(level);
        while va < end {
            let idx = index(va, level);
            // End of this entry's span, clipped to the range. No overflow: va < 2^48.
            let next = ((va | (span - 1)) + 1).min(end);
            let len = next - va;
            let old = self.entry(tbl, idx)?;
            if level == 3 {
                self.set(tbl, idx, pa | attr | TYPE_PAGE)?;
            } else if level >= 1 && len == span && (va | pa).is_multiple_of(span) {
                // A whole, aligned span: one block, replacing whatever was there.
                self.set(tbl, idx, pa | attr | TYPE_BLOCK)?;
            } else {
                let child = match old & TYPE_MASK {
                    TYPE_TABLE => self.table_index(old)?,
                    TYPE_BLOCK if level >= 1 => {
                        let old_pa = (old & OA_MASK) + (va & (span - 1));
                        if old & !(OA_MASK | TYPE_MASK) == attr && old_pa == pa {
                            // Already mapped this way: no need to split.
                            va = next;
                            pa += len;
                            continue;
                        }
                        self.split(tbl, idx, old, level)?
                    }
                    _ => {
                        let child = self.alloc()?;
                        self.set(tbl, idx, self.table_pa(child) | TYPE_TABLE)?;
                        child
                    }
                };
                self.map_in(child, level + 1, va, pa, next, attr)?;
            }
            va = next;
            pa += len;
        }
        Ok(())
    }

    /// Replaces the block `old` at `tbl[idx]` (at `level`) by a table of the next level
    /// mapping the same range with the same attributes; returns the new table.
    fn split(&mut self, tbl: usize, idx: usize, old: u64, level: u32) -> Result<usize, MapError> {
        let child = self.alloc()?;
        let sub = 1u64 << level_shift(level + 1);
        let ty = if level + 1 == 3 {
            TYPE_PAGE
        } else {
            TYPE_BLOCK
        };
        let base = old & OA_MASK;
        let attrs = old & !(OA_MASK | TYPE_MASK);
        for i in 0..ENTRIES {
            self.set(child, i, (base + i as u64 * sub) | attrs | ty)?;
        }
        self.set(tbl, idx, self.table_pa(child) | TYPE_TABLE)?;
        Ok(child)
    }

    /// Takes the next free table, cleared.
    fn alloc(&mut self) -> Result<usize, MapError> {
        let t = self.used;
        let table = self.pool.get_mut(t).ok_or(MapError::PoolExhausted)?;
        for slot in table.0.iter_mut() {
            // SAFETY: `slot` comes from a `&mut u64`: valid, aligned, not aliased.
            // Volatile only keeps this a loop of 64-bit stores: as a plain loop LLVM
            // makes it a `memset` call, which inside Unikraft is nolibc's byte loop
            // (eight times the stores, for every table).
            unsafe { core::ptr::write_volatile(slot, 0) };
        }
        self.used += 1;
        Ok(t)
    }

    fn entry(&self, tbl: usize, idx: usize) -> Result<u64, MapError> {
        self.pool
            .get(tbl)
            .map(|t| t.0[idx % ENTRIES])
            .ok_or(MapError::Corrupt)
    }

    fn set(&mut self, tbl: usize, idx: usize, val: u64) -> Result<(), MapError> {
        let t = self.pool.get_mut(tbl).ok_or(MapError::Corrupt)?;
        t.0[idx % ENTRIES] = val;
        Ok(())
    }

    fn table_pa(&self, tbl: usize) -> u64 {
        self.pool_pa + tbl as u64 * PAGE_SIZE
    }

    /// The pool index a table descriptor points to, if it is a used table.
    fn table_index(&self, d: u64) -> Result<usize, MapError> {
        let off = (d & OA_MASK).wrapping_sub(self.pool_pa);
        let i = off / PAGE_SIZE;
        if off.is_multiple_of(PAGE_SIZE) && i < self.used as u64 {
            Ok(i as usize)
        } else {
            Err(MapError::Corrupt)
        }
    }

    /// The block or page descriptor that maps `va`, by walking the tables as the
    /// MMU would.
    pub fn leaf(&self, va: u64) -> Option<Leaf> {
        if va >> VA_BITS != 0 {
            return None;
        }
        let mut tbl = 0;
        for level in 0..4u32 {
            let d = self.entry(tbl, index(va, level)).ok()?;
            match (d & TYPE_MASK, level) {
                (TYPE_PAGE, 3) | (TYPE_BLOCK, 1 | 2) => {
                    return Some(Leaf {
                        level: level as u8,
                        desc: d,
                    });
                }
                (TYPE_TABLE, 0..=2) => tbl = self.table_index(d).ok()?,
                _ => return None,
            }
        }
        None
    }

    /// Where `va` is mapped, and how; `None` if it is not.
    pub fn translate(&self, va: u64) -> Option<(u64, MemAttr)> {
        let leaf = self.leaf(va)?;
        let pa = (leaf.desc & OA_MASK & !(leaf.size() - 1)) | (va & (leaf.size() - 1));
        Some((pa, MemAttr::from_descriptor(leaf.desc)?))
    }

    /// Tables taken from the pool so far, the root included.
    pub fn tables_used(&self) -> usize {
        self.used
    }

    /// Physical address of the root table, for `TTBR0_EL1` (ASID 0, CnP 0).
    pub fn root_pa(&self) -> u64 {
        self.pool_pa
    }

    /// Output address bits accepted by [`map`](Self::map).
    pub fn pa_bits(&self) -> u32 {
        self.pa_bits
    }
}

/// Index of `va` in a table at `level`.
fn index(va: u64, level: u32) -> usize {
    ((va >> level_shift(level)) as usize) % ENTRIES
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn pool(n: usize) -> Vec<Table> {
        (0..n).map(|_| Table::ZERO).collect()
    }

    fn builder(p: &mut [Table]) -> PageTableBuilder<'_> {
        let pa = p.as_ptr() as u64;
        PageTableBuilder::new(p, pa, 5).unwrap()
    }

    #[test]
    fn registers_match_unikraft() {
        // Values computed by hand from lcpu.h / arch.h of RELEASE-0.17.0.
        assert_eq!(MAIR_EL1, 0x00f0_ffbb_440c_0400);
        assert_eq!(tcr_el1(5), 0x15_3580_3510);
        assert_eq!(SCTLR_EL1_SET, 0x34d5_d93d);
        assert_eq!(SCTLR_EL1_CLEAR, 0xcb2a_26c2);
        assert_eq!(SCTLR_EL1_SET & SCTLR_EL1_CLEAR, 0);
    }

    #[test]
    fn tcr_ips_follows_parange_capped() {
        for (field, ips, bits) in [
            (0, 0, 32),
            (1, 1, 36),
            (2, 2, 40),
            (4, 4, 44),
            (5, 5, 48),
            (6, 5, 48),
            (0xf, 5, 48),
        ] {
            assert_eq!((tcr_el1(field) >> 32) & 7, ips, "PARange {field}");
            assert_eq!(pa_bits(field), bits);
            assert_eq!(tcr_el1(field) & !(7 << 32), tcr_el1(0));
        }
        // The whole register may be passed: upper fields are ignored.
        assert_eq!(tcr_el1(0x1122_0002), tcr_el1(2));
    }

    #[test]
    fn attributes_match_unikraft() {
        // PTE_ATTR_* from lcpu.h without MTE/BTI: AF | SH_IS | ...
        assert_eq!(MemAttr::Device.bits(), 0x0060_0000_0000_0704);
        assert_eq!(MemAttr::DeviceNGnRnE.bits(), 0x0060_0000_0000_0700);
        assert_eq!(MemAttr::NormalRw.bits(), 0x0060_0000_0000_0714);
        assert_eq!(MemAttr::NormalRo.bits(), 0x0060_0000_0000_0794);
        assert_eq!(MemAttr::NormalRx.bits(), 0x0040_0000_0000_0794);
        assert_eq!(MemAttr::NormalRwx.bits(), 0x0040_0000_0000_0714);
        for a in MemAttr::ALL {
            assert_eq!(
                MemAttr::from_descriptor(a.bits() | 0x1234_5000 | TYPE_PAGE),
                Some(a)
            );
        }
    }

    #[test]
    fn static_pool_initialiser() {
        // The form a `.bss` pool takes; `Table` is not `Copy`.
        let p: [Table; 2] = [Table::ZERO; 2];
        assert_eq!(core::mem::align_of_val(&p), 4096);
        assert!(p.iter().all(|t| t.0.iter().all(|&d| d == 0)));
    }

    #[test]
    fn largest_blocks() {
        let mut p = pool(8);
        let mut b = builder(&mut p);
        // 1 GiB + 2 MiB + 4 KiB, all aligned for the biggest block.
        b.map(
            0x4000_0000,
            0x4000_0000,
            L1_BLOCK_SIZE + L2_BLOCK_SIZE + PAGE_SIZE,
            MemAttr::NormalRw,
        )
        .unwrap();
        assert_eq!(b.leaf(0x4000_0000).unwrap().level, 1);
        assert_eq!(b.leaf(0x8000_0000).unwrap().level, 2);
        assert_eq!(b.leaf(0x8020_0000).unwrap().level, 3);
        assert_eq!(b.leaf(0x8020_1000), None);
        assert_eq!(b.leaf(0x3fff_f000), None);
        // root + L1 + L2 + L3
        assert_eq!(b.tables_used(), 4);
        let root = b.root_pa();
        assert_eq!(p[0].0[0], (root + PAGE_SIZE) | TYPE_TABLE);
        assert_eq!(
            p[1].0[1],
            0x4000_0000 | MemAttr::NormalRw.bits() | TYPE_BLOCK
        );
    }

    #[test]
    fn misaligned_pa_uses_pages() {
        let mut p = pool(8);
        let mut b = builder(&mut p);
        b.map(0x4000_0000, 0x4000_1000, L2_BLOCK_SIZE, MemAttr::NormalRw)
            .unwrap();
        assert_eq!(b.leaf(0x4000_0000).unwrap().level, 3);
        assert_eq!(
            b.translate(0x401f_f000),
            Some((0x4020_0000, MemAttr::NormalRw))
        );
    }

    #[test]
    fn split_keeps_old_mapping() {
        let mut p = pool(8);
        let mut b = builder(&mut p);
        let old = MemAttr::NormalRwx;
        b.map(0x4000_0000, 0x4000_0000, L1_BLOCK_SIZE, old).unwrap();
        b.map(0x4020_1000, 0x4020_1000, PAGE_SIZE, MemAttr::NormalRx)
            .unwrap();
        assert_eq!(b.tables_used(), 4);
        assert_eq!(b.translate(0x4020_0fff), Some((0x4020_0fff, old)));
        assert_eq!(
            b.translate(0x4020_1000),
            Some((0x4020_1000, MemAttr::NormalRx))
        );
        assert_eq!(b.translate(0x4020_2000), Some((0x4020_2000, old)));
        assert_eq!(b.translate(0x7fff_ffff), Some((0x7fff_ffff, old)));
        assert_eq!(b.leaf(0x4000_0000).unwrap().level, 2);
        assert_eq!(b.leaf(0x7fe0_0000).unwrap().level, 2);
        // Same mapping again: nothing to split, no table taken.
        b.map(0x4040_0000, 0x4040_0000, PAGE_SIZE, old).unwrap();
        assert_eq!(b.tables_used(), 4);
        assert_eq!(b.leaf(0x4040_0000).unwrap().level, 2);
        // Same attributes but another output address: split.
        b.map(0x4060_0000, 0x9000_0000, PAGE_SIZE, old).unwrap();
        assert_eq!(b.tables_used(), 5);
        assert_eq!(b.translate(0x4060_0000), Some((0x9000_0000, old)));
        assert_eq!(b.translate(0x4060_1000), Some((0x4060_1000, old)));
    }

    #[test]
    fn errors() {
        let mut p = pool(2);
        let mut b = builder(&mut p);
        let rw = MemAttr::NormalRw;
        assert_eq!(b.map(0x1000, 0x1000, 0, rw), Err(MapError::ZeroSize));
        assert_eq!(b.map(0x1001, 0x1000, 0x1000, rw), Err(MapError::Unaligned));
        assert_eq!(b.map(0x1000, 0x1800, 0x1000, rw), Err(MapError::Unaligned));
        assert_eq!(b.map(0x1000, 0x1000, 0x10, rw), Err(MapError::Unaligned));
        assert_eq!(
            b.map(0xffff_ffff_ffff_f000, 0, 0x2000, rw),
            Err(MapError::Wraps)
        );
        assert_eq!(
            b.map(0, 0xffff_ffff_ffff_f000, 0x2000, rw),
            Err(MapError::Wraps)
        );
        assert_eq!(
            b.map(0xffff_f000_0000, 0, 0x1000_1000, rw),
            Err(MapError::VaOutOfRange)
        );
        assert_eq!(
            b.map(0, 0xffff_ffff_f000, 0x2000, rw),
            Err(MapError::PaOutOfRange)
        );
        assert_eq!(b.map(0, 0, 0x1000, rw), Err(MapError::PoolExhausted));
        assert_eq!(b.tables_used(), 2);
    }

    #[test]
    fn new_checks_pool() {
        assert_eq!(
            PageTableBuilder::new(&mut [], 0x1000, 5).err(),
            Some(MapError::PoolExhausted)
        );
        let mut p = pool(2);
        assert_eq!(
            PageTableBuilder::new(&mut p, 0x800, 5).err(),
            Some(MapError::Unaligned)
        );
        assert_eq!(
            PageTableBuilder::new(&mut p, 0xffff_ffff_f000, 0).err(),
            Some(MapError::PaOutOfRange)
        );
        assert_eq!(
            PageTableBuilder::new(&mut p, 0xffff_ffff_ffff_f000, 5).err(),
            Some(MapError::Wraps)
        );
        // Garbage in the pool is cleared, not followed.
        p[0].0.fill(u64::MAX);
        p[1].0.fill(u64::MAX);
        let mut b = PageTableBuilder::new(&mut p, 0x1000_0000, 2).unwrap();
        assert_eq!(b.translate(0), None);
        b.map(0x20_0000, 0x20_0000, L2_BLOCK_SIZE, MemAttr::Device)
            .unwrap_err();
        assert_eq!(b.pa_bits(), 40);
    }
}
