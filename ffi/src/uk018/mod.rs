//! Unikraft 0.18's platform ABI (the v0.18.0 release, 424eb3d9).
//!
//! What 0.18 changed for a platform, and what this module does about it:
//! - region types renumbered (DEVICETREE 0x10, STACK 0x20, DEVICE 0x40) and no
//!   CMDLINE type: [`memrt`], [`memrt_of`]; `struct ukplat_bootinfo` and the
//!   descriptors keep 0.17's layout, so those are [`crate::uk017`]'s;
//! - `bi->cmdline` points straight at the DTB's `/chosen/bootargs` and argv[0] is
//!   its first word (no `CONFIG_UK_NAME` in front): [`cmdline_of`];
//! - `_ukplat_entry` runs `uk_boot_early_init`, whose table parses the command line
//!   (priority 0) and coalesces the regions (priority 8): the hand-off fills and
//!   jumps, nothing more;
//! - the console is a `struct uk_console` registered with `uk_console_register`
//!   ([`UkConsole`]); callers turn "\n" into "\r\n" themselves, so the driver sends
//!   bytes as they come ([`CONSOLE_CRLF`] is false). It is registered before
//!   `_ukplat_entry`, so that `ukplat_bootinfo_print` and early-init failures reach it.

pub use crate::uk017::{BOOTINFO_MAGIC, Bootinfo, MemregionDesc, MemregionList};
use core::ffi::{c_char, c_int, c_void};
use core::mem::{offset_of, size_of};
use plat_kvm_arm::memregion::RegionKind;

#[cfg(all(target_arch = "aarch64", target_os = "none", feature = "uk018"))]
mod handoff;
#[cfg(all(target_arch = "aarch64", target_os = "none", feature = "uk018"))]
pub(crate) use handoff::hand_off;

/// 0.18's callers (`uk_console_out` users) send "\r\n" themselves.
pub const CONSOLE_CRLF: bool = false;

/// `UKPLAT_MEMRT_*` in 0.18.
pub mod memrt {
    /// Free memory.
    pub const FREE: u16 = 0x01;
    /// Reserved memory.
    pub const RESERVED: u16 = 0x02;
    /// The kernel image.
    pub const KERNEL: u16 = 0x04;
    /// An initrd.
    pub const INITRD: u16 = 0x08;
    /// The device tree.
    pub const DEVICETREE: u16 = 0x10;
    /// A stack.
    pub const STACK: u16 = 0x20;
    /// A device window.
    pub const DEVICE: u16 = 0x40;
}

/// The 0.18 type of a core region kind.
pub fn memrt_of(kind: RegionKind) -> u16 {
    match kind {
        RegionKind::Free => memrt::FREE,
        RegionKind::Reserved => memrt::RESERVED,
        RegionKind::Kernel => memrt::KERNEL,
        RegionKind::Initrd => memrt::INITRD,
        RegionKind::DeviceTree => memrt::DEVICETREE,
        RegionKind::Device => memrt::DEVICE,
    }
}

/// The command line is longer than the tree's `CONFIG_LIBUKBOOT_CMDLINE_MAX_LEN`
/// allows (its early init would refuse it with `-E2BIG`, or, at exactly the
/// maximum, write its NUL one byte past its buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CmdlineTooLong {
    /// Bytes of the command line.
    pub len: usize,
    /// The longest that fits.
    pub max: usize,
}

/// `bi->cmdline` and `bi->cmdline_len` for 0.18: the DTB's `/chosen/bootargs` in
/// place (the core's reader guarantees a NUL right after it) and its length
/// without the NUL; `(0, 0)` without bootargs, so that early init falls back to
/// `CONFIG_UK_NAME` as on the tree's own platform.
///
/// # Errors
///
/// [`CmdlineTooLong`] if it does not fit the early-init buffer of `buf_len` bytes.
pub fn cmdline_of(bootargs: Option<&str>, buf_len: usize) -> Result<(u64, u64), CmdlineTooLong> {
    match bootargs {
        None => Ok((0, 0)),
        Some(a) if a.len() < buf_len => Ok((a.as_ptr() as u64, a.len() as u64)),
        Some(a) => Err(CmdlineTooLong {
            len: a.len(),
            max: buf_len.saturating_sub(1),
        }),
    }
}

/// `struct uk_console_ops` (`lib/ukconsole/include/uk/console/driver.h`).
#[repr(C)]
pub struct UkConsoleOps {
    /// `__ssz (*out)(struct uk_console *, const char *, __sz)`.
    pub out: Option<unsafe extern "C" fn(*mut UkConsole, *const c_char, usize) -> isize>,
    /// `__ssz (*in)(struct uk_console *, char *, __sz)`.
    pub r#in: Option<unsafe extern "C" fn(*mut UkConsole, *mut c_char, usize) -> isize>,
}

/// `struct uk_console`: written by `uk_console_register` (id, flags, list), so it
/// must live for ever in writable memory.
#[repr(C)]
pub struct UkConsole {
    /// Set by `uk_console_register`.
    pub id: u16,
    /// The operations.
    pub ops: *const UkConsoleOps,
    /// A name for logs (optional).
    pub name: *const c_char,
    /// `UK_CONSOLE_FLAG_*`.
    pub flags: c_int,
    /// `struct uk_list_head { next, prev }`, the registry's.
    pub list: [*mut c_void; 2],
}

/// `UK_CONSOLE_FLAG_STDOUT`.
pub const UK_CONSOLE_FLAG_STDOUT: c_int = 1 << 0;
/// `UK_CONSOLE_FLAG_STDIN`.
pub const UK_CONSOLE_FLAG_STDIN: c_int = 1 << 1;

const _: () = {
    assert!(size_of::<UkConsoleOps>() == 16);
    assert!(size_of::<UkConsole>() == 48);
    assert!(offset_of!(UkConsole, ops) == 8);
    assert!(offset_of!(UkConsole, name) == 16);
    assert!(offset_of!(UkConsole, flags) == 24);
    assert!(offset_of!(UkConsole, list) == 32);
};

/// The 0.18 tree's region types and `struct uk_console` are these, field by field
/// (the boot-info layouts, shared with 0.17, are checked in [`crate::uk017`]).
#[cfg(all(feature = "uk-bindgen", feature = "uk018"))]
const _: () = {
    use crate::uk017::uk_real as r;
    assert!(r::UKPLAT_MEMRT_FREE as u16 == memrt::FREE);
    assert!(r::UKPLAT_MEMRT_RESERVED as u16 == memrt::RESERVED);
    assert!(r::UKPLAT_MEMRT_KERNEL as u16 == memrt::KERNEL);
    assert!(r::UKPLAT_MEMRT_INITRD as u16 == memrt::INITRD);
    assert!(r::UKPLAT_MEMRT_DEVICETREE as u16 == memrt::DEVICETREE);
    assert!(r::UKPLAT_MEMRT_STACK as u16 == memrt::STACK);
    assert!(r::UKPLAT_MEMRT_DEVICE as u16 == memrt::DEVICE);
    type C = r::uk_console;
    assert!(size_of::<C>() == size_of::<UkConsole>());
    assert!(offset_of!(C, id) == offset_of!(UkConsole, id));
    assert!(offset_of!(C, ops) == offset_of!(UkConsole, ops));
    assert!(offset_of!(C, name) == offset_of!(UkConsole, name));
    assert!(offset_of!(C, flags) == offset_of!(UkConsole, flags));
    assert!(offset_of!(C, _list) == offset_of!(UkConsole, list));
    assert!(size_of::<r::uk_console_ops>() == size_of::<UkConsoleOps>());
    assert!(offset_of!(r::uk_console_ops, out) == offset_of!(UkConsoleOps, out));
    assert!(offset_of!(r::uk_console_ops, in_) == offset_of!(UkConsoleOps, r#in));
    // UK_CONSOLE_FLAG_* are UK_BIT() macros bindgen cannot evaluate:
    // uk-glue/uk018/layout_check.c checks them.
};

#[cfg(test)]
mod tests {
    use super::*;
    use plat_kvm_arm::memregion::{MemRange, Region, RegionFlags};

    #[test]
    fn types_are_renumbered() {
        assert_eq!(memrt_of(RegionKind::DeviceTree), 0x10);
        assert_eq!(memrt_of(RegionKind::Device), 0x40);
        assert_eq!(
            memrt_of(RegionKind::Free),
            crate::uk017::memrt_of(RegionKind::Free)
        );
        let r = Region {
            range: MemRange {
                start: 0x4000_0000,
                end: 0x4000_1000,
            },
            kind: RegionKind::Device,
            flags: RegionFlags::RW,
        };
        assert_eq!(crate::uk017::desc_typed(&r, memrt_of(r.kind)).r#type, 0x40);
    }

    #[test]
    fn cmdline_points_into_the_dtb() {
        let dtb = b"console=ttyS0 a=1\0rest";
        let s = core::str::from_utf8(&dtb[..17]).unwrap();
        assert_eq!(cmdline_of(Some(s), 4096), Ok((dtb.as_ptr() as u64, 17)));
        assert_eq!(cmdline_of(None, 4096), Ok((0, 0)));
        // 4095 bytes fit a 4096-byte buffer with its NUL; 4096 do not.
        let long = "x".repeat(4096);
        assert_eq!(cmdline_of(Some(&long[..4095]), 4096).map(|c| c.1), Ok(4095));
        assert_eq!(
            cmdline_of(Some(&long), 4096),
            Err(CmdlineTooLong {
                len: 4096,
                max: 4095
            })
        );
        // A 5,000-byte command line with a larger buffer, as on the C platform.
        let big = "y".repeat(5000);
        assert_eq!(cmdline_of(Some(&big), 8192).map(|c| c.1), Ok(5000));
    }
}
