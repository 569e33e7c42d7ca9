// Maps the core's NetworkSettings to NEPacketTunnelNetworkSettings. Kept apart from the
// provider so `swift test` on a Mac checks it without a running extension.
import Foundation
import NetworkExtension
import RoamCore

public enum TunnelNetworkSettings {
    /// The extension's settings: addresses, routes (everything the core routes), DNS that
    /// matches every domain (full tunnel), and the MTU.
    public static func make(_ s: NetworkSettings) -> NEPacketTunnelNetworkSettings {
        let settings = NEPacketTunnelNetworkSettings(tunnelRemoteAddress: s.serverAddress)
        let v4 = s.addresses.filter { !$0.address.contains(":") }
        let v6 = s.addresses.filter { $0.address.contains(":") }
        let routes4 = s.routes.filter { !$0.address.contains(":") }
        let routes6 = s.routes.filter { $0.address.contains(":") }
        if !v4.isEmpty {
            let ipv4 = NEIPv4Settings(addresses: v4.map(\.address), subnetMasks: v4.map { mask4($0.prefixLen) })
            ipv4.includedRoutes = routes4.map {
                $0.prefixLen == 0 ? NEIPv4Route.default() : NEIPv4Route(destinationAddress: $0.address, subnetMask: mask4($0.prefixLen))
            }
            settings.ipv4Settings = ipv4
        }
        if !v6.isEmpty {
            let ipv6 = NEIPv6Settings(addresses: v6.map(\.address), networkPrefixLengths: v6.map { NSNumber(value: $0.prefixLen) })
            ipv6.includedRoutes = routes6.map {
                $0.prefixLen == 0 ? NEIPv6Route.default() : NEIPv6Route(destinationAddress: $0.address, networkPrefixLength: NSNumber(value: $0.prefixLen))
            }
            settings.ipv6Settings = ipv6
        }
        if !s.dnsServers.isEmpty {
            let dns = NEDNSSettings(servers: s.dnsServers)
            dns.searchDomains = s.searchDomains
            dns.matchDomains = [""] // every query goes to the tunnel's DNS
            settings.dnsSettings = dns
        }
        settings.mtu = NSNumber(value: s.mtu)
        return settings
    }

    /// 24 -> "255.255.255.0".
    public static func mask4(_ prefix: UInt8) -> String {
        let p = min(Int(prefix), 32)
        let bits: UInt32 = p == 0 ? 0 : UInt32.max << (32 - p)
        return [24, 16, 8, 0].map { String((bits >> $0) & 0xff) }.joined(separator: ".")
    }
}
