// swift-tools-version:6.1
import PackageDescription

/// Strata: a pipeline-parallel inference cluster for Llama-architecture models.
///
/// Targets follow the design: `StrataModel` (GGUF, tensors, the decoder, tokenizer, sampling),
/// `StrataWire` (the binary protocol, depends on nothing of ours), `StrataIdentity` (what both
/// sides of a link say about themselves), `StrataWorker`, `StrataCoordinator` (neither depends
/// on the other), the `QuantKernels` C target for hot quantized kernels with run-time
/// CPU-feature dispatch, and the `strata` command.
let optimize: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release))]

let package = Package(
    name: "Strata",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "strata", targets: ["strata"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: ["FullFoundation"]),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        .target(
            name: "QuantKernels",
            path: "Sources/QuantKernels",
            cSettings: [.unsafeFlags(["-O3", "-fno-math-errno"])]
        ),
        .target(
            name: "StrataModel",
            dependencies: ["QuantKernels", .product(name: "Crypto", package: "swift-crypto")],
            path: "Sources/Model",
            swiftSettings: optimize
        ),
        .target(name: "StrataWire", path: "Sources/Wire", swiftSettings: optimize),
        // Who a process is, for both sides of every link: the application's version (and, with
        // encrypted links, the keys a process is known by).
        .target(name: "StrataIdentity", path: "Sources/Identity"),
        // libzmq from Debian's libzmq3-dev, through a shim header.
        .systemLibrary(name: "CZeroMQ", path: "Sources/CZeroMQ", pkgConfig: "libzmq", providers: [.apt(["libzmq3-dev"])]),
        .target(name: "ZeroMQ", dependencies: ["CZeroMQ"], path: "Sources/ZeroMQ"),
        .target(
            name: "StrataWorker",
            dependencies: ["StrataModel", "StrataWire", "StrataIdentity", "ZeroMQ", .product(name: "Logging", package: "swift-log")],
            path: "Sources/Worker",
            swiftSettings: optimize
        ),
        .target(
            name: "StrataCoordinator",
            dependencies: [
                "StrataModel", "StrataWire", "StrataIdentity", "ZeroMQ",
                .product(name: "Logging", package: "swift-log"), .product(name: "Metrics", package: "swift-metrics"),
            ],
            path: "Sources/Coordinator",
            swiftSettings: optimize
        ),
        // The HTTP API's request and response bodies, shared by the server and the client.
        .target(name: "StrataAPI", path: "Sources/API"),
        // The OpenAI-compatible HTTP API on the coordinator (HTTPS with a certificate), with its
    // Prometheus metrics.
        .target(
            name: "StrataServer",
            dependencies: [
                "StrataModel", "StrataCoordinator", "StrataAPI",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "Sources/Server"
        ),
        .executableTarget(
            name: "strata",
            dependencies: [
                "StrataModel", "StrataWorker", "StrataCoordinator", "StrataServer", "StrataAPI", "StrataWire", "StrataIdentity", "QuantKernels",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            path: "Sources/strata",
            swiftSettings: optimize
        ),
        .target(name: "TestSupport", dependencies: ["StrataModel", "ZeroMQ"], path: "Tests/Support"),
        .testTarget(name: "ServerTests", dependencies: ["strata", "StrataAPI", "TestSupport"], path: "Tests/ServerTests",
                    exclude: ["openai_client.py"]),
        .testTarget(name: "ModelTests", dependencies: ["StrataModel", "TestSupport", .product(name: "Crypto", package: "swift-crypto")],
                    path: "Tests/ModelTests"),
        .testTarget(name: "WireTests", dependencies: ["StrataWire", "TestSupport"], path: "Tests/WireTests"),
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ"], path: "Tests/ZeroMQTests"),
        .testTarget(name: "CLITests", dependencies: ["strata", "TestSupport"], path: "Tests/CLITests"),
        .testTarget(
            name: "ClusterTests",
            dependencies: ["strata", "StrataCoordinator", "StrataWorker", "StrataWire", "ZeroMQ", "TestSupport"],
            path: "Tests/ClusterTests"
        ),
    ]
)
