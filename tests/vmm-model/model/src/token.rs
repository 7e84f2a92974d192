//! The CCA attestation token the model returns through
//! RSI_ATTESTATION_TOKEN_INIT/CONTINUE: a CBOR-tagged collection (tag 399; tag
//! 907, a CMW collection, with `--rmm v2`)
//! of a platform token and a realm token, each a COSE_Sign1 signed with
//! ES384 (P-384, deterministic RFC 6979 nonces) by fixed TEST keys: the RMM
//! specification's RAK is a P-384 key, and so is TF-A's QEMU platform key.
//! Claim keys follow the CCA token profile (realm profile
//! "tag:arm.com,2023:realm#1.0.0"). The keys are public test values: see
//! README.md.

use crate::sha256::sha256;
use p384::ecdsa::{Signature, SigningKey, signature::Signer};

/// Realm Attestation Key (TEST ONLY): the P-384 scalar, the first 48 bytes of
/// SHA-512("vmm-model RAK").
fn rak() -> SigningKey {
    key(b"vmm-model RAK")
}
/// Platform attestation key (TEST ONLY): the first 48 bytes of SHA-512("vmm-model CPAK").
fn cpak() -> SigningKey {
    key(b"vmm-model CPAK")
}
fn key(seed: &[u8]) -> SigningKey {
    let s = crate::sha512::Algo::Sha512.hash(seed);
    match SigningKey::from_slice(&s[..48]) {
        Ok(k) => k,
        Err(_) => crate::fatal(format_args!("bad test key")),
    }
}

struct Cbor<'a> {
    b: &'a mut [u8],
    n: usize,
    ok: bool,
}

impl<'a> Cbor<'a> {
    fn new(b: &'a mut [u8]) -> Self {
        Cbor { b, n: 0, ok: true }
    }
    fn raw(&mut self, d: &[u8]) {
        if self.n + d.len() > self.b.len() {
            self.ok = false;
            return;
        }
        self.b[self.n..self.n + d.len()].copy_from_slice(d);
        self.n += d.len();
    }
    fn head(&mut self, major: u8, v: u64) {
        let m = major << 5;
        if v < 24 {
            self.raw(&[m | v as u8]);
        } else if v < 0x100 {
            self.raw(&[m | 24, v as u8]);
        } else if v < 0x1_0000 {
            self.raw(&[m | 25]);
            self.raw(&(v as u16).to_be_bytes());
        } else if v < 0x1_0000_0000 {
            self.raw(&[m | 26]);
            self.raw(&(v as u32).to_be_bytes());
        } else {
            self.raw(&[m | 27]);
            self.raw(&v.to_be_bytes());
        }
    }
    fn uint(&mut self, v: u64) {
        self.head(0, v);
    }
    fn nint(&mut self, v: i64) {
        self.head(1, (-1 - v) as u64);
    }
    fn bstr(&mut self, d: &[u8]) {
        self.head(2, d.len() as u64);
        self.raw(d);
    }
    fn tstr(&mut self, s: &str) {
        self.head(3, s.len() as u64);
        self.raw(s.as_bytes());
    }
    fn array(&mut self, n: u64) {
        self.head(4, n);
    }
    fn map(&mut self, n: u64) {
        self.head(5, n);
    }
    fn tag(&mut self, t: u64) {
        self.head(6, t);
    }
    fn done(&self) -> Option<usize> {
        if self.ok { Some(self.n) } else { None }
    }
}

/// COSE_Key (EC2, P-384) of a signing key's public part.
fn cose_key(k: &SigningKey, out: &mut [u8]) -> usize {
    let pt = k.verifying_key().to_encoded_point(false);
    let (x, y) = (pt.x().map(|v| &v[..]), pt.y().map(|v| &v[..]));
    let mut c = Cbor::new(out);
    c.map(4);
    c.uint(1);
    c.uint(2); // kty: EC2
    c.nint(-1);
    c.uint(2); // crv: P-384
    c.nint(-2);
    c.bstr(x.unwrap_or(&[]));
    c.nint(-3);
    c.bstr(y.unwrap_or(&[]));
    c.done().unwrap_or(0)
}

/// Wraps `payload` into a COSE_Sign1 (tag 18) signed with ES384.
fn sign1(k: &SigningKey, payload: &[u8], out: &mut [u8]) -> usize {
    const PROTECTED: [u8; 4] = [0xa1, 0x01, 0x38, 0x22]; // {1: -35} (alg ES384)
    let mut tbs = [0u8; 2048];
    let mut c = Cbor::new(&mut tbs);
    c.array(4);
    c.tstr("Signature1");
    c.bstr(&PROTECTED);
    c.bstr(&[]);
    c.bstr(payload);
    let Some(n) = c.done() else {
        crate::fatal(format_args!("token too large"))
    };
    let sig: Signature = k.sign(&tbs[..n]);
    let sig = sig.to_bytes();
    let mut c = Cbor::new(out);
    c.tag(18);
    c.array(4);
    c.bstr(&PROTECTED);
    c.map(0);
    c.bstr(payload);
    c.bstr(&sig);
    c.done().unwrap_or(0)
}

/// Builds the token into `buf`; returns its length.
pub fn build(
    buf: &mut [u8],
    challenge: &[u8; 64],
    algo: crate::sha512::Algo,
    rim: &[u8; 64],
    rem: &[[u8; 64]; 4],
    rpv: &[u8; 64],
    cmw: bool,
) -> usize {
    let rak = rak();
    let mut rak_pub = [0u8; 128];
    let rak_pub_len = cose_key(&rak, &mut rak_pub);

    // Realm claims.
    let mut claims = [0u8; 1024];
    let mut c = Cbor::new(&mut claims);
    c.map(8);
    c.uint(265);
    c.tstr("tag:arm.com,2023:realm#1.0.0");
    c.uint(10);
    c.bstr(challenge);
    c.uint(44235);
    c.bstr(rpv);
    c.uint(44238);
    c.bstr(&rim[..algo.len()]);
    c.uint(44239);
    c.array(4);
    for r in rem {
        c.bstr(&r[..algo.len()]);
    }
    c.uint(44236);
    c.tstr(match algo {
        crate::sha512::Algo::Sha256 => "sha-256",
        crate::sha512::Algo::Sha512 => "sha-512",
    });
    c.uint(44237);
    c.bstr(&rak_pub[..rak_pub_len]);
    c.uint(44240);
    c.tstr("sha-256");
    let Some(claims_len) = c.done() else {
        crate::fatal(format_args!("token too large"))
    };
    let mut realm_tok = [0u8; 1280];
    let realm_len = sign1(&rak, &claims[..claims_len], &mut realm_tok);

    // Platform claims (a fixed TEST platform): its challenge binds the RAK.
    let rak_hash = sha256(&rak_pub[..rak_pub_len]);
    let mut pclaims = [0u8; 512];
    let mut c = Cbor::new(&mut pclaims);
    c.map(8);
    c.uint(265);
    c.tstr("tag:arm.com,2023:cca_platform#1.0.0");
    c.uint(10);
    c.bstr(&rak_hash);
    c.uint(2396); // implementation id
    c.bstr(&[0x7e; 32]);
    c.uint(256); // instance id (UEID)
    let mut ueid = [0u8; 33];
    ueid[0] = 1;
    ueid[1..].copy_from_slice(&sha256(b"vmm-model CPAK"));
    c.bstr(&ueid);
    c.uint(2395); // security lifecycle: secured
    c.uint(0x3000);
    c.uint(2401); // hardware config
    c.bstr(&[0; 32]);
    c.uint(2399); // software components: the model itself, one entry (at least
    c.array(1); // one is required)
    c.map(3);
    c.uint(1); // measurement type
    c.tstr("vmm-model");
    c.uint(2); // measurement value
    c.bstr(&sha256(b"vmm-model"));
    c.uint(5); // signer id
    c.bstr(&sha256(b"vmm-model signer"));
    c.uint(2402); // platform hash algorithm
    c.tstr("sha-256");
    let Some(pc_len) = c.done() else {
        crate::fatal(format_args!("token too large"))
    };
    let mut plat_tok = [0u8; 768];
    let plat_len = sign1(&cpak(), &pclaims[..pc_len], &mut plat_tok);

    // RMM 1.0: tag 399 over {44234: bstr, 44241: bstr}; RMM 2.0 (`cmw`): a CMW
    // collection, tag 907, whose entries are [263 (COSE_Sign1), bstr].
    let mut c = Cbor::new(buf);
    c.tag(if cmw { 907 } else { 399 });
    c.map(2);
    for (key, tok) in [
        (44234, &plat_tok[..plat_len]),
        (44241, &realm_tok[..realm_len]),
    ] {
        c.uint(key);
        if cmw {
            c.array(2);
            c.uint(263);
        }
        c.bstr(tok);
    }
    match c.done() {
        Some(n) => n,
        None => crate::fatal(format_args!("token larger than its buffer")),
    }
}
