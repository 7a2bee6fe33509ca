// swift-tools-version: 6.2
import PackageDescription

// A team's own `reprise`: the whole command line of Reprise plus one projection written in Swift
// (docs/library.md). Built and run on demo data by Tests/RepriseIntegrationTests/LibraryExampleTests.swift.
let package = Package(
    name: "SwiftProjection",
    dependencies: [
        // A team writes .package(url: "https://github.com/<org>/reprise", from: "<version>").
        // Without the HTTP trait: this team serves no /metrics or dashboard from it, so SwiftNIO
        // is not built (traits: ["HTTP"] or leaving the argument out keeps them).
        .package(name: "Reprise", path: "../..", traits: []),
    ],
    targets: [
        .executableTarget(
            name: "ShopReprise",
            dependencies: [.product(name: "Reprise", package: "Reprise")],
            swiftSettings: [.swiftLanguageMode(.v6)]),
    ]
)
