// Android-only: follows the default network and tells the core, debounced.
package org.roam.vpn

import android.net.ConnectivityManager
import android.net.LinkProperties
import android.net.Network
import android.net.NetworkCapabilities
import android.net.VpnService
import android.os.Handler
import android.os.Looper
import org.roam.core.NetworkInfo
import org.roam.core.NetworkKind
import org.roam.core.VpnTunnel
import org.roam.vpn.glue.Cancellable
import org.roam.vpn.glue.Debouncer
import org.roam.vpn.glue.Scheduler

/**
 * Watches the default network (`registerDefaultNetworkCallback`; the service keeps its own
 * app out of the tunnel, so this is the underlying network) and, once a burst of callbacks
 * has settled ([DEBOUNCE_MS]), sets it as the VPN's underlying network and calls
 * [VpnTunnel.networkChanged]. Losing every network reports `NetworkKind.NONE`.
 */
class NetworkMonitor(private val service: VpnService, private val tunnel: VpnTunnel) {
    private val handler = Handler(Looper.getMainLooper())
    private val connectivity = service.getSystemService(ConnectivityManager::class.java)
    @Volatile var current: Network? = null
        private set

    private val scheduler = Scheduler { delay, task ->
        handler.postDelayed(task, delay)
        Cancellable { handler.removeCallbacks(task) }
    }
    private val debouncer = Debouncer<Pair<Network?, NetworkInfo>>(DEBOUNCE_MS, scheduler) { (network, info) ->
        service.setUnderlyingNetworks(network?.let { arrayOf(it) })
        tunnel.networkChanged(info)
    }

    private val callback = object : ConnectivityManager.NetworkCallback() {
        override fun onAvailable(network: Network) = report(network)
        override fun onCapabilitiesChanged(network: Network, caps: NetworkCapabilities) = report(network)
        override fun onLinkPropertiesChanged(network: Network, link: LinkProperties) = report(network)
        override fun onLost(network: Network) {
            if (current == network) {
                current = null
                debouncer.submit(null to NetworkInfo(NetworkKind.NONE))
            }
        }
    }

    fun start() {
        connectivity.registerDefaultNetworkCallback(callback, handler)
    }

    fun stop() {
        runCatching { connectivity.unregisterNetworkCallback(callback) }
        debouncer.reset()
    }

    private fun report(network: Network) {
        current = network
        val caps = connectivity.getNetworkCapabilities(network)
        val link = connectivity.getLinkProperties(network)
        val kind = when {
            caps == null -> NetworkKind.OTHER
            caps.hasTransport(NetworkCapabilities.TRANSPORT_WIFI) -> NetworkKind.WIFI
            caps.hasTransport(NetworkCapabilities.TRANSPORT_CELLULAR) -> NetworkKind.CELLULAR
            caps.hasTransport(NetworkCapabilities.TRANSPORT_ETHERNET) -> NetworkKind.ETHERNET
            else -> NetworkKind.OTHER
        }
        val info = NetworkInfo(
            kind = kind,
            interfaceName = link?.interfaceName,
            addresses = link?.linkAddresses?.map { it.address.hostAddress ?: "" }?.filter { it.isNotEmpty() } ?: emptyList(),
            expensive = caps?.hasCapability(NetworkCapabilities.NET_CAPABILITY_NOT_METERED) == false,
        )
        debouncer.submit(network to info)
    }

    companion object {
        const val DEBOUNCE_MS = 500L
    }
}
