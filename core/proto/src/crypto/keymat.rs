//! Key derivation: SKEYSEED and the seven IKE SA keys (RFC 7296 §2.14), CHILD SA keys
//! (§2.17), and the keys of a rekeyed IKE SA (§2.18), with the shared secrets of additional
//! key exchanges (RFC 9370 §2.2.4) where a CREATE_CHILD_SA ran IKE_FOLLOWUP_KE.

use super::error::CryptoError;
use super::prf::Prf;
use super::secret::Secret;

/// The keys of an IKE SA.
#[derive(Debug, Clone)]
pub struct IkeKeys {
    pub sk_d: Secret,
    pub sk_ai: Secret,
    pub sk_ar: Secret,
    pub sk_ei: Secret,
    pub sk_er: Secret,
    pub sk_pi: Secret,
    pub sk_pr: Secret,
}

/// SKEYSEED = prf(Ni | Nr, g^ir), then prf+(SKEYSEED, Ni | Nr | SPIi | SPIr) split into the
/// seven keys. `encr_len` includes any salt (AES-GCM: key + 4); `integ_len` is 0 for AEAD.
/// (For an IKE rekey, use `derive_rekeyed_ike_keys`.)
#[allow(clippy::too_many_arguments)]
pub fn derive_ike_keys(
    prf: Prf,
    ni: &[u8],
    nr: &[u8],
    g_ir: &[u8],
    spi_i: u64,
    spi_r: u64,
    encr_len: usize,
    integ_len: usize,
) -> Result<IkeKeys, CryptoError> {
    let skeyseed = prf.compute(&[ni, nr].concat(), &[g_ir]);
    split_ike_keys(prf, &skeyseed, ni, nr, spi_i, spi_r, encr_len, integ_len)
}

/// The keys of the new IKE SA of an IKE rekey (RFC 7296 §2.18): SKEYSEED = prf(SK_d (old),
/// g^ir (new) | Ni | Nr), then the seven keys as in §2.14 with the new SA's nonces and SPIs.
/// `old_prf` is the PRF of the SA being rekeyed, `prf` the newly negotiated one.
#[allow(clippy::too_many_arguments)]
pub fn derive_rekeyed_ike_keys(
    old_prf: Prf,
    old_sk_d: &[u8],
    prf: Prf,
    g_ir: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: u64,
    spi_r: u64,
    encr_len: usize,
    integ_len: usize,
) -> Result<IkeKeys, CryptoError> {
    derive_rekeyed_ike_keys_hybrid(
        old_prf,
        old_sk_d,
        prf,
        g_ir,
        &[],
        ni,
        nr,
        spi_i,
        spi_r,
        encr_len,
        integ_len,
    )
}

/// The keys of the new IKE SA of a rekey with additional key exchanges (RFC 9370 §2.2.4):
/// SKEYSEED = prf(SK_d (old), SK(0) | Ni | Nr | SK(1) | ... | SK(n)), SK(0) being the shared
/// secret of the CREATE_CHILD_SA's KE and `additional` those of the IKE_FOLLOWUP_KE
/// exchanges in order; then the seven keys as in §2.14. Without additional secrets this is
/// exactly [`derive_rekeyed_ike_keys`].
#[allow(clippy::too_many_arguments)]
pub fn derive_rekeyed_ike_keys_hybrid(
    old_prf: Prf,
    old_sk_d: &[u8],
    prf: Prf,
    sk0: &[u8],
    additional: &[&[u8]],
    ni: &[u8],
    nr: &[u8],
    spi_i: u64,
    spi_r: u64,
    encr_len: usize,
    integ_len: usize,
) -> Result<IkeKeys, CryptoError> {
    let mut data: Vec<&[u8]> = vec![sk0, ni, nr];
    data.extend_from_slice(additional);
    let skeyseed = old_prf.compute(old_sk_d, &data);
    split_ike_keys(prf, &skeyseed, ni, nr, spi_i, spi_r, encr_len, integ_len)
}

/// prf+(SKEYSEED, Ni | Nr | SPIi | SPIr) cut into SK_d, SK_ai, SK_ar, SK_ei, SK_er, SK_pi, SK_pr.
#[allow(clippy::too_many_arguments)]
fn split_ike_keys(
    prf: Prf,
    skeyseed: &Secret,
    ni: &[u8],
    nr: &[u8],
    spi_i: u64,
    spi_r: u64,
    encr_len: usize,
    integ_len: usize,
) -> Result<IkeKeys, CryptoError> {
    let prf_len = prf.output_len();
    let lens = [
        prf_len, integ_len, integ_len, encr_len, encr_len, prf_len, prf_len,
    ];
    let total = lens
        .iter()
        .try_fold(0usize, |a, l| a.checked_add(*l))
        .ok_or(CryptoError::KeyLength)?;
    let spi_i = spi_i.to_be_bytes();
    let spi_r = spi_r.to_be_bytes();
    let stream = prf.prf_plus(skeyseed.as_bytes(), &[ni, nr, &spi_i, &spi_r], total)?;
    let mut parts = Splitter::new(&stream).take_all(&lens)?.into_iter();
    let mut next = || parts.next().ok_or(CryptoError::KeyLength);
    Ok(IkeKeys {
        sk_d: next()?,
        sk_ai: next()?,
        sk_ar: next()?,
        sk_ei: next()?,
        sk_er: next()?,
        sk_pi: next()?,
        sk_pr: next()?,
    })
}

/// Cuts consecutive keys off a key stream.
struct Splitter<'a> {
    rest: &'a [u8],
}

impl<'a> Splitter<'a> {
    fn new(stream: &'a Secret) -> Self {
        Self {
            rest: stream.as_bytes(),
        }
    }
    fn take_all(mut self, lens: &[usize]) -> Result<Vec<Secret>, CryptoError> {
        lens.iter()
            .map(|&len| {
                if len > self.rest.len() {
                    return Err(CryptoError::KeyLength);
                }
                let (head, tail) = self.rest.split_at(len);
                self.rest = tail;
                Ok(Secret::from_slice(head))
            })
            .collect()
    }
}

/// The keys of a CHILD SA, by direction.
#[derive(Debug, Clone)]
pub struct ChildKeys {
    /// Initiator to responder: encryption key (with salt) and integrity key.
    pub encr_i: Secret,
    pub integ_i: Secret,
    /// Responder to initiator.
    pub encr_r: Secret,
    pub integ_r: Secret,
}

/// KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr), taken as encr_i, integ_i, encr_r, integ_r.
pub fn derive_child_keys(
    prf: Prf,
    sk_d: &[u8],
    g_ir: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
    encr_len: usize,
    integ_len: usize,
) -> Result<ChildKeys, CryptoError> {
    derive_child_keys_hybrid(prf, sk_d, g_ir, &[], ni, nr, encr_len, integ_len)
}

/// KEYMAT of a CHILD SA made with additional key exchanges (RFC 9370 §2.2.4):
/// prf+(SK_d, SK(0) | Ni | Nr | SK(1) | ... | SK(n)), SK(0) being g^ir of the
/// CREATE_CHILD_SA and `additional` the IKE_FOLLOWUP_KE secrets in order. Without them this
/// is exactly [`derive_child_keys`].
#[allow(clippy::too_many_arguments)]
pub fn derive_child_keys_hybrid(
    prf: Prf,
    sk_d: &[u8],
    g_ir: Option<&[u8]>,
    additional: &[&[u8]],
    ni: &[u8],
    nr: &[u8],
    encr_len: usize,
    integ_len: usize,
) -> Result<ChildKeys, CryptoError> {
    let lens = [encr_len, integ_len, encr_len, integ_len];
    let total = lens
        .iter()
        .try_fold(0usize, |a, l| a.checked_add(*l))
        .ok_or(CryptoError::KeyLength)?;
    let mut seed: Vec<&[u8]> = Vec::with_capacity(3 + additional.len());
    seed.extend(g_ir);
    seed.extend_from_slice(&[ni, nr]);
    seed.extend_from_slice(additional);
    let stream = prf.prf_plus(sk_d, &seed, total)?;
    let mut parts = Splitter::new(&stream).take_all(&lens)?.into_iter();
    let mut next = || parts.next().ok_or(CryptoError::KeyLength);
    Ok(ChildKeys {
        encr_i: next()?,
        integ_i: next()?,
        encr_r: next()?,
        integ_r: next()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::PrfId;

    fn sha256() -> Prf {
        Prf::new(PrfId::HMAC_SHA2_256).unwrap()
    }

    fn concat(keys: &[&Secret]) -> Vec<u8> {
        keys.iter()
            .flat_map(|k| k.as_bytes().iter().copied())
            .collect()
    }

    #[test]
    fn ike_keys_follow_rfc7296_2_14() {
        let prf = sha256();
        let (ni, nr, g) = ([1u8; 32], [2u8; 32], [3u8; 256]);
        let (spi_i, spi_r) = (0x0102030405060708u64, 0x1112131415161718u64);
        let k = derive_ike_keys(prf, &ni, &nr, &g, spi_i, spi_r, 36, 0).unwrap();
        let skeyseed = prf.compute(&[&ni[..], &nr[..]].concat(), &[&g]);
        let mut seed = Vec::new();
        seed.extend_from_slice(&ni);
        seed.extend_from_slice(&nr);
        seed.extend_from_slice(&[
            1, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
        ]);
        let stream = prf
            .prf_plus(skeyseed.as_bytes(), &[&seed], 32 * 3 + 36 * 2)
            .unwrap();
        let all = [
            &k.sk_d, &k.sk_ai, &k.sk_ar, &k.sk_ei, &k.sk_er, &k.sk_pi, &k.sk_pr,
        ];
        assert_eq!(concat(&all), stream.as_bytes());
        let lens: Vec<usize> = all.iter().map(|s| s.len()).collect();
        assert_eq!(lens, [32, 0, 0, 36, 36, 32, 32]);
        // SK_d comes first, SK_pr last.
        assert_eq!(k.sk_d.as_bytes(), &stream.as_bytes()[..32]);
        assert_eq!(k.sk_pr.as_bytes(), &stream.as_bytes()[stream.len() - 32..]);
    }

    #[test]
    fn ike_keys_with_integrity() {
        let prf = Prf::new(PrfId::HMAC_SHA2_384).unwrap();
        let k = derive_ike_keys(prf, b"ni", b"nr", b"g", 1, 2, 32, 48).unwrap();
        assert_eq!(k.sk_d.len(), 48);
        assert_eq!(k.sk_ai.len(), 48);
        assert_eq!(k.sk_ar.len(), 48);
        assert_eq!(k.sk_ei.len(), 32);
        assert_eq!(k.sk_pr.len(), 48);
        assert_ne!(k.sk_ai, k.sk_ar);
        assert_ne!(k.sk_ei, k.sk_er);
        // Different SPIs give different keys.
        let k2 = derive_ike_keys(prf, b"ni", b"nr", b"g", 1, 3, 32, 48).unwrap();
        assert_ne!(k.sk_d, k2.sk_d);
    }

    #[test]
    fn too_much_key_material_is_an_error() {
        let r = derive_ike_keys(sha256(), b"n", b"n", b"g", 1, 2, 4000, 4000);
        assert_eq!(r.err(), Some(CryptoError::KeyLength));
        let r = derive_child_keys(sha256(), b"d", None, b"n", b"n", usize::MAX, 1);
        assert_eq!(r.err(), Some(CryptoError::KeyLength));
    }

    #[test]
    fn rekeyed_ike_keys_follow_rfc7296_2_18() {
        let old = Prf::new(PrfId::HMAC_SHA2_512).unwrap();
        let new = sha256();
        let (ni, nr, g, sk_d) = ([4u8; 32], [5u8; 32], [6u8; 32], [7u8; 64]);
        let k = derive_rekeyed_ike_keys(old, &sk_d, new, &g, &ni, &nr, 9, 10, 20, 0).unwrap();
        let skeyseed = old.compute(&sk_d, &[&g[..], &ni[..], &nr[..]]);
        let stream = new
            .prf_plus(
                skeyseed.as_bytes(),
                &[&ni, &nr, &9u64.to_be_bytes(), &10u64.to_be_bytes()],
                32 * 3 + 40,
            )
            .unwrap();
        let all = [
            &k.sk_d, &k.sk_ai, &k.sk_ar, &k.sk_ei, &k.sk_er, &k.sk_pi, &k.sk_pr,
        ];
        assert_eq!(concat(&all), stream.as_bytes());
        // Not the same as an initial derivation with the same inputs.
        let initial = derive_ike_keys(new, &ni, &nr, &g, 9, 10, 20, 0).unwrap();
        assert_ne!(initial.sk_d, k.sk_d);
    }

    #[test]
    fn child_keys_follow_rfc7296_2_17() {
        let prf = sha256();
        let sk_d = [8u8; 32];
        let k = derive_child_keys(prf, &sk_d, None, b"ni", b"nr", 20, 0).unwrap();
        let stream = prf.prf_plus(&sk_d, &[b"ninr"], 40).unwrap();
        assert_eq!(
            concat(&[&k.encr_i, &k.integ_i, &k.encr_r, &k.integ_r]),
            stream.as_bytes()
        );
        assert_eq!(k.encr_i.len(), 20);
        assert!(k.integ_i.is_empty());

        let pfs = derive_child_keys(prf, &sk_d, Some(b"gir"), b"ni", b"nr", 32, 32).unwrap();
        let stream = prf.prf_plus(&sk_d, &[b"girninr"], 128).unwrap();
        assert_eq!(
            concat(&[&pfs.encr_i, &pfs.integ_i, &pfs.encr_r, &pfs.integ_r]),
            stream.as_bytes()
        );
        assert_eq!(&stream.as_bytes()[32..64], pfs.integ_i.as_bytes());
    }

    #[test]
    fn hybrid_rekeys_follow_rfc9370_2_2_4() {
        let prf = sha256();
        let (ni, nr, sk0, sk1, sk2, sk_d) = (
            [1u8; 32], [2u8; 32], [3u8; 32], [4u8; 32], [5u8; 32], [6u8; 32],
        );
        // IKE SA: SKEYSEED = prf(SK_d, SK(0) | Ni | Nr | SK(1) | SK(2)).
        let k = derive_rekeyed_ike_keys_hybrid(
            prf,
            &sk_d,
            prf,
            &sk0,
            &[&sk1, &sk2],
            &ni,
            &nr,
            7,
            8,
            36,
            0,
        )
        .unwrap();
        let skeyseed = prf.compute(&sk_d, &[&[sk0, ni, nr, sk1, sk2].concat()]);
        let stream = prf
            .prf_plus(
                skeyseed.as_bytes(),
                &[&ni, &nr, &7u64.to_be_bytes(), &8u64.to_be_bytes()],
                32 * 3 + 72,
            )
            .unwrap();
        let all = [
            &k.sk_d, &k.sk_ai, &k.sk_ar, &k.sk_ei, &k.sk_er, &k.sk_pi, &k.sk_pr,
        ];
        assert_eq!(concat(&all), stream.as_bytes());
        // Without additional secrets: the classical §2.18 keys; each secret changes them.
        let classical =
            derive_rekeyed_ike_keys_hybrid(prf, &sk_d, prf, &sk0, &[], &ni, &nr, 7, 8, 36, 0)
                .unwrap();
        let plain = derive_rekeyed_ike_keys(prf, &sk_d, prf, &sk0, &ni, &nr, 7, 8, 36, 0).unwrap();
        assert_eq!(classical.sk_d, plain.sk_d);
        assert_ne!(classical.sk_d, k.sk_d);
        let other = derive_rekeyed_ike_keys_hybrid(
            prf,
            &sk_d,
            prf,
            &sk0,
            &[&sk1, &[9u8; 32]],
            &ni,
            &nr,
            7,
            8,
            36,
            0,
        )
        .unwrap();
        assert_ne!(other.sk_ei, k.sk_ei);

        // CHILD SA: KEYMAT = prf+(SK_d, SK(0) | Ni | Nr | SK(1)).
        let c = derive_child_keys_hybrid(prf, &sk_d, Some(&sk0), &[&sk1], &ni, &nr, 32, 0).unwrap();
        let stream = prf
            .prf_plus(&sk_d, &[&[sk0, ni, nr, sk1].concat()], 64)
            .unwrap();
        assert_eq!(
            concat(&[&c.encr_i, &c.integ_i, &c.encr_r, &c.integ_r]),
            stream.as_bytes()
        );
        let pfs = derive_child_keys(prf, &sk_d, Some(&sk0), &ni, &nr, 32, 0).unwrap();
        assert_ne!(pfs.encr_i, c.encr_i, "SK(1) enters KEYMAT");
    }

    #[test]
    fn debug_hides_keys() {
        let k = derive_ike_keys(sha256(), b"n", b"n", b"g", 1, 2, 16, 16).unwrap();
        let dbg = format!("{k:?}");
        assert!(dbg.contains("Secret(32 bytes)"));
        for key in [&k.sk_d, &k.sk_ai, &k.sk_ei, &k.sk_pr] {
            assert!(!dbg.contains(&hex::encode(key.as_bytes())));
            assert!(!dbg.contains(&format!("{:?}", key.as_bytes())));
        }
        let c = derive_child_keys(sha256(), b"d", None, b"n", b"n", 16, 16).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains(&format!("{:?}", c.encr_i.as_bytes())));
        assert!(dbg.contains("Secret(16 bytes)"));
    }
}
