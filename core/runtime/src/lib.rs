//! roam-runtime: the tokio driver around `roam_proto::session::Session`, the OS random
//! generator, and the TOML profile loader.
//!
//! [`profile::load`] turns a profile file into a `ClientConfig`; [`driver::Tunnel`] runs a
//! session over UDP sockets until it disconnects; [`echo`] answers probes on a responder's
//! packet side for demos and test fixtures.

pub mod driver;
pub mod echo;
pub mod import;
#[cfg(target_os = "linux")]
pub mod netwatch;
pub mod packet_io;
pub mod profile;
pub mod resolv;
pub mod rng;
pub mod serve;
pub mod serve_profile;
pub mod serve_tun;
mod socket;
pub mod tcp;
pub mod tls;
pub mod tun;
pub mod udp_batch;
