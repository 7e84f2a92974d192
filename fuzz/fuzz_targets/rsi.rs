//! The RSI layer (`rsi.rs`) against a hostile RMM: a mock `SmcccConduit` whose
//! answers (status, versions, `next` addresses, RIPAS, token sizes) come from the
//! fuzz input, biased towards plausible and boundary values, and a sequence of
//! RSI operations also drawn from the input.
//!
//! Asserts, beyond "no panic" and "terminates" (the mock answers
//! RSI_ERROR_UNKNOWN after `MAX_CALLS` calls, so a loop that does not stop on
//! errors would hang and be reported as a timeout):
//! - `InvalidArgument` means no call was made;
//! - `negotiate` succeeds only on SUCCESS with the chosen revision (1.1, else
//!   1.0 on a second request) inside [lower, higher];
//!   `NotARealm` only on SMCCC NOT_SUPPORTED;
//! - a successful RIPAS loop made one call per reply, each starting where the
//!   last one stopped, and covered exactly the range; `Rejected` / `BadProgress`
//!   carry what the RMM really answered;
//! - `ipa_state_get` runs stay in (base, end];
//! - a token is no longer than the buffer, the sum of the CONTINUE byte counts,
//!   and the bound INIT announced; `BufferTooSmall` carries that bound;
//! - `RealmConfig::from_bytes` decodes the granule and `info()` accepts exactly
//!   IPA widths 32..=52, with the shared bit 1 << (width - 1).
#![no_main]

use std::cell::{Cell, RefCell};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use plat_kvm_arm::psci::{SMCCC_NOT_SUPPORTED, SmcccConduit};
use plat_kvm_arm::rsi::{
    self, ChangeDestroyed, HashAlgorithm, RealmConfig, Revision, Ripas, RsiError, fid,
};

const G: u64 = rsi::GRANULE_SIZE;
/// Calls after which the mock only answers RSI_ERROR_UNKNOWN.
const MAX_CALLS: usize = 256;
const ERROR_UNKNOWN: u64 = 4;

/// One call: function, arguments, reply.
type Call = (u32, [u64; 17], [u64; 18]);

/// A mock RMM answering from the fuzz input.
struct Hostile<'a> {
    u: RefCell<Unstructured<'a>>,
    log: RefCell<Vec<Call>>,
    calls: Cell<usize>,
}

/// Picks one of `n` cases (0 when the input is exhausted).
fn pick(u: &mut Unstructured<'_>, n: u8) -> u8 {
    u.int_in_range(0..=n - 1).unwrap_or(0)
}

fn raw(u: &mut Unstructured<'_>) -> u64 {
    u.arbitrary().unwrap_or(0)
}

/// A `next`/`top` answer for a request covering `[base, top)`.
fn progress(u: &mut Unstructured<'_>, base: u64, top: u64) -> u64 {
    match pick(u, 8) {
        0 | 1 => top,
        2 => base.wrapping_add(u64::from(u.arbitrary::<u16>().unwrap_or(1)) * G),
        3 => base,
        4 => base.wrapping_sub(G),
        5 => top.wrapping_add(G),
        6 => base.wrapping_add(G / 2),
        _ => raw(u),
    }
}

impl Hostile<'_> {
    fn reply(&self, f: u32, a: &[u64; 17]) -> [u64; 18] {
        let mut r = [0u64; 18];
        let u = &mut *self.u.borrow_mut();
        r[0] = match pick(u, 10) {
            0..=4 => 0,
            5 => 1,
            6 => 2,
            7 => 3,
            8 => SMCCC_NOT_SUPPORTED,
            _ => raw(u),
        };
        let rev = |u: &mut Unstructured<'_>| match pick(u, 5) {
            0 | 1 => 0x1_0000,
            2 => 0x1_0001,
            3 => 0x2_0000,
            _ => raw(u),
        };
        match f {
            fid::VERSION => {
                r[1] = rev(u);
                r[2] = rev(u);
            }
            fid::IPA_STATE_SET | fid::IPA_STATE_GET => {
                r[1] = progress(u, a[0], a[1]);
                r[2] = match pick(u, 6) {
                    0..=2 => u64::from(f == fid::IPA_STATE_GET),
                    3 => 1,
                    4 => 2,
                    _ => raw(u),
                };
            }
            fid::ATTESTATION_TOKEN_INIT => {
                r[1] = match pick(u, 4) {
                    0 => u64::from(u.arbitrary::<u16>().unwrap_or(0)),
                    1 => u64::from(pick(u, 4)) * G,
                    2 => 0,
                    _ => raw(u),
                };
            }
            fid::ATTESTATION_TOKEN_CONTINUE => {
                r[1] = match pick(u, 5) {
                    0 => a[2],
                    1 => 0,
                    2 => a[2] / 2,
                    3 => a[2] + 1,
                    _ => raw(u),
                };
            }
            _ => r[1..9].iter_mut().for_each(|x| *x = raw(u)),
        }
        r
    }
}

impl SmcccConduit for Hostile<'_> {
    fn call(&self, function: u32, args: [u64; 17]) -> [u64; 18] {
        let n = self.calls.get() + 1;
        self.calls.set(n);
        let r = if n > MAX_CALLS {
            let mut r = [0; 18];
            r[0] = ERROR_UNKNOWN;
            r
        } else {
            self.reply(function, &args)
        };
        self.log.borrow_mut().push((function, args, r));
        r
    }
}

/// An IPA: aligned granules, or anything.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Ipa {
    Granule(u32),
    Raw(u64),
}

impl Ipa {
    fn get(self) -> u64 {
        match self {
            Ipa::Granule(p) => u64::from(p) * G,
            Ipa::Raw(v) => v,
        }
    }
}

/// A `RealmConfig` granule: IPA width (32 + n % 21, or raw), hash byte, fill.
#[derive(Arbitrary, Debug)]
struct Granule {
    width: Result<u8, u64>,
    hash: u8,
    fill: u8,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Negotiate,
    Features(u64),
    RealmConfig(Ipa, Granule),
    SetRipas {
        start: Ipa,
        pages: u16,
        ram: bool,
        change_destroyed: bool,
    },
    StateGet(Ipa, u16),
    MeasurementRead(u8),
    MeasurementExtend(u8, Vec<u8>),
    TokenSize(u8),
    Token {
        challenge: u8,
        len: u16,
        ipa: Ipa,
    },
    TokenGranules(u8, Vec<Ipa>),
    HostCall(Ipa),
}

fn check_config(g: &Granule) {
    let mut bytes = [g.fill; 0x1000];
    let width = match g.width {
        Ok(n) => 32 + u64::from(n % 21),
        Err(w) => w,
    };
    bytes[..8].copy_from_slice(&width.to_le_bytes());
    bytes[8] = g.hash;
    let c = RealmConfig::from_bytes(&bytes);
    assert_eq!((c.ipa_width, c.hash_algorithm), (width, g.hash));
    assert_eq!(c.rpv, [g.fill; 64]);
    // Under 1.1 the fill byte is also the auxiliary plane count (8 copies): more
    // than 3 planes is refused, the rest decodes as under 1.0 plus the count.
    let planes = u64::from_le_bytes([g.fill; 8]);
    match c.info_for(Revision::V1_1) {
        Ok(i) => {
            assert!(planes <= 3 && (32..=52).contains(&width));
            assert_eq!(i.num_aux_planes, planes);
        }
        Err(e) => {
            assert!(planes > 3 || !(32..=52).contains(&width), "{e:?}");
            assert!(matches!(e, RsiError::BadReply(_)));
        }
    }
    match c.info() {
        Ok(i) => {
            assert!((32..=52).contains(&width), "accepted IPA width {width}");
            assert_eq!(i.num_aux_planes, 0);
            assert_eq!(u64::from(i.ipa_width), width);
            assert_eq!(i.shared_bit, 1 << (width - 1));
            assert_eq!(i.hash_algorithm, HashAlgorithm::from_raw(g.hash));
        }
        Err(e) => {
            assert!(!(32..=52).contains(&width), "refused IPA width {width}");
            assert!(matches!(e, RsiError::BadReply(_)));
            assert!(c.info_for(Revision::V1_1).is_err());
        }
    }
}

/// Runs one operation; returns its error (if any) and checks its results against
/// `log`, the calls it made.
fn run(m: &Hostile<'_>, op: &Op) -> Option<RsiError> {
    let first = m.log.borrow().len();
    let log = || m.log.borrow()[first..].to_vec();
    let challenge = |n: u8| vec![0x5a; usize::from(n % 72)];
    let err = match op {
        Op::Negotiate => match rsi::negotiate(m) {
            Ok(n) => {
                // Success only on a SUCCESS reply whose range holds the revision
                // chosen: 1.1 on the first request, else 1.0 on the second.
                let calls = log();
                assert_eq!(calls.last().map(|c| c.2[0]), Some(0));
                assert!(n.rmm.lower <= n.revision && n.revision <= n.rmm.higher);
                assert_eq!(n.revision == Revision::V1_1, calls.len() == 1);
                None
            }
            Err(e) => Some(e),
        },
        Op::Features(i) => rsi::features(m, *i)
            .map(|v| assert_eq!(v, log()[0].2[1]))
            .err(),
        Op::RealmConfig(ipa, g) => {
            check_config(g);
            rsi::realm_config(m, ipa.get()).err()
        }
        Op::SetRipas {
            start,
            pages,
            ram,
            change_destroyed,
        } => {
            let (s, t) = (start.get(), start.get().wrapping_add(u64::from(*pages) * G));
            let flags = if *change_destroyed {
                ChangeDestroyed::ChangeDestroyed
            } else {
                ChangeDestroyed::NoChangeDestroyed
            };
            let ripas = if *ram { Ripas::Ram } else { Ripas::Empty };
            let res = if *ram {
                rsi::set_ripas_ram(m, s..t, flags)
            } else {
                rsi::set_ripas_empty(m, s..t, flags)
            };
            let log = log();
            match res {
                Ok(n) => {
                    // One call per reply, chained, ending exactly at the top.
                    assert_eq!(n, log.len());
                    let mut at = s;
                    for (f, a, r) in &log {
                        assert_eq!((*f, a[0], a[1]), (fid::IPA_STATE_SET, at, t));
                        assert_eq!((a[2], a[3]), (ripas.to_raw(), flags.to_raw()));
                        assert_eq!((r[0], r[2]), (0, 0));
                        assert!(r[1] > at && r[1] <= t && r[1] % G == 0);
                        at = r[1];
                    }
                    assert_eq!(at, t, "RIPAS loop stopped short");
                    None
                }
                Err(e) => {
                    let last = log.last().map(|c| c.2);
                    match e {
                        RsiError::Rejected { next } => {
                            assert_eq!(last.map(|r| (r[1], r[2])), Some((next, 1)));
                        }
                        RsiError::BadProgress { base, top, next } => {
                            assert_eq!(top, t);
                            assert_eq!(last.map(|r| r[1]), Some(next));
                            assert!(next <= base || next > top || next % G != 0);
                        }
                        _ => {}
                    }
                    Some(e)
                }
            }
        }
        Op::StateGet(start, pages) => {
            let (s, e) = (start.get(), start.get().wrapping_add(u64::from(*pages) * G));
            match rsi::ipa_state_get(m, s, e) {
                Ok(run) => {
                    assert!(s < run.top && run.top <= e && run.top % G == 0);
                    assert_eq!(run.ripas.to_raw(), log()[0].2[2]);
                    None
                }
                Err(e) => Some(e),
            }
        }
        Op::MeasurementRead(i) => match rsi::measurement_read(m, u64::from(*i % 8)) {
            Ok(v) => {
                let r = log()[0].2;
                for (k, w) in v.chunks_exact(8).enumerate() {
                    assert_eq!(u64::from_le_bytes(w.try_into().unwrap()), r[1 + k]);
                }
                None
            }
            Err(e) => Some(e),
        },
        Op::MeasurementExtend(i, data) => {
            let data = &data[..data.len().min(80)];
            rsi::measurement_extend(m, u64::from(*i % 8), data).err()
        }
        Op::TokenSize(c) => match rsi::attestation_token_size(m, &challenge(*c)) {
            Ok(n) => {
                assert_eq!(n as u64, log()[0].2[1]);
                None
            }
            Err(e) => Some(e),
        },
        Op::Token {
            challenge: c,
            len,
            ipa,
        } => {
            let mut buf = vec![0u8; usize::from(*len % 0x3000)];
            let res = rsi::attestation_token(m, &challenge(*c), &mut buf, ipa.get());
            check_token(&log(), res, buf.len())
        }
        Op::TokenGranules(c, gs) => {
            let gs: Vec<u64> = gs.iter().take(4).map(|g| g.get()).collect();
            let res = rsi::attestation_token_granules(m, &challenge(*c), &gs);
            check_token(&log(), res, gs.len() * G as usize)
        }
        Op::HostCall(ipa) => rsi::host_call(m, ipa.get()).err(),
    };
    if let Some(RsiError::InvalidArgument(what)) = err {
        assert!(
            log().is_empty(),
            "call made despite InvalidArgument({what})"
        );
    }
    err
}

/// A token fetch: INIT first, then CONTINUEs whose byte counts add up to the
/// token, which fits the buffer and the announced bound.
fn check_token(log: &[Call], res: Result<usize, RsiError>, capacity: usize) -> Option<RsiError> {
    match res {
        Ok(n) => {
            assert_eq!(log[0].0, fid::ATTESTATION_TOKEN_INIT);
            let bound = log[0].2[1];
            let sum: u64 = log[1..].iter().map(|c| c.2[1]).sum();
            assert_eq!(sum, n as u64, "token length vs CONTINUE counts");
            assert!(n <= capacity, "token {n} longer than the buffer {capacity}");
            // Fixed finding (docs/fuzzing.md): the bound INIT announced holds even
            // when the buffer is larger.
            assert!(n as u64 <= bound, "token {n} longer than the bound {bound}");
            None
        }
        Err(e) => {
            if let RsiError::BufferTooSmall { needed } = e {
                assert_eq!(log.len(), 1);
                assert_eq!(needed as u64, log[0].2[1]);
                assert!(needed > capacity);
            }
            Some(e)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The first half (up to 256 bytes) chooses the operations, the rest feeds
    // the RMM's answers.
    let (ops, answers) = data.split_at((data.len() / 2).min(256));
    let Ok(ops) = Vec::<Op>::arbitrary_take_rest(Unstructured::new(ops)) else {
        return;
    };
    let m = Hostile {
        u: RefCell::new(Unstructured::new(answers)),
        log: RefCell::new(Vec::new()),
        calls: Cell::new(0),
    };
    for op in ops.iter().take(16) {
        run(&m, op);
    }
});
