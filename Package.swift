// swift-tools-version:6.0
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "routerd",
    platforms: [.macOS(.v15)],
    products: [
        // Everything below, in one import: the stage API, config loading, the graph check and the runtime.
        .library(name: "Router", targets: ["Router"]),
        .library(name: "RouterCore", targets: ["RouterCore"]),
        .library(name: "RouterConfig", targets: ["RouterConfig"]),
        .library(name: "RouterGraph", targets: ["RouterGraph"]),
        .library(name: "RouterRuntime", targets: ["RouterRuntime"]),
        // Stage kinds: the light ones, then each that brings a heavy dependency, in a product of its own.
        .library(name: "Inputs", targets: ["Inputs"]),
        .library(name: "Filters", targets: ["Filters"]),
        .library(name: "Outputs", targets: ["Outputs"]),
        .library(name: "RouterHTTPStats", targets: ["RouterHTTPStats"]),
        .library(name: "RouterAMQP", targets: ["RouterAMQP"]),
        .library(name: "RouterPostgres", targets: ["RouterPostgres"]),
        .executable(name: "routerd", targets: ["routerd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        .systemLibrary(
            name: "CYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]
        ),
        .systemLibrary(
            name: "CRabbitMQ",
            pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"])]
        ),
        // PCRE2 for the regular expressions of `route` and `modify` (README: "Regular expressions").
        .systemLibrary(
            name: "CPCRE2",
            pkgConfig: "libpcre2-8",
            providers: [.apt(["libpcre2-dev"])]
        ),
        .target(name: "CRouterShims"),
        // TLS for the amqp stages and the TLS diagnostics of both client stages, over the system's OpenSSL (the one
        // Debian's rabbitmq-c uses; libssl-dev comes with librabbitmq-dev).
        .target(name: "CRouterTLS", linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]),

        // Helpers the modules share that are not the library's API (clocks, JSON text, UTF-8 scanning, threads).
        .target(name: "RouterSupport", dependencies: ["CRouterShims"], swiftSettings: strictSettings),
        // Events, batches, the stage protocols, option declarations, counters, the registry.
        .target(
            name: "RouterCore",
            dependencies: [
                "RouterSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        // YAML to positioned nodes, interpolation, diagnostics.
        .target(
            name: "RouterConfig", dependencies: ["RouterCore", "RouterSupport", "CYAML"], swiftSettings: strictSettings),
        // The graph check: a config and a registry to a checked plan; the stage reference.
        .target(
            name: "RouterGraph", dependencies: ["RouterCore", "RouterConfig", "RouterSupport"],
            swiftSettings: strictSettings),
        // The running graph, the output driver and the service.
        .target(
            name: "RouterRuntime",
            dependencies: [
                "RouterCore", "RouterConfig", "RouterGraph", "RouterSupport", "CRouterShims",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "Router", dependencies: ["RouterCore", "RouterConfig", "RouterGraph", "RouterRuntime"],
            swiftSettings: strictSettings),
        .target(
            name: "Inputs",
            dependencies: [
                "RouterCore", "RouterSupport", "CRouterShims", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "Filters",
            dependencies: [
                "RouterCore", "RouterSupport", "CPCRE2",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "Outputs",
            dependencies: ["RouterCore", "RouterSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "RouterHTTPStats",
            dependencies: [
                "RouterCore", "RouterSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "RouterAMQP",
            dependencies: [
                "RouterCore", "RouterSupport", "CRabbitMQ", "CRouterTLS",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "RouterPostgres",
            dependencies: [
                "RouterCore", "RouterSupport", "CRouterTLS",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "routerd",
            dependencies: [
                "Router", "RouterRuntime", "RouterSupport", "Inputs", "Filters", "Outputs", "RouterHTTPStats",
                "RouterAMQP",
                "RouterPostgres", "CRouterShims",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: strictSettings
        ),
        // The filters of a config, in-process, per entry (README, "Benchmarks").
        .executableTarget(
            name: "filter-bench",
            dependencies: [
                "Router", "Inputs", "Filters", "Outputs", "RouterHTTPStats", "RouterAMQP", "RouterPostgres",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/FilterBench",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "json-differential",
            dependencies: ["RouterCore", "RouterSupport"],
            path: "Tests/Fuzz",
            exclude: ["json_oracle.py", "README.md"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "RouterTests", dependencies: ["Router", "RouterRuntime", "RouterSupport", "CRouterShims"],
            swiftSettings: strictSettings),
        // The compliance run every registered stage kind gets, shared by the unit and the server tests.
        .target(
            name: "StageTestKit",
            dependencies: [
                "Router", "RouterSupport", "Inputs", "Filters", "Outputs", "RouterHTTPStats", "RouterAMQP",
                "RouterPostgres", .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/StageTestKit", swiftSettings: strictSettings),
        .testTarget(
            name: "StageTests",
            dependencies: [
                "Router", "RouterSupport", "StageTestKit", "Inputs", "Filters", "Outputs", "RouterHTTPStats",
                "RouterAMQP", "RouterPostgres", "CRouterShims",
            ],
            exclude: ["Fixtures"], swiftSettings: strictSettings),
        // Tests that need the live RabbitMQ and PostgreSQL `make test` starts; the others run without servers.
        .testTarget(
            name: "ServerTests",
            dependencies: [
                "Router", "StageTestKit", "Inputs", "Filters", "Outputs", "RouterHTTPStats", "RouterAMQP",
                "RouterPostgres",
            ],
            swiftSettings: strictSettings),
        .testTarget(
            name: "EndToEndTests", dependencies: ["Router", "RouterSupport", "CRouterShims"],
            swiftSettings: strictSettings),
    ]
)
