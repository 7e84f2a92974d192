//! Arm CCA Realm Service Interface (RSI, Arm DEN0137 v1.0): how a realm guest talks
//! to the RMM.
//!
//! Every RMM v1.0 RSI command has a typed wrapper here, plus the helpers the boot
//! path and the C ABI need: the RIPAS partial-progress loops ([`set_ripas_ram`],
//! [`set_ripas_empty`]) and the attestation-token granule protocol
//! ([`attestation_token`]).
//!
//! Calls go through [`SmcccConduit`] so host tests can substitute a mock RMM; on
//! hardware the only valid conduit is [`Conduit::Smc`](crate::psci::Conduit::Smc)
//! (HVC from a realm is UNDEFINED).
//!
//! # Trust
//!
//! Everything the RMM answers is checked as if it could lie: an out-of-spec status,
//! version, `next` address, RIPAS value or byte count becomes an [`RsiError`], never
//! a panic or an out-of-bounds access. (The RIPAS results carry the host's decision,
//! relayed by the RMM, which is the case that really matters.) Arguments the RMM
//! would refuse are refused here first, without making the call.
//!
//! # References
//!
//! Register usage and checks follow TF-RMM at `rmm-spec-v1.0-rel0`
//! (`lib/smc/include/smc-rsi.h`, `runtime/rsi/*.c`), which is also what its `main`
//! branch does for the v1.0 commands. Where Linux (`arch/arm64/include/asm/rsi_smc.h`)
//! or older RMM drafts differ, the item's documentation says so.

use core::fmt;
use core::ops::Range;

use crate::psci::{SMCCC_NOT_SUPPORTED, SmcccConduit, smccc_args};

/// The RSI granule: every IPA the RSI takes as a "granule address" is aligned to it.
pub const GRANULE_SIZE: u64 = 4096;

/// The largest data [`measurement_extend`] takes, and the size of a measurement.
pub const MEASUREMENT_SIZE: usize = 64;

/// Challenge lengths [`attestation_token`] accepts (Linux's range; the RMM always
/// takes 64 bytes, so shorter challenges are zero-padded).
pub const CHALLENGE_LEN: core::ops::RangeInclusive<usize> = 32..=64;

/// RSI function IDs: SMC64 fast calls in the standard-service range 0x190..=0x1AF,
/// identical in RMM v1.0-eac5, v1.0-rel0 and TF-RMM `main`.
pub mod fid {
    /// `RSI_VERSION`.
    pub const VERSION: u32 = 0xc400_0190;
    /// `RSI_FEATURES`.
    pub const FEATURES: u32 = 0xc400_0191;
    /// `RSI_MEASUREMENT_READ`.
    pub const MEASUREMENT_READ: u32 = 0xc400_0192;
    /// `RSI_MEASUREMENT_EXTEND`.
    pub const MEASUREMENT_EXTEND: u32 = 0xc400_0193;
    /// `RSI_ATTESTATION_TOKEN_INIT`.
    pub const ATTESTATION_TOKEN_INIT: u32 = 0xc400_0194;
    /// `RSI_ATTESTATION_TOKEN_CONTINUE`.
    pub const ATTESTATION_TOKEN_CONTINUE: u32 = 0xc400_0195;
    /// `RSI_REALM_CONFIG`.
    pub const REALM_CONFIG: u32 = 0xc400_0196;
    /// `RSI_IPA_STATE_SET`.
    pub const IPA_STATE_SET: u32 = 0xc400_0197;
    /// `RSI_IPA_STATE_GET`.
    pub const IPA_STATE_GET: u32 = 0xc400_0198;
    /// `RSI_HOST_CALL`.
    pub const HOST_CALL: u32 = 0xc400_0199;
}

/// `RsiCommandReturnCode`: the status an RSI command leaves in x0.
///
/// The whole of x0 is compared (RSI calls are SMC64), so a value with junk in its
/// upper bits is [`ReturnCode::Other`], not a known code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReturnCode {
    /// 0 `RSI_SUCCESS`.
    Success,
    /// 1 `RSI_ERROR_INPUT`: an argument was refused.
    ErrorInput,
    /// 2 `RSI_ERROR_STATE`: the realm or REC is not in the state the command needs
    /// (e.g. `ATTESTATION_TOKEN_CONTINUE` without a pending `INIT`).
    ErrorState,
    /// 3 `RSI_INCOMPLETE`: call again (only `ATTESTATION_TOKEN_CONTINUE` uses it).
    Incomplete,
    /// 4 `RSI_ERROR_UNKNOWN`: the RMM failed for a reason it does not report.
    ErrorUnknown,
    /// 5 `RSI_ERROR_DEVICE`: defined only by TF-RMM `main` (RMM 1.1, device
    /// assignment); absent from v1.0-rel0 and Linux, and kept here so that such an
    /// answer is named rather than lumped into [`ReturnCode::Other`].
    ErrorDevice,
    /// Any other value, kept verbatim (including SMCCC `NOT_SUPPORTED` when it is
    /// decoded with [`ReturnCode::from_raw`] directly).
    Other(u64),
}

impl ReturnCode {
    /// The code for the value of x0.
    pub const fn from_raw(x0: u64) -> Self {
        match x0 {
            0 => Self::Success,
            1 => Self::ErrorInput,
            2 => Self::ErrorState,
            3 => Self::Incomplete,
            4 => Self::ErrorUnknown,
            5 => Self::ErrorDevice,
            other => Self::Other(other),
        }
    }

    /// The value of x0 this code stands for.
    pub const fn to_raw(self) -> u64 {
        match self {
            Self::Success => 0,
            Self::ErrorInput => 1,
            Self::ErrorState => 2,
            Self::Incomplete => 3,
            Self::ErrorUnknown => 4,
            Self::ErrorDevice => 5,
            Self::Other(raw) => raw,
        }
    }
}

impl fmt::Display for ReturnCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Success => f.write_str("RSI_SUCCESS"),
            Self::ErrorInput => f.write_str("RSI_ERROR_INPUT"),
            Self::ErrorState => f.write_str("RSI_ERROR_STATE"),
            Self::Incomplete => f.write_str("RSI_INCOMPLETE"),
            Self::ErrorUnknown => f.write_str("RSI_ERROR_UNKNOWN"),
            Self::ErrorDevice => f.write_str("RSI_ERROR_DEVICE"),
            Self::Other(raw) => write!(f, "unknown RSI status {raw:#x}"),
        }
    }
}

/// Why an RSI call or helper failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RsiError {
    /// x0 was SMCCC `NOT_SUPPORTED` (-1): nothing implements RSI behind the conduit,
    /// so this is not a realm (a non-realm KVM guest or firmware without an RMM).
    NotARealm,
    /// `RSI_VERSION` answered `RSI_ERROR_INPUT`: a realm whose RMM does not implement
    /// the requested revision. Carries the highest revision it reported (x2). The
    /// guest cannot use the RMM and must stop.
    Incompatible(Revision),
    /// The RMM refused the call or failed: its status, which is never
    /// [`ReturnCode::Success`] (and [`ReturnCode::Incomplete`] only from a command
    /// that must not answer it).
    Rmm(ReturnCode),
    /// An argument the RMM would refuse (or that cannot be encoded), caught before
    /// any call was made. The text names the argument.
    InvalidArgument(&'static str),
    /// The host refused a RIPAS change to RAM (`RSI_REJECT`). `next` is the first IPA
    /// left unchanged by the last call.
    Rejected {
        /// First IPA the last call did not change.
        next: u64,
    },
    /// A RIPAS change answered a `next` that does not advance within the range:
    /// `next <= base`, `next > top`, or not granule-aligned. `base` is the base of
    /// the call that answered it.
    BadProgress {
        /// Base of the call that answered `next`.
        base: u64,
        /// Exclusive top of the range.
        top: u64,
        /// The `next` the RMM answered.
        next: u64,
    },
    /// The RMM answered successfully but with values the specification rules out.
    /// The text names the value.
    BadReply(&'static str),
    /// The token buffer is smaller than the upper bound `ATTESTATION_TOKEN_INIT`
    /// announced. Nothing was written; retry with at least `needed` bytes.
    BufferTooSmall {
        /// The upper bound on the token size, in bytes.
        needed: usize,
    },
}

impl fmt::Display for RsiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotARealm => f.write_str("not a realm (RSI not supported)"),
            Self::Incompatible(higher) => write!(
                f,
                "the RMM does not implement RSI 1.0 (it reports up to {higher})"
            ),
            Self::Rmm(code) => write!(f, "the RMM answered {code}"),
            Self::InvalidArgument(what) => write!(f, "invalid RSI argument: {what}"),
            Self::Rejected { next } => {
                write!(f, "the host rejected the RIPAS change at {next:#x}")
            }
            Self::BadProgress { base, top, next } => write!(
                f,
                "RIPAS change of [{base:#x}, {top:#x}) answered next = {next:#x}"
            ),
            Self::BadReply(what) => write!(f, "out-of-spec RSI answer: {what}"),
            Self::BufferTooSmall { needed } => {
                write!(f, "token buffer too small: {needed} bytes needed")
            }
        }
    }
}

/// An RSI interface revision, as `RSI_VERSION` encodes it: major in bits 30:16,
/// minor in bits 15:0, bits 63:31 zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    major: u16,
    minor: u16,
}

impl Revision {
    /// RSI 1.0 (`0x1_0000`), the revision this module implements.
    pub const V1_0: Self = Self { major: 1, minor: 0 };
    /// RSI 1.1 (`0x1_0001`), which TF-RMM `main` also accepts.
    pub const V1_1: Self = Self { major: 1, minor: 1 };

    /// A revision, or `None` if `major` does not fit its 15 bits.
    pub const fn new(major: u16, minor: u16) -> Option<Self> {
        if major > 0x7fff {
            None
        } else {
            Some(Self { major, minor })
        }
    }

    /// The major revision.
    pub const fn major(self) -> u16 {
        self.major
    }

    /// The minor revision.
    pub const fn minor(self) -> u16 {
        self.minor
    }

    /// Decodes a register value; `None` if any of bits 63:31 is set.
    pub const fn from_raw(raw: u64) -> Option<Self> {
        if raw >> 31 != 0 {
            None
        } else {
            Some(Self {
                major: (raw >> 16) as u16,
                minor: raw as u16,
            })
        }
    }

    /// The register encoding.
    pub const fn to_raw(self) -> u64 {
        ((self.major as u64) << 16) | self.minor as u64
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// What a successful `RSI_VERSION` reports: the range of revisions the RMM
/// implements, which contains the requested one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionInfo {
    /// Lower implemented revision (x1).
    pub lower: Revision,
    /// Higher implemented revision (x2).
    pub higher: Revision,
}

/// Realm IPA state (`RsiRipas`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ripas {
    /// 0: not usable as protected memory; accesses take a synchronous external abort.
    Empty,
    /// 1: protected RAM.
    Ram,
    /// 2: was RAM and the host took it away; accesses abort, and only
    /// [`ChangeDestroyed::ChangeDestroyed`] brings it back.
    Destroyed,
    /// 3: a protected device range (RMM 1.1 device assignment; older
    /// kvm-unit-tests call it `IO`).
    Dev,
}

impl Ripas {
    /// The RIPAS for a register value, or `None` for a value the RMM never reports.
    pub const fn from_raw(raw: u64) -> Option<Self> {
        match raw {
            0 => Some(Self::Empty),
            1 => Some(Self::Ram),
            2 => Some(Self::Destroyed),
            3 => Some(Self::Dev),
            _ => None,
        }
    }

    /// The register encoding.
    pub const fn to_raw(self) -> u64 {
        match self {
            Self::Empty => 0,
            Self::Ram => 1,
            Self::Destroyed => 2,
            Self::Dev => 3,
        }
    }
}

/// `RsiRipasChangeDestroyed`: whether `RSI_IPA_STATE_SET` may turn `DESTROYED`
/// granules back into the requested state (x4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeDestroyed {
    /// 0: stop at a `DESTROYED` granule. The safe choice at boot: memory the host
    /// destroyed must not silently come back as fresh RAM.
    NoChangeDestroyed,
    /// 1: change `DESTROYED` granules too (taking back memory the guest shared).
    ChangeDestroyed,
}

impl ChangeDestroyed {
    /// The register encoding.
    pub const fn to_raw(self) -> u64 {
        match self {
            Self::NoChangeDestroyed => 0,
            Self::ChangeDestroyed => 1,
        }
    }
}

/// `RsiResponse`: the host's answer to a RIPAS change request (x2 of
/// `RSI_IPA_STATE_SET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Response {
    /// 0: accepted (possibly only up to `next`).
    Accept,
    /// 1: rejected. TF-RMM reports it only for a change to RAM that stopped before
    /// `top`; a refused change to EMPTY comes back as `Accept` with no progress.
    Reject,
}

/// What `RSI_IPA_STATE_SET` answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateSetReply {
    /// First IPA not changed (x1). TF-RMM calls it the base of the unmodified
    /// region, Linux the top of the modified one: the same address.
    pub next: u64,
    /// The host's response (x2).
    pub response: Response,
}

/// What `RSI_IPA_STATE_GET` answered: `[base, top)` has one RIPAS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RipasRun {
    /// Exclusive top of the run, at most the `end` asked for.
    pub top: u64,
    /// The RIPAS of the whole run.
    pub ripas: Ripas,
}

/// What one `RSI_ATTESTATION_TOKEN_CONTINUE` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProgress {
    /// `RSI_SUCCESS`: the token is complete; this many bytes were written by this
    /// call.
    Complete(usize),
    /// `RSI_INCOMPLETE`: call again; this many bytes were written (0 while the RMM
    /// is still signing, or when the buffer was empty).
    Incomplete(usize),
}

/// `RsiHashAlgorithm`, the realm's measurement algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// 0: SHA-256.
    Sha256,
    /// 1: SHA-512.
    Sha512,
    /// 2: SHA-384, defined only by TF-RMM `main` (RMM 1.1).
    Sha384,
    /// Any other value, kept.
    Unknown(u8),
}

impl HashAlgorithm {
    /// The algorithm for the one-byte field value.
    pub const fn from_raw(raw: u8) -> Self {
        match raw {
            0 => Self::Sha256,
            1 => Self::Sha512,
            2 => Self::Sha384,
            other => Self::Unknown(other),
        }
    }
}

/// Smallest IPA width an RMM accepts for a realm (TF-RMM `S2TT_MIN_IPA_BITS`).
pub const MIN_IPA_WIDTH: u64 = 32;
/// Largest IPA width (52 with FEAT_LPA2; TF-RMM `S2TT_MAX_IPA_BITS_LPA2`).
pub const MAX_IPA_WIDTH: u64 = 52;

/// `RsiRealmConfig`: the granule `RSI_REALM_CONFIG` fills, as of RMM v1.0-rel0.
///
/// Layout differences between references (checked at compile time below):
/// - hash algorithm: one byte at 0x8 in v1.0-rel0 and TF-RMM `main`, but eight
///   bytes in v1.0-eac2/eac5, and `unsigned long hash_algo` in Linux's
///   `struct realm_config`. Only byte 0x8 is meaningful; the RMM leaves 0x9.. as
///   it was, so it must not be read as a wider field.
/// - TF-RMM `main` (RMM 1.1) also writes `num_aux_planes` (u64 @0x10), `gicv3_vtr`
///   (u32 @0x18) and `ats_plane` (u64 @0x20); for a v1.0 guest they are reserved
///   and stay in the private padding.
/// - `rpv` is at 0x200 in rel0, `main` and Linux; eac2 has no RPV.
#[repr(C, align(4096))]
#[derive(Clone, PartialEq, Eq)]
pub struct RealmConfig {
    /// IPA width of the realm in bits (u64 @0x0).
    pub ipa_width: u64,
    /// `RsiHashAlgorithm` (u8 @0x8); see [`HashAlgorithm::from_raw`].
    pub hash_algorithm: u8,
    reserved0: [u8; 0x10 - 0x9],
    /// RSI 1.1: number of auxiliary planes (u64 @0x10); reserved (zero) in 1.0.
    pub num_aux_planes: u64,
    /// RSI 1.1: the GICv3 VGIC Type Register value (u32 @0x18).
    pub gicv3_vtr: u32,
    reserved1: [u8; 0x20 - 0x1c],
    /// RSI 1.1: which plane's stage 2 assigned devices use with ATS (u64 @0x20).
    pub ats_plane: u64,
    reserved2: [u8; 0x200 - 0x28],
    /// Realm Personalization Value (64 bytes @0x200).
    pub rpv: [u8; 64],
    reserved3: [u8; 0x1000 - 0x240],
}

const _: () = {
    assert!(core::mem::size_of::<RealmConfig>() == 0x1000);
    assert!(core::mem::align_of::<RealmConfig>() == 0x1000);
    assert!(core::mem::offset_of!(RealmConfig, ipa_width) == 0x0);
    assert!(core::mem::offset_of!(RealmConfig, hash_algorithm) == 0x8);
    assert!(core::mem::offset_of!(RealmConfig, num_aux_planes) == 0x10);
    assert!(core::mem::offset_of!(RealmConfig, gicv3_vtr) == 0x18);
    assert!(core::mem::offset_of!(RealmConfig, ats_plane) == 0x20);
    assert!(core::mem::offset_of!(RealmConfig, rpv) == 0x200);
};

/// The most auxiliary planes a realm can have (RMM 2.0: planes 1 to 3).
pub const MAX_AUX_PLANES: u64 = 3;

/// The decoded, checked contents of a [`RealmConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealmInfo {
    /// IPA width in bits, within [`MIN_IPA_WIDTH`]`..=`[`MAX_IPA_WIDTH`].
    pub ipa_width: u32,
    /// The unprotected ("shared") IPA bit, `1 << (ipa_width - 1)`: the protected
    /// half is below it, the alias of every host-emulated device above.
    pub shared_bit: u64,
    /// The measurement algorithm.
    pub hash_algorithm: HashAlgorithm,
    /// Auxiliary planes (RSI 1.1; 0 under 1.0, where the field is reserved).
    pub num_aux_planes: u64,
}

impl RealmConfig {
    /// An all-zero granule, e.g. for a `static` in `.bss` to pass to
    /// [`realm_config`].
    pub const fn zeroed() -> Self {
        Self {
            ipa_width: 0,
            hash_algorithm: 0,
            reserved0: [0; 0x10 - 0x9],
            num_aux_planes: 0,
            gicv3_vtr: 0,
            reserved1: [0; 0x20 - 0x1c],
            ats_plane: 0,
            reserved2: [0; 0x200 - 0x28],
            rpv: [0; 64],
            reserved3: [0; 0x1000 - 0x240],
        }
    }

    /// The structure as laid out in `bytes` (a copy of the granule), decoded field
    /// by field in little-endian order; reserved bytes are kept.
    pub fn from_bytes(bytes: &[u8; 0x1000]) -> Self {
        let mut c = Self::zeroed();
        let mut w = [0; 8];
        w.copy_from_slice(&bytes[..8]);
        c.ipa_width = u64::from_le_bytes(w);
        c.hash_algorithm = bytes[8];
        c.reserved0.copy_from_slice(&bytes[9..0x10]);
        w.copy_from_slice(&bytes[0x10..0x18]);
        c.num_aux_planes = u64::from_le_bytes(w);
        let mut w4 = [0; 4];
        w4.copy_from_slice(&bytes[0x18..0x1c]);
        c.gicv3_vtr = u32::from_le_bytes(w4);
        c.reserved1.copy_from_slice(&bytes[0x1c..0x20]);
        w.copy_from_slice(&bytes[0x20..0x28]);
        c.ats_plane = u64::from_le_bytes(w);
        c.reserved2.copy_from_slice(&bytes[0x28..0x200]);
        c.rpv.copy_from_slice(&bytes[0x200..0x240]);
        c.reserved3.copy_from_slice(&bytes[0x240..]);
        c
    }

    /// The IPA width, shared bit and hash algorithm, checked, as RSI 1.0 defines
    /// the structure (the 1.1 fields are reserved there and not read).
    ///
    /// # Errors
    ///
    /// [`RsiError::BadReply`] if the IPA width is outside the range an RMM can
    /// create a realm with: a shared bit derived from it would be meaningless.
    pub fn info(&self) -> Result<RealmInfo, RsiError> {
        self.info_for(Revision::V1_0)
    }

    /// [`info`](Self::info) for the RSI revision negotiated: from 1.1 on, also the
    /// number of auxiliary planes (at most [`MAX_AUX_PLANES`]).
    ///
    /// # Errors
    ///
    /// [`RsiError::BadReply`] for an IPA width outside 32..=52 or, under 1.1, more
    /// auxiliary planes than the architecture has.
    pub fn info_for(&self, revision: Revision) -> Result<RealmInfo, RsiError> {
        if !(MIN_IPA_WIDTH..=MAX_IPA_WIDTH).contains(&self.ipa_width) {
            return Err(RsiError::BadReply("realm IPA width outside 32..=52"));
        }
        let num_aux_planes = if revision >= Revision::V1_1 {
            if self.num_aux_planes > MAX_AUX_PLANES {
                return Err(RsiError::BadReply("more than 3 auxiliary planes"));
            }
            self.num_aux_planes
        } else {
            0
        };
        Ok(RealmInfo {
            ipa_width: self.ipa_width as u32,
            shared_bit: 1 << (self.ipa_width - 1),
            hash_algorithm: HashAlgorithm::from_raw(self.hash_algorithm),
            num_aux_planes,
        })
    }
}

impl Default for RealmConfig {
    fn default() -> Self {
        Self::zeroed()
    }
}

impl fmt::Debug for RealmConfig {
    // The reserved 3.5 KiB would drown the useful fields.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RealmConfig")
            .field("ipa_width", &self.ipa_width)
            .field("hash_algorithm", &self.hash_algorithm)
            .field("num_aux_planes", &self.num_aux_planes)
            .field("gicv3_vtr", &self.gicv3_vtr)
            .field("ats_plane", &self.ats_plane)
            .field("rpv", &self.rpv)
            .finish_non_exhaustive()
    }
}

/// Number of general-purpose registers a host call carries (x0..=x30).
pub const HOST_CALL_GPRS: usize = 31;

/// `RsiHostCall`: the structure `RSI_HOST_CALL` passes to the host and receives
/// back (the RMM copies `imm` and `gprs` into the REC exit, and the host's
/// `gprs` back into the structure on return).
///
/// `imm` is 16 bits in the specification; TF-RMM declares it `unsigned int` and
/// reads four bytes, so the two bytes after it are kept zero (private padding)
/// and `gprs` starts at 0x8 in both. Linux defines the function ID but no
/// structure. It must be 256-byte aligned (so it cannot cross a granule), as the
/// type guarantees, and lie in RIPAS RAM.
#[repr(C, align(256))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostCall {
    /// The immediate passed to the host (u16 @0x0).
    pub imm: u16,
    padding: [u8; 6],
    /// x0..=x30 for the host, and the host's answer on return (u64 × 31 @0x8).
    pub gprs: [u64; HOST_CALL_GPRS],
}

const _: () = {
    assert!(core::mem::size_of::<HostCall>() == 0x100);
    assert!(core::mem::align_of::<HostCall>() == 0x100);
    assert!(core::mem::offset_of!(HostCall, imm) == 0x0);
    assert!(core::mem::offset_of!(HostCall, gprs) == 0x8);
};

impl HostCall {
    /// A host call with immediate `imm` and all registers zero.
    pub const fn new(imm: u16) -> Self {
        Self {
            imm,
            padding: [0; 6],
            gprs: [0; HOST_CALL_GPRS],
        }
    }
}

/// Status of a call: `Ok` for `RSI_SUCCESS`, [`RsiError::NotARealm`] for SMCCC
/// `NOT_SUPPORTED`, the RMM's code otherwise.
fn status(ret: &[u64; 18]) -> Result<(), RsiError> {
    match ret[0] {
        SMCCC_NOT_SUPPORTED => Err(RsiError::NotARealm),
        x0 => match ReturnCode::from_raw(x0) {
            ReturnCode::Success => Ok(()),
            code => Err(RsiError::Rmm(code)),
        },
    }
}

const fn granule_aligned(addr: u64) -> bool {
    addr.is_multiple_of(GRANULE_SIZE)
}

/// Packs up to 64 bytes into eight little-endian words, zero-padded: the layout of
/// measurement and challenge values in x1..x8 / x3..x10.
fn pack64(bytes: &[u8]) -> [u64; 8] {
    let mut padded = [0u8; 64];
    let n = bytes.len().min(64);
    padded[..n].copy_from_slice(&bytes[..n]);
    let mut words = [0u64; 8];
    for (word, chunk) in words.iter_mut().zip(padded.chunks_exact(8)) {
        let mut w = [0; 8];
        w.copy_from_slice(chunk);
        *word = u64::from_le_bytes(w);
    }
    words
}

/// `RSI_VERSION(requested)`: the revisions the RMM implements.
///
/// # Errors
///
/// - [`RsiError::NotARealm`] for SMCCC `NOT_SUPPORTED`;
/// - [`RsiError::Incompatible`] (with the higher revision, x2) for
///   `RSI_ERROR_INPUT`: the RMM does not implement `requested`;
/// - [`RsiError::BadReply`] for a success whose range is malformed or does not
///   contain `requested` (e.g. all-zero registers from something that is not an
///   RMM);
/// - [`RsiError::Rmm`] for any other status.
pub fn version<C: SmcccConduit + ?Sized>(
    conduit: &C,
    requested: Revision,
) -> Result<VersionInfo, RsiError> {
    let ret = conduit.call(fid::VERSION, smccc_args([requested.to_raw()]));
    match status(&ret) {
        Ok(()) => {}
        Err(RsiError::Rmm(ReturnCode::ErrorInput)) => {
            let higher = Revision::from_raw(ret[2])
                .ok_or(RsiError::BadReply("RSI_VERSION higher revision"))?;
            return Err(RsiError::Incompatible(higher));
        }
        Err(e) => return Err(e),
    }
    let lower =
        Revision::from_raw(ret[1]).ok_or(RsiError::BadReply("RSI_VERSION lower revision"))?;
    let higher =
        Revision::from_raw(ret[2]).ok_or(RsiError::BadReply("RSI_VERSION higher revision"))?;
    // SUCCESS means the requested revision is implemented: it must lie in the range.
    if !(lower <= requested && requested <= higher) {
        return Err(RsiError::BadReply(
            "RSI_VERSION success without the requested revision",
        ));
    }
    Ok(VersionInfo { lower, higher })
}

/// The outcome of [`negotiate`]: the revision this realm uses and what the RMM
/// reported for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The revision in use: 1.1 if the RMM implements it, else 1.0.
    pub revision: Revision,
    /// The RMM's reply to the request that succeeded.
    pub rmm: VersionInfo,
}

/// Negotiates the highest RSI revision both sides implement, as the RMM
/// specification's RSI_VERSION flow has it: request 1.1 (the highest this module
/// speaks: it reads the 1.1 realm configuration and uses no call that changed);
/// if the RMM does not implement it (`RSI_ERROR_INPUT`), request 1.0. TF-RMM v0.8.0
/// (rmm-spec 1.0-rel0) implements exactly 1.0, v0.9.0 1.0 and 1.1.
///
/// # Errors
///
/// As [`version`]: [`RsiError::NotARealm`] means not a realm;
/// [`RsiError::Incompatible`] (with the RMM's highest revision) an RMM that
/// implements neither 1.0 nor 1.1; anything else a realm (or something pretending to
/// be one) the guest cannot use. In every error case the boot must stop rather than
/// continue as a normal VM.
pub fn negotiate<C: SmcccConduit + ?Sized>(conduit: &C) -> Result<Negotiated, RsiError> {
    let with = |revision| move |rmm| Negotiated { revision, rmm };
    match version(conduit, Revision::V1_1) {
        Ok(rmm) => Ok(with(Revision::V1_1)(rmm)),
        // Not 1.1, whatever the RMM's highest: 1.0 then.
        Err(RsiError::Incompatible(_)) => {
            version(conduit, Revision::V1_0).map(with(Revision::V1_0))
        }
        Err(e) => Err(e),
    }
}

/// `RSI_FEATURES(index)`: feature register `index`. In RMM v1.0 every register
/// reads 0 (TF-RMM `main` sets bits in register 0 for 1.1 features).
///
/// # Errors
///
/// [`RsiError::NotARealm`] or the RMM's status.
pub fn features<C: SmcccConduit + ?Sized>(conduit: &C, index: u64) -> Result<u64, RsiError> {
    let ret = conduit.call(fid::FEATURES, smccc_args([index]));
    status(&ret)?;
    Ok(ret[1])
}

/// `RSI_REALM_CONFIG`: makes the RMM write a [`RealmConfig`] into the granule at
/// `granule_ipa`.
///
/// The granule must be RIPAS RAM (TF-RMM answers `RSI_ERROR_INPUT` for EMPTY). On
/// the target it is a [`RealmConfig`] whose address is `granule_ipa`; the caller
/// reads it after this returns (the SMC is not `nomem`, so the compiler does not
/// cache its contents across the call) and decodes it with [`RealmConfig::info`].
///
/// # Errors
///
/// [`RsiError::InvalidArgument`] for an unaligned IPA (no call made),
/// [`RsiError::NotARealm`] or the RMM's status.
pub fn realm_config<C: SmcccConduit + ?Sized>(
    conduit: &C,
    granule_ipa: u64,
) -> Result<(), RsiError> {
    if !granule_aligned(granule_ipa) {
        return Err(RsiError::InvalidArgument(
            "realm config IPA not 4 KiB-aligned",
        ));
    }
    status(&conduit.call(fid::REALM_CONFIG, smccc_args([granule_ipa])))
}

/// `RSI_IPA_STATE_SET(base, top, ripas, flags)`: one request to change the RIPAS of
/// `[base, top)`. The host may change only a prefix; see [`set_ripas_ram`] and
/// [`set_ripas_empty`] for the loop.
///
/// The reply is returned as the RMM gave it; checking that `next` advances is the
/// caller's job (the helpers do it).
///
/// # Errors
///
/// [`RsiError::InvalidArgument`] (no call made) if `base` or `top` is not
/// granule-aligned, `top <= base`, or `ripas` is neither EMPTY nor RAM (the only
/// states a realm may request). [`RsiError::BadReply`] for a response other than
/// ACCEPT or REJECT. Otherwise [`RsiError::NotARealm`] or the RMM's status.
pub fn ipa_state_set<C: SmcccConduit + ?Sized>(
    conduit: &C,
    base: u64,
    top: u64,
    ripas: Ripas,
    flags: ChangeDestroyed,
) -> Result<StateSetReply, RsiError> {
    check_range(base, top)?;
    if !matches!(ripas, Ripas::Empty | Ripas::Ram) {
        return Err(RsiError::InvalidArgument("RIPAS other than EMPTY or RAM"));
    }
    let ret = conduit.call(
        fid::IPA_STATE_SET,
        smccc_args([base, top, ripas.to_raw(), flags.to_raw()]),
    );
    status(&ret)?;
    let response = match ret[2] {
        0 => Response::Accept,
        1 => Response::Reject,
        _ => return Err(RsiError::BadReply("RSI_IPA_STATE_SET response")),
    };
    Ok(StateSetReply {
        next: ret[1],
        response,
    })
}

fn check_range(base: u64, top: u64) -> Result<(), RsiError> {
    if !granule_aligned(base) || !granule_aligned(top) {
        return Err(RsiError::InvalidArgument("IPA range not 4 KiB-aligned"));
    }
    if top <= base {
        return Err(RsiError::InvalidArgument("empty IPA range"));
    }
    Ok(())
}

/// `RSI_IPA_STATE_GET(base, end)` (the range form of v1.0-rel0 and later; v1.0-eac5
/// took a single IPA and is not supported): the RIPAS of `base` and how far it
/// extends, at most to `end`.
///
/// # Errors
///
/// [`RsiError::InvalidArgument`] (no call made) for unaligned or empty ranges;
/// [`RsiError::BadReply`] for a `top` outside `(base, end]` or an unknown RIPAS;
/// otherwise [`RsiError::NotARealm`] or the RMM's status (`RSI_ERROR_INPUT` for a
/// range outside the protected IPA space).
pub fn ipa_state_get<C: SmcccConduit + ?Sized>(
    conduit: &C,
    base: u64,
    end: u64,
) -> Result<RipasRun, RsiError> {
    check_range(base, end)?;
    let ret = conduit.call(fid::IPA_STATE_GET, smccc_args([base, end]));
    status(&ret)?;
    let top = ret[1];
    if top <= base || top > end || !granule_aligned(top) {
        return Err(RsiError::BadReply(
            "RSI_IPA_STATE_GET top outside the range",
        ));
    }
    let ripas = Ripas::from_raw(ret[2]).ok_or(RsiError::BadReply("RSI_IPA_STATE_GET RIPAS"))?;
    Ok(RipasRun { top, ripas })
}

/// `RSI_MEASUREMENT_READ(index)`: measurement `index` (0 = RIM, 1..=4 = REMs) as
/// 64 bytes; x1..x8 hold them as little-endian words. With SHA-256 the last 32
/// bytes are zero.
///
/// # Errors
///
/// [`RsiError::InvalidArgument`] for `index > 4` (no call made);
/// [`RsiError::NotARealm`] or the RMM's status.
pub fn measurement_read<C: SmcccConduit + ?Sized>(
    conduit: &C,
    index: u64,
) -> Result<[u8; MEASUREMENT_SIZE], RsiError> {
    if index > 4 {
        return Err(RsiError::InvalidArgument("measurement index above 4"));
    }
    let ret = conduit.call(fid::MEASUREMENT_READ, smccc_args([index]));
    status(&ret)?;
    let mut out = [0; MEASUREMENT_SIZE];
    for (chunk, word) in out.chunks_exact_mut(8).zip(&ret[1..9]) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    Ok(out)
}

/// `RSI_MEASUREMENT_EXTEND(index, data)`: extends REM `index` (1..=4) with up to
/// 64 bytes (size in x2, data zero-padded in x3..x10 as little-endian words).
///
/// # Errors
///
/// [`RsiError::InvalidArgument`] for `index` 0 (the RIM cannot be extended) or
/// above 4, or more than 64 bytes (no call made); [`RsiError::NotARealm`] or the
/// RMM's status.
pub fn measurement_extend<C: SmcccConduit + ?Sized>(
    conduit: &C,
    index: u64,
    data: &[u8],
) -> Result<(), RsiError> {
    if !(1..=4).contains(&index) {
        return Err(RsiError::InvalidArgument("REM index outside 1..=4"));
    }
    if data.len() > MEASUREMENT_SIZE {
        return Err(RsiError::InvalidArgument("measurement data above 64 bytes"));
    }
    let w = pack64(data);
    let args = smccc_args([
        index,
        data.len() as u64,
        w[0],
        w[1],
        w[2],
        w[3],
        w[4],
        w[5],
        w[6],
        w[7],
    ]);
    status(&conduit.call(fid::MEASUREMENT_EXTEND, args))
}

/// `RSI_ATTESTATION_TOKEN_INIT(challenge)`: starts a token (aborting any pending
/// one) and returns the RMM's upper bound on its size in bytes.
///
/// # Errors
///
/// [`RsiError::NotARealm`] or the RMM's status (TF-RMM: `RSI_ERROR_UNKNOWN` if it
/// cannot create the token).
pub fn attestation_token_init<C: SmcccConduit + ?Sized>(
    conduit: &C,
    challenge: &[u8; 64],
) -> Result<u64, RsiError> {
    let ret = conduit.call(fid::ATTESTATION_TOKEN_INIT, smccc_args(pack64(challenge)));
    status(&ret)?;
    Ok(ret[1])
}

/// `RSI_ATTESTATION_TOKEN_CONTINUE(granule_ipa, offset, size)`: lets the RMM sign
/// and write the next part of the token into `[offset, offset + size)` of the
/// granule.
///
/// Must follow [`attestation_token_init`] on the same CPU (the state is per REC).
///
/// # Errors
///
/// [`RsiError::InvalidArgument`] (no call made) for an unaligned granule, an
/// `offset` outside the granule or a `size` running past it;
/// [`RsiError::BadReply`] if the RMM claims to have written more than `size`;
/// otherwise [`RsiError::NotARealm`] or the RMM's status (`RSI_ERROR_STATE`
/// without a pending INIT, `RSI_ERROR_INPUT` for a granule that is not RAM).
pub fn attestation_token_continue<C: SmcccConduit + ?Sized>(
    conduit: &C,
    granule_ipa: u64,
    offset: u64,
    size: u64,
) -> Result<TokenProgress, RsiError> {
    if !granule_aligned(granule_ipa) {
        return Err(RsiError::InvalidArgument("token granule not 4 KiB-aligned"));
    }
    // TF-RMM: offset < granule and offset + size <= granule, without overflow.
    if offset >= GRANULE_SIZE || size > GRANULE_SIZE - offset {
        return Err(RsiError::InvalidArgument("token chunk outside its granule"));
    }
    let ret = conduit.call(
        fid::ATTESTATION_TOKEN_CONTINUE,
        smccc_args([granule_ipa, offset, size]),
    );
    let complete = match status(&ret) {
        Ok(()) => true,
        Err(RsiError::Rmm(ReturnCode::Incomplete)) => false,
        Err(e) => return Err(e),
    };
    if ret[1] > size {
        return Err(RsiError::BadReply("token bytes written exceed the chunk"));
    }
    // ret[1] <= size <= GRANULE_SIZE: the conversion cannot truncate.
    let written = ret[1] as usize;
    Ok(if complete {
        TokenProgress::Complete(written)
    } else {
        TokenProgress::Incomplete(written)
    })
}

/// `RSI_HOST_CALL`: passes the [`HostCall`] at `ipa` to the host, which answers in
/// its `gprs`.
///
/// # Errors
///
/// [`RsiError::InvalidArgument`] for an IPA that is not 256-byte aligned (no call
/// made); [`RsiError::NotARealm`] or the RMM's status (`RSI_ERROR_INPUT` for a
/// structure outside the protected space or in EMPTY memory).
pub fn host_call<C: SmcccConduit + ?Sized>(conduit: &C, ipa: u64) -> Result<(), RsiError> {
    if !ipa.is_multiple_of(core::mem::align_of::<HostCall>() as u64) {
        return Err(RsiError::InvalidArgument(
            "host call IPA not 256-byte aligned",
        ));
    }
    status(&conduit.call(fid::HOST_CALL, smccc_args([ipa])))
}

/// Makes `range` RIPAS RAM, looping over partial progress: one call per `next` the
/// host returns, never one per page. Returns the number of calls made.
///
/// Use [`ChangeDestroyed::NoChangeDestroyed`] at boot, so that memory the host
/// destroyed is not silently accepted as fresh RAM.
///
/// # Errors
///
/// - [`RsiError::InvalidArgument`] for an unaligned or empty range (no call made);
/// - [`RsiError::Rejected`] when the host answers REJECT;
/// - [`RsiError::BadProgress`] when `next` does not advance, runs past the top, or
///   is unaligned (a host that makes no progress would otherwise loop forever);
/// - any error of [`ipa_state_set`].
///
/// After an error, `[range.start, next)` of the last good reply may already be RAM.
pub fn set_ripas_ram<C: SmcccConduit + ?Sized>(
    conduit: &C,
    range: Range<u64>,
    flags: ChangeDestroyed,
) -> Result<usize, RsiError> {
    set_ripas(conduit, range, Ripas::Ram, flags)
}

/// Makes `range` RIPAS EMPTY, e.g. to share it with the host (then map it at the
/// unprotected alias). Same loop, result and errors as [`set_ripas_ram`]; note
/// that TF-RMM turns a host's refusal of a change to EMPTY into ACCEPT with no
/// progress, which fails as [`RsiError::BadProgress`].
///
/// # Errors
///
/// As [`set_ripas_ram`].
pub fn set_ripas_empty<C: SmcccConduit + ?Sized>(
    conduit: &C,
    range: Range<u64>,
    flags: ChangeDestroyed,
) -> Result<usize, RsiError> {
    set_ripas(conduit, range, Ripas::Empty, flags)
}

fn set_ripas<C: SmcccConduit + ?Sized>(
    conduit: &C,
    range: Range<u64>,
    ripas: Ripas,
    flags: ChangeDestroyed,
) -> Result<usize, RsiError> {
    let Range {
        start: mut base,
        end: top,
    } = range;
    check_range(base, top)?;
    let mut calls = 0usize;
    loop {
        let reply = ipa_state_set(conduit, base, top, ripas, flags)?;
        // At most (top - base) / 4 KiB iterations since `next` strictly advances by
        // whole granules: this cannot overflow a usize.
        calls += 1;
        if reply.response == Response::Reject {
            return Err(RsiError::Rejected { next: reply.next });
        }
        let next = reply.next;
        if next <= base || next > top || !granule_aligned(next) {
            return Err(RsiError::BadProgress { base, top, next });
        }
        if next == top {
            return Ok(calls);
        }
        base = next;
    }
}

/// Zero-pads a 32..=64-byte challenge to the 64 bytes the RMM takes (as Linux does).
///
/// # Errors
///
/// [`RsiError::InvalidArgument`] for any other length.
pub fn pad_challenge(challenge: &[u8]) -> Result<[u8; 64], RsiError> {
    if !CHALLENGE_LEN.contains(&challenge.len()) {
        return Err(RsiError::InvalidArgument("challenge not 32..=64 bytes"));
    }
    let mut out = [0; 64];
    out[..challenge.len()].copy_from_slice(challenge);
    Ok(out)
}

/// The size a token buffer must have for [`attestation_token`]: the upper bound
/// `RSI_ATTESTATION_TOKEN_INIT` announces for `challenge` (32..=64 bytes).
///
/// It starts a token, so a token operation pending on this CPU is abandoned.
///
/// # Errors
///
/// [`RsiError::InvalidArgument`] for a bad challenge length (no call made);
/// [`RsiError::BadReply`] for a bound that does not fit a `usize`; otherwise as
/// [`attestation_token_init`].
pub fn attestation_token_size<C: SmcccConduit + ?Sized>(
    conduit: &C,
    challenge: &[u8],
) -> Result<usize, RsiError> {
    let challenge = pad_challenge(challenge)?;
    init_bound(conduit, &challenge)
}

fn init_bound<C: SmcccConduit + ?Sized>(
    conduit: &C,
    challenge: &[u8; 64],
) -> Result<usize, RsiError> {
    let bound = attestation_token_init(conduit, challenge)?;
    usize::try_from(bound).map_err(|_| RsiError::BadReply("token size bound above usize"))
}

/// Fetches an attestation token for `challenge` (32..=64 bytes, zero-padded) into
/// `buf`, whose IPA is `buf_ipa`, and returns its length: the token is
/// `buf[..len]`.
///
/// The RMM writes the memory at `buf_ipa` directly; the caller guarantees it is
/// `buf` (identity-mapped, or the IPA behind `buf`'s virtual address) and RIPAS
/// RAM. `buf` need not be aligned: the range is cut at 4 KiB boundaries and each
/// granule filled with `RSI_ATTESTATION_TOKEN_CONTINUE` until it answers SUCCESS.
/// All calls must happen on one CPU (the token state is per REC), so the caller
/// must not migrate in between.
///
/// The buffer must hold the upper bound INIT announces (see
/// [`attestation_token_size`]); checking that before any CONTINUE means a short
/// buffer fails cleanly, without a partial token, and that no signing is wasted.
///
/// # Errors
///
/// - [`RsiError::InvalidArgument`] (no call made) for a bad challenge length or a
///   buffer range that overflows the IPA space;
/// - [`RsiError::BufferTooSmall`] with the bound, after INIT only;
/// - [`RsiError::BadReply`] if the RMM writes more than it announced or than asked;
/// - otherwise as [`attestation_token_init`] and [`attestation_token_continue`].
pub fn attestation_token<C: SmcccConduit + ?Sized>(
    conduit: &C,
    challenge: &[u8],
    buf: &mut [u8],
    buf_ipa: u64,
) -> Result<usize, RsiError> {
    let challenge = pad_challenge(challenge)?;
    let len = buf.len() as u64;
    let end = buf_ipa
        .checked_add(len)
        .ok_or(RsiError::InvalidArgument("token buffer past the IPA space"))?;
    // The RMM (an SMC) writes this memory behind the compiler's back: exposing the
    // pointer tells it the call may access the buffer, so `buf` is re-read after.
    let _ = buf.as_mut_ptr().expose_provenance();
    let chunks = ContiguousChunks { cur: buf_ipa, end };
    fetch_token(conduit, &challenge, buf.len(), chunks)
}

/// Like [`attestation_token`], into whole granules given by their IPAs (need not be
/// contiguous): the token is the concatenation of the granules, in order.
///
/// # Errors
///
/// [`RsiError::InvalidArgument`] for an unaligned granule or a bad challenge (no
/// call made); otherwise as [`attestation_token`].
pub fn attestation_token_granules<C: SmcccConduit + ?Sized>(
    conduit: &C,
    challenge: &[u8],
    granule_ipas: &[u64],
) -> Result<usize, RsiError> {
    let challenge = pad_challenge(challenge)?;
    if !granule_ipas.iter().all(|&g| granule_aligned(g)) {
        return Err(RsiError::InvalidArgument("token granule not 4 KiB-aligned"));
    }
    let capacity = granule_ipas.len().saturating_mul(GRANULE_SIZE as usize);
    let chunks = granule_ipas.iter().map(|&g| (g, 0, GRANULE_SIZE));
    fetch_token(conduit, &challenge, capacity, chunks)
}

/// `[cur, end)` cut at granule boundaries into (granule, offset, size).
struct ContiguousChunks {
    cur: u64,
    end: u64,
}

impl Iterator for ContiguousChunks {
    type Item = (u64, u64, u64);

    fn next(&mut self) -> Option<Self::Item> {
        if self.cur >= self.end {
            return None;
        }
        let offset = self.cur % GRANULE_SIZE;
        let size = (GRANULE_SIZE - offset).min(self.end - self.cur);
        let chunk = (self.cur - offset, offset, size);
        self.cur += size;
        Some(chunk)
    }
}

/// INIT, check the buffer against the bound, then CONTINUE chunk by chunk.
fn fetch_token<C: SmcccConduit + ?Sized>(
    conduit: &C,
    challenge: &[u8; 64],
    capacity: usize,
    chunks: impl Iterator<Item = (u64, u64, u64)>,
) -> Result<usize, RsiError> {
    let bound = init_bound(conduit, challenge)?;
    if capacity < bound {
        return Err(RsiError::BufferTooSmall { needed: bound });
    }
    let mut written = 0usize;
    for (granule, offset, size) in chunks {
        let mut done = 0;
        // INCOMPLETE with 0 bytes is normal while the RMM signs (TF-RMM returns
        // after each signing step, and on `main` while it waits for EL3), so there
        // is no cap on calls that make no progress; the host controls the CPU
        // anyway, so a cap would not bound the time either.
        while done < size {
            let progress =
                attestation_token_continue(conduit, granule, offset + done, size - done)?;
            // The wrapper checked n <= size - done, so the sums stay within the
            // buffer's length. More than INIT announced is a lie even where the
            // buffer has room (found by the `rsi` fuzz target).
            let n = match progress {
                TokenProgress::Complete(n) | TokenProgress::Incomplete(n) => n,
            };
            if written + n > bound {
                return Err(RsiError::BadReply("token longer than its announced bound"));
            }
            match progress {
                TokenProgress::Complete(n) => return Ok(written + n),
                TokenProgress::Incomplete(n) => {
                    done += n as u64;
                    written += n;
                }
            }
        }
    }
    // Buffer full, token not finished: longer than the bound INIT announced.
    Err(RsiError::BadReply("token longer than its announced bound"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::RefCell;
    use std::vec::Vec;

    /// Answers from a script and records the calls.
    struct Script {
        calls: RefCell<Vec<(u32, [u64; 17])>>,
        replies: RefCell<Vec<[u64; 18]>>,
    }

    impl Script {
        fn new(replies: &[[u64; 18]]) -> Self {
            let mut r = replies.to_vec();
            r.reverse();
            Self {
                calls: RefCell::new(Vec::new()),
                replies: RefCell::new(r),
            }
        }
    }

    impl SmcccConduit for Script {
        fn call(&self, function: u32, args: [u64; 17]) -> [u64; 18] {
            self.calls.borrow_mut().push((function, args));
            self.replies.borrow_mut().pop().expect("unscripted call")
        }
    }

    fn regs(x: &[u64]) -> [u64; 18] {
        let mut r = [0; 18];
        r[..x.len()].copy_from_slice(x);
        r
    }

    #[test]
    fn return_codes_round_trip() {
        let named = [
            (0, ReturnCode::Success),
            (1, ReturnCode::ErrorInput),
            (2, ReturnCode::ErrorState),
            (3, ReturnCode::Incomplete),
            (4, ReturnCode::ErrorUnknown),
            (5, ReturnCode::ErrorDevice),
        ];
        for (raw, code) in named {
            assert_eq!(ReturnCode::from_raw(raw), code);
            assert_eq!(code.to_raw(), raw);
        }
        for raw in [6, 0x1_0000_0001, u64::MAX] {
            assert_eq!(ReturnCode::from_raw(raw), ReturnCode::Other(raw));
            assert_eq!(ReturnCode::from_raw(raw).to_raw(), raw);
        }
    }

    #[test]
    fn revisions_encode_and_reject_high_bits() {
        assert_eq!(Revision::V1_0.to_raw(), 0x1_0000);
        assert_eq!(Revision::V1_1.to_raw(), 0x1_0001);
        assert_eq!(
            Revision::from_raw(0x7fff_ffff),
            Revision::new(0x7fff, 0xffff)
        );
        assert_eq!(Revision::from_raw(0x8000_0000), None);
        assert_eq!(Revision::from_raw(1 << 40), None);
        assert_eq!(Revision::new(0x8000, 0), None);
        assert!(Revision::V1_0 < Revision::V1_1);
    }

    #[test]
    fn contiguous_chunks_cut_at_granules() {
        let c: Vec<_> = ContiguousChunks {
            cur: 0x1_0f00,
            end: 0x1_3010,
        }
        .collect();
        assert_eq!(
            c,
            [
                (0x1_0000, 0xf00, 0x100),
                (0x1_1000, 0, 0x1000),
                (0x1_2000, 0, 0x1000),
                (0x1_3000, 0, 0x10),
            ]
        );
        assert_eq!(ContiguousChunks { cur: 5, end: 5 }.count(), 0);
    }

    #[test]
    fn pack64_is_little_endian_and_zero_padded() {
        let w = pack64(&[1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(w[0], 0x0807_0605_0403_0201);
        assert_eq!(w[1], 9);
        assert_eq!(w[2..], [0; 6]);
    }

    #[test]
    fn challenge_lengths() {
        assert!(pad_challenge(&[0xaa; 31]).is_err());
        assert!(pad_challenge(&[0xaa; 65]).is_err());
        let p = pad_challenge(&[0xaa; 32]).unwrap();
        assert_eq!(p[..32], [0xaa; 32]);
        assert_eq!(p[32..], [0; 32]);
        assert_eq!(pad_challenge(&[0x55; 64]).unwrap(), [0x55; 64]);
    }

    #[test]
    fn realm_config_decodes_one_hash_byte() {
        let mut bytes = [0u8; 0x1000];
        bytes[..8].copy_from_slice(&48u64.to_le_bytes());
        // An EAC5-style 8-byte field would read 0xffff_ffff_ffff_ff01 here.
        bytes[8..16].copy_from_slice(&[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        bytes[0x200..0x240].copy_from_slice(&[0x5a; 64]);
        let c = RealmConfig::from_bytes(&bytes);
        assert_eq!(
            c.info(),
            Ok(RealmInfo {
                ipa_width: 48,
                shared_bit: 1 << 47,
                hash_algorithm: HashAlgorithm::Sha512,
                num_aux_planes: 0,
            })
        );
        assert_eq!(c.rpv, [0x5a; 64]);
    }

    #[test]
    fn realm_config_1_1_fields() {
        let mut bytes = [0u8; 0x1000];
        bytes[..8].copy_from_slice(&40u64.to_le_bytes());
        bytes[0x10..0x18].copy_from_slice(&2u64.to_le_bytes());
        bytes[0x18..0x1c].copy_from_slice(&0x9050_0004u32.to_le_bytes());
        bytes[0x20..0x28].copy_from_slice(&1u64.to_le_bytes());
        let c = RealmConfig::from_bytes(&bytes);
        assert_eq!(
            (c.num_aux_planes, c.gicv3_vtr, c.ats_plane),
            (2, 0x9050_0004, 1)
        );
        // Read under 1.1 only: reserved under 1.0.
        assert_eq!(c.info().map(|i| i.num_aux_planes), Ok(0));
        assert_eq!(c.info_for(Revision::V1_1).map(|i| i.num_aux_planes), Ok(2));
        let mut c = c;
        c.num_aux_planes = MAX_AUX_PLANES + 1;
        assert!(matches!(
            c.info_for(Revision::V1_1),
            Err(RsiError::BadReply(_))
        ));
        assert!(c.info().is_ok());
    }

    #[test]
    fn realm_config_ipa_width_bounds() {
        let mut c = RealmConfig::zeroed();
        for (w, ok) in [(0, false), (31, false), (32, true), (52, true), (53, false)] {
            c.ipa_width = w;
            assert_eq!(c.info().is_ok(), ok, "{w}");
        }
        c.ipa_width = u64::MAX;
        assert!(c.info().is_err());
        c.ipa_width = 33;
        assert_eq!(c.info().unwrap().shared_bit, 1 << 32);
    }

    #[test]
    fn version_success_outside_range_is_refused() {
        // SUCCESS but the range 1.2..=1.2 does not contain the requested 1.1.
        let s = Script::new(&[
            regs(&[0, 0x1_0002, 0x1_0002]),
            regs(&[0, 0x1_0002, 0x1_0002]),
        ]);
        assert!(matches!(negotiate(&s), Err(RsiError::BadReply(_))));
        assert_eq!(s.calls.borrow()[0].0, fid::VERSION);
        assert_eq!(s.calls.borrow()[0].1[0], 0x1_0001);
        assert!(matches!(
            version(&s, Revision::V1_0),
            Err(RsiError::BadReply(_))
        ));
    }

    #[test]
    fn continue_refuses_overlong_write_claims() {
        let s = Script::new(&[regs(&[3, 0x101])]);
        assert!(matches!(
            attestation_token_continue(&s, 0x1000, 0xf00, 0x100),
            Err(RsiError::BadReply(_))
        ));
        // Offset + size overflowing u64 is refused before any call.
        assert!(matches!(
            attestation_token_continue(&s, 0x1000, 1, u64::MAX),
            Err(RsiError::InvalidArgument(_))
        ));
        assert_eq!(s.calls.borrow().len(), 1);
    }

    #[test]
    fn host_call_defaults_are_zero() {
        let h = HostCall::new(0xbeef);
        assert_eq!(h.imm, 0xbeef);
        assert_eq!(h.gprs, [0; 31]);
        assert_eq!(HostCall::default(), HostCall::new(0));
    }
}
