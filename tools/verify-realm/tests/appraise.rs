//! The verifier on real tokens from TF-RMM v0.8.0 (tag 399) and v0.9.0 (tag-907
//! CMW), appraised against reference values computed offline: the RIM by
//! `tools/rim-measure` from the image and DTB the token was produced with. Every
//! wrong reference value, and every changed byte of the token, must fail, naming
//! the claim.

use std::path::{Path, PathBuf};
use std::process::Command;
use verify_realm::{token, verify};

fn here() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One saved token and what it was produced from.
struct Case {
    log: &'static str,
    rmi: &'static str,
    format: token::Format,
}

const CASES: [Case; 2] = [
    Case {
        log: "token-tf-rmm-v0.8.0.log",
        rmi: "1.0",
        format: token::Format::Cca399,
    },
    Case {
        log: "token-tf-rmm-v0.9.0.log",
        rmi: "2.0",
        format: token::Format::Cmw907,
    },
];

const DATA: &str = "tests/data";
/// The personalisation value the saved tokens were made with (launcher `--realm-pv`).
const RPV: &[u8] = b"plat-kvm-arm-rs test";

fn rim_measure(rmi: &str) -> (String, Vec<u8>) {
    let d = here().join(DATA);
    let out = Command::new(here().join("../rim-measure"))
        .arg(d.join("hello-realm.img"))
        .args(["--mem", "64", "--rmi", rmi, "--dtb"])
        .arg(d.join("hello-realm.dtb"))
        .output()
        .expect("run tools/rim-measure");
    assert!(
        out.status.success(),
        "rim-measure: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8(out.stdout).unwrap();
    let h = s
        .trim()
        .strip_prefix("sha256:")
        .expect("rim-measure prints sha256:HEX");
    ("sha-256".into(), hex::decode(h).unwrap())
}

fn load(c: &Case) -> Vec<u8> {
    token::read_any(&std::fs::read(here().join(DATA).join(c.log)).unwrap()).unwrap()
}

fn reference(c: &Case) -> verify::Reference {
    verify::Reference {
        cpak_json: read("trust/tf-a-qemu-test-cpak.json"),
        challenge: (0..64).collect(),
        rim: rim_measure(c.rmi),
        rpv: {
            let mut v = RPV.to_vec();
            v.resize(64, 0);
            v
        },
        rems: Default::default(),
        platform_refs_json: Some(read("trust/tf-a-qemu-platform-refs.json")),
    }
}

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(here().join(p)).unwrap()
}

#[test]
fn saved_tokens_pass_against_offline_reference_values() {
    for c in &CASES {
        let rep = verify::appraise(&load(c), &reference(c));
        assert!(
            rep.passed(),
            "{}: {}\n{}",
            c.log,
            rep.verdict(),
            rep.table()
        );
        assert_eq!(rep.format, Some(c.format), "{}", c.log);
    }
}

fn fails_with(c: &Case, tok: &[u8], r: &verify::Reference, claims: &[&str]) {
    let rep = verify::appraise(tok, r);
    assert!(!rep.passed(), "{}: accepted", c.log);
    assert_eq!(
        rep.failed(),
        claims,
        "{}: {}\n{}",
        c.log,
        rep.verdict(),
        rep.table()
    );
    assert!(rep.verdict().contains(claims[0]));
}

#[test]
fn wrong_reference_values_fail_naming_the_claim() {
    for c in &CASES {
        let tok = load(c);
        let mut r = reference(c);
        r.rim.1[5] ^= 1;
        fails_with(c, &tok, &r, &["RIM"]);

        let mut r = reference(c);
        r.challenge[63] ^= 0x80;
        fails_with(c, &tok, &r, &["challenge"]);

        let mut r = reference(c);
        r.rpv = vec![0; 64];
        fails_with(c, &tok, &r, &["personalisation value"]);

        // Another platform's key under this instance id.
        let mut r = reference(c);
        let model: serde_json::Value =
            serde_json::from_str(&read("../../tests/vmm-model/model-cpak.json")).unwrap();
        let mut ta: serde_json::Value = serde_json::from_str(&r.cpak_json).unwrap();
        ta[0]["pkey"] = model[0]["pkey"].clone();
        r.cpak_json = ta.to_string();
        fails_with(c, &tok, &r, &["platform signature (CPAK)"]);

        // A platform this verifier has no trust anchor for.
        let mut r = reference(c);
        r.cpak_json = read("../../tests/vmm-model/model-cpak.json");
        fails_with(c, &tok, &r, &["platform signature (CPAK)"]);

        let mut r = reference(c);
        r.rems[0] = Some(vec![0; 32]);
        fails_with(c, &tok, &r, &["REM0"]);

        // Platform firmware other than the reference: one software component's
        // measurement, or another implementation id.
        let refs = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v: serde_json::Value =
                serde_json::from_str(&read("trust/tf-a-qemu-platform-refs.json")).unwrap();
            f(&mut v);
            let mut r = reference(c);
            r.platform_refs_json = Some(v.to_string());
            r
        };
        let r = refs(&|v| {
            v["platform"][0]["sw-components"][1]["measurement-value"] = "00".repeat(32).into()
        });
        fails_with(c, &tok, &r, &["platform reference values"]);
        let r = refs(&|v| v["platform"][0]["implementation-id"] = "11".repeat(32).into());
        fails_with(c, &tok, &r, &["platform reference values"]);
    }
}

/// Offsets of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("claim bytes in the token")
}

#[test]
fn changed_claims_break_the_signatures() {
    for c in &CASES {
        let tok = load(c);
        let r = reference(c);
        // A RIM the host would like the verifier to see: the realm signature fails.
        let mut t = tok.clone();
        t[find(&tok, &r.rim.1)] ^= 1;
        fails_with(c, &t, &r, &["realm signature (RAK)", "RIM"]);
        // The platform's verification service URL (signed by the CPAK).
        let mut t = tok.clone();
        t[find(&tok, b"veraison.example")] ^= 0x20;
        fails_with(c, &t, &r, &["platform signature (CPAK)"]);
    }
}

/// Every single changed byte of a real token is refused, and nothing panics.
#[test]
fn every_changed_byte_fails() {
    for c in &CASES {
        let tok = load(c);
        let r = reference(c);
        for i in 0..tok.len() {
            for x in [0x01u8, 0x80] {
                let mut t = tok.clone();
                t[i] ^= x;
                let rep = verify::appraise(&t, &r);
                assert!(
                    !rep.passed(),
                    "{}: byte {i} ^ {x:#x} accepted\n{}",
                    c.log,
                    rep.table()
                );
                assert!(!rep.failed().is_empty());
            }
        }
    }
}

#[test]
fn truncated_and_extended_tokens_fail() {
    for c in &CASES {
        let tok = load(c);
        let r = reference(c);
        for n in [0, 1, tok.len() / 2, tok.len() - 1] {
            assert_eq!(
                verify::appraise(&tok[..n], &r).failed(),
                ["token structure"],
                "{} cut at {n}",
                c.log
            );
        }
        let mut t = tok.clone();
        t.push(0);
        assert_eq!(verify::appraise(&t, &r).failed(), ["token structure"]);
    }
}
