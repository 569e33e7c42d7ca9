//! The responder's side of mobility: MOBIKE updates from clients (RFC 4555:
//! UPDATE_SA_ADDRESSES moves the client's IKE SA and ESP to the message's source, answered
//! with NAT detection for the new path and the client's COOKIE2), the addresses it announces
//! (ADDITIONAL_IP4/6_ADDRESS), whether it follows a client's NAT rebinding on its own
//! (RFC 7296 §2.23) or only on updates, and the INVALID_IKE_SPI answer to requests for an
//! IKE SA it does not know (RFC 7296 §2.21.4, e.g. after a restart).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use log::{debug, info};

use super::{Outgoing, Responder, ResponderSa};
use crate::ike::natd::{self, NatState};
use crate::wire::{flags, ExchangeType, Header, Message, NotifyType, Payload};

/// Most addresses the responder announces.
const MAX_ANNOUNCED: usize = 16;
/// Longest COOKIE2 echoed (RFC 4555 §3.2: 8 to 64 octets).
const MAX_COOKIE2: usize = 64;
/// Unprotected INVALID_IKE_SPI answers wait in the outbox at most this many at a time.
const MAX_QUEUED_ERRORS: usize = 256;

/// The responder's mobility settings and the address the message being handled came to.
#[derive(Debug)]
pub(super) struct Mobility {
    /// Move a client to where its authentic messages come from (NAT rebinding), as RFC 7296
    /// §2.23 allows; otherwise only a MOBIKE update moves it.
    pub(super) follow_nat: bool,
    pub(super) additional: Vec<IpAddr>,
    /// For tests: echo a wrong COOKIE2 (a broken or hostile server).
    pub(super) corrupt_cookie2: bool,
    pub(super) local: Option<SocketAddr>,
}

impl Default for Mobility {
    fn default() -> Self {
        Self {
            follow_nat: true,
            additional: Vec::new(),
            corrupt_cookie2: false,
            local: None,
        }
    }
}

impl Responder {
    /// Whether clients are moved when authentic ESP or IKE comes from a new address (the
    /// default). Off: only a MOBIKE update moves a client, like a server that keeps
    /// RFC 4555's rule of not updating addresses from other traffic.
    pub fn set_follow_nat(&mut self, follow: bool) {
        self.mobility.follow_nat = follow;
    }

    /// Addresses we announce to MOBIKE clients (ADDITIONAL_IP4/6_ADDRESS) besides the one
    /// they reached us on.
    pub fn set_additional_addresses(&mut self, addresses: &[IpAddr]) {
        self.mobility.additional = addresses.iter().take(MAX_ANNOUNCED).copied().collect();
    }

    /// TEST ONLY: answer MOBIKE updates with a wrong COOKIE2, as a broken server would.
    #[doc(hidden)]
    pub fn set_corrupt_cookie2(&mut self, corrupt: bool) {
        self.mobility.corrupt_cookie2 = corrupt;
    }

    /// Sends our current address list to the client of IKE SA `spi_r` (an INFORMATIONAL
    /// request with ADDITIONAL_* or NO_ADDITIONAL_ADDRESSES).
    pub fn announce_addresses(&mut self, now: Instant, spi_r: u64) -> bool {
        let data: Vec<Vec<u8>> = self.mobility.additional.iter().map(ip_bytes).collect();
        let p = announce_payloads(&self.mobility.additional, &data);
        self.send_request(now, spi_r, ExchangeType::INFORMATIONAL, &p)
    }

    /// The notifies of our IKE_AUTH answer to a MOBIKE client: MOBIKE_SUPPORTED and our
    /// other addresses. Appended by `finish_auth` through `mobike_auth_notifies`.
    pub(in crate::ike) fn mobike_auth_data(&self) -> Vec<(NotifyType, Vec<u8>)> {
        let mut v = vec![(NotifyType::MOBIKE_SUPPORTED, Vec::new())];
        if self.mobility.additional.is_empty() {
            v.push((NotifyType::NO_ADDITIONAL_ADDRESSES, Vec::new()));
        }
        for a in &self.mobility.additional {
            let kind = if a.is_ipv4() {
                NotifyType::ADDITIONAL_IP4_ADDRESS
            } else {
                NotifyType::ADDITIONAL_IP6_ADDRESS
            };
            v.push((kind, ip_bytes(a)));
        }
        v
    }

    /// Whether the request is a MOBIKE update this IKE SA takes.
    pub(super) fn is_update(sa: &ResponderSa, exchange: ExchangeType, p: &[Payload<'_>]) -> bool {
        sa.mobike
            && exchange == ExchangeType::INFORMATIONAL
            && p.iter().any(
                |pl| matches!(pl, Payload::Notify(n) if n.kind == NotifyType::UPDATE_SA_ADDRESSES),
            )
    }

    /// An authentic UPDATE_SA_ADDRESSES from `remote`: the client's IKE SA and ESP move there.
    pub(super) fn handle_update(
        &mut self,
        sa: &mut ResponderSa,
        remote: SocketAddr,
        message_id: u32,
        p: &[Payload<'_>],
    ) -> bool {
        let mut src = Vec::new();
        let mut dst = Vec::new();
        let mut cookie2: Option<Vec<u8>> = None;
        for pl in p {
            if let Payload::Notify(n) = pl {
                match n.kind {
                    NotifyType::NAT_DETECTION_SOURCE_IP => src.push(n.data),
                    NotifyType::NAT_DETECTION_DESTINATION_IP => dst.push(n.data),
                    NotifyType::COOKIE2 if n.data.len() <= MAX_COOKIE2 => {
                        cookie2 = Some(n.data.to_vec())
                    }
                    _ => {}
                }
            }
        }
        let local = self.mobility.local.unwrap_or(remote);
        if !src.is_empty() && !dst.is_empty() {
            sa.nat = NatState {
                supported: true,
                local_behind_nat: !dst
                    .iter()
                    .any(|d| *d == natd::hash(sa.spi_i, sa.spi_r, local)),
                remote_behind_nat: !src
                    .iter()
                    .any(|d| *d == natd::hash(sa.spi_i, sa.spi_r, remote)),
            };
        }
        info!(
            "responder: client of IKE SA {:016x} moved to {remote} (MOBIKE)",
            sa.spi_r
        );
        sa.peer = remote;
        let src_hash = natd::hash(sa.spi_i, sa.spi_r, local);
        let dst_hash = natd::hash(sa.spi_i, sa.spi_r, remote);
        let mut cookie2 = cookie2.unwrap_or_default();
        if self.mobility.corrupt_cookie2 {
            cookie2.iter_mut().for_each(|b| *b ^= 0x5a);
        }
        let mut out = vec![
            Payload::notify(NotifyType::NAT_DETECTION_SOURCE_IP, &src_hash),
            Payload::notify(NotifyType::NAT_DETECTION_DESTINATION_IP, &dst_hash),
        ];
        if !cookie2.is_empty() {
            out.push(Payload::notify(NotifyType::COOKIE2, &cookie2));
        }
        self.respond(sa, ExchangeType::INFORMATIONAL, message_id, &out);
        true
    }

    /// A protected request for an IKE SA we do not have: tell the sender (unprotected, so
    /// the client can only take it as a hint) that its IKE SPI is unknown.
    pub(super) fn answer_unknown_spi(&mut self, remote: SocketAddr, msg: &Message<'_>) {
        let h = msg.header;
        let protected = msg.encrypted().is_some() || msg.fragment().is_some();
        if h.is_response()
            || h.exchange == ExchangeType::IKE_SA_INIT
            || !protected
            || self.outbox.len() >= MAX_QUEUED_ERRORS
        {
            return;
        }
        debug!("responder: INVALID_IKE_SPI to {remote}");
        let header = Header::new(
            h.spi_i,
            h.spi_r,
            ExchangeType::INFORMATIONAL,
            flags::RESPONSE,
            h.message_id,
        );
        let mut out = Vec::with_capacity(64);
        crate::wire::message::write_message(
            &header,
            &[Payload::notify(NotifyType::INVALID_IKE_SPI, &[])],
            &mut out,
        );
        self.outbox.push_back(Outgoing {
            remote,
            message: out,
        });
    }
}

fn ip_bytes(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

fn announce_payloads<'a>(addresses: &[IpAddr], data: &'a [Vec<u8>]) -> Vec<Payload<'a>> {
    if addresses.is_empty() {
        return vec![Payload::notify(NotifyType::NO_ADDITIONAL_ADDRESSES, &[])];
    }
    addresses
        .iter()
        .zip(data)
        .map(|(a, d)| {
            let kind = if a.is_ipv4() {
                NotifyType::ADDITIONAL_IP4_ADDRESS
            } else {
                NotifyType::ADDITIONAL_IP6_ADDRESS
            };
            Payload::notify(kind, d)
        })
        .collect()
}
