// Plain Kotlin (no android.*): tested on the JVM by scripts/test-kotlin.sh.
package org.roam.vpn.glue

import org.roam.core.NetworkKind
import org.roam.core.TunnelState
import org.roam.core.VpnEvent

/** The notification's text for the tunnel's state (kept out of the service so it is testable). */
object StatusText {
    fun of(state: TunnelState, server: String?, lastError: String? = null): String = when (state) {
        TunnelState.IDLE -> "Not connected"
        TunnelState.CONNECTING -> "Connecting${server?.let { " to $it" } ?: ""}…"
        TunnelState.AUTHENTICATED -> "Authenticated, setting up the tunnel…"
        TunnelState.CONNECTED -> "Connected${server?.let { " to $it" } ?: ""}"
        TunnelState.ROAMING -> "Switching network…"
        TunnelState.RECONNECTING -> "Connection lost, reconnecting…"
        TunnelState.CLOSING -> "Disconnecting…"
        TunnelState.DISCONNECTED -> if (lastError != null) "Disconnected: $lastError" else "Disconnected"
    }

    /** A one-line description of an event for a log or a status line. */
    fun of(event: VpnEvent): String = when (event) {
        is VpnEvent.StateChanged -> "state: ${event.state.name.lowercase()}"
        is VpnEvent.Connected -> "connected: ${event.info.virtualIps.joinToString()}"
        is VpnEvent.NetworkChanged ->
            "network: ${if (event.network.kind == NetworkKind.NONE) "none" else event.network.kind.name.lowercase()}"
        is VpnEvent.Roamed -> "roamed: ${event.localAddress} -> ${event.serverAddress}"
        is VpnEvent.Rekeyed -> "rekeyed: ${event.sa}"
        is VpnEvent.Reconnecting ->
            "reconnecting: attempt ${event.attempt} in ${event.delayMs} ms (${event.reason})"
        is VpnEvent.Disconnected -> "disconnected: ${event.error ?: event.reason}"
    }
}
