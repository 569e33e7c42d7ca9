// swift-tools-version:5.9
// Roam for iOS: the Rust core (RoamCoreFFI.xcframework + the generated RoamCore.swift, both
// made by scripts/build-ios.sh and never committed) and the packet tunnel shell (RoamTunnel).
import PackageDescription

let package = Package(
    name: "Roam",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "RoamTunnel", targets: ["RoamTunnel"]),
        .library(name: "RoamCore", targets: ["RoamCore"]),
    ],
    targets: [
        .binaryTarget(name: "RoamCoreFFI", path: "RoamCoreFFI.xcframework"),
        .target(name: "RoamCore", dependencies: ["RoamCoreFFI"], path: "Sources/RoamCore"),
        .target(
            name: "RoamTunnel",
            dependencies: ["RoamCore"],
            path: "Sources/RoamTunnel",
            linkerSettings: [.linkedFramework("NetworkExtension")]
        ),
        .testTarget(name: "RoamTunnelTests", dependencies: ["RoamTunnel", "RoamCore"], path: "Tests/RoamTunnelTests"),
    ]
)
