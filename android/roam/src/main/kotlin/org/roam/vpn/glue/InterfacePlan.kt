// Plain Kotlin (no android.*): tested on the JVM by scripts/test-kotlin.sh.
package org.roam.vpn.glue

import org.roam.core.NetworkSettings

/** The calls `VpnService.Builder` needs; RoamVpnService adapts the real builder to this. */
interface InterfaceBuilder {
    fun setSession(name: String)
    fun setMtu(mtu: Int)
    fun addAddress(address: String, prefixLength: Int)
    fun addRoute(address: String, prefixLength: Int)
    fun addDnsServer(address: String)
    fun addSearchDomain(domain: String)
    /** Lets the family through the tunnel's interface even without an address of it. */
    fun allowFamily(ipv6: Boolean)
}

/**
 * What to build from the core's [NetworkSettings]. Each family the core routes but gave us
 * no address for is still allowed on the interface, so its traffic goes into the tunnel (and
 * is dropped there) instead of leaking outside it.
 */
data class InterfacePlan(
    val session: String,
    val mtu: Int,
    val addresses: List<Pair<String, Int>>,
    val routes: List<Pair<String, Int>>,
    val dnsServers: List<String>,
    val searchDomains: List<String>,
    val allowIpv4: Boolean,
    val allowIpv6: Boolean,
) {
    fun applyTo(builder: InterfaceBuilder) {
        builder.setSession(session)
        builder.setMtu(mtu)
        addresses.forEach { (a, p) -> builder.addAddress(a, p) }
        routes.forEach { (a, p) -> builder.addRoute(a, p) }
        dnsServers.forEach(builder::addDnsServer)
        searchDomains.forEach(builder::addSearchDomain)
        if (allowIpv4) builder.allowFamily(ipv6 = false)
        if (allowIpv6) builder.allowFamily(ipv6 = true)
    }

    companion object {
        /** Android refuses an MTU below the IPv6 minimum when IPv6 is routed; keep it sane. */
        const val MIN_MTU = 1280
        const val MAX_MTU = 9000

        fun from(settings: NetworkSettings, session: String): InterfacePlan {
            require(settings.addresses.isNotEmpty()) { "no virtual address to put on the interface" }
            val addresses = settings.addresses.map { it.address to it.prefixLen.toInt() }
            val routes = settings.routes.map { it.address to it.prefixLen.toInt() }
            val hasV4 = addresses.any { !isV6(it.first) }
            val hasV6 = addresses.any { isV6(it.first) }
            val routesV4 = routes.any { !isV6(it.first) }
            val routesV6 = routes.any { isV6(it.first) }
            return InterfacePlan(
                session = session,
                mtu = settings.mtu.toInt().coerceIn(MIN_MTU, MAX_MTU),
                addresses = addresses,
                routes = routes,
                dnsServers = settings.dnsServers,
                searchDomains = settings.searchDomains,
                allowIpv4 = routesV4 && !hasV4,
                allowIpv6 = routesV6 && !hasV6,
            )
        }

        private fun isV6(address: String) = address.contains(':')
    }
}
