//! RSA PKCS#1 v1.5 encryption of `encrypt_random_key`, with padding from a caller's seeded RNG
//! (so sealed messages are deterministic) and a fast public operation.
//!
//! Why not `rsa::RsaPublicKey::encrypt`: its generic modular exponentiation made 88% of the
//! time of serving a message (about 0.3 ms each, 30 s for the 100,000-message benchmark). The
//! public exponent is small, so a Montgomery ladder over 64-bit limbs does the same work in a
//! tenth of the time. The `rsa` crate still parses the keys, and the tests check every result
//! against its private-key decryption and its `modpow`. Used by [`crate::chat`].

use rand_core::RngCore;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPublicKey};

/// A public key prepared for Montgomery arithmetic.
#[derive(Debug, Clone)]
pub(crate) struct Sealer {
    /// The modulus, little-endian 64-bit limbs.
    n: Vec<u64>,
    /// `-n^-1 mod 2^64`.
    n0inv: u64,
    /// `R^2 mod n` with `R = 2^(64 * limbs)`, to enter Montgomery form.
    r2: Vec<u64>,
    /// The public exponent, big-endian bytes.
    e: Vec<u8>,
    /// The modulus length in bytes: the ciphertext length.
    k: usize,
}

impl Sealer {
    pub(crate) fn new(key: &RsaPublicKey) -> Sealer {
        let n = key.n();
        let limbs = n.bits().div_ceil(64);
        let r2 = (BigUint::from(1u32) << (2 * 64 * limbs)) % n;
        let n = to_limbs(n, limbs);
        // Newton's iteration doubles the correct low bits each step: 1 -> 64 in 6 steps.
        let mut inv: u64 = 1;
        for _ in 0..6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(n[0].wrapping_mul(inv)));
        }
        Sealer {
            n0inv: inv.wrapping_neg(),
            r2: to_limbs(&r2, limbs),
            e: key.e().to_bytes_be(),
            k: key.size(),
            n,
        }
    }

    /// PKCS#1 v1.5 encryption (RFC 8017 section 7.2.1) of `msg`, padding bytes from `rng`.
    ///
    /// # Panics
    ///
    /// If `msg` is longer than the key allows (`k - 11` bytes).
    pub(crate) fn seal(&self, rng: &mut impl RngCore, msg: &[u8]) -> Vec<u8> {
        assert!(msg.len() + 11 <= self.k, "message too long for the RSA key");
        let mut em = Vec::with_capacity(self.k);
        em.extend_from_slice(&[0, 2]);
        while em.len() < self.k - msg.len() - 1 {
            // Padding bytes must not be zero.
            let byte = (rng.next_u32() & 0xff) as u8;
            if byte != 0 {
                em.push(byte);
            }
        }
        em.push(0);
        em.extend_from_slice(msg);
        // EM starts with 0x00, so as a number it is below n.
        let m = to_limbs(&BigUint::from_bytes_be(&em), self.n.len());
        let c = self.modpow(&m);
        let mut out = vec![0u8; self.k];
        for (i, limb) in c.iter().enumerate() {
            for (j, byte) in limb.to_le_bytes().into_iter().enumerate() {
                if let Some(at) = (self.k).checked_sub(1 + 8 * i + j) {
                    out[at] = byte;
                }
            }
        }
        out
    }

    /// `m^e mod n`, for `m < n`.
    fn modpow(&self, m: &[u64]) -> Vec<u64> {
        let x = self.mont_mul(m, &self.r2);
        let mut acc: Option<Vec<u64>> = None;
        for byte in &self.e {
            for bit in (0..8).rev() {
                if let Some(a) = acc.as_mut() {
                    *a = self.mont_mul(a, a);
                }
                if byte >> bit & 1 == 1 {
                    acc = Some(match acc {
                        Some(a) => self.mont_mul(&a, &x),
                        None => x.clone(),
                    });
                }
            }
        }
        let mut one = vec![0u64; self.n.len()];
        one[0] = 1;
        self.mont_mul(&acc.expect("e > 0"), &one)
    }

    /// Montgomery product `a * b / R mod n` (CIOS), for `a, b < n`.
    fn mont_mul(&self, a: &[u64], b: &[u64]) -> Vec<u64> {
        let s = self.n.len();
        // Equal lengths up front let the compiler drop the bounds checks in the loops.
        let (n, a, b) = (&self.n[..s], &a[..s], &b[..s]);
        let mut t = vec![0u64; s + 2];
        for &bi in b {
            let mut carry = 0u64;
            for (tj, &aj) in t[..s].iter_mut().zip(a) {
                (*tj, carry) = mac(*tj, aj, bi, carry);
            }
            let (sum, over) = t[s].overflowing_add(carry);
            t[s] = sum;
            t[s + 1] = u64::from(over);
            let m = t[0].wrapping_mul(self.n0inv);
            let (_, mut carry) = mac(t[0], m, n[0], 0);
            for j in 1..s {
                (t[j - 1], carry) = mac(t[j], m, n[j], carry);
            }
            let (sum, over) = t[s].overflowing_add(carry);
            t[s - 1] = sum;
            t[s] = t[s + 1] + u64::from(over);
        }
        // t < 2n: subtract n once if t >= n.
        let high = t[s];
        t.truncate(s);
        if high != 0 || !less(&t, n) {
            let mut borrow = 0u64;
            for (o, &nj) in t.iter_mut().zip(n) {
                let (d1, b1) = o.overflowing_sub(nj);
                let (d2, b2) = d1.overflowing_sub(borrow);
                *o = d2;
                borrow = u64::from(b1 || b2);
            }
        }
        t
    }
}

/// `t + a * b + carry` as (low, high) words; never overflows 128 bits.
fn mac(t: u64, a: u64, b: u64, carry: u64) -> (u64, u64) {
    let wide = u128::from(t) + u128::from(a) * u128::from(b) + u128::from(carry);
    (wide as u64, (wide >> 64) as u64)
}

/// `a < b` for equal-length little-endian limbs.
fn less(a: &[u64], b: &[u64]) -> bool {
    a.iter().rev().cmp(b.iter().rev()) == std::cmp::Ordering::Less
}

fn to_limbs(x: &BigUint, limbs: usize) -> Vec<u64> {
    let mut bytes = x.to_bytes_le();
    bytes.resize(limbs * 8, 0);
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePublicKey;
    use rsa::{Pkcs1v15Encrypt, RsaPrivateKey};

    fn keys() -> Vec<(RsaPublicKey, Option<RsaPrivateKey>)> {
        let v1 = RsaPrivateKey::from_pkcs1_pem(include_str!("../../tests/fixtures/keys/v1.pem"))
            .unwrap();
        let big = include_str!("../../tests/fixtures/keys/rsa4096.pub.pem");
        let small = include_str!("../../tests/fixtures/keys/rsa1024.pub.pem");
        vec![
            (v1.to_public_key(), Some(v1)),
            (RsaPublicKey::from_public_key_pem(big).unwrap(), None),
            (RsaPublicKey::from_public_key_pem(small).unwrap(), None),
        ]
    }

    #[test]
    fn modpow_matches_the_rsa_crate() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        for (key, _) in keys() {
            let sealer = Sealer::new(&key);
            for _ in 0..20 {
                let mut bytes = vec![0u8; key.size()];
                rng.fill_bytes(&mut bytes);
                let m = BigUint::from_bytes_be(&bytes) % key.n();
                let expected = m.modpow(key.e(), key.n());
                let got = sealer.modpow(&to_limbs(&m, sealer.n.len()));
                assert_eq!(got, to_limbs(&expected, sealer.n.len()));
            }
        }
    }

    #[test]
    fn sealed_keys_decrypt_with_the_private_key_and_are_deterministic() {
        let (public, private) = keys().remove(0);
        let private = private.unwrap();
        let sealer = Sealer::new(&public);
        for len in [0, 1, 88, public.size() - 11] {
            let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let sealed = sealer.seal(
                &mut rand_chacha::ChaCha20Rng::seed_from_u64(len as u64),
                &msg,
            );
            assert_eq!(sealed.len(), public.size());
            assert_eq!(private.decrypt(Pkcs1v15Encrypt, &sealed).unwrap(), msg);
            let again = sealer.seal(
                &mut rand_chacha::ChaCha20Rng::seed_from_u64(len as u64),
                &msg,
            );
            assert_eq!(sealed, again);
        }
    }

    #[test]
    #[should_panic(expected = "too long")]
    fn a_message_too_long_for_the_key_is_refused() {
        let (public, _) = keys().remove(0);
        let msg = vec![1u8; public.size() - 10];
        Sealer::new(&public).seal(&mut rand_chacha::ChaCha20Rng::seed_from_u64(0), &msg);
    }
}
