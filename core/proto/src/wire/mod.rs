//! The IKEv2 wire format (RFC 7296 §3), IKE fragments (RFC 7383), the UDP encapsulation
//! framing of RFC 3948 and the TCP framing of RFC 9329: parsing borrows from the input and
//! checks every length, building writes into a caller's buffer.

pub mod consts;
pub mod eap;
pub mod error;
pub mod header;
pub mod message;
pub mod natt;
pub mod payload;
mod reader;
pub mod sa;
pub mod tcp;

pub use consts::*;
pub use error::WireError;
pub use header::{Header, HEADER_LEN};
pub use message::Message;
pub use payload::*;
pub use sa::{Proposal, Transform};
