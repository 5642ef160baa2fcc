//! MD5 (RFC 1321) and Apache's `$apr1$` password hash, which `htpasswd -m` writes and
//! the system's `crypt(3)` does not know. Both are written out here because larder
//! takes no crate for them; MD5 is used for nothing else (it is not a secure hash:
//! apr1 is accepted because existing password files hold it).

/// The MD5 digest of `data`.
pub fn md5(data: &[u8]) -> [u8; 16] {
    let mut m = Md5::new();
    m.update(data);
    m.finish()
}

/// Per-round shift amounts.
const S: [u32; 64] = [
    7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9,
    14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15,
    21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
];

/// `floor(abs(sin(i + 1)) * 2^32)`, RFC 1321 §3.4.
const K: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
];

/// An MD5 computation in progress.
#[derive(Clone)]
pub struct Md5 {
    state: [u32; 4],
    block: [u8; 64],
    /// Bytes in `block`.
    used: usize,
    /// Bytes hashed in all.
    len: u64,
}

impl Default for Md5 {
    fn default() -> Md5 {
        Md5::new()
    }
}

impl Md5 {
    /// A new computation.
    pub fn new() -> Md5 {
        Md5 {
            state: [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476],
            block: [0; 64],
            used: 0,
            len: 0,
        }
    }

    /// Adds `data`.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len = self.len.wrapping_add(data.len() as u64);
        while !data.is_empty() {
            let take = (64 - self.used).min(data.len());
            let (now, rest) = data.split_at(take);
            self.block[self.used..self.used + take].copy_from_slice(now);
            self.used += take;
            data = rest;
            if self.used == 64 {
                let block = self.block;
                self.compress(&block);
                self.used = 0;
            }
        }
    }

    /// The digest.
    pub fn finish(mut self) -> [u8; 16] {
        let bits = self.len.wrapping_mul(8);
        self.update(&[0x80]);
        while self.used != 56 {
            self.update(&[0]);
        }
        self.update(&bits.to_le_bytes());
        let mut out = [0u8; 16];
        for (chunk, word) in out.chunks_exact_mut(4).zip(self.state) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        out
    }

    fn compress(&mut self, block: &[u8; 64]) {
        let mut m = [0u32; 16];
        for (word, bytes) in m.iter_mut().zip(block.chunks_exact(4)) {
            *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        let [mut a, mut b, mut c, mut d] = self.state;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(K[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        for (s, v) in self.state.iter_mut().zip([a, b, c, d]) {
            *s = s.wrapping_add(v);
        }
    }
}

/// The prefix of Apache's MD5 hashes.
pub const APR1: &str = "$apr1$";

/// The alphabet of crypt's base-64 encoding.
const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The salt of an MD5-crypt `setting` after its `magic` (`$apr1$` or `$1$`): up to
/// eight bytes, ending at the next `$`.
fn salt<'a>(setting: &'a [u8], magic: &str) -> Option<&'a [u8]> {
    let rest = setting.strip_prefix(magic.as_bytes())?;
    let end = rest.iter().position(|&b| b == b'$').unwrap_or(rest.len());
    rest.get(..end.min(8))
}

/// The MD5-crypt hash of `password` with the magic and salt of `setting` (Poul-Henning
/// Kamp's algorithm, as Apache's `apr_md5_encode` has it with magic `$apr1$`, and
/// glibc with `$1$`): `magic salt $ 22 characters`. `None` if `setting` does not begin
/// with `magic`.
pub fn md5_crypt(password: &[u8], setting: &[u8], magic: &str) -> Option<Vec<u8>> {
    let salt = salt(setting, magic)?;
    let mut ctx = Md5::new();
    ctx.update(password);
    ctx.update(magic.as_bytes());
    ctx.update(salt);
    let mut alt = Md5::new();
    alt.update(password);
    alt.update(salt);
    alt.update(password);
    let alt = alt.finish();
    let mut left = password.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alt[..n]);
        left -= n;
    }
    let mut i = password.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update(&[0]);
        } else {
            ctx.update(password.get(..1).unwrap_or_default());
        }
        i >>= 1;
    }
    let mut fin = ctx.finish();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(password);
        } else {
            c.update(&fin);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(password);
        }
        if round & 1 == 1 {
            c.update(&fin);
        } else {
            c.update(password);
        }
        fin = c.finish();
    }
    let mut out = Vec::with_capacity(magic.len() + salt.len() + 23);
    out.extend_from_slice(magic.as_bytes());
    out.extend_from_slice(salt);
    out.push(b'$');
    let f = fin.map(u32::from);
    for (x, y, z) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        push64(&mut out, (f[x] << 16) | (f[y] << 8) | f[z], 4);
    }
    push64(&mut out, f[11], 2);
    Some(out)
}

fn push64(out: &mut Vec<u8>, mut v: u32, n: usize) {
    for _ in 0..n {
        out.push(ITOA64[(v & 0x3f) as usize]);
        v >>= 6;
    }
}

/// Whether `a` and `b` are equal, in a time that depends on their lengths only, so that
/// how long a comparison takes says nothing of where a guess went wrong.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(d: [u8; 16]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn md5_matches_the_rfc_1321_test_suite() {
        let suite = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                "abcdefghijklmnopqrstuvwxyz",
                "c3fcd3d76192e4007dfb496cca67e13b",
            ),
            (
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                "d174ab98d277d9f5a5611c2c9f419d9f",
            ),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, want) in suite {
            assert_eq!(hex(md5(input.as_bytes())), want, "{input:?}");
        }
    }

    #[test]
    fn md5_is_the_same_however_the_input_is_split() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let whole = md5(&data);
        for split in [1, 55, 56, 63, 64, 65, 128, 999] {
            let mut m = Md5::new();
            for part in data.chunks(split) {
                m.update(part);
            }
            assert_eq!(m.finish(), whole, "chunks of {split}");
        }
    }

    /// Made by Apache's `htpasswd -nbm` (Debian 12, apache2-utils 2.4).
    #[test]
    fn apr1_matches_hashes_htpasswd_made() {
        let vectors = [
            ("p", "$apr1$SBGPdF/5$EbutezAKpYw8H1zsmKq6k0"),
            ("secret", "$apr1$OiOyaSYH$CZ3RKwTNqY9BDC/FVfeC11"),
            (
                "a much longer password, past sixteen bytes",
                "$apr1$mn9WLF52$44zRgkkyfhqZYJhDwxAkw1",
            ),
        ];
        for (password, hash) in vectors {
            let got = md5_crypt(password.as_bytes(), hash.as_bytes(), APR1).unwrap();
            assert_eq!(String::from_utf8(got).unwrap(), hash, "{password:?}");
        }
        let wrong = md5_crypt(b"q", vectors[0].1.as_bytes(), APR1).unwrap();
        assert_ne!(wrong, vectors[0].1.as_bytes());
    }

    #[test]
    fn md5_crypt_needs_its_magic() {
        assert_eq!(md5_crypt(b"p", b"$1$abc$", APR1), None);
        assert!(md5_crypt(b"p", b"$1$abc$", "$1$").is_some());
    }

    #[test]
    fn constant_time_eq_compares_bytes_and_lengths() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
