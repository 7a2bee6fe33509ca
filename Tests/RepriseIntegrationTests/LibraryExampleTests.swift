import Foundation
import Testing

/// Reprise as a Swift library (docs/library.md): the example package under
/// Examples/SwiftProjection depends on this package by path, registers a Swift projection with
/// `Reprise.main(projections:)`, and its own binary runs the whole command line.
@Suite("Library example package (real servers)")
struct LibraryExampleTests {
    @Test func theExamplePackageBuildsAndItsSwiftProjectionEqualsTheFileProjection() async throws {
        let root = RebuildEnvironment.repositoryRoot()
        // Its own scratch path: the outer `swift test` holds .build. Dependencies resolve from the
        // same git URLs as this package (offline from the package mirror).
        let build = try await runToEnd(
            "/usr/bin/env",
            ["swift", "build", "--package-path", root + "/Examples/SwiftProjection", "--scratch-path", root + "/.build-example"])
        try #require(build.status == 0, "swift build of Examples/SwiftProjection failed:\n\(build.standardOutput.suffix(4_000))\n\(build.standardError.suffix(4_000))")
        let binary = root + "/.build-example/debug/ShopReprise"

        let environment = try await RebuildEnvironment.make()
        do {
            try await environment.seed(events: 3_000, seed: 41)
            // The example's binary knows the projection files and its Swift projection side by side.
            let rebuild = try await runToEnd(
                binary,
                ["rebuild", "customer_stats", "customer_stats_swift", "--projections-dir", root + "/projections",
                 "--store-schema", environment.storeSchema.schema, "--chunk-size", "700", "--quiet"],
                environment: environment.processVariables)
            try #require(rebuild.status == 0, "rebuild with the example binary failed: \(rebuild.standardError)")
            let fromFile = try await environment.rows("customer_stats")
            let fromSwift = try await environment.rows("customer_stats_swift")
            #expect(fromFile.count > 10)
            #expect(fromSwift.count == fromFile.count)
            for (swiftRow, fileRow) in zip(fromSwift, fromFile) {
                #expect(swiftRow == fileRow)
            }
            // `status` sees the Swift projection beside the files.
            let status = try await runToEnd(
                binary, ["status", "--projections-dir", root + "/projections", "--store-schema", environment.storeSchema.schema],
                environment: environment.processVariables)
            #expect(status.status == 0 && status.standardOutput.contains("customer_stats_swift"), "\(status.standardError)")
            // The example depends on Reprise without the HTTP trait: no SwiftNIO in it, and what
            // needs the endpoints says so instead of failing obscurely.
            let dashboard = try await runToEnd(binary, ["dashboard"], environment: environment.processVariables)
            #expect(dashboard.status == 1)
            #expect(dashboard.standardError.contains("reprise dashboard needs the HTTP endpoints"), "\(dashboard.standardError)")
        } catch {
            await environment.tearDown()
            throw error
        }
        await environment.tearDown()
    }

    /// Runs a program to its end without blocking a thread of the cooperative pool (a nested
    /// `swift build` takes minutes); output goes through files, so no pipe can fill up.
    private func runToEnd(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:]) async throws -> ProcessOutcome {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("reprise-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let outURL = folder.appendingPathComponent("out"), errURL = folder.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
        process.currentDirectoryURL = URL(fileURLWithPath: RebuildEnvironment.repositoryRoot())
        process.standardOutput = out
        process.standardError = err
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
            }
        }
        try out.close()
        try err.close()
        return ProcessOutcome(
            status: status, signal: process.terminationReason == .uncaughtSignal ? status : nil,
            standardOutput: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
            standardError: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
    }
}
