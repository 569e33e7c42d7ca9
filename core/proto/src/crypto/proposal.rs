//! Proposals in strongSwan's syntax (`aes256gcm16-prfsha384-ecp384`), the strong defaults,
//! their wire form, and selection: the responder's choice among offers, and the initiator's
//! check that the responder chose one of ours.
//!
//! A proposal string is a `-`-separated list of algorithm keywords; each transform type may
//! list several algorithms, in preference order. In a non-AEAD IKE proposal an integrity
//! keyword (`sha256`) also implies the PRF of the same hash unless a `prf*` keyword is given.
//! Weak algorithms are refused unless the profile names them in `allow_weak`; Roam's own
//! ciphers implement only the strong ones, so a weak choice fails later as `Unsupported`.
//!
//! Additional key exchanges (RFC 9370) are written as in strongSwan 6: `ke1_mlkem768` up to
//! `ke7_...`, one prefix per ADDITIONAL_KEY_EXCHANGE_n transform type; `keN_none` makes that
//! exchange optional. ML-KEM (`mlkem512/768/1024`) is accepted only as an additional one.
//! ESP proposals take them too after a PFS group (`aes256gcm16-x25519-ke1_mlkem768`): CHILD
//! SA rekeys then run them in IKE_FOLLOWUP_KE exchanges (the first CHILD SA has no KE at all).

use crate::wire::{
    DhGroup, EncrId, EsnId, IntegId, PrfId, Proposal, ProtocolId, Transform, TransformType,
};

/// Why a proposal string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposalError {
    #[error("unknown algorithm '{0}'")]
    Unknown(String),
    #[error("weak algorithm '{0}' (name it in the profile's allow_weak to use it)")]
    Weak(String),
    #[error("incomplete proposal '{0}': {1}")]
    Incomplete(String, &'static str),
}

/// One algorithm a keyword names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Alg {
    Encr(EncrId, Option<u16>),
    Integ(IntegId),
    Prf(PrfId),
    Dh(DhGroup),
    Esn(bool),
}

/// A keyword of the proposal syntax. The first keyword of an algorithm is its canonical name.
struct Keyword {
    name: &'static str,
    alg: Alg,
    weak: bool,
}

const fn kw(name: &'static str, alg: Alg) -> Keyword {
    Keyword {
        name,
        alg,
        weak: false,
    }
}
const fn weak(name: &'static str, alg: Alg) -> Keyword {
    Keyword {
        name,
        alg,
        weak: true,
    }
}

const KEYWORDS: &[Keyword] = &[
    kw("aes128", Alg::Encr(EncrId::AES_CBC, Some(128))),
    kw("aes192", Alg::Encr(EncrId::AES_CBC, Some(192))),
    kw("aes256", Alg::Encr(EncrId::AES_CBC, Some(256))),
    kw("aes128gcm16", Alg::Encr(EncrId::AES_GCM_16, Some(128))),
    kw("aes192gcm16", Alg::Encr(EncrId::AES_GCM_16, Some(192))),
    kw("aes256gcm16", Alg::Encr(EncrId::AES_GCM_16, Some(256))),
    kw("aes128gcm128", Alg::Encr(EncrId::AES_GCM_16, Some(128))),
    kw("aes192gcm128", Alg::Encr(EncrId::AES_GCM_16, Some(192))),
    kw("aes256gcm128", Alg::Encr(EncrId::AES_GCM_16, Some(256))),
    kw(
        "chacha20poly1305",
        Alg::Encr(EncrId::CHACHA20_POLY1305, None),
    ),
    kw("sha256", Alg::Integ(IntegId::HMAC_SHA2_256_128)),
    kw("sha384", Alg::Integ(IntegId::HMAC_SHA2_384_192)),
    kw("sha512", Alg::Integ(IntegId::HMAC_SHA2_512_256)),
    kw("sha2_256", Alg::Integ(IntegId::HMAC_SHA2_256_128)),
    kw("sha2_384", Alg::Integ(IntegId::HMAC_SHA2_384_192)),
    kw("sha2_512", Alg::Integ(IntegId::HMAC_SHA2_512_256)),
    kw("prfsha256", Alg::Prf(PrfId::HMAC_SHA2_256)),
    kw("prfsha384", Alg::Prf(PrfId::HMAC_SHA2_384)),
    kw("prfsha512", Alg::Prf(PrfId::HMAC_SHA2_512)),
    kw("modp2048", Alg::Dh(DhGroup::MODP_2048)),
    kw("modp3072", Alg::Dh(DhGroup::MODP_3072)),
    kw("ecp256", Alg::Dh(DhGroup::ECP_256)),
    kw("ecp384", Alg::Dh(DhGroup::ECP_384)),
    kw("curve25519", Alg::Dh(DhGroup::CURVE25519)),
    kw("x25519", Alg::Dh(DhGroup::CURVE25519)),
    kw("mlkem512", Alg::Dh(DhGroup::ML_KEM_512)),
    kw("mlkem768", Alg::Dh(DhGroup::ML_KEM_768)),
    kw("mlkem1024", Alg::Dh(DhGroup::ML_KEM_1024)),
    kw("esn", Alg::Esn(true)),
    kw("noesn", Alg::Esn(false)),
    weak("3des", Alg::Encr(EncrId::TRIPLE_DES, None)),
    weak("des", Alg::Encr(EncrId::DES, None)),
    // No confidentiality at all (ESP only; never for IKE). Roam's ciphers do not implement it.
    weak("null", Alg::Encr(EncrId::NULL, None)),
    weak("aes128ctr", Alg::Encr(EncrId::AES_CTR, Some(128))),
    weak("aes192ctr", Alg::Encr(EncrId::AES_CTR, Some(192))),
    weak("aes256ctr", Alg::Encr(EncrId::AES_CTR, Some(256))),
    weak("sha1", Alg::Integ(IntegId::HMAC_SHA1_96)),
    weak("sha", Alg::Integ(IntegId::HMAC_SHA1_96)),
    weak("md5", Alg::Integ(IntegId::HMAC_MD5_96)),
    weak("prfsha1", Alg::Prf(PrfId::HMAC_SHA1)),
    weak("prfmd5", Alg::Prf(PrfId::HMAC_MD5)),
    weak("modp768", Alg::Dh(DhGroup::MODP_768)),
    weak("modp1024", Alg::Dh(DhGroup::MODP_1024)),
    weak("modp1536", Alg::Dh(DhGroup::MODP_1536)),
];

fn lookup(word: &str) -> Option<&'static Keyword> {
    KEYWORDS.iter().find(|k| k.name == word)
}

/// The canonical keyword of `alg`, or a descriptive fallback for algorithms without one.
fn keyword_of(alg: Alg) -> String {
    match KEYWORDS.iter().find(|k| k.alg == alg) {
        Some(k) => k.name.to_string(),
        None => match alg {
            Alg::Encr(id, Some(bits)) => format!("{id}_{bits}").to_lowercase(),
            Alg::Encr(id, None) => format!("{id}").to_lowercase(),
            Alg::Integ(id) => format!("{id}").to_lowercase(),
            Alg::Prf(id) => format!("prf{id}").to_lowercase(),
            Alg::Dh(id) => format!("{id}").to_lowercase(),
            Alg::Esn(true) => "esn".into(),
            Alg::Esn(false) => "noesn".into(),
        },
    }
}

/// AES-GCM-16 and ChaCha20-Poly1305 (the AEADs Roam names); the other AEAD IDs count too.
fn is_aead(encr: EncrId) -> bool {
    matches!(
        encr,
        EncrId::AES_GCM_8
            | EncrId::AES_GCM_12
            | EncrId::AES_GCM_16
            | EncrId::AES_CCM_8
            | EncrId::AES_CCM_12
            | EncrId::AES_CCM_16
            | EncrId::CHACHA20_POLY1305
    )
}

/// Whether `encr` carries a key length attribute (the AES family does, ChaCha20 does not).
fn takes_key_length(encr: EncrId) -> bool {
    matches!(
        encr,
        EncrId::AES_CBC
            | EncrId::AES_CTR
            | EncrId::AES_GCM_8
            | EncrId::AES_GCM_12
            | EncrId::AES_GCM_16
            | EncrId::AES_CCM_8
            | EncrId::AES_CCM_12
            | EncrId::AES_CCM_16
            | EncrId::CAMELLIA_CBC
    )
}

/// The PRF of the same hash as an integrity algorithm.
fn implied_prf(integ: IntegId) -> Option<PrfId> {
    match integ {
        IntegId::HMAC_SHA2_256_128 => Some(PrfId::HMAC_SHA2_256),
        IntegId::HMAC_SHA2_384_192 => Some(PrfId::HMAC_SHA2_384),
        IntegId::HMAC_SHA2_512_256 => Some(PrfId::HMAC_SHA2_512),
        IntegId::HMAC_SHA1_96 => Some(PrfId::HMAC_SHA1),
        IntegId::HMAC_MD5_96 => Some(PrfId::HMAC_MD5),
        _ => None,
    }
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// A proposal as configured: each transform type's algorithms in preference order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalSpec {
    pub protocol: ProtocolId,
    /// (algorithm, key length in bits where the algorithm takes one)
    pub encr: Vec<(EncrId, Option<u16>)>,
    pub prf: Vec<PrfId>,
    pub integ: Vec<IntegId>,
    pub dh: Vec<DhGroup>,
    /// ESP only: ESN choices (ESN / NO_ESN), empty means no ESN.
    pub esn: Vec<bool>,
    /// The additional key exchanges of RFC 9370: `additional[n]` lists the methods of
    /// ADDITIONAL_KEY_EXCHANGE_(n+1) in preference order (`DhGroup::NONE`: it is optional).
    pub additional: [Vec<DhGroup>; MAX_ADDITIONAL],
}

/// ADDITIONAL_KEY_EXCHANGE_1 to _7 (RFC 9370 §2.2.1).
pub const MAX_ADDITIONAL: usize = 7;

/// The transform type of additional key exchange slot `n` (0-based).
pub fn additional_type(n: usize) -> TransformType {
    TransformType(6 + u8::try_from(n).unwrap_or(0))
}

/// The slot (0-based) of an ADDITIONAL_KEY_EXCHANGE_n transform type.
fn additional_slot(kind: TransformType) -> Option<usize> {
    (6..=12).contains(&kind.0).then(|| usize::from(kind.0 - 6))
}

/// Splits `ke3_mlkem768` into slot 2 and `mlkem768`.
fn split_additional(word: &str) -> Option<(usize, &str)> {
    let rest = word.strip_prefix("ke")?;
    let (n, alg) = rest.split_once('_')?;
    let n: usize = n.parse().ok()?;
    (1..=MAX_ADDITIONAL).contains(&n).then_some((n - 1, alg))
}

impl ProposalSpec {
    /// Parses an IKE proposal; `allow_weak` names weak algorithms the profile accepts.
    pub fn parse_ike(s: &str, allow_weak: &[String]) -> Result<Self, ProposalError> {
        let mut spec = Self::parse_words(ProtocolId::IKE, s, allow_weak)?;
        let inc = |why| Err(ProposalError::Incomplete(s.to_string(), why));
        if !spec.esn.is_empty() {
            return inc("ESN is not part of an IKE proposal");
        }
        if spec.encr.iter().any(|(e, _)| *e == EncrId::NULL) {
            return inc("NULL encryption cannot protect IKE (RFC 7296 §3.3.2)");
        }
        let aead = spec.check_encr(s)?;
        if !aead && spec.prf.is_empty() {
            spec.prf = Vec::new();
            for integ in &spec.integ {
                if let Some(prf) = implied_prf(*integ) {
                    push_unique(&mut spec.prf, prf);
                }
            }
        }
        if spec.prf.is_empty() {
            return inc("no PRF");
        }
        if spec.dh.is_empty() {
            return inc("no key exchange group");
        }
        if spec.dh.iter().any(|g| crate::crypto::kem::is_kem(*g)) {
            return inc("ML-KEM only as an additional key exchange (ke1_mlkem768)");
        }
        Ok(spec)
    }

    /// Whether this proposal asks for an additional key exchange (RFC 9370).
    pub fn has_additional(&self) -> bool {
        self.additional
            .iter()
            .any(|slot| slot.iter().any(|g| *g != DhGroup::NONE))
    }

    /// Whether every additional key exchange of this proposal is optional (`keN_none`).
    pub fn additional_optional(&self) -> bool {
        self.additional
            .iter()
            .all(|slot| slot.is_empty() || slot.contains(&DhGroup::NONE))
    }

    /// The same proposal with no additional key exchange (a classical fallback).
    pub fn without_additional(&self) -> Self {
        Self {
            additional: Default::default(),
            ..self.clone()
        }
    }

    /// Parses an ESP proposal (DH groups optional, meaning PFS on rekeys).
    pub fn parse_esp(s: &str, allow_weak: &[String]) -> Result<Self, ProposalError> {
        let mut spec = Self::parse_words(ProtocolId::ESP, s, allow_weak)?;
        if !spec.prf.is_empty() {
            return Err(ProposalError::Incomplete(
                s.to_string(),
                "a PRF is not part of an ESP proposal",
            ));
        }
        spec.check_encr(s)?;
        if spec.has_additional() && spec.dh.is_empty() {
            // RFC 9370 §2.2.4: the additional exchanges follow the CREATE_CHILD_SA's own KE.
            return Err(ProposalError::Incomplete(
                s.to_string(),
                "additional key exchanges (keN_) in an ESP proposal need a PFS group first \
                 (aes256gcm16-x25519-ke1_mlkem768)",
            ));
        }
        if spec.dh.iter().any(|g| crate::crypto::kem::is_kem(*g)) {
            return Err(ProposalError::Incomplete(
                s.to_string(),
                "ML-KEM only as an additional key exchange",
            ));
        }
        if spec.esn.is_empty() {
            spec.esn.push(false);
        }
        Ok(spec)
    }

    /// Collects the keywords of `s` by transform type, refusing unknown and unallowed weak ones.
    fn parse_words(
        protocol: ProtocolId,
        s: &str,
        allow_weak: &[String],
    ) -> Result<Self, ProposalError> {
        let mut spec = Self {
            protocol,
            encr: Vec::new(),
            prf: Vec::new(),
            integ: Vec::new(),
            dh: Vec::new(),
            esn: Vec::new(),
            additional: Default::default(),
        };
        for word in s.trim().split('-') {
            let word = word.trim().to_ascii_lowercase();
            if let Some((slot, alg)) = split_additional(&word) {
                let group = if alg == "none" {
                    DhGroup::NONE
                } else {
                    match lookup(alg) {
                        Some(Keyword {
                            alg: Alg::Dh(g),
                            weak: false,
                            ..
                        }) => *g,
                        Some(Keyword { weak: true, .. }) => return Err(ProposalError::Weak(word)),
                        _ => return Err(ProposalError::Unknown(word)),
                    }
                };
                if let Some(v) = spec.additional.get_mut(slot) {
                    push_unique(v, group);
                }
                continue;
            }
            let k = lookup(&word).ok_or_else(|| ProposalError::Unknown(word.clone()))?;
            if k.weak
                && !allow_weak
                    .iter()
                    .any(|w| w.trim().eq_ignore_ascii_case(k.name))
            {
                return Err(ProposalError::Weak(word));
            }
            match k.alg {
                Alg::Encr(id, bits) => push_unique(&mut spec.encr, (id, bits)),
                Alg::Integ(id) => push_unique(&mut spec.integ, id),
                Alg::Prf(id) => push_unique(&mut spec.prf, id),
                Alg::Dh(id) => push_unique(&mut spec.dh, id),
                Alg::Esn(on) => push_unique(&mut spec.esn, on),
            }
        }
        Ok(spec)
    }

    /// Encryption present and either all AEAD (no integrity) or none AEAD (with integrity).
    /// Returns whether the proposal is AEAD.
    fn check_encr(&self, s: &str) -> Result<bool, ProposalError> {
        let inc = |why| Err(ProposalError::Incomplete(s.to_string(), why));
        let Some(&(first, _)) = self.encr.first() else {
            return inc("no encryption algorithm");
        };
        let aead = is_aead(first);
        if self.encr.iter().any(|(e, _)| is_aead(*e) != aead) {
            return inc("AEAD and non-AEAD encryption in one proposal");
        }
        if aead && !self.integ.is_empty() {
            return inc("an AEAD proposal takes no integrity algorithm");
        }
        if !aead && self.integ.is_empty() {
            return inc("no integrity algorithm");
        }
        Ok(aead)
    }

    /// The wire proposal (number `number`, SPI `spi`).
    pub fn to_wire(&self, number: u8, spi: &[u8]) -> Proposal {
        let mut transforms = Vec::new();
        for &(id, bits) in &self.encr {
            transforms.push(Transform {
                kind: TransformType::ENCR,
                id: id.0,
                key_length: bits,
            });
        }
        for id in &self.prf {
            transforms.push(Transform {
                kind: TransformType::PRF,
                id: id.0,
                key_length: None,
            });
        }
        for id in &self.integ {
            transforms.push(Transform {
                kind: TransformType::INTEG,
                id: id.0,
                key_length: None,
            });
        }
        for id in &self.dh {
            transforms.push(Transform {
                kind: TransformType::DH,
                id: id.0,
                key_length: None,
            });
        }
        for &on in &self.esn {
            transforms.push(esn_transform(on));
        }
        for (n, slot) in self.additional.iter().enumerate() {
            for g in slot {
                transforms.push(Transform {
                    kind: additional_type(n),
                    id: g.0,
                    key_length: None,
                });
            }
        }
        Proposal {
            number,
            protocol: self.protocol,
            spi: spi.to_vec(),
            transforms,
        }
    }

    fn is_aead(&self) -> bool {
        self.encr.first().is_some_and(|(e, _)| is_aead(*e))
    }
}

fn esn_transform(on: bool) -> Transform {
    let id = if on { EsnId::ESN } else { EsnId::NO_ESN };
    Transform {
        kind: TransformType::ESN,
        id: id.0,
        key_length: None,
    }
}

/// The strong default IKE proposals, in strongSwan syntax.
pub fn default_ike() -> Vec<String> {
    vec![
        "aes256gcm16-aes128gcm16-chacha20poly1305-prfsha384-prfsha256-curve25519-ecp256-ecp384-modp3072-modp2048".into(),
        "aes256-aes128-sha384-sha256-curve25519-ecp256-ecp384-modp3072-modp2048".into(),
    ]
}
/// The strong default ESP proposals, in strongSwan syntax.
pub fn default_esp() -> Vec<String> {
    vec![
        "aes256gcm16-aes128gcm16-chacha20poly1305".into(),
        "aes256-aes128-sha384-sha256".into(),
    ]
}

/// One algorithm per transform type: what was negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selected {
    pub protocol: ProtocolId,
    pub encr: EncrId,
    pub key_bits: Option<u16>,
    /// None for ESP.
    pub prf: Option<PrfId>,
    /// `IntegId::NONE` with an AEAD.
    pub integ: IntegId,
    /// None when no key exchange was part of it.
    pub dh: Option<DhGroup>,
    pub esn: bool,
    /// The additional key exchanges (RFC 9370), by slot: ADDITIONAL_KEY_EXCHANGE_(n+1).
    pub additional: [Option<DhGroup>; MAX_ADDITIONAL],
}

/// The transforms of a wire proposal, grouped by type.
#[derive(Default)]
struct ByType {
    encr: Vec<Transform>,
    prf: Vec<Transform>,
    integ: Vec<Transform>,
    dh: Vec<Transform>,
    esn: Vec<Transform>,
    additional: [Vec<Transform>; MAX_ADDITIONAL],
    other: usize,
}

impl ByType {
    fn of(p: &Proposal) -> Self {
        let mut b = Self::default();
        for t in &p.transforms {
            match t.kind {
                TransformType::ENCR => b.encr.push(*t),
                TransformType::PRF => b.prf.push(*t),
                TransformType::INTEG => b.integ.push(*t),
                TransformType::DH => b.dh.push(*t),
                TransformType::ESN => b.esn.push(*t),
                k => match additional_slot(k).and_then(|n| b.additional.get_mut(n)) {
                    Some(v) => v.push(*t),
                    None => b.other += 1,
                },
            }
        }
        b
    }
}

/// At most one transform in `v`: Ok(None) for none, Err for several.
fn single(v: &[Transform]) -> Result<Option<Transform>, ()> {
    match v {
        [] => Ok(None),
        [t] => Ok(Some(*t)),
        _ => Err(()),
    }
}

/// ChaCha20-Poly1305 has a fixed key and must carry no key length; AES needs one.
fn normalize_key_length(encr: EncrId, key_length: Option<u16>) -> Option<Option<u16>> {
    if takes_key_length(encr) {
        key_length.map(Some)
    } else if encr == EncrId::CHACHA20_POLY1305 {
        match key_length {
            None | Some(256) => Some(None),
            Some(_) => None,
        }
    } else {
        Some(key_length)
    }
}

impl Selected {
    /// The strongSwan-syntax name, e.g. `aes256gcm16-prfsha384-ecp384` or `aes256-sha256`.
    pub fn name(&self) -> String {
        let mut words = vec![keyword_of(Alg::Encr(self.encr, self.key_bits))];
        let aead = is_aead(self.encr);
        if !aead && self.integ != IntegId::NONE {
            words.push(keyword_of(Alg::Integ(self.integ)));
        }
        if let Some(prf) = self.prf {
            let implied = !aead && implied_prf(self.integ) == Some(prf);
            if !implied {
                words.push(keyword_of(Alg::Prf(prf)));
            }
        }
        if let Some(dh) = self.dh {
            words.push(keyword_of(Alg::Dh(dh)));
        }
        if self.protocol == ProtocolId::ESP && self.esn {
            words.push("esn".into());
        }
        for (n, g) in self.additional_kes() {
            words.push(format!("ke{}_{}", n + 1, keyword_of(Alg::Dh(g))));
        }
        words.join("-")
    }

    /// The additional key exchanges in the order they run: (slot, method).
    pub fn additional_kes(&self) -> impl Iterator<Item = (usize, DhGroup)> + '_ {
        self.additional
            .iter()
            .enumerate()
            .filter_map(|(n, g)| g.map(|g| (n, g)))
    }

    /// Whether any additional key exchange was negotiated.
    pub fn has_additional(&self) -> bool {
        self.additional.iter().any(Option::is_some)
    }

    /// Reads a single-choice wire proposal (the responder's answer); None if it has more than
    /// one transform of a type or misses a required one.
    pub fn from_wire(p: &Proposal) -> Option<Self> {
        let b = ByType::of(p);
        if b.other != 0 {
            return None;
        }
        let encr_t = single(&b.encr).ok()??;
        let encr = EncrId(encr_t.id);
        let key_bits = normalize_key_length(encr, encr_t.key_length)?;
        // INTEG NONE and DH NONE are the same as leaving the type out.
        let integ = single(&b.integ)
            .ok()?
            .map(|t| IntegId(t.id))
            .unwrap_or(IntegId::NONE);
        let dh = single(&b.dh)
            .ok()?
            .map(|t| DhGroup(t.id))
            .filter(|g| *g != DhGroup::NONE);
        let aead = is_aead(encr);
        if aead != (integ == IntegId::NONE) {
            return None;
        }
        let mut additional = [None; MAX_ADDITIONAL];
        for (slot, v) in additional.iter_mut().zip(&b.additional) {
            *slot = single(v)
                .ok()?
                .map(|t| DhGroup(t.id))
                .filter(|g| *g != DhGroup::NONE);
        }
        match p.protocol {
            ProtocolId::IKE => {
                let prf = PrfId(single(&b.prf).ok()??.id);
                if !b.esn.is_empty() {
                    return None;
                }
                let dh = Some(dh?);
                Some(Self {
                    protocol: p.protocol,
                    encr,
                    key_bits,
                    prf: Some(prf),
                    integ,
                    dh,
                    esn: false,
                    additional,
                })
            }
            ProtocolId::ESP => {
                if !b.prf.is_empty() {
                    return None;
                }
                let esn = match single(&b.esn).ok()? {
                    None => false,
                    Some(t) if t.id == EsnId::ESN.0 => true,
                    Some(t) if t.id == EsnId::NO_ESN.0 => false,
                    Some(_) => return None,
                };
                Some(Self {
                    protocol: p.protocol,
                    encr,
                    key_bits,
                    prf: None,
                    integ,
                    dh,
                    esn,
                    additional,
                })
            }
            _ => None,
        }
    }

    /// This choice as a wire proposal.
    pub fn to_wire(&self, number: u8, spi: &[u8]) -> Proposal {
        let mut transforms = vec![Transform {
            kind: TransformType::ENCR,
            id: self.encr.0,
            key_length: self.key_bits,
        }];
        if let Some(prf) = self.prf {
            transforms.push(Transform {
                kind: TransformType::PRF,
                id: prf.0,
                key_length: None,
            });
        }
        if self.integ != IntegId::NONE {
            transforms.push(Transform {
                kind: TransformType::INTEG,
                id: self.integ.0,
                key_length: None,
            });
        }
        if let Some(dh) = self.dh {
            transforms.push(Transform {
                kind: TransformType::DH,
                id: dh.0,
                key_length: None,
            });
        }
        if self.protocol == ProtocolId::ESP {
            transforms.push(esn_transform(self.esn));
        }
        for (n, g) in self.additional_kes() {
            transforms.push(Transform {
                kind: additional_type(n),
                id: g.0,
                key_length: None,
            });
        }
        Proposal {
            number,
            protocol: self.protocol,
            spi: spi.to_vec(),
            transforms,
        }
    }
}

/// Whether an SPI has the size `protocol` needs in an SA payload: none (IKE_SA_INIT) or 8
/// bytes (IKE rekey) for IKE, 4 bytes for ESP and AH.
fn spi_ok(protocol: ProtocolId, spi: &[u8]) -> bool {
    match protocol {
        ProtocolId::IKE => spi.is_empty() || spi.len() == 8,
        ProtocolId::ESP | ProtocolId::AH => spi.len() == 4,
        _ => false,
    }
}

/// Same type, ID and key length (ChaCha20-Poly1305's optional 256 counting as none).
fn same_transform(a: &Transform, b: &Transform) -> bool {
    if a.kind != b.kind || a.id != b.id {
        return false;
    }
    if a.kind == TransformType::ENCR {
        let e = EncrId(a.id);
        return normalize_key_length(e, a.key_length) == normalize_key_length(e, b.key_length);
    }
    a.key_length == b.key_length
}

/// Initiator: checks the responder's chosen proposal is a subset of one we offered.
pub fn accept_response(offered: &[Proposal], chosen: &Proposal) -> Option<Selected> {
    let ours = offered
        .iter()
        .find(|p| p.number == chosen.number && p.protocol == chosen.protocol)?;
    let selected = Selected::from_wire(chosen)?;
    if !spi_ok(chosen.protocol, &chosen.spi) {
        return None;
    }
    // Every chosen transform was offered (INTEG NONE is implied by an AEAD).
    for t in &chosen.transforms {
        let implicit_none = (t.kind == TransformType::INTEG && t.id == IntegId::NONE.0)
            || ((t.kind == TransformType::DH || additional_slot(t.kind).is_some())
                && t.id == DhGroup::NONE.0);
        let offered_it = ours.transforms.iter().any(|o| same_transform(o, t));
        let offered_kind = ours.transforms.iter().any(|o| o.kind == t.kind);
        let implied_absent = implicit_none && !offered_kind;
        if !(offered_it || implied_absent) {
            return None;
        }
    }
    // Every type we offered got a choice (for ESP, ESN and a PFS group included).
    let ours_by = ByType::of(ours);
    let needs = [
        (!ours_by.encr.is_empty(), true),
        (!ours_by.prf.is_empty(), selected.prf.is_some()),
        (!ours_by.integ.is_empty(), selected.integ != IntegId::NONE),
        (
            !ours_by.dh.is_empty(),
            selected.dh.is_some() || ours_by.dh.iter().any(|t| t.id == DhGroup::NONE.0),
        ),
        (
            !ours_by.esn.is_empty(),
            chosen
                .transforms
                .iter()
                .any(|t| t.kind == TransformType::ESN),
        ),
    ];
    if needs
        .iter()
        .any(|&(offered_type, chosen_one)| offered_type && !chosen_one)
    {
        return None;
    }
    // Every additional key exchange we offered got a method, unless we offered NONE for it.
    for (offered, chosen) in ours_by.additional.iter().zip(&selected.additional) {
        let optional = offered.iter().any(|t| t.id == DhGroup::NONE.0);
        if !offered.is_empty() && chosen.is_none() && !optional {
            return None;
        }
    }
    Some(selected)
}

/// Picks, for one of our specs and one offered proposal, our most preferred algorithm of each
/// type that the offer contains.
fn select(ours: &ProposalSpec, offer: &Proposal) -> Option<Selected> {
    if ours.protocol != offer.protocol || !spi_ok(offer.protocol, &offer.spi) {
        return None;
    }
    let b = ByType::of(offer);
    let has = |v: &[Transform], id: u16| v.iter().any(|t| t.id == id);
    let (encr, key_bits) = ours.encr.iter().copied().find(|&(id, bits)| {
        b.encr
            .iter()
            .any(|t| t.id == id.0 && normalize_key_length(id, t.key_length) == Some(bits))
    })?;
    let integ = if ours.is_aead() {
        // The offer may list INTEG NONE, or nothing, with an AEAD.
        if b.integ.iter().any(|t| t.id != IntegId::NONE.0) && !has(&b.integ, IntegId::NONE.0) {
            return None;
        }
        IntegId::NONE
    } else {
        ours.integ.iter().copied().find(|i| has(&b.integ, i.0))?
    };
    let prf = match ours.protocol {
        ProtocolId::IKE => Some(ours.prf.iter().copied().find(|p| has(&b.prf, p.0))?),
        _ => None,
    };
    let dh = if ours.dh.is_empty() {
        // No PFS wanted: fine if the offer has no group or allows NONE.
        if !b.dh.is_empty() && !has(&b.dh, DhGroup::NONE.0) {
            return None;
        }
        None
    } else {
        Some(ours.dh.iter().copied().find(|g| has(&b.dh, g.0))?)
    };
    let esn = if ours.protocol == ProtocolId::ESP {
        let ours_esn: &[bool] = if ours.esn.is_empty() {
            &[false]
        } else {
            &ours.esn
        };
        let offered = |on: bool| {
            let id = if on { EsnId::ESN.0 } else { EsnId::NO_ESN.0 };
            has(&b.esn, id) || (b.esn.is_empty() && !on)
        };
        ours_esn.iter().copied().find(|&on| offered(on))?
    } else {
        false
    };
    let mut additional = [None; MAX_ADDITIONAL];
    for ((slot, wanted), offered) in additional
        .iter_mut()
        .zip(&ours.additional)
        .zip(&b.additional)
    {
        let none_offered = offered.is_empty() || has(offered, DhGroup::NONE.0);
        let none_ok = wanted.is_empty() || wanted.contains(&DhGroup::NONE);
        *slot = wanted
            .iter()
            .copied()
            .find(|g| *g != DhGroup::NONE && has(offered, g.0));
        if slot.is_none() && !(none_ok && none_offered) {
            return None;
        }
    }
    Some(Selected {
        protocol: ours.protocol,
        encr,
        key_bits,
        prf,
        integ,
        dh,
        esn,
        additional,
    })
}

/// Responder: picks the first of `ours` (in our order) that one of `offered` allows, and
/// returns it with the peer's proposal number and SPI.
pub fn choose(ours: &[ProposalSpec], offered: &[Proposal]) -> Option<(Selected, u8, Vec<u8>)> {
    ours.iter().find_map(|spec| {
        offered
            .iter()
            .find_map(|p| select(spec, p).map(|s| (s, p.number, p.spi.clone())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ike(s: &str) -> ProposalSpec {
        ProposalSpec::parse_ike(s, &[]).unwrap()
    }
    fn esp(s: &str) -> ProposalSpec {
        ProposalSpec::parse_esp(s, &[]).unwrap()
    }
    fn t(kind: TransformType, id: u16, key_length: Option<u16>) -> Transform {
        Transform {
            kind,
            id,
            key_length,
        }
    }
    /// Our spec answered by a responder that picks our first choice of everything.
    fn answer(spec: &ProposalSpec, number: u8, spi: &[u8]) -> (Proposal, Selected) {
        let (sel, n, peer_spi) =
            choose(std::slice::from_ref(spec), &[spec.to_wire(number, spi)]).unwrap();
        assert_eq!((n, &peer_spi[..]), (number, spi));
        (sel.to_wire(number, spi), sel)
    }

    const LAB: [&str; 4] = [
        "aes256gcm16-prfsha384-ecp384",
        "aes256gcm16-prfsha256-curve25519",
        "aes256-sha256-modp2048",
        "chacha20poly1305-prfsha256-curve25519",
    ];

    #[test]
    fn lab_proposals() {
        let s = ike(LAB[0]);
        assert_eq!(s.encr, [(EncrId::AES_GCM_16, Some(256))]);
        assert_eq!(s.prf, [PrfId::HMAC_SHA2_384]);
        assert!(s.integ.is_empty());
        assert_eq!(s.dh, [DhGroup::ECP_384]);
        assert!(s.esn.is_empty());

        let s = ike(LAB[1]);
        assert_eq!(
            (s.prf[0], s.dh[0]),
            (PrfId::HMAC_SHA2_256, DhGroup::CURVE25519)
        );

        let s = ike(LAB[2]);
        assert_eq!(s.encr, [(EncrId::AES_CBC, Some(256))]);
        assert_eq!(s.integ, [IntegId::HMAC_SHA2_256_128]);
        assert_eq!(s.prf, [PrfId::HMAC_SHA2_256], "sha256 implies prfsha256");
        assert_eq!(s.dh, [DhGroup::MODP_2048]);

        let s = ike(LAB[3]);
        assert_eq!(s.encr, [(EncrId::CHACHA20_POLY1305, None)]);

        // Each one selected from its own wire form gets its own name back.
        for name in LAB {
            let spec = ike(name);
            let (wire, sel) = answer(&spec, 1, &[]);
            assert_eq!(sel.name(), name);
            assert_eq!(accept_response(&[spec.to_wire(1, &[])], &wire), Some(sel));
        }
    }

    #[test]
    fn errors() {
        assert_eq!(
            ProposalSpec::parse_ike("aes256-foo", &[]),
            Err(ProposalError::Unknown("foo".into()))
        );
        assert_eq!(
            ProposalSpec::parse_ike("3des-sha1-modp1024", &[]),
            Err(ProposalError::Weak("3des".into()))
        );
        assert_eq!(
            ProposalSpec::parse_esp("aes256-md5", &[]),
            Err(ProposalError::Weak("md5".into()))
        );
        assert_eq!(
            ProposalSpec::parse_ike("", &[]),
            Err(ProposalError::Unknown("".into()))
        );
        assert_eq!(
            ProposalSpec::parse_ike("aes256--sha256", &[]),
            Err(ProposalError::Unknown("".into()))
        );
        let inc = |r: Result<ProposalSpec, ProposalError>| {
            matches!(r, Err(ProposalError::Incomplete(..)))
        };
        assert!(
            inc(ProposalSpec::parse_ike("aes256gcm16-ecp384", &[])),
            "AEAD without PRF"
        );
        assert!(
            inc(ProposalSpec::parse_ike("aes256-prfsha256-ecp384", &[])),
            "no integrity"
        );
        assert!(inc(ProposalSpec::parse_ike("aes256-sha256", &[])), "no DH");
        assert!(
            inc(ProposalSpec::parse_ike("sha256-modp2048", &[])),
            "no encryption"
        );
        assert!(
            inc(ProposalSpec::parse_ike(
                "aes256-aes256gcm16-sha256-modp2048",
                &[]
            )),
            "mixed AEAD"
        );
        assert!(
            inc(ProposalSpec::parse_ike(
                "aes256gcm16-sha256-prfsha256-ecp256",
                &[]
            )),
            "AEAD + integ"
        );
        assert!(
            inc(ProposalSpec::parse_ike("aes256-sha256-modp2048-esn", &[])),
            "ESN in IKE"
        );
        assert!(
            inc(ProposalSpec::parse_esp("aes256", &[])),
            "ESP without integrity"
        );
        assert!(
            inc(ProposalSpec::parse_esp("aes256gcm16-prfsha256", &[])),
            "PRF in ESP"
        );
        assert!(
            inc(ProposalSpec::parse_esp("ecp256", &[])),
            "ESP without encryption"
        );
    }

    #[test]
    fn allow_weak() {
        let allow = vec![
            "3des".to_string(),
            "SHA1".to_string(),
            "modp1024".to_string(),
        ];
        let s = ProposalSpec::parse_ike("3des-sha1-modp1024", &allow).unwrap();
        assert_eq!(s.encr, [(EncrId::TRIPLE_DES, None)]);
        assert_eq!(s.integ, [IntegId::HMAC_SHA1_96]);
        assert_eq!(s.prf, [PrfId::HMAC_SHA1]);
        assert_eq!(s.dh, [DhGroup::MODP_1024]);
        // Only what is named is allowed.
        assert_eq!(
            ProposalSpec::parse_ike("3des-sha1-modp1536", &allow),
            Err(ProposalError::Weak("modp1536".into()))
        );
        // Naming a weak algorithm allows nothing unknown.
        assert_eq!(
            ProposalSpec::parse_ike("aes256-bogus", &allow),
            Err(ProposalError::Unknown("bogus".into()))
        );
    }

    #[test]
    fn several_algorithms_per_type() {
        let s = ike("aes256gcm16-aes128gcm16-prfsha384-prfsha256-ecp384-curve25519");
        assert_eq!(
            s.encr,
            [
                (EncrId::AES_GCM_16, Some(256)),
                (EncrId::AES_GCM_16, Some(128))
            ]
        );
        assert_eq!(s.prf, [PrfId::HMAC_SHA2_384, PrfId::HMAC_SHA2_256]);
        assert_eq!(s.dh, [DhGroup::ECP_384, DhGroup::CURVE25519]);
        // Implied PRFs follow the integrity order; an explicit PRF wins over the implication.
        let s = ike("aes128-sha512-sha256-modp3072");
        assert_eq!(s.prf, [PrfId::HMAC_SHA2_512, PrfId::HMAC_SHA2_256]);
        let s = ike("aes128-sha256-prfsha512-modp3072");
        assert_eq!(s.prf, [PrfId::HMAC_SHA2_512]);
        // Duplicates collapse; case and surrounding space do not matter.
        let s = ike(" AES256-sha256-Sha256-x25519-curve25519 ");
        assert_eq!(s.integ, [IntegId::HMAC_SHA2_256_128]);
        assert_eq!(s.dh, [DhGroup::CURVE25519]);
    }

    #[test]
    fn aliases() {
        assert_eq!(
            ike("aes128gcm128-prfsha256-x25519"),
            ike("aes128gcm16-prfsha256-curve25519")
        );
        assert_eq!(
            ike("aes192gcm128-prfsha256-ecp256"),
            ike("aes192gcm16-prfsha256-ecp256")
        );
        assert_eq!(
            ike("aes256gcm128-prfsha256-ecp256"),
            ike("aes256gcm16-prfsha256-ecp256")
        );
    }

    #[test]
    fn esp_parsing() {
        let s = esp("aes256gcm16");
        assert_eq!(s.protocol, ProtocolId::ESP);
        assert_eq!(s.esn, [false], "noesn is offered by default");
        assert!(s.dh.is_empty() && s.prf.is_empty() && s.integ.is_empty());
        let s = esp("aes256-sha256-ecp256-esn-noesn");
        assert_eq!(s.integ, [IntegId::HMAC_SHA2_256_128]);
        assert!(s.prf.is_empty(), "no implied PRF in ESP");
        assert_eq!(s.dh, [DhGroup::ECP_256]);
        assert_eq!(s.esn, [true, false]);
        assert_eq!(esp("chacha20poly1305-esn").esn, [true]);
    }

    #[test]
    fn defaults_parse_and_are_strong() {
        for s in default_ike() {
            let spec = ike(&s);
            assert!(spec.dh.len() >= 4 && !spec.prf.is_empty());
        }
        for s in default_esp() {
            esp(&s);
        }
        assert_eq!(default_ike().len(), 2);
        assert_eq!(default_esp().len(), 2);
        let first = ike(&default_ike()[0]);
        assert_eq!(first.encr[0], (EncrId::AES_GCM_16, Some(256)));
        assert!(first.encr.contains(&(EncrId::CHACHA20_POLY1305, None)));
    }

    #[test]
    fn spec_to_wire() {
        let p = ike("aes256-aes128-sha384-prfsha256-modp2048").to_wire(3, &[]);
        assert_eq!(p.number, 3);
        assert_eq!(p.protocol, ProtocolId::IKE);
        assert!(p.spi.is_empty());
        assert_eq!(
            p.transforms,
            [
                t(TransformType::ENCR, 12, Some(256)),
                t(TransformType::ENCR, 12, Some(128)),
                t(TransformType::PRF, 5, None),
                t(TransformType::INTEG, 13, None),
                t(TransformType::DH, 14, None),
            ]
        );
        let p = esp("chacha20poly1305-curve25519").to_wire(1, &[1, 2, 3, 4]);
        assert_eq!(p.spi, [1, 2, 3, 4]);
        assert_eq!(
            p.transforms,
            [
                t(TransformType::ENCR, 28, None),
                t(TransformType::DH, 31, None),
                t(TransformType::ESN, 0, None)
            ]
        );
    }

    #[test]
    fn names() {
        let sel = |protocol, encr, key_bits, prf, integ, dh, esn| Selected {
            protocol,
            encr,
            key_bits,
            prf,
            integ,
            dh,
            esn,
            additional: Default::default(),
        };
        let gcm = EncrId::AES_GCM_16;
        let cbc = EncrId::AES_CBC;
        let chacha = EncrId::CHACHA20_POLY1305;
        let cases = [
            (
                sel(
                    ProtocolId::IKE,
                    gcm,
                    Some(256),
                    Some(PrfId::HMAC_SHA2_384),
                    IntegId::NONE,
                    Some(DhGroup::ECP_384),
                    false,
                ),
                "aes256gcm16-prfsha384-ecp384",
            ),
            (
                sel(
                    ProtocolId::IKE,
                    chacha,
                    None,
                    Some(PrfId::HMAC_SHA2_256),
                    IntegId::NONE,
                    Some(DhGroup::CURVE25519),
                    false,
                ),
                "chacha20poly1305-prfsha256-curve25519",
            ),
            (
                sel(
                    ProtocolId::IKE,
                    cbc,
                    Some(256),
                    Some(PrfId::HMAC_SHA2_256),
                    IntegId::HMAC_SHA2_256_128,
                    Some(DhGroup::MODP_2048),
                    false,
                ),
                "aes256-sha256-modp2048",
            ),
            (
                sel(
                    ProtocolId::IKE,
                    cbc,
                    Some(128),
                    Some(PrfId::HMAC_SHA2_384),
                    IntegId::HMAC_SHA2_256_128,
                    Some(DhGroup::MODP_3072),
                    false,
                ),
                "aes128-sha256-prfsha384-modp3072",
            ),
            (
                sel(
                    ProtocolId::ESP,
                    gcm,
                    Some(256),
                    None,
                    IntegId::NONE,
                    None,
                    false,
                ),
                "aes256gcm16",
            ),
            (
                sel(
                    ProtocolId::ESP,
                    cbc,
                    Some(256),
                    None,
                    IntegId::HMAC_SHA2_256_128,
                    None,
                    false,
                ),
                "aes256-sha256",
            ),
            (
                sel(
                    ProtocolId::ESP,
                    chacha,
                    None,
                    None,
                    IntegId::NONE,
                    None,
                    false,
                ),
                "chacha20poly1305",
            ),
            (
                sel(
                    ProtocolId::ESP,
                    gcm,
                    Some(128),
                    None,
                    IntegId::NONE,
                    Some(DhGroup::ECP_256),
                    true,
                ),
                "aes128gcm16-ecp256-esn",
            ),
            (
                sel(
                    ProtocolId::ESP,
                    cbc,
                    Some(192),
                    None,
                    IntegId::HMAC_SHA2_512_256,
                    None,
                    true,
                ),
                "aes192-sha512-esn",
            ),
        ];
        for (s, name) in cases {
            assert_eq!(s.name(), name);
            // Parsing the name gives a spec that selects the same thing.
            let spec = match s.protocol {
                ProtocolId::IKE => ike(name),
                _ => esp(name),
            };
            let spi: &[u8] = if s.protocol == ProtocolId::ESP {
                &[9, 9, 9, 9]
            } else {
                &[]
            };
            let (chosen, _, _) = choose(&[spec], &[s.to_wire(1, spi)]).unwrap();
            assert_eq!(chosen, s, "{name}");
        }
    }

    #[test]
    fn selected_wire_round_trip() {
        let s = Selected {
            protocol: ProtocolId::ESP,
            encr: EncrId::AES_CBC,
            key_bits: Some(128),
            prf: None,
            integ: IntegId::HMAC_SHA2_384_192,
            dh: Some(DhGroup::ECP_256),
            esn: true,
            additional: Default::default(),
        };
        let w = s.to_wire(2, &[1, 2, 3, 4]);
        assert_eq!(w.transforms.len(), 4);
        assert_eq!(Selected::from_wire(&w), Some(s));
    }

    #[test]
    fn from_wire_rejects() {
        let good = ike(LAB[0]).to_wire(1, &[]);
        assert!(Selected::from_wire(&good).is_some());
        // Two of a type.
        let mut p = good.clone();
        p.transforms.push(t(TransformType::DH, 19, None));
        assert_eq!(Selected::from_wire(&p), None);
        // Missing PRF, DH, ENCR.
        for kind in [TransformType::PRF, TransformType::DH, TransformType::ENCR] {
            let mut p = good.clone();
            p.transforms.retain(|x| x.kind != kind);
            assert_eq!(Selected::from_wire(&p), None, "{kind}");
        }
        // AES without a key length.
        let mut p = good.clone();
        p.transforms[0].key_length = None;
        assert_eq!(Selected::from_wire(&p), None);
        // Non-AEAD without integrity; AEAD with integrity.
        let cbc = ike(LAB[2]).to_wire(1, &[]);
        let mut p = cbc.clone();
        p.transforms.retain(|x| x.kind != TransformType::INTEG);
        assert_eq!(Selected::from_wire(&p), None);
        let mut p = good.clone();
        p.transforms.push(t(TransformType::INTEG, 12, None));
        assert_eq!(Selected::from_wire(&p), None);
        // INTEG NONE with an AEAD is fine.
        let mut p = good.clone();
        p.transforms.push(t(TransformType::INTEG, 0, None));
        assert!(Selected::from_wire(&p).is_some());
        // Unknown transform types (6..=12 are RFC 9370's additional key exchanges).
        let mut p = good.clone();
        p.transforms.push(t(TransformType(13), 36, None));
        assert_eq!(Selected::from_wire(&p), None);
        // ChaCha20 with a bogus key length.
        let mut p = ike(LAB[3]).to_wire(1, &[]);
        p.transforms[0].key_length = Some(128);
        assert_eq!(Selected::from_wire(&p), None);
        p.transforms[0].key_length = Some(256);
        assert_eq!(Selected::from_wire(&p).map(|s| s.key_bits), Some(None));
        // AH is not ours.
        let mut p = esp("aes256gcm16").to_wire(1, &[0; 4]);
        p.protocol = ProtocolId::AH;
        assert_eq!(Selected::from_wire(&p), None);
    }

    #[test]
    fn accept_response_checks() {
        let offered = [
            ike(&default_ike()[0]).to_wire(1, &[]),
            ike(&default_ike()[1]).to_wire(2, &[]),
        ];
        let pick = |n: u8, spec: &str| ike(spec).to_wire(n, &[]);
        let s = accept_response(&offered, &pick(1, "aes128gcm16-prfsha256-ecp256")).unwrap();
        assert_eq!(s.name(), "aes128gcm16-prfsha256-ecp256");
        let s = accept_response(&offered, &pick(2, "aes128-sha384-modp3072")).unwrap();
        assert_eq!(s.name(), "aes128-sha384-modp3072");
        // Wrong proposal number for that choice.
        assert_eq!(
            accept_response(&offered, &pick(2, "aes128gcm16-prfsha256-ecp256")),
            None
        );
        assert_eq!(
            accept_response(&offered, &pick(3, "aes128gcm16-prfsha256-ecp256")),
            None
        );
        // Something we did not offer.
        assert_eq!(
            accept_response(&offered, &pick(1, "aes192gcm16-prfsha256-ecp256")),
            None
        );
        assert_eq!(
            accept_response(&offered, &pick(1, "aes128gcm16-prfsha512-ecp256")),
            None
        );
        assert_eq!(
            accept_response(&offered, &pick(2, "aes128-sha512-modp3072")),
            None
        );
        // More than one of a type.
        assert_eq!(
            accept_response(&offered, &pick(1, "aes128gcm16-prfsha256-ecp256-ecp384")),
            None
        );
        // A weird IKE SPI size.
        assert_eq!(
            accept_response(
                &offered,
                &pick(1, "aes128gcm16-prfsha256-ecp256").with_spi(&[1; 4])
            ),
            None
        );
        // Explicit INTEG NONE with an AEAD is accepted.
        let mut p = pick(1, "aes256gcm16-prfsha384-ecp384");
        p.transforms.push(t(TransformType::INTEG, 0, None));
        assert!(accept_response(&offered, &p).is_some());
    }

    #[test]
    fn accept_response_esp() {
        let spec = esp("aes256gcm16-aes128gcm16-ecp256-esn-noesn");
        let offered = [spec.to_wire(1, &[0xaa; 4])];
        let good = esp("aes128gcm16-ecp256-esn").to_wire(1, &[1, 2, 3, 4]);
        let s = accept_response(&offered, &good).unwrap();
        assert_eq!(s.name(), "aes128gcm16-ecp256-esn");
        // The SPI must be 4 bytes.
        for bad in [&[][..], &[1, 2, 3], &[1; 8]] {
            assert_eq!(accept_response(&offered, &good.with_spi(bad)), None);
        }
        // PFS was offered: leaving out the group is no answer.
        let no_dh = esp("aes128gcm16-esn").to_wire(1, &[1; 4]);
        assert_eq!(accept_response(&offered, &no_dh), None);
        // Neither is leaving out ESN.
        let mut no_esn = good.clone();
        no_esn.transforms.retain(|x| x.kind != TransformType::ESN);
        assert_eq!(accept_response(&offered, &no_esn), None);
        // An ESN value we did not offer.
        let only_noesn = [esp("aes128gcm16-ecp256").to_wire(1, &[0xaa; 4])];
        assert_eq!(accept_response(&only_noesn, &good), None);
    }

    #[test]
    fn choose_prefers_our_order() {
        let ours = [
            ike("aes256gcm16-aes128gcm16-prfsha384-prfsha256-ecp384-curve25519"),
            ike("aes256-sha256-modp2048"),
        ];
        let offered = [
            ike("aes128gcm16-aes256gcm16-prfsha256-prfsha384-curve25519-ecp384").to_wire(1, &[]),
            ike("aes256-sha256-modp2048").to_wire(2, &[]),
        ];
        let (s, n, spi) = choose(&ours, &offered).unwrap();
        assert_eq!((s.name().as_str(), n), ("aes256gcm16-prfsha384-ecp384", 1));
        assert!(spi.is_empty());
        // Our first spec matches nothing: the second one picks proposal 2.
        let offered = [
            ike("chacha20poly1305-prfsha256-curve25519").to_wire(1, &[]),
            ike("aes256-sha256-modp2048").to_wire(2, &[]),
        ];
        let (s, n, _) = choose(&ours, &offered).unwrap();
        assert_eq!((s.name().as_str(), n), ("aes256-sha256-modp2048", 2));
        // Nothing in common.
        let offered = [ike("aes128-sha384-ecp256").to_wire(1, &[])];
        assert_eq!(choose(&ours, &offered), None);
        // Protocol mismatch.
        assert_eq!(
            choose(&[esp("aes256gcm16")], &[ike(LAB[0]).to_wire(1, &[])]),
            None
        );
        // The IKE rekey SPI is passed back.
        let (_, _, spi) = choose(&ours, &[ike(LAB[0]).to_wire(1, &[7; 8])]).unwrap();
        assert_eq!(spi, [7; 8]);
    }

    #[test]
    fn choose_esp_pfs_and_esn() {
        let spi = [1, 2, 3, 4];
        // We want no PFS; the peer insists on it.
        let offered = [esp("aes256gcm16-ecp256").to_wire(1, &spi)];
        assert_eq!(choose(&[esp("aes256gcm16")], &offered), None);
        // We want PFS; the peer offers none.
        assert_eq!(
            choose(
                &[esp("aes256gcm16-ecp256")],
                &[esp("aes256gcm16").to_wire(1, &spi)]
            ),
            None
        );
        // Both want it.
        let (s, _, got_spi) = choose(&[esp("aes256gcm16-curve25519-ecp256")], &offered).unwrap();
        assert_eq!(s.dh, Some(DhGroup::ECP_256));
        assert_eq!(got_spi, spi);
        // ESN: our preference among what is offered.
        let offered = [esp("aes256-sha256-noesn-esn").to_wire(1, &spi)];
        let (s, _, _) = choose(&[esp("aes256-sha256-esn-noesn")], &offered).unwrap();
        assert!(s.esn);
        let (s, _, _) = choose(&[esp("aes256-sha256")], &offered).unwrap();
        assert!(!s.esn);
        assert_eq!(s.name(), "aes256-sha256");
        // Only ESN offered, we only do NO_ESN.
        let offered = [esp("aes256-sha256-esn").to_wire(1, &spi)];
        assert_eq!(choose(&[esp("aes256-sha256")], &offered), None);
        // A bad ESP SPI size.
        assert_eq!(
            choose(
                &[esp("aes256-sha256")],
                &[esp("aes256-sha256").to_wire(1, &[1, 2])]
            ),
            None
        );
    }

    impl Proposal {
        fn with_spi(&self, spi: &[u8]) -> Proposal {
            Proposal {
                spi: spi.to_vec(),
                ..self.clone()
            }
        }
    }

    fn words(kind: &'static [&'static str]) -> impl Strategy<Value = Vec<&'static str>> {
        proptest::sample::subsequence(kind, 1..=kind.len()).prop_shuffle()
    }

    const ENCR_AEAD: &[&str] = &[
        "aes128gcm16",
        "aes192gcm16",
        "aes256gcm16",
        "chacha20poly1305",
    ];
    const ENCR_CBC: &[&str] = &["aes128", "aes192", "aes256"];
    const INTEG: &[&str] = &["sha256", "sha384", "sha512"];
    const PRF: &[&str] = &["prfsha256", "prfsha384", "prfsha512"];
    const DH: &[&str] = &["modp2048", "modp3072", "ecp256", "ecp384", "curve25519"];

    proptest! {
        /// Any valid IKE proposal: choosing against its own wire form yields a selection whose
        /// name parses back to a spec choosing the same selection, and the initiator accepts it.
        #[test]
        fn ike_round_trip(aead in any::<bool>(), e in words(ENCR_AEAD), c in words(ENCR_CBC),
                          i in words(INTEG), p in words(PRF), d in words(DH), explicit_prf in any::<bool>()) {
            let mut parts: Vec<&str> = if aead { e } else { c };
            if !aead { parts.extend(i); }
            if aead || explicit_prf { parts.extend(p); }
            parts.extend(d);
            let s = parts.join("-");
            let spec = ike(&s);
            let offer = spec.to_wire(1, &[]);
            let (sel, _, _) = choose(std::slice::from_ref(&spec), std::slice::from_ref(&offer)).unwrap();
            prop_assert_eq!(accept_response(std::slice::from_ref(&offer), &sel.to_wire(1, &[])), Some(sel));
            let again = ike(&sel.name());
            let (sel2, _, _) = choose(&[again], &[sel.to_wire(1, &[])]).unwrap();
            prop_assert_eq!(sel2, sel);
        }

        #[test]
        fn esp_round_trip(aead in any::<bool>(), e in words(ENCR_AEAD), c in words(ENCR_CBC),
                          i in words(INTEG), d in proptest::option::of(words(DH)), esn in 0u8..3) {
            let mut parts: Vec<&str> = if aead { e } else { c };
            if !aead { parts.extend(i); }
            if let Some(d) = d { parts.extend(d); }
            match esn { 1 => parts.push("esn"), 2 => parts.extend(["noesn", "esn"]), _ => {} }
            let spec = esp(&parts.join("-"));
            let offer = spec.to_wire(1, &[5; 4]);
            let (sel, _, _) = choose(std::slice::from_ref(&spec), std::slice::from_ref(&offer)).unwrap();
            prop_assert_eq!(accept_response(std::slice::from_ref(&offer), &sel.to_wire(1, &[6; 4])), Some(sel));
            let again = esp(&sel.name());
            let (sel2, _, _) = choose(&[again], &[sel.to_wire(1, &[6; 4])]).unwrap();
            prop_assert_eq!(sel2, sel);
        }

        #[test]
        fn parse_never_panics(s in "[a-z0-9_ -]{0,60}") {
            let _ = ProposalSpec::parse_ike(&s, &[]);
            let _ = ProposalSpec::parse_esp(&s, &["3des".to_string()]);
        }

        #[test]
        fn wire_functions_never_panic(ts in proptest::collection::vec((1u8..7, 0u16..40, proptest::option::of(0u16..300)), 0..8),
                                      proto in 0u8..5, spi_len in 0usize..10) {
            let p = Proposal {
                number: 1,
                protocol: ProtocolId(proto),
                spi: vec![1; spi_len],
                transforms: ts.into_iter().map(|(k, id, kl)| t(TransformType(k), id, kl)).collect(),
            };
            let _ = Selected::from_wire(&p);
            let _ = accept_response(std::slice::from_ref(&p), &p);
            let _ = choose(&[ike(LAB[2]), esp("aes256gcm16")], std::slice::from_ref(&p));
        }
    }
}

#[cfg(test)]
mod additional_tests {
    use super::*;

    fn ike(s: &str) -> ProposalSpec {
        ProposalSpec::parse_ike(s, &[]).unwrap()
    }

    #[test]
    fn strongswan6_syntax() {
        let p = ike("aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_mlkem1024");
        assert_eq!(p.dh, vec![DhGroup::CURVE25519]);
        assert_eq!(p.additional[0], vec![DhGroup::ML_KEM_768]);
        assert_eq!(p.additional[1], vec![DhGroup::ML_KEM_1024]);
        assert!(p.additional[2..].iter().all(Vec::is_empty));
        assert!(p.has_additional() && !p.additional_optional());
        let opt = ike("aes256gcm16-prfsha384-ecp384-ke1_mlkem1024-ke1_none");
        assert_eq!(opt.additional[0], vec![DhGroup::ML_KEM_1024, DhGroup::NONE]);
        assert!(opt.additional_optional());
        assert!(!ike("aes256gcm16-prfsha384-x25519").has_additional());
        let stripped = p.without_additional();
        assert!(!stripped.has_additional());
        assert_eq!(stripped.dh, p.dh);
        // A classical group as an additional exchange is fine too (RFC 9370 allows any).
        assert_eq!(
            ike("aes256gcm16-prfsha384-x25519-ke7_ecp384").additional[6],
            vec![DhGroup::ECP_384]
        );
    }

    #[test]
    fn syntax_errors() {
        let err = |s: &str| ProposalSpec::parse_ike(s, &[]).unwrap_err();
        assert_eq!(
            err("aes256gcm16-prfsha384-x25519-ke8_mlkem768"),
            ProposalError::Unknown("ke8_mlkem768".into())
        );
        assert_eq!(
            err("aes256gcm16-prfsha384-x25519-ke1_mlkem999"),
            ProposalError::Unknown("ke1_mlkem999".into())
        );
        assert_eq!(
            err("aes256gcm16-prfsha384-x25519-ke1_aes256"),
            ProposalError::Unknown("ke1_aes256".into())
        );
        assert_eq!(
            err("aes256gcm16-prfsha384-x25519-ke1_modp1024"),
            ProposalError::Weak("ke1_modp1024".into())
        );
        assert!(matches!(
            err("aes256gcm16-prfsha384-mlkem768"),
            ProposalError::Incomplete(_, _)
        ));
        assert!(matches!(
            ProposalSpec::parse_esp("aes256gcm16-ke1_mlkem768", &[]),
            Err(ProposalError::Incomplete(_, _))
        ));
    }

    #[test]
    fn esp_proposals_with_additional_key_exchanges() {
        let p =
            ProposalSpec::parse_esp("aes256gcm16-x25519-ke1_mlkem768-ke2_mlkem1024", &[]).unwrap();
        assert_eq!(p.dh, vec![DhGroup::CURVE25519]);
        assert_eq!(p.additional[0], vec![DhGroup::ML_KEM_768]);
        assert_eq!(p.additional[1], vec![DhGroup::ML_KEM_1024]);
        assert!(p.has_additional());
        // A responder choosing it answers with one method per slot, ESN included.
        let wire = p.to_wire(1, &[1, 2, 3, 4]);
        let (sel, n, spi) = choose(std::slice::from_ref(&p), std::slice::from_ref(&wire)).unwrap();
        assert_eq!((n, spi.as_slice()), (1, &[1u8, 2, 3, 4][..]));
        assert_eq!(
            sel.name(),
            "aes256gcm16-curve25519-ke1_mlkem768-ke2_mlkem1024"
        );
        assert_eq!(
            accept_response(&[wire], &sel.to_wire(1, &[5, 6, 7, 8])),
            Some(sel)
        );
        // ML-KEM still only as an additional exchange; no PFS group: refused by name.
        assert!(matches!(
            ProposalSpec::parse_esp("aes256gcm16-mlkem768", &[]),
            Err(ProposalError::Incomplete(_, _))
        ));
        match ProposalSpec::parse_esp("aes256gcm16-ke1_mlkem768", &[]) {
            Err(ProposalError::Incomplete(_, why)) => assert!(why.contains("PFS group")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wire_types_and_round_trip() {
        let p = ike("aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke3_mlkem1024");
        let w = p.to_wire(1, &[]);
        let kinds: Vec<(u8, u16)> = w.transforms.iter().map(|t| (t.kind.0, t.id)).collect();
        assert!(kinds.contains(&(6, 36)));
        assert!(kinds.contains(&(8, 37)));
        let (sel, number, _) = choose(std::slice::from_ref(&p), std::slice::from_ref(&w)).unwrap();
        assert_eq!(number, 1);
        assert_eq!(sel.additional[0], Some(DhGroup::ML_KEM_768));
        assert_eq!(sel.additional[1], None);
        assert_eq!(sel.additional[2], Some(DhGroup::ML_KEM_1024));
        assert_eq!(
            sel.name(),
            "aes256gcm16-prfsha384-curve25519-ke1_mlkem768-ke3_mlkem1024"
        );
        assert_eq!(
            sel.additional_kes().collect::<Vec<_>>(),
            vec![(0, DhGroup::ML_KEM_768), (2, DhGroup::ML_KEM_1024)]
        );
        let answer = sel.to_wire(1, &[]);
        assert_eq!(Selected::from_wire(&answer), Some(sel));
        assert_eq!(accept_response(&[w], &answer), Some(sel));
    }

    #[test]
    fn responder_selection() {
        let offer = ike("aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_mlkem1024").to_wire(1, &[]);
        // The responder's order decides among the offered methods.
        let ours = [ike(
            "aes256gcm16-prfsha384-x25519-ke1_mlkem1024-ke1_mlkem768",
        )];
        let (sel, _, _) = choose(&ours, std::slice::from_ref(&offer)).unwrap();
        assert_eq!(sel.additional[0], Some(DhGroup::ML_KEM_1024));
        // A responder without additional exchanges refuses a mandatory one...
        let classic = [ike("aes256gcm16-prfsha384-x25519")];
        assert!(choose(&classic, std::slice::from_ref(&offer)).is_none());
        // ...and takes an optional one as none.
        let optional = ike("aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none").to_wire(1, &[]);
        let (sel, _, _) = choose(&classic, std::slice::from_ref(&optional)).unwrap();
        assert!(!sel.has_additional());
        // A responder that requires one refuses a classical offer.
        let pq = [ike("aes256gcm16-prfsha384-x25519-ke1_mlkem768")];
        let plain = ike("aes256gcm16-prfsha384-x25519").to_wire(1, &[]);
        assert!(choose(&pq, std::slice::from_ref(&plain)).is_none());
        // A responder whose exchange is optional takes the classical offer.
        let pq_opt = [ike("aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none")];
        assert!(choose(&pq_opt, std::slice::from_ref(&plain)).is_some());
        // Methods it does not share are no match.
        let other = [ike("aes256gcm16-prfsha384-x25519-ke1_mlkem512")];
        assert!(choose(&other, std::slice::from_ref(&offer)).is_none());
    }

    #[test]
    fn initiator_checks_the_answer() {
        let offered = vec![ike("aes256gcm16-prfsha384-x25519-ke1_mlkem768").to_wire(1, &[])];
        // The answer drops the additional exchange we required.
        let stripped = ike("aes256gcm16-prfsha384-x25519").to_wire(1, &[]);
        assert_eq!(accept_response(&offered, &stripped), None);
        // The answer names a method we did not offer.
        let other = ike("aes256gcm16-prfsha384-x25519-ke1_mlkem1024").to_wire(1, &[]);
        assert_eq!(accept_response(&offered, &other), None);
        // Two methods in one slot is no single choice.
        let two = ike("aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_mlkem1024").to_wire(1, &[]);
        assert_eq!(accept_response(&offered, &two), None);
        // With ke1_none offered, an answer without it is accepted.
        let optional =
            vec![ike("aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none").to_wire(1, &[])];
        let sel = accept_response(&optional, &stripped).unwrap();
        assert!(!sel.has_additional());
    }
}
