// `swift test` on a Mac (after scripts/build-ios.sh made the xcframework with its macOS slice).
import NetworkExtension
import RoamCore
@testable import RoamTunnel
import XCTest

final class TunnelNetworkSettingsTests: XCTestCase {
    func testMasks() {
        XCTAssertEqual(TunnelNetworkSettings.mask4(0), "0.0.0.0")
        XCTAssertEqual(TunnelNetworkSettings.mask4(24), "255.255.255.0")
        XCTAssertEqual(TunnelNetworkSettings.mask4(32), "255.255.255.255")
    }

    func testFullTunnelSettings() {
        let s = NetworkSettings(
            serverAddress: "192.0.2.1",
            addresses: [IpNetwork(address: "198.18.0.2", prefixLen: 32), IpNetwork(address: "2001:db8::2", prefixLen: 128)],
            routes: [IpNetwork(address: "0.0.0.0", prefixLen: 0), IpNetwork(address: "::", prefixLen: 0)],
            dnsServers: ["203.0.113.53"],
            searchDomains: ["corp.example"],
            mtu: 1400
        )
        let n = TunnelNetworkSettings.make(s)
        XCTAssertEqual(n.tunnelRemoteAddress, "192.0.2.1")
        XCTAssertEqual(n.ipv4Settings?.addresses, ["198.18.0.2"])
        XCTAssertEqual(n.ipv4Settings?.includedRoutes?.count, 1)
        XCTAssertEqual(n.ipv6Settings?.addresses, ["2001:db8::2"])
        XCTAssertEqual(n.dnsSettings?.servers, ["203.0.113.53"])
        XCTAssertEqual(n.dnsSettings?.matchDomains, [""])
        XCTAssertEqual(n.mtu, 1400)
    }

    func testConfigErrorsNameTheKey() {
        let bad = VpnConfig(
            server: ServerConfig(address: "vpn.example.org", port: 0, id: nil, caPem: nil),
            auth: .psk(localId: "phone@example.org", psk: SecretText(value: "s")),
            crypto: nil, tunnel: nil
        )
        XCTAssertThrowsError(try validateConfig(config: bad)) { error in
            guard case let VpnError.Config(key, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(key, "server.port")
        }
    }
}
