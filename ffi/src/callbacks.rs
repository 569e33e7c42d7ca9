//! The interfaces the app implements: what only the OS can do (protect a socket, build the
//! tunnel interface, write packets in packet-flow mode) and where events go. Every call into
//! the app goes through the guards here: no lock of ours is held, and a panic (a foreign
//! exception surfacing as one) is caught and logged instead of unwinding into the runtime.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::types::{NetworkSettings, VpnEvent};

/// What the app does for the tunnel. Calls may come on any thread; they are made in order
/// for events, never while the tunnel holds a lock, so the app may call back into the tunnel
/// (`status()`, `stop()`) from inside them.
#[uniffi::export(with_foreign)]
pub trait PlatformCallbacks: Send + Sync {
    /// Exempts the socket `fd` from the VPN (Android `VpnService.protect(fd)`). Called before
    /// the socket sends anything. Return false to refuse: the tunnel then fails to start.
    /// On iOS the extension's sockets bypass the tunnel already: return true.
    fn protect_socket(&self, fd: i32) -> bool;
    /// Builds or updates the tunnel interface from `settings` (Android: `VpnService.Builder`
    /// then `establish()` and `VpnTunnel.set_tun_fd`; iOS: `setTunnelNetworkSettings`). Return
    /// false when that failed: the tunnel is then stopped with an error.
    fn apply_network_settings(&self, settings: NetworkSettings) -> bool;
    /// A state change or other event.
    fn on_event(&self, event: VpnEvent);
}

/// Packet-flow mode (iOS `NEPacketTunnelFlow`): where decrypted packets go. Packets from the
/// OS come in through `VpnTunnel.send_packets`.
#[uniffi::export(with_foreign)]
pub trait PacketFlow: Send + Sync {
    /// Writes IP packets to the OS (`packetFlow.writePackets`).
    fn write_packets(&self, packets: Vec<Vec<u8>>);
}

/// Runs a call into the app; a panic is logged and `fallback` returned.
pub(crate) fn guarded<T>(what: &str, fallback: T, call: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(v) => v,
        Err(_) => {
            log::error!("the app's {what} callback failed");
            fallback
        }
    }
}
