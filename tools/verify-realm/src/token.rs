//! Reading a CCA attestation token: the file forms a realm prints or saves, and
//! the two collection envelopes (RMM 1.0's tag 399 and RMM 2.0's tag-907 CMW).

use ciborium::Value;

/// CBOR tag of the RMM 1.0 CCA token collection.
pub const TAG_CCA: u64 = 399;
/// CBOR tag of a CMW collection (RMM 2.0, TF-RMM v0.9.0).
pub const TAG_CMW: u64 = 907;
/// CoAP content format of a CMW record holding a COSE_Sign1
/// (`application/cose; cose-type="cose-sign1"`).
pub const CMW_COSE_SIGN1: u64 = 263;
/// Collection label of the platform token.
pub const LABEL_PLATFORM: u64 = 44234;
/// Collection label of the realm token.
pub const LABEL_REALM: u64 = 44241;

/// The collection envelope a token came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// CBOR tag 399, both tokens as byte strings (RMM 1.0, TF-RMM v0.8.0).
    Cca399,
    /// CBOR tag 907, a CMW collection of `[263, bstr]` records (RMM 2.0, TF-RMM v0.9.0).
    Cmw907,
}

impl Format {
    /// One-phrase description for reports.
    pub fn describe(self) -> &'static str {
        match self {
            Format::Cca399 => "CCA token, tag 399 (RMM 1.0)",
            Format::Cmw907 => "CMW collection, tag 907 (RMM 2.0)",
        }
    }
}

/// The two signed tokens of a collection, as tagged COSE_Sign1 bytes.
#[derive(Clone, Debug)]
pub struct Collection {
    /// The envelope seen.
    pub format: Format,
    /// The platform token (COSE_Sign1, signed with the CPAK).
    pub platform: Vec<u8>,
    /// The realm token (COSE_Sign1, signed with the RAK).
    pub realm: Vec<u8>,
}

/// Splits a CCA token into its platform and realm COSE_Sign1 tokens.
///
/// Strict: exactly one top-level item, exactly the two labels, each once, and
/// in the CMW form each record exactly `[263, bstr]`.
pub fn split(bytes: &[u8]) -> Result<Collection, String> {
    let mut rd = bytes;
    let top: Value = ciborium::de::from_reader(&mut rd).map_err(|e| format!("not CBOR: {e}"))?;
    if !rd.is_empty() {
        return Err(format!("{} bytes follow the token", rd.len()));
    }
    let (tag, inner) = match top {
        Value::Tag(t, v) => (t, *v),
        _ => return Err("not a tagged CBOR item (want tag 399 or 907)".into()),
    };
    let format = match tag {
        TAG_CCA => Format::Cca399,
        TAG_CMW => Format::Cmw907,
        t => {
            return Err(format!(
                "CBOR tag {t}, want 399 (CCA token) or 907 (CMW collection)"
            ))
        }
    };
    let Value::Map(entries) = inner else {
        return Err("the collection is not a map".into());
    };
    let (mut platform, mut realm) = (None, None);
    for (k, v) in entries {
        let label = match k {
            Value::Integer(i) => u64::try_from(i).ok(),
            _ => None,
        };
        let slot = match label {
            Some(LABEL_PLATFORM) => &mut platform,
            Some(LABEL_REALM) => &mut realm,
            _ => return Err(format!("unexpected collection key {k:?}")),
        };
        if slot.is_some() {
            return Err(format!("collection key {} twice", label.unwrap_or(0)));
        }
        *slot = Some(match (format, v) {
            (Format::Cca399, Value::Bytes(b)) => b,
            (Format::Cmw907, Value::Array(rec)) => cmw_record(rec)?,
            (_, other) => return Err(format!("collection entry is {}", kind(&other))),
        });
    }
    Ok(Collection {
        format,
        platform: platform.ok_or("no platform token (44234) in the collection")?,
        realm: realm.ok_or("no realm token (44241) in the collection")?,
    })
}

/// Checks that `bytes` is exactly one tagged COSE_Sign1 (tag 18, `[protected:
/// bstr, unprotected: map, payload: bstr, signature: bstr]`) and nothing more.
/// The COSE layer under ccatoken reads the first four items of whatever array it
/// finds; a token that is not this exact shape is refused before it gets there.
pub fn check_sign1(bytes: &[u8]) -> Result<(), String> {
    let mut rd = bytes;
    let v: Value = ciborium::de::from_reader(&mut rd).map_err(|e| format!("not CBOR: {e}"))?;
    if !rd.is_empty() {
        return Err(format!("{} bytes follow the COSE_Sign1", rd.len()));
    }
    match v {
        Value::Tag(18, inner) => match *inner {
            Value::Array(a) => match a.as_slice() {
                [Value::Bytes(_), Value::Map(_), Value::Bytes(_), Value::Bytes(_)] => Ok(()),
                _ => Err("not [bstr, map, bstr, bstr]".into()),
            },
            _ => Err("tag 18 over something other than an array".into()),
        },
        Value::Tag(t, _) => Err(format!("CBOR tag {t}, want 18 (COSE_Sign1)")),
        _ => Err("not a tagged COSE_Sign1 (tag 18)".into()),
    }
}

fn cmw_record(rec: Vec<Value>) -> Result<Vec<u8>, String> {
    match <[Value; 2]>::try_from(rec) {
        Ok([Value::Integer(t), Value::Bytes(b)]) if u64::try_from(t) == Ok(CMW_COSE_SIGN1) => Ok(b),
        Ok([t, _]) => Err(format!("CMW record type {t:?}, want [263, bstr]")),
        Err(r) => Err(format!("CMW record of {} items, want [263, bstr]", r.len())),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Integer(_) => "an integer",
        Value::Bytes(_) => "a byte string",
        Value::Text(_) => "a text string",
        Value::Array(_) => "an array",
        Value::Map(_) => "a map",
        Value::Tag(..) => "a tagged item",
        _ => "a simple value",
    }
}

/// Reads the token bytes out of what a user has at hand:
/// - raw CBOR (a `.cbor` file; first byte a CBOR tag head),
/// - a console log with `token: HEX` lines (the test guests, the launcher logs),
/// - a console log with `token-b64: BASE64` lines (`app-attest`),
/// - a file holding only hex or only base64.
pub fn read_any(data: &[u8]) -> Result<Vec<u8>, String> {
    if data.first().is_some_and(|b| b >> 5 == 6) {
        return Ok(data.to_vec());
    }
    let text = std::str::from_utf8(data).map_err(|_| "neither CBOR nor text")?;
    let text = text.replace('\r', "");
    let (mut hexs, mut b64s) = (String::new(), String::new());
    // Only lines whose remainder is all hex (base64): a log's prose may say "token: ".
    let b64ch = |c: char| c.is_ascii_alphanumeric() || "+/=".contains(c);
    for line in text.lines() {
        if let Some(i) = line.find("token-b64: ") {
            let v = line[i + 11..].trim();
            if !v.is_empty() && v.chars().all(b64ch) {
                b64s.push_str(v);
            }
        } else if let Some(i) = line.find("token: ") {
            let v = line[i + 7..].trim();
            if !v.is_empty() && v.chars().all(|c| c.is_ascii_hexdigit()) {
                hexs.push_str(v);
            }
        }
    }
    if !hexs.is_empty() {
        return hex::decode(&hexs).map_err(|e| format!("the 'token:' lines are not hex: {e}"));
    }
    if !b64s.is_empty() {
        return b64(&b64s).map_err(|e| format!("the 'token-b64:' lines are not base64: {e}"));
    }
    let bare: String = text.split_whitespace().collect();
    if bare.is_empty() {
        return Err("empty input".into());
    }
    hex::decode(&bare)
        .or_else(|_| b64(&bare))
        .map_err(|_| "no 'token:' or 'token-b64:' lines, and not CBOR, hex or base64".into())
}

fn b64(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::ser::into_writer(v, &mut out).unwrap();
        out
    }

    fn coll(tag: u64, entries: Vec<(Value, Value)>) -> Vec<u8> {
        enc(&Value::Tag(tag, Box::new(Value::Map(entries))))
    }

    fn l(n: u64) -> Value {
        Value::Integer(n.into())
    }

    #[test]
    fn both_envelopes_split() {
        let p = Value::Bytes(vec![1]);
        let r = Value::Bytes(vec![2]);
        let c = split(&coll(
            399,
            vec![(l(44234), p.clone()), (l(44241), r.clone())],
        ))
        .unwrap();
        assert_eq!(
            (c.format, c.platform, c.realm),
            (Format::Cca399, vec![1], vec![2])
        );
        let rec = |b| Value::Array(vec![l(263), b]);
        let c = split(&coll(907, vec![(l(44241), rec(r)), (l(44234), rec(p))])).unwrap();
        assert_eq!(
            (c.format, c.platform, c.realm),
            (Format::Cmw907, vec![1], vec![2])
        );
    }

    #[test]
    fn malformed_envelopes_are_refused() {
        let p = || (l(44234), Value::Bytes(vec![1]));
        let r = || (l(44241), Value::Bytes(vec![2]));
        let rec = |t, b| Value::Array(vec![l(t), Value::Bytes(b)]);
        let cases = [
            coll(398, vec![p(), r()]),
            coll(399, vec![p()]),
            coll(399, vec![p(), r(), (l(7), Value::Bytes(vec![]))]),
            coll(399, vec![p(), p(), r()]),
            coll(399, vec![p(), (l(44241), Value::Text("x".into()))]),
            coll(907, vec![p(), r()]),
            coll(
                907,
                vec![(l(44234), rec(262, vec![1])), (l(44241), rec(263, vec![2]))],
            ),
            enc(&Value::Map(vec![p(), r()])),
            [coll(399, vec![p(), r()]), vec![0]].concat(),
        ];
        for (i, c) in cases.iter().enumerate() {
            assert!(split(c).is_err(), "case {i} accepted");
        }
    }

    #[test]
    fn input_forms() {
        let cbor = coll(
            399,
            vec![
                (l(44234), Value::Bytes(vec![1])),
                (l(44241), Value::Bytes(vec![2])),
            ],
        );
        let hexs = hex::encode(&cbor);
        let log = format!(
            "noise\nguest: token: {}\r\nguest: token: {}\n",
            &hexs[..10],
            &hexs[10..]
        );
        assert_eq!(read_any(log.as_bytes()).unwrap(), cbor);
        use base64::Engine;
        let b = base64::engine::general_purpose::STANDARD.encode(&cbor);
        let log = format!(
            "x\napp: token-b64: {}\napp: token-b64: {}\n",
            &b[..8],
            &b[8..]
        );
        assert_eq!(read_any(log.as_bytes()).unwrap(), cbor);
        assert_eq!(read_any(&cbor).unwrap(), cbor);
        assert_eq!(read_any(hexs.as_bytes()).unwrap(), cbor);
        assert!(read_any(b"guest: token: zz\n").is_err());
        let log = format!("# a token: as printed\nguest: token: {hexs}\n");
        assert_eq!(read_any(log.as_bytes()).unwrap(), cbor);
        assert!(read_any(b"").is_err());
    }
}
