//! The responder's IKE_AUTH: checks the client (PSK, certificate signature, or EAP-MSCHAPv2
//! after our signed first answer), then answers with our AUTH, the CP lease, the ESP
//! proposal and narrowed traffic selectors, and keys the CHILD SA and its ESP data plane.

use std::net::IpAddr;

use log::{info, warn};

use super::responder::{Responder, ResponderAuth, ResponderEvent, ResponderSa, SaPhase};
use crate::crypto::cert::{verify_chain, Certificate};
use crate::crypto::mschapv2::Authenticator;
use crate::crypto::proposal::{choose, ProposalSpec};
use crate::crypto::{ct_eq, Secret};
use crate::identity::Identity;
use crate::ike::child::{random_spi, ts_contains, ts_host, ChildSa};
use crate::ike::keys::{id_body, shared_key_auth, signed_octets, Role};
use crate::wire::eap::EapMessage;
use crate::wire::{
    AuthMethod, CertEncoding, CfgAttr, CfgAttribute, CfgType, EapCode, EapType, ExchangeType, Id,
    IdType, NotifyType, Payload, Proposal, TrafficSelector,
};

/// What the client asked for in its first IKE_AUTH message (kept across EAP rounds).
#[derive(Debug, Clone)]
pub(super) struct AuthRequest {
    idi_type: IdType,
    idi_data: Vec<u8>,
    client: Identity,
    esp: Option<Vec<Proposal>>,
    tsi: Option<Vec<TrafficSelector>>,
    tsr: Option<Vec<TrafficSelector>>,
    cp_req: bool,
    mobike: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EapStage {
    Identity,
    Challenge,
    Success,
    /// EAP succeeded: the client's MSK-based AUTH comes next.
    Done,
}

/// The state of an EAP-MSCHAPv2 conversation on one IKE SA.
pub(super) struct EapServer {
    stage: EapStage,
    identifier: u8,
    request: AuthRequest,
    identity: String,
    authenticator: Option<Authenticator>,
    msk: Option<Secret>,
}

/// Most bytes of an EAP identity we keep.
const MAX_EAP_IDENTITY: usize = 253;

impl Responder {
    /// Handles an IKE_AUTH request; returns whether the IKE SA stays.
    pub(super) fn handle_auth(
        &mut self,
        sa: &mut ResponderSa,
        message_id: u32,
        p: &[Payload<'_>],
    ) -> bool {
        if let Some(eap) = sa.eap.take() {
            return self.continue_eap(sa, message_id, p, eap);
        }
        let mut idi = None;
        let mut auth = None;
        let mut certs = Vec::new();
        let mut req_parts = (None, None, None, false, false);
        for pl in p {
            match pl {
                Payload::IdI(id) => idi = Some(*id),
                Payload::Auth { method, data } => auth = Some((*method, *data)),
                Payload::Cert {
                    encoding: CertEncoding::X509_SIGNATURE,
                    data,
                } => certs.push(*data),
                Payload::Sa(s) => req_parts.0 = Some(s.clone()),
                Payload::TsI(t) => req_parts.1 = Some(t.clone()),
                Payload::TsR(t) => req_parts.2 = Some(t.clone()),
                Payload::Cp {
                    cfg_type: CfgType::CFG_REQUEST,
                    ..
                } => req_parts.3 = true,
                Payload::Notify(n) if n.kind == NotifyType::MOBIKE_SUPPORTED => req_parts.4 = true,
                _ => {}
            }
        }
        let Some(idi) = idi else {
            return self.auth_failed(sa, message_id, "IDi missing");
        };
        let Ok(client) = Identity::from_wire(idi.id_type, idi.data) else {
            return self.auth_failed(sa, message_id, "bad IDi");
        };
        let (esp, tsi, tsr, cp_req, mobike) = req_parts;
        let req = AuthRequest {
            idi_type: idi.id_type,
            idi_data: idi.data.to_vec(),
            client,
            esp,
            tsi,
            tsr,
            cp_req,
            mobike,
        };
        let octets = self.client_octets(sa, &req);
        let Some((method, auth_data)) = auth else {
            let eap_possible = !self.cfg.eap_users.is_empty()
                && matches!(self.cfg.auth, ResponderAuth::Certificate { .. });
            if !eap_possible {
                return self.auth_failed(sa, message_id, "AUTH missing and EAP is not offered");
            }
            return self.start_eap(sa, message_id, req);
        };
        let verified = match (&self.cfg.auth, method) {
            (ResponderAuth::Psk(psk), AuthMethod::SHARED_KEY_MIC) => ct_eq(
                shared_key_auth(sa.keys.prf, psk.as_bytes(), &octets).as_bytes(),
                auth_data,
            ),
            (ResponderAuth::Certificate { .. }, m) if m != AuthMethod::SHARED_KEY_MIC => {
                self.verify_client_cert(&req.client, &certs, m, auth_data, &octets)
            }
            _ => false,
        };
        if !verified {
            return self.auth_failed(sa, message_id, "client AUTH does not verify");
        }
        let id = req.client.to_string();
        self.finish_auth(sa, message_id, &req, None, id)
    }

    /// The octets the client MACs or signs.
    fn client_octets(&self, sa: &ResponderSa, req: &AuthRequest) -> Vec<u8> {
        let mut octets = signed_octets(
            sa.keys.prf,
            &sa.init_request,
            &sa.nr,
            sa.keys.sk_p_theirs.as_bytes(),
            &id_body(req.idi_type, &req.idi_data),
        );
        octets.extend(sa.pq.auth_octets());
        octets
    }

    /// Our AUTH: keyed with the MSK after EAP, else the PSK or our signature.
    fn our_auth(
        &mut self,
        sa: &ResponderSa,
        msk: Option<&Secret>,
    ) -> Option<(AuthMethod, Vec<u8>)> {
        let id = &self.cfg.id;
        let mut octets = signed_octets(
            sa.keys.prf,
            &sa.init_response,
            &sa.ni,
            sa.keys.sk_p_ours.as_bytes(),
            &id_body(id.id_type(), &id.to_wire()),
        );
        octets.extend(sa.pq.auth_octets());
        let key = |k: &[u8]| {
            (
                AuthMethod::SHARED_KEY_MIC,
                shared_key_auth(sa.keys.prf, k, &octets).as_bytes().to_vec(),
            )
        };
        match (msk, &self.cfg.auth) {
            (Some(m), _) => Some(key(m.as_bytes())),
            (None, ResponderAuth::Psk(psk)) => Some(key(psk.as_bytes())),
            (None, ResponderAuth::Certificate { key, .. }) => {
                match key.sign_auth(&octets, &sa.peer_hashes, self.rng.as_mut()) {
                    Ok(a) => Some(a),
                    Err(e) => {
                        warn!("responder: cannot sign: {e}");
                        None
                    }
                }
            }
        }
    }

    fn our_certs(&self) -> Vec<Vec<u8>> {
        match &self.cfg.auth {
            ResponderAuth::Certificate { chain, .. } => {
                chain.iter().map(|c| c.der().to_vec()).collect()
            }
            ResponderAuth::Psk(_) => Vec::new(),
        }
    }

    fn eap_packet(
        code: EapCode,
        identifier: u8,
        eap_type: Option<EapType>,
        data: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + data.len());
        EapMessage {
            code,
            identifier,
            eap_type,
            data,
        }
        .write(&mut out);
        out
    }

    /// First answer to an EAP client: our identity, certificate and signature, and an EAP
    /// Identity request.
    fn start_eap(&mut self, sa: &mut ResponderSa, message_id: u32, req: AuthRequest) -> bool {
        let Some((method, auth)) = self.our_auth(sa, None) else {
            return self.auth_failed(sa, message_id, "responder cannot sign");
        };
        let certs = self.our_certs();
        let (id_type, id_data) = (self.cfg.id.id_type(), self.cfg.id.to_wire());
        let eap = Self::eap_packet(EapCode::REQUEST, 1, Some(EapType::IDENTITY), &[]);
        let mut out = vec![Payload::IdR(Id {
            id_type,
            data: &id_data,
        })];
        out.extend(certs.iter().map(|c| Payload::Cert {
            encoding: CertEncoding::X509_SIGNATURE,
            data: c,
        }));
        out.push(Payload::Auth {
            method,
            data: &auth,
        });
        out.extend(Self::ppk_confirm(sa));
        out.push(Payload::Eap(&eap));
        self.respond(sa, ExchangeType::IKE_AUTH, message_id, &out);
        sa.eap = Some(EapServer {
            stage: EapStage::Identity,
            identifier: 1,
            request: req,
            identity: String::new(),
            authenticator: None,
            msk: None,
        });
        true
    }

    /// One EAP round, or the client's final MSK-based AUTH.
    fn continue_eap(
        &mut self,
        sa: &mut ResponderSa,
        message_id: u32,
        p: &[Payload<'_>],
        mut eap: EapServer,
    ) -> bool {
        if eap.stage == EapStage::Done {
            let auth = p.iter().find_map(|pl| match pl {
                Payload::Auth {
                    method: AuthMethod::SHARED_KEY_MIC,
                    data,
                } => Some(*data),
                _ => None,
            });
            let octets = self.client_octets(sa, &eap.request);
            let ok = match (auth, eap.msk.as_ref()) {
                (Some(a), Some(msk)) => ct_eq(
                    shared_key_auth(sa.keys.prf, msk.as_bytes(), &octets).as_bytes(),
                    a,
                ),
                _ => false,
            };
            if !ok {
                return self.auth_failed(sa, message_id, "AUTH after EAP does not verify");
            }
            let msk = eap.msk.take();
            let identity = std::mem::take(&mut eap.identity);
            return self.finish_auth(sa, message_id, &eap.request, msk.as_ref(), identity);
        }
        let Some(data) = p.iter().find_map(|pl| {
            if let Payload::Eap(d) = pl {
                Some(*d)
            } else {
                None
            }
        }) else {
            return self.auth_failed(sa, message_id, "EAP payload missing");
        };
        let Ok(msg) = EapMessage::parse(data) else {
            return self.auth_failed(sa, message_id, "malformed EAP");
        };
        if msg.code != EapCode::RESPONSE || msg.identifier != eap.identifier {
            return self.auth_failed(sa, message_id, "unexpected EAP message");
        }
        let next_id = eap.identifier.wrapping_add(1);
        let reply = match (eap.stage, msg.eap_type) {
            (EapStage::Identity, Some(EapType::IDENTITY)) => {
                eap.identity =
                    String::from_utf8_lossy(&msg.data[..msg.data.len().min(MAX_EAP_IDENTITY)])
                        .into_owned();
                let a = Authenticator::new("roam", next_id, self.rng.as_mut());
                let r = Self::eap_packet(
                    EapCode::REQUEST,
                    next_id,
                    Some(EapType::MSCHAPV2),
                    &a.challenge(),
                );
                eap.authenticator = Some(a);
                eap.stage = EapStage::Challenge;
                eap.identifier = next_id;
                r
            }
            (EapStage::Challenge, Some(EapType::MSCHAPV2)) => {
                let users = &self.cfg.eap_users;
                let Some(a) = eap.authenticator.as_mut() else {
                    return false;
                };
                let lookup = |name: &str| {
                    users.iter().find(|(u, _)| u == name).map(|(_, pw)| {
                        zeroize::Zeroizing::new(String::from_utf8_lossy(pw.as_bytes()).into_owned())
                    })
                };
                match a.check_response(msg.data, lookup) {
                    Ok(Ok(success)) => {
                        eap.stage = EapStage::Success;
                        eap.identifier = next_id;
                        Self::eap_packet(
                            EapCode::REQUEST,
                            next_id,
                            Some(EapType::MSCHAPV2),
                            &success,
                        )
                    }
                    _ => {
                        let fail = Self::eap_packet(EapCode::FAILURE, msg.identifier, None, &[]);
                        self.respond(
                            sa,
                            ExchangeType::IKE_AUTH,
                            message_id,
                            &[Payload::Eap(&fail)],
                        );
                        warn!("responder: EAP-MSCHAPv2 failed for {:?}", eap.identity);
                        self.events.push_back(ResponderEvent::Closed {
                            spi_r: sa.spi_r,
                            reason: "EAP failed".into(),
                        });
                        return false;
                    }
                }
            }
            (EapStage::Success, Some(EapType::MSCHAPV2))
                if Authenticator::is_success_response(msg.data) =>
            {
                eap.msk = eap.authenticator.as_ref().and_then(|a| a.msk().cloned());
                eap.stage = EapStage::Done;
                Self::eap_packet(EapCode::SUCCESS, msg.identifier, None, &[])
            }
            _ => return self.auth_failed(sa, message_id, "EAP out of order"),
        };
        self.respond(
            sa,
            ExchangeType::IKE_AUTH,
            message_id,
            &[Payload::Eap(&reply)],
        );
        sa.eap = Some(eap);
        true
    }

    /// The last IKE_AUTH answer: our AUTH, the lease, the CHILD SA. Returns whether the SA stays.
    fn finish_auth(
        &mut self,
        sa: &mut ResponderSa,
        message_id: u32,
        req: &AuthRequest,
        msk: Option<&Secret>,
        client_id: String,
    ) -> bool {
        let Some((our_method, our_auth)) = self.our_auth(sa, msk) else {
            return self.auth_failed(sa, message_id, "responder cannot sign");
        };
        let our_certs = if msk.is_some() {
            Vec::new()
        } else {
            self.our_certs()
        };
        let child_parts = req
            .esp
            .as_ref()
            .zip(req.tsi.as_ref())
            .zip(req.tsr.as_ref())
            .and_then(|((esp, tsi), tsr)| {
                // The CHILD SA of IKE_AUTH has no key exchange: PFS groups apply to rekeys.
                let specs: Vec<ProposalSpec> = self
                    .cfg
                    .esp
                    .iter()
                    .map(|s| ProposalSpec {
                        dh: Vec::new(),
                        ..s.without_additional()
                    })
                    .collect();
                let (selected, _, spi) = choose(&specs, esp)?;
                let spi_out = u32::from_be_bytes(<[u8; 4]>::try_from(spi.as_slice()).ok()?);
                Some((selected, spi_out, tsi.clone(), tsr.clone()))
            });
        let leases = if req.cp_req { self.lease() } else { Vec::new() };
        let (id_type, id_data) = (self.cfg.id.id_type(), self.cfg.id.to_wire());
        let mut out: Vec<Payload<'_>> = Vec::new();
        if msk.is_none() {
            out.push(Payload::IdR(Id {
                id_type,
                data: &id_data,
            }));
        }
        out.extend(our_certs.iter().map(|c| Payload::Cert {
            encoding: CertEncoding::X509_SIGNATURE,
            data: c,
        }));
        out.push(Payload::Auth {
            method: our_method,
            data: &our_auth,
        });
        out.extend(Self::ppk_confirm(sa));
        sa.phase = SaPhase::Established;
        sa.leases = leases.clone();
        let Some((selected, spi_out, tsi_req, tsr_req)) = child_parts else {
            out.push(Payload::notify(NotifyType::NO_PROPOSAL_CHOSEN, &[]));
            self.respond(sa, ExchangeType::IKE_AUTH, message_id, &out);
            return true;
        };
        let ts_i: Vec<TrafficSelector> = if leases.is_empty() {
            tsi_req.clone()
        } else {
            leases
                .iter()
                .map(|a| ts_host(*a))
                .filter(|t| tsi_req.iter().any(|r| ts_contains(r, t)))
                .collect()
        };
        let subnets = &self.cfg.subnets;
        let ts_r: Vec<TrafficSelector> = subnets
            .iter()
            .filter(|s| tsr_req.iter().any(|r| ts_contains(r, s)))
            .copied()
            .chain(
                tsr_req
                    .iter()
                    .filter(|r| subnets.iter().any(|s| ts_contains(s, r) && s != *r))
                    .copied(),
            )
            .collect();
        if req.cp_req && leases.is_empty() && self.has_pools() {
            warn!("responder: address pools exhausted, {client_id} gets no CHILD SA");
            out.push(Payload::notify(NotifyType::INTERNAL_ADDRESS_FAILURE, &[]));
            self.respond(sa, ExchangeType::IKE_AUTH, message_id, &out);
            return true;
        }
        if ts_i.is_empty() || ts_r.is_empty() {
            out.push(Payload::notify(NotifyType::TS_UNACCEPTABLE, &[]));
            self.respond(sa, ExchangeType::IKE_AUTH, message_id, &out);
            return true;
        }
        // Inbound SPIs find the client's ESP SA: unique among clients.
        let mut spi_in = random_spi(self.rng.as_mut());
        while self.spi_in_use(spi_in) {
            spi_in = random_spi(self.rng.as_mut());
        }
        let child = ChildSa::derive(
            Role::Responder,
            sa.keys.prf,
            sa.keys.sk_d.as_bytes(),
            None,
            &sa.ni,
            &sa.nr,
            selected,
            spi_in,
            spi_out,
            ts_r.clone(),
            ts_i.clone(),
        );
        let Ok(child) = child else {
            out.push(Payload::notify(NotifyType::NO_PROPOSAL_CHOSEN, &[]));
            self.respond(sa, ExchangeType::IKE_AUTH, message_id, &out);
            return true;
        };
        let addr_bytes: Vec<(CfgAttr, Vec<u8>)> = leases
            .iter()
            .map(|a| match a {
                IpAddr::V4(v4) => (CfgAttr::INTERNAL_IP4_ADDRESS, v4.octets().to_vec()),
                IpAddr::V6(v6) => {
                    let mut v = v6.octets().to_vec();
                    v.push(128);
                    (CfgAttr::INTERNAL_IP6_ADDRESS, v)
                }
            })
            .chain(self.cfg.dns.iter().map(|a| match a {
                IpAddr::V4(v4) => (CfgAttr::INTERNAL_IP4_DNS, v4.octets().to_vec()),
                IpAddr::V6(v6) => (CfgAttr::INTERNAL_IP6_DNS, v6.octets().to_vec()),
            }))
            .collect();
        let attrs = addr_bytes
            .iter()
            .map(|(kind, value)| CfgAttribute { kind: *kind, value })
            .collect();
        let spi_bytes = spi_in.to_be_bytes();
        if req.cp_req {
            out.push(Payload::Cp {
                cfg_type: CfgType::CFG_REPLY,
                attrs,
            });
        }
        out.push(Payload::Sa(vec![selected.to_wire(1, &spi_bytes)]));
        out.push(Payload::TsI(ts_i));
        out.push(Payload::TsR(ts_r));
        let mobike = if req.mobike && self.cfg.mobike {
            self.mobike_auth_data()
        } else {
            Vec::new()
        };
        out.extend(mobike.iter().map(|(k, d)| Payload::notify(*k, d)));
        sa.mobike = !mobike.is_empty();
        self.respond(sa, ExchangeType::IKE_AUTH, message_id, &out);
        info!(
            "responder: {client_id} established, CHILD SA {} in {spi_in:08x}",
            selected.name()
        );
        sa.child = Some(child);
        self.install_data_path(sa);
        self.events.push_back(ResponderEvent::Established {
            spi_r: sa.spi_r,
            peer: sa.peer,
            client_id,
            virtual_ips: leases,
        });
        true
    }

    fn verify_client_cert(
        &self,
        client: &Identity,
        certs: &[&[u8]],
        method: AuthMethod,
        data: &[u8],
        octets: &[u8],
    ) -> bool {
        let Some((end, rest)) = certs.split_first() else {
            return false;
        };
        let Ok(end) = Certificate::from_der(end) else {
            return false;
        };
        let inter: Vec<Certificate> = rest
            .iter()
            .filter_map(|d| Certificate::from_der(d).ok())
            .collect();
        verify_chain(&end, &inter, &self.cfg.ca, self.cfg.unix_time).is_ok()
            && end.matches_identity(client)
            && end
                .public_key()
                .is_ok_and(|k| k.verify_auth(method, data, octets).is_ok())
    }

    pub(super) fn auth_failed(&mut self, sa: &mut ResponderSa, message_id: u32, why: &str) -> bool {
        warn!("responder: IKE_AUTH from {} failed: {why}", sa.peer);
        self.respond(
            sa,
            ExchangeType::IKE_AUTH,
            message_id,
            &[Payload::notify(NotifyType::AUTHENTICATION_FAILED, &[])],
        );
        self.events.push_back(ResponderEvent::Closed {
            spi_r: sa.spi_r,
            reason: why.to_string(),
        });
        false
    }
}
