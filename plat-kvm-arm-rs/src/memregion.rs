//! Memory regions, typed like Unikraft's memory-region descriptors but free of any
//! Unikraft version's numbering (the type values moved between 0.17 and 0.18; the
//! `ffi` glue translates).

use core::mem::MaybeUninit;

/// Granule of the regions handed to the allocator.
pub const PAGE_SIZE: u64 = 4096;

/// A half-open physical (IPA) address range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl MemRange {
    /// A range from a base and a length; `None` if it is empty or wraps.
    pub fn from_base_len(base: u64, len: u64) -> Option<Self> {
        let end = base.checked_add(len)?;
        (len != 0).then_some(Self { start: base, end })
    }

    /// Length in bytes.
    pub const fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the range holds no byte.
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// Whether the two ranges share a byte.
    pub const fn overlaps(&self, other: &MemRange) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// Whether `other` lies entirely inside `self`.
    pub const fn contains_range(&self, other: &MemRange) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// The range widened to page boundaries (saturating at the top of the space).
    pub const fn page_outer(&self) -> MemRange {
        let start = self.start & !(PAGE_SIZE - 1);
        let end = match self.end.checked_add(PAGE_SIZE - 1) {
            Some(e) => e & !(PAGE_SIZE - 1),
            None => !(PAGE_SIZE - 1),
        };
        MemRange { start, end }
    }
}

/// What a region holds, in Unikraft's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum RegionKind {
    /// RAM the allocator may hand out.
    #[default]
    Free,
    /// RAM that must not be touched (`/memreserve/`, `/reserved-memory`).
    Reserved,
    /// The kernel image (text, rodata, data, bss, boot stack, boot page tables).
    Kernel,
    /// An initial ramdisk from `/chosen`.
    Initrd,
    /// The device tree blob.
    DeviceTree,
    /// A device register window.
    Device,
}

/// Access permissions of a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RegionFlags(pub u16);

impl RegionFlags {
    /// Readable.
    pub const READ: Self = Self(1);
    /// Writable.
    pub const WRITE: Self = Self(2);
    /// Executable.
    pub const EXEC: Self = Self(4);
    /// Read and write.
    pub const RW: Self = Self(3);
    /// Read and execute.
    pub const RX: Self = Self(5);

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

/// One memory region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Region {
    /// Where it lies (not necessarily page-aligned except for [`RegionKind::Free`]).
    pub range: MemRange,
    /// What it holds.
    pub kind: RegionKind,
    /// How it may be accessed.
    pub flags: RegionFlags,
}

/// A fixed-capacity list: the boot path has no allocator. Unused slots stay
/// uninitialised, so creating one costs nothing (the boot path may run on a C
/// library whose `memset` is a byte loop).
pub struct FixedList<T: Copy, const N: usize> {
    items: [MaybeUninit<T>; N],
    len: usize,
}

/// The list is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl<T: Copy, const N: usize> Clone for FixedList<T, N> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Copy, const N: usize> Copy for FixedList<T, N> {}

impl<T: Copy + core::fmt::Debug, const N: usize> core::fmt::Debug for FixedList<T, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl<T: Copy, const N: usize> Default for FixedList<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy, const N: usize> FixedList<T, N> {
    /// An empty list.
    pub const fn new() -> Self {
        Self {
            items: [MaybeUninit::uninit(); N],
            len: 0,
        }
    }

    /// Appends an item.
    pub fn push(&mut self, item: T) -> Result<(), Full> {
        let slot = self.items.get_mut(self.len).ok_or(Full)?;
        slot.write(item);
        self.len += 1;
        Ok(())
    }

    /// Number of items.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the list is empty.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The items as a slice.
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: the first `len` slots were written by `push` (or moved within the
        // initialised prefix), and `MaybeUninit<T>` has `T`'s layout.
        unsafe { core::slice::from_raw_parts(self.items.as_ptr().cast::<T>(), self.len) }
    }

    fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as in `as_slice`.
        unsafe { core::slice::from_raw_parts_mut(self.items.as_mut_ptr().cast::<T>(), self.len) }
    }

    /// The items in order.
    pub fn iter(&self) -> impl Iterator<Item = T> + Clone + '_ {
        self.as_slice().iter().copied()
    }

    /// Item `i`, if present.
    pub fn get(&self, i: usize) -> Option<T> {
        self.as_slice().get(i).copied()
    }

    /// Sorts the items by a key (insertion sort: lists are short and this needs no
    /// allocator).
    pub fn sort_by_key<K: Ord>(&mut self, key: impl Fn(&T) -> K) {
        let items = self.as_mut_slice();
        for i in 1..items.len() {
            let mut j = i;
            while j > 0 && key(&items[j - 1]) > key(&items[j]) {
                items.swap(j - 1, j);
                j -= 1;
            }
        }
    }
}

impl<const N: usize> FixedList<MemRange, N> {
    /// Adds `r`, keeping the list sorted and merging ranges that overlap or touch,
    /// so a blob with many small windows (QEMU's 32 virtio-mmio slots) fits.
    pub fn insert_merged(&mut self, r: MemRange) -> Result<(), Full> {
        let items = self.as_mut_slice();
        // First range that ends at or after r.start: everything before stays.
        let first = items.partition_point(|x| x.end < r.start);
        // Ranges from `first` that start at or before r.end merge with r.
        let mut last = first;
        let mut merged = r;
        while last < items.len() && items[last].start <= merged.end {
            merged.start = merged.start.min(items[last].start);
            merged.end = merged.end.max(items[last].end);
            last += 1;
        }
        if last > first {
            // Replace items[first..last] by `merged`, closing the gap.
            items[first] = merged;
            items.copy_within(last.., first + 1);
            self.len -= last - first - 1;
            return Ok(());
        }
        // Insert at `first`: append, then rotate it into place.
        self.push(merged)?;
        self.as_mut_slice()[first..].rotate_right(1);
        Ok(())
    }
}

/// Pushes onto `out` the parts of `ram` not covered by any of `holes`, each widened
/// to page boundaries first, so every piece is page-aligned as Unikraft requires of
/// free regions. `holes` need not be sorted or disjoint.
pub fn carve_free<const N: usize>(
    ram: MemRange,
    holes: impl Iterator<Item = MemRange> + Clone,
    out: &mut FixedList<Region, N>,
) -> Result<(), Full> {
    // Round RAM inward: a partial page at either end cannot be handed out.
    let mut cursor = ram.start.saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
    let end = ram.end & !(PAGE_SIZE - 1);
    while cursor < end {
        // The hole that starts lowest at or after the cursor, or covers it.
        let mut next_hole: Option<MemRange> = None;
        for h in holes.clone().map(|h| h.page_outer()) {
            if h.end <= cursor || h.start >= end {
                continue;
            }
            if next_hole.is_none_or(|n| h.start < n.start) {
                next_hole = Some(h);
            }
        }
        match next_hole {
            Some(h) if h.start <= cursor => {
                // Skip past every hole that covers the cursor.
                cursor = h.end;
                for h2 in holes.clone().map(|h| h.page_outer()) {
                    if h2.start <= cursor && h2.end > cursor {
                        cursor = h2.end;
                    }
                }
            }
            other => {
                let stop = other.map_or(end, |h| h.start.min(end));
                out.push(Region {
                    range: MemRange {
                        start: cursor,
                        end: stop,
                    },
                    kind: RegionKind::Free,
                    flags: RegionFlags::RW,
                })?;
                cursor = stop;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn r(start: u64, end: u64) -> MemRange {
        MemRange { start, end }
    }

    fn free(ram: MemRange, holes: &[MemRange]) -> Vec<(u64, u64)> {
        let mut out = FixedList::<Region, 16>::new();
        carve_free(ram, holes.iter().copied(), &mut out).unwrap();
        out.iter().map(|x| (x.range.start, x.range.end)).collect()
    }

    #[test]
    fn carve_basic() {
        assert_eq!(free(r(0x1000, 0x9000), &[]), [(0x1000, 0x9000)]);
        assert_eq!(
            free(r(0x1000, 0x9000), &[r(0x3000, 0x4000)]),
            [(0x1000, 0x3000), (0x4000, 0x9000)]
        );
        // Unaligned holes widen, unaligned RAM shrinks.
        assert_eq!(
            free(r(0x800, 0x9800), &[r(0x3010, 0x3020)]),
            [(0x1000, 0x3000), (0x4000, 0x9000)]
        );
        // Overlapping, unsorted holes, one covering the start, one past the end.
        assert_eq!(
            free(
                r(0x1000, 0x9000),
                &[r(0x6000, 0xa000), r(0x0, 0x2000), r(0x1800, 0x3000)]
            ),
            [(0x3000, 0x6000)]
        );
        // A hole covering everything.
        assert!(free(r(0x1000, 0x9000), &[r(0, u64::MAX)]).is_empty());
        // RAM at the very top of the address space.
        assert_eq!(
            free(r(u64::MAX - 0x2fff, u64::MAX), &[]),
            [(u64::MAX - 0x2fff, !0xfff)]
        );
    }

    #[test]
    fn list_capacity_and_sort() {
        let mut l = FixedList::<u32, 3>::new();
        l.push(3).unwrap();
        l.push(1).unwrap();
        l.push(2).unwrap();
        assert_eq!(l.push(4), Err(Full));
        l.sort_by_key(|x| *x);
        assert_eq!(l.iter().collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn insert_merged_sorts_and_merges() {
        let mut l = FixedList::<MemRange, 3>::new();
        for x in [r(30, 40), r(0, 10), r(10, 12), r(50, 60), r(35, 55)] {
            l.insert_merged(x).unwrap();
        }
        assert_eq!(l.iter().collect::<Vec<_>>(), [r(0, 12), r(30, 60)]);
        l.insert_merged(r(100, 101)).unwrap();
        assert_eq!(l.insert_merged(r(200, 201)), Err(Full));
    }

    #[test]
    fn ranges() {
        assert_eq!(MemRange::from_base_len(1, 0), None);
        assert_eq!(MemRange::from_base_len(u64::MAX, 2), None);
        assert!(r(0, 10).overlaps(&r(9, 11)));
        assert!(!r(0, 10).overlaps(&r(10, 11)));
        assert_eq!(r(0x1001, 0x1002).page_outer(), r(0x1000, 0x2000));
    }
}
