//! The validated client configuration the session runs on (what the profile and the FFI
//! record turn into). Files are read by the caller; this holds bytes and parsed values.

use std::time::Duration;

use crate::crypto::cert::Certificate;
use crate::crypto::sign::PrivateKey;
use crate::crypto::Secret;
use crate::identity::Identity;

/// How the client authenticates.
#[derive(Debug)]
pub enum ClientAuth {
    /// A pre-shared key (RFC 7296 §2.15).
    Psk(Secret),
    /// The server signs with its certificate; we answer EAP-MSCHAPv2 with these.
    EapMschapv2 { username: String, password: Secret },
    /// We sign with our certificate (chain: ours first, then intermediates).
    Certificate {
        chain: Vec<Certificate>,
        key: PrivateKey,
    },
}

/// Retransmission of requests: timeouts grow by `factor` from `initial`, `tries` sends in all.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Retransmit {
    pub initial: Duration,
    pub factor: f64,
    pub max_timeout: Duration,
    pub tries: u32,
}

impl Default for Retransmit {
    fn default() -> Self {
        // strongSwan-like: 4 s, x1.8, five sends.
        Self {
            initial: Duration::from_secs(4),
            factor: 1.8,
            max_timeout: Duration::from_secs(30),
            tries: 5,
        }
    }
}

/// Everything the client session needs.
#[derive(Debug)]
pub struct ClientConfig {
    /// Our identity (IDi). For certificate auth, defaults to the certificate subject.
    pub local_id: Option<Identity>,
    /// The server identity we expect (and send as IDr).
    pub server_id: Option<Identity>,
    pub auth: ClientAuth,
    /// Trust anchors for the server's certificate.
    pub ca: Vec<Certificate>,
    /// IKE proposals in strongSwan syntax (parsed and checked when the session is built).
    pub ike_proposals: Vec<String>,
    /// ESP proposals in strongSwan syntax.
    pub esp_proposals: Vec<String>,
    /// Weak algorithms the profile accepts by name.
    pub allow_weak: Vec<String>,
    pub mobike: bool,
    /// Send a liveness check (an empty INFORMATIONAL) when nothing came from the server this
    /// long (None: only when traffic goes unanswered, see `silence`).
    pub dpd: Option<Duration>,
    /// NAT keepalives (RFC 3948) this often while a NAT is in front of us and nothing else
    /// went out.
    pub keepalive: Duration,
    /// Retransmissions of liveness checks and MOBIKE updates: much shorter than the
    /// handshake's so a phone notices a dead path fast. The default gives up 22 s after the
    /// first send (2 + 4 + 8 + 8 s).
    pub liveness_retransmit: Retransmit,
    /// Retransmissions of a check made because traffic went unanswered (`silence`) or the
    /// device woke: the path is already suspect, so it is given up sooner. The default gives
    /// up 6.5 s after the first send (1 + 1.5 + 2 + 2 s).
    pub check_retransmit: Retransmit,
    /// We sent ESP but nothing came back for this long: check the path at once (a dead
    /// server or a NAT rebinding). Behind a NAT without MOBIKE, when the check is answered but
    /// ESP still stays silent for as long again, the path is lost.
    pub silence: Duration,
    pub mtu: u16,
    /// What we ask to reach (TSr); the default is everything, IPv4 and IPv6.
    pub remote_ts: Vec<crate::wire::TrafficSelector>,
    /// Ask for an inner IPv4 / IPv6 address (CP).
    pub request_ipv4: bool,
    pub request_ipv6: bool,
    pub retransmit: Retransmit,
    /// IKE messages larger than this are fragmented (RFC 7383), when the server supports it.
    pub fragment_size: usize,
    /// Wall-clock seconds since the epoch, for certificate validity (None skips that check).
    pub unix_time: Option<u64>,
    /// Reconnect by itself after losing a connection that was up (None: end the session).
    pub reconnect: Option<crate::session::ReconnectPolicy>,
    /// When the IKE and CHILD SAs are rekeyed.
    pub lifetimes: Lifetimes,
    /// When an IKE proposal asks for a post-quantum (additional, RFC 9370) key exchange:
    /// also offer the same proposals without it, so a server that lacks it can still be
    /// reached (with a warning). Off by default: such a server is refused with a clear error.
    pub pq_fallback: bool,
    /// A post-quantum preshared key (RFC 8784) to mix into the IKE SA's keys.
    pub ppk: Option<crate::ike::ppk::Ppk>,
}

/// When SAs are rekeyed (strongSwan-like). Each SA is rekeyed at its soft lifetime, made
/// earlier by a random amount up to `jitter` (and never by more than a tenth of the
/// lifetime), chosen per SA. The hard lifetime is the soft one plus a tenth (at least 30 s):
/// an SA still not rekeyed then is gone, and the IKE SA ends with `DisconnectReason::Timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetimes {
    pub ike_rekey: Duration,
    pub child_rekey: Duration,
    pub jitter: Duration,
    /// Rekey the CHILD SA after this many bytes (inner, either direction).
    pub child_rekey_bytes: Option<u64>,
    /// Rekey the CHILD SA after this many packets (either direction).
    pub child_rekey_packets: Option<u64>,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            ike_rekey: Duration::from_secs(4 * 3600),
            child_rekey: Duration::from_secs(3600),
            jitter: Duration::from_secs(24 * 60),
            child_rekey_bytes: None,
            child_rekey_packets: None,
        }
    }
}

impl ClientConfig {
    /// A configuration with `auth` and Roam's defaults: strong default proposals, MOBIKE on,
    /// DPD 30 s, keepalives every 20 s, liveness checks given up after 22 s, a path checked
    /// after 3 s of unanswered traffic (given up 6.5 s later), MTU 1400, IPv4 and IPv6 requested, everything routed
    /// (TSr 0.0.0.0/0 and ::/0), strongSwan-like retransmissions, 1280-byte IKE fragments.
    pub fn new(auth: ClientAuth) -> Self {
        Self {
            local_id: None,
            server_id: None,
            auth,
            ca: Vec::new(),
            ike_proposals: Vec::new(),
            esp_proposals: Vec::new(),
            allow_weak: Vec::new(),
            mobike: true,
            dpd: Some(Duration::from_secs(30)),
            keepalive: Duration::from_secs(20),
            liveness_retransmit: LIVENESS_RETRANSMIT,
            check_retransmit: CHECK_RETRANSMIT,
            silence: Duration::from_secs(3),
            mtu: 1400,
            remote_ts: vec![
                crate::ike::child::ts_any(false),
                crate::ike::child::ts_any(true),
            ],
            request_ipv4: true,
            request_ipv6: true,
            retransmit: Retransmit::default(),
            fragment_size: DEFAULT_FRAGMENT_SIZE,
            unix_time: None,
            reconnect: Some(crate::session::ReconnectPolicy::default()),
            lifetimes: Lifetimes::default(),
            pq_fallback: false,
            ppk: None,
        }
    }
}

/// The default schedule of liveness checks: 2 s, doubling to at most 8 s, four sends; an
/// unanswered check ends the IKE SA 22 s after its first send.
pub const LIVENESS_RETRANSMIT: Retransmit = Retransmit {
    initial: Duration::from_secs(2),
    factor: 2.0,
    max_timeout: Duration::from_secs(8),
    tries: 4,
};

/// The schedule of a check of a suspect path (unanswered traffic, a wake-up): 1 s, growing
/// by half to at most 2 s, four sends; given up 6.5 s after its first send.
pub const CHECK_RETRANSMIT: Retransmit = Retransmit {
    initial: Duration::from_secs(1),
    factor: 1.5,
    max_timeout: Duration::from_secs(2),
    tries: 4,
};

/// IKE messages above this size are fragmented by default: fits the IPv6 minimum MTU.
pub const DEFAULT_FRAGMENT_SIZE: usize = 1280;
