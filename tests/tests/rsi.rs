//! RSI wrappers and helpers against a mock RMM that follows TF-RMM
//! `rmm-spec-v1.0-rel0` (`runtime/rsi/*.c`): its argument checks and status codes,
//! per-granule RIPAS, guest memory the RMM writes, and switches that make the RMM
//! or the host misbehave.

use std::cell::RefCell;
use std::collections::HashMap;

use plat_kvm_arm::psci::{SMCCC_NOT_SUPPORTED, SmcccConduit};
use plat_kvm_arm::rsi::{
    self, ChangeDestroyed, HashAlgorithm, Negotiated, RealmConfig, RealmInfo, ReturnCode, Revision,
    Ripas, RipasRun, RsiError, StateSetReply, TokenProgress, VersionInfo, fid,
};

const G: u64 = 4096;
const MIB: u64 = 1 << 20;

const SUCCESS: u64 = 0;
const ERROR_INPUT: u64 = 1;
const ERROR_STATE: u64 = 2;
const INCOMPLETE: u64 = 3;
const ERROR_UNKNOWN: u64 = 4;
const ERROR_DEVICE: u64 = 5;

const V1_0: u64 = 0x1_0000;
const V1_1: u64 = 0x1_0001;

/// How the mock answers `RSI_VERSION`.
#[derive(Clone, Copy)]
enum VersionMode {
    /// TF-RMM rel0: exactly 1.0, x1 = x2 = 1.0.
    Rel0,
    /// TF-RMM main: 1.0 or 1.1; x1 = the request (or 1.1 on error), x2 = 1.1.
    Main,
    /// An RMM implementing only 2.0.
    Only2_0,
    /// Fixed x0, x1, x2.
    Raw(u64, u64, u64),
}

/// How far the host takes a RIPAS change per call.
#[derive(Clone, Copy, PartialEq)]
enum Progress {
    Full,
    OneGranule,
}

/// An ongoing attestation-token operation (per REC in TF-RMM; one REC here).
struct TokenOp {
    challenge: [u8; 64],
    signing_steps_left: u32,
    copied: usize,
}

#[derive(Default)]
struct State {
    ripas: HashMap<u64, Ripas>,
    mem: HashMap<u64, Box<[u8; 4096]>>,
    calls: Vec<(u32, [u64; 17])>,
    extends: Vec<(u64, Vec<u8>)>,
    token: Option<TokenOp>,
    host_calls: Vec<(u32, [u64; 31])>,
}

type SetReply = fn(u64, u64) -> (u64, u64);

struct MockRmm {
    ipa_width: u64,
    hash: u8,
    rpv: [u8; 64],
    measurements: [[u8; 64]; 5],
    features0: u64,
    /// Every call answers SMCCC NOT_SUPPORTED (no RMM behind the conduit).
    not_a_realm: bool,
    version: VersionMode,
    progress: Progress,
    /// The host rejects every RIPAS change.
    host_rejects: bool,
    /// Replaces the host's (next, response) for IPA_STATE_SET.
    set_reply: Option<SetReply>,
    /// Replaces (x1, x2) of IPA_STATE_GET.
    get_reply: Option<(u64, u64)>,
    /// Status forced for one function, with the other registers zero.
    forced: Option<(u32, u64)>,
    token: Vec<u8>,
    token_bound: u64,
    signing_steps: u32,
    max_write: u64,
    /// Replaces x1 (bytes written) of a CONTINUE that wrote something.
    continue_lie: Option<u64>,
    st: RefCell<State>,
}

impl MockRmm {
    fn new() -> Self {
        let mut measurements = [[0; 64]; 5];
        for (i, m) in measurements.iter_mut().enumerate() {
            for (j, b) in m.iter_mut().enumerate() {
                *b = (i * 64 + j) as u8;
            }
        }
        Self {
            ipa_width: 40,
            hash: 0,
            rpv: core::array::from_fn(|i| 0xa0 ^ i as u8),
            measurements,
            features0: 0,
            not_a_realm: false,
            version: VersionMode::Rel0,
            progress: Progress::Full,
            host_rejects: false,
            set_reply: None,
            get_reply: None,
            forced: None,
            token: Vec::new(),
            token_bound: 4096,
            signing_steps: 0,
            max_write: u64::MAX,
            continue_lie: None,
            st: RefCell::default(),
        }
    }

    fn with_token(len: usize, bound: u64) -> Self {
        let mut m = Self::new();
        m.token = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
        m.token_bound = bound;
        m
    }

    fn par_size(&self) -> u64 {
        1 << (self.ipa_width - 1)
    }

    fn set_range(&self, base: u64, top: u64, r: Ripas) {
        let mut st = self.st.borrow_mut();
        for g in (base..top).step_by(G as usize) {
            st.ripas.insert(g, r);
        }
    }

    fn ripas(&self, ipa: u64) -> Ripas {
        ripas_in(&self.st.borrow(), ipa)
    }

    fn all(&self, base: u64, top: u64, r: Ripas) -> bool {
        (base..top).step_by(G as usize).all(|g| self.ripas(g) == r)
    }

    fn calls(&self) -> Vec<(u32, [u64; 17])> {
        self.st.borrow().calls.clone()
    }

    fn count(&self, function: u32) -> usize {
        self.st
            .borrow()
            .calls
            .iter()
            .filter(|c| c.0 == function)
            .count()
    }

    fn write(&self, ipa: u64, bytes: &[u8]) {
        let mut st = self.st.borrow_mut();
        for (i, &b) in bytes.iter().enumerate() {
            let a = ipa + i as u64;
            st.mem
                .entry(a & !(G - 1))
                .or_insert_with(|| Box::new([0; 4096]))[(a % G) as usize] = b;
        }
    }

    fn read(&self, ipa: u64, len: usize) -> Vec<u8> {
        let st = self.st.borrow();
        (0..len as u64)
            .map(|i| {
                let a = ipa + i;
                st.mem
                    .get(&(a & !(G - 1)))
                    .map_or(0, |g| g[(a % G) as usize])
            })
            .collect()
    }

    fn ipa_state_set(&self, st: &mut State, x: &[u64; 11]) -> [u64; 3] {
        let (base, top, r, flags) = (x[1], x[2], x[3], x[4]);
        if r > 1 || base % G != 0 || top % G != 0 || top <= base || top > self.par_size() {
            return [ERROR_INPUT, 0, 0];
        }
        let target = if r == 1 { Ripas::Ram } else { Ripas::Empty };
        if let Some(f) = self.set_reply {
            let (next, resp) = f(base, top);
            return [SUCCESS, next, resp];
        }
        // The host walks the range with RMI_RTT_SET_RIPAS, which stops at a
        // DESTROYED granule unless CHANGE_DESTROYED; it then rejects the rest.
        let mut addr = base;
        let mut host_reject = self.host_rejects;
        while addr < top && !host_reject {
            if ripas_in(st, addr) == Ripas::Destroyed && flags != 1 {
                host_reject = true;
                break;
            }
            st.ripas.insert(addr, target);
            addr += G;
            if self.progress == Progress::OneGranule {
                break;
            }
        }
        // TF-RMM complete_set_ripas: REJECT only for RAM that stopped early.
        let resp = u64::from(target == Ripas::Ram && addr != top && host_reject);
        [SUCCESS, addr, resp]
    }

    fn token_continue(&self, st: &mut State, x: &[u64; 11]) -> [u64; 3] {
        let (ipa, off, size) = (x[1], x[2], x[3]);
        // TF-RMM's order: arguments, PAR, pending INIT (signing), then the granule.
        if ipa % G != 0 || off >= G || off.checked_add(size).is_none_or(|e| e > G) {
            return [ERROR_INPUT, 0, 0];
        }
        if ipa >= self.par_size() {
            return [ERROR_INPUT, 0, 0];
        }
        let Some(op) = st.token.as_mut() else {
            return [ERROR_STATE, 0, 0];
        };
        if op.signing_steps_left > 0 {
            op.signing_steps_left -= 1;
            return [INCOMPLETE, 0, 0];
        }
        let copied = op.copied;
        if ripas_in(st, ipa) != Ripas::Ram {
            return [ERROR_INPUT, 0, 0];
        }
        if size == 0 {
            return [INCOMPLETE, 0, 0];
        }
        let n = (size.min(self.max_write) as usize).min(self.token.len() - copied);
        let granule = st.mem.entry(ipa).or_insert_with(|| Box::new([0; 4096]));
        granule[off as usize..off as usize + n].copy_from_slice(&self.token[copied..copied + n]);
        let op = st.token.as_mut().unwrap();
        op.copied += n;
        let x1 = self.continue_lie.unwrap_or(n as u64);
        if op.copied == self.token.len() {
            st.token = None;
            [SUCCESS, x1, 0]
        } else {
            [INCOMPLETE, x1, 0]
        }
    }
}

fn ripas_in(st: &State, ipa: u64) -> Ripas {
    *st.ripas.get(&(ipa & !(G - 1))).unwrap_or(&Ripas::Empty)
}

fn words_to_bytes(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

impl SmcccConduit for MockRmm {
    fn call(&self, function: u32, args: [u64; 17]) -> [u64; 18] {
        let mut st = self.st.borrow_mut();
        st.calls.push((function, args));
        // x(i) = args[i - 1]; x0 is the function ID.
        let mut x = [0u64; 11];
        x[1..].copy_from_slice(&args[..10]);
        // SMCCC 1.1: registers from x4 up that carry no result are preserved;
        // x1..x3 not written by the RMM read as 0 (TF-RMM zero-initialises them).
        let mut ret = [0u64; 18];
        ret[4..].copy_from_slice(&args[3..]);
        let mut set = |vals: &[u64]| ret[..vals.len()].copy_from_slice(vals);
        if self.not_a_realm {
            set(&[SMCCC_NOT_SUPPORTED]);
            return ret;
        }
        if let Some((f, code)) = self.forced
            && f == function
        {
            set(&[code, 0, 0]);
            return ret;
        }
        let par = self.par_size();
        match function {
            fid::VERSION => match self.version {
                VersionMode::Rel0 => {
                    set(&[u64::from(x[1] != V1_0), V1_0, V1_0]);
                }
                VersionMode::Main => {
                    if x[1] == V1_0 || x[1] == V1_1 {
                        set(&[SUCCESS, x[1], V1_1]);
                    } else {
                        set(&[ERROR_INPUT, V1_1, V1_1]);
                    }
                }
                VersionMode::Only2_0 => set(&[ERROR_INPUT, 0x2_0000, 0x2_0000]),
                VersionMode::Raw(a, b, c) => set(&[a, b, c]),
            },
            fid::FEATURES => set(&[SUCCESS, if x[1] == 0 { self.features0 } else { 0 }]),
            fid::MEASUREMENT_READ => {
                if x[1] >= 5 {
                    set(&[ERROR_INPUT]);
                } else {
                    let m = &self.measurements[x[1] as usize];
                    let mut out = [SUCCESS; 9];
                    for (w, c) in out[1..].iter_mut().zip(m.chunks_exact(8)) {
                        *w = u64::from_le_bytes(c.try_into().unwrap());
                    }
                    set(&out);
                }
            }
            fid::MEASUREMENT_EXTEND => {
                if x[1] == 0 || x[1] >= 5 || x[2] > 64 {
                    set(&[ERROR_INPUT]);
                } else {
                    let data = words_to_bytes(&x[3..11]);
                    st.extends.push((x[1], data[..x[2] as usize].to_vec()));
                    set(&[SUCCESS]);
                }
            }
            fid::ATTESTATION_TOKEN_INIT => {
                let challenge = words_to_bytes(&x[1..9]).try_into().unwrap();
                st.token = Some(TokenOp {
                    challenge,
                    signing_steps_left: self.signing_steps,
                    copied: 0,
                });
                set(&[SUCCESS, self.token_bound]);
            }
            fid::ATTESTATION_TOKEN_CONTINUE => set(&self.token_continue(&mut st, &x)),
            fid::REALM_CONFIG => {
                let ipa = x[1];
                if ipa % G != 0 || ipa >= par || ripas_in(&st, ipa) != Ripas::Ram {
                    set(&[ERROR_INPUT]);
                } else {
                    // Only the fields are written; the rest keeps its contents.
                    let g = st.mem.entry(ipa).or_insert_with(|| Box::new([0; 4096]));
                    g[..8].copy_from_slice(&self.ipa_width.to_le_bytes());
                    g[8] = self.hash;
                    g[0x200..0x240].copy_from_slice(&self.rpv);
                    set(&[SUCCESS]);
                }
            }
            fid::IPA_STATE_SET => set(&self.ipa_state_set(&mut st, &x)),
            fid::IPA_STATE_GET => {
                let (start, end) = (x[1], x[2]);
                if start % G != 0
                    || end % G != 0
                    || start >= par
                    || end == 0
                    || end > par
                    || start >= end
                {
                    set(&[ERROR_INPUT]);
                } else if let Some((a, b)) = self.get_reply {
                    set(&[SUCCESS, a, b]);
                } else {
                    // TF-RMM scans one last-level table: the run stops at 2 MiB.
                    let r = ripas_in(&st, start);
                    let table_end = (start | (2 * MIB - 1)) + 1;
                    let mut a = start + G;
                    while a < end && a < table_end && ripas_in(&st, a) == r {
                        a += G;
                    }
                    set(&[SUCCESS, a, r.to_raw()]);
                }
            }
            fid::HOST_CALL => {
                let ipa = x[1];
                if ipa % 0x100 != 0 || ipa >= par || ripas_in(&st, ipa) != Ripas::Ram {
                    set(&[ERROR_INPUT]);
                } else {
                    let g = st
                        .mem
                        .entry(ipa & !(G - 1))
                        .or_insert_with(|| Box::new([0; 4096]));
                    let o = (ipa % G) as usize;
                    let imm = u32::from_le_bytes(g[o..o + 4].try_into().unwrap());
                    let mut gprs = [0u64; 31];
                    for (i, r) in gprs.iter_mut().enumerate() {
                        let p = o + 8 + 8 * i;
                        *r = u64::from_le_bytes(g[p..p + 8].try_into().unwrap());
                        // The host answers register i with its value plus i.
                        g[p..p + 8].copy_from_slice(&(*r + i as u64).to_le_bytes());
                    }
                    st.host_calls.push((imm, gprs));
                    set(&[SUCCESS]);
                }
            }
            _ => set(&[SMCCC_NOT_SUPPORTED]),
        }
        ret
    }
}

fn invalid<T: std::fmt::Debug>(r: Result<T, RsiError>) {
    assert!(matches!(r, Err(RsiError::InvalidArgument(_))), "{r:?}");
}

// ---------------------------------------------------------------- VERSION

#[test]
fn version_rel0_negotiates_1_0() {
    // rel0 implements exactly 1.0: the 1.1 request is refused, the 1.0 one succeeds.
    let m = MockRmm::new();
    assert_eq!(
        rsi::negotiate(&m),
        Ok(Negotiated {
            revision: Revision::V1_0,
            rmm: VersionInfo {
                lower: Revision::V1_0,
                higher: Revision::V1_0
            }
        })
    );
    let calls = m.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].0, 0xc400_0190);
    assert_eq!(calls[0].1[0], 0x1_0001);
    assert_eq!(calls[1].1[0], 0x1_0000);
    assert_eq!(calls[1].1[1..], [0; 16]);
}

#[test]
fn version_main_negotiates_1_1() {
    let mut m = MockRmm::new();
    m.version = VersionMode::Main;
    let n = rsi::negotiate(&m).unwrap();
    assert_eq!(n.revision, Revision::V1_1);
    assert_eq!(n.rmm.higher, Revision::V1_1);
    assert_eq!(m.calls().len(), 1);
    assert_eq!(
        rsi::version(&m, Revision::V1_0).map(|v| v.higher),
        Ok(Revision::V1_1)
    );
}

#[test]
fn version_not_supported_means_not_a_realm() {
    let mut m = MockRmm::new();
    m.not_a_realm = true;
    assert_eq!(rsi::negotiate(&m), Err(RsiError::NotARealm));
    assert_eq!(m.calls().len(), 1);
    // The host build of the real conduit answers NOT_SUPPORTED as well.
    #[cfg(not(target_arch = "aarch64"))]
    assert_eq!(
        rsi::negotiate(&plat_kvm_arm::psci::Conduit::Smc),
        Err(RsiError::NotARealm)
    );
}

#[test]
fn version_error_input_is_incompatible_with_the_higher_revision() {
    // An RMM whose lowest revision is above 1.1: both requests refused.
    let mut m = MockRmm::new();
    m.version = VersionMode::Only2_0;
    let e = rsi::negotiate(&m).unwrap_err();
    assert_eq!(e, RsiError::Incompatible(Revision::new(2, 0).unwrap()));
    assert_eq!(m.calls().len(), 2);
    let msg = e.to_string();
    assert!(msg.contains("2.0") && !msg.contains('\n'), "{msg}");

    // rel0 refuses anything but exactly 1.0.
    let m = MockRmm::new();
    assert_eq!(
        rsi::version(&m, Revision::V1_1),
        Err(RsiError::Incompatible(Revision::V1_0))
    );
}

#[test]
fn version_out_of_spec_answers_are_errors() {
    let cases = [
        // Something that is not an RMM and leaves zeros: 1.0 is not in 0.0..=0.0.
        ((SUCCESS, 0, 0), "BadReply"),
        // lower above the request (1.1, then 1.0).
        ((SUCCESS, 0x1_0002, 0x1_0002), "BadReply"),
        // higher below lower.
        ((SUCCESS, V1_0, 0x0_0009), "BadReply"),
        // Reserved bits 63:31 set.
        ((SUCCESS, V1_0 | 1 << 40, V1_1), "BadReply"),
        ((SUCCESS, V1_0, 1 << 31 | V1_1), "BadReply"),
        ((ERROR_INPUT, V1_1, u64::MAX - 1), "BadReply"),
        ((ERROR_STATE, V1_0, V1_0), "Rmm(ErrorState)"),
        ((0xffff_ffff, V1_0, V1_0), "Rmm(Other(4294967295))"),
    ];
    for ((a, b, c), want) in cases {
        let mut m = MockRmm::new();
        m.version = VersionMode::Raw(a, b, c);
        let got = format!("{:?}", rsi::negotiate(&m).unwrap_err());
        assert!(got.starts_with(want), "{a:#x} {b:#x} {c:#x}: {got}");
    }
}

// ---------------------------------------------------------------- FEATURES

#[test]
fn features_pass_the_register_through() {
    let mut m = MockRmm::new();
    m.features0 = 0b101;
    assert_eq!(rsi::features(&m, 0), Ok(0b101));
    assert_eq!(rsi::features(&m, 7), Ok(0));
    assert_eq!(m.calls()[1].0, 0xc400_0191);
    assert_eq!(m.calls()[1].1[0], 7);
    m.forced = Some((fid::FEATURES, ERROR_UNKNOWN));
    assert_eq!(
        rsi::features(&m, 0),
        Err(RsiError::Rmm(ReturnCode::ErrorUnknown))
    );
    m.forced = Some((fid::FEATURES, 1 << 32));
    assert_eq!(
        rsi::features(&m, 0),
        Err(RsiError::Rmm(ReturnCode::Other(1 << 32)))
    );
    m.not_a_realm = true;
    assert_eq!(rsi::features(&m, 0), Err(RsiError::NotARealm));
}

// ---------------------------------------------------------------- REALM_CONFIG

const CONFIG_IPA: u64 = 0x8000_3000;

fn config_bytes(m: &MockRmm) -> RealmConfig {
    RealmConfig::from_bytes(&m.read(CONFIG_IPA, 4096).try_into().unwrap())
}

#[test]
fn realm_config_fills_the_granule() {
    let m = MockRmm::new();
    m.set_range(CONFIG_IPA, CONFIG_IPA + G, Ripas::Ram);
    // Stale bytes after the one-byte hash field: the RMM leaves them alone.
    m.write(CONFIG_IPA, &[0xee; 4096]);
    assert_eq!(rsi::realm_config(&m, CONFIG_IPA), Ok(()));
    assert_eq!(m.calls()[0].0, 0xc400_0196);
    assert_eq!(m.calls()[0].1[0], CONFIG_IPA);
    let c = config_bytes(&m);
    assert_eq!(
        c.info(),
        Ok(RealmInfo {
            ipa_width: 40,
            shared_bit: 1 << 39,
            hash_algorithm: HashAlgorithm::Sha256,
            num_aux_planes: 0,
        })
    );
    assert_eq!(c.rpv, m.rpv);
}

#[test]
fn realm_config_hash_values() {
    for (raw, want) in [
        (1, HashAlgorithm::Sha512),
        (2, HashAlgorithm::Sha384),
        (9, HashAlgorithm::Unknown(9)),
    ] {
        let mut m = MockRmm::new();
        m.hash = raw;
        m.ipa_width = 33;
        m.set_range(CONFIG_IPA, CONFIG_IPA + G, Ripas::Ram);
        rsi::realm_config(&m, CONFIG_IPA).unwrap();
        let info = config_bytes(&m).info().unwrap();
        assert_eq!(info.hash_algorithm, want);
        assert_eq!(info.shared_bit, 1 << 32);
    }
}

#[test]
fn realm_config_errors() {
    let m = MockRmm::new();
    invalid(rsi::realm_config(&m, CONFIG_IPA + 8));
    assert!(m.calls().is_empty());
    // EMPTY granule, and a granule above the protected half: RSI_ERROR_INPUT.
    assert_eq!(
        rsi::realm_config(&m, CONFIG_IPA),
        Err(RsiError::Rmm(ReturnCode::ErrorInput))
    );
    assert_eq!(
        rsi::realm_config(&m, 1 << 39),
        Err(RsiError::Rmm(ReturnCode::ErrorInput))
    );
    let mut m = MockRmm::new();
    m.set_range(CONFIG_IPA, CONFIG_IPA + G, Ripas::Ram);
    for (code, want) in [
        (INCOMPLETE, ReturnCode::Incomplete),
        (ERROR_DEVICE, ReturnCode::ErrorDevice),
        (6, ReturnCode::Other(6)),
    ] {
        m.forced = Some((fid::REALM_CONFIG, code));
        assert_eq!(rsi::realm_config(&m, CONFIG_IPA), Err(RsiError::Rmm(want)));
    }
}

#[test]
fn realm_config_with_an_impossible_ipa_width_is_refused() {
    let mut m = MockRmm::new();
    m.ipa_width = 64;
    // A 64-bit IPA space would put the mock's PAR at 2^63; the call itself works.
    m.set_range(CONFIG_IPA, CONFIG_IPA + G, Ripas::Ram);
    rsi::realm_config(&m, CONFIG_IPA).unwrap();
    assert!(matches!(
        config_bytes(&m).info(),
        Err(RsiError::BadReply(_))
    ));
}

// ---------------------------------------------------------------- IPA_STATE_SET

const RAM_BASE: u64 = 0x4000_0000;

#[test]
fn ipa_state_set_registers_and_reply() {
    let m = MockRmm::new();
    let r = rsi::ipa_state_set(
        &m,
        RAM_BASE,
        RAM_BASE + 4 * G,
        Ripas::Ram,
        ChangeDestroyed::ChangeDestroyed,
    );
    assert_eq!(
        r,
        Ok(StateSetReply {
            next: RAM_BASE + 4 * G,
            response: rsi::Response::Accept
        })
    );
    let (f, a) = m.calls()[0];
    assert_eq!(f, 0xc400_0197);
    assert_eq!(a[..5], [RAM_BASE, RAM_BASE + 4 * G, 1, 1, 0]);
}

#[test]
fn ipa_state_set_bad_arguments_make_no_call() {
    let m = MockRmm::new();
    let no = ChangeDestroyed::NoChangeDestroyed;
    invalid(rsi::ipa_state_set(
        &m,
        RAM_BASE + 1,
        RAM_BASE + G,
        Ripas::Ram,
        no,
    ));
    invalid(rsi::ipa_state_set(
        &m,
        RAM_BASE,
        RAM_BASE + G + 8,
        Ripas::Ram,
        no,
    ));
    invalid(rsi::ipa_state_set(&m, RAM_BASE, RAM_BASE, Ripas::Ram, no));
    invalid(rsi::ipa_state_set(
        &m,
        RAM_BASE + G,
        RAM_BASE,
        Ripas::Ram,
        no,
    ));
    invalid(rsi::ipa_state_set(
        &m,
        RAM_BASE,
        RAM_BASE + G,
        Ripas::Destroyed,
        no,
    ));
    invalid(rsi::ipa_state_set(
        &m,
        RAM_BASE,
        RAM_BASE + G,
        Ripas::Dev,
        no,
    ));
    assert!(m.calls().is_empty());
    // Beyond the protected half: the RMM's check.
    assert_eq!(
        rsi::ipa_state_set(&m, RAM_BASE, (1 << 39) + G, Ripas::Ram, no),
        Err(RsiError::Rmm(ReturnCode::ErrorInput))
    );
}

#[test]
fn ipa_state_set_unknown_response_is_an_error() {
    let mut m = MockRmm::new();
    m.set_reply = Some(|_, top| (top, 2));
    assert!(matches!(
        rsi::ipa_state_set(&m, 0, G, Ripas::Ram, ChangeDestroyed::NoChangeDestroyed),
        Err(RsiError::BadReply(_))
    ));
}

// ---------------------------------------------------------------- RIPAS loops

const NO: ChangeDestroyed = ChangeDestroyed::NoChangeDestroyed;

#[test]
fn ram_64_mib_in_one_call_with_full_progress() {
    let m = MockRmm::new();
    let top = RAM_BASE + 64 * MIB;
    assert_eq!(rsi::set_ripas_ram(&m, RAM_BASE..top, NO), Ok(1));
    assert!(m.all(RAM_BASE, top, Ripas::Ram));
    assert_eq!(m.ripas(RAM_BASE - G), Ripas::Empty);
    assert_eq!(m.ripas(top), Ripas::Empty);
}

#[test]
fn ram_64_mib_with_one_granule_per_call_takes_16384_calls() {
    let mut m = MockRmm::new();
    m.progress = Progress::OneGranule;
    let top = RAM_BASE + 64 * MIB;
    assert_eq!(rsi::set_ripas_ram(&m, RAM_BASE..top, NO), Ok(16384));
    assert!(m.all(RAM_BASE, top, Ripas::Ram));
    // Each call asks for the whole remainder from the previous `next`: a range
    // request, never a page-sized one.
    let calls = m.calls();
    assert_eq!(calls.len(), 16384);
    for (i, (f, a)) in calls.iter().enumerate() {
        assert_eq!(*f, fid::IPA_STATE_SET);
        assert_eq!(a[..4], [RAM_BASE + i as u64 * G, top, 1, 0], "call {i}");
    }
}

#[test]
fn ram_rejected_by_the_host() {
    let mut m = MockRmm::new();
    m.host_rejects = true;
    let r = rsi::set_ripas_ram(&m, RAM_BASE..RAM_BASE + MIB, NO);
    assert_eq!(r, Err(RsiError::Rejected { next: RAM_BASE }));
    assert_eq!(m.calls().len(), 1);
    assert!(m.all(RAM_BASE, RAM_BASE + MIB, Ripas::Empty));
}

#[test]
fn destroyed_granule_stops_no_change_destroyed() {
    let m = MockRmm::new();
    let bad = RAM_BASE + 5 * G;
    m.set_range(bad, bad + G, Ripas::Destroyed);
    let r = rsi::set_ripas_ram(&m, RAM_BASE..RAM_BASE + MIB, NO);
    assert_eq!(r, Err(RsiError::Rejected { next: bad }));
    assert!(m.all(RAM_BASE, bad, Ripas::Ram));
    assert_eq!(m.ripas(bad), Ripas::Destroyed);
    assert!(m.all(bad + G, RAM_BASE + MIB, Ripas::Empty));

    // CHANGE_DESTROYED takes it back.
    let r = rsi::set_ripas_ram(
        &m,
        RAM_BASE..RAM_BASE + MIB,
        ChangeDestroyed::ChangeDestroyed,
    );
    assert_eq!(r, Ok(1));
    assert!(m.all(RAM_BASE, RAM_BASE + MIB, Ripas::Ram));
}

#[test]
fn bogus_next_is_refused() {
    let top = RAM_BASE + MIB;
    let cases: [(SetReply, u64); 6] = [
        (|_, t| (t + G, 0), top + G),
        (|b, _| (b, 0), RAM_BASE),
        (|b, _| (b - G, 0), RAM_BASE - G),
        (|b, _| (b + 1, 0), RAM_BASE + 1),
        (|_, _| (0, 0), 0),
        (|_, _| (u64::MAX, 0), u64::MAX),
    ];
    for (reply, next) in cases {
        let mut m = MockRmm::new();
        m.set_reply = Some(reply);
        assert_eq!(
            rsi::set_ripas_ram(&m, RAM_BASE..top, NO),
            Err(RsiError::BadProgress {
                base: RAM_BASE,
                top,
                next
            })
        );
        assert_eq!(m.calls().len(), 1);
    }
}

#[test]
fn stalling_after_progress_is_refused() {
    let mut m = MockRmm::new();
    // One granule of progress, then none.
    m.set_reply = Some(|b, _| if b == RAM_BASE { (b + G, 0) } else { (b, 0) });
    assert_eq!(
        rsi::set_ripas_ram(&m, RAM_BASE..RAM_BASE + MIB, NO),
        Err(RsiError::BadProgress {
            base: RAM_BASE + G,
            top: RAM_BASE + MIB,
            next: RAM_BASE + G
        })
    );
    assert_eq!(m.calls().len(), 2);
}

#[test]
fn ripas_loop_bad_ranges_make_no_call() {
    let m = MockRmm::new();
    invalid(rsi::set_ripas_ram(&m, RAM_BASE + 1..RAM_BASE + G, NO));
    invalid(rsi::set_ripas_ram(&m, RAM_BASE..RAM_BASE + G - 1, NO));
    invalid(rsi::set_ripas_ram(&m, RAM_BASE..RAM_BASE, NO));
    // A reversed range (spelled out: clippy rightly flags `a..b` with a > b).
    let reversed = std::ops::Range {
        start: RAM_BASE + G,
        end: RAM_BASE,
    };
    invalid(rsi::set_ripas_empty(&m, reversed, NO));
    assert!(m.calls().is_empty());
}

#[test]
fn ripas_loop_errors_propagate() {
    let mut m = MockRmm::new();
    assert_eq!(
        rsi::set_ripas_ram(&m, RAM_BASE..(1 << 39) + G, NO),
        Err(RsiError::Rmm(ReturnCode::ErrorInput))
    );
    m.forced = Some((fid::IPA_STATE_SET, ERROR_UNKNOWN));
    assert_eq!(
        rsi::set_ripas_ram(&m, RAM_BASE..RAM_BASE + G, NO),
        Err(RsiError::Rmm(ReturnCode::ErrorUnknown))
    );
    m.forced = None;
    m.not_a_realm = true;
    assert_eq!(
        rsi::set_ripas_empty(&m, RAM_BASE..RAM_BASE + G, NO),
        Err(RsiError::NotARealm)
    );
}

#[test]
fn share_and_take_back() {
    let mut m = MockRmm::new();
    let (b, t) = (RAM_BASE, RAM_BASE + 16 * G);
    m.set_range(b, t, Ripas::Ram);
    assert_eq!(
        rsi::set_ripas_empty(&m, b..t, ChangeDestroyed::ChangeDestroyed),
        Ok(1)
    );
    assert!(m.all(b, t, Ripas::Empty));
    assert_eq!(m.calls()[0].1[2], 0);
    m.progress = Progress::OneGranule;
    assert_eq!(
        rsi::set_ripas_ram(&m, b..t, ChangeDestroyed::ChangeDestroyed),
        Ok(16)
    );
    assert_eq!(
        rsi::set_ripas_empty(&m, b..t, ChangeDestroyed::ChangeDestroyed),
        Ok(16)
    );
    assert!(m.all(b, t, Ripas::Empty));
}

#[test]
fn refused_sharing_surfaces_as_no_progress() {
    let mut m = MockRmm::new();
    m.host_rejects = true;
    m.set_range(RAM_BASE, RAM_BASE + G, Ripas::Ram);
    // TF-RMM reports ACCEPT with next = base when the host refuses EMPTY.
    assert_eq!(
        rsi::set_ripas_empty(&m, RAM_BASE..RAM_BASE + G, NO),
        Err(RsiError::BadProgress {
            base: RAM_BASE,
            top: RAM_BASE + G,
            next: RAM_BASE
        })
    );
    assert_eq!(m.ripas(RAM_BASE), Ripas::Ram);
}

// ---------------------------------------------------------------- IPA_STATE_GET

#[test]
fn ipa_state_get_walks_runs() {
    let m = MockRmm::new();
    let b = RAM_BASE;
    m.set_range(b, b + 4 * G, Ripas::Ram);
    m.set_range(b + 8 * G, b + 9 * G, Ripas::Destroyed);
    let run = |base, end| rsi::ipa_state_get(&m, base, end);
    let e = b + 16 * G;
    assert_eq!(
        run(b, e),
        Ok(RipasRun {
            top: b + 4 * G,
            ripas: Ripas::Ram
        })
    );
    assert_eq!(
        run(b + 4 * G, e),
        Ok(RipasRun {
            top: b + 8 * G,
            ripas: Ripas::Empty
        })
    );
    assert_eq!(
        run(b + 8 * G, e),
        Ok(RipasRun {
            top: b + 9 * G,
            ripas: Ripas::Destroyed
        })
    );
    assert_eq!(
        run(b + 9 * G, e),
        Ok(RipasRun {
            top: e,
            ripas: Ripas::Empty
        })
    );
    // A run shorter than asked (end of the RMM's table) is fine.
    assert_eq!(
        run(b + 16 * G, b + 4 * MIB),
        Ok(RipasRun {
            top: b + 2 * MIB,
            ripas: Ripas::Empty
        })
    );
    assert_eq!(
        m.calls()[0],
        (0xc400_0198, {
            let mut a = [0; 17];
            a[0] = b;
            a[1] = e;
            a
        })
    );
}

#[test]
fn ipa_state_get_errors() {
    let m = MockRmm::new();
    invalid(rsi::ipa_state_get(&m, RAM_BASE + 4, RAM_BASE + G));
    invalid(rsi::ipa_state_get(&m, RAM_BASE, RAM_BASE + 4));
    invalid(rsi::ipa_state_get(&m, RAM_BASE, RAM_BASE));
    assert!(m.calls().is_empty());
    assert_eq!(
        rsi::ipa_state_get(&m, (1 << 39) - G, (1 << 39) + G),
        Err(RsiError::Rmm(ReturnCode::ErrorInput))
    );
    let (b, e) = (RAM_BASE, RAM_BASE + 4 * G);
    for lie in [
        (e + G, 1),
        (b, 1),
        (b - G, 1),
        (b + 1, 1),
        (b + G, 4),
        (b + G, u64::MAX),
    ] {
        let mut m = MockRmm::new();
        m.get_reply = Some(lie);
        assert!(
            matches!(rsi::ipa_state_get(&m, b, e), Err(RsiError::BadReply(_))),
            "{lie:x?}"
        );
    }
}

// ---------------------------------------------------------------- measurements

#[test]
fn measurement_read_all_slots() {
    let m = MockRmm::new();
    for i in 0..=4 {
        assert_eq!(rsi::measurement_read(&m, i), Ok(m.measurements[i as usize]));
    }
    assert!(m.calls().iter().all(|c| c.0 == 0xc400_0192));
    invalid(rsi::measurement_read(&m, 5));
    invalid(rsi::measurement_read(&m, u64::MAX));
    assert_eq!(m.calls().len(), 5);
    let mut m = MockRmm::new();
    m.forced = Some((fid::MEASUREMENT_READ, ERROR_DEVICE));
    assert_eq!(
        rsi::measurement_read(&m, 0),
        Err(RsiError::Rmm(ReturnCode::ErrorDevice))
    );
}

#[test]
fn measurement_extend_passes_size_and_data() {
    let m = MockRmm::new();
    let data: Vec<u8> = (1..=64).collect();
    for (idx, len) in [(1, 0), (2, 1), (3, 33), (4, 64)] {
        assert_eq!(rsi::measurement_extend(&m, idx, &data[..len]), Ok(()));
    }
    let ext = m.st.borrow().extends.clone();
    assert_eq!(
        ext,
        [
            (1, vec![]),
            (2, data[..1].to_vec()),
            (3, data[..33].to_vec()),
            (4, data.clone())
        ]
    );
    // Padding registers are zero.
    let (f, a) = m.calls()[2];
    assert_eq!(f, 0xc400_0193);
    assert_eq!(a[1], 33);
    assert_eq!(a[2], u64::from_le_bytes(data[..8].try_into().unwrap()));
    assert_eq!(a[6], 33);
    assert_eq!(a[7..10], [0, 0, 0]);
}

#[test]
fn measurement_extend_bad_arguments_make_no_call() {
    let m = MockRmm::new();
    invalid(rsi::measurement_extend(&m, 0, &[1]));
    invalid(rsi::measurement_extend(&m, 5, &[1]));
    invalid(rsi::measurement_extend(&m, 1, &[0; 65]));
    assert!(m.calls().is_empty());
    let mut m = MockRmm::new();
    m.forced = Some((fid::MEASUREMENT_EXTEND, ERROR_INPUT));
    assert_eq!(
        rsi::measurement_extend(&m, 1, &[1]),
        Err(RsiError::Rmm(ReturnCode::ErrorInput))
    );
}

// ---------------------------------------------------------------- attestation

const TOKEN_IPA: u64 = 0x5000_0000;

fn continues(m: &MockRmm) -> Vec<[u64; 3]> {
    m.calls()
        .iter()
        .filter(|c| c.0 == fid::ATTESTATION_TOKEN_CONTINUE)
        .map(|c| [c.1[0], c.1[1], c.1[2]])
        .collect()
}

#[test]
fn token_init_passes_the_challenge_and_returns_the_bound() {
    let m = MockRmm::with_token(100, 0x1234);
    let challenge: [u8; 64] = core::array::from_fn(|i| i as u8 + 1);
    assert_eq!(rsi::attestation_token_init(&m, &challenge), Ok(0x1234));
    let (f, a) = m.calls()[0];
    assert_eq!(f, 0xc400_0194);
    assert_eq!(a[0], 0x0807_0605_0403_0201);
    assert_eq!(
        a[7],
        u64::from_le_bytes(challenge[56..].try_into().unwrap())
    );
    assert_eq!(m.st.borrow().token.as_ref().unwrap().challenge, challenge);
}

#[test]
fn token_size_query_pads_the_challenge() {
    let m = MockRmm::with_token(100, 8192);
    assert_eq!(rsi::attestation_token_size(&m, &[0xcc; 32]), Ok(8192));
    let mut want = [0; 64];
    want[..32].fill(0xcc);
    assert_eq!(m.st.borrow().token.as_ref().unwrap().challenge, want);
    assert_eq!(m.calls().len(), 1);
}

#[test]
fn token_across_granules_with_incomplete() {
    let mut m = MockRmm::with_token(10_000, 3 * G);
    m.signing_steps = 3;
    m.max_write = 1000;
    m.set_range(TOKEN_IPA, TOKEN_IPA + 3 * G, Ripas::Ram);
    let mut buf = vec![0u8; 3 * G as usize];
    let r = rsi::attestation_token(&m, &[0x11; 64], &mut buf, TOKEN_IPA);
    assert_eq!(r, Ok(10_000));
    assert_eq!(m.read(TOKEN_IPA, 10_000), m.token);
    // 3 signing steps (INCOMPLETE, nothing written), then at most 1000 bytes per
    // call: 5 + 5 calls for the full granules and 2 for the last 1808 bytes.
    let c = continues(&m);
    assert_eq!(c.len(), 3 + 5 + 5 + 2);
    assert_eq!(c[..4], [[TOKEN_IPA, 0, G]; 4]);
    assert_eq!(
        c[4..8],
        [
            [TOKEN_IPA, 1000, G - 1000],
            [TOKEN_IPA, 2000, G - 2000],
            [TOKEN_IPA, 3000, G - 3000],
            [TOKEN_IPA, 4000, G - 4000],
        ]
    );
    assert_eq!(c[8], [TOKEN_IPA + G, 0, G]);
    assert_eq!(c[13], [TOKEN_IPA + 2 * G, 0, G]);
    assert_eq!(c[14], [TOKEN_IPA + 2 * G, 1000, G - 1000]);
    assert_eq!(m.count(fid::ATTESTATION_TOKEN_INIT), 1);
}

#[test]
fn token_into_an_unaligned_buffer() {
    let m = MockRmm::with_token(5000, 8192);
    m.set_range(TOKEN_IPA, TOKEN_IPA + 3 * G, Ripas::Ram);
    let ipa = TOKEN_IPA + 0x123;
    let mut buf = vec![0u8; 8192];
    assert_eq!(
        rsi::attestation_token(&m, &[7; 48], &mut buf, ipa),
        Ok(5000)
    );
    assert_eq!(m.read(ipa, 5000), m.token);
    assert_eq!(m.read(TOKEN_IPA, 0x123), vec![0; 0x123]);
    assert_eq!(
        continues(&m),
        [[TOKEN_IPA, 0x123, G - 0x123], [TOKEN_IPA + G, 0, G]]
    );
}

#[test]
fn token_that_exactly_fills_the_buffer() {
    let m = MockRmm::with_token(2 * G as usize, 2 * G);
    m.set_range(TOKEN_IPA, TOKEN_IPA + 2 * G, Ripas::Ram);
    let mut buf = vec![0u8; 2 * G as usize];
    assert_eq!(
        rsi::attestation_token(&m, &[7; 64], &mut buf, TOKEN_IPA),
        Ok(2 * G as usize)
    );
    assert_eq!(m.read(TOKEN_IPA, 2 * G as usize), m.token);
}

#[test]
fn token_into_scattered_granules() {
    let m = MockRmm::with_token(9000, 3 * G);
    let granules = [TOKEN_IPA + 3 * G, TOKEN_IPA + G, TOKEN_IPA + 8 * G];
    for g in granules {
        m.set_range(g, g + G, Ripas::Ram);
    }
    assert_eq!(
        rsi::attestation_token_granules(&m, &[1; 40], &granules),
        Ok(9000)
    );
    let mut got = Vec::new();
    for g in granules {
        got.extend(m.read(g, G as usize));
    }
    assert_eq!(got[..9000], m.token[..]);
}

#[test]
fn token_buffer_too_small_fails_before_continue() {
    let m = MockRmm::with_token(3000, 8192);
    m.set_range(TOKEN_IPA, TOKEN_IPA + 2 * G, Ripas::Ram);
    let mut buf = vec![0u8; 8191];
    let r = rsi::attestation_token(&m, &[1; 64], &mut buf, TOKEN_IPA);
    assert_eq!(r, Err(RsiError::BufferTooSmall { needed: 8192 }));
    assert_eq!(m.calls().len(), 1);
    assert_eq!(m.count(fid::ATTESTATION_TOKEN_INIT), 1);
    assert_eq!(
        rsi::attestation_token_granules(&m, &[1; 64], &[TOKEN_IPA]),
        Err(RsiError::BufferTooSmall { needed: 8192 })
    );
    assert_eq!(m.count(fid::ATTESTATION_TOKEN_CONTINUE), 0);
}

#[test]
fn bad_challenges_are_refused_before_any_call() {
    let m = MockRmm::with_token(100, G);
    m.set_range(TOKEN_IPA, TOKEN_IPA + G, Ripas::Ram);
    let mut buf = vec![0u8; G as usize];
    for len in [0, 1, 16, 31, 65, 128] {
        let ch = vec![0x42; len];
        invalid(rsi::attestation_token(&m, &ch, &mut buf, TOKEN_IPA));
        invalid(rsi::attestation_token_granules(&m, &ch, &[TOKEN_IPA]));
        invalid(rsi::attestation_token_size(&m, &ch));
    }
    assert!(m.calls().is_empty());
}

#[test]
fn token_bad_buffers_are_refused_before_any_call() {
    let m = MockRmm::with_token(100, G);
    invalid(rsi::attestation_token_granules(
        &m,
        &[1; 64],
        &[TOKEN_IPA, TOKEN_IPA + 8],
    ));
    let mut buf = vec![0u8; 100];
    invalid(rsi::attestation_token(
        &m,
        &[1; 64],
        &mut buf,
        u64::MAX - 10,
    ));
    assert!(m.calls().is_empty());
}

#[test]
fn token_continue_raw_checks_and_states() {
    let m = MockRmm::with_token(100, G);
    invalid(rsi::attestation_token_continue(&m, TOKEN_IPA + 8, 0, 8));
    invalid(rsi::attestation_token_continue(&m, TOKEN_IPA, G, 0));
    invalid(rsi::attestation_token_continue(&m, TOKEN_IPA, 8, G - 7));
    assert!(m.calls().is_empty());
    // No INIT pending.
    assert_eq!(
        rsi::attestation_token_continue(&m, TOKEN_IPA, 0, G),
        Err(RsiError::Rmm(ReturnCode::ErrorState))
    );
    m.set_range(TOKEN_IPA, TOKEN_IPA + G, Ripas::Ram);
    rsi::attestation_token_init(&m, &[0; 64]).unwrap();
    // An empty chunk is INCOMPLETE with nothing written, as in TF-RMM.
    assert_eq!(
        rsi::attestation_token_continue(&m, TOKEN_IPA, 0, 0),
        Ok(TokenProgress::Incomplete(0))
    );
    assert_eq!(
        rsi::attestation_token_continue(&m, TOKEN_IPA, 0, 60),
        Ok(TokenProgress::Incomplete(60))
    );
    assert_eq!(
        rsi::attestation_token_continue(&m, TOKEN_IPA, 60, G - 60),
        Ok(TokenProgress::Complete(40))
    );
    // Complete: the next CONTINUE needs a new INIT.
    assert_eq!(
        rsi::attestation_token_continue(&m, TOKEN_IPA, 0, G),
        Err(RsiError::Rmm(ReturnCode::ErrorState))
    );
}

#[test]
fn token_into_empty_memory_is_refused_by_the_rmm() {
    let m = MockRmm::with_token(100, G);
    let mut buf = vec![0u8; G as usize];
    assert_eq!(
        rsi::attestation_token(&m, &[1; 64], &mut buf, TOKEN_IPA),
        Err(RsiError::Rmm(ReturnCode::ErrorInput))
    );
}

#[test]
fn lying_rmm_token_answers_are_errors() {
    // Claims more bytes than the chunk it was given.
    let mut m = MockRmm::with_token(5000, 2 * G);
    m.continue_lie = Some(G + 1);
    m.set_range(TOKEN_IPA, TOKEN_IPA + 2 * G, Ripas::Ram);
    let mut buf = vec![0u8; 2 * G as usize];
    assert!(matches!(
        rsi::attestation_token(&m, &[1; 64], &mut buf, TOKEN_IPA),
        Err(RsiError::BadReply(_))
    ));

    // A token longer than the bound INIT announced: the buffer runs out.
    let m = MockRmm::with_token(5000, G);
    m.set_range(TOKEN_IPA, TOKEN_IPA + 2 * G, Ripas::Ram);
    let mut buf = vec![0u8; G as usize];
    assert!(matches!(
        rsi::attestation_token(&m, &[1; 64], &mut buf, TOKEN_IPA),
        Err(RsiError::BadReply(_))
    ));
    assert_eq!(continues(&m), [[TOKEN_IPA, 0, G]]);

    // Longer than the bound although the buffer has room (the `rsi` fuzz target's
    // finding: INIT announced 0 bytes, CONTINUE then wrote 1 and succeeded).
    for (len, bound) in [(100, 50), (1, 0), (G as usize + 10, G)] {
        let m = MockRmm::with_token(len, bound);
        m.set_range(TOKEN_IPA, TOKEN_IPA + 4 * G, Ripas::Ram);
        let mut buf = vec![0u8; 4 * G as usize];
        assert_eq!(
            rsi::attestation_token(&m, &[1; 64], &mut buf, TOKEN_IPA),
            Err(RsiError::BadReply("token longer than its announced bound")),
            "token {len} bytes, bound {bound}"
        );
    }
}

#[test]
fn token_errors_from_init() {
    let mut m = MockRmm::with_token(100, G);
    m.forced = Some((fid::ATTESTATION_TOKEN_INIT, ERROR_UNKNOWN));
    let mut buf = vec![0u8; G as usize];
    assert_eq!(
        rsi::attestation_token(&m, &[1; 64], &mut buf, TOKEN_IPA),
        Err(RsiError::Rmm(ReturnCode::ErrorUnknown))
    );
    m.forced = None;
    m.not_a_realm = true;
    assert_eq!(
        rsi::attestation_token_size(&m, &[1; 64]),
        Err(RsiError::NotARealm)
    );
}

// ---------------------------------------------------------------- HOST_CALL

#[test]
fn host_call_round_trip() {
    let m = MockRmm::new();
    let ipa = RAM_BASE + 0x300;
    m.set_range(RAM_BASE, RAM_BASE + G, Ripas::Ram);
    // The layout of rsi::HostCall: imm (16 bits, TF-RMM reads 32) @0, gprs @8.
    let mut bytes = vec![0u8; 0x100];
    bytes[..2].copy_from_slice(&0xabcd_u16.to_le_bytes());
    for i in 0..31 {
        bytes[8 + 8 * i..16 + 8 * i].copy_from_slice(&(1000 + i as u64).to_le_bytes());
    }
    m.write(ipa, &bytes);
    assert_eq!(rsi::host_call(&m, ipa), Ok(()));
    assert_eq!(m.calls()[0].0, 0xc400_0199);
    assert_eq!(m.calls()[0].1[0], ipa);
    let hc = m.st.borrow().host_calls.clone();
    assert_eq!(hc.len(), 1);
    assert_eq!(hc[0].0, 0xabcd);
    assert_eq!(hc[0].1, core::array::from_fn(|i| 1000 + i as u64));
    let back = m.read(ipa + 8 + 8 * 30, 8);
    assert_eq!(u64::from_le_bytes(back.try_into().unwrap()), 1030 + 30);
}

#[test]
fn host_call_errors() {
    let m = MockRmm::new();
    invalid(rsi::host_call(&m, RAM_BASE + 0x80));
    invalid(rsi::host_call(&m, RAM_BASE + 8));
    assert!(m.calls().is_empty());
    assert_eq!(
        rsi::host_call(&m, RAM_BASE),
        Err(RsiError::Rmm(ReturnCode::ErrorInput))
    );
    assert_eq!(
        rsi::host_call(&m, 1 << 39),
        Err(RsiError::Rmm(ReturnCode::ErrorInput))
    );
}

#[test]
fn error_messages_are_single_lines_with_the_facts() {
    let e = RsiError::BadProgress {
        base: 0x4000_0000,
        top: 0x4400_0000,
        next: 0x4400_1000,
    };
    let s = e.to_string();
    assert!(s.contains("0x4400_1000") || s.contains("0x44001000"), "{s}");
    for e in [
        RsiError::NotARealm,
        RsiError::Rejected { next: 0x1000 },
        RsiError::BufferTooSmall { needed: 8192 },
        RsiError::Rmm(ReturnCode::Other(9)),
    ] {
        let s = e.to_string();
        assert!(!s.is_empty() && !s.contains('\n'), "{s}");
    }
    assert!(
        RsiError::BufferTooSmall { needed: 8192 }
            .to_string()
            .contains("8192")
    );
}
