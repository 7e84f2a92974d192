//! Appraisal of one token against the reference values of one realm image.
//!
//! ccatoken 0.1.0 follows the 2023 draft of the CCA token: a platform profile of
//! `http://arm.com/CCA-SSD/1.0.0` and the realm public key (RAK) as a raw 97-byte
//! P-384 point. RMM 1.0 and 2.0 tokens carry `tag:arm.com,2023:cca_platform#1.0.0`
//! and the RAK as a serialised COSE_Key. The signed bytes are handed to the crate
//! untouched (its COSE_Sign1 checks run on what the RMM and the platform signed);
//! only the decoded claim view is adapted: the profile is checked here and then
//! presented in the draft's spelling, the COSE_Key is converted to the raw point.
//! The platform-to-realm binding is checked here, over the RAK claim as carried
//! (the crate hashes the raw point, which RMM 1.0 does not).

use crate::token::{self, Collection};
use ccatoken::store::{MemoRefValueStore, MemoTrustAnchorStore};
use ccatoken::token::{Evidence, Platform, Realm};
use ciborium::Value;
use sha2::Digest;

/// Platform profile of RMM 1.0 and later tokens.
pub const PLATFORM_PROFILE: &str = "tag:arm.com,2023:cca_platform#1.0.0";
/// The spelling ccatoken 0.1.0 accepts (the 2023 draft).
const PLATFORM_PROFILE_DRAFT: &str = "http://arm.com/CCA-SSD/1.0.0";
/// Realm profile of RMM 1.0 and later tokens.
pub const REALM_PROFILE: &str = "tag:arm.com,2023:realm#1.0.0";

const PROFILE: i64 = 265;
const RAK: i64 = 44237;

/// What the token must show for one image, as its user computed it offline.
pub struct Reference {
    /// Trust anchors (CPAKs) in ccatoken's JSON form.
    pub cpak_json: String,
    /// The challenge the verifier gave the realm (64 bytes).
    pub challenge: Vec<u8>,
    /// The RIM: hash algorithm as RMM spells it (`sha-256`/`sha-512`) and value.
    pub rim: (String, Vec<u8>),
    /// The personalisation value given at realm creation (64 bytes).
    pub rpv: Vec<u8>,
    /// Expected REMs, where the user has them.
    pub rems: [Option<Vec<u8>>; 4],
    /// Platform reference values in ccatoken's JSON form (`{"platform": [...]}`:
    /// implementation id, software components, configuration), where the user
    /// pins the platform firmware; appraised by ccatoken.
    pub platform_refs_json: Option<String>,
}

/// One line of the per-claim table.
pub struct Row {
    /// What is checked.
    pub claim: String,
    /// The reference value (or the rule).
    pub expected: String,
    /// What the token holds.
    pub found: String,
    /// `None` for an informational line.
    pub ok: Option<bool>,
}

/// The appraisal of one token.
pub struct Report {
    /// The envelope, when the token could be split.
    pub format: Option<token::Format>,
    /// The table, in the order checked.
    pub rows: Vec<Row>,
}

impl Report {
    /// The claims that failed, in table order.
    pub fn failed(&self) -> Vec<&str> {
        self.rows
            .iter()
            .filter(|r| r.ok == Some(false))
            .map(|r| r.claim.as_str())
            .collect()
    }

    /// True when every check passed.
    pub fn passed(&self) -> bool {
        self.failed().is_empty() && self.rows.iter().any(|r| r.ok == Some(true))
    }

    /// The one verdict line.
    pub fn verdict(&self) -> String {
        let fmt = self.format.map_or("undecodable token", |f| f.describe());
        if self.passed() {
            format!(
                "verify-realm: PASS: {fmt}; signatures, binding, challenge, RIM and personalisation value as expected"
            )
        } else {
            format!(
                "verify-realm: FAIL: {fmt}; failing: {}",
                self.failed().join(", ")
            )
        }
    }

    /// The table, one row per claim: result, claim, value; a failing row shows
    /// what was found and, on the next line, what was expected.
    pub fn table(&self) -> String {
        let wc = self
            .rows
            .iter()
            .map(|r| r.claim.len())
            .max()
            .unwrap_or(0)
            .max(5);
        let mut s = format!("{:<6}{:<wc$}  value\n", "", "claim");
        for r in &self.rows {
            match r.ok {
                Some(true) => s += &format!("{:<6}{:<wc$}  {}\n", "ok", r.claim, r.found),
                None => s += &format!("{:<6}{:<wc$}  {}\n", "-", r.claim, r.found),
                Some(false) => {
                    s += &format!("{:<6}{:<wc$}  found    {}\n", "FAIL", r.claim, r.found);
                    s += &format!("{:<6}{:<wc$}  expected {}\n", "", "", r.expected);
                }
            }
        }
        s
    }

    fn row(&mut self, claim: &str, expected: String, found: String, ok: Option<bool>) {
        self.rows.push(Row {
            claim: claim.into(),
            expected,
            found,
            ok,
        });
    }

    fn check(&mut self, claim: &str, expected: String, found: String) {
        let ok = expected == found;
        self.row(claim, expected, found, Some(ok));
    }
}

/// Appraises `token` (the CBOR bytes) against `reference`. Never panics on
/// hostile input: anything the decoders refuse is a failing row.
pub fn appraise(token: &[u8], reference: &Reference) -> Report {
    let mut rep = Report {
        format: None,
        rows: Vec::new(),
    };
    let tas = {
        let mut t = MemoTrustAnchorStore::new();
        match t.load_json(&reference.cpak_json) {
            Ok(()) => t,
            Err(e) => {
                rep.row(
                    "trust anchors",
                    "a ccatoken CPAK list".into(),
                    format!("{e}"),
                    Some(false),
                );
                return rep;
            }
        }
    };
    let coll = match token::split(token) {
        Ok(c) => c,
        Err(e) => {
            rep.row(
                "token structure",
                "tag 399 or 907 collection".into(),
                e,
                Some(false),
            );
            return rep;
        }
    };
    rep.format = Some(coll.format);
    // The crate's decoders and verifiers on attacker-controlled bytes: a panic
    // there is a refused token, not a crashed verifier.
    let inner = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut r = Report {
            format: rep.format,
            rows: Vec::new(),
        };
        appraise_collection(&coll, reference, &tas, &mut r);
        r.rows
    }));
    match inner {
        Ok(rows) => rep.rows.extend(rows),
        Err(_) => rep.row(
            "token structure",
            "decodable".into(),
            "the decoder panicked".into(),
            Some(false),
        ),
    }
    rep
}

struct Decoded {
    ev: Evidence,
    platform_profile: String,
    realm_profile: String,
    rak_claim: Vec<u8>,
}

fn decode(coll: &Collection) -> Result<Decoded, (&'static str, String)> {
    token::check_sign1(&coll.platform).map_err(|e| ("platform token", e))?;
    token::check_sign1(&coll.realm).map_err(|e| ("realm token", e))?;
    let mut ev = Evidence::new();
    ev.platform.bytes = coll.platform.clone();
    ev.platform
        .init_decoder(None)
        .map_err(|e| ("platform token", format!("not a COSE_Sign1: {e:?}")))?;
    ev.realm.bytes = coll.realm.clone();
    ev.realm
        .init_decoder(None)
        .map_err(|e| ("realm token", format!("not a COSE_Sign1: {e:?}")))?;

    let (mut pmap, platform_profile) =
        claims_map(&ev.platform.payload).map_err(|e| ("platform claims", e))?;
    if platform_profile == PLATFORM_PROFILE {
        set(
            &mut pmap,
            PROFILE,
            Value::Text(PLATFORM_PROFILE_DRAFT.into()),
        );
    }
    ev.platform_claims =
        Platform::decode(&enc(&pmap)).map_err(|e| ("platform claims", e.to_string()))?;

    let (mut rmap, realm_profile) =
        claims_map(&ev.realm.payload).map_err(|e| ("realm claims", e))?;
    let rak_claim = match get(&rmap, RAK) {
        Some(Value::Bytes(b)) => b.clone(),
        _ => return Err(("realm public key", "no RAK byte string (44237)".into())),
    };
    set(
        &mut rmap,
        RAK,
        Value::Bytes(rak_point(&rak_claim).map_err(|e| ("realm public key", e))?),
    );
    ev.realm_claims = Realm::decode(&enc(&rmap)).map_err(|e| ("realm claims", e.to_string()))?;
    Ok(Decoded {
        ev,
        platform_profile,
        realm_profile,
        rak_claim,
    })
}

fn appraise_collection(
    coll: &Collection,
    reference: &Reference,
    tas: &MemoTrustAnchorStore,
    rep: &mut Report,
) {
    let d = match decode(coll) {
        Ok(d) => d,
        Err((claim, why)) => {
            rep.row(claim, "decodable".into(), why, Some(false));
            return;
        }
    };
    let (pc, rc) = (&d.ev.platform_claims, &d.ev.realm_claims);
    rep.row("instance id", "-".into(), hex::encode(pc.inst_id), None);
    rep.check(
        "platform profile",
        PLATFORM_PROFILE.into(),
        d.platform_profile.clone(),
    );
    rep.check(
        "realm profile",
        REALM_PROFILE.into(),
        d.realm_profile.clone(),
    );

    // Each signature on evidence of its own: the crate keeps the key it was given.
    let psig = match decode(coll) {
        Err((_, e)) => e,
        Ok(mut d2) => match d2.ev.verify(tas) {
            Err(e) => format!("verifier error: {e}"),
            Ok(()) => match d2.ev.get_trust_vectors().0.instance_identity.get() {
                ear::claim::TRUSTWORTHY_INSTANCE => "verified".into(),
                ear::claim::UNRECOGNIZED_INSTANCE => "no trust anchor for this instance id".into(),
                ear::claim::CRYPTO_VALIDATION_FAILED => "signature does not verify".into(),
                v => format!("trust claim {v}"),
            },
        },
    };
    rep.check("platform signature (CPAK)", "verified".into(), psig);

    // Realm signature with the RAK the realm token carries.
    let rsig = match decode(coll) {
        Err((_, e)) => e,
        Ok(mut d2) => match d2.ev.verify_realm_token() {
            Ok(()) => "verified".into(),
            Err(e) => format!("does not verify: {e}"),
        },
    };
    rep.check("realm signature (RAK)", "verified".into(), rsig);

    let rak_hash = hash(&rc.rak_hash_alg, &d.rak_claim);
    rep.check(
        "binding (platform challenge = H(RAK))",
        rak_hash.map_or_else(|| format!("unknown hash {}", rc.rak_hash_alg), hex::encode),
        hex::encode(&pc.challenge),
    );

    if let Some(j) = &reference.platform_refs_json {
        let found = match decode(coll) {
            Err((_, e)) => e,
            Ok(d3) => platform_appraisal(d3.ev, j),
        };
        rep.check("platform reference values", "matched".into(), found);
    }

    rep.check(
        "challenge",
        hex::encode(&reference.challenge),
        hex::encode(rc.challenge),
    );
    rep.check(
        "measurement hash algorithm",
        reference.rim.0.clone(),
        rc.hash_alg.clone(),
    );
    rep.check("RIM", hex::encode(&reference.rim.1), hex::encode(&rc.rim));
    rep.check(
        "personalisation value",
        hex::encode(&reference.rpv),
        hex::encode(rc.perso),
    );
    for (i, want) in reference.rems.iter().enumerate() {
        let found = hex::encode(&rc.rem[i]);
        match want {
            Some(w) => rep.check(&format!("REM{i}"), hex::encode(w), found),
            None => rep.row(&format!("REM{i}"), "-".into(), found, None),
        }
    }
}

/// ccatoken's platform appraisal: the implementation id looked up in the store,
/// then the software components and configuration compared as a whole.
fn platform_appraisal(mut ev: Evidence, refs_json: &str) -> String {
    let mut rvs = MemoRefValueStore::new();
    if let Err(e) = rvs.load_json(refs_json) {
        return format!("reference values unreadable: {e}");
    }
    if let Err(e) = ev.appraise(&rvs) {
        return format!("appraisal error: {e}");
    }
    let tv = ev.get_trust_vectors().0;
    match (
        tv.hardware.get(),
        tv.executables.get(),
        tv.configuration.get(),
    ) {
        (ear::claim::GENUINE_HARDWARE, ear::claim::APPROVED_BOOT, ear::claim::APPROVED_CONFIG) => {
            "matched".into()
        }
        (ear::claim::UNRECOGNIZED_HARDWARE, ..) => {
            "no reference for these software components and configuration".into()
        }
        _ => "no reference for this implementation id".into(),
    }
}

/// The raw uncompressed point (0x04 || x || y) of a P-384 RAK claim, from the
/// COSE_Key RMM 1.0 carries (kty EC2, crv P-384), or as is when already raw.
pub fn rak_point(claim: &[u8]) -> Result<Vec<u8>, String> {
    if claim.len() == 97 && claim[0] == 4 {
        return Ok(claim.to_vec());
    }
    let mut rd = claim;
    let key: Value =
        ciborium::de::from_reader(&mut rd).map_err(|e| format!("RAK is not a COSE_Key: {e}"))?;
    if !rd.is_empty() {
        return Err("bytes follow the RAK COSE_Key".into());
    }
    let Value::Map(m) = key else {
        return Err("RAK COSE_Key is not a map".into());
    };
    let (kty, crv) = (get(&m, 1), get(&m, -1));
    let int = |v: Option<&Value>| match v {
        Some(Value::Integer(i)) => i64::try_from(*i).ok(),
        _ => None,
    };
    if int(kty) != Some(2) || int(crv) != Some(2) {
        return Err(format!(
            "RAK COSE_Key kty {:?} crv {:?}, want EC2 (2) P-384 (2)",
            int(kty),
            int(crv)
        ));
    }
    match (get(&m, -2), get(&m, -3)) {
        (Some(Value::Bytes(x)), Some(Value::Bytes(y))) if x.len() == 48 && y.len() == 48 => {
            Ok([&[4u8][..], x, y].concat())
        }
        _ => Err("RAK COSE_Key x/y are not two 48-byte strings".into()),
    }
}

fn hash(alg: &str, data: &[u8]) -> Option<Vec<u8>> {
    Some(match alg {
        "sha-256" => sha2::Sha256::digest(data).to_vec(),
        "sha-384" => sha2::Sha384::digest(data).to_vec(),
        "sha-512" => sha2::Sha512::digest(data).to_vec(),
        _ => return None,
    })
}

type Map = Vec<(Value, Value)>;

fn claims_map(payload: &[u8]) -> Result<(Map, String), String> {
    let mut rd = payload;
    let v: Value = ciborium::de::from_reader(&mut rd).map_err(|e| format!("not CBOR: {e}"))?;
    if !rd.is_empty() {
        return Err("bytes follow the claims map".into());
    }
    let Value::Map(m) = v else {
        return Err("the claims are not a map".into());
    };
    let profile = match get(&m, PROFILE) {
        Some(Value::Text(t)) => t.clone(),
        Some(_) => "(not a text string)".into(),
        None => "(none)".into(),
    };
    Ok((m, profile))
}

fn get(m: &Map, key: i64) -> Option<&Value> {
    m.iter()
        .find(|(k, _)| matches!(k, Value::Integer(i) if i64::try_from(*i) == Ok(key)))
        .map(|(_, v)| v)
}

fn set(m: &mut Map, key: i64, v: Value) {
    for (k, old) in m.iter_mut() {
        if matches!(k, Value::Integer(i) if i64::try_from(*i) == Ok(key)) {
            *old = v;
            return;
        }
    }
}

fn enc(m: &Map) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(&Value::Map(m.clone()), &mut out).expect("CBOR to memory");
    out
}
