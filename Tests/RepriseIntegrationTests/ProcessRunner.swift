import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Runs the `reprise` executable as a child process, the way an operator or a scheduler does.
struct ProcessOutcome {
    var status: Int32
    var killedBySignal: Bool
    var standardOutput: String
    var standardError: String
}

func runReprise(_ arguments: [String], environment extra: [String: String] = [:]) throws -> ProcessOutcome {
    try runProcess(RebuildEnvironment.repriseBinary(environment: extra), arguments, environment: extra)
}

/// Runs `scripts/services ARGS` (for example `rabbitmqctl stop_app`) against the local servers.
func runServicesCommand(_ arguments: [String]) throws -> ProcessOutcome {
    try runProcess("/bin/bash", [RebuildEnvironment.repositoryRoot() + "/scripts/services"] + arguments)
}

/// Runs a program in the repository root with extra environment variables; collects its output.
func runProcess(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:]) throws -> ProcessOutcome {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment
    for (key, value) in extra { environment[key] = value }
    process.environment = environment
    process.currentDirectoryURL = URL(fileURLWithPath: RebuildEnvironment.repositoryRoot())
    let output = Pipe(), error = Pipe()
    process.standardOutput = output
    process.standardError = error
    try process.run()
    // Read before waiting: a full pipe would otherwise block the child.
    let outData = output.fileHandleForReading.readDataToEndOfFile()
    let errData = error.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let outcome = ProcessOutcome(
        status: process.terminationStatus, killedBySignal: process.terminationReason == .uncaughtSignal,
        standardOutput: String(decoding: outData, as: UTF8.self), standardError: String(decoding: errData, as: UTF8.self))
    SecretWatch.check(outcome.standardOutput + outcome.standardError, from: ([executable] + arguments).joined(separator: " "))
    return outcome
}

/// A `reprise` process running in the background (a live worker, a paused rebuild).
final class BackgroundProcess: @unchecked Sendable {
    // @unchecked: the pipes are read by Foundation's background readers; fields are set once.
    let process = Process()
    private let output = Pipe(), error = Pipe()
    private let collected = CollectedOutput()

    init(_ arguments: [String], environment extra: [String: String] = [:]) throws {
        process.executableURL = URL(fileURLWithPath: RebuildEnvironment.repriseBinary(environment: extra))
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        for (key, value) in extra { environment[key] = value }
        process.environment = environment
        process.currentDirectoryURL = URL(fileURLWithPath: RebuildEnvironment.repositoryRoot())
        process.standardOutput = output
        process.standardError = error
        let collected = collected
        output.fileHandleForReading.readabilityHandler = { handle in collected.append(handle.availableData, error: false) }
        error.fileHandleForReading.readabilityHandler = { handle in collected.append(handle.availableData, error: true) }
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    /// True when the process stopped itself (SIGSTOP), as `/proc/PID/stat` says (state `T`).
    var isStopped: Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(close, offsetBy: 2)] == "T"
    }

    /// The process title as `ps` shows it (NUL-separated arguments).
    var commandLine: String {
        (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8))?.replacingOccurrences(of: "\0", with: " ") ?? ""
    }

    func signal(_ number: Int32) { kill(pid, number) }

    /// Waits for the exit (polling, bounded), then returns what it printed.
    func finish(limit: Duration = .seconds(120)) async throws -> ProcessOutcome {
        try await waitUntil("reprise \(process.arguments?.first ?? "") to exit", limit: limit) { !process.isRunning }
        output.fileHandleForReading.readabilityHandler = nil
        error.fileHandleForReading.readabilityHandler = nil
        let (out, err) = collected.texts(adding: output.fileHandleForReading.readDataToEndOfFile(), error.fileHandleForReading.readDataToEndOfFile())
        let outcome = ProcessOutcome(status: process.terminationStatus, killedBySignal: process.terminationReason == .uncaughtSignal, standardOutput: out, standardError: err)
        SecretWatch.check(out + err + commandLine, from: (process.arguments ?? []).joined(separator: " "))
        return outcome
    }
}

/// Output gathered from a background process's pipes.
final class CollectedOutput: @unchecked Sendable {
    // @unchecked: every access holds the lock.
    private let lock = NSLock()
    private var out = Data(), err = Data()
    func append(_ data: Data, error: Bool) {
        lock.lock()
        defer { lock.unlock() }
        if error { err.append(data) } else { out.append(data) }
    }
    func texts(adding outTail: Data, _ errTail: Data) -> (String, String) {
        lock.lock()
        defer { lock.unlock() }
        return (String(decoding: out + outTail, as: UTF8.self), String(decoding: err + errTail, as: UTF8.self))
    }
}

/// Every output the suite captures from a process is checked for the passwords it used: no
/// secret may appear in logs, errors, status output or process titles.
enum SecretWatch {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var secrets: Set<String> = ["reprise_local_pw"]

    /// Registers a password a test uses (a generated account, a wrong password it tries).
    static func register(_ secret: String) {
        lock.lock()
        defer { lock.unlock() }
        secrets.insert(secret)
    }

    static func check(_ text: String, from source: String) {
        lock.lock()
        let known = secrets
        lock.unlock()
        for secret in known where text.contains(secret) {
            Issue.record("a password appeared in the output of \(source.prefix(80))")
        }
        FaultLedger.record(.secretScan, "process output")
    }
}

/// What the fault and security tests injected and verified, printed as ledger lines that
/// `scripts/fault-report` sums into the suite's summary.
enum FaultLedger {
    enum Entry: String {
        case injected = "fault-injected"
        case recovered = "recovery-verified"
        case badInput = "bad-input"
        case security = "security-check"
        case secretScan = "secret-scan"
    }

    static func record(_ entry: Entry, _ kind: String, count: Int = 1) {
        print("reprise-fault-ledger \(entry.rawValue) \(count) \(kind)")
    }
}
