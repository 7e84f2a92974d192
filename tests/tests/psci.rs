//! PSCI wrappers against a recording SMCCC conduit: function IDs, argument
//! registers, and the mapping of every return code.

use std::cell::RefCell;
use std::collections::VecDeque;

use plat_kvm_arm::psci::{Psci, PsciError, SmcccConduit, Version, fid, smccc_args};

/// Records each call and answers from a script (x0..x17); an empty script answers
/// with all-zero registers.
#[derive(Default)]
struct Recorder {
    calls: RefCell<Vec<(u32, [u64; 17])>>,
    replies: RefCell<VecDeque<[u64; 18]>>,
}

impl Recorder {
    fn answering(x0: &[u64]) -> Self {
        let r = Self::default();
        for &v in x0 {
            let mut regs = [0; 18];
            regs[0] = v;
            // Junk in the other result registers: PSCI results live in w0 only.
            regs[1..].fill(0xdead_beef);
            r.replies.borrow_mut().push_back(regs);
        }
        r
    }

    fn only_call(&self) -> (u32, [u64; 17]) {
        let calls = self.calls.borrow();
        assert_eq!(calls.len(), 1, "{calls:x?}");
        calls[0]
    }
}

impl SmcccConduit for Recorder {
    fn call(&self, function: u32, args: [u64; 17]) -> [u64; 18] {
        self.calls.borrow_mut().push((function, args));
        self.replies.borrow_mut().pop_front().unwrap_or([0; 18])
    }
}

/// A PSCI error code as the firmware leaves it in x0: sign-extended for SMC64,
/// possibly only in w0 for SMC32 (upper half undefined, here junk).
fn x0(code: i32, junk_upper: bool) -> u64 {
    if junk_upper {
        0x5555_5555_0000_0000 | u64::from(code as u32)
    } else {
        code as i64 as u64
    }
}

#[test]
fn function_ids_match_the_spec_and_the_smccc_crate() {
    use smccc::psci as s;
    let pairs = [
        (fid::PSCI_VERSION, s::PSCI_VERSION, 0x8400_0000),
        (fid::CPU_SUSPEND_64, s::PSCI_CPU_SUSPEND_64, 0xc400_0001),
        (fid::CPU_OFF, s::PSCI_CPU_OFF, 0x8400_0002),
        (fid::CPU_ON_64, s::PSCI_CPU_ON_64, 0xc400_0003),
        (fid::AFFINITY_INFO_64, s::PSCI_AFFINITY_INFO_64, 0xc400_0004),
        (fid::MIGRATE_64, s::PSCI_MIGRATE_64, 0xc400_0005),
        (
            fid::MIGRATE_INFO_TYPE,
            s::PSCI_MIGRATE_INFO_TYPE,
            0x8400_0006,
        ),
        (
            fid::MIGRATE_INFO_UP_CPU_64,
            s::PSCI_MIGRATE_INFO_UP_CPU_64,
            0xc400_0007,
        ),
        (fid::SYSTEM_OFF, s::PSCI_SYSTEM_OFF, 0x8400_0008),
        (fid::SYSTEM_RESET, s::PSCI_SYSTEM_RESET, 0x8400_0009),
        (fid::PSCI_FEATURES, s::PSCI_FEATURES, 0x8400_000a),
        (fid::CPU_FREEZE, s::PSCI_CPU_FREEZE, 0x8400_000b),
        (
            fid::CPU_DEFAULT_SUSPEND_64,
            s::PSCI_CPU_DEFAULT_SUSPEND_64,
            0xc400_000c,
        ),
        (fid::NODE_HW_STATE_64, s::PSCI_NODE_HW_STATE_64, 0xc400_000d),
        (
            fid::SYSTEM_SUSPEND_64,
            s::PSCI_SYSTEM_SUSPEND_64,
            0xc400_000e,
        ),
        (
            fid::PSCI_SET_SUSPEND_MODE,
            s::PSCI_SET_SUSPEND_MODE,
            0x8400_000f,
        ),
        (
            fid::PSCI_STAT_RESIDENCY_64,
            s::PSCI_STAT_RESIDENCY_64,
            0xc400_0010,
        ),
        (fid::PSCI_STAT_COUNT_64, s::PSCI_STAT_COUNT_64, 0xc400_0011),
        (fid::SYSTEM_RESET2_64, s::PSCI_SYSTEM_RESET2_64, 0xc400_0012),
        (fid::MEM_PROTECT, s::PSCI_MEM_PROTECT, 0x8400_0013),
        (
            fid::MEM_PROTECT_CHECK_RANGE_64,
            s::PSCI_MEM_PROTECT_CHECK_RANGE_64,
            0xc400_0014,
        ),
    ];
    for (ours, theirs, spec) in pairs {
        assert_eq!(ours, spec);
        assert_eq!(theirs, spec);
    }
}

#[test]
fn cpu_on_passes_mpidr_entry_and_context_in_x1_to_x3() {
    let rec = Recorder::answering(&[0]);
    let psci = Psci::new(&rec);
    assert_eq!(
        psci.cpu_on(0x8000_0102, 0x4008_1000, 0xfeed_f00d_cafe_0001),
        Ok(())
    );
    let (f, args) = rec.only_call();
    assert_eq!(f, fid::CPU_ON_64);
    assert_eq!(
        args,
        smccc_args([0x8000_0102, 0x4008_1000, 0xfeed_f00d_cafe_0001])
    );
    assert!(args[3..].iter().all(|&a| a == 0), "unused x4.. are zero");
}

#[test]
fn cpu_on_maps_every_error() {
    let table = [
        (-1, PsciError::NotSupported),
        (-2, PsciError::InvalidParameters),
        (-3, PsciError::Denied),
        (-4, PsciError::AlreadyOn),
        (-5, PsciError::OnPending),
        (-6, PsciError::InternalFailure),
        (-7, PsciError::NotPresent),
        (-8, PsciError::Disabled),
        (-9, PsciError::InvalidAddress),
        (-10, PsciError::Unknown(-10)),
        (i32::MIN, PsciError::Unknown(i32::MIN)),
    ];
    for junk in [false, true] {
        for (code, err) in table {
            let rec = Recorder::answering(&[x0(code, junk)]);
            assert_eq!(Psci::new(&rec).cpu_on(1, 2, 3), Err(err), "{code}");
            assert_eq!(err.code(), code);
            assert_eq!(PsciError::from_code(code), Some(err));
        }
    }
}

#[test]
fn version_decodes_major_and_minor() {
    let rec = Recorder::answering(&[0x0001_0001, 0x0000_0002, x0(-1, false)]);
    let psci = Psci::new(&rec);
    assert_eq!(psci.version(), Ok(Version { major: 1, minor: 1 }));
    assert_eq!(psci.version(), Ok(Version { major: 0, minor: 2 }));
    assert_eq!(psci.version(), Err(PsciError::NotSupported), "PSCI 0.1");
    let calls = rec.calls.borrow();
    assert!(
        calls
            .iter()
            .all(|&(f, a)| f == fid::PSCI_VERSION && a == [0; 17])
    );
    assert!(Version { major: 1, minor: 0 } > Version { major: 0, minor: 2 });
}

#[test]
fn features_asks_about_the_given_function() {
    let rec = Recorder::answering(&[0x2, x0(-1, true)]);
    let psci = Psci::new(&rec);
    assert_eq!(psci.features(fid::CPU_SUSPEND_64), Ok(2));
    assert_eq!(
        psci.features(fid::SYSTEM_RESET2_64),
        Err(PsciError::NotSupported)
    );
    let calls = rec.calls.borrow();
    assert_eq!(calls[0], (fid::PSCI_FEATURES, smccc_args([0xc400_0001])));
    assert_eq!(calls[1], (fid::PSCI_FEATURES, smccc_args([0xc400_0012])));
}

#[test]
fn calls_that_must_not_return_report_why_they_did() {
    fn call(psci: &Psci<&Recorder>, function: u32) -> PsciError {
        match function {
            fid::SYSTEM_OFF => psci.system_off(),
            fid::SYSTEM_RESET => psci.system_reset(),
            _ => psci.cpu_off(),
        }
    }
    let cases = [fid::SYSTEM_OFF, fid::SYSTEM_RESET, fid::CPU_OFF];
    for function in cases {
        let rec = Recorder::answering(&[x0(-3, true), 0]);
        let psci = Psci::new(&rec);
        assert_eq!(call(&psci, function), PsciError::Denied);
        assert_eq!(
            call(&psci, function),
            PsciError::Unknown(0),
            "returned with SUCCESS"
        );
        let calls = rec.calls.borrow();
        assert_eq!(calls.len(), 2);
        assert!(calls.iter().all(|&(f, a)| f == function && a == [0; 17]));
    }
}

#[test]
fn the_conduit_trait_is_object_safe_for_rsi_reuse() {
    let rec = Recorder::answering(&[0]);
    let dynamic: &dyn SmcccConduit = &rec;
    let ret = dynamic.call(0xc400_0190, smccc_args([1; 17]));
    assert_eq!(ret[0], 0);
    assert_eq!(rec.only_call(), (0xc400_0190, [1; 17]));
    assert_eq!(Psci::new(dynamic).cpu_on(0, 0, 0), Ok(()));
}
