//! The EAP peer inside IKE_AUTH (RFC 7296 §2.16): answers the server's Identity request and
//! runs EAP-MSCHAPv2, proposing it with a Nak when the server asks for another method.

use log::debug;

use crate::crypto::mschapv2;
use crate::crypto::Secret;
use crate::rng::Rng;
use crate::wire::eap::EapMessage;
use crate::wire::{EapCode, EapType};

/// What to do after an EAP message from the server.
#[derive(Debug)]
pub enum EapStep {
    /// Send this EAP packet in the next IKE_AUTH request.
    Respond(Vec<u8>),
    /// EAP succeeded: this MSK keys the final AUTH payloads.
    Success(Secret),
    /// EAP failed, with the server's reason.
    Failure(String),
}

/// An EAP-MSCHAPv2 client.
pub struct EapClient {
    username: String,
    peer: mschapv2::Peer,
    msk: Option<Secret>,
}

impl EapClient {
    pub fn new(username: String, password: Secret) -> Self {
        let password =
            zeroize::Zeroizing::new(String::from_utf8_lossy(password.as_bytes()).into_owned());
        let peer = mschapv2::Peer::new(&username, &password);
        Self {
            username,
            peer,
            msk: None,
        }
    }

    /// Handles one EAP packet from the server.
    pub fn handle(&mut self, msg: &EapMessage<'_>, rng: &mut dyn Rng) -> EapStep {
        match msg.code {
            EapCode::SUCCESS => match self.msk.take() {
                Some(msk) => EapStep::Success(msk),
                None => EapStep::Failure("EAP success before MSCHAPv2 completed".into()),
            },
            EapCode::FAILURE => EapStep::Failure("the server sent EAP failure".into()),
            EapCode::REQUEST => self.request(msg, rng),
            c => EapStep::Failure(format!("unexpected EAP code {c}")),
        }
    }

    fn request(&mut self, msg: &EapMessage<'_>, rng: &mut dyn Rng) -> EapStep {
        let reply = |eap_type: EapType, data: &[u8]| {
            let mut out = Vec::with_capacity(5 + data.len());
            EapMessage {
                code: EapCode::RESPONSE,
                identifier: msg.identifier,
                eap_type: Some(eap_type),
                data,
            }
            .write(&mut out);
            EapStep::Respond(out)
        };
        match msg.eap_type {
            Some(EapType::IDENTITY) => reply(EapType::IDENTITY, self.username.as_bytes()),
            Some(EapType::NOTIFICATION) => reply(EapType::NOTIFICATION, &[]),
            Some(EapType::MSCHAPV2) => match self.peer.handle(msg.data, rng) {
                Ok(data) => {
                    self.msk = self.peer.msk().cloned();
                    reply(EapType::MSCHAPV2, &data)
                }
                Err(e) => EapStep::Failure(format!("EAP-MSCHAPv2: {e}")),
            },
            Some(other) => {
                debug!("server proposes EAP method {other}: answering Nak with MSCHAPv2");
                reply(EapType::NAK, &[EapType::MSCHAPV2.0])
            }
            None => EapStep::Failure("EAP request without a type".into()),
        }
    }
}

impl std::fmt::Debug for EapClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EapClient")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}
