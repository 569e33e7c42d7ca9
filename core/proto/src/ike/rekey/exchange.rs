//! The CREATE_CHILD_SA rekey exchanges as either end computes them, shared by the client and
//! our responder: reading a request or response, the offer of the exchange's initiator (new
//! SPI, nonce, key exchange, proposals) and what it makes of the answer, and the answer of
//! the exchange's responder. CHILD SA keys follow RFC 7296 §2.17 (with g^ir when the ESP
//! proposal has a group: PFS), IKE SA keys §2.18. The initiator of a rekey exchange is the
//! initiator of what it creates: its key order and, for an IKE SA, the original initiator.
//!
//! A proposal with additional key exchanges (RFC 9370) is offered and chosen as configured;
//! the exchange then only starts the SA: the initiator's side is accepted
//! ([`ChildOffer::accept`], [`IkeOffer::accept`]) and the responder's drafted
//! ([`draft_child`], [`draft_ike`]) with the CREATE_CHILD_SA's shared secret SK(0), and the
//! keys are derived once the IKE_FOLLOWUP_KE exchanges (`followup`) added theirs.

use crate::crypto::dh::{self, new_key_exchange, KeyExchange};
use crate::crypto::keymat::derive_rekeyed_ike_keys_hybrid;
use crate::crypto::prf::Prf;
use crate::crypto::proposal::{accept_response, choose, ProposalSpec, Selected};
use crate::crypto::{CryptoError, Secret};
use crate::ike::child::{random_spi, ts_contains, ChildSa};
use crate::ike::init::NONCE_LEN;
use crate::ike::keys::{Role, SaKeys};
use crate::rng::Rng;
use crate::wire::payload::{NONCE_MAX, NONCE_MIN};
use crate::wire::{DhGroup, Notify, NotifyType, Payload, Proposal, ProtocolId, TrafficSelector};

/// The parts of a CREATE_CHILD_SA message a rekey looks at.
#[derive(Debug, Default)]
pub struct CreateChild<'a> {
    /// REKEY_SA: the protocol and SPI of the CHILD SA being replaced.
    pub rekey: Option<(ProtocolId, &'a [u8])>,
    pub sa: Option<&'a [Proposal]>,
    pub nonce: Option<&'a [u8]>,
    pub ke: Option<(DhGroup, &'a [u8])>,
    pub ts_i: Option<&'a [TrafficSelector]>,
    pub ts_r: Option<&'a [TrafficSelector]>,
    /// The first error notify, with its data.
    pub error: Option<(NotifyType, &'a [u8])>,
    /// N(ADDITIONAL_KEY_EXCHANGE): the responder's link data (RFC 9370 §2.2.4).
    pub link: Option<&'a [u8]>,
}

impl<'a> CreateChild<'a> {
    pub fn parse(p: &'a [Payload<'a>]) -> Self {
        let mut c = Self::default();
        for pl in p {
            match pl {
                Payload::Sa(s) => c.sa = Some(s.as_slice()),
                Payload::Nonce(n) => c.nonce = Some(n),
                Payload::Ke { group, data } => c.ke = Some((*group, data)),
                Payload::TsI(t) => c.ts_i = Some(t.as_slice()),
                Payload::TsR(t) => c.ts_r = Some(t.as_slice()),
                Payload::Notify(n) if n.kind == NotifyType::REKEY_SA => {
                    c.rekey = Some((n.protocol, n.spi));
                }
                Payload::Notify(n) if n.kind == NotifyType::ADDITIONAL_KEY_EXCHANGE => {
                    c.link = Some(n.data);
                }
                Payload::Notify(n) if n.kind.is_error() && c.error.is_none() => {
                    c.error = Some((n.kind, n.data));
                }
                _ => {}
            }
        }
        c
    }

    /// A request to rekey the IKE SA: IKE proposals and no REKEY_SA.
    pub fn is_ike_rekey(&self) -> bool {
        self.rekey.is_none()
            && self
                .sa
                .is_some_and(|s| s.iter().any(|p| p.protocol == ProtocolId::IKE))
    }

    /// The ESP SPI of REKEY_SA: the SPI its sender receives on (our outbound SPI).
    pub fn rekeyed_esp_spi(&self) -> Option<u32> {
        match self.rekey {
            Some((ProtocolId::ESP, spi)) => <[u8; 4]>::try_from(spi).ok().map(u32::from_be_bytes),
            _ => None,
        }
    }

    fn nonce_ok(&self) -> Option<&'a [u8]> {
        self.nonce
            .filter(|n| (NONCE_MIN..=NONCE_MAX).contains(&n.len()))
    }
}

/// An answer that refuses the request: one error notify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub kind: NotifyType,
    pub data: Vec<u8>,
}

impl Refusal {
    pub fn new(kind: NotifyType) -> Self {
        Self {
            kind,
            data: Vec::new(),
        }
    }
    pub(crate) fn invalid_ke(group: DhGroup) -> Self {
        Self {
            kind: NotifyType::INVALID_KE_PAYLOAD,
            data: group.0.to_be_bytes().to_vec(),
        }
    }
    pub fn payload(&self) -> Payload<'_> {
        Payload::notify(self.kind, &self.data)
    }
}

/// Why the initiator of a rekey exchange got no new SA from the response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The responder refused with this notify (and its data).
    Refused(NotifyType, Vec<u8>),
    /// The response breaks the protocol or what we offered.
    Invalid(String),
}

impl Outcome {
    /// The group an INVALID_KE_PAYLOAD asks for.
    pub fn wanted_group(&self) -> Option<DhGroup> {
        match self {
            Self::Refused(NotifyType::INVALID_KE_PAYLOAD, d) => <[u8; 2]>::try_from(d.as_slice())
                .ok()
                .map(|b| DhGroup(u16::from_be_bytes(b))),
            _ => None,
        }
    }
}

fn nonce(rng: &mut dyn Rng) -> Vec<u8> {
    let mut n = vec![0u8; NONCE_LEN];
    rng.fill(&mut n);
    n
}

fn key_exchange(group: DhGroup, rng: &mut dyn Rng) -> Result<Box<dyn KeyExchange>, CryptoError> {
    if !dh::is_supported(group) {
        return Err(CryptoError::Unsupported(format!("group {group}")));
    }
    new_key_exchange(group, rng)
}

/// The key exchange group of our ESP proposals (PFS), or `wanted` when the peer asked for
/// it and we offer it.
fn pfs_group(specs: &[ProposalSpec], wanted: Option<DhGroup>) -> Option<DhGroup> {
    match wanted {
        Some(g) if specs.iter().any(|s| s.dh.contains(&g)) => Some(g),
        _ => specs.iter().flat_map(|s| s.dh.iter().copied()).next(),
    }
}

/// Our proposals for an exchange, numbered from 1, each carrying our new SPI, additional
/// key exchanges (RFC 9370) included.
fn offer_proposals(specs: &[ProposalSpec], spi: &[u8]) -> Vec<Proposal> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| s.to_wire(u8::try_from(i + 1).unwrap_or(u8::MAX), spi))
        .collect()
}

/// The one proposal of a response (`sa`) among those we `offered`, and the responder's SPI
/// in it (`N` bytes, not 0). `what` names the protocol in the errors.
fn accepted<const N: usize>(
    offered: &[Proposal],
    sa: &[Proposal],
    what: &str,
) -> Result<(Selected, [u8; N]), Outcome> {
    let selected = match sa {
        [one] => accept_response(offered, one),
        _ => None,
    }
    .ok_or_else(|| {
        Outcome::Invalid(format!(
            "responder chose an {what} proposal we did not offer"
        ))
    })?;
    let spi = sa
        .first()
        .and_then(|p| <[u8; N]>::try_from(p.spi.as_slice()).ok())
        .filter(|s| *s != [0; N])
        .ok_or_else(|| Outcome::Invalid(format!("{what} SPI is not {N} bytes")))?;
    Ok((selected, spi))
}

/// The proposal we choose from a request's `sa` with our `specs`, its number, and the
/// initiator's SPI in it (`N` bytes, not 0).
fn chosen<const N: usize>(
    specs: &[ProposalSpec],
    sa: &[Proposal],
) -> Result<(Selected, u8, [u8; N]), Refusal> {
    let (selected, number, peer_spi) =
        choose(specs, sa).ok_or(Refusal::new(NotifyType::NO_PROPOSAL_CHOSEN))?;
    let spi = <[u8; N]>::try_from(peer_spi.as_slice())
        .ok()
        .filter(|s| *s != [0; N])
        .ok_or(Refusal::new(NotifyType::INVALID_SYNTAX))?;
    Ok((selected, number, spi))
}

/// Our side of a CHILD SA rekey we initiate, kept until the response.
pub struct ChildOffer {
    /// Our inbound SPI of the SA being replaced.
    pub old_spi_in: u32,
    old_spi_bytes: [u8; 4],
    /// Our inbound SPI of the new SA.
    pub spi_in: u32,
    pub ni: Vec<u8>,
    pub ke: Option<Box<dyn KeyExchange>>,
    offered: Vec<Proposal>,
    ts_i: Vec<TrafficSelector>,
    ts_r: Vec<TrafficSelector>,
    /// The IKE_FOLLOWUP_KE exchanges once the answer chose additional key exchanges.
    pub(crate) chain: super::ChildChain,
}

impl std::fmt::Debug for ChildOffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildOffer")
            .field("old_spi_in", &format_args!("{:08x}", self.old_spi_in))
            .field("spi_in", &format_args!("{:08x}", self.spi_in))
            .field("pfs", &self.ke.as_ref().map(|k| k.group()))
            .finish_non_exhaustive()
    }
}

impl ChildOffer {
    /// An offer replacing `old` with our ESP `specs` (their groups, when any, make it PFS;
    /// `wanted` is a group the peer asked for with INVALID_KE_PAYLOAD).
    pub fn new(
        specs: &[ProposalSpec],
        wanted: Option<DhGroup>,
        old: &ChildSa,
        spi_in: u32,
        rng: &mut dyn Rng,
    ) -> Result<Self, CryptoError> {
        let ke = match pfs_group(specs, wanted) {
            Some(g) => Some(key_exchange(g, rng)?),
            None => None,
        };
        let offered = offer_proposals(specs, &spi_in.to_be_bytes());
        Ok(Self {
            old_spi_in: old.spi_in,
            old_spi_bytes: old.spi_in.to_be_bytes(),
            spi_in,
            ni: nonce(rng),
            ke,
            offered,
            ts_i: old.ts_local.clone(),
            ts_r: old.ts_remote.clone(),
            chain: None,
        })
    }

    /// The request's payloads: REKEY_SA, SA, Ni, [KEi], TSi, TSr.
    pub fn payloads(&self) -> Vec<Payload<'_>> {
        let mut p = vec![
            Payload::Notify(Notify {
                protocol: ProtocolId::ESP,
                spi: &self.old_spi_bytes,
                kind: NotifyType::REKEY_SA,
                data: &[],
            }),
            Payload::Sa(self.offered.clone()),
            Payload::Nonce(&self.ni),
        ];
        if let Some(ke) = &self.ke {
            p.push(Payload::Ke {
                group: ke.group(),
                data: ke.public_key(),
            });
        }
        p.push(Payload::TsI(self.ts_i.clone()));
        p.push(Payload::TsR(self.ts_r.clone()));
        p
    }

    /// The new CHILD SA from the responder's answer (keys in the initiator's order), when
    /// it chose no additional key exchange.
    pub fn finish(&self, prf: Prf, sk_d: &[u8], r: &CreateChild<'_>) -> Result<ChildSa, Outcome> {
        self.accept(r)?.derive(self, prf, sk_d, &[])
    }

    /// Checks the responder's answer and computes SK(0); the keys come with `derive`.
    pub fn accept(&self, r: &CreateChild<'_>) -> Result<ChildAccepted, Outcome> {
        if let Some((kind, data)) = r.error {
            return Err(Outcome::Refused(kind, data.to_vec()));
        }
        let bad = |s: &str| Outcome::Invalid(s.to_string());
        let (Some(sa), Some(nr), Some(ts_i), Some(ts_r)) = (r.sa, r.nonce_ok(), r.ts_i, r.ts_r)
        else {
            return Err(bad("CREATE_CHILD_SA response misses SA, Nr or TS"));
        };
        let (selected, spi_out) = accepted(&self.offered, sa, "ESP")?;
        let spi_out = u32::from_be_bytes(spi_out);
        let within = |got: &[TrafficSelector], asked: &[TrafficSelector]| {
            !got.is_empty() && got.iter().all(|g| asked.iter().any(|a| ts_contains(a, g)))
        };
        if !within(ts_i, &self.ts_i) || !within(ts_r, &self.ts_r) {
            return Err(bad("traffic selectors outside what we asked"));
        }
        let sk0 = shared_secret(selected.dh, self.ke.as_deref(), r.ke)?;
        if selected.has_additional() && sk0.is_none() {
            return Err(bad(
                "additional key exchanges without a KE in CREATE_CHILD_SA",
            ));
        }
        Ok(ChildAccepted {
            selected,
            spi_out,
            nr: nr.to_vec(),
            ts_i: ts_i.to_vec(),
            ts_r: ts_r.to_vec(),
            sk0,
        })
    }
}

/// A CHILD SA rekey's answer as the initiator accepted it, before its keys.
#[derive(Debug)]
pub struct ChildAccepted {
    pub selected: Selected,
    pub spi_out: u32,
    pub nr: Vec<u8>,
    ts_i: Vec<TrafficSelector>,
    ts_r: Vec<TrafficSelector>,
    sk0: Option<Secret>,
}

impl ChildAccepted {
    /// The new CHILD SA, with the secrets of the additional key exchanges in order.
    pub fn derive(
        &self,
        offer: &ChildOffer,
        prf: Prf,
        sk_d: &[u8],
        additional: &[Secret],
    ) -> Result<ChildSa, Outcome> {
        let more: Vec<&[u8]> = additional.iter().map(Secret::as_bytes).collect();
        ChildSa::derive_hybrid(
            Role::Initiator,
            prf,
            sk_d,
            self.sk0.as_ref().map(Secret::as_bytes),
            &more,
            &offer.ni,
            &self.nr,
            self.selected,
            offer.spi_in,
            self.spi_out,
            self.ts_i.clone(),
            self.ts_r.clone(),
        )
        .map_err(|e| Outcome::Invalid(format!("CHILD SA keys: {e}")))
    }
}

/// g^ir when the chosen proposal has a group: ours and the peer's KE must both be of it.
fn shared_secret(
    chosen: Option<DhGroup>,
    ours: Option<&dyn KeyExchange>,
    theirs: Option<(DhGroup, &[u8])>,
) -> Result<Option<crate::crypto::Secret>, Outcome> {
    let Some(group) = chosen else {
        return Ok(None);
    };
    let bad = |s: &str| Outcome::Invalid(s.to_string());
    let ours = ours
        .filter(|k| k.group() == group)
        .ok_or_else(|| bad("chosen group is not the one of our KE"))?;
    let (g, data) = theirs.ok_or_else(|| bad("KE missing"))?;
    if g != group {
        return Err(bad("KE group does not match the chosen proposal"));
    }
    ours.shared_secret(data)
        .map(Some)
        .map_err(|e| bad(&format!("key exchange: {e}")))
}

/// The CHILD SA a rekey request made (we are the exchange's responder), with the nonces.
#[derive(Debug)]
pub struct ChildAnswer {
    pub child: ChildSa,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
}

/// Our answer to a CHILD SA rekey request, before its keys: what the response carries and
/// SK(0); finished at once, or after the IKE_FOLLOWUP_KE exchanges of its additional key
/// exchanges.
pub struct ChildDraft {
    pub selected: Selected,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    pub spi_in: u32,
    pub spi_out: u32,
    /// Our outbound SPI of the CHILD SA it replaces.
    pub rekeyed_spi_out: u32,
    sk0: Option<Secret>,
    ke_pub: Option<(DhGroup, Vec<u8>)>,
    proposal: Proposal,
    ts_local: Vec<TrafficSelector>,
    ts_remote: Vec<TrafficSelector>,
}

impl std::fmt::Debug for ChildDraft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildDraft")
            .field("selected", &self.selected.name())
            .field("spi_in", &format_args!("{:08x}", self.spi_in))
            .finish_non_exhaustive()
    }
}

impl ChildDraft {
    /// The response's payloads: SA, Nr, [KEr], [N(ADDITIONAL_KEY_EXCHANGE)], TSi, TSr.
    pub fn payloads<'a>(&'a self, link: Option<&'a [u8]>) -> Vec<Payload<'a>> {
        let mut p = vec![
            Payload::Sa(vec![self.proposal.clone()]),
            Payload::Nonce(&self.nr),
        ];
        if let Some((group, data)) = &self.ke_pub {
            p.push(Payload::Ke {
                group: *group,
                data,
            });
        }
        if let Some(link) = link {
            p.push(Payload::notify(NotifyType::ADDITIONAL_KEY_EXCHANGE, link));
        }
        p.push(Payload::TsI(self.ts_remote.clone()));
        p.push(Payload::TsR(self.ts_local.clone()));
        p
    }

    /// The new CHILD SA, with the secrets of the additional key exchanges in order.
    pub fn finish(
        &self,
        prf: Prf,
        sk_d: &[u8],
        additional: &[Secret],
    ) -> Result<ChildAnswer, CryptoError> {
        let more: Vec<&[u8]> = additional.iter().map(Secret::as_bytes).collect();
        let child = ChildSa::derive_hybrid(
            Role::Responder,
            prf,
            sk_d,
            self.sk0.as_ref().map(Secret::as_bytes),
            &more,
            &self.ni,
            &self.nr,
            self.selected,
            self.spi_in,
            self.spi_out,
            self.ts_local.clone(),
            self.ts_remote.clone(),
        )?;
        Ok(ChildAnswer {
            child,
            ni: self.ni.clone(),
            nr: self.nr.clone(),
        })
    }
}

/// Drafts the answer to a request to rekey `old` with our ESP `specs`; the new SA gets
/// inbound SPI `spi_in` and keeps `old`'s selectors.
pub fn draft_child(
    specs: &[ProposalSpec],
    r: &CreateChild<'_>,
    old: &ChildSa,
    spi_in: u32,
    rng: &mut dyn Rng,
) -> Result<ChildDraft, Refusal> {
    let (Some(sa), Some(ni)) = (r.sa, r.nonce_ok()) else {
        return Err(Refusal::new(NotifyType::INVALID_SYNTAX));
    };
    let (selected, number, spi_out) = chosen(specs, sa)?;
    let spi_out = u32::from_be_bytes(spi_out);
    let (sk0, ke_pub) = match selected.dh {
        None if selected.has_additional() => {
            return Err(Refusal::new(NotifyType::NO_PROPOSAL_CHOSEN));
        }
        None => (None, None),
        Some(group) => {
            let Some((g, data)) = r.ke.filter(|(g, _)| *g == group) else {
                return Err(Refusal::invalid_ke(group));
            };
            let ours = key_exchange(g, rng).map_err(|_| Refusal::invalid_ke(group))?;
            let s = ours
                .shared_secret(data)
                .map_err(|_| Refusal::new(NotifyType::INVALID_SYNTAX))?;
            (Some(s), Some((g, ours.public_key().to_vec())))
        }
    };
    Ok(ChildDraft {
        selected,
        ni: ni.to_vec(),
        nr: nonce(rng),
        spi_in,
        spi_out,
        rekeyed_spi_out: old.spi_out,
        sk0,
        ke_pub,
        proposal: selected.to_wire(number, &spi_in.to_be_bytes()),
        ts_local: old.ts_local.clone(),
        ts_remote: old.ts_remote.clone(),
    })
}

/// A new IKE SA made by a rekey: SPIs in header order, which end is its original initiator,
/// and its keys arranged for our end.
#[derive(Debug)]
pub struct NewIkeSa {
    pub spi_i: u64,
    pub spi_r: u64,
    pub original_initiator: bool,
    pub keys: SaKeys,
    pub selected: Selected,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
}

impl NewIkeSa {
    /// Our SPI of the new SA.
    pub fn our_spi(&self) -> u64 {
        if self.original_initiator {
            self.spi_i
        } else {
            self.spi_r
        }
    }
}

/// The keys of the new IKE SA (§2.18) for our end.
#[allow(clippy::too_many_arguments)]
fn rekeyed_keys(
    original_initiator: bool,
    old_prf: Prf,
    old_sk_d: &[u8],
    selected: &Selected,
    g_ir: &[u8],
    additional: &[Secret],
    ni: &[u8],
    nr: &[u8],
    spi_i: u64,
    spi_r: u64,
) -> Result<SaKeys, CryptoError> {
    let (prf, encr_len, integ_len) = SaKeys::suite(selected)?;
    let more: Vec<&[u8]> = additional.iter().map(Secret::as_bytes).collect();
    let k = derive_rekeyed_ike_keys_hybrid(
        old_prf, old_sk_d, prf, g_ir, &more, ni, nr, spi_i, spi_r, encr_len, integ_len,
    )?;
    let role = if original_initiator {
        Role::Initiator
    } else {
        Role::Responder
    };
    SaKeys::arrange(role, selected, prf, k)
}

/// A random IKE SPI (never 0).
pub fn random_ike_spi(rng: &mut dyn Rng) -> u64 {
    loop {
        let s = rng.next_u64();
        if s != 0 {
            return s;
        }
    }
}

/// Our side of an IKE SA rekey we initiate, kept until the response.
pub struct IkeOffer {
    pub spi: u64,
    pub ni: Vec<u8>,
    pub ke: Box<dyn KeyExchange>,
    offered: Vec<Proposal>,
    /// The IKE_FOLLOWUP_KE exchanges once the answer chose additional key exchanges.
    pub(crate) chain: super::IkeChain,
}

impl std::fmt::Debug for IkeOffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IkeOffer")
            .field("spi", &format_args!("{:016x}", self.spi))
            .field("group", &self.ke.group())
            .finish_non_exhaustive()
    }
}

impl IkeOffer {
    /// An offer of a new IKE SA with our IKE `specs`, key exchange in `group`.
    pub fn new(
        specs: &[ProposalSpec],
        group: DhGroup,
        rng: &mut dyn Rng,
    ) -> Result<Self, CryptoError> {
        let ke = key_exchange(group, rng)?;
        let spi = random_ike_spi(rng);
        let offered = offer_proposals(specs, &spi.to_be_bytes());
        Ok(Self {
            spi,
            ni: nonce(rng),
            ke,
            offered,
            chain: None,
        })
    }

    /// The request's payloads: SA, Ni, KEi.
    pub fn payloads(&self) -> Vec<Payload<'_>> {
        vec![
            Payload::Sa(self.offered.clone()),
            Payload::Nonce(&self.ni),
            Payload::Ke {
                group: self.ke.group(),
                data: self.ke.public_key(),
            },
        ]
    }

    /// The new IKE SA from the answer (no additional key exchange chosen); we are its
    /// original initiator.
    pub fn finish(
        &self,
        old_prf: Prf,
        old_sk_d: &[u8],
        r: &CreateChild<'_>,
    ) -> Result<NewIkeSa, Outcome> {
        self.accept(r)?.derive(self, old_prf, old_sk_d, &[])
    }

    /// Checks the answer and computes SK(0); the keys come with `derive`.
    pub fn accept(&self, r: &CreateChild<'_>) -> Result<IkeAccepted, Outcome> {
        if let Some((kind, data)) = r.error {
            return Err(Outcome::Refused(kind, data.to_vec()));
        }
        let bad = |s: &str| Outcome::Invalid(s.to_string());
        let (Some(sa), Some(nr)) = (r.sa, r.nonce_ok()) else {
            return Err(bad("IKE rekey response misses SA or Nr"));
        };
        let (selected, spi_r) = accepted(&self.offered, sa, "IKE")?;
        let spi_r = u64::from_be_bytes(spi_r);
        let sk0 = shared_secret(selected.dh, Some(self.ke.as_ref()), r.ke)?
            .ok_or_else(|| bad("IKE rekey without key exchange"))?;
        Ok(IkeAccepted {
            selected,
            spi_r,
            nr: nr.to_vec(),
            sk0,
        })
    }
}

/// An IKE SA rekey's answer as the initiator accepted it, before its keys.
#[derive(Debug)]
pub struct IkeAccepted {
    pub selected: Selected,
    pub spi_r: u64,
    pub nr: Vec<u8>,
    sk0: Secret,
}

impl IkeAccepted {
    /// The new IKE SA, with the secrets of the additional key exchanges in order.
    pub fn derive(
        &self,
        offer: &IkeOffer,
        old_prf: Prf,
        old_sk_d: &[u8],
        additional: &[Secret],
    ) -> Result<NewIkeSa, Outcome> {
        let keys = rekeyed_keys(
            true,
            old_prf,
            old_sk_d,
            &self.selected,
            self.sk0.as_bytes(),
            additional,
            &offer.ni,
            &self.nr,
            offer.spi,
            self.spi_r,
        )
        .map_err(|e| Outcome::Invalid(format!("IKE SA keys: {e}")))?;
        Ok(NewIkeSa {
            spi_i: offer.spi,
            spi_r: self.spi_r,
            original_initiator: true,
            keys,
            selected: self.selected,
            ni: offer.ni.clone(),
            nr: self.nr.clone(),
        })
    }
}

/// Our answer to a request to rekey the IKE SA, before its keys: what the response carries
/// and SK(0); finished at once, or after the IKE_FOLLOWUP_KE exchanges.
pub struct IkeDraft {
    pub selected: Selected,
    pub spi_i: u64,
    pub spi_r: u64,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    sk0: Secret,
    ke_pub: (DhGroup, Vec<u8>),
    proposal: Proposal,
}

impl std::fmt::Debug for IkeDraft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IkeDraft")
            .field("selected", &self.selected.name())
            .field("spi_r", &format_args!("{:016x}", self.spi_r))
            .finish_non_exhaustive()
    }
}

impl IkeDraft {
    /// The response's payloads: SA, Nr, KEr, [N(ADDITIONAL_KEY_EXCHANGE)].
    pub fn payloads<'a>(&'a self, link: Option<&'a [u8]>) -> Vec<Payload<'a>> {
        let mut p = vec![
            Payload::Sa(vec![self.proposal.clone()]),
            Payload::Nonce(&self.nr),
            Payload::Ke {
                group: self.ke_pub.0,
                data: &self.ke_pub.1,
            },
        ];
        if let Some(link) = link {
            p.push(Payload::notify(NotifyType::ADDITIONAL_KEY_EXCHANGE, link));
        }
        p
    }

    /// The new IKE SA (the peer its original initiator) from the SA whose PRF and SK_d are
    /// `old_prf`, `old_sk_d`, with the secrets of the additional key exchanges in order.
    pub fn finish(
        &self,
        old_prf: Prf,
        old_sk_d: &[u8],
        additional: &[Secret],
    ) -> Result<NewIkeSa, CryptoError> {
        let keys = rekeyed_keys(
            false,
            old_prf,
            old_sk_d,
            &self.selected,
            self.sk0.as_bytes(),
            additional,
            &self.ni,
            &self.nr,
            self.spi_i,
            self.spi_r,
        )?;
        Ok(NewIkeSa {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            original_initiator: false,
            keys,
            selected: self.selected,
            ni: self.ni.clone(),
            nr: self.nr.clone(),
        })
    }
}

/// Drafts the answer to a request to rekey the IKE SA with our IKE `specs`.
pub fn draft_ike(
    specs: &[ProposalSpec],
    r: &CreateChild<'_>,
    rng: &mut dyn Rng,
) -> Result<IkeDraft, Refusal> {
    let (Some(sa), Some(ni)) = (r.sa, r.nonce_ok()) else {
        return Err(Refusal::new(NotifyType::INVALID_SYNTAX));
    };
    let (selected, number, spi_i) = chosen(specs, sa)?;
    let spi_i = u64::from_be_bytes(spi_i);
    let group = selected
        .dh
        .ok_or(Refusal::new(NotifyType::NO_PROPOSAL_CHOSEN))?;
    let Some((_, data)) = r.ke.filter(|(g, _)| *g == group) else {
        return Err(Refusal::invalid_ke(group));
    };
    let ours = key_exchange(group, rng).map_err(|_| Refusal::invalid_ke(group))?;
    let sk0 = ours
        .shared_secret(data)
        .map_err(|_| Refusal::new(NotifyType::INVALID_SYNTAX))?;
    let spi_r = random_ike_spi(rng);
    Ok(IkeDraft {
        selected,
        spi_i,
        spi_r,
        ni: ni.to_vec(),
        nr: nonce(rng),
        sk0,
        ke_pub: (group, ours.public_key().to_vec()),
        proposal: selected.to_wire(number, &spi_r.to_be_bytes()),
    })
}

/// A fresh inbound ESP SPI for which `taken` is false.
pub fn fresh_spi(rng: &mut dyn Rng, taken: impl Fn(u32) -> bool) -> u32 {
    loop {
        let s = random_spi(rng);
        if !taken(s) {
            return s;
        }
    }
}
