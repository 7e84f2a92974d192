//! SHA-512 (FIPS 180-4), for realms measured with SHA-512.
//! The constants were generated from their definition (fractional parts of
//! the cube and square roots of the first primes).

const K: [u64; 80] = [
    0x428a2f98d728ae22,
    0x7137449123ef65cd,
    0xb5c0fbcfec4d3b2f,
    0xe9b5dba58189dbbc,
    0x3956c25bf348b538,
    0x59f111f1b605d019,
    0x923f82a4af194f9b,
    0xab1c5ed5da6d8118,
    0xd807aa98a3030242,
    0x12835b0145706fbe,
    0x243185be4ee4b28c,
    0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f,
    0x80deb1fe3b1696b1,
    0x9bdc06a725c71235,
    0xc19bf174cf692694,
    0xe49b69c19ef14ad2,
    0xefbe4786384f25e3,
    0x0fc19dc68b8cd5b5,
    0x240ca1cc77ac9c65,
    0x2de92c6f592b0275,
    0x4a7484aa6ea6e483,
    0x5cb0a9dcbd41fbd4,
    0x76f988da831153b5,
    0x983e5152ee66dfab,
    0xa831c66d2db43210,
    0xb00327c898fb213f,
    0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2,
    0xd5a79147930aa725,
    0x06ca6351e003826f,
    0x142929670a0e6e70,
    0x27b70a8546d22ffc,
    0x2e1b21385c26c926,
    0x4d2c6dfc5ac42aed,
    0x53380d139d95b3df,
    0x650a73548baf63de,
    0x766a0abb3c77b2a8,
    0x81c2c92e47edaee6,
    0x92722c851482353b,
    0xa2bfe8a14cf10364,
    0xa81a664bbc423001,
    0xc24b8b70d0f89791,
    0xc76c51a30654be30,
    0xd192e819d6ef5218,
    0xd69906245565a910,
    0xf40e35855771202a,
    0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8,
    0x1e376c085141ab53,
    0x2748774cdf8eeb99,
    0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63,
    0x4ed8aa4ae3418acb,
    0x5b9cca4f7763e373,
    0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc,
    0x78a5636f43172f60,
    0x84c87814a1f0ab72,
    0x8cc702081a6439ec,
    0x90befffa23631e28,
    0xa4506cebde82bde9,
    0xbef9a3f7b2c67915,
    0xc67178f2e372532b,
    0xca273eceea26619c,
    0xd186b8c721c0c207,
    0xeada7dd6cde0eb1e,
    0xf57d4f7fee6ed178,
    0x06f067aa72176fba,
    0x0a637dc5a2c898a6,
    0x113f9804bef90dae,
    0x1b710b35131c471b,
    0x28db77f523047d84,
    0x32caab7b40c72493,
    0x3c9ebe0a15c9bebc,
    0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6,
    0x597f299cfc657e2a,
    0x5fcb6fab3ad6faec,
    0x6c44198c4a475817,
];

pub struct Sha512 {
    h: [u64; 8],
    buf: [u8; 128],
    n: usize,
    len: u128,
}

impl Sha512 {
    pub fn new() -> Self {
        Sha512 {
            h: [
                0x6a09e667f3bcc908,
                0xbb67ae8584caa73b,
                0x3c6ef372fe94f82b,
                0xa54ff53a5f1d36f1,
                0x510e527fade682d1,
                0x9b05688c2b3e6c1f,
                0x1f83d9abfb41bd6b,
                0x5be0cd19137e2179,
            ],
            buf: [0; 128],
            n: 0,
            len: 0,
        }
    }

    fn block(&mut self) {
        let mut w = [0u64; 80];
        for (i, wi) in w.iter_mut().take(16).enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&self.buf[i * 8..i * 8 + 8]);
            *wi = u64::from_be_bytes(b);
        }
        for i in 16..80 {
            let s0 = w[i - 15].rotate_right(1) ^ w[i - 15].rotate_right(8) ^ (w[i - 15] >> 7);
            let s1 = w[i - 2].rotate_right(19) ^ w[i - 2].rotate_right(61) ^ (w[i - 2] >> 6);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let mut s = self.h;
        for i in 0..80 {
            let s1 = s[4].rotate_right(14) ^ s[4].rotate_right(18) ^ s[4].rotate_right(41);
            let ch = (s[4] & s[5]) ^ (!s[4] & s[6]);
            let t1 = s[7]
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = s[0].rotate_right(28) ^ s[0].rotate_right(34) ^ s[0].rotate_right(39);
            let maj = (s[0] & s[1]) ^ (s[0] & s[2]) ^ (s[1] & s[2]);
            let t2 = s0.wrapping_add(maj);
            s = [
                t1.wrapping_add(t2),
                s[0],
                s[1],
                s[2],
                s[3].wrapping_add(t1),
                s[4],
                s[5],
                s[6],
            ];
        }
        for (h, v) in self.h.iter_mut().zip(s) {
            *h = h.wrapping_add(v);
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.len += data.len() as u128;
        for &b in data {
            self.buf[self.n] = b;
            self.n += 1;
            if self.n == 128 {
                self.block();
                self.n = 0;
            }
        }
    }

    pub fn finish(mut self) -> [u8; 64] {
        let bits = self.len * 8;
        self.update(&[0x80]);
        while self.n != 112 {
            self.update(&[0]);
        }
        self.buf[112..].copy_from_slice(&bits.to_be_bytes());
        self.block();
        let mut out = [0u8; 64];
        for (i, h) in self.h.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&h.to_be_bytes());
        }
        out
    }
}

/// The measurement hash of a realm: SHA-256 or SHA-512 (RsiHashAlgorithm
/// 0 and 1). Results are 64 bytes, zero-padded for SHA-256.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Algo {
    Sha256,
    Sha512,
}

pub enum Hasher {
    S256(crate::sha256::Sha256),
    S512(Sha512),
}

impl Algo {
    pub fn name(self) -> &'static str {
        match self {
            Algo::Sha256 => "sha256",
            Algo::Sha512 => "sha512",
        }
    }
    pub fn len(self) -> usize {
        match self {
            Algo::Sha256 => 32,
            Algo::Sha512 => 64,
        }
    }
    pub fn hasher(self) -> Hasher {
        match self {
            Algo::Sha256 => Hasher::S256(crate::sha256::Sha256::new()),
            Algo::Sha512 => Hasher::S512(Sha512::new()),
        }
    }
    pub fn hash(self, data: &[u8]) -> [u8; 64] {
        let mut h = self.hasher();
        h.update(data);
        h.finish()
    }
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::S256(h) => h.update(data),
            Hasher::S512(h) => h.update(data),
        }
    }
    pub fn finish(self) -> [u8; 64] {
        match self {
            Hasher::S256(h) => {
                let mut o = [0u8; 64];
                o[..32].copy_from_slice(&h.finish());
                o
            }
            Hasher::S512(h) => h.finish(),
        }
    }
}
