//! The peer (client) side of EAP-MSCHAPv2's messages (draft-kamath-pppext-eap-mschapv2):
//! Challenge -> Response, Success -> check the authenticator response -> acknowledge, Failure.
//! The MSCHAPv2 computations themselves are in `crypto::mschapv2`.

use crate::crypto::mschapv2::{authenticator_response, msk, nt_response, MschapError};
use crate::crypto::Secret;
use crate::rng::Rng;

const OP_CHALLENGE: u8 = 1;
const OP_RESPONSE: u8 = 2;
const OP_SUCCESS: u8 = 3;
const OP_FAILURE: u8 = 4;

/// What the peer answers.
#[derive(Debug)]
pub enum PeerStep {
    /// The MSCHAPv2 data of the next EAP response.
    Reply(Vec<u8>),
    /// The server proved it knows the password: acknowledge, and use this MSK.
    Done { reply: Vec<u8>, msk: Secret },
}

/// Where the peer is in the exchange.
#[derive(Default)]
pub struct Peer {
    sent: Option<Sent>,
}

struct Sent {
    auth_challenge: [u8; 16],
    peer_challenge: [u8; 16],
    nt_response: [u8; 24],
}

impl Peer {
    /// Handles the MSCHAPv2 data of an EAP request (after the EAP type byte).
    pub fn handle(&mut self, data: &[u8], username: &str, password: &str, rng: &mut dyn Rng) -> Result<PeerStep, MschapError> {
        let (&op, rest) = data.split_first().ok_or(MschapError::Malformed)?;
        let (&id, rest) = rest.split_first().ok_or(MschapError::Malformed)?;
        let body = rest.get(2..).ok_or(MschapError::Malformed)?;
        match op {
            OP_CHALLENGE => {
                let (&size, body) = body.split_first().ok_or(MschapError::Malformed)?;
                if size != 16 {
                    return Err(MschapError::Malformed);
                }
                let auth_challenge: [u8; 16] = body.get(..16).and_then(|c| c.try_into().ok()).ok_or(MschapError::Malformed)?;
                let mut peer_challenge = [0u8; 16];
                rng.fill(&mut peer_challenge);
                let nt = nt_response(&auth_challenge, &peer_challenge, username, password);
                let name = username.as_bytes();
                let ms_len = u16::try_from(4 + 1 + 49 + name.len()).map_err(|_| MschapError::Malformed)?;
                let mut out = Vec::with_capacity(usize::from(ms_len));
                out.extend_from_slice(&[OP_RESPONSE, id]);
                out.extend_from_slice(&ms_len.to_be_bytes());
                out.push(49);
                out.extend_from_slice(&peer_challenge);
                out.extend_from_slice(&[0u8; 8]);
                out.extend_from_slice(&nt);
                out.push(0);
                out.extend_from_slice(name);
                self.sent = Some(Sent { auth_challenge, peer_challenge, nt_response: nt });
                Ok(PeerStep::Reply(out))
            }
            OP_SUCCESS => {
                let sent = self.sent.as_ref().ok_or(MschapError::Malformed)?;
                let expected =
                    authenticator_response(password, &sent.nt_response, &sent.peer_challenge, &sent.auth_challenge, username);
                let got = body.get(..42).ok_or(MschapError::Malformed)?;
                if !got.eq_ignore_ascii_case(expected.as_bytes()) {
                    return Err(MschapError::BadAuthenticator);
                }
                Ok(PeerStep::Done { reply: vec![OP_SUCCESS], msk: msk(password, &sent.nt_response) })
            }
            OP_FAILURE => {
                let text = String::from_utf8_lossy(body);
                let msg = text.split(" M=").nth(1).unwrap_or(&text).chars().take(200).collect::<String>();
                Err(MschapError::Failure(msg))
            }
            _ => Err(MschapError::Malformed),
        }
    }
}
