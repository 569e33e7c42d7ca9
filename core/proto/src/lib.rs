//! roam-proto: the IKEv2/IPsec protocol core of Roam, sans-IO.
//!
//! Nothing in this crate opens a socket, spawns a thread or reads a clock: the caller passes
//! datagrams, packets and the current time in, and polls datagrams, packets, timer deadlines
//! and events out. `clippy.toml` at the workspace root denies `Instant::now`,
//! `SystemTime::now` and std sockets, and the lint is an error here.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]

pub mod config;
pub mod crypto;
pub mod esp;
pub mod identity;
pub mod ike;
pub mod packet;
pub mod rng;
pub mod session;
pub mod wire;
