import Foundation
import ArgumentParser
import RepriseEventSource
import Yams

/// A job in `jobs/`: what to run (rebuild, live, relay, migrate), on which projections, with
/// which settings, and which environment variables hold the connection URLs (never the URLs).
///
/// ```yaml
/// job: nightly-rebuild
/// run: rebuild
/// projections: all              # or [order_summary, customer_stats]
/// settings: { chunk_size: 5000, keep_retired: 2 }
/// connections: { postgres: REPRISE_POSTGRES_URL, mysql: REPRISE_MYSQL_URL }
/// ```
/// A relay job names its outbox with `outbox: outbox_events` (a preset), `settings.outbox` (a
/// preset or mapping file), or an inline mapping under `outbox:`.
struct JobFile {
    enum Kind: String, CaseIterable {
        case rebuild, live, relay, migrate
    }

    var name: String
    var kind: Kind
    var projections: [String]?  // nil: all
    var settings: [(String, String)]
    var connections: [String: String]
    /// An inline source mapping (`source:` as a mapping), checked at load, passed on as YAML.
    var inlineSource: String?
    /// An inline outbox mapping (`outbox:` as a mapping, relay jobs), checked at load, passed on as YAML.
    var inlineOutbox: String?

    /// The settings each kind accepts: the command's own options, in snake_case.
    static let allowedSettings: [Kind: Set<String>] = [
        .rebuild: buildTuning.union(["partitions", "join", "lease_seconds", "projections_dir", "store_schema", "events_table", "outbox_table", "restart", "no_swap", "source"]),
        .migrate: buildTuning.union(["projections_dir", "store_schema", "events_table", "outbox_table", "source"]),
        .live: ["source", "partitions", "max_partitions", "worker", "lease_seconds", "chunk_size", "batch_window_ms", "poll_ms", "on_poison", "queue", "exchange", "projections_dir", "store_schema", "events_table", "outbox_table", "metrics_port", "metrics_host"],
        .relay: ["outbox", "shares", "max_shares", "transient_messages", "batch_size", "poll_seconds", "retention_hours", "exchange", "store_schema", "events_table", "outbox_table", "metrics_port", "metrics_host"],
    ]
    /// `BuildTuningOptions`: the chunk, cache and index settings of rebuild and migrate jobs.
    static let buildTuning: Set<String> = [
        "chunk_size", "flush_mib", "flush_seconds", "no_bulk_load", "no_merge_tables", "read_ahead", "fetch_size", "row_cache_mib", "row_cache_limit",
        "index_builds", "keep_retired",
    ]
    static let flagSettings: Set<String> = ["no_bulk_load", "no_merge_tables", "read_ahead", "restart", "no_swap", "transient_messages"]

    struct Problem: Error, CustomStringConvertible {
        let description: String
    }

    static func load(path: String) throws -> JobFile {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw Problem(description: "cannot read job file \(path)")
        }
        let document: Any?
        do {
            document = try Yams.load(yaml: text)
        } catch {
            throw Problem(description: "\(path): not valid YAML: \(error)")
        }
        guard let root = document as? [String: Any] else { throw Problem(description: "\(path): a job file is a mapping (job, run, projections, settings, connections)") }
        let known: Set<String> = ["job", "run", "projections", "settings", "connections", "description", "source", "outbox"]
        if let unknown = root.keys.first(where: { !known.contains($0) }) {
            throw Problem(description: "\(path): unknown key '\(unknown)' (known: \(known.sorted().joined(separator: ", ")))")
        }
        guard let name = root["job"] as? String, name.range(of: "^[a-z][a-z0-9_-]{0,62}$", options: .regularExpression) != nil else {
            throw Problem(description: "\(path): job: a name of lowercase letters, digits, '-' and '_' is required")
        }
        guard let kindText = root["run"] as? String, let kind = Kind(rawValue: kindText) else {
            throw Problem(description: "\(path): run: one of \(Kind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var projections: [String]?
        switch root["projections"] {
        case let all as String where all == "all": projections = nil
        case let list as [String] where !list.isEmpty: projections = list
        case nil where kind == .relay: projections = []
        default:
            guard kind == .relay else { throw Problem(description: "\(path): projections: `all` or a list of projection names") }
            projections = []
        }
        if kind == .migrate && (projections?.count ?? 0) != 1 {
            throw Problem(description: "\(path): a migrate job names exactly one projection")
        }
        var settings: [(String, String)] = []
        if let raw = root["settings"] {
            guard let map = raw as? [String: Any] else { throw Problem(description: "\(path): settings: a mapping") }
            for (key, value) in map.sorted(by: { $0.key < $1.key }) {
                guard allowedSettings[kind, default: []].contains(key) else {
                    throw Problem(description: "\(path): settings.\(key): not a setting of a \(kind.rawValue) job (allowed: \(allowedSettings[kind, default: []].sorted().joined(separator: ", ")))")
                }
                settings.append((key, "\(value)"))
            }
        }
        var connections: [String: String] = [:]
        if let raw = root["connections"] {
            guard let map = raw as? [String: String] else { throw Problem(description: "\(path): connections: a mapping of server to environment variable name") }
            for (server, variable) in map {
                guard ["postgres", "mysql", "amqp"].contains(server) else {
                    throw Problem(description: "\(path): connections.\(server): one of postgres, mysql, amqp")
                }
                // Secrets stay out of job files: only the name of the variable that holds the URL.
                guard variable.range(of: "^[A-Z_][A-Z0-9_]*$", options: .regularExpression) != nil else {
                    throw Problem(description: "\(path): connections.\(server): give the name of an environment variable (like REPRISE_POSTGRES_URL), never a URL or password")
                }
                connections[server] = variable
            }
        }
        var inlineSource: String?
        if let raw = root["source"] {
            guard kind != .relay else { throw Problem(description: "\(path): source: a relay reads Reprise's own outbox; source mappings are for rebuild, migrate and live") }
            guard let map = raw as? [String: Any] else {
                throw Problem(description: "\(path): source: an inline source mapping (for a preset or a file, use settings.source)")
            }
            if settings.contains(where: { $0.0 == "source" }) { throw Problem(description: "\(path): source: give settings.source or an inline source:, not both") }
            do {
                _ = try EventSourceFile.parse(map, path: "\(path): source")
                inlineSource = try Yams.dump(object: map)
            } catch let error as EventSourceError {
                throw Problem(description: error.description)
            }
        }
        var inlineOutbox: String?
        if let raw = root["outbox"] {
            guard kind == .relay else { throw Problem(description: "\(path): outbox: only a relay job publishes an outbox") }
            if let preset = raw as? String {
                if settings.contains(where: { $0.0 == "outbox" }) { throw Problem(description: "\(path): outbox: give settings.outbox or outbox:, not both") }
                settings.append(("outbox", preset))
            } else {
                guard let map = raw as? [String: Any] else { throw Problem(description: "\(path): outbox: a preset name or an inline outbox mapping") }
                if settings.contains(where: { $0.0 == "outbox" }) { throw Problem(description: "\(path): outbox: give settings.outbox or outbox:, not both") }
                do {
                    _ = try OutboxMappingFile.parse(map, path: "\(path): outbox")
                    inlineOutbox = try Yams.dump(object: map)
                } catch let error as EventSourceError {
                    throw Problem(description: error.description)
                }
            }
        }
        return JobFile(
            name: name, kind: kind, projections: projections, settings: settings, connections: connections, inlineSource: inlineSource,
            inlineOutbox: inlineOutbox)
    }

    /// The command line this job stands for, with URLs read from the environment.
    func arguments(environment: (String) -> String?) throws -> [String] {
        var arguments = [kind.rawValue]
        switch kind {
        case .relay: break
        case .migrate: arguments += projections ?? []
        case .rebuild, .live: arguments += projections ?? ["--all"]
        }
        for (key, value) in settings {
            let flag = "--" + key.replacingOccurrences(of: "_", with: "-")
            if Self.flagSettings.contains(key) {
                if value == "true" { arguments.append(flag) }
            } else {
                arguments += [flag, value]
            }
        }
        if let inlineSource { arguments += ["--source-yaml", inlineSource] }
        if let inlineOutbox { arguments += ["--outbox-yaml", inlineOutbox] }
        let needed: [String] = switch kind {
        case .rebuild, .migrate: ["postgres", "mysql"]
        case .live: ["postgres", "mysql", "amqp"]
        case .relay: ["postgres", "amqp"]
        }
        for server in needed {
            let variable = connections[server] ?? "REPRISE_\(server.uppercased())_URL"
            guard let url = environment(variable), !url.isEmpty else {
                throw Problem(description: "job \(name): the environment variable \(variable) (the \(server) URL) is not set")
            }
            arguments += ["--\(server)-url", url]
        }
        return arguments
    }
}
