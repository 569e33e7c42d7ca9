// JVM tests of the generated Kotlin bindings: a real tunnel to Roam's embedded responder
// (the TestResponder fixture of the `test-fixture` build) in packet-flow mode, through JNA.
// Run by scripts/test-kotlin.sh. The responder's echo answers what goes through the tunnel:
// the tests build ICMP echo requests here, by hand, and check the replies that come back.
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
    val written = LinkedBlockingQueue<ByteArray>()
    override fun writePackets(packets: List<ByteArray>) {
        written += packets
    }

    /** The next `n` packets the tunnel wrote, within WAIT_SECONDS in all. */
    fun take(n: Int): List<ByteArray> {
        val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(WAIT_SECONDS)
        val got = ArrayList<ByteArray>()
        while (got.size < n) {
            val left = deadline - System.nanoTime()
            if (left <= 0) fail("${got.size} of $n packets came out of the tunnel within $WAIT_SECONDS s")
            got += written.poll(left, TimeUnit.NANOSECONDS) ?: continue
        }
        return got
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

/** RFC 1071: the internet checksum of `data` (zero when `data` holds a correct checksum). */
fun internetChecksum(data: ByteArray): Int {
    var sum = 0L
    for (i in data.indices step 2) {
        val hi = data[i].toInt() and 0xff
        val lo = if (i + 1 < data.size) data[i + 1].toInt() and 0xff else 0
        sum += (hi shl 8) or lo
    }
    while (sum shr 16 != 0L) sum = (sum and 0xffff) + (sum shr 16)
    return sum.inv().toInt() and 0xffff
}

fun ipv4(address: String): ByteArray = address.split('.').map { it.toInt().toByte() }.toByteArray()

fun u16(p: ByteArray, at: Int): Int = ((p[at].toInt() and 0xff) shl 8) or (p[at + 1].toInt() and 0xff)

fun putU16(p: ByteArray, at: Int, v: Int) {
    p[at] = (v shr 8).toByte()
    p[at + 1] = v.toByte()
}

const val ICMP_ID = 0x4b74 // "Kt"

fun icmpPayload(seq: Int) = "roam-kotlin-$seq".toByteArray()

/** An IPv4 ICMP echo request from `src` to `dst` (identifier ICMP_ID, sequence `seq`), checksums set. */
fun icmpEchoRequest(src: String, dst: String, seq: Int): ByteArray {
    val icmp = ByteArray(8) + icmpPayload(seq)
    icmp[0] = 8 // echo request
    putU16(icmp, 4, ICMP_ID)
    putU16(icmp, 6, seq)
    putU16(icmp, 2, internetChecksum(icmp))
    val ip = ByteArray(20)
    ip[0] = 0x45
    putU16(ip, 2, ip.size + icmp.size)
    ip[6] = 0x40 // don't fragment
    ip[8] = 64 // TTL
    ip[9] = 1 // ICMP
    ipv4(src).copyInto(ip, 12)
    ipv4(dst).copyInto(ip, 16)
    putU16(ip, 10, internetChecksum(ip))
    return ip + icmp
}

/**
 * The sequence number of `p` if it is a well-formed ICMP echo reply from `from` to `to`
 * answering one of icmpEchoRequest's (both checksums verified, identifier and payload intact).
 */
fun icmpEchoReplySeq(p: ByteArray, from: String, to: String): Int? {
    if (p.size < 28 || p[0].toInt() != 0x45 || u16(p, 2) != p.size || p[9].toInt() != 1) return null
    if (internetChecksum(p.copyOfRange(0, 20)) != 0) return null
    if (!p.copyOfRange(12, 16).contentEquals(ipv4(from)) || !p.copyOfRange(16, 20).contentEquals(ipv4(to))) return null
    val icmp = p.copyOfRange(20, p.size)
    if (icmp[0].toInt() != 0 || icmp[1].toInt() != 0 || internetChecksum(icmp) != 0) return null
    if (u16(icmp, 4) != ICMP_ID) return null
    val seq = u16(icmp, 6)
    return if (icmp.copyOfRange(8, icmp.size).contentEquals(icmpPayload(seq))) seq else null
}

class FfiTunnelTests {
    init {
        // Verifies the library's API checksums against these bindings (silent otherwise).
        uniffiEnsureInitialized()
    }

    fun testConnectsReceivesSettingsGetsEchoesThroughThePacketFlowAndStops() {
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

                // Packets in, answers out: ICMP echo requests from the virtual IP through ESP to
                // the responder's echo, and the replies back through the packet flow.
                val target = "203.0.113.1"
                val requests = (1..10).map { icmpEchoRequest(vip, target, it) }
                assertEquals(requests.size.toUInt(), tunnel.sendPackets(requests))
                val replies = flow.take(requests.size)
                val seqs = replies.map { p ->
                    icmpEchoReplySeq(p, from = target, to = vip)
                        ?: fail("not an echo reply to $vip: ${p.joinToString("") { "%02x".format(it) }}")
                }
                assertEquals((1..10).toList(), seqs.sorted())
                val bytes = requests.sumOf { it.size }.toULong()
                val status = tunnel.status()
                assertEquals(10uL, status.packetsToTunnel)
                assertEquals(bytes, status.bytesToTunnel)
                assertEquals(10uL, status.packetsFromTunnel)
                assertEquals(bytes, status.bytesFromTunnel)
                assertEquals(0uL, status.packetsDropped)

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

    fun testTheHandBuiltEchoRequestIsWellFormed() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        assertEquals(0xddf2.inv() and 0xffff, internetChecksum(byteArrayOf(0, 1, 0xf2.toByte(), 3, 0xf4.toByte(), 0xf5.toByte(), 0xf6.toByte(), 0xf7.toByte())))
        // An ICMP echo request with identifier 1, sequence 1 and no data has checksum f7fd.
        assertEquals(0xf7fd, internetChecksum(byteArrayOf(8, 0, 0, 0, 0, 1, 0, 1)))
        val p = icmpEchoRequest("198.18.0.1", "203.0.113.1", 7)
        assertEquals(0, internetChecksum(p.copyOfRange(0, 20)))
        assertEquals(0, internetChecksum(p.copyOfRange(20, p.size)))
        assertEquals(null, icmpEchoReplySeq(p, "198.18.0.1", "203.0.113.1"), "a request is not a reply")
        // The reply the echo should send: addresses swapped, type 0, checksums fixed.
        val r = p.copyOf()
        ipv4("203.0.113.1").copyInto(r, 12)
        ipv4("198.18.0.1").copyInto(r, 16)
        putU16(r, 10, 0)
        putU16(r, 10, internetChecksum(r.copyOfRange(0, 20)))
        r[20] = 0
        putU16(r, 22, 0)
        putU16(r, 22, internetChecksum(r.copyOfRange(20, r.size)))
        assertEquals(7, icmpEchoReplySeq(r, from = "203.0.113.1", to = "198.18.0.1"))
        r[r.size - 1] = (r[r.size - 1] + 1).toByte()
        assertEquals(null, icmpEchoReplySeq(r, from = "203.0.113.1", to = "198.18.0.1"), "a flipped byte breaks the checksum")
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
