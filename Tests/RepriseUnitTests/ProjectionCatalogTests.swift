import Foundation
import Testing
@testable import RepriseCommandLine

/// Swift projections registered with `Reprise.main(projections:)` sit beside the projection files.
@Suite("Projection catalog: files and Swift projections")
struct ProjectionCatalogTests {
    struct Counter: Projection {
        let definition: ProjectionDefinition
        init(name: String) {
            definition = ProjectionDefinition(
                name: name, version: 1,
                tables: [TableDefinition(name: name, columns: [ColumnDefinition(name: "id", type: .bigint, nullable: false)], primaryKey: ["id"])],
                handlers: ["OrderCreated": []], definitionHash: "\(name)-1")
        }
        func handle(_ event: ProjectionEvent, rows: ProjectionRows) async throws {}
    }

    static let samples: String = {
        var path = #filePath.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        path.removeLast(3)
        return path.joined(separator: "/") + "/projections"
    }()

    @Test func aSwiftProjectionIsFoundByNameBesideTheFiles() throws {
        let catalog = try ProjectionCatalog.load(directory: Self.samples, code: [Counter(name: "order_counts_swift")])
        let names = catalog.all.map(\.definition.name)
        let files = try ProjectionFileParser.loadDirectory(Self.samples).map(\.name)
        #expect(files.contains("order_summary"))
        #expect(names == (files + ["order_counts_swift"]).sorted())
        guard case .code = try catalog.projection(named: "order_counts_swift") else {
            Issue.record("the Swift projection was not found as code")
            return
        }
        guard case .file = try catalog.projection(named: "order_summary") else {
            Issue.record("the file projection was not found as a file")
            return
        }
    }

    @Test func aSwiftProjectionNamedLikeAFileIsRefused() {
        #expect {
            try ProjectionCatalog.load(directory: Self.samples, code: [Counter(name: "order_summary")])
        } throws: { error in
            "\(error)".contains("order_summary") && "\(error)".contains("order_summary.yml") && "\(error)".contains("Counter")
        }
        #expect(throws: (any Error).self) {
            try ProjectionCatalog.load(directory: Self.samples, code: [Counter(name: "twice"), Counter(name: "twice")])
        }
    }

    @Test func onlySwiftProjectionsNeedNoProjectionsFolder() throws {
        let catalog = try ProjectionCatalog.load(directory: "/nonexistent-\(UUID().uuidString)", code: [Counter(name: "alone")])
        #expect(catalog.all.map(\.definition.name) == ["alone"])
        #expect(throws: (any Error).self) { try ProjectionCatalog.load(directory: "/nonexistent-\(UUID().uuidString)", code: []) }
    }
}
