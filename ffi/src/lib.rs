//! roam-ffi: the UniFFI surface of Roam for Kotlin (Android) and Swift (iOS).
//!
//! Placeholder until the bindings issue: it will hold one `VpnTunnel` object owning its own
//! tokio runtime, plain records mirroring the profile, and callback interfaces for what the OS
//! must do (protect a socket, apply network settings, packet flow, events).
