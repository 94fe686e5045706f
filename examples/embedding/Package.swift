// swift-tools-version:6.0
import Foundation
import PackageDescription

// routerd is this repository, two folders up; SwiftPM names a path dependency after its folder.
let routerd = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..")
    .standardizedFileURL.lastPathComponent

let package = Package(
    name: "embedding",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: "../..")],
    targets: [
        .executableTarget(
            name: "embedded-router",
            dependencies: [
                // The router and the light stage kinds only: no Hummingbird, PostgresNIO or rabbitmq-c.
                .product(name: "Router", package: routerd),
                .product(name: "Inputs", package: routerd),
                .product(name: "Filters", package: routerd),
                .product(name: "Outputs", package: routerd),
            ]
        )
    ]
)
