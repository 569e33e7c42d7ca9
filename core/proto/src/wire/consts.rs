//! The IANA numbers of IKEv2 (RFC 7296 and the extensions Roam speaks), as open newtypes:
//! a value the peer sends that we do not know is still representable and printable.

/// Declares an open enum: a newtype over an integer with named constants and a `name()`.
macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident($repr:ty) { $($(#[$vm:meta])* $var:ident = $val:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $repr);
        impl $name {
            $($(#[$vm])* pub const $var: Self = Self($val);)*
            /// The registry name of this value, if it is one we know.
            pub fn name(self) -> Option<&'static str> {
                match self.0 { $($val => Some(stringify!($var)),)* _ => None }
            }
        }
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self.name() { Some(n) => f.write_str(n), None => write!(f, "{}({})", stringify!($name), self.0) }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { std::fmt::Debug::fmt(self, f) }
        }
        impl From<$repr> for $name { fn from(v: $repr) -> Self { Self(v) } }
    };
}
#[allow(unused_imports)] // kept for sibling modules that declare their own registries
pub(crate) use wire_enum;

wire_enum! {
    /// Exchange types (RFC 7296 §3.1; RFC 7383; RFC 9242).
    ExchangeType(u8) {
        IKE_SA_INIT = 34, IKE_AUTH = 35, CREATE_CHILD_SA = 36, INFORMATIONAL = 37,
        IKE_SESSION_RESUME = 38, IKE_INTERMEDIATE = 43, IKE_FOLLOWUP_KE = 44,
    }
}

wire_enum! {
    /// Payload types (RFC 7296 §3.2; SKF from RFC 7383).
    PayloadType(u8) {
        NONE = 0, SA = 33, KE = 34, IDI = 35, IDR = 36, CERT = 37, CERTREQ = 38, AUTH = 39,
        NONCE = 40, NOTIFY = 41, DELETE = 42, VENDOR = 43, TSI = 44, TSR = 45, SK = 46, CP = 47,
        EAP = 48, SKF = 53,
    }
}

wire_enum! {
    /// Security protocol identifiers (RFC 7296 §3.3.1).
    ProtocolId(u8) { NONE = 0, IKE = 1, AH = 2, ESP = 3 }
}

wire_enum! {
    /// Transform types (RFC 7296 §3.3.2; RFC 9370 §2.2.1 for the additional key exchanges).
    TransformType(u8) {
        ENCR = 1, PRF = 2, INTEG = 3, DH = 4, ESN = 5, ADDITIONAL_KEY_EXCHANGE_1 = 6,
        ADDITIONAL_KEY_EXCHANGE_2 = 7, ADDITIONAL_KEY_EXCHANGE_3 = 8,
        ADDITIONAL_KEY_EXCHANGE_4 = 9, ADDITIONAL_KEY_EXCHANGE_5 = 10,
        ADDITIONAL_KEY_EXCHANGE_6 = 11, ADDITIONAL_KEY_EXCHANGE_7 = 12,
    }
}

wire_enum! {
    /// Encryption algorithm transform IDs (RFC 7296, 4106, 7634 ...).
    EncrId(u16) {
        DES = 2, TRIPLE_DES = 3, NULL = 11, AES_CBC = 12, AES_CTR = 13, AES_CCM_8 = 14,
        AES_CCM_12 = 15, AES_CCM_16 = 16, AES_GCM_8 = 18, AES_GCM_12 = 19, AES_GCM_16 = 20,
        NULL_AUTH_AES_GMAC = 21, CAMELLIA_CBC = 23, CHACHA20_POLY1305 = 28,
    }
}

wire_enum! {
    /// Pseudo-random function transform IDs.
    PrfId(u16) {
        HMAC_MD5 = 1, HMAC_SHA1 = 2, AES128_XCBC = 4, HMAC_SHA2_256 = 5, HMAC_SHA2_384 = 6,
        HMAC_SHA2_512 = 7, AES128_CMAC = 8,
    }
}

wire_enum! {
    /// Integrity algorithm transform IDs.
    IntegId(u16) {
        NONE = 0, HMAC_MD5_96 = 1, HMAC_SHA1_96 = 2, AES_XCBC_96 = 5, HMAC_SHA1_160 = 7,
        AES_CMAC_96 = 8, HMAC_SHA2_256_128 = 12, HMAC_SHA2_384_192 = 13, HMAC_SHA2_512_256 = 14,
    }
}

wire_enum! {
    /// Key exchange (Diffie-Hellman) group transform IDs (RFC 7296, 3526, 5903, 8031, 9370).
    DhGroup(u16) {
        NONE = 0, MODP_768 = 1, MODP_1024 = 2, MODP_1536 = 5, MODP_2048 = 14, MODP_3072 = 15,
        MODP_4096 = 16, MODP_6144 = 17, MODP_8192 = 18, ECP_256 = 19, ECP_384 = 20, ECP_521 = 21,
        CURVE25519 = 31, CURVE448 = 32, ML_KEM_512 = 35, ML_KEM_768 = 36, ML_KEM_1024 = 37,
    }
}

wire_enum! {
    /// Extended sequence numbers transform IDs.
    EsnId(u16) { NO_ESN = 0, ESN = 1 }
}

/// Transform attribute type for the key length (RFC 7296 §3.3.5), always TV format.
pub const ATTR_KEY_LENGTH: u16 = 14;

wire_enum! {
    /// Identification types (RFC 7296 §3.5).
    IdType(u8) {
        ID_IPV4_ADDR = 1, ID_FQDN = 2, ID_RFC822_ADDR = 3, ID_IPV6_ADDR = 5,
        ID_DER_ASN1_DN = 9, ID_DER_ASN1_GN = 10, ID_KEY_ID = 11,
    }
}

wire_enum! {
    /// Certificate encodings (RFC 7296 §3.6).
    CertEncoding(u8) {
        PKCS7_X509 = 1, PGP = 2, DNS_SIGNED_KEY = 3, X509_SIGNATURE = 4, KERBEROS = 6, CRL = 7,
        ARL = 8, SPKI = 9, X509_ATTRIBUTE = 10, HASH_URL_X509_CERT = 12,
        HASH_URL_X509_BUNDLE = 13,
    }
}

wire_enum! {
    /// Authentication methods (RFC 7296 §3.8; RFC 7427).
    AuthMethod(u8) {
        RSA_SIG = 1, SHARED_KEY_MIC = 2, DSS_SIG = 3, ECDSA_SHA256_P256 = 9,
        ECDSA_SHA384_P384 = 10, ECDSA_SHA512_P521 = 11, GENERIC_SECURE_PASSWORD = 12,
        NULL_AUTH = 13, DIGITAL_SIGNATURE = 14,
    }
}

wire_enum! {
    /// Hash algorithms of SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4).
    HashAlgorithm(u16) { SHA1 = 1, SHA2_256 = 2, SHA2_384 = 3, SHA2_512 = 4, IDENTITY = 5 }
}

wire_enum! {
    /// Traffic selector types (RFC 7296 §3.13.1).
    TsType(u8) { TS_IPV4_ADDR_RANGE = 7, TS_IPV6_ADDR_RANGE = 8 }
}

wire_enum! {
    /// Configuration payload types (RFC 7296 §3.15).
    CfgType(u8) { CFG_REQUEST = 1, CFG_REPLY = 2, CFG_SET = 3, CFG_ACK = 4 }
}

wire_enum! {
    /// Configuration attribute types (RFC 7296 §3.15.1).
    CfgAttr(u16) {
        INTERNAL_IP4_ADDRESS = 1, INTERNAL_IP4_NETMASK = 2, INTERNAL_IP4_DNS = 3,
        INTERNAL_IP4_NBNS = 4, INTERNAL_IP4_DHCP = 6, APPLICATION_VERSION = 7,
        INTERNAL_IP6_ADDRESS = 8, INTERNAL_IP6_DNS = 10, INTERNAL_IP6_DHCP = 12,
        INTERNAL_IP4_SUBNET = 13, SUPPORTED_ATTRIBUTES = 14, INTERNAL_IP6_SUBNET = 15,
        INTERNAL_DNS_DOMAIN = 25,
    }
}

wire_enum! {
    /// EAP codes (RFC 3748).
    EapCode(u8) { REQUEST = 1, RESPONSE = 2, SUCCESS = 3, FAILURE = 4 }
}

wire_enum! {
    /// EAP method types used by Roam (RFC 3748, RFC 2759 via draft-kamath-pppext-eap-mschapv2).
    EapType(u8) { IDENTITY = 1, NOTIFICATION = 2, NAK = 3, MD5 = 4, TLS = 13, MSCHAPV2 = 26 }
}

wire_enum! {
    /// Notify message types: errors (< 16384) and status (RFC 7296 §3.10.1, RFC 4555, 5685,
    /// 7383, 7427, 9242, 9370 and a few more seen from common servers).
    NotifyType(u16) {
        UNSUPPORTED_CRITICAL_PAYLOAD = 1, INVALID_IKE_SPI = 4, INVALID_MAJOR_VERSION = 5,
        INVALID_SYNTAX = 7, INVALID_MESSAGE_ID = 9, INVALID_SPI = 11, NO_PROPOSAL_CHOSEN = 14,
        INVALID_KE_PAYLOAD = 17, AUTHENTICATION_FAILED = 24, SINGLE_PAIR_REQUIRED = 34,
        NO_ADDITIONAL_SAS = 35, INTERNAL_ADDRESS_FAILURE = 36, FAILED_CP_REQUIRED = 37,
        TS_UNACCEPTABLE = 38, INVALID_SELECTORS = 39, UNACCEPTABLE_ADDRESSES = 40,
        UNEXPECTED_NAT_DETECTED = 41, USE_ASSIGNED_HOA = 42, TEMPORARY_FAILURE = 43,
        CHILD_SA_NOT_FOUND = 44, INVALID_GROUP_ID = 45, AUTHORIZATION_FAILED = 46,
        STATE_NOT_FOUND = 47,
        INITIAL_CONTACT = 16384, SET_WINDOW_SIZE = 16385, ADDITIONAL_TS_POSSIBLE = 16386,
        IPCOMP_SUPPORTED = 16387, NAT_DETECTION_SOURCE_IP = 16388,
        NAT_DETECTION_DESTINATION_IP = 16389, COOKIE = 16390, USE_TRANSPORT_MODE = 16391,
        HTTP_CERT_LOOKUP_SUPPORTED = 16392, REKEY_SA = 16393,
        ESP_TFC_PADDING_NOT_SUPPORTED = 16394, NON_FIRST_FRAGMENTS_ALSO = 16395,
        MOBIKE_SUPPORTED = 16396, ADDITIONAL_IP4_ADDRESS = 16397,
        ADDITIONAL_IP6_ADDRESS = 16398, NO_ADDITIONAL_ADDRESSES = 16399,
        UPDATE_SA_ADDRESSES = 16400, COOKIE2 = 16401, NO_NATS_ALLOWED = 16402,
        AUTH_LIFETIME = 16403, MULTIPLE_AUTH_SUPPORTED = 16404,
        ANOTHER_AUTH_FOLLOWS = 16405, REDIRECT_SUPPORTED = 16406, REDIRECT = 16407,
        REDIRECTED_FROM = 16408, TICKET_LT_OPAQUE = 16409, TICKET_REQUEST = 16410,
        TICKET_ACK = 16411, TICKET_NACK = 16412, TICKET_OPAQUE = 16413,
        LINK_ID = 16414, USE_WESP_MODE = 16415, ROHC_SUPPORTED = 16416,
        EAP_ONLY_AUTHENTICATION = 16417, CHILDLESS_IKEV2_SUPPORTED = 16418,
        QUICK_CRASH_DETECTION = 16419, IKEV2_MESSAGE_ID_SYNC_SUPPORTED = 16420,
        IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED = 16421, IKEV2_MESSAGE_ID_SYNC = 16422,
        IPSEC_REPLAY_COUNTER_SYNC = 16423, SECURE_PASSWORD_METHODS = 16424,
        PSK_PERSIST = 16425, PSK_CONFIRM = 16426, ERX_SUPPORTED = 16427,
        IFOM_CAPABILITY = 16428, SENDER_REQUEST_ID = 16429,
        IKEV2_FRAGMENTATION_SUPPORTED = 16430, SIGNATURE_HASH_ALGORITHMS = 16431,
        CLONE_IKE_SA_SUPPORTED = 16432, CLONE_IKE_SA = 16433, PUZZLE = 16434,
        USE_PPK = 16435, PPK_IDENTITY = 16436, NO_PPK_AUTH = 16437,
        INTERMEDIATE_EXCHANGE_SUPPORTED = 16438, IP4_ALLOWED = 16439, IP6_ALLOWED = 16440,
        ADDITIONAL_KEY_EXCHANGE = 16441, USE_AGGFRAG = 16442,
    }
}

impl NotifyType {
    /// Error notifies are below 16384 (RFC 7296 §3.10.1).
    pub fn is_error(self) -> bool {
        self.0 < 16384
    }
}

/// IKE header flags (RFC 7296 §3.1).
pub mod flags {
    /// Set in messages sent by the original initiator of the IKE SA.
    pub const INITIATOR: u8 = 0x08;
    /// The sender can speak a higher major version.
    pub const VERSION: u8 = 0x10;
    /// The message is a response.
    pub const RESPONSE: u8 = 0x20;
}

/// IKE's well-known UDP ports.
pub const IKE_PORT: u16 = 500;
/// The NAT traversal port (RFC 3948, RFC 7296 §2.23).
pub const NATT_PORT: u16 = 4500;
