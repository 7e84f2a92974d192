//! Device-register accesses that a hypervisor can emulate.
//!
//! Under KVM (and, mandatorily, under the Arm CCA RMM) a trapped device access is
//! handed to the VMM through the ESR_EL2 instruction syndrome, which the hardware
//! provides (ISV = 1) only for a single-register load or store without writeback.
//! `read_volatile`/`write_volatile` give no such guarantee: LLVM may fold the address
//! update into a pre/post-indexed form (rust-lang/rust#131894), and then the access
//! cannot be emulated at all. So on aarch64 every access here is one explicit
//! instruction in inline assembly:
//!
//! | width  | load                 | store                |
//! |--------|----------------------|----------------------|
//! | 8-bit  | `ldrb wN, [xM]`      | `strb wN, [xM]`      |
//! | 32-bit | `ldr wN, [xM]`       | `str wN, [xM]`       |
//!
//! always with plain base-register addressing. The assembly blocks carry neither
//! `pure` nor `nomem`: a device read has side effects (it pops a FIFO, clears status)
//! and must be neither merged, reordered against other memory accesses, nor dropped.
//!
//! Checked on `aarch64-unknown-none-softfloat` (release profile) with
//! `aarch64-linux-gnu-objdump -d`: each accessor, inlined into the UART drivers or
//! kept out of line, is exactly one `ldrb`/`strb`/`ldr`/`str` with a `[xN]` operand and
//! no `!`/post-index writeback. The contrast is visible in a loop copying a buffer to a
//! register: the normal-memory source load became `ldrb w8, [x1], #1` (post-index),
//! while the device store next to it stayed `strb w8, [x0]`.
//!
//! On other architectures the accessors fall back to volatile accesses. That exists
//! only so the crate builds and its host tests run; it is never used on a guest.

/// Loads one byte from a device register with a single `ldrb`.
///
/// # Safety
///
/// `addr` must be the address of a readable device register (or, on the host, of
/// readable memory) that is mapped for the whole call, and reading it must not break
/// any invariant that other code relies on (a read can have side effects).
#[inline(always)]
pub unsafe fn read8(addr: usize) -> u8 {
    #[cfg(target_arch = "aarch64")]
    {
        let value: u32;
        // SAFETY: the caller guarantees `addr` is a mapped, readable register. The asm is a
        // single base-register `ldrb` with no writeback, touches no stack, and sets no flags.
        unsafe {
            core::arch::asm!(
                "ldrb {v:w}, [{a}]",
                a = in(reg) addr,
                v = out(reg) value,
                options(nostack, preserves_flags),
            );
        }
        value as u8
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        // SAFETY: host-only fallback; the caller guarantees `addr` is readable memory.
        unsafe { core::ptr::read_volatile(core::ptr::with_exposed_provenance::<u8>(addr)) }
    }
}

/// Stores one byte to a device register with a single `strb`.
///
/// # Safety
///
/// `addr` must be the address of a writable device register (or, on the host, of
/// writable memory not otherwise borrowed) that is mapped for the whole call.
#[inline(always)]
pub unsafe fn write8(addr: usize, value: u8) {
    #[cfg(target_arch = "aarch64")]
    {
        // SAFETY: the caller guarantees `addr` is a mapped, writable register. The asm is a
        // single base-register `strb` with no writeback, touches no stack, and sets no flags.
        unsafe {
            core::arch::asm!(
                "strb {v:w}, [{a}]",
                a = in(reg) addr,
                v = in(reg) u32::from(value),
                options(nostack, preserves_flags),
            );
        }
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        // SAFETY: host-only fallback; the caller guarantees `addr` is writable memory.
        unsafe {
            core::ptr::write_volatile(core::ptr::with_exposed_provenance_mut::<u8>(addr), value)
        }
    }
}

/// Loads a 32-bit device register with a single `ldr w`.
///
/// # Safety
///
/// As for [`read8`]; in addition `addr` must be 4-byte aligned (device memory faults
/// on unaligned accesses).
#[inline(always)]
pub unsafe fn read32(addr: usize) -> u32 {
    #[cfg(target_arch = "aarch64")]
    {
        let value: u32;
        // SAFETY: the caller guarantees `addr` is a mapped, readable, aligned register. The
        // asm is a single base-register `ldr` with no writeback, touches no stack, sets no flags.
        unsafe {
            core::arch::asm!(
                "ldr {v:w}, [{a}]",
                a = in(reg) addr,
                v = out(reg) value,
                options(nostack, preserves_flags),
            );
        }
        value
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        // SAFETY: host-only fallback; the caller guarantees `addr` is aligned readable memory.
        unsafe { core::ptr::read_volatile(core::ptr::with_exposed_provenance::<u32>(addr)) }
    }
}

/// Stores a 32-bit device register with a single `str w`.
///
/// # Safety
///
/// As for [`write8`]; in addition `addr` must be 4-byte aligned.
#[inline(always)]
pub unsafe fn write32(addr: usize, value: u32) {
    #[cfg(target_arch = "aarch64")]
    {
        // SAFETY: the caller guarantees `addr` is a mapped, writable, aligned register. The
        // asm is a single base-register `str` with no writeback, touches no stack, sets no flags.
        unsafe {
            core::arch::asm!(
                "str {v:w}, [{a}]",
                a = in(reg) addr,
                v = in(reg) value,
                options(nostack, preserves_flags),
            );
        }
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        // SAFETY: host-only fallback; the caller guarantees `addr` is aligned writable memory.
        unsafe {
            core::ptr::write_volatile(core::ptr::with_exposed_provenance_mut::<u32>(addr), value)
        }
    }
}

/// A block of device registers, with bounds- and alignment-checked accessors.
///
/// The check is one compare per access, negligible next to a trap to the VMM, and it
/// turns a wrong offset (for example from a bad `reg-shift`) into a panic rather
/// than a stray access to another device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioRegion {
    base: usize,
    size: usize,
}

impl MmioRegion {
    /// Wraps the register block `[base, base + size)`.
    ///
    /// # Safety
    ///
    /// For as long as the region (or any copy of it) is used, the whole range must be
    /// mapped as device memory (on the host: valid memory with exposed provenance) and
    /// belong to one device whose registers may be accessed through it; `base + size`
    /// must not overflow.
    pub const unsafe fn new(base: usize, size: usize) -> Self {
        Self { base, size }
    }

    /// Address of the first register.
    pub const fn base(&self) -> usize {
        self.base
    }

    /// Length of the block in bytes.
    pub const fn size(&self) -> usize {
        self.size
    }

    /// Address of `width` bytes at `offset`, panicking if they fall outside the block
    /// or are misaligned.
    #[inline(always)]
    fn addr(&self, offset: usize, width: usize) -> usize {
        assert!(
            offset < self.size && self.size - offset >= width,
            "MMIO offset out of range"
        );
        let addr = self.base + offset;
        assert!(addr.is_multiple_of(width), "misaligned MMIO access");
        addr
    }

    /// Reads the byte register at `offset` (one `ldrb`).
    ///
    /// # Panics
    ///
    /// If `offset` lies outside the block.
    #[inline]
    pub fn read8(&self, offset: usize) -> u8 {
        let addr = self.addr(offset, 1);
        // SAFETY: `addr` is inside the block that `new`'s caller vouched for.
        unsafe { read8(addr) }
    }

    /// Writes the byte register at `offset` (one `strb`).
    ///
    /// # Panics
    ///
    /// If `offset` lies outside the block.
    #[inline]
    pub fn write8(&self, offset: usize, value: u8) {
        let addr = self.addr(offset, 1);
        // SAFETY: `addr` is inside the block that `new`'s caller vouched for.
        unsafe { write8(addr, value) }
    }

    /// Reads the 32-bit register at `offset` (one `ldr w`).
    ///
    /// # Panics
    ///
    /// If the 4 bytes at `offset` lie outside the block or are not 4-byte aligned.
    #[inline]
    pub fn read32(&self, offset: usize) -> u32 {
        let addr = self.addr(offset, 4);
        // SAFETY: `addr` is inside the block that `new`'s caller vouched for, and aligned.
        unsafe { read32(addr) }
    }

    /// Writes the 32-bit register at `offset` (one `str w`).
    ///
    /// # Panics
    ///
    /// If the 4 bytes at `offset` lie outside the block or are not 4-byte aligned.
    #[inline]
    pub fn write32(&self, offset: usize, value: u32) {
        let addr = self.addr(offset, 4);
        // SAFETY: `addr` is inside the block that `new`'s caller vouched for, and aligned.
        unsafe { write32(addr, value) }
    }
}

/// Byte-offset access to a block of registers.
///
/// Drivers whose register layout varies (the 16550's `reg-shift`/`reg-io-width`)
/// compute offsets and go through this trait, so the same layout code runs on
/// [`MmioRegion`] on the guest and on a device model in host tests.
pub trait RegisterBus {
    /// Length of the block in bytes.
    fn size(&self) -> usize;
    /// Reads the byte register at `offset`.
    fn read8(&self, offset: usize) -> u8;
    /// Writes the byte register at `offset`.
    fn write8(&self, offset: usize, value: u8);
    /// Reads the 32-bit register at `offset`.
    fn read32(&self, offset: usize) -> u32;
    /// Writes the 32-bit register at `offset`.
    fn write32(&self, offset: usize, value: u32);
}

impl<T: RegisterBus + ?Sized> RegisterBus for &T {
    fn size(&self) -> usize {
        (**self).size()
    }
    fn read8(&self, offset: usize) -> u8 {
        (**self).read8(offset)
    }
    fn write8(&self, offset: usize, value: u8) {
        (**self).write8(offset, value)
    }
    fn read32(&self, offset: usize) -> u32 {
        (**self).read32(offset)
    }
    fn write32(&self, offset: usize, value: u32) {
        (**self).write32(offset, value)
    }
}

impl RegisterBus for MmioRegion {
    #[inline]
    fn size(&self) -> usize {
        MmioRegion::size(self)
    }
    #[inline]
    fn read8(&self, offset: usize) -> u8 {
        MmioRegion::read8(self, offset)
    }
    #[inline]
    fn write8(&self, offset: usize, value: u8) {
        MmioRegion::write8(self, offset, value)
    }
    #[inline]
    fn read32(&self, offset: usize) -> u32 {
        MmioRegion::read32(self, offset)
    }
    #[inline]
    fn write32(&self, offset: usize, value: u32) {
        MmioRegion::write32(self, offset, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C, align(4))]
    struct Block([u8; 16]);

    fn region(block: &mut Block) -> MmioRegion {
        let base = block.0.as_mut_ptr().expose_provenance();
        // SAFETY: the block outlives the region in every test and is only accessed through it.
        unsafe { MmioRegion::new(base, block.0.len()) }
    }

    #[test]
    fn byte_and_word_accesses_hit_the_right_offsets() {
        let mut block = Block([0; 16]);
        let r = region(&mut block);
        r.write8(3, 0xa5);
        r.write32(8, 0x1122_3344);
        assert_eq!(r.read8(3), 0xa5);
        assert_eq!(r.read32(8), 0x1122_3344);
        assert_eq!(r.read8(8), 0x44, "host is little-endian like the guest");
        assert_eq!(block.0[3], 0xa5);
        assert_eq!(block.0[8..12], 0x1122_3344u32.to_le_bytes());
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn access_past_the_end_panics() {
        let mut block = Block([0; 16]);
        region(&mut block).read32(13);
    }

    #[test]
    #[should_panic(expected = "misaligned")]
    fn misaligned_word_panics() {
        let mut block = Block([0; 16]);
        region(&mut block).write32(2, 0);
    }
}
