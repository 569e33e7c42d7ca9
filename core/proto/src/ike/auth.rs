//! The IKE_AUTH exchange, initiator side (RFC 7296 §1.2, §2.15, §2.16; RFC 7427): our
//! identity and AUTH (PSK, signature, or none when EAP follows), the responder's identity,
//! certificate chain and AUTH checked, EAP rounds, then the configuration (CP), the traffic
//! selectors and the first CHILD SA.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use log::{debug, info, warn};

use crate::config::ClientAuth;
use crate::crypto::cert::{verify_chain, Certificate};
use crate::crypto::proposal::accept_response;
use crate::crypto::{ct_eq, Secret};
use crate::identity::Identity;
use crate::ike::child::{random_spi, ts_any, ts_contains, ChildSa};
use crate::ike::eap::{EapClient, EapStep};
use crate::ike::initiator::{AssignedConfig, IkeEvent, Initiator, Phase};
use crate::ike::keys::{id_body, shared_key_auth, signed_octets, Role};
use crate::ike::task_manager::RequestKind;
use crate::session::DisconnectReason;
use crate::wire::eap::EapMessage;
use crate::wire::{
    AuthMethod, CertEncoding, CfgAttr, CfgAttribute, CfgType, ExchangeType, Id, NotifyType,
    Payload, TrafficSelector,
};

/// Most IKE_AUTH rounds we go through (EAP-MSCHAPv2 takes five).
const MAX_AUTH_ROUNDS: u32 = 10;

/// The state of the IKE_AUTH task between rounds.
#[derive(Debug, Default)]
pub struct AuthState {
    rounds: u32,
    /// Our inbound ESP SPI for the first CHILD SA.
    spi_in: u32,
    ts_i: Vec<TrafficSelector>,
    ts_r: Vec<TrafficSelector>,
    /// The responder's ID payload body (for its AUTH octets) and identity.
    idr_body: Vec<u8>,
    idr: Option<Identity>,
    server_authenticated: bool,
    eap: Option<EapClient>,
    /// Set once EAP succeeded and we sent our MSK-based AUTH.
    msk: Option<Secret>,
    /// Another IKE SA of ours stays up beside this one (make-before-break): no
    /// INITIAL_CONTACT, which would tell the server to delete it (RFC 7296 §2.4).
    omit_initial_contact: bool,
}

impl Initiator {
    /// This IKE SA is made while another of ours to the same server stays up (a new
    /// connection beside the current one): IKE_AUTH carries no INITIAL_CONTACT, so the
    /// server keeps the other one until we delete it. Call before `start`.
    pub fn omit_initial_contact(&mut self) {
        self.auth.omit_initial_contact = true;
    }

    /// Whether IKE_AUTH will announce INITIAL_CONTACT (the only IKE SA with the server).
    pub fn sends_initial_contact(&self) -> bool {
        !self.auth.omit_initial_contact
    }

    /// Sends the first IKE_AUTH request.
    pub(super) fn send_auth_request(&mut self, now: Instant) {
        self.pq.auth_mid = Some(self.tm.next_request_id());
        let ppk = match self.ppk_start() {
            Ok(p) => p,
            Err(reason) => return self.fail(reason),
        };
        let spi = random_spi(self.rng.as_mut());
        self.auth.spi_in = spi;
        let cfg = &self.params.config;
        self.auth.ts_i = [
            cfg.request_ipv4.then(|| ts_any(false)),
            cfg.request_ipv6.then(|| ts_any(true)),
        ]
        .into_iter()
        .flatten()
        .collect();
        self.auth.ts_r = if cfg.remote_ts.is_empty() {
            vec![ts_any(false), ts_any(true)]
        } else {
            cfg.remote_ts.clone()
        };
        if self.auth.ts_i.is_empty() {
            self.auth.ts_i = vec![ts_any(false), ts_any(true)];
        }

        let Some(keys) = self.keys.as_ref() else {
            return;
        };
        let local_id = &self.params.local_id;
        let idi_data = local_id.to_wire();
        let idi_type = local_id.id_type();
        let mut octets = signed_octets(
            keys.prf,
            &self.init_request,
            &self.nr,
            keys.sk_p_ours.as_bytes(),
            &id_body(idi_type, &idi_data),
        );
        octets.extend(self.pq.auth_octets());
        let auth: Option<(AuthMethod, Vec<u8>)> = match &cfg.auth {
            ClientAuth::Psk(psk) => Some((
                AuthMethod::SHARED_KEY_MIC,
                shared_key_auth(keys.prf, psk.as_bytes(), &octets)
                    .as_bytes()
                    .to_vec(),
            )),
            ClientAuth::Certificate { key, .. } => {
                match key.sign_auth(&octets, &self.peer.hash_algorithms, self.rng.as_mut()) {
                    Ok(a) => Some(a),
                    Err(e) => {
                        return self.fail(DisconnectReason::AuthenticationFailed(format!(
                            "signing: {e}"
                        )))
                    }
                }
            }
            ClientAuth::EapMschapv2 { username, password } => {
                self.auth.eap = Some(EapClient::new(username.clone(), password.clone()));
                None
            }
        };
        let cfg = &self.params.config;
        let certs: Vec<Vec<u8>> = match &cfg.auth {
            ClientAuth::Certificate { chain, .. } => {
                chain.iter().map(|c| c.der().to_vec()).collect()
            }
            _ => Vec::new(),
        };
        let (request_ipv4, request_ipv6, mobike) = (cfg.request_ipv4, cfg.request_ipv6, cfg.mobike);
        let certreq: Vec<u8> = cfg.ca.iter().flat_map(|c| c.spki_sha1()).collect();
        let idr = cfg
            .server_id
            .as_ref()
            .map(|id| (id.id_type(), id.to_wire()));
        let esp = self.params.esp_wire(spi);
        let mut attrs = Vec::new();
        if request_ipv4 {
            attrs.push(CfgAttribute {
                kind: CfgAttr::INTERNAL_IP4_ADDRESS,
                value: &[],
            });
            attrs.push(CfgAttribute {
                kind: CfgAttr::INTERNAL_IP4_DNS,
                value: &[],
            });
        }
        if request_ipv6 {
            attrs.push(CfgAttribute {
                kind: CfgAttr::INTERNAL_IP6_ADDRESS,
                value: &[],
            });
            attrs.push(CfgAttribute {
                kind: CfgAttr::INTERNAL_IP6_DNS,
                value: &[],
            });
        }
        attrs.push(CfgAttribute {
            kind: CfgAttr::INTERNAL_DNS_DOMAIN,
            value: &[],
        });

        let mut p: Vec<Payload<'_>> = Vec::with_capacity(16);
        p.push(Payload::IdI(Id {
            id_type: idi_type,
            data: &idi_data,
        }));
        for c in &certs {
            p.push(Payload::Cert {
                encoding: CertEncoding::X509_SIGNATURE,
                data: c,
            });
        }
        if !certreq.is_empty() {
            p.push(Payload::CertReq {
                encoding: CertEncoding::X509_SIGNATURE,
                data: &certreq,
            });
        }
        if let Some((t, d)) = &idr {
            p.push(Payload::IdR(Id {
                id_type: *t,
                data: d,
            }));
        }
        if let Some((method, data)) = &auth {
            p.push(Payload::Auth {
                method: *method,
                data,
            });
        }
        p.push(Payload::Cp {
            cfg_type: CfgType::CFG_REQUEST,
            attrs,
        });
        p.push(Payload::Sa(esp));
        p.push(Payload::TsI(self.auth.ts_i.clone()));
        p.push(Payload::TsR(self.auth.ts_r.clone()));
        if !self.auth.omit_initial_contact {
            p.push(Payload::notify(NotifyType::INITIAL_CONTACT, &[]));
        }
        if mobike {
            p.push(Payload::notify(NotifyType::MOBIKE_SUPPORTED, &[]));
        }
        if let Some(r) = &ppk {
            p.extend(r.notifies());
        }
        self.auth.rounds = 1;
        self.send_request(now, RequestKind::IkeAuth, ExchangeType::IKE_AUTH, &p);
    }

    /// Handles an IKE_AUTH response.
    pub(super) fn process_auth_response(&mut self, now: Instant, p: &[Payload<'_>]) {
        if self.phase != Phase::Auth {
            return;
        }
        // An AUTHENTICATION_FAILED (or any error before the responder authenticated) ends it.
        for pl in p {
            if let Payload::Notify(n) = pl {
                if n.kind == NotifyType::AUTHENTICATION_FAILED {
                    return self.fail(DisconnectReason::AuthenticationFailed(
                        "the server rejected our credentials".into(),
                    ));
                }
            }
        }
        if let Err(reason) = self.ppk_check_response(p) {
            return self.fail(reason);
        }
        let mut idr = None;
        let mut certs = Vec::new();
        let mut auth = None;
        let mut eap = None;
        for pl in p {
            match pl {
                Payload::IdR(id) => idr = Some(*id),
                Payload::Cert {
                    encoding: CertEncoding::X509_SIGNATURE,
                    data,
                } => certs.push(*data),
                Payload::Auth { method, data } => auth = Some((*method, *data)),
                Payload::Eap(e) => eap = Some(*e),
                _ => {}
            }
        }
        if let Some(id) = idr {
            if let Err(reason) = self.check_server_identity(id) {
                return self.fail(reason);
            }
        }
        if let Some((method, data)) = auth {
            if let Err(reason) = self.verify_server_auth(method, data, &certs) {
                return self.fail(reason);
            }
        }
        if let Some(e) = eap {
            return self.continue_eap(now, e);
        }
        let done =
            self.auth.server_authenticated && (self.auth.eap.is_none() || self.auth.msk.is_some());
        if !done {
            return self.fail(DisconnectReason::AuthenticationFailed(
                "the server did not authenticate itself".into(),
            ));
        }
        info!("IKE SA {:016x}_{:016x} established", self.spi_i, self.spi_r);
        self.phase = Phase::Established;
        self.auth.eap = None;
        self.emit(IkeEvent::IkeEstablished);
        if let Err(reason) = self.process_first_child(p) {
            self.drop_unusable(now, reason);
        }
    }

    /// The IKE SA stands at the server but its first CHILD SA failed, so it would carry
    /// nothing: one INFORMATIONAL DELETE tells the server (sent once, not waited for; RFC
    /// 7296 §1.2 leaves such an IKE SA up otherwise), then it ends here.
    fn drop_unusable(&mut self, now: Instant, reason: DisconnectReason) {
        if self.keys.is_some() {
            self.send_delete(now);
        }
        self.fail(reason);
    }

    fn check_server_identity(&mut self, id: Id<'_>) -> Result<(), DisconnectReason> {
        let parsed = Identity::from_wire(id.id_type, id.data)
            .map_err(|e| DisconnectReason::ProtocolError(format!("server identity: {e}")))?;
        if let Some(expected) = &self.params.config.server_id {
            // A server authenticating with a certificate may name itself differently (a DN
            // for an FQDN); its certificate must then carry the identity we expect, which
            // verify_server_auth checks. With a shared key the identity must be the same.
            let certificate_will_decide = !matches!(self.params.config.auth, ClientAuth::Psk(_));
            if *expected != parsed && !certificate_will_decide {
                return Err(DisconnectReason::AuthenticationFailed(format!(
                    "server identity is {parsed}, expected {expected}"
                )));
            }
        }
        self.auth.idr_body = id_body(id.id_type, id.data);
        self.auth.idr = Some(parsed);
        Ok(())
    }

    /// Verifies the responder's AUTH: with the MSK after EAP, the PSK, or its certificate.
    fn verify_server_auth(
        &mut self,
        method: AuthMethod,
        data: &[u8],
        certs: &[&[u8]],
    ) -> Result<(), DisconnectReason> {
        let Some(keys) = self.keys.as_ref() else {
            return Err(DisconnectReason::Closed);
        };
        if self.auth.idr_body.is_empty() {
            return Err(DisconnectReason::ProtocolError("AUTH without IDr".into()));
        }
        let mut octets = signed_octets(
            keys.prf,
            &self.init_response,
            &self.ni,
            keys.sk_p_theirs.as_bytes(),
            &self.auth.idr_body,
        );
        octets.extend(self.pq.auth_octets());
        let bad =
            |what: &str| DisconnectReason::AuthenticationFailed(format!("server AUTH: {what}"));
        if let Some(msk) = &self.auth.msk {
            if method != AuthMethod::SHARED_KEY_MIC
                || !ct_eq(
                    shared_key_auth(keys.prf, msk.as_bytes(), &octets).as_bytes(),
                    data,
                )
            {
                return Err(bad("EAP MSK AUTH does not verify"));
            }
            self.auth.server_authenticated = true;
            return Ok(());
        }
        if method == AuthMethod::SHARED_KEY_MIC {
            let ClientAuth::Psk(psk) = &self.params.config.auth else {
                return Err(bad("a shared key where a signature was expected"));
            };
            if !ct_eq(
                shared_key_auth(keys.prf, psk.as_bytes(), &octets).as_bytes(),
                data,
            ) {
                return Err(bad("PSK AUTH does not verify"));
            }
            self.auth.server_authenticated = true;
            return Ok(());
        }
        let Some((end, rest)) = certs.split_first() else {
            return Err(bad("signature without certificate"));
        };
        let end = Certificate::from_der(end).map_err(|e| bad(&e.to_string()))?;
        let inter = rest
            .iter()
            .filter_map(|d| Certificate::from_der(d).ok())
            .collect::<Vec<_>>();
        let cfg = &self.params.config;
        verify_chain(&end, &inter, &cfg.ca, cfg.unix_time).map_err(|e| bad(&e.to_string()))?;
        let Some(idr) = self.auth.idr.as_ref() else {
            return Err(bad("AUTH without IDr"));
        };
        if !end.matches_identity(idr) {
            return Err(bad(&format!("certificate does not match identity {idr}")));
        }
        if let Some(expected) = &cfg.server_id {
            if !end.matches_identity(expected) {
                return Err(bad(&format!("certificate does not match {expected}")));
            }
        }
        let key = end.public_key().map_err(|e| bad(&e.to_string()))?;
        key.verify_auth(method, data, &octets)
            .map_err(|e| bad(&e.to_string()))?;
        debug!("server signature verified ({method})");
        self.auth.server_authenticated = true;
        Ok(())
    }

    /// One EAP round: answer the request, or finish with our MSK-based AUTH on success.
    fn continue_eap(&mut self, now: Instant, data: &[u8]) {
        self.auth.rounds += 1;
        if self.auth.rounds > MAX_AUTH_ROUNDS {
            return self.fail(DisconnectReason::ProtocolError(
                "too many IKE_AUTH rounds".into(),
            ));
        }
        if !self.auth.server_authenticated {
            return self.fail(DisconnectReason::AuthenticationFailed(
                "EAP before the server authenticated".into(),
            ));
        }
        let msg = match EapMessage::parse(data) {
            Ok(m) => m,
            Err(e) => return self.fail(DisconnectReason::ProtocolError(format!("EAP: {e}"))),
        };
        let Some(client) = self.auth.eap.as_mut() else {
            return self.fail(DisconnectReason::AuthenticationFailed(
                "server started EAP, profile has none".into(),
            ));
        };
        match client.handle(&msg, self.rng.as_mut()) {
            EapStep::Respond(reply) => {
                self.send_request(
                    now,
                    RequestKind::IkeAuth,
                    ExchangeType::IKE_AUTH,
                    &[Payload::Eap(&reply)],
                );
            }
            EapStep::Success(msk) => {
                let Some(keys) = self.keys.as_ref() else {
                    return;
                };
                let local_id = &self.params.local_id;
                let body = id_body(local_id.id_type(), &local_id.to_wire());
                let mut octets = signed_octets(
                    keys.prf,
                    &self.init_request,
                    &self.nr,
                    keys.sk_p_ours.as_bytes(),
                    &body,
                );
                octets.extend(self.pq.auth_octets());
                let mac = shared_key_auth(keys.prf, msk.as_bytes(), &octets);
                self.auth.msk = Some(msk);
                self.auth.server_authenticated = false;
                let p = [Payload::Auth {
                    method: AuthMethod::SHARED_KEY_MIC,
                    data: mac.as_bytes(),
                }];
                self.send_request(now, RequestKind::IkeAuth, ExchangeType::IKE_AUTH, &p);
            }
            EapStep::Failure(why) => self.fail(DisconnectReason::AuthenticationFailed(why)),
        }
    }

    /// The CP reply, the ESP proposal and the traffic selectors of the first CHILD SA; an
    /// error when the server refused it or answered outside what we asked.
    fn process_first_child(&mut self, p: &[Payload<'_>]) -> Result<(), DisconnectReason> {
        for pl in p {
            if let Payload::Notify(n) = pl {
                match n.kind {
                    NotifyType::MOBIKE_SUPPORTED => self.peer.mobike = true,
                    NotifyType::ADDITIONAL_IP4_ADDRESS => {
                        if let Ok(b) = <[u8; 4]>::try_from(n.data) {
                            self.peer
                                .additional_addresses
                                .push(IpAddr::V4(Ipv4Addr::from(b)));
                        }
                    }
                    NotifyType::ADDITIONAL_IP6_ADDRESS => {
                        if let Ok(b) = <[u8; 16]>::try_from(n.data) {
                            self.peer
                                .additional_addresses
                                .push(IpAddr::V6(Ipv6Addr::from(b)));
                        }
                    }
                    k @ (NotifyType::TEMPORARY_FAILURE | NotifyType::INTERNAL_ADDRESS_FAILURE) => {
                        return Err(DisconnectReason::TemporarilyRefused(k.to_string()));
                    }
                    k if k.is_error() => {
                        return Err(DisconnectReason::NegotiationFailed(format!(
                            "CHILD SA: {k}"
                        )));
                    }
                    _ => {}
                }
            }
        }
        let mut sa = None;
        let mut ts_i = None;
        let mut ts_r = None;
        for pl in p {
            match pl {
                Payload::Cp {
                    cfg_type: CfgType::CFG_REPLY,
                    attrs,
                } => self.assigned = parse_cp_reply(attrs),
                Payload::Sa(s) => sa = Some(s),
                Payload::TsI(t) => ts_i = Some(t.clone()),
                Payload::TsR(t) => ts_r = Some(t.clone()),
                _ => {}
            }
        }
        let (Some(sa), Some(ts_i), Some(ts_r)) = (sa, ts_i, ts_r) else {
            return Err(DisconnectReason::NegotiationFailed(
                "no CHILD SA in the IKE_AUTH response".into(),
            ));
        };
        let offered = self.params.esp_wire(self.auth.spi_in);
        let Some(selected) = (match sa.as_slice() {
            [one] => accept_response(&offered, one),
            _ => None,
        }) else {
            return Err(DisconnectReason::NegotiationFailed(
                "responder chose an ESP proposal we did not offer".into(),
            ));
        };
        let chosen_spi = sa.first().map(|s| s.spi.clone()).unwrap_or_default();
        let Ok(spi_out) = <[u8; 4]>::try_from(chosen_spi.as_slice()).map(u32::from_be_bytes) else {
            return Err(DisconnectReason::ProtocolError(
                "ESP SPI is not 4 bytes".into(),
            ));
        };
        let narrowed = |got: &[TrafficSelector], asked: &[TrafficSelector]| {
            !got.is_empty() && got.iter().all(|g| asked.iter().any(|a| ts_contains(a, g)))
        };
        if !narrowed(&ts_i, &self.auth.ts_i) || !narrowed(&ts_r, &self.auth.ts_r) {
            return Err(DisconnectReason::NegotiationFailed(
                "traffic selectors outside what we asked".into(),
            ));
        }
        let Some(keys) = self.keys.as_ref() else {
            return Ok(());
        };
        let child = ChildSa::derive(
            Role::Initiator,
            keys.prf,
            keys.sk_d.as_bytes(),
            None,
            &self.ni,
            &self.nr,
            selected,
            self.auth.spi_in,
            spi_out,
            ts_i,
            ts_r,
        );
        match child {
            Ok(c) => {
                info!(
                    "CHILD SA {} in {:08x} out {:08x} established",
                    c.selected.name(),
                    c.spi_in,
                    c.spi_out
                );
                self.child = Some(c);
                self.emit(IkeEvent::ChildEstablished);
                Ok(())
            }
            Err(e) => {
                warn!("CHILD SA keys: {e}");
                Err(DisconnectReason::NegotiationFailed(format!(
                    "CHILD SA keys: {e}"
                )))
            }
        }
    }
}

/// Reads a CP reply: addresses (IPv6 with its prefix length byte), DNS servers, domains.
pub fn parse_cp_reply(attrs: &[CfgAttribute<'_>]) -> AssignedConfig {
    let mut c = AssignedConfig::default();
    for a in attrs {
        match (a.kind, a.value.len()) {
            (CfgAttr::INTERNAL_IP4_ADDRESS, 4) | (CfgAttr::INTERNAL_IP4_DNS, 4) => {
                let mut b = [0u8; 4];
                b.copy_from_slice(a.value);
                let ip = IpAddr::V4(Ipv4Addr::from(b));
                if a.kind == CfgAttr::INTERNAL_IP4_ADDRESS {
                    c.addresses.push(ip)
                } else {
                    c.dns.push(ip)
                }
            }
            (CfgAttr::INTERNAL_IP6_ADDRESS, 17) | (CfgAttr::INTERNAL_IP6_DNS, 16) => {
                let mut b = [0u8; 16];
                b.copy_from_slice(&a.value[..16]);
                let ip = IpAddr::V6(Ipv6Addr::from(b));
                if a.kind == CfgAttr::INTERNAL_IP6_ADDRESS {
                    c.addresses.push(ip)
                } else {
                    c.dns.push(ip)
                }
            }
            (CfgAttr::INTERNAL_DNS_DOMAIN, n) if n > 0 => {
                if let Ok(s) = std::str::from_utf8(a.value) {
                    c.domains.push(s.to_string());
                }
            }
            _ => {}
        }
    }
    c
}
