//! The command line Unikraft 0.17 expects: "<UK_NAME> <bootargs>" (what its
//! `ukplat_bootinfo_fdt_post_setup` builds), or none, so that `setup.c` falls back
//! to `CONFIG_UK_NAME` alone.

use core::cell::UnsafeCell;

/// Longest command line kept (kvmtool allows 2048 bytes of `-p`).
const MAX: usize = 4096;
/// Set by the build from `CONFIG_UK_NAME`.
const UK_NAME: &str = match option_env!("PLAT_UK_NAME") {
    Some(n) => n,
    None => "unikraft",
};

struct Buf(UnsafeCell<[u8; MAX]>);
// SAFETY: written once by the boot CPU before C runs; C only reads it afterwards.
unsafe impl Sync for Buf {}
static BUF: Buf = Buf(UnsafeCell::new([0; MAX]));

/// Builds the command line; an empty slice when the DT has no `bootargs`.
pub(crate) fn compose(bootargs: Option<&str>) -> &'static [u8] {
    // SAFETY: see `Buf`'s `Sync`; called once during boot.
    let buf = unsafe { &mut *BUF.0.get() };
    match super::compose_cmdline(UK_NAME, bootargs, buf) {
        Ok(c) => c,
        Err(_) => crate::fatal::fatal(format_args!("command line longer than {} bytes", MAX - 1)),
    }
}
