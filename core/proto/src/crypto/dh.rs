//! Key exchange groups: MODP 2048/3072 (RFC 3526), ECP 256/384 (RFC 5903), Curve25519
//! (RFC 8031). Every private value is zeroized on drop; peer values are validated.

mod ecp;
mod modp;
mod x25519;

use super::error::CryptoError;
use super::secret::Secret;
use crate::rng::Rng;
use crate::wire::DhGroup;

/// One ephemeral key exchange: our public value, and the shared secret with the peer's.
pub trait KeyExchange: Send {
    fn group(&self) -> DhGroup;
    /// Our public value as it goes into the KE payload.
    fn public_key(&self) -> &[u8];
    /// g^ir from the peer's KE payload data (validated: wrong length or a point not on the
    /// curve is `InvalidPublicValue`).
    fn shared_secret(&self, peer: &[u8]) -> Result<Secret, CryptoError>;
}

/// Whether Roam implements `group`.
pub fn is_supported(group: DhGroup) -> bool {
    matches!(
        group,
        DhGroup::MODP_2048
            | DhGroup::MODP_3072
            | DhGroup::ECP_256
            | DhGroup::ECP_384
            | DhGroup::CURVE25519
    )
}

/// Length of the KE payload's key exchange data for `group`, if Roam implements it.
pub fn public_key_len(group: DhGroup) -> Option<usize> {
    match group {
        DhGroup::MODP_2048 => Some(256),
        DhGroup::MODP_3072 => Some(384),
        DhGroup::ECP_256 => Some(2 * ecp::Ecp256::COORD_LEN),
        DhGroup::ECP_384 => Some(2 * ecp::Ecp384::COORD_LEN),
        DhGroup::CURVE25519 => Some(32),
        _ => None,
    }
}

/// A fresh ephemeral key pair for `group`.
pub fn new_key_exchange(
    group: DhGroup,
    rng: &mut dyn Rng,
) -> Result<Box<dyn KeyExchange>, CryptoError> {
    Ok(match group {
        DhGroup::MODP_2048 | DhGroup::MODP_3072 => {
            Box::new(modp::ModpKeyExchange::new(group, rng)?)
        }
        DhGroup::ECP_256 => Box::new(ecp::Ecp256::new(rng)?),
        DhGroup::ECP_384 => Box::new(ecp::Ecp384::new(rng)?),
        DhGroup::CURVE25519 => Box::new(x25519::X25519::new(rng)),
        _ => return Err(CryptoError::Unsupported(format!("{group}"))),
    })
}

impl std::fmt::Debug for dyn KeyExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyExchange({})", self.group())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeededRng;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// Hands out fixed bytes, so a test can choose the private value.
    struct FixedRng(Vec<u8>);
    impl Rng for FixedRng {
        fn fill(&mut self, dst: &mut [u8]) {
            assert!(self.0.len() >= dst.len(), "FixedRng ran dry");
            let rest = self.0.split_off(dst.len());
            dst.copy_from_slice(&self.0);
            self.0 = rest;
        }
    }

    fn with_private(group: DhGroup, private: &str) -> Box<dyn KeyExchange> {
        new_key_exchange(group, &mut FixedRng(h(private))).unwrap()
    }

    #[test]
    fn supported_groups() {
        for g in [
            DhGroup::MODP_2048,
            DhGroup::MODP_3072,
            DhGroup::ECP_256,
            DhGroup::ECP_384,
            DhGroup::CURVE25519,
        ] {
            assert!(is_supported(g));
            let kx = new_key_exchange(g, &mut SeededRng::new(1)).unwrap();
            assert_eq!(kx.group(), g);
            assert_eq!(Some(kx.public_key().len()), public_key_len(g));
        }
        for g in [
            DhGroup::MODP_1024,
            DhGroup::MODP_1536,
            DhGroup::ECP_521,
            DhGroup::CURVE448,
            DhGroup(1234),
        ] {
            assert!(!is_supported(g));
            assert!(matches!(
                new_key_exchange(g, &mut SeededRng::new(1)),
                Err(CryptoError::Unsupported(_))
            ));
        }
    }

    #[test]
    fn rfc7748_x25519() {
        let alice = with_private(
            DhGroup::CURVE25519,
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        );
        let bob = with_private(
            DhGroup::CURVE25519,
            "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        );
        assert_eq!(
            hex::encode(alice.public_key()),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
        assert_eq!(
            hex::encode(bob.public_key()),
            "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
        );
        let k = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
        assert_eq!(
            hex::encode(alice.shared_secret(bob.public_key()).unwrap().as_bytes()),
            k
        );
        assert_eq!(
            hex::encode(bob.shared_secret(alice.public_key()).unwrap().as_bytes()),
            k
        );
    }

    #[test]
    fn x25519_rejects_bad_peers() {
        let kx = new_key_exchange(DhGroup::CURVE25519, &mut SeededRng::new(2)).unwrap();
        assert_eq!(
            kx.shared_secret(&[9u8; 31]),
            Err(CryptoError::InvalidPublicValue)
        );
        assert_eq!(
            kx.shared_secret(&[9u8; 33]),
            Err(CryptoError::InvalidPublicValue)
        );
        // Low-order points give an all-zero shared secret.
        assert_eq!(
            kx.shared_secret(&[0u8; 32]),
            Err(CryptoError::InvalidPublicValue)
        );
        let mut one = [0u8; 32];
        one[0] = 1;
        assert_eq!(kx.shared_secret(&one), Err(CryptoError::InvalidPublicValue));
    }

    /// RFC 5903 §8.1 (ECP-256) and §8.2 (ECP-384): (i, g^i), (r, g^r), g^ir.
    #[test]
    fn rfc5903_ecp() {
        let cases = [
            (
                DhGroup::ECP_256,
                "C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433",
                "DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180\
                 5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3",
                "C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53",
                "D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63\
                 56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB",
                "D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE",
            ),
            (
                DhGroup::ECP_384,
                "099F3C7034D4A2C699884D73A375A67F7624EF7C6B3C0F160647B67414DCE655E35B538041E649EE3FAEF896783AB194",
                "667842D7D180AC2CDE6F74F37551F55755C7645C20EF73E31634FE72B4C55EE6DE3AC808ACB4BDB4C88732AEE95F41AA\
                 9482ED1FC0EEB9CAFC4984625CCFC23F65032149E0E144ADA024181535A0F38EEB9FCFF3C2C947DAE69B4C634573A81C",
                "41CB0779B4BDB85D47846725FBEC3C9430FAB46CC8DC5060855CC9BDA0AA2942E0308312916B8ED2960E4BD55A7448FC",
                "E558DBEF53EECDE3D3FCCFC1AEA08A89A987475D12FD950D83CFA41732BC509D0D1AC43A0336DEF96FDA41D0774A3571\
                 DCFBEC7AACF3196472169E838430367F66EEBE3C6E70C416DD5F0C68759DD1FFF83FA40142209DFF5EAAD96DB9E6386C",
                "11187331C279962D93D604243FD592CB9D0A926F422E47187521287E7156C5C4D603135569B9E9D09CF5D4A270F59746",
            ),
        ];
        for (group, i, gi, r, gr, gir) in cases {
            let ini = with_private(group, i);
            let res = with_private(group, r);
            assert_eq!(ini.public_key(), &h(gi)[..], "{group} g^i");
            assert_eq!(res.public_key(), &h(gr)[..], "{group} g^r");
            assert_eq!(
                ini.shared_secret(&h(gr)).unwrap().as_bytes(),
                &h(gir)[..],
                "{group}"
            );
            assert_eq!(
                res.shared_secret(&h(gi)).unwrap().as_bytes(),
                &h(gir)[..],
                "{group}"
            );
        }
    }

    #[test]
    fn ecp_rejects_bad_peers() {
        for group in [DhGroup::ECP_256, DhGroup::ECP_384] {
            let mut rng = SeededRng::new(3);
            let a = new_key_exchange(group, &mut rng).unwrap();
            let b = new_key_exchange(group, &mut rng).unwrap();
            let good = b.public_key().to_vec();
            assert!(a.shared_secret(&good).is_ok());
            // Wrong lengths, with or without a SEC1 prefix.
            assert_eq!(
                a.shared_secret(&good[1..]),
                Err(CryptoError::InvalidPublicValue)
            );
            assert_eq!(
                a.shared_secret(&[&[4u8][..], &good].concat()),
                Err(CryptoError::InvalidPublicValue)
            );
            assert_eq!(a.shared_secret(&[]), Err(CryptoError::InvalidPublicValue));
            // Not on the curve.
            let mut off = good.clone();
            let last = off.len() - 1;
            off[last] ^= 1;
            assert_eq!(a.shared_secret(&off), Err(CryptoError::InvalidPublicValue));
            // The identity has no affine encoding; all zeros is not a curve point.
            assert_eq!(
                a.shared_secret(&vec![0u8; good.len()]),
                Err(CryptoError::InvalidPublicValue)
            );
        }
    }

    #[test]
    fn modp_primes_match_rfc3526() {
        let (p, bits) = modp::prime(DhGroup::MODP_2048).unwrap();
        assert_eq!((p.len(), bits), (256, 2048));
        assert_eq!(p[0], 0xff);
        let hex2048 = hex::encode_upper(&p);
        assert!(hex2048.starts_with("FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1"));
        assert!(hex2048.contains("29024E088A67CC74020BBEA63B139B22514A08798E3404DD"));
        assert!(hex2048.contains("DE2BCBF6955817183995497CEA956AE515D2261898FA0510"));
        assert!(hex2048.ends_with("15728E5A8AACAA68FFFFFFFFFFFFFFFF"));

        let (p, bits) = modp::prime(DhGroup::MODP_3072).unwrap();
        assert_eq!((p.len(), bits), (384, 3072));
        let hex3072 = hex::encode_upper(&p);
        assert!(hex3072.starts_with(&hex2048[..hex2048.len() - 32]));
        assert!(hex3072.contains("ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6B"));
        assert!(hex3072.ends_with("4B82D120A93AD2CAFFFFFFFFFFFFFFFF"));
        assert!(modp::prime(DhGroup::MODP_1024).is_none());
    }

    #[test]
    fn modp_both_sides_agree() {
        for group in [DhGroup::MODP_2048, DhGroup::MODP_3072] {
            let mut rng = SeededRng::new(4);
            let a = new_key_exchange(group, &mut rng).unwrap();
            let b = new_key_exchange(group, &mut rng).unwrap();
            let len = public_key_len(group).unwrap();
            assert_eq!(a.public_key().len(), len);
            assert_ne!(a.public_key(), b.public_key());
            let ab = a.shared_secret(b.public_key()).unwrap();
            let ba = b.shared_secret(a.public_key()).unwrap();
            assert_eq!(ab, ba);
            assert_eq!(ab.len(), len);
        }
    }

    #[test]
    fn modp_small_exponent_known_answer() {
        // With private exponent 1, the public value is g = 2, left-padded to 256 bytes, and
        // the shared secret is the peer's value itself.
        let mut x = vec![0u8; 64];
        x[63] = 1;
        let kx = new_key_exchange(DhGroup::MODP_2048, &mut FixedRng(x)).unwrap();
        let mut two = vec![0u8; 256];
        two[255] = 2;
        assert_eq!(kx.public_key(), &two[..]);
        let mut peer = vec![0u8; 256];
        peer[200] = 0x77;
        peer[255] = 5;
        assert_eq!(kx.shared_secret(&peer).unwrap().as_bytes(), &peer[..]);
        // Exponent 2: 3^2 = 9.
        let mut x = vec![0u8; 64];
        x[63] = 2;
        let kx = new_key_exchange(DhGroup::MODP_2048, &mut FixedRng(x)).unwrap();
        let mut three = vec![0u8; 256];
        three[255] = 3;
        assert_eq!(kx.shared_secret(&three).unwrap().as_bytes()[255], 9);
    }

    #[test]
    fn modp_rejects_bad_peers() {
        let kx = new_key_exchange(DhGroup::MODP_2048, &mut SeededRng::new(5)).unwrap();
        let (p, _) = modp::prime(DhGroup::MODP_2048).unwrap();
        let num = |last: u8| {
            let mut v = vec![0u8; 256];
            v[255] = last;
            v
        };
        let mut p_minus_1 = p.clone();
        p_minus_1[255] -= 1;
        let mut p_minus_2 = p.clone();
        p_minus_2[255] -= 2;
        for bad in [num(0), num(1), p_minus_1, p.clone(), vec![0xff; 256]] {
            assert_eq!(kx.shared_secret(&bad), Err(CryptoError::InvalidPublicValue));
        }
        assert_eq!(
            kx.shared_secret(&num(2)[1..]),
            Err(CryptoError::InvalidPublicValue)
        );
        assert_eq!(
            kx.shared_secret(&[&[0u8][..], &num(2)].concat()),
            Err(CryptoError::InvalidPublicValue)
        );
        assert_eq!(kx.shared_secret(&[]), Err(CryptoError::InvalidPublicValue));
        // The edges of the valid range are accepted.
        assert!(kx.shared_secret(&num(2)).is_ok());
        assert!(kx.shared_secret(&p_minus_2).is_ok());
    }

    #[test]
    fn debug_shows_no_key_material() {
        let kx = new_key_exchange(DhGroup::CURVE25519, &mut SeededRng::new(6)).unwrap();
        assert_eq!(format!("{:?}", kx), "KeyExchange(CURVE25519)");
        let s = kx.shared_secret(&[9u8; 32]).unwrap();
        assert_eq!(format!("{s:?}"), "Secret(32 bytes)");
    }
}
