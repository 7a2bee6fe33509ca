// swift-tools-version: 6.2
import PackageDescription

// A team's own `reprise`: the whole command line of Reprise plus one projection written in Swift
// (docs/library.md). Built and run on demo data by Tests/RepriseIntegrationTests/LibraryExampleTests.swift.
let package = Package(
    name: "SwiftProjection",
    dependencies: [
        // A team writes .package(url: "https://github.com/<org>/reprise", from: "<version>").
        .package(name: "Reprise", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "ShopReprise",
            dependencies: [.product(name: "Reprise", package: "Reprise")],
            swiftSettings: [.swiftLanguageMode(.v6)]),
    ]
)
