// swift-tools-version:6.1
import PackageDescription

// Targets, ground floor first (see README "Layout"): nothing depends upward,
// only the CLI knows every target. No target of a library product sets unsafe
// flags, so those products can be depended on (tools/shamir-consumer builds
// on Shamir); only the CLI executable has one, a release link flag.
//
// Platforms: Linux only (Glibc, prctl, mlockall); SwiftPM has no Linux entry
// for `platforms`, so none is declared rather than an Apple one that is untrue.
let package = Package(
    name: "spike-recovery",
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
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
        // The SPIFFE Workload API: gRPC over HTTP/2 on a Unix socket, framed and
        // decoded here (WorkloadAPI/GRPCWire.swift, ProtobufWire.swift).
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
    ],
    targets: [
        // C libraries from the system (libgmp-dev, libssl-dev), each behind a tiny shim header.
        .systemLibrary(name: "CGMP", path: "Sources/CGMP"),
        .systemLibrary(name: "COpenSSLCrypto", path: "Sources/COpenSSLCrypto"),
        // The few C calls Swift cannot make portably: a wipe the optimizer keeps, mlock.
        .target(name: "CSecureMemory", path: "Sources/CSecureMemory"),
        // SHA-256's compression with the x86 SHA extensions, for the Shamir chain when the CPU has them.
        .target(name: "CSHA256", path: "Sources/CSHA256"),

        .target(name: "SecureMemory", dependencies: ["CSecureMemory"]),
        .target(name: "ScalarField", dependencies: ["CSecureMemory"]),
        .target(name: "ShamirCore", dependencies: ["SecureMemory"]),
        .target(
            name: "Shamir",
            // Nothing from outside the package: its SHA-256 is its own (SHA256.swift says why).
            dependencies: ["ScalarField", "ShamirCore", "SecureMemory", "CSHA256"]),
        .target(name: "ShamirReference", dependencies: ["CGMP", "COpenSSLCrypto", "ShamirCore", "SecureMemory"]),
        .target(
            name: "SpiffeIdentity",
            dependencies: [
                "SecureMemory",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        // Strict JSON into wiping buffers, and Go-compatible JSON text (keeper wire, store rows).
        .target(name: "SecretJSON", dependencies: ["SecureMemory"]),
        // SPIKE's formats: the keeper routes' bodies and Pilot's shard files.
        .target(name: "SpikeWire", dependencies: ["SecretJSON", "SecureMemory"]),
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite"),
        .target(
            name: "BackingStore",
            dependencies: ["CSQLite", "SecureMemory", "SecretJSON", .product(name: "Crypto", package: "swift-crypto")]),
        // Writes SPIKE-format databases (tests and the demo only; recovery never writes).
        .target(
            name: "BackingStoreWriter",
            dependencies: ["BackingStore", "SecureMemory", "SecretJSON", .product(name: "Crypto", package: "swift-crypto")]),
        // Break-glass files on disk: Pilot shard files and root-key files, read and written safely.
        .target(name: "BreakGlass", dependencies: ["Shamir", "ShamirCore", "SpikeWire", "SecureMemory"]),
        .target(
            name: "MutualTLS",
            dependencies: [
                "SpiffeIdentity", "SecureMemory", "CSecureMemory",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
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
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        // The recovery machine (Spec/recovery.md steps 1-12) and step 11's distribution loop.
        .target(
            name: "Recovery",
            dependencies: [
                "Shamir", "ShamirCore", "SecureMemory", "MutualTLS", "SpiffeIdentity", "SpikeWire", "SecretJSON", "BackingStore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        // The Nexus process's HTTP side (Pilot's operator routes) and its lifecycle as a Service.
        .target(
            name: "NexusService",
            dependencies: [
                "Recovery", "MutualTLS", "SpiffeIdentity", "SpikeWire", "SecureMemory", "ShamirCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        // The X.509 messages of Spec/workload-api/workload.proto in protobuf,
        // decoded by hand so that the SVID key goes from the wire straight into
        // wiping storage (and fuzzed without a network stack).
        .target(name: "WorkloadAPIWire", dependencies: ["SecureMemory"]),
        // SVIDs from a SPIFFE Workload API endpoint (SPIRE agent), as an X509Source.
        .target(
            name: "WorkloadAPI",
            dependencies: [
                "WorkloadAPIWire", "SpiffeIdentity", "SecureMemory", "MutualTLS",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .target(name: "ShamirVectors", dependencies: ["ShamirCore", "SecureMemory", "ShamirReference"]),
        // `bench`: the field and Shamir against GMP, and the whole system (store, recoveries over loopback mTLS).
        .target(
            name: "Bench",
            dependencies: [
                "BackingStore", "BackingStoreWriter", "KeeperService", "MutualTLS", "Recovery", "SecureMemory", "Shamir",
                "ShamirCore", "ShamirReference", "ScalarField", "SpiffeIdentity",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),
        // The embedded demo: a whole deployment on loopback.
        .target(
            name: "Demo",
            dependencies: [
                "BackingStore", "BackingStoreWriter", "KeeperService", "MutualTLS", "Recovery", "SecureMemory", "Shamir",
                "ShamirCore", "SpiffeIdentity",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        // What every long-running command's process needs: log lines, the metrics
        // endpoint, ending with a parent, memory hardening notices.
        .target(
            name: "ProcessSupport",
            dependencies: [
                "SecureMemory",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        // Parses flags and settings, wires the targets together; no logic of its own.
        .executableTarget(
            name: "spike-recovery",
            dependencies: [
                "Shamir", "ShamirReference", "ShamirVectors", "ShamirCore", "SecureMemory", "ScalarField",
                "SpiffeIdentity", "MutualTLS", "KeeperService", "SpikeWire", "Recovery", "BackingStore",
                "WorkloadAPI", "NexusService", "BreakGlass", "Demo", "Bench", "ProcessSupport",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            // --static-swift-stdlib's link line exports every symbol (-export-dynamic):
            // about 35,000 dynamic symbols, which the loader's look-ups and each dladdr
            // walk at every process start. Nothing looks our symbols up at run time,
            // so the release binary exports none (README, Start-up).
            linkerSettings: [.unsafeFlags(["-Xlinker", "--no-export-dynamic"], .when(configuration: .release))]),

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
        .target(name: "FuzzTargets", dependencies: ["SpikeWire", "SecretJSON", "SpiffeIdentity", "ShamirVectors", "SecureMemory", "WorkloadAPIWire"]),
        .executableTarget(name: "spike-fuzz", dependencies: ["FuzzTargets"]),
        // Run under valgrind by tools/ct-check, always from a release build (the code as it ships).
        .executableTarget(name: "ct-harness", dependencies: ["Shamir", "ScalarField", "SecureMemory", "ShamirCore", "SpikeWire", "SecretJSON"]),

        // Helpers every test target shares: child processes off the cooperative
        // pool, loopback ports from one ledger, test keys.
        .target(
            name: "TestSupport",
            dependencies: [
                "SecureMemory", "Shamir", "MutualTLS",
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            path: "Tests/TestSupport"),

        .testTarget(
            name: "SpiffeIdentityTests",
            dependencies: [
                "SpiffeIdentity", "TestSupport", .product(name: "X509", package: "swift-certificates"), .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        .testTarget(
            name: "MutualTLSTests",
            dependencies: [
                "TestSupport", "MutualTLS", "SpiffeIdentity", "SecureMemory",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
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
            dependencies: ["BackingStore", "BackingStoreWriter", "SecureMemory", "TestSupport", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(
            name: "RecoveryTests",
            dependencies: [
                "TestSupport", "Recovery", "KeeperService", "MutualTLS", "SpiffeIdentity", "SpikeWire", "SecureMemory", "Shamir", "ShamirCore",
                "BackingStore", "BackingStoreWriter",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),
        .testTarget(
            name: "WorkloadAPITests",
            dependencies: [
                "TestSupport", "WorkloadAPI", "WorkloadAPIWire", "SpiffeIdentity", "MutualTLS", "SecureMemory",
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),
        .testTarget(
            name: "CLITests",
            dependencies: [
                "TestSupport", "BackingStoreWriter", "KeeperService", "SecureMemory", "Shamir", "SpiffeIdentity", "WorkloadAPI",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),
        .testTarget(name: "SecureMemoryTests", dependencies: ["SecureMemory"]),
        .testTarget(name: "SecretJSONTests", dependencies: ["SecretJSON", "SecureMemory"]),
        .testTarget(name: "SpikeWireTests", dependencies: ["SpikeWire", "SecretJSON", "SecureMemory"]),
        .testTarget(name: "ShamirCoreTests", dependencies: ["ShamirCore", "SecureMemory"]),
        .testTarget(
            name: "BackingStoreWriterTests",
            dependencies: ["BackingStoreWriter", "BackingStore", "SecureMemory", "CSQLite"]),
        .testTarget(name: "BreakGlassTests", dependencies: ["BreakGlass", "Shamir", "ShamirCore", "SpikeWire", "SecureMemory", "TestSupport"]),
        .testTarget(
            name: "ProcessSupportTests",
            dependencies: ["ProcessSupport", "TestSupport", .product(name: "Logging", package: "swift-log")]),
        .testTarget(
            name: "NexusServiceTests",
            dependencies: [
                "NexusService", "Recovery", "SecureMemory", "SpiffeIdentity", "SpikeWire", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        .testTarget(name: "DemoTests", dependencies: ["Demo", "BackingStore", "SecureMemory", "Shamir", "TestSupport"]),
        .testTarget(name: "BenchTests", dependencies: ["Bench"]),
        .testTarget(name: "FuzzCorpusTests", dependencies: ["FuzzTargets"]),
        .testTarget(name: "ShamirReferenceTests", dependencies: ["TestSupport", "ShamirReference", "ShamirCore", "SecureMemory"]),
        .testTarget(name: "ScalarFieldTests", dependencies: ["ScalarField", "ShamirReference", "ShamirCore", "TestSupport"]),
        .testTarget(
            name: "ShamirTests",
            dependencies: [
                "TestSupport", "Shamir", "ShamirReference", "ShamirCore", "SecureMemory", "ScalarField",
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .testTarget(
            name: "ShamirVectorsTests",
            dependencies: ["ShamirVectors", "Shamir", "ShamirReference", "ShamirCore", "SecureMemory"]),
    ]
)
