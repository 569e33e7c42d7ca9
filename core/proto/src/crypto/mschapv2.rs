//! MSCHAPv2 (RFC 2759) and its EAP method (draft-kamath-pppext-eap-mschapv2): the peer side
//! (our client) and the authenticator side (our test responder), and the MSK (RFC 3079).

use super::secret::Secret;

/// Why an MSCHAPv2 message was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MschapError {
    #[error("malformed MSCHAPv2 message")]
    Malformed,
    #[error("server's authenticator response is wrong")]
    BadAuthenticator,
    #[error("authentication failed: {0}")]
    Failure(String),
}

/// NT-Response (RFC 2759 §8.1).
pub fn nt_response(auth_challenge: &[u8; 16], peer_challenge: &[u8; 16], username: &str, password: &str) -> [u8; 24] {
    let _ = (auth_challenge, peer_challenge, username, password);
    [0; 24]
}

/// The 42-character "S=<40 hex>" authenticator response (RFC 2759 §8.7).
pub fn authenticator_response(
    password: &str,
    nt_response: &[u8; 24],
    peer_challenge: &[u8; 16],
    auth_challenge: &[u8; 16],
    username: &str,
) -> String {
    let _ = (password, nt_response, peer_challenge, auth_challenge, username);
    String::new()
}

/// The MSK used for IKEv2's AUTH after EAP-MSCHAPv2 (RFC 3079 keys, as strongSwan and
/// Windows derive it).
pub fn msk(password: &str, nt_response: &[u8; 24]) -> Secret {
    let _ = (password, nt_response);
    Secret::default()
}
