//! MSCHAPv2 (RFC 2759) and its EAP method (draft-kamath-pppext-eap-mschapv2): the peer side
//! (our client) and the authenticator side (our test responder), and the MSK (RFC 3079).
//!
//! The messages here are EAP type-data only (from the MS-CHAPv2 OpCode on); the EAP header
//! (code, identifier, length, type 26) is the caller's.
//!
//! The MSK is the one strongSwan's eap-mschapv2 plugin (and Windows) export for IKEv2:
//! 64 octets, the client's send start key, then the client's receive start key (both 16
//! octets, RFC 3079 §3.4 with 128-bit keys), then 32 zero octets. See [`msk`].

use md4::Md4;
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use super::secret::Secret;
use crate::rng::Rng;

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

/// MS-CHAPv2 OpCodes.
pub const OP_CHALLENGE: u8 = 1;
pub const OP_RESPONSE: u8 = 2;
pub const OP_SUCCESS: u8 = 3;
pub const OP_FAILURE: u8 = 4;

/// The EAP method type of EAP-MSCHAPv2.
pub const EAP_TYPE_MSCHAPV2: u8 = 26;

/// The Value-Size of a Challenge (the challenge length).
const CHALLENGE_SIZE: u8 = 16;
/// The Value-Size of a Response: peer challenge 16, reserved 8, NT-Response 24, flags 1.
const RESPONSE_SIZE: u8 = 49;
/// OpCode, MS-CHAPv2-ID and MS-Length.
const HEADER_LEN: usize = 4;
/// Longest name or message we put into or accept in a message.
const MAX_TEXT_LEN: usize = 1024;

// RFC 2759 §8.7 and RFC 3079 §3.4 constants.
const AUTH_MAGIC1: &[u8] = b"Magic server to client signing constant";
const AUTH_MAGIC2: &[u8] = b"Pad to make it do more than one iteration";
const KEY_MAGIC1: &[u8] = b"This is the MPPE Master Key";
const KEY_MAGIC2: &[u8] =
    b"On the client side, this is the send key; on the server side, it is the receive key.";
const KEY_MAGIC3: &[u8] =
    b"On the client side, this is the receive key; on the server side, it is the send key.";
const SHS_PAD1: [u8; 40] = [0x00; 40];
const SHS_PAD2: [u8; 40] = [0xf2; 40];

/// NtPasswordHash (RFC 2759 §8.3): MD4 over the password in UTF-16LE.
pub fn nt_password_hash(password: &str) -> Zeroizing<[u8; 16]> {
    let unicode: Zeroizing<Vec<u8>> =
        Zeroizing::new(password.encode_utf16().flat_map(u16::to_le_bytes).collect());
    Zeroizing::new(Md4::digest(&*unicode).into())
}

/// HashNtPasswordHash (RFC 2759 §8.4).
fn hash_nt_password_hash(password: &str) -> Zeroizing<[u8; 16]> {
    Zeroizing::new(Md4::digest(*nt_password_hash(password)).into())
}

/// ChallengeHash (RFC 2759 §8.2): the first 8 octets of SHA-1 over the peer challenge, the
/// authenticator challenge and the user name without any `DOMAIN\` prefix.
pub fn challenge_hash(
    peer_challenge: &[u8; 16],
    auth_challenge: &[u8; 16],
    username: &str,
) -> [u8; 8] {
    let user = username.split_once('\\').map_or(username, |(_, user)| user);
    let digest = Sha1::new()
        .chain_update(peer_challenge)
        .chain_update(auth_challenge)
        .chain_update(user)
        .finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// ChallengeResponse (RFC 2759 §8.5): the 16-octet hash, zero-padded to 21, as three DES
/// keys each encrypting the challenge.
pub fn challenge_response(challenge: &[u8; 8], password_hash: &[u8; 16]) -> [u8; 24] {
    use des::cipher::{Array, BlockCipherEncrypt, KeyInit};
    let mut padded = Zeroizing::new([0u8; 21]);
    padded[..16].copy_from_slice(password_hash);
    let mut out = [0u8; 24];
    for (key7, block_out) in padded.chunks_exact(7).zip(out.chunks_exact_mut(8)) {
        let mut key = Zeroizing::new([0u8; 7]);
        key.copy_from_slice(key7);
        let cipher = des::Des::new(&Array::from(*des_key(&key)));
        let mut block = Array::from(*challenge);
        cipher.encrypt_block(&mut block);
        block_out.copy_from_slice(&block);
    }
    out
}

/// Spreads 56 key bits over 8 octets, 7 bits each in the high bits, with odd parity in the
/// low bit (RFC 2759 §8.6 leaves parity to DES, which ignores it).
fn des_key(key7: &[u8; 7]) -> Zeroizing<[u8; 8]> {
    let bits = key7.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let mut key = Zeroizing::new([0u8; 8]);
    for (i, k) in key.iter_mut().enumerate() {
        let seven = ((bits >> (49 - 7 * i)) & 0x7f) as u8;
        let b = seven << 1;
        *k = b | u8::from(b.count_ones().is_multiple_of(2));
    }
    key
}

/// NT-Response (RFC 2759 §8.1).
pub fn nt_response(
    auth_challenge: &[u8; 16],
    peer_challenge: &[u8; 16],
    username: &str,
    password: &str,
) -> [u8; 24] {
    let challenge = challenge_hash(peer_challenge, auth_challenge, username);
    challenge_response(&challenge, &nt_password_hash(password))
}

/// The 42-character "S=<40 hex>" authenticator response (RFC 2759 §8.7).
pub fn authenticator_response(
    password: &str,
    nt_response: &[u8; 24],
    peer_challenge: &[u8; 16],
    auth_challenge: &[u8; 16],
    username: &str,
) -> String {
    let hash_hash = hash_nt_password_hash(password);
    let digest = Sha1::new()
        .chain_update(*hash_hash)
        .chain_update(nt_response)
        .chain_update(AUTH_MAGIC1)
        .finalize();
    let challenge = challenge_hash(peer_challenge, auth_challenge, username);
    let digest = Sha1::new()
        .chain_update(digest)
        .chain_update(challenge)
        .chain_update(AUTH_MAGIC2)
        .finalize();
    let mut out = String::with_capacity(42);
    out.push_str("S=");
    for b in digest {
        out.push_str(&format!("{b:02X}"));
    }
    out
}

/// GetMasterKey (RFC 3079 §3.4): 16 octets.
pub fn master_key(password: &str, nt_response: &[u8; 24]) -> Zeroizing<[u8; 16]> {
    let hash_hash = hash_nt_password_hash(password);
    let digest = Zeroizing::new(
        Sha1::new()
            .chain_update(*hash_hash)
            .chain_update(nt_response)
            .chain_update(KEY_MAGIC1)
            .finalize(),
    );
    let mut out = Zeroizing::new([0u8; 16]);
    out.copy_from_slice(&digest[..16]);
    out
}

/// GetAsymmetricStartKey (RFC 3079 §3.4) for 128-bit keys, from the client's point of view:
/// `send` picks the client's send key, else its receive key.
pub fn client_start_key(master_key: &[u8; 16], send: bool) -> Zeroizing<[u8; 16]> {
    let magic = if send { KEY_MAGIC2 } else { KEY_MAGIC3 };
    let digest = Zeroizing::new(
        Sha1::new()
            .chain_update(master_key)
            .chain_update(SHS_PAD1)
            .chain_update(magic)
            .chain_update(SHS_PAD2)
            .finalize(),
    );
    let mut out = Zeroizing::new([0u8; 16]);
    out.copy_from_slice(&digest[..16]);
    out
}

/// The MSK used for IKEv2's AUTH after EAP-MSCHAPv2 (RFC 3079 keys, as strongSwan and
/// Windows derive it).
///
/// 64 octets: the client's send start key (the server's receive key, made with the
/// "On the client side, this is the send key" magic), then the client's receive start key
/// (the server's send key), then 32 zero octets. This is what strongSwan's eap-mschapv2
/// plugin exports on both sides; it is the MS-MPPE-Recv-Key | MS-MPPE-Send-Key order a
/// RADIUS server hands to its NAS, padded to the 64 octets EAP requires of an MSK.
pub fn msk(password: &str, nt_response: &[u8; 24]) -> Secret {
    let mk = master_key(password, nt_response);
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&*client_start_key(&mk, true));
    out.extend_from_slice(&*client_start_key(&mk, false));
    out.resize(64, 0);
    Secret::new(out)
}

/// A Challenge from the authenticator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub ms_id: u8,
    pub challenge: [u8; 16],
    /// The authenticator's name (informational).
    pub name: Vec<u8>,
}

/// A Response from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub ms_id: u8,
    pub peer_challenge: [u8; 16],
    pub nt_response: [u8; 24],
    /// The user name, possibly with a `DOMAIN\` prefix.
    pub name: String,
}

/// Splits type-data into OpCode, MS-CHAPv2-ID and the body MS-Length covers.
fn split_header(data: &[u8]) -> Result<(u8, u8, &[u8]), MschapError> {
    let (&op, rest) = data.split_first().ok_or(MschapError::Malformed)?;
    let [id, l1, l2] = rest
        .get(..3)
        .and_then(|h| <[u8; 3]>::try_from(h).ok())
        .ok_or(MschapError::Malformed)?;
    let ms_len = usize::from(u16::from_be_bytes([l1, l2]));
    if ms_len < HEADER_LEN || ms_len > data.len() {
        return Err(MschapError::Malformed);
    }
    let body = data.get(HEADER_LEN..ms_len).ok_or(MschapError::Malformed)?;
    Ok((op, id, body))
}

fn with_header(op: u8, ms_id: u8, body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(HEADER_LEN + body.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.push(op);
    out.push(ms_id);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// The text of a Success/Failure message, bounded and with non-printable characters replaced.
fn message_text(body: &[u8]) -> String {
    let body = body.get(..MAX_TEXT_LEN).unwrap_or(body);
    String::from_utf8_lossy(body)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The OpCode of EAP-MSCHAPv2 type-data.
pub fn opcode(data: &[u8]) -> Result<u8, MschapError> {
    data.first().copied().ok_or(MschapError::Malformed)
}

/// Builds a Challenge (authenticator side).
pub fn build_challenge(ms_id: u8, challenge: &[u8; 16], name: &str) -> Vec<u8> {
    let name = name
        .as_bytes()
        .get(..MAX_TEXT_LEN)
        .unwrap_or(name.as_bytes());
    let mut body = Vec::with_capacity(1 + 16 + name.len());
    body.push(CHALLENGE_SIZE);
    body.extend_from_slice(challenge);
    body.extend_from_slice(name);
    with_header(OP_CHALLENGE, ms_id, &body)
}

/// Reads a Challenge (peer side).
pub fn parse_challenge(data: &[u8]) -> Result<Challenge, MschapError> {
    let (op, ms_id, body) = split_header(data)?;
    if op != OP_CHALLENGE {
        return Err(MschapError::Malformed);
    }
    let (&size, rest) = body.split_first().ok_or(MschapError::Malformed)?;
    if size != CHALLENGE_SIZE {
        return Err(MschapError::Malformed);
    }
    let challenge = rest
        .get(..16)
        .and_then(|c| <[u8; 16]>::try_from(c).ok())
        .ok_or(MschapError::Malformed)?;
    let name = rest.get(16..).unwrap_or_default();
    if name.len() > MAX_TEXT_LEN {
        return Err(MschapError::Malformed);
    }
    Ok(Challenge {
        ms_id,
        challenge,
        name: name.to_vec(),
    })
}

/// Builds a Response (peer side).
pub fn build_response(r: &Response) -> Vec<u8> {
    let name = r
        .name
        .as_bytes()
        .get(..MAX_TEXT_LEN)
        .unwrap_or(r.name.as_bytes());
    let mut body = Vec::with_capacity(1 + 49 + name.len());
    body.push(RESPONSE_SIZE);
    body.extend_from_slice(&r.peer_challenge);
    body.extend_from_slice(&[0u8; 8]);
    body.extend_from_slice(&r.nt_response);
    body.push(0); // flags
    body.extend_from_slice(name);
    with_header(OP_RESPONSE, r.ms_id, &body)
}

/// Reads a Response (authenticator side).
pub fn parse_response(data: &[u8]) -> Result<Response, MschapError> {
    let (op, ms_id, body) = split_header(data)?;
    if op != OP_RESPONSE {
        return Err(MschapError::Malformed);
    }
    let (&size, rest) = body.split_first().ok_or(MschapError::Malformed)?;
    if size != RESPONSE_SIZE || rest.len() < 49 {
        return Err(MschapError::Malformed);
    }
    let peer_challenge = rest
        .get(..16)
        .and_then(|c| <[u8; 16]>::try_from(c).ok())
        .ok_or(MschapError::Malformed)?;
    let nt_response = rest
        .get(24..48)
        .and_then(|c| <[u8; 24]>::try_from(c).ok())
        .ok_or(MschapError::Malformed)?;
    let name = rest.get(49..).unwrap_or_default();
    if name.len() > MAX_TEXT_LEN {
        return Err(MschapError::Malformed);
    }
    let name = std::str::from_utf8(name)
        .map_err(|_| MschapError::Malformed)?
        .to_string();
    Ok(Response {
        ms_id,
        peer_challenge,
        nt_response,
        name,
    })
}

/// Builds the authenticator's Success request: `S=<40 hex> M=<message>`.
pub fn build_success(ms_id: u8, authenticator_response: &str, message: &str) -> Vec<u8> {
    let text = format!("{authenticator_response} M={message}");
    let text = text
        .as_bytes()
        .get(..MAX_TEXT_LEN)
        .unwrap_or(text.as_bytes());
    with_header(OP_SUCCESS, ms_id, text)
}

/// Reads the authenticator's Success request: the `S=<40 hex>` authenticator response (in
/// upper case) and the `M=` message, if any.
pub fn parse_success(data: &[u8]) -> Result<(String, String), MschapError> {
    let (op, _, body) = split_header(data)?;
    if op != OP_SUCCESS {
        return Err(MschapError::Malformed);
    }
    let auth = body.get(..42).ok_or(MschapError::Malformed)?;
    let auth = std::str::from_utf8(auth).map_err(|_| MschapError::Malformed)?;
    let hex = auth.strip_prefix("S=").ok_or(MschapError::Malformed)?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(MschapError::Malformed);
    }
    let rest = message_text(body.get(42..).unwrap_or_default());
    let message = rest
        .trim_start()
        .strip_prefix("M=")
        .unwrap_or_default()
        .to_string();
    Ok((auth.to_ascii_uppercase(), message))
}

/// The peer's answer to a Success request: the OpCode alone.
pub fn build_success_response() -> Vec<u8> {
    vec![OP_SUCCESS]
}

/// Builds the authenticator's Failure request (`E=691 R=0 C=<challenge> V=3 M=<message>`).
pub fn build_failure(ms_id: u8, error: u32, next_challenge: &[u8; 16], message: &str) -> Vec<u8> {
    let c: String = next_challenge.iter().map(|b| format!("{b:02X}")).collect();
    let text = format!("E={error} R=0 C={c} V=3 M={message}");
    let text = text
        .as_bytes()
        .get(..MAX_TEXT_LEN)
        .unwrap_or(text.as_bytes());
    with_header(OP_FAILURE, ms_id, text)
}

/// Reads the authenticator's Failure request into `MschapError::Failure`: the `M=` text and
/// the `E=` error code.
pub fn parse_failure(data: &[u8]) -> MschapError {
    let Ok((OP_FAILURE, _, body)) = split_header(data) else {
        return MschapError::Malformed;
    };
    let text = message_text(body);
    let code = text
        .split_whitespace()
        .find_map(|f| f.strip_prefix("E="))
        .unwrap_or("?")
        .to_string();
    let message = text.split_once("M=").map_or("", |(_, m)| m).trim();
    let message = if message.is_empty() {
        "no message"
    } else {
        message
    };
    MschapError::Failure(format!("{message} (E={code})"))
}

/// The peer's answer to a Failure request: the OpCode alone.
pub fn build_failure_response() -> Vec<u8> {
    vec![OP_FAILURE]
}

/// The peer side of EAP-MSCHAPv2: answers the Challenge, checks the authenticator's
/// response, and yields the MSK after Success.
pub struct Peer {
    username: String,
    password: Zeroizing<String>,
    /// What the authenticator must prove, once we answered a Challenge.
    pending: Option<Pending>,
    msk: Option<Secret>,
}

struct Pending {
    expected: String,
    nt_response: [u8; 24],
}

impl Drop for Pending {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.expected.zeroize();
        self.nt_response.zeroize();
    }
}

impl Peer {
    pub fn new(username: &str, password: &str) -> Self {
        Peer {
            username: username.to_string(),
            password: Zeroizing::new(password.to_string()),
            pending: None,
            msk: None,
        }
    }

    /// Handles EAP-MSCHAPv2 request type-data and returns the response type-data. A Failure
    /// request is returned as `Err(MschapError::Failure)`; the caller may still send
    /// [`build_failure_response`] before giving up.
    pub fn handle(&mut self, request: &[u8], rng: &mut dyn Rng) -> Result<Vec<u8>, MschapError> {
        match opcode(request)? {
            OP_CHALLENGE => self.handle_challenge(request, rng),
            OP_SUCCESS => self.handle_success(request),
            OP_FAILURE => Err(parse_failure(request)),
            _ => Err(MschapError::Malformed),
        }
    }

    /// Answers a Challenge with a Response carrying a fresh peer challenge.
    pub fn handle_challenge(
        &mut self,
        request: &[u8],
        rng: &mut dyn Rng,
    ) -> Result<Vec<u8>, MschapError> {
        let ch = parse_challenge(request)?;
        let mut peer_challenge = [0u8; 16];
        rng.fill(&mut peer_challenge);
        let nt = nt_response(
            &ch.challenge,
            &peer_challenge,
            &self.username,
            &self.password,
        );
        let expected = authenticator_response(
            &self.password,
            &nt,
            &peer_challenge,
            &ch.challenge,
            &self.username,
        );
        self.pending = Some(Pending {
            expected,
            nt_response: nt,
        });
        self.msk = None;
        Ok(build_response(&Response {
            ms_id: ch.ms_id,
            peer_challenge,
            nt_response: nt,
            name: self.username.clone(),
        }))
    }

    /// Checks the authenticator's Success and returns the Success response.
    pub fn handle_success(&mut self, request: &[u8]) -> Result<Vec<u8>, MschapError> {
        let (auth, message) = parse_success(request)?;
        let pending = self.pending.as_ref().ok_or(MschapError::Malformed)?;
        if !crate::crypto::ct_eq(auth.as_bytes(), pending.expected.as_bytes()) {
            return Err(MschapError::BadAuthenticator);
        }
        log::debug!("EAP-MSCHAPv2 success: {message}");
        self.msk = Some(msk(&self.password, &pending.nt_response));
        Ok(build_success_response())
    }

    /// The MSK, once the authenticator proved knowledge of the password.
    pub fn msk(&self) -> Option<&Secret> {
        self.msk.as_ref()
    }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "mschapv2::Peer({}, done: {})",
            self.username,
            self.msk.is_some()
        )
    }
}

/// The authenticator side, for our test responder: sends a Challenge, checks the Response
/// against the user's password, and sends Success or Failure.
pub struct Authenticator {
    name: String,
    ms_id: u8,
    challenge: [u8; 16],
    msk: Option<Secret>,
}

impl Authenticator {
    /// A fresh challenge from `rng`; `name` is sent as the authenticator's name.
    pub fn new(name: &str, ms_id: u8, rng: &mut dyn Rng) -> Self {
        let mut challenge = [0u8; 16];
        rng.fill(&mut challenge);
        Authenticator {
            name: name.to_string(),
            ms_id,
            challenge,
            msk: None,
        }
    }

    /// The Challenge request type-data.
    pub fn challenge(&self) -> Vec<u8> {
        build_challenge(self.ms_id, &self.challenge, &self.name)
    }

    /// Checks a Response; `password_for` looks up the password of the user name the peer
    /// sent. Returns the Success request type-data, or on a wrong password or unknown user
    /// `Err(failure request type-data)`.
    pub fn check_response(
        &mut self,
        response: &[u8],
        password_for: impl FnOnce(&str) -> Option<Zeroizing<String>>,
    ) -> Result<Result<Vec<u8>, Vec<u8>>, MschapError> {
        let r = parse_response(response)?;
        if r.ms_id != self.ms_id {
            return Err(MschapError::Malformed);
        }
        let failure = || build_failure(self.ms_id, 691, &self.challenge, "Authentication failed");
        let Some(password) = password_for(&r.name) else {
            return Ok(Err(failure()));
        };
        let expected = nt_response(&self.challenge, &r.peer_challenge, &r.name, &password);
        if !crate::crypto::ct_eq(&expected, &r.nt_response) {
            return Ok(Err(failure()));
        }
        let auth = authenticator_response(
            &password,
            &r.nt_response,
            &r.peer_challenge,
            &self.challenge,
            &r.name,
        );
        self.msk = Some(msk(&password, &r.nt_response));
        Ok(Ok(build_success(self.ms_id, &auth, "Welcome")))
    }

    /// Whether `data` is the peer's Success response.
    pub fn is_success_response(data: &[u8]) -> bool {
        data.first() == Some(&OP_SUCCESS)
    }

    /// The MSK, once a Response checked out.
    pub fn msk(&self) -> Option<&Secret> {
        self.msk.as_ref()
    }
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "mschapv2::Authenticator({}, done: {})",
            self.name,
            self.msk.is_some()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeededRng;

    // RFC 2759 §9.2 and RFC 3079 §3.5.
    const USER: &str = "User";
    const PASSWORD: &str = "clientPass";
    const AUTH_CHALLENGE: [u8; 16] = [
        0x5B, 0x5D, 0x7C, 0x7D, 0x7B, 0x3F, 0x2F, 0x3E, 0x3C, 0x2C, 0x60, 0x21, 0x32, 0x26, 0x26,
        0x28,
    ];
    const PEER_CHALLENGE: [u8; 16] = [
        0x21, 0x40, 0x23, 0x24, 0x25, 0x5E, 0x26, 0x2A, 0x28, 0x29, 0x5F, 0x2B, 0x3A, 0x33, 0x7C,
        0x7E,
    ];
    const NT_RESPONSE: [u8; 24] = [
        0x82, 0x30, 0x9E, 0xCD, 0x8D, 0x70, 0x8B, 0x5E, 0xA0, 0x8F, 0xAA, 0x39, 0x81, 0xCD, 0x83,
        0x54, 0x42, 0x33, 0x11, 0x4A, 0x3D, 0x85, 0xD6, 0xDF,
    ];

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn rfc2759_known_answers() {
        assert_eq!(
            nt_password_hash(PASSWORD).to_vec(),
            unhex("44 EB BA 8D 53 12 B8 D6 11 47 44 11 F5 69 89 AE")
        );
        assert_eq!(
            hash_nt_password_hash(PASSWORD).to_vec(),
            unhex("41 C0 0C 58 4B D2 D9 1C 40 17 A2 A1 2F A5 9F 3F")
        );
        assert_eq!(
            challenge_hash(&PEER_CHALLENGE, &AUTH_CHALLENGE, USER).to_vec(),
            unhex("D0 2E 43 86 BC E9 12 26")
        );
        assert_eq!(
            nt_response(&AUTH_CHALLENGE, &PEER_CHALLENGE, USER, PASSWORD),
            NT_RESPONSE
        );
        assert_eq!(
            authenticator_response(
                PASSWORD,
                &NT_RESPONSE,
                &PEER_CHALLENGE,
                &AUTH_CHALLENGE,
                USER
            ),
            "S=407A5589115FD0D6209F510FE9C04566932CDA56"
        );
    }

    #[test]
    fn des_key_expansion_of_rfc2759_8_6() {
        // Seven one bits already have odd parity, so the parity bit stays clear; seven zero
        // bits get it set.
        assert_eq!(*des_key(&[0xff; 7]), [0xfe; 8]);
        assert_eq!(*des_key(&[0x00; 7]), [0x01; 8]);
        // The top 7 bits of the first octet land in the first key octet.
        assert_eq!(des_key(&[0x80, 0, 0, 0, 0, 0, 0])[0], 0x80);
        assert_eq!(des_key(&[0, 0, 0, 0, 0, 0, 0x01])[7], 0x02);
    }

    #[test]
    fn domain_prefix_is_not_hashed() {
        assert_eq!(
            nt_response(&AUTH_CHALLENGE, &PEER_CHALLENGE, "ACME\\User", PASSWORD),
            nt_response(&AUTH_CHALLENGE, &PEER_CHALLENGE, USER, PASSWORD)
        );
    }

    #[test]
    fn rfc3079_known_answers_and_msk_layout() {
        let mk = master_key(PASSWORD, &NT_RESPONSE);
        assert_eq!(
            mk.to_vec(),
            unhex("FD EC E3 71 7A 8C 83 8C B3 88 E5 27 AE 3C DD 31")
        );
        // RFC 3079 §3.5.3's 128-bit start key is the server's send key, which is the
        // client's receive key.
        let server_send = unhex("8B 7C DC 14 9B 99 3A 1B A1 18 CB 15 3F 56 DC CB");
        assert_eq!(client_start_key(&mk, false).to_vec(), server_send);
        let m = msk(PASSWORD, &NT_RESPONSE);
        assert_eq!(m.len(), 64);
        assert_eq!(&m.as_bytes()[..16], &client_start_key(&mk, true)[..]);
        assert_eq!(&m.as_bytes()[16..32], &server_send[..]);
        assert_eq!(&m.as_bytes()[32..], &[0u8; 32]);
        assert_ne!(&m.as_bytes()[..16], &m.as_bytes()[16..32]);
    }

    #[test]
    fn message_formats() {
        let ch = build_challenge(7, &AUTH_CHALLENGE, "srv");
        assert_eq!(&ch[..5], &[OP_CHALLENGE, 7, 0, 24, 16]);
        assert_eq!(
            parse_challenge(&ch).unwrap(),
            Challenge {
                ms_id: 7,
                challenge: AUTH_CHALLENGE,
                name: b"srv".to_vec()
            }
        );
        let r = Response {
            ms_id: 7,
            peer_challenge: PEER_CHALLENGE,
            nt_response: NT_RESPONSE,
            name: USER.into(),
        };
        let wire = build_response(&r);
        assert_eq!(wire.len(), 4 + 1 + 49 + 4);
        assert_eq!(&wire[..5], &[OP_RESPONSE, 7, 0, 58, 49]);
        assert_eq!(&wire[21..29], &[0u8; 8]);
        assert_eq!(wire[53], 0);
        assert_eq!(parse_response(&wire).unwrap(), r);
        let s = build_success(7, "S=407A5589115FD0D6209F510FE9C04566932CDA56", "hi there");
        assert_eq!(
            parse_success(&s).unwrap(),
            (
                "S=407A5589115FD0D6209F510FE9C04566932CDA56".into(),
                "hi there".into()
            )
        );
        let f = build_failure(7, 691, &[0xab; 16], "Wrong password");
        assert!(String::from_utf8_lossy(&f[4..]).starts_with("E=691 R=0 C=ABABABAB"));
        assert_eq!(
            parse_failure(&f),
            MschapError::Failure("Wrong password (E=691)".into())
        );
    }

    #[test]
    fn malformed_messages_are_rejected() {
        for bad in [
            &[][..],
            &[1],
            &[1, 0, 0],
            &[1, 0, 0, 3],
            &[1, 0, 0, 40, 16],
            &[1, 0, 0, 5, 15],
        ] {
            assert_eq!(parse_challenge(bad), Err(MschapError::Malformed), "{bad:?}");
            assert!(parse_response(bad).is_err());
            assert!(parse_success(bad).is_err());
        }
        // Wrong value size.
        let mut ch = build_challenge(1, &AUTH_CHALLENGE, "x");
        ch[4] = 8;
        assert!(parse_challenge(&ch).is_err());
        // Success without a proper S= field.
        assert!(parse_success(&with_header(OP_SUCCESS, 1, b"S=12")).is_err());
        assert!(parse_success(&with_header(OP_SUCCESS, 1, &[b'S'; 42])).is_err());
        assert_eq!(parse_failure(&[4, 0]), MschapError::Malformed);
    }

    #[test]
    fn peer_and_authenticator_agree() {
        let mut rng = SeededRng::new(11);
        let mut auth = Authenticator::new("roam-test", 42, &mut rng);
        let mut peer = Peer::new("CORP\\alice", "s3cret");
        let response = peer.handle(&auth.challenge(), &mut rng).unwrap();
        let lookup =
            |name: &str| (name == "CORP\\alice").then(|| Zeroizing::new("s3cret".to_string()));
        let success = auth.check_response(&response, lookup).unwrap().unwrap();
        let ack = peer.handle(&success, &mut rng).unwrap();
        assert!(Authenticator::is_success_response(&ack));
        assert_eq!(peer.msk().unwrap(), auth.msk().unwrap());
        assert_eq!(peer.msk().unwrap().len(), 64);
        assert!(!format!("{peer:?}").contains("s3cret"));
    }

    #[test]
    fn wrong_password_fails_and_bad_authenticator_is_caught() {
        let mut rng = SeededRng::new(12);
        let mut auth = Authenticator::new("roam-test", 1, &mut rng);
        let mut peer = Peer::new("alice", "wrong");
        let response = peer.handle(&auth.challenge(), &mut rng).unwrap();
        let failure = auth
            .check_response(&response, |_| Some(Zeroizing::new("right".into())))
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(peer.handle(&failure, &mut rng), Err(MschapError::Failure(m)) if m.contains("E=691"))
        );
        assert!(peer.msk().is_none());
        // Unknown user.
        let mut auth = Authenticator::new("roam-test", 2, &mut rng);
        let response = peer.handle(&auth.challenge(), &mut rng).unwrap();
        assert!(auth.check_response(&response, |_| None).unwrap().is_err());
        // A Success whose authenticator response does not prove the password.
        let forged = build_success(2, "S=0000000000000000000000000000000000000000", "x");
        assert_eq!(
            peer.handle(&forged, &mut rng),
            Err(MschapError::BadAuthenticator)
        );
        // Success before any Challenge.
        assert!(Peer::new("a", "b").handle(&forged, &mut rng).is_err());
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128)) {
            let _ = parse_challenge(&data);
            let _ = parse_response(&data);
            let _ = parse_success(&data);
            let _ = parse_failure(&data);
            let mut peer = Peer::new("u", "p");
            let _ = peer.handle(&data, &mut SeededRng::new(1));
        }

        #[test]
        fn response_round_trips(id: u8, pc: [u8; 16], nt: [u8; 24], name in "[ -~]{0,40}") {
            let r = Response { ms_id: id, peer_challenge: pc, nt_response: nt, name };
            proptest::prop_assert_eq!(parse_response(&build_response(&r)).unwrap(), r);
        }
    }
}
