//! PSCI (Arm DEN0022) over a conduit picked at run time from the device tree.
//!
//! Calls go through [`SmcccConduit`], an object-safe, `&self` variant of the `smccc`
//! crate's `Call` trait: the conduit is data (the DT `/psci` `method`), not a type,
//! and host tests substitute a recording mock. The RSI (Arm CCA) wrappers reuse the
//! same trait with [`Conduit::Smc`].

/// How PSCI and other SMCCC calls reach the firmware or hypervisor (`/psci` `method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conduit {
    /// `hvc`: KVM (kvmtool, QEMU with KVM, QEMU TCG without EL2).
    Hvc,
    /// `smc`: QEMU with EL2/EL3 emulated, and Arm CCA realms (served by the RMM).
    Smc,
}

impl Conduit {
    /// The conduit named by a `/psci` `method` property value (`"hvc"` or `"smc"`).
    pub fn from_method(method: &str) -> Option<Self> {
        match method {
            "hvc" => Some(Self::Hvc),
            "smc" => Some(Self::Smc),
            _ => None,
        }
    }
}

/// An SMCCC v1.x call path: function ID in w0, arguments in x1..=x17, results in
/// x0..=x17 (SMCCC 1.2+ register usage, which RSI needs for its larger calls).
pub trait SmcccConduit {
    /// Makes one call. `args[i]` goes to x(i + 1); the result is x0..=x17. Unused
    /// arguments should be zero.
    fn call(&self, function: u32, args: [u64; 17]) -> [u64; 18];
}

impl<T: SmcccConduit + ?Sized> SmcccConduit for &T {
    fn call(&self, function: u32, args: [u64; 17]) -> [u64; 18] {
        (**self).call(function, args)
    }
}

/// What x0 holds after a call to an unknown function (SMCCC `NOT_SUPPORTED`, -1).
pub const SMCCC_NOT_SUPPORTED: u64 = u64::MAX;

impl SmcccConduit for Conduit {
    /// On aarch64: `hvc #0` or `smc #0` via the `smccc` crate (whose asm is not `nomem`,
    /// so calls that read or write memory, as RSI ones do, stay ordered).
    ///
    /// On other architectures (host builds only) there is nothing to call: every call
    /// answers [`SMCCC_NOT_SUPPORTED`], as firmware does for an unknown function.
    fn call(&self, function: u32, args: [u64; 17]) -> [u64; 18] {
        #[cfg(target_arch = "aarch64")]
        {
            match self {
                Self::Hvc => smccc::hvc64(function, args),
                Self::Smc => smccc::smc64(function, args),
            }
        }
        #[cfg(not(target_arch = "aarch64"))]
        {
            let _ = (function, args);
            let mut ret = [0; 18];
            ret[0] = SMCCC_NOT_SUPPORTED;
            ret
        }
    }
}

/// Places up to 17 arguments in x1.. and zeroes the rest (checked at compile time).
pub const fn smccc_args<const N: usize>(args: [u64; N]) -> [u64; 17] {
    const { assert!(N <= 17, "SMCCC passes at most 17 arguments") };
    let mut out = [0; 17];
    let mut i = 0;
    while i < N {
        out[i] = args[i];
        i += 1;
    }
    out
}

/// PSCI function IDs (SMC32 unless suffixed `_64`).
pub mod fid {
    /// `PSCI_VERSION`.
    pub const PSCI_VERSION: u32 = 0x8400_0000;
    /// `CPU_SUSPEND` (SMC64).
    pub const CPU_SUSPEND_64: u32 = 0xc400_0001;
    /// `CPU_OFF`.
    pub const CPU_OFF: u32 = 0x8400_0002;
    /// `CPU_ON` (SMC64).
    pub const CPU_ON_64: u32 = 0xc400_0003;
    /// `AFFINITY_INFO` (SMC64).
    pub const AFFINITY_INFO_64: u32 = 0xc400_0004;
    /// `MIGRATE` (SMC64).
    pub const MIGRATE_64: u32 = 0xc400_0005;
    /// `MIGRATE_INFO_TYPE`.
    pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
    /// `MIGRATE_INFO_UP_CPU` (SMC64).
    pub const MIGRATE_INFO_UP_CPU_64: u32 = 0xc400_0007;
    /// `SYSTEM_OFF`.
    pub const SYSTEM_OFF: u32 = 0x8400_0008;
    /// `SYSTEM_RESET`.
    pub const SYSTEM_RESET: u32 = 0x8400_0009;
    /// `PSCI_FEATURES` (PSCI 1.0+).
    pub const PSCI_FEATURES: u32 = 0x8400_000a;
    /// `CPU_FREEZE`.
    pub const CPU_FREEZE: u32 = 0x8400_000b;
    /// `CPU_DEFAULT_SUSPEND` (SMC64).
    pub const CPU_DEFAULT_SUSPEND_64: u32 = 0xc400_000c;
    /// `NODE_HW_STATE` (SMC64).
    pub const NODE_HW_STATE_64: u32 = 0xc400_000d;
    /// `SYSTEM_SUSPEND` (SMC64).
    pub const SYSTEM_SUSPEND_64: u32 = 0xc400_000e;
    /// `PSCI_SET_SUSPEND_MODE`.
    pub const PSCI_SET_SUSPEND_MODE: u32 = 0x8400_000f;
    /// `PSCI_STAT_RESIDENCY` (SMC64).
    pub const PSCI_STAT_RESIDENCY_64: u32 = 0xc400_0010;
    /// `PSCI_STAT_COUNT` (SMC64).
    pub const PSCI_STAT_COUNT_64: u32 = 0xc400_0011;
    /// `SYSTEM_RESET2` (SMC64, PSCI 1.1).
    pub const SYSTEM_RESET2_64: u32 = 0xc400_0012;
    /// `MEM_PROTECT`.
    pub const MEM_PROTECT: u32 = 0x8400_0013;
    /// `MEM_PROTECT_CHECK_RANGE` (SMC64).
    pub const MEM_PROTECT_CHECK_RANGE_64: u32 = 0xc400_0014;
}

/// A PSCI error return (DEN0022 table "Return error codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsciError {
    /// -1 `NOT_SUPPORTED`.
    NotSupported,
    /// -2 `INVALID_PARAMETERS`.
    InvalidParameters,
    /// -3 `DENIED`.
    Denied,
    /// -4 `ALREADY_ON`.
    AlreadyOn,
    /// -5 `ON_PENDING`.
    OnPending,
    /// -6 `INTERNAL_FAILURE`.
    InternalFailure,
    /// -7 `NOT_PRESENT`.
    NotPresent,
    /// -8 `DISABLED`.
    Disabled,
    /// -9 `INVALID_ADDRESS`.
    InvalidAddress,
    /// A value the specification does not define for this call, including a call that
    /// must not return (`SYSTEM_OFF`, `SYSTEM_RESET`, `CPU_OFF`) coming back with 0.
    Unknown(i32),
}

impl PsciError {
    /// The error for a PSCI return value, or `None` for `SUCCESS` (0) and other
    /// non-negative values.
    pub const fn from_code(code: i32) -> Option<Self> {
        Some(match code {
            0.. => return None,
            -1 => Self::NotSupported,
            -2 => Self::InvalidParameters,
            -3 => Self::Denied,
            -4 => Self::AlreadyOn,
            -5 => Self::OnPending,
            -6 => Self::InternalFailure,
            -7 => Self::NotPresent,
            -8 => Self::Disabled,
            -9 => Self::InvalidAddress,
            other => Self::Unknown(other),
        })
    }

    /// The PSCI return value this error stands for.
    pub const fn code(self) -> i32 {
        match self {
            Self::NotSupported => -1,
            Self::InvalidParameters => -2,
            Self::Denied => -3,
            Self::AlreadyOn => -4,
            Self::OnPending => -5,
            Self::InternalFailure => -6,
            Self::NotPresent => -7,
            Self::Disabled => -8,
            Self::InvalidAddress => -9,
            Self::Unknown(code) => code,
        }
    }
}

/// PSCI version as reported by `PSCI_VERSION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Major version (bits 30:16).
    pub major: u16,
    /// Minor version (bits 15:0).
    pub minor: u16,
}

/// PSCI calls through a conduit.
#[derive(Debug, Clone, Copy)]
pub struct Psci<C> {
    conduit: C,
}

/// Every PSCI function returns a 32-bit value in w0; for SMC32 calls the upper half of
/// x0 is not defined, so it is ignored throughout.
fn w0(ret: &[u64; 18]) -> i32 {
    ret[0] as u32 as i32
}

impl<C: SmcccConduit> Psci<C> {
    /// PSCI over `conduit`.
    pub const fn new(conduit: C) -> Self {
        Self { conduit }
    }

    /// The conduit calls go through.
    pub const fn conduit(&self) -> &C {
        &self.conduit
    }

    fn call(&self, function: u32, args: [u64; 17]) -> i32 {
        w0(&self.conduit.call(function, args))
    }

    fn status(&self, function: u32, args: [u64; 17]) -> Result<(), PsciError> {
        match PsciError::from_code(self.call(function, args)) {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// `PSCI_VERSION`.
    ///
    /// # Errors
    ///
    /// The PSCI error if the firmware answers with a negative value (PSCI 0.1 has no
    /// such call and answers `NOT_SUPPORTED`).
    pub fn version(&self) -> Result<Version, PsciError> {
        let v = self.call(fid::PSCI_VERSION, [0; 17]);
        if let Some(e) = PsciError::from_code(v) {
            return Err(e);
        }
        Ok(Version {
            major: (v >> 16) as u16,
            minor: v as u16,
        })
    }

    /// `PSCI_FEATURES(function)`: the feature flags of an implemented function
    /// (0 for most; bit 1 of `CPU_SUSPEND`'s tells the power-state format).
    ///
    /// # Errors
    ///
    /// [`PsciError::NotSupported`] if `function` is not implemented (or PSCI is older
    /// than 1.0, where `PSCI_FEATURES` itself is unknown).
    pub fn features(&self, function: u32) -> Result<u32, PsciError> {
        let v = self.call(fid::PSCI_FEATURES, smccc_args([u64::from(function)]));
        match PsciError::from_code(v) {
            None => Ok(v as u32),
            Some(e) => Err(e),
        }
    }

    /// `CPU_ON` (SMC64): starts the core with MPIDR affinity `target_mpidr` at physical
    /// address `entry`, with `context_id` in its x0.
    ///
    /// # Errors
    ///
    /// The PSCI error: typically [`PsciError::AlreadyOn`], [`PsciError::OnPending`],
    /// [`PsciError::InvalidParameters`] (no such core) or
    /// [`PsciError::InvalidAddress`] (bad entry point).
    pub fn cpu_on(&self, target_mpidr: u64, entry: u64, context_id: u64) -> Result<(), PsciError> {
        self.status(
            fid::CPU_ON_64,
            smccc_args([target_mpidr, entry, context_id]),
        )
    }

    /// `CPU_OFF`: powers the calling core down. Returns only on failure.
    pub fn cpu_off(&self) -> PsciError {
        self.no_return(fid::CPU_OFF)
    }

    /// `SYSTEM_OFF`: powers the machine down. Returns only on failure.
    pub fn system_off(&self) -> PsciError {
        self.no_return(fid::SYSTEM_OFF)
    }

    /// `SYSTEM_RESET`: resets the machine. Returns only on failure.
    pub fn system_reset(&self) -> PsciError {
        self.no_return(fid::SYSTEM_RESET)
    }

    fn no_return(&self, function: u32) -> PsciError {
        let v = self.call(function, [0; 17]);
        PsciError::from_code(v).unwrap_or(PsciError::Unknown(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for code in -12..=-1 {
            let e = PsciError::from_code(code).unwrap();
            assert_eq!(e.code(), code);
            assert_eq!(matches!(e, PsciError::Unknown(_)), code < -9, "{code}");
        }
        assert_eq!(PsciError::from_code(0), None);
        assert_eq!(PsciError::from_code(0x1_0001), None);
    }

    #[test]
    fn args_are_placed_from_x1() {
        let a = smccc_args([1, 2, 3]);
        assert_eq!(a[..4], [1, 2, 3, 0]);
        assert_eq!(smccc_args([7; 17]), [7; 17]);
    }

    #[test]
    fn method_names() {
        assert_eq!(Conduit::from_method("hvc"), Some(Conduit::Hvc));
        assert_eq!(Conduit::from_method("smc"), Some(Conduit::Smc));
        assert_eq!(Conduit::from_method("HVC"), None);
    }

    #[cfg(not(target_arch = "aarch64"))]
    #[test]
    fn host_conduit_answers_not_supported() {
        let psci = Psci::new(Conduit::Hvc);
        assert_eq!(psci.version(), Err(PsciError::NotSupported));
        assert_eq!(psci.system_off(), PsciError::NotSupported);
    }
}
