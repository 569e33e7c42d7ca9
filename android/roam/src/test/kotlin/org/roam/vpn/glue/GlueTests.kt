// JVM tests of the shell's plain-Kotlin glue (run by scripts/test-kotlin.sh through
// org.roam.test.Runner: every public method named test* is a test).
package org.roam.vpn.glue

import org.roam.core.ConnectionInfo
import org.roam.core.IpNetwork
import org.roam.core.NetworkInfo
import org.roam.core.NetworkKind
import org.roam.core.NetworkSettings
import org.roam.core.TunnelState
import org.roam.core.VpnEvent
import kotlin.test.assertEquals
import kotlin.test.assertFalse
import kotlin.test.assertTrue
import kotlin.test.assertFailsWith

/** A scheduler on a manual clock. */
class ManualScheduler : Scheduler {
    var now = 0L
    private val tasks = mutableListOf<Triple<Long, Runnable, BooleanArray>>()

    override fun schedule(delayMillis: Long, task: Runnable): Cancellable {
        val cancelled = booleanArrayOf(false)
        tasks += Triple(now + delayMillis, task, cancelled)
        return Cancellable { cancelled[0] = true }
    }

    fun advance(ms: Long) {
        now += ms
        while (true) {
            val due = tasks.filter { it.first <= now }.minByOrNull { it.first } ?: break
            tasks.remove(due)
            if (!due.third[0]) due.second.run()
        }
    }
}

class GlueTests {
    private fun settings(addresses: List<String>, routes: List<String>, mtu: Int = 1400) = NetworkSettings(
        serverAddress = "192.0.2.1",
        addresses = addresses.map { IpNetwork(it, if (it.contains(':')) 128u else 32u) },
        routes = routes.map { IpNetwork(it, 0u) },
        dnsServers = listOf("203.0.113.53"),
        searchDomains = listOf("corp.example"),
        mtu = mtu.toUShort(),
    )

    fun testDebouncerDeliversOnlyTheLastValueOfABurst() {
        val clock = ManualScheduler()
        val seen = mutableListOf<String>()
        val d = Debouncer<String>(500, clock) { seen += it }
        d.submit("wifi")
        clock.advance(100)
        d.submit("none")
        clock.advance(100)
        d.submit("cellular")
        clock.advance(499)
        assertEquals(emptyList(), seen)
        clock.advance(1)
        assertEquals(listOf("cellular"), seen)
    }

    fun testDebouncerDropsRepeatsUntilReset() {
        val clock = ManualScheduler()
        val seen = mutableListOf<String>()
        val d = Debouncer<String>(10, clock) { seen += it }
        d.submit("wifi"); clock.advance(10)
        d.submit("wifi"); clock.advance(10)
        assertEquals(listOf("wifi"), seen)
        d.reset()
        d.submit("wifi"); clock.advance(10)
        assertEquals(listOf("wifi", "wifi"), seen)
    }

    fun testPlanCarriesSettingsAndClampsTheMtu() {
        val plan = InterfacePlan.from(settings(listOf("198.18.0.2", "2001:db8:ffff::2"), listOf("0.0.0.0", "::"), mtu = 600), "Roam")
        assertEquals(InterfacePlan.MIN_MTU, plan.mtu)
        assertEquals(listOf("198.18.0.2" to 32, "2001:db8:ffff::2" to 128), plan.addresses)
        assertEquals(listOf("0.0.0.0" to 0, "::" to 0), plan.routes)
        assertFalse(plan.allowIpv4)
        assertFalse(plan.allowIpv6)
        val calls = mutableListOf<String>()
        plan.applyTo(object : InterfaceBuilder {
            override fun setSession(name: String) { calls += "session $name" }
            override fun setMtu(mtu: Int) { calls += "mtu $mtu" }
            override fun addAddress(address: String, prefixLength: Int) { calls += "address $address/$prefixLength" }
            override fun addRoute(address: String, prefixLength: Int) { calls += "route $address/$prefixLength" }
            override fun addDnsServer(address: String) { calls += "dns $address" }
            override fun addSearchDomain(domain: String) { calls += "search $domain" }
            override fun allowFamily(ipv6: Boolean) { calls += "allow ${if (ipv6) 6 else 4}" }
        })
        assertEquals(
            listOf("session Roam", "mtu 1280", "address 198.18.0.2/32", "address 2001:db8:ffff::2/128",
                "route 0.0.0.0/0", "route ::/0", "dns 203.0.113.53", "search corp.example"),
            calls,
        )
    }

    fun testAFamilyRoutedWithoutAnAddressIsStillCaptured() {
        val plan = InterfacePlan.from(settings(listOf("198.18.0.2"), listOf("0.0.0.0", "::")), "Roam")
        assertFalse(plan.allowIpv4)
        assertTrue(plan.allowIpv6)
        assertFailsWith<IllegalArgumentException> { InterfacePlan.from(settings(emptyList(), listOf("::")), "Roam") }
    }

    fun testStatusTexts() {
        assertEquals("Connected to vpn.example.org", StatusText.of(TunnelState.CONNECTED, "vpn.example.org"))
        assertEquals("Disconnected: timeout", StatusText.of(TunnelState.DISCONNECTED, null, "timeout"))
        val info = ConnectionInfo(listOf("198.18.0.2"), emptyList(), "", "", false, true)
        assertEquals("connected: 198.18.0.2", StatusText.of(VpnEvent.Connected(info, 1_764_450_000_000uL)))
        assertEquals(
            "reconnecting: attempt 2 in 1800 ms (timeout)",
            StatusText.of(VpnEvent.Reconnecting(2u, 1800uL, "timeout", 1_764_450_000_000uL)),
        )
        assertEquals("Connection lost, reconnecting…", StatusText.of(TunnelState.RECONNECTING, null))
        assertEquals("network: none", StatusText.of(VpnEvent.NetworkChanged(NetworkInfo(NetworkKind.NONE), false)))
    }
}
