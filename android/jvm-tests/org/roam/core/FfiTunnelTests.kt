// JVM tests of the generated Kotlin bindings: a real tunnel to Roam's embedded responder
// (the TestResponder fixture of the `test-fixture` build) in packet-flow mode, through JNA.
// Run by scripts/test-kotlin.sh. The driver of this build carries IKE only, so packets handed
// to the tunnel are checked on the app's side (queued and counted); no answer comes back yet.
package org.roam.core

import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertNotNull
import kotlin.test.assertTrue
import kotlin.test.fail

const val WAIT_SECONDS = 10L

/** The app's side: records everything, optionally misbehaves. */
open class RecordingPlatform : PlatformCallbacks {
    val events = LinkedBlockingQueue<VpnEvent>()
    val settings = LinkedBlockingQueue<NetworkSettings>()
    val protectedFds = CopyOnWriteArrayList<Int>()

    override fun protectSocket(fd: Int): Boolean {
        protectedFds += fd
        return true
    }

    override fun applyNetworkSettings(settings: NetworkSettings): Boolean {
        this.settings += settings
        return true
    }

    override fun onEvent(event: VpnEvent) {
        events += event
    }

    inline fun <reified T : VpnEvent> await(): T {
        val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(WAIT_SECONDS)
        while (true) {
            val left = deadline - System.nanoTime()
            if (left <= 0) fail("no ${T::class.simpleName} within $WAIT_SECONDS s")
            val e = events.poll(left, TimeUnit.NANOSECONDS) ?: continue
            if (e is T) return e
        }
    }
}

class RecordingFlow : PacketFlow {
    val written = CopyOnWriteArrayList<ByteArray>()
    override fun writePackets(packets: List<ByteArray>) {
        written += packets
    }
}

class LogCapture : LogSink {
    val lines = CopyOnWriteArrayList<String>()
    override fun log(level: LogLevel, target: String, message: String) {
        lines += "$level $target: $message"
    }
}

fun psk(responder: TestResponder, secret: String) = VpnConfig(
    server = ServerConfig(address = responder.host(), port = responder.port(), id = responder.serverId()),
    auth = AuthConfig.Psk(localId = "phone@roam.example", psk = SecretText(secret)),
)

/** An IPv4 UDP packet from `src` to 192.0.2.1:53. */
fun udpPacket(src: String): ByteArray {
    val s = src.split('.').map { it.toInt().toByte() }
    val header = byteArrayOf(0x45, 0, 0, 32, 0, 0, 0x40, 0, 64, 17, 0, 0, s[0], s[1], s[2], s[3], 192.toByte(), 0, 2, 1)
    val udp = byteArrayOf(0x30, 0x39, 0, 53, 0, 12, 0, 0) + "roam".toByteArray()
    return header + udp
}

class FfiTunnelTests {
    init {
        // Verifies the library's API checksums against these bindings (silent otherwise).
        uniffiEnsureInitialized()
    }

    fun testConnectsReceivesSettingsCarriesPacketsToTheTunnelAndStops() {
        val secret = "kotlin-test-psk-0123456789"
        val logs = LogCapture()
        setLogSink(logs)
        setLogLevel(LogLevel.TRACE)
        TestResponder.start(secret).use { responder ->
            val platform = RecordingPlatform()
            VpnTunnel(psk(responder, secret), platform).use { tunnel ->
                val flow = RecordingFlow()
                tunnel.setPacketFlow(flow)
                assertEquals(TunnelState.IDLE, tunnel.status().state)
                tunnel.start()

                val connected = platform.await<VpnEvent.Connected>()
                val vip = connected.info.virtualIps.first { it.startsWith("198.18.0.") }
                val settings = platform.settings.poll(WAIT_SECONDS, TimeUnit.SECONDS)
                assertNotNull(settings, "apply_network_settings was not called")
                assertTrue(settings.addresses.any { it.address == vip && it.prefixLen.toInt() == 32 }, "$settings")
                assertEquals(listOf("203.0.113.53"), settings.dnsServers)
                assertEquals(1400, settings.mtu.toInt())
                assertTrue(settings.routes.any { it.address == "0.0.0.0" && it.prefixLen.toInt() == 0 })
                assertTrue(platform.protectedFds.isNotEmpty(), "no socket was protected")
                assertEquals(TunnelState.CONNECTED, tunnel.status().state)
                assertEquals(1u, responder.establishedCount())

                // Packets in: queued for the tunnel and counted (the driver does not encrypt
                // them yet in this build, so no answer comes back through the flow).
                assertEquals(3u, tunnel.sendPackets(List(3) { udpPacket(vip) }))
                val status = tunnel.status()
                assertEquals(3uL, status.packetsToTunnel)
                assertEquals(96uL, status.bytesToTunnel)

                val cellular = NetworkInfo(NetworkKind.CELLULAR, "rmnet0", listOf("198.51.100.7"), expensive = true)
                tunnel.networkChanged(cellular)
                val changed = platform.await<VpnEvent.NetworkChanged>()
                assertEquals(cellular, changed.network)
                assertFalse(changed.roamed)
                assertEquals(cellular, tunnel.status().network)
                tunnel.sleep()
                assertTrue(tunnel.status().asleep)
                tunnel.wake()

                tunnel.stop()
                val gone = platform.await<VpnEvent.Disconnected>()
                assertEquals("closed", gone.reason)
                assertEquals(null, gone.error)
            }
        }
        setLogSink(null)
        setLogLevel(LogLevel.INFO)
        assertTrue(logs.lines.any { it.startsWith("TRACE") }, "no trace line was captured")
        for (line in logs.lines) {
            assertFalse(line.contains(secret), "the PSK is in a log line: $line")
        }
    }

    fun testAConfigErrorIsATypedException() {
        val platform = RecordingPlatform()
        val bad = VpnConfig(
            server = ServerConfig(address = "vpn.example.org", port = 0u),
            auth = AuthConfig.Psk(localId = "phone@roam.example", psk = SecretText("x")),
        )
        val e = assertFailsWith<VpnException.Config> { VpnTunnel(bad, platform) }
        assertEquals("server.port", e.key)
        val e2 = assertFailsWith<VpnException.Config> {
            validateConfig(bad.copy(server = bad.server.copy(port = 500u), crypto = CryptoConfig(ike = listOf("rot13-md5"))))
        }
        assertEquals("crypto.ike[0]", e2.key)
        val e3 = assertFailsWith<VpnException.Config> {
            VpnTunnel.fromProfile("[server]\naddress = \"192.0.2.1\"\n", ".", platform)
        }
        assertEquals("auth", e3.key)
    }

    fun testStartingTwiceIsAStateError() {
        TestResponder.start("psk-twice").use { responder ->
            val platform = RecordingPlatform()
            VpnTunnel(psk(responder, "psk-twice"), platform).use { tunnel ->
                tunnel.start()
                assertFailsWith<VpnException.State> { tunnel.start() }
                platform.await<VpnEvent.Connected>()
                tunnel.stop()
                platform.await<VpnEvent.Disconnected>()
            }
        }
    }

    fun testCallbacksMayCallBackIntoTheTunnel() {
        TestResponder.start("psk-reentrant").use { responder ->
            val statuses = CopyOnWriteArrayList<TunnelState>()
            lateinit var tunnel: VpnTunnel
            val platform = object : RecordingPlatform() {
                override fun onEvent(event: VpnEvent) {
                    // No lock is held during a callback: status() and stop() must not deadlock.
                    statuses += tunnel.status().state
                    if (event is VpnEvent.Connected) tunnel.stop()
                    super.onEvent(event)
                }
            }
            tunnel = VpnTunnel(psk(responder, "psk-reentrant"), platform)
            tunnel.use {
                it.start()
                platform.await<VpnEvent.Connected>()
                assertEquals("closed", platform.await<VpnEvent.Disconnected>().reason)
                assertTrue(statuses.contains(TunnelState.CONNECTED), "$statuses")
            }
        }
    }

    fun testAThrowingCallbackDoesNotTakeTheTunnelDown() {
        TestResponder.start("psk-throwing").use { responder ->
            val seen = LinkedBlockingQueue<VpnEvent>()
            val platform = object : RecordingPlatform() {
                override fun onEvent(event: VpnEvent) {
                    seen += event
                    throw IllegalStateException("app bug")
                }
            }
            VpnTunnel(psk(responder, "psk-throwing"), platform).use { tunnel ->
                tunnel.start()
                val deadline = System.currentTimeMillis() + WAIT_SECONDS * 1000
                while (tunnel.status().state != TunnelState.CONNECTED) {
                    assertTrue(System.currentTimeMillis() < deadline, "not connected: ${tunnel.status()}")
                    Thread.sleep(10)
                }
                tunnel.stop()
                while (seen.none { it is VpnEvent.Disconnected }) {
                    assertTrue(System.currentTimeMillis() < deadline, "no Disconnected: $seen")
                    Thread.sleep(10)
                }
            }
        }
    }

    fun testARefusedProtectStopsTheTunnelWithAnError() {
        TestResponder.start("psk-refused").use { responder ->
            val platform = object : RecordingPlatform() {
                override fun protectSocket(fd: Int): Boolean = false
            }
            VpnTunnel(psk(responder, "psk-refused"), platform).use { tunnel ->
                tunnel.start()
                val gone = platform.await<VpnEvent.Disconnected>()
                assertTrue(gone.error?.contains("protect") == true, "$gone")
                assertEquals(0u, responder.establishedCount())
            }
        }
    }

    fun testNoRustObjectLeaksAfterGc() {
        // Let earlier tests' objects go first.
        awaitLiveObjects(0uL)
        val before = liveObjectCount()
        fun makeGarbage() {
            repeat(5) {
                val t = VpnTunnel(
                    VpnConfig(ServerConfig("192.0.2.1"), AuthConfig.Psk("a@roam.example", SecretText("s"))),
                    RecordingPlatform(),
                )
                t.status()
            }
        }
        makeGarbage()
        assertTrue(liveObjectCount() > before, "the counter does not count tunnels")
        awaitLiveObjects(before)
        // Explicit close frees at once (no GC needed).
        val t = VpnTunnel(VpnConfig(ServerConfig("192.0.2.1"), AuthConfig.Psk("a@roam.example", SecretText("s"))), RecordingPlatform())
        t.close()
        awaitLiveObjects(before)
    }

    private fun awaitLiveObjects(target: ULong) {
        val deadline = System.currentTimeMillis() + WAIT_SECONDS * 1000
        while (liveObjectCount() > target) {
            if (System.currentTimeMillis() > deadline) fail("live Rust objects: ${liveObjectCount()}, expected $target")
            System.gc()
            Thread.sleep(20)
        }
    }
}
