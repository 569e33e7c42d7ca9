// Android-only (not compiled on the CI machine, which has no Android SDK): the VpnService
// shell around the Rust core. The logic that does not touch Android APIs lives in glue/ and
// is tested on the JVM by scripts/test-kotlin.sh.
package org.roam.vpn

import android.content.Context
import android.content.Intent
import android.net.VpnService
import android.os.Handler
import android.os.Looper
import android.util.Log
import org.roam.core.NetworkSettings
import org.roam.core.PlatformCallbacks
import org.roam.core.TunnelState
import org.roam.core.VpnEvent
import org.roam.core.VpnException
import org.roam.core.VpnTunnel
import org.roam.core.uniffiEnsureInitialized
import org.roam.vpn.glue.InterfaceBuilder
import org.roam.vpn.glue.InterfacePlan
import org.roam.vpn.glue.StatusText
import java.io.File

/**
 * The VPN service: one [VpnTunnel] per connection. Started by the app ([connect]) or by the
 * system for an always-on VPN (the profile then comes from [ProfileStore]); stopped by the app
 * ([disconnect]), by the user revoking the VPN ([onRevoke]) or when the session ends.
 *
 * The core calls [PlatformCallbacks] on its own callback thread, never with a lock held, so
 * [applyNetworkSettings] may call back into the tunnel ([VpnTunnel.setTunFd]).
 */
class RoamVpnService : VpnService(), PlatformCallbacks {
    private val main = Handler(Looper.getMainLooper())
    private var tunnel: VpnTunnel? = null
    private var monitor: NetworkMonitor? = null
    private lateinit var notification: TunnelNotification

    override fun onCreate() {
        super.onCreate()
        uniffiEnsureInitialized() // fails loudly if the .so and the bindings disagree
        notification = TunnelNotification(this)
    }

    override fun onStartCommand(intent: Intent?, flags: Int, startId: Int): Int {
        when (intent?.action) {
            ACTION_DISCONNECT -> {
                stopTunnel()
                return START_NOT_STICKY
            }
            // ACTION_CONNECT, or null / SERVICE_INTERFACE: an always-on start by the system.
            else -> startTunnel()
        }
        return START_STICKY
    }

    private fun startTunnel() {
        startForeground(TunnelNotification.ID, notification.build(StatusText.of(TunnelState.CONNECTING, null)))
        if (tunnel != null) return
        val profile = ProfileStore(this).load()
        if (profile == null) {
            Log.w(TAG, "no profile imported: nothing to connect")
            stopSelf()
            return
        }
        try {
            val t = VpnTunnel.fromProfile(profile, ProfileStore(this).dir.absolutePath, this)
            tunnel = t
            monitor = NetworkMonitor(this, t).also { it.start() }
            t.start()
        } catch (e: VpnException) {
            Log.e(TAG, "cannot start: ${e.message}")
            notification.update(StatusText.of(TunnelState.DISCONNECTED, null, e.message))
            stopTunnel()
        }
    }

    private fun stopTunnel() {
        monitor?.stop()
        monitor = null
        val t = tunnel
        if (t == null || t.status().state in setOf(TunnelState.IDLE, TunnelState.DISCONNECTED)) {
            release()
        } else {
            t.stop() // the Disconnected event releases everything
        }
    }

    private fun release() {
        tunnel?.close()
        tunnel = null
        stopForeground(STOP_FOREGROUND_REMOVE)
        stopSelf()
    }

    // The user revoked the VPN, or another VPN app took over.
    override fun onRevoke() {
        Log.i(TAG, "VPN revoked")
        stopTunnel()
    }

    override fun onDestroy() {
        monitor?.stop()
        tunnel?.close()
        tunnel = null
        super.onDestroy()
    }

    // ---- PlatformCallbacks (called on the core's callback thread) ---------------------------

    override fun protectSocket(fd: Int): Boolean = protect(fd)

    override fun applyNetworkSettings(settings: NetworkSettings): Boolean {
        val t = tunnel ?: return false
        val builder = Builder()
        InterfacePlan.from(settings, "Roam").applyTo(AndroidBuilder(builder))
        // Our own traffic (the app, not the core's protected sockets) stays outside the
        // tunnel, so the default-network callback sees the real network.
        builder.addDisallowedApplication(packageName)
        monitor?.current?.let { builder.setUnderlyingNetworks(arrayOf(it)) }
        val pfd = builder.establish() ?: return false // not prepared, or revoked meanwhile
        return try {
            t.setTunFd(pfd.detachFd()) // the core owns the fd from here
            true
        } catch (e: VpnException) {
            Log.e(TAG, "TUN handover failed: ${e.message}")
            false
        }
    }

    override fun onEvent(event: VpnEvent) {
        Log.i(TAG, StatusText.of(event))
        main.post {
            val t = tunnel
            when (event) {
                is VpnEvent.StateChanged -> notification.update(StatusText.of(event.state, t?.status()?.serverAddress))
                is VpnEvent.Connected -> notification.update(StatusText.of(TunnelState.CONNECTED, t?.status()?.serverAddress))
                is VpnEvent.NetworkChanged, is VpnEvent.Roamed, is VpnEvent.Rekeyed -> {}
                // The core reconnects by itself; the TUN stays up so nothing leaks meanwhile.
                is VpnEvent.Reconnecting -> notification.update(StatusText.of(event))
                is VpnEvent.Disconnected -> {
                    // Final: the core only gives up on a permanent error or a stop.
                    notification.update(StatusText.of(TunnelState.DISCONNECTED, null, event.error))
                    release()
                }
            }
        }
    }

    private class AndroidBuilder(private val b: Builder) : InterfaceBuilder {
        override fun setSession(name: String) { b.setSession(name) }
        override fun setMtu(mtu: Int) { b.setMtu(mtu) }
        override fun addAddress(address: String, prefixLength: Int) { b.addAddress(address, prefixLength) }
        override fun addRoute(address: String, prefixLength: Int) { b.addRoute(address, prefixLength) }
        override fun addDnsServer(address: String) { b.addDnsServer(address) }
        override fun addSearchDomain(domain: String) { b.addSearchDomain(domain) }
        override fun allowFamily(ipv6: Boolean) {
            b.allowFamily(if (ipv6) android.system.OsConstants.AF_INET6 else android.system.OsConstants.AF_INET)
        }
    }

    companion object {
        private const val TAG = "Roam"
        const val ACTION_CONNECT = "org.roam.vpn.CONNECT"
        const val ACTION_DISCONNECT = "org.roam.vpn.DISCONNECT"

        /** Call after `VpnService.prepare(context)` returned null (or its activity said OK). */
        fun connect(context: Context) {
            context.startForegroundService(Intent(context, RoamVpnService::class.java).setAction(ACTION_CONNECT))
        }

        fun disconnect(context: Context) {
            context.startService(Intent(context, RoamVpnService::class.java).setAction(ACTION_DISCONNECT))
        }
    }
}

/** The imported profile (TOML, with the certificate files it names) in the app's private files. */
class ProfileStore(context: Context) {
    val dir: File = File(context.filesDir, "roam").apply { mkdirs() }
    private val file = File(dir, "profile.toml")

    fun load(): String? = file.takeIf { it.isFile }?.readText()

    /** Stores a profile after the core accepted it (a bad one throws VpnException.Config). */
    fun save(toml: String, platform: PlatformCallbacks) {
        VpnTunnel.fromProfile(toml, dir.absolutePath, platform).close()
        file.writeText(toml)
    }
}
