//! The client configuration turned into what the IKE tasks use: parsed proposals, their wire
//! form, identities and the authentication material.

use crate::config::{ClientAuth, ClientConfig};
use crate::crypto::proposal::{ProposalSpec, Selected};
use crate::identity::Identity;
use crate::session::ConfigError;
use crate::wire::{DhGroup, Proposal};

/// What the initiator needs from the configuration, checked once.
#[derive(Debug)]
pub struct IkeParams {
    pub config: ClientConfig,
    pub ike: Vec<ProposalSpec>,
    pub esp: Vec<ProposalSpec>,
    pub local_id: Identity,
}

impl IkeParams {
    pub fn new(config: ClientConfig) -> Result<Self, ConfigError> {
        let ike_src = if config.ike_proposals.is_empty() {
            crate::crypto::proposal::default_ike()
        } else {
            config.ike_proposals.clone()
        };
        let esp_src = if config.esp_proposals.is_empty() {
            crate::crypto::proposal::default_esp()
        } else {
            config.esp_proposals.clone()
        };
        let mut ike = ike_src
            .iter()
            .map(|s| ProposalSpec::parse_ike(s, &config.allow_weak))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| ConfigError::Proposal { key: "ike", source })?;
        if config.pq_fallback {
            add_classical(&mut ike);
        }
        let mut esp = esp_src
            .iter()
            .map(|s| ProposalSpec::parse_esp(s, &config.allow_weak))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| ConfigError::Proposal { key: "esp", source })?;
        if config.pq_fallback {
            // CHILD SA rekeys may fall back to the classical PFS group the same way.
            add_classical(&mut esp);
        }
        if ike.is_empty() || esp.is_empty() {
            return Err(ConfigError::Invalid("no proposals".into()));
        }
        let local_id = match (&config.local_id, &config.auth) {
            (Some(id), _) => id.clone(),
            (None, ClientAuth::Certificate { chain, .. }) => {
                let cert = chain
                    .first()
                    .ok_or_else(|| ConfigError::Invalid("auth.certificate: empty".into()))?;
                Identity::Dn(cert.subject_der())
            }
            (None, ClientAuth::EapMschapv2 { username, .. }) => Identity::parse(username)
                .map_err(|e| ConfigError::Invalid(format!("auth.username: {e}")))?,
            (None, ClientAuth::Psk(_)) => {
                return Err(ConfigError::Invalid(
                    "auth.local_id: required for PSK".into(),
                ));
            }
        };
        Ok(Self {
            config,
            ike,
            esp,
            local_id,
        })
    }

    /// Our IKE proposals on the wire (numbered from 1, no SPI).
    pub fn ike_wire(&self) -> Vec<Proposal> {
        self.ike
            .iter()
            .enumerate()
            .map(|(i, p)| p.to_wire(wire_number(i), &[]))
            .collect()
    }

    /// Our ESP proposals on the wire with our inbound SPI. Key exchange groups are left out:
    /// the CHILD SA of IKE_AUTH never has one (RFC 7296 §1.2).
    pub fn esp_wire(&self, spi: u32) -> Vec<Proposal> {
        self.esp
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut p = p.without_additional();
                p.dh.clear();
                p.to_wire(wire_number(i), &spi.to_be_bytes())
            })
            .collect()
    }

    /// The key exchange group to guess first: the first one of our first proposal.
    pub fn first_group(&self) -> Option<DhGroup> {
        self.ike.iter().flat_map(|p| p.dh.iter().copied()).next()
    }

    /// Whether `group` is in any of our IKE proposals.
    pub fn offers_group(&self, group: DhGroup) -> bool {
        self.ike.iter().any(|p| p.dh.contains(&group))
    }
}

/// Appends the classical version of every hybrid proposal (after every hybrid one:
/// preferred last), for a profile that allows the fallback.
fn add_classical(specs: &mut Vec<ProposalSpec>) {
    let classical: Vec<ProposalSpec> = specs
        .iter()
        .filter(|p| p.has_additional())
        .map(ProposalSpec::without_additional)
        .collect();
    for c in classical {
        if !specs.contains(&c) {
            specs.push(c);
        }
    }
}

fn wire_number(i: usize) -> u8 {
    u8::try_from(i + 1).unwrap_or(u8::MAX)
}

/// Names of what was negotiated, for events.
pub fn selected_name(s: &Option<Selected>) -> String {
    s.as_ref().map(Selected::name).unwrap_or_default()
}
