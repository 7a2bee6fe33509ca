import ArgumentParser
import Foundation
import RepriseEngine
import RepriseProjection

/// `reprise migrate --review` and `--abandon`: the review of a built version before its swap.
extension MigrateCommand {
    func showReview(_ engine: RebuildEngine, _ definition: ProjectionDefinition, _ results: [RebuildResult]) async throws {
        guard let built = results.first(where: { $0.projection == definition.name }) else { return }
        let review = try await engine.reviewMigration(definition, newBuild: built.buildID)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            Terminal.output(String(decoding: try encoder.encode(review), as: UTF8.self))
            return
        }
        Terminal.output("\(review.projection): version \(review.newVersion) (build \(review.newBuild)) is built and not swapped in; the live version is \(review.oldVersion) (build \(review.oldBuild))")
        for table in review.tables {
            let old = table.oldRows.map(String.init) ?? "no table", new = table.newRows.map(String.init) ?? "table dropped"
            Terminal.output("")
            Terminal.output("table \(table.table): rows live \(old), new \(new); only in live \(table.onlyInOld), only in new \(table.onlyInNew), differing \(table.differing)")
            if !table.columnsAdded.isEmpty || !table.columnsRemoved.isEmpty {
                Terminal.output("  columns added: \(list(table.columnsAdded)); removed: \(list(table.columnsRemoved))")
            }
            if !table.sampleDiffering.isEmpty {
                Terminal.output("  differing (first \(table.sampleDiffering.count) by key):")
                for difference in table.sampleDiffering {
                    let columns = difference.columns.sorted { $0.key < $1.key }
                        .map { "\($0.key) \($0.value["old"]?.description ?? "-") -> \($0.value["new"]?.description ?? "-")" }
                    Terminal.output("    \(TraceCommand.keyText(difference.key)): " + columns.joined(separator: ", "))
                }
            }
            for (title, sample) in [("only in live", table.sampleOnlyInOld), ("only in new", table.sampleOnlyInNew)] where !sample.isEmpty {
                Terminal.output("  \(title) (first \(sample.count) by key): " + sample.map(TraceCommand.keyText).joined(separator: " "))
            }
        }
        Terminal.output("")
        Terminal.output("Swap it in with `reprise migrate \(definition.name)` (it resumes this build and catches up first), or drop it with `reprise migrate \(definition.name) --abandon`.")
    }

    func abandonBuilt(_ definition: ProjectionDefinition) async throws {
        let engine = RebuildEngine(postgresURL: try postgres.resolvedURL(), mysqlURL: try mysql.resolvedURL(), source: try eventSource.eventSource(postgres))
        guard let build = try await engine.abandonBuild(of: definition.name) else {
            throw ValidationError("\(definition.name) has no built version waiting for its swap")
        }
        Terminal.output("\(definition.name): version \(build.version) (build \(build.buildID)) abandoned; its tables are dropped; the live version is unchanged")
    }

    private func list(_ names: [String]) -> String { names.isEmpty ? "none" : names.joined(separator: ", ") }
}

extension MigrateCommand {
    func validate() throws {
        if json && !review { throw ValidationError("--json goes with --review") }
        if abandon && review { throw ValidationError("give --review or --abandon, not both") }
    }
}
