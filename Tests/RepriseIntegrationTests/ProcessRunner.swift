import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Runs the `reprise` executable as a child process, the way an operator or a scheduler does.
struct ProcessOutcome {
    /// The exit code, or the signal number when `signal` is set.
    var status: Int32
    /// The signal that ended the process, if one did.
    var signal: Int32?
    var standardOutput: String
    var standardError: String

    /// True only for SIGKILL, the signal the fault hooks send: a SIGSEGV or a runtime trap
    /// (SIGILL, SIGTRAP) from a real bug is a failure, never an injected kill.
    var killedBySIGKILL: Bool { signal == SIGKILL }

    init(status: Int32, signal: Int32? = nil, standardOutput: String, standardError: String) {
        self.status = status
        self.signal = signal
        self.standardOutput = standardOutput
        self.standardError = standardError
    }

    init(_ process: Process, standardOutput: String, standardError: String) {
        let signalled = process.terminationReason == .uncaughtSignal
        self.init(
            status: process.terminationStatus, signal: signalled ? process.terminationStatus : nil,
            standardOutput: standardOutput, standardError: standardError)
    }
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
        process, standardOutput: String(decoding: outData, as: UTF8.self), standardError: String(decoding: errData, as: UTF8.self))
    SecretWatch.check(outcome.standardOutput + outcome.standardError, from: ([executable] + arguments).joined(separator: " "))
    return outcome
}

/// A `reprise` process running in the background (a live worker, a paused rebuild).
final class BackgroundProcess: @unchecked Sendable {
    // @unchecked: the pipes are read by two threads of this type's own; fields are set once.
    let process = Process()
    private let output = Pipe(), error = Pipe()
    private let collected = CollectedOutput()
    /// The process title as last seen while the process ran (after it is reaped, /proc has none).
    private let titleSeen = Mutex("")

    init(_ arguments: [String], environment extra: [String: String] = [:]) throws {
        process.executableURL = URL(fileURLWithPath: RebuildEnvironment.repriseBinary(environment: extra))
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        for (key, value) in extra { environment[key] = value }
        process.environment = environment
        process.currentDirectoryURL = URL(fileURLWithPath: RebuildEnvironment.repositoryRoot())
        process.standardOutput = output
        process.standardError = error
        try process.run()
        // Plain blocking reads on threads of their own, not `readabilityHandler`: on Linux,
        // libdispatch's event loop can crash the test process (SIGSEGV in
        // `_dispatch_event_loop_drain`) while it watches pipes of processes that come and go
        // (swift-corelibs-foundation issue 3276); it did once in this suite.
        collected.drain(output.fileHandleForReading.fileDescriptor, error: false)
        collected.drain(error.fileHandleForReading.fileDescriptor, error: true)
    }

    var pid: Int32 { process.processIdentifier }

    /// A test that failed before it ended its process must not leave it running, or stopped
    /// (SIGSTOP) and holding its sessions, cursors and locks: the cleanup of the test's
    /// environment (DROP SCHEMA, DROP DATABASE) would wait for them forever.
    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

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

    /// The backtraces of a hung process's threads, by `gdb` where it is installed (empty
    /// otherwise), without frame arguments (they could hold a connection's password): what a
    /// timeout reports, so a hang that does not come back says where it waited.
    static func threadStacks(of pid: Int32) -> String {
        let gdb = "/usr/bin/gdb"
        guard FileManager.default.isExecutableFile(atPath: gdb) else { return "" }
        let process = Process(), output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        process.arguments = ["60", gdb, "--batch", "-p", String(pid), "-ex", "set print frame-arguments none", "-ex", "thread apply all bt 20"]
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return "" }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        // Only the threads and their frames: gdb's banner and symbol-loading lines say nothing.
        return String(decoding: data, as: UTF8.self).split(separator: "\n")
            .filter { $0.hasPrefix("Thread ") || $0.hasPrefix("#") }.joined(separator: "\n")
    }

    /// Sends SIGTERM and waits for the process; expects the graceful stop of `Signals.cancelling`:
    /// unwound (not killed by the signal), exit 143, "stopped by SIGTERM" on standard error.
    func stoppedBySIGTERM() async throws -> ProcessOutcome {
        signal(SIGTERM)
        let stopped = try await finish()
        #expect(stopped.signal == nil, "the process should unwind, not die of the signal: \(stopped.standardError)")
        #expect(stopped.status == 143, "exit status \(stopped.status): \(stopped.standardError)")
        #expect(stopped.standardError.contains("stopped by SIGTERM"), "\(stopped.standardError)")
        return stopped
    }

    /// Waits for the exit (polling, bounded), then returns what it printed. The process title is
    /// sampled while it still runs, so the secret scan sees a title, not an empty /proc entry.
    /// A process that does not exit in time fails the test with what it printed so far (the
    /// tail of its standard error says where it hung).
    func finish(limit: Duration = .seconds(120)) async throws -> ProcessOutcome {
        do {
            try await waitUntil("reprise \(process.arguments?.first ?? "") to exit", limit: limit) {
                let title = commandLine
                if !title.isEmpty { titleSeen.withLock { $0 = title } }
                return !process.isRunning
            }
        } catch {
            let (out, err) = collected.texts
            let stacks = Self.threadStacks(of: pid)
            SecretWatch.check(out + err + commandLine + stacks, from: (process.arguments ?? []).joined(separator: " "))
            throw TestSetupError(
                "\(error); pid \(pid) [\(commandLine)] (stopped: \(isStopped)) printed: \(String(out.suffix(2_000))) | standard error: \(String(err.suffix(4_000)))"
                    + (stacks.isEmpty ? "" : " | its threads: \(String(stacks.prefix(12_000)))"))
        }
        // The readers end at the end of the pipes, which close with the process.
        try await waitUntil("the output of reprise \(process.arguments?.first ?? "") to end", limit: .seconds(30)) { collected.drained }
        let (out, err) = collected.texts
        let outcome = ProcessOutcome(process, standardOutput: out, standardError: err)
        SecretWatch.check(out + err + titleSeen.withLock { $0 }, from: (process.arguments ?? []).joined(separator: " "))
        return outcome
    }
}

/// Output gathered from a background process's pipes.
final class CollectedOutput: @unchecked Sendable {
    // @unchecked: every access holds the lock.
    private let lock = NSLock()
    private var out = Data(), err = Data()
    private var ended = 0
    func append(_ data: Data, error: Bool) {
        lock.lock()
        defer { lock.unlock() }
        if error { err.append(data) } else { out.append(data) }
    }

    /// Reads `descriptor` to its end on a thread of its own.
    func drain(_ descriptor: Int32, error: Bool) {
        let thread = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { break }
                append(Data(buffer[0..<count]), error: error)
            }
            lock.lock()
            ended += 1
            lock.unlock()
        }
        thread.start()
    }

    /// Both pipes were read to their end.
    var drained: Bool {
        lock.lock()
        defer { lock.unlock() }
        return ended == 2
    }

    var texts: (String, String) {
        lock.lock()
        defer { lock.unlock() }
        return (String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
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
/// `scripts/fault-report` sums into the suite's summary:
///
///     reprise-fault-ledger ENTRY COUNT TEST SCENARIO
///
/// TEST is the test function that printed the line (Swift Testing's name, no spaces), so the
/// report drops every line of a test that failed: a `.recovered` line counts only when all of its
/// test's checks passed. Tests also print `.recovered` only after the `try #require` checks the
/// recovery stands on, so a failed check stops the test before the line is written.
enum FaultLedger {
    enum Entry: String {
        /// A real fault: a SIGKILL that happened, a server restarted, a session the server killed.
        case injected = "fault-injected"
        /// A synthetic error thrown by a test hook on a healthy connection.
        case simulated = "fault-simulated"
        case recovered = "recovery-verified"
        case badInput = "bad-input"
        case security = "security-check"
        case secretScan = "secret-scan"
    }

    static func record(_ entry: Entry, _ scenario: String, count: Int = 1) {
        guard count > 0 else { return }
        print("reprise-fault-ledger \(entry.rawValue) \(count) \(testName) \(scenario)")
    }

    /// The running test's name as Swift Testing prints it in its result lines (`name(label:)`).
    private static var testName: String {
        let name = Test.current?.name ?? "-"
        return name.isEmpty ? "-" : name.replacingOccurrences(of: " ", with: "_")
    }
}
