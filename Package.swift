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
        .library(name: "Router", targets: ["Router"]),
        .library(name: "Inputs", targets: ["Inputs"]),
        .library(name: "Filters", targets: ["Filters"]),
        .library(name: "Outputs", targets: ["Outputs"]),
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
        .target(name: "CRouterShims"),

        .target(
            name: "Router",
            dependencies: [
                "CYAML",
                "CRouterShims",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(name: "AMQP", dependencies: ["Router", "CRabbitMQ"], swiftSettings: strictSettings),
        .target(
            name: "Inputs",
            dependencies: ["Router", "CRouterShims", "AMQP", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "Filters",
            dependencies: [
                "Router",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "Outputs",
            dependencies: [
                "Router",
                "AMQP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "routerd",
            dependencies: [
                "Router", "Inputs", "Filters", "Outputs", "CRouterShims",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "json-differential",
            dependencies: ["Router"],
            path: "Tests/Fuzz",
            exclude: ["json_oracle.py", "README.md"],
            swiftSettings: strictSettings
        ),
        .testTarget(name: "RouterTests", dependencies: ["Router"], swiftSettings: strictSettings),
        .testTarget(
            name: "StageTests", dependencies: ["Router", "Inputs", "Filters", "Outputs", "AMQP", "CRouterShims"],
            exclude: ["Fixtures"], swiftSettings: strictSettings),
        .testTarget(name: "EndToEndTests", dependencies: ["Router", "CRouterShims"], swiftSettings: strictSettings),
    ]
)
