// swift-tools-version: 6.2
import PackageDescription

// Reprise: projection rebuild and replay engine.
// Layering (lowest first): C system libraries -> one safe wrapper module per server ->
// event store / demo domain -> engine -> live half -> command line library -> `reprise` executable.
// Only the wrapper modules (ReprisePostgres, RepriseMySQL, RepriseAMQP) import the C modules.
// Every module a target imports is listed in its dependencies.
//
// Tools version 6.2: the wrappers use `isolated deinit` (SE-0371, Swift 6.2).
// Platforms: Linux only (Glibc, /proc, libpq/libmysqlclient/librabbitmq through pkg-config); it
// is built and tested nowhere else, so no Apple platform is declared and RepriseSupport stops a
// build on another system with a message (Platform.swift).
let strictSwift: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "Reprise",
    products: [
        .executable(name: "reprise", targets: ["RepriseCLI"]),
        // The whole command line as a library: a team's own package builds its own `reprise`
        // with its Swift projections registered (`Reprise.main(projections: [...])`, docs/library.md).
        .library(name: "Reprise", targets: ["RepriseCommandLine"]),
        .library(name: "RepriseEventStore", targets: ["RepriseEventStore"]),
        // Benchmarks (`bench-naive`, `bench-live`), kept out of the production binary.
        .executable(name: "reprise-bench", targets: ["RepriseBench"]),
        // Test-only: the `reprise` command line with the REPRISE_FAULT hooks installed.
        .executable(name: "reprise-fault-injection", targets: ["RepriseFaultInjection"]),
    ],
    // The HTTP endpoints (/metrics, /health, /status, `reprise dashboard`) bring in Hummingbird and
    // SwiftNIO, about two thirds of a cold release build. They are on by default; scripts/demo and
    // library users who do not serve HTTP build without them (`--disable-default-traits`).
    traits: [
        .trait(name: "HTTP", description: "HTTP endpoints of the workers and `reprise dashboard` (Hummingbird, SwiftNIO)"),
        .default(enabledTraits: ["HTTP"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // Logs, metrics, service lifecycle and the HTTP endpoint of the long-running commands (docs/observability.md).
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        // C libraries, found through pkg-config. Each has a shim header with `static inline`
        // helpers for what Swift cannot call directly (variadics, header differences).
        .systemLibrary(
            name: "CLibPQ", pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]),
        .systemLibrary(
            name: "CMariaDB", pkgConfig: "mysqlclient",
            providers: [.apt(["default-libmysqlclient-dev"])]),
        .systemLibrary(
            name: "CRabbitMQ", pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"])]),
        // glibc's <malloc.h> (part of libc: nothing to link).
        .systemLibrary(name: "CMalloc"),
        // jemalloc, linked into `reprise` and `reprise-bench` only, where it serves all of malloc:
        // measured faster and smaller than glibc's malloc on rebuilds (docs/throughput-allocator.md).
        // The libraries find it at run time (MemoryRelease) and keep working without it. Not in
        // `reprise-fault-injection`: the test binary links that one, and keeps glibc's malloc.
        .systemLibrary(
            name: "CJemalloc", pkgConfig: "jemalloc",
            providers: [.apt(["libjemalloc-dev"])]),

        // Pure Swift helpers shared by the wrappers: connection URLs, secret redaction,
        // the serial executor that keeps blocking C calls off the cooperative pool.
        .target(name: "RepriseSupport", dependencies: ["CMalloc"], swiftSettings: strictSwift),
        // swift-log handlers the executable bootstraps (text on a terminal, JSON lines elsewhere),
        // both passing every message and metadata value through the secret redactor.
        .target(
            name: "RepriseLogging",
            dependencies: ["RepriseSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSwift),

        // Safe wrappers: the only modules that touch C pointers.
        .target(name: "ReprisePostgres", dependencies: ["CLibPQ", "RepriseSupport"], swiftSettings: strictSwift),
        .target(name: "RepriseMySQL", dependencies: ["CMariaDB", "RepriseSupport"], swiftSettings: strictSwift),
        .target(name: "RepriseAMQP", dependencies: ["CRabbitMQ", "RepriseSupport"], swiftSettings: strictSwift),

        // The PostgreSQL event store and outbox: schema, append with optimistic concurrency.
        .target(name: "RepriseEventStore", dependencies: ["ReprisePostgres"], swiftSettings: strictSwift),
        // Source mappings: how to read an event store table (Reprise's own, a library's, a custom one).
        .target(
            name: "RepriseEventSource",
            dependencies: ["ReprisePostgres", "RepriseEventStore", .product(name: "Yams", package: "Yams")],
            swiftSettings: strictSwift),
        // Projections as data: the model, the YAML file format and its validation, expressions.
        .target(
            name: "RepriseProjection",
            dependencies: ["RepriseSupport", .product(name: "Yams", package: "Yams")],
            swiftSettings: strictSwift),
        // The engine: chunks, handlers, checkpoints, rounds, swap. Free of C imports.
        .target(
            name: "RepriseEngine",
            dependencies: ["RepriseProjection", "ReprisePostgres", "RepriseMySQL", "RepriseEventStore", "RepriseEventSource", "RepriseSupport"],
            swiftSettings: strictSwift),
        // The live half: outbox relay and live projection worker (RabbitMQ on top of the engine).
        .target(
            name: "RepriseLive",
            dependencies: [
                "RepriseEngine", "RepriseAMQP", "ReprisePostgres", "RepriseMySQL", "RepriseEventStore", "RepriseEventSource",
                "RepriseProjection", "RepriseSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift),
        // The HTTP endpoint (Hummingbird): /metrics (Prometheus), /health, /status, the dashboard.
        // The only module that brings SwiftNIO in; the wrappers, the engine and RepriseLive stay free of it.
        .target(
            name: "RepriseHTTP",
            dependencies: [
                "RepriseEngine", "RepriseLive", "RepriseSupport", "ReprisePostgres", "RepriseMySQL", "RepriseEventSource", "RepriseProjection",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift),
        // The e-commerce demo domain: commands, events and a deterministic history generator.
        .target(name: "RepriseDemo", dependencies: ["RepriseEventStore", "ReprisePostgres", "RepriseSupport"], swiftSettings: strictSwift),

        // Every `reprise` command, as a library: `Reprise.main(projections:)` is the entry point of
        // the `reprise` executable and of a team's own (docs/library.md).
        .target(
            name: "RepriseCommandLine",
            dependencies: [
                "RepriseSupport", "ReprisePostgres", "RepriseMySQL", "RepriseAMQP",
                "RepriseEventStore", "RepriseEventSource", "RepriseDemo", "RepriseProjection", "RepriseEngine", "RepriseLive",
                .target(name: "RepriseHTTP", condition: .when(traits: ["HTTP"])), "RepriseLogging",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strictSwift),
        .executableTarget(name: "RepriseCLI", dependencies: ["RepriseCommandLine", "CJemalloc"], swiftSettings: strictSwift),
        .executableTarget(
            name: "RepriseBench",
            dependencies: [
                "RepriseCommandLine", "ReprisePostgres", "RepriseMySQL", "RepriseAMQP", "RepriseEventStore", "RepriseProjection",
                "RepriseEngine", "RepriseLive", "RepriseSupport", "CJemalloc",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSwift),
        .executableTarget(
            name: "RepriseFaultInjection", dependencies: ["RepriseCommandLine", "RepriseEngine"], swiftSettings: strictSwift),

        .testTarget(name: "RepriseProjectionTests", dependencies: ["RepriseProjection", "RepriseSupport"], swiftSettings: strictSwift),
        .testTarget(
            name: "RepriseUnitTests",
            dependencies: [
                "RepriseSupport", "RepriseDemo", "RepriseEngine", "RepriseProjection", "RepriseEventSource", "RepriseEventStore",
                "ReprisePostgres", "RepriseMySQL", "RepriseLive", "RepriseCommandLine", "RepriseLogging",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strictSwift),
        .testTarget(
            name: "RepriseIntegrationTests",
            dependencies: [
                "RepriseSupport", "ReprisePostgres", "RepriseMySQL", "RepriseAMQP", "RepriseEventStore", "RepriseEventSource", "RepriseDemo",
                "RepriseProjection", "RepriseEngine", "RepriseLive", "RepriseHTTP",
                // Crash tests run this binary (RebuildEnvironment.repriseBinary()): built with the tests.
                "RepriseFaultInjection",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift),
    ]
)
