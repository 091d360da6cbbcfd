// swift-tools-version:6.1
import PackageDescription

// The field arithmetic is optimized in debug builds too: unoptimized it is
// ~100x slower, which makes `swift test` crawl through the large vectors,
// and the constant-time check must see the code as it ships.
let optimizedAlways: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]

// Targets, ground floor first (see README "Layout"): nothing depends upward,
// only the CLI knows every target.
let package = Package(
    name: "spike-recovery",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "spike-recovery", targets: ["spike-recovery"]),
        .library(name: "Shamir", targets: ["Shamir"]),
        .library(name: "ShamirReference", targets: ["ShamirReference"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.10.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.30.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
        // The SPIFFE Workload API client (gRPC over a Unix socket).
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.0"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.0"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.0"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0", traits: []),
    ],
    targets: [
        // C libraries from the system (libgmp-dev, libssl-dev), each behind a tiny shim header.
        .systemLibrary(name: "CGMP", path: "Sources/CGMP"),
        .systemLibrary(name: "COpenSSLCrypto", path: "Sources/COpenSSLCrypto"),
        // The few C calls Swift cannot make portably: a wipe the optimizer keeps, mlock.
        .target(name: "CSecureMemory", path: "Sources/CSecureMemory"),

        .target(name: "SecureMemory", dependencies: ["CSecureMemory"]),
        .target(name: "ScalarField", dependencies: ["CSecureMemory"], swiftSettings: optimizedAlways),
        .target(name: "ShamirCore", dependencies: ["SecureMemory"]),
        .target(
            name: "Shamir",
            dependencies: [
                "ScalarField", "ShamirCore", "SecureMemory",
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .target(name: "ShamirReference", dependencies: ["CGMP", "COpenSSLCrypto", "ShamirCore", "SecureMemory"]),
        .target(
            name: "SpiffeIdentity",
            dependencies: [
                "SecureMemory",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .target(name: "SpikeWire", dependencies: ["SecureMemory"]),
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite"),
        .target(
            name: "BackingStore",
            dependencies: ["CSQLite", "SecureMemory", "SpikeWire", .product(name: "Crypto", package: "swift-crypto")]),
        // Writes SPIKE-format databases (tests and the demo only; recovery never writes).
        .target(
            name: "BackingStoreWriter",
            dependencies: ["BackingStore", "SecureMemory", "SpikeWire", .product(name: "Crypto", package: "swift-crypto")]),
        .target(
            name: "MutualTLS",
            dependencies: [
                "SpiffeIdentity", "SecureMemory",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]),
        .target(
            name: "KeeperService",
            dependencies: [
                "MutualTLS", "SpikeWire", "SpiffeIdentity", "SecureMemory",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),
        .target(
            name: "Recovery",
            dependencies: [
                "Shamir", "ShamirCore", "SecureMemory", "MutualTLS", "SpiffeIdentity", "SpikeWire", "BackingStore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]),
        // Generated from Spec/workload-api/workload.proto by tools/generate-workload-api (committed).
        .target(
            name: "WorkloadAPIProto",
            dependencies: [
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            ]),
        // SVIDs from a SPIFFE Workload API endpoint (SPIRE agent), as an X509Source.
        .target(
            name: "WorkloadAPI",
            dependencies: [
                "WorkloadAPIProto", "SpiffeIdentity", "SecureMemory",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .target(name: "ShamirVectors", dependencies: ["ShamirCore", "SecureMemory", "ShamirReference"]),
        .executableTarget(
            name: "spike-recovery",
            dependencies: [
                "Shamir", "ShamirReference", "ShamirVectors", "ShamirCore", "SecureMemory", "ScalarField",
                "SpiffeIdentity", "MutualTLS", "KeeperService", "SpikeWire", "Recovery", "BackingStore", "BackingStoreWriter",
                "WorkloadAPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),

        // Load client for the Keeper benchmark (README); loopback only.
        .executableTarget(
            name: "keeper-load",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]),
        // Hostile-input parsers as libFuzzer targets (tools/fuzz), and their corpus replayer.
        .target(name: "FuzzTargets", dependencies: ["SpikeWire", "SpiffeIdentity", "ShamirVectors", "SecureMemory"]),
        .executableTarget(name: "spike-fuzz", dependencies: ["FuzzTargets"]),
        // Run under valgrind by tools/ct-check; optimized like the code it checks.
        .executableTarget(
            name: "ct-harness", dependencies: ["Shamir", "ScalarField", "SecureMemory", "ShamirCore"],
            swiftSettings: optimizedAlways),

        // Helpers every test target shares: child processes off the cooperative
        // pool, loopback ports from one ledger, test keys.
        .target(name: "TestSupport", dependencies: ["SecureMemory", "Shamir"], path: "Tests/TestSupport"),

        .testTarget(
            name: "SpiffeIdentityTests",
            dependencies: ["SpiffeIdentity", .product(name: "X509", package: "swift-certificates")]),
        .testTarget(
            name: "MutualTLSTests",
            dependencies: [
                "TestSupport", "MutualTLS", "SpiffeIdentity", "SecureMemory",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),
        .testTarget(
            name: "KeeperServiceTests",
            dependencies: [
                "TestSupport", "KeeperService", "MutualTLS", "SpiffeIdentity", "SpikeWire", "SecureMemory",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),
        .testTarget(
            name: "BackingStoreTests",
            dependencies: ["BackingStore", "BackingStoreWriter", "SecureMemory", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(
            name: "RecoveryTests",
            dependencies: [
                "TestSupport", "Recovery", "KeeperService", "MutualTLS", "SpiffeIdentity", "SpikeWire", "SecureMemory", "Shamir", "ShamirCore",
                "BackingStore", "BackingStoreWriter",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),
        .testTarget(
            name: "WorkloadAPITests",
            dependencies: [
                "TestSupport", "WorkloadAPI", "WorkloadAPIProto", "SpiffeIdentity", "MutualTLS", "SecureMemory",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),
        .testTarget(
            name: "CLITests",
            dependencies: [
                "TestSupport", "BackingStoreWriter", "KeeperService", "SecureMemory", "Shamir", "SpiffeIdentity", "WorkloadAPI",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),
        .testTarget(name: "SecureMemoryTests", dependencies: ["SecureMemory"]),
        .testTarget(name: "FuzzCorpusTests", dependencies: ["FuzzTargets"]),
        .testTarget(name: "ShamirReferenceTests", dependencies: ["ShamirReference", "ShamirCore", "SecureMemory"]),
        .testTarget(name: "ScalarFieldTests", dependencies: ["ScalarField", "ShamirReference", "ShamirCore"]),
        .testTarget(
            name: "ShamirTests",
            dependencies: [
                "Shamir", "ShamirReference", "ShamirCore", "SecureMemory", "ScalarField",
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .testTarget(
            name: "ShamirVectorsTests",
            dependencies: ["ShamirVectors", "Shamir", "ShamirReference", "ShamirCore", "SecureMemory"]),
    ]
)
