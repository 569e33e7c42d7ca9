// The packet tunnel shell around the Rust core. Subclass it as the extension's principal
// class (NSExtensionPrincipalClass) and put the profile (TOML, as `roam connect` reads it)
// in the tunnel's providerConfiguration["profile"].
//
// Memory: the extension is killed at 50 MiB. The core runs one tokio worker thread and keeps
// at most 256 packets queued each way; packets are read in the batches packetFlow returns.
import Foundation
import Network
import NetworkExtension
import RoamCore

public enum RoamTunnelError: Error {
    case noProfile
    case settingsNotApplied
    case disconnected(String)
}

open class RoamPacketTunnelProvider: NEPacketTunnelProvider {
    private var tunnel: VpnTunnel?
    private var monitor: NWPathMonitor?
    private let monitorQueue = DispatchQueue(label: "org.roam.path")
    private let lock = NSLock()
    private var pendingStart: ((Error?) -> Void)?
    private var pendingStop: (() -> Void)?
    private var reading = false

    open override func startTunnel(options: [String: NSObject]?, completionHandler: @escaping (Error?) -> Void) {
        uniffiEnsureRoamFfiInitialized()
        guard let proto = protocolConfiguration as? NETunnelProviderProtocol,
              let profile = proto.providerConfiguration?["profile"] as? String else {
            completionHandler(RoamTunnelError.noProfile)
            return
        }
        do {
            let tunnel = try VpnTunnel.fromProfile(
                profileToml: profile,
                baseDir: FileManager.default.temporaryDirectory.path,
                platform: Callbacks(provider: self)
            )
            tunnel.setPacketFlow(flow: FlowWriter(flow: packetFlow))
            lock.withLock { pendingStart = completionHandler }
            self.tunnel = tunnel
            try tunnel.start()
            startPathMonitor()
        } catch {
            lock.withLock { pendingStart = nil }
            completionHandler(error)
        }
    }

    open override func stopTunnel(with reason: NEProviderStopReason, completionHandler: @escaping () -> Void) {
        monitor?.cancel()
        monitor = nil
        guard let tunnel, tunnel.status().state != .disconnected, tunnel.status().state != .idle else {
            completionHandler()
            return
        }
        lock.withLock { pendingStop = completionHandler }
        tunnel.stop() // the Disconnected event completes; give the DELETE 3 s at most
        DispatchQueue.global().asyncAfter(deadline: .now() + 3) { [weak self] in self?.finishStop() }
    }

    open override func sleep(completionHandler: @escaping () -> Void) {
        tunnel?.sleep()
        completionHandler()
    }

    open override func wake() {
        tunnel?.wake()
    }

    // MARK: the network path

    private func startPathMonitor() {
        let monitor = NWPathMonitor()
        monitor.pathUpdateHandler = { [weak self] path in
            guard let self, let tunnel = self.tunnel else { return }
            // No path: the system shows the tunnel as reconnecting until one comes back.
            self.reasserting = path.status != .satisfied
            tunnel.networkChanged(network: Self.networkInfo(path))
        }
        monitor.start(queue: monitorQueue)
        self.monitor = monitor
    }

    static func networkInfo(_ path: NWPath) -> NetworkInfo {
        guard path.status == .satisfied else { return NetworkInfo(kind: .none, interfaceName: nil, addresses: [], expensive: false) }
        let kind: NetworkKind
        if path.usesInterfaceType(.wifi) { kind = .wifi }
        else if path.usesInterfaceType(.cellular) { kind = .cellular }
        else if path.usesInterfaceType(.wiredEthernet) { kind = .ethernet }
        else { kind = .other }
        return NetworkInfo(kind: kind, interfaceName: path.availableInterfaces.first?.name, addresses: [], expensive: path.isExpensive)
    }

    // MARK: packets from the OS into the tunnel

    private func readPackets() {
        packetFlow.readPackets { [weak self] packets, _ in
            guard let self, let tunnel = self.tunnel else { return }
            _ = tunnel.sendPackets(packets: packets)
            self.readPackets()
        }
    }

    // MARK: events (called on the core's callback thread, no lock of the core held)

    fileprivate func applied(_ settings: NetworkSettings) -> Bool {
        let done = DispatchSemaphore(value: 0)
        var failure: Error?
        setTunnelNetworkSettings(TunnelNetworkSettings.make(settings)) { error in
            failure = error
            done.signal()
        }
        guard done.wait(timeout: .now() + 10) == .success, failure == nil else { return false }
        let startReading = lock.withLock { () -> Bool in
            defer { reading = true }
            return !reading
        }
        if startReading { readPackets() }
        return true
    }

    fileprivate func handle(_ event: VpnEvent) {
        switch event {
        case .connected:
            reasserting = false
            let start = lock.withLock { () -> ((Error?) -> Void)? in defer { pendingStart = nil }; return pendingStart }
            start?(nil)
        case .reconnecting:
            // The system shows the tunnel as reconnecting; the core retries by itself and
            // nothing leaves outside the tunnel meanwhile.
            reasserting = true
        case let .disconnected(reason, error, _):
            let start = lock.withLock { () -> ((Error?) -> Void)? in defer { pendingStart = nil }; return pendingStart }
            if let start {
                start(RoamTunnelError.disconnected(error ?? reason))
            } else if lock.withLock({ pendingStop }) == nil {
                cancelTunnelWithError(RoamTunnelError.disconnected(error ?? reason))
            }
            finishStop()
        case .stateChanged, .networkChanged, .roamed, .rekeyed:
            break
        }
    }

    private func finishStop() {
        let stop = lock.withLock { () -> (() -> Void)? in defer { pendingStop = nil }; return pendingStop }
        stop?()
    }
}

/// The core's callbacks; holds the provider weakly (the provider holds the tunnel).
private final class Callbacks: PlatformCallbacks, @unchecked Sendable {
    weak var provider: RoamPacketTunnelProvider?
    init(provider: RoamPacketTunnelProvider) { self.provider = provider }

    // The extension's own sockets never enter its tunnel.
    func protectSocket(fd: Int32) -> Bool { true }
    func applyNetworkSettings(settings: NetworkSettings) -> Bool { provider?.applied(settings) ?? false }
    func onEvent(event: VpnEvent) { provider?.handle(event) }
}

/// Decrypted packets to the OS.
private final class FlowWriter: PacketFlow, @unchecked Sendable {
    private let flow: NEPacketTunnelFlow
    init(flow: NEPacketTunnelFlow) { self.flow = flow }

    func writePackets(packets: [Data]) {
        let protocols = packets.map { p -> NSNumber in
            NSNumber(value: (p.first.map { $0 >> 4 } == 6) ? AF_INET6 : AF_INET)
        }
        flow.writePackets(packets, withProtocols: protocols)
    }
}
