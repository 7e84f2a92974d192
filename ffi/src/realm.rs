//! Arm CCA realm support: the probe the entry code runs before `.bss` is touched,
//! the RIPAS setup of RAM, and the realm C ABI (`ukplat_realm_*`).
//!
//! Built only with the `realm` feature. Without it the probe answers "not a realm"
//! at once and issues no SMC.

use core::cell::UnsafeCell;

#[cfg(feature = "realm")]
const EARLY_STACK_SIZE: usize = 8192;
#[cfg(not(feature = "realm"))]
const EARLY_STACK_SIZE: usize = 16;

#[repr(C, align(16))]
struct EarlyStack(UnsafeCell<[u8; EARLY_STACK_SIZE]>);
// SAFETY: used as a stack by the boot CPU only, before anything else runs.
unsafe impl Sync for EarlyStack {}

/// The stack `plat_realm_probe` runs on: in `.data`, which the host loaded with the
/// image, so it is RIPAS RAM in a realm before any RSI call (unlike `.bss`).
#[unsafe(no_mangle)]
#[unsafe(link_section = ".data.plat_early_stack")]
static plat_early_stack: EarlyStack = EarlyStack(UnsafeCell::new([0; EARLY_STACK_SIZE]));
/// Its size, for the entry code.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".data.plat_state")]
static plat_early_stack_size: u64 = EARLY_STACK_SIZE as u64;

/// First Rust code (MMU on, the early map), on the `.data` stack, before `.bss` is zeroed: decides
/// whether this is a realm and, if so, makes the image's `.bss`, stacks and
/// page-table pool RIPAS RAM. Returns the shared IPA bit, or 0 outside a realm.
///
/// # Safety
///
/// Called once, from `_libkvmplat_entry`, with x0 as the boot protocol gave it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn plat_realm_probe(dtb: u64) -> u64 {
    // Without the `realm` feature this must stay call- and stack-free: the early
    // stack is then only 16 bytes.
    #[cfg(feature = "realm")]
    {
        // SAFETY: forwarded from our caller.
        unsafe { imp::probe(dtb) }
    }
    #[cfg(not(feature = "realm"))]
    {
        let _ = dtb;
        0
    }
}

#[cfg(feature = "realm")]
pub(crate) use imp::setup_memory;

#[cfg(feature = "realm")]
mod imp {
    use super::*;
    use crate::fatal::fatal;
    use crate::state;
    use crate::state::Realm;
    use core::ffi::{c_int, c_void};
    use plat_kvm_arm::bootinfo::{self, BootInfo};
    use plat_kvm_arm::psci::Conduit;
    use plat_kvm_arm::realm;
    use plat_kvm_arm::rsi::{self, ChangeDestroyed, RealmConfig, RealmInfo, Revision, RsiError};

    /// Whether this image refuses to run outside a realm (Kconfig).
    const REQUIRE_REALM: bool = cfg!(feature = "realm-required");

    struct ConfigGranule(UnsafeCell<RealmConfig>);
    // SAFETY: written by the RMM once, during boot, on the boot CPU.
    unsafe impl Sync for ConfigGranule {}
    /// RSI_REALM_CONFIG's granule: in `.data`, RIPAS RAM from the start.
    #[unsafe(link_section = ".data.plat_realm_config")]
    static CONFIG: ConfigGranule = ConfigGranule(UnsafeCell::new(RealmConfig::zeroed()));

    unsafe extern "C" {
        static __bss_start: u8;
        static _end: u8;
    }

    fn page_range(start: u64, end: u64) -> core::ops::Range<u64> {
        (start & !0xfff)..((end + 0xfff) & !0xfff)
    }

    /// See [`plat_realm_probe`].
    pub(super) unsafe fn probe(dtb: u64) -> u64 {
        let smc = Conduit::Smc;
        // Only issue an SMC where the DT names SMC as the firmware conduit.
        let psci = crate::dtb::blob(dtb).ok().and_then(bootinfo::psci_conduit);
        if psci != Some(Conduit::Smc) {
            if REQUIRE_REALM {
                fatal(format_args!(
                    "built for Arm CCA realms only, and /psci is not smc"
                ));
            }
            return 0;
        }
        state::update(|s| s.conduit = Some(smc));
        let revision = match rsi::negotiate(&smc) {
            Ok(n) => n.revision,
            Err(RsiError::NotARealm) => {
                if REQUIRE_REALM {
                    fatal(format_args!(
                        "built for Arm CCA realms only, and RSI is absent"
                    ));
                }
                return 0;
            }
            Err(e) => {
                // The console answers only at its alias, which REALM_CONFIG gives:
                // ask for it anyway (its ID and the two fields read are the same
                // in every revision), so that the refusal is said, not silent.
                if let Ok(info) = config(&smc, Revision::V1_0) {
                    learn(info, Revision::V1_0);
                }
                fatal(format_args!(
                    "RSI version: {e}; this image speaks RSI 1.0 and 1.1"
                ))
            }
        };
        let info = match config(&smc, revision) {
            Ok(i) => i,
            Err(e) => fatal(format_args!("RSI_REALM_CONFIG: {e}")),
        };
        learn(info, revision);
        // SAFETY: linker symbols; only their addresses are used.
        let bss =
            unsafe { page_range(&__bss_start as *const u8 as u64, &_end as *const u8 as u64) };
        match rsi::set_ripas_ram(&smc, bss, ChangeDestroyed::NoChangeDestroyed) {
            Ok(calls) => state::update(|s| s.realm.ripas_calls = calls),
            Err(e) => fatal(format_args!("cannot make .bss and the boot stack RAM: {e}")),
        }
        info.shared_bit
    }

    /// RSI_REALM_CONFIG into the `.data` granule, decoded for `revision`.
    fn config(smc: &Conduit, revision: Revision) -> Result<RealmInfo, RsiError> {
        let cfg = CONFIG.0.get();
        rsi::realm_config(smc, cfg as u64)?;
        // SAFETY: the RMM wrote the granule; the SMC asm is not `nomem`.
        unsafe { &*cfg }.info_for(revision)
    }

    /// Records the realm in the boot state and maps the build's UART at its alias,
    /// so that a fatal error from here on is printed.
    fn learn(info: RealmInfo, revision: Revision) {
        state::update(|s| {
            s.realm = Realm {
                shared_bit: info.shared_bit,
                ipa_width: info.ipa_width,
                ripas_calls: 0,
                rsi_minor: revision.minor(),
                num_aux_planes: info.num_aux_planes,
            }
        });
        if let Some(u) = crate::console::fallback_console() {
            crate::arch::early_map_device(u.base);
        }
    }

    /// Realm checks of the boot information and RIPAS RAM over all of RAM, before
    /// any of it is handed out.
    #[inline(never)]
    pub(crate) fn setup_memory(bi: &BootInfo<'_>) {
        let r = state::get().realm;
        if let Err(e) = realm::check(bi, r.shared_bit) {
            fatal(format_args!("realm: {e}"));
        }
        let mut calls = r.ripas_calls;
        for range in realm::ram_ranges(bi) {
            let (s, e) = (range.start, range.end);
            match rsi::set_ripas_ram(&Conduit::Smc, range, ChangeDestroyed::NoChangeDestroyed) {
                Ok(n) => calls += n,
                Err(err) => fatal(format_args!(
                    "realm: cannot make RAM [{s:#x}, {e:#x}) RIPAS RAM: {err}"
                )),
            }
        }
        state::update(|s| s.realm.ripas_calls = calls);
    }

    // ---- C ABI ----------------------------------------------------------------
    // Buffers are passed by address; the platform maps memory 1:1, so a kernel
    // virtual address is its IPA (as in every Unikraft 0.17 configuration).

    const EINVAL: c_int = -22;
    const ENOTSUP: c_int = -95;
    const EIO: c_int = -5;
    const ENOSPC: c_int = -28;
    const EPERM: c_int = -1;

    fn errno(e: RsiError) -> c_int {
        match e {
            RsiError::NotARealm => ENOTSUP,
            RsiError::InvalidArgument(_) => EINVAL,
            RsiError::BufferTooSmall { .. } => ENOSPC,
            RsiError::Rejected { .. } => EPERM,
            _ => EIO,
        }
    }

    fn in_realm() -> bool {
        state::shared_bit() != 0
    }

    /// `int ukplat_realm_is_realm(void)`: 1 in an Arm CCA realm, 0 otherwise.
    #[unsafe(no_mangle)]
    pub extern "C" fn ukplat_realm_is_realm() -> c_int {
        c_int::from(in_realm())
    }

    /// `__u64 ukplat_realm_shared_bit(void)`: the unprotected IPA bit (0 outside a realm).
    #[unsafe(no_mangle)]
    pub extern "C" fn ukplat_realm_shared_bit() -> u64 {
        state::shared_bit()
    }

    /// `int ukplat_realm_ipa_width(void)`: the realm's IPA width in bits (0 outside one).
    #[unsafe(no_mangle)]
    pub extern "C" fn ukplat_realm_ipa_width() -> c_int {
        state::get().realm.ipa_width as c_int
    }

    /// `unsigned int ukplat_realm_rsi_revision(void)`: the RSI revision negotiated,
    /// `major << 16 | minor` (0x10000 for 1.0, 0x10001 for 1.1; 0 outside a realm).
    #[unsafe(no_mangle)]
    pub extern "C" fn ukplat_realm_rsi_revision() -> u32 {
        if in_realm() {
            1 << 16 | u32::from(state::get().realm.rsi_minor)
        } else {
            0
        }
    }

    /// `int ukplat_realm_num_aux_planes(void)`: the realm's auxiliary planes (RSI
    /// 1.1; 0 under 1.0 or outside a realm).
    #[unsafe(no_mangle)]
    pub extern "C" fn ukplat_realm_num_aux_planes() -> c_int {
        state::get().realm.num_aux_planes as c_int
    }

    /// `int ukplat_realm_personalization_value(__u8 out[64])`: the Realm
    /// Personalization Value the host chose at creation (part of the attested
    /// identity), as RSI_REALM_CONFIG reported it at boot.
    ///
    /// # Safety
    ///
    /// `out` must be valid for 64 bytes of writes.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn ukplat_realm_personalization_value(out: *mut u8) -> c_int {
        if !in_realm() {
            return ENOTSUP;
        }
        if out.is_null() {
            return EINVAL;
        }
        // SAFETY: the granule was written once at boot and is only read since;
        // the caller vouches for 64 writable bytes.
        unsafe { core::ptr::copy_nonoverlapping((*CONFIG.0.get()).rpv.as_ptr(), out, 64) };
        0
    }

    /// `int ukplat_realm_measurement_read(unsigned int index, __u8 out[64])`: RIM (0)
    /// or REM 1-4.
    ///
    /// # Safety
    ///
    /// `out` must be valid for 64 bytes of writes.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn ukplat_realm_measurement_read(index: u32, out: *mut u8) -> c_int {
        if !in_realm() {
            return ENOTSUP;
        }
        if out.is_null() {
            return EINVAL;
        }
        match rsi::measurement_read(&Conduit::Smc, u64::from(index)) {
            Ok(m) => {
                // SAFETY: the caller vouches for 64 writable bytes.
                unsafe { core::ptr::copy_nonoverlapping(m.as_ptr(), out, 64) };
                0
            }
            Err(e) => errno(e),
        }
    }

    /// `int ukplat_realm_measurement_extend(unsigned int index, const void *data,
    /// __sz len)`: extends REM `index` (1-4) with up to 64 bytes.
    ///
    /// # Safety
    ///
    /// `data` must be valid for `len` bytes of reads.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn ukplat_realm_measurement_extend(
        index: u32,
        data: *const c_void,
        len: usize,
    ) -> c_int {
        if !in_realm() {
            return ENOTSUP;
        }
        if data.is_null() || len > 64 {
            return EINVAL;
        }
        // SAFETY: the caller vouches for `len` readable bytes.
        let d = unsafe { core::slice::from_raw_parts(data.cast::<u8>(), len) };
        match rsi::measurement_extend(&Conduit::Smc, u64::from(index), d) {
            Ok(()) => 0,
            Err(e) => errno(e),
        }
    }

    /// `int ukplat_realm_attestation_token(const void *challenge, __sz challenge_len,
    /// void *buf, __sz buf_len, __sz *token_len)`: an attestation token for a 32-64
    /// byte challenge. With `buf` NULL, stores in `*token_len` the size to provide
    /// (the RMM's upper bound) and returns 0; with a buffer too small, returns
    /// `-ENOSPC` and the size needed in `*token_len`.
    ///
    /// # Safety
    ///
    /// `challenge` readable for `challenge_len` bytes, `buf` (if not NULL) writable
    /// for `buf_len` bytes and identity-mapped, `token_len` writable.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn ukplat_realm_attestation_token(
        challenge: *const c_void,
        challenge_len: usize,
        buf: *mut c_void,
        buf_len: usize,
        token_len: *mut usize,
    ) -> c_int {
        if !in_realm() {
            return ENOTSUP;
        }
        if challenge.is_null() || token_len.is_null() {
            return EINVAL;
        }
        // SAFETY: the caller vouches for `challenge_len` readable bytes.
        let ch = unsafe { core::slice::from_raw_parts(challenge.cast::<u8>(), challenge_len) };
        let smc = Conduit::Smc;
        let r = if buf.is_null() {
            rsi::attestation_token_size(&smc, ch)
        } else {
            // SAFETY: the caller vouches for `buf_len` writable, identity-mapped bytes.
            let b = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), buf_len) };
            rsi::attestation_token(&smc, ch, b, buf as u64)
        };
        match r {
            Ok(n) => {
                // SAFETY: the caller vouches for `token_len`.
                unsafe { *token_len = n };
                0
            }
            Err(RsiError::BufferTooSmall { needed }) => {
                // SAFETY: as above.
                unsafe { *token_len = needed };
                ENOSPC
            }
            Err(e) => errno(e),
        }
    }

    /// `int ukplat_realm_host_call(struct ukplat_realm_host_call *hc)`: RSI_HOST_CALL
    /// with a 256-byte-aligned `{ __u16 imm; __u8 pad[6]; __u64 gprs[31]; }`.
    ///
    /// # Safety
    ///
    /// `hc` must point at such a structure in identity-mapped realm memory.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn ukplat_realm_host_call(hc: *mut c_void) -> c_int {
        if !in_realm() {
            return ENOTSUP;
        }
        if hc.is_null() || !(hc as u64).is_multiple_of(256) {
            return EINVAL;
        }
        match rsi::host_call(&Conduit::Smc, hc as u64) {
            Ok(()) => 0,
            Err(e) => errno(e),
        }
    }

    fn set(addr: u64, len: usize, ram: bool) -> c_int {
        if !in_realm() {
            return ENOTSUP;
        }
        let Some(end) = addr.checked_add(len as u64) else {
            return EINVAL;
        };
        if len == 0 || !addr.is_multiple_of(4096) || !end.is_multiple_of(4096) {
            return EINVAL;
        }
        let f = ChangeDestroyed::ChangeDestroyed;
        let r = if ram {
            rsi::set_ripas_ram(&Conduit::Smc, addr..end, f)
        } else {
            rsi::set_ripas_empty(&Conduit::Smc, addr..end, f)
        };
        match r {
            Ok(_) => 0,
            Err(e) => errno(e),
        }
    }

    /// `int ukplat_realm_mem_share(__paddr_t addr, __sz len)`: makes a page-aligned
    /// range RIPAS EMPTY so the host can see it through the alias (`addr |
    /// ukplat_realm_shared_bit()`), e.g. for virtio bounce buffers. The caller
    /// unmaps the protected mapping first and maps the alias afterwards.
    #[unsafe(no_mangle)]
    pub extern "C" fn ukplat_realm_mem_share(addr: u64, len: usize) -> c_int {
        set(addr, len, false)
    }

    /// `int ukplat_realm_mem_unshare(__paddr_t addr, __sz len)`: makes a shared range
    /// protected RAM again (its contents are lost: the RMM hands it back zeroed).
    #[unsafe(no_mangle)]
    pub extern "C" fn ukplat_realm_mem_unshare(addr: u64, len: usize) -> c_int {
        set(addr, len, true)
    }
}
