import RepriseSupport
import Dispatch
import RepriseLive

#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM and SIGINT ask long-running commands to stop after their current unit of work.
enum Signals {
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []

    static func stop(_ signal: StopSignal) {
        for number in [SIGTERM, SIGINT] {
            Glibc.signal(number, SIG_IGN)  // handled by the dispatch source below instead
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                Terminal.error(#"{"level":"info","event":"stopping","reason":"signal"}"#)
                signal.stop()
            }
            source.resume()
            sources.append(source)
        }
    }
}

/// A one-shot command stopped by SIGTERM or SIGINT before its work was done.
struct Interrupted: Error, CustomStringConvertible {
    var signal: Int32
    var name: String { signal == SIGINT ? "SIGINT" : "SIGTERM" }
    /// The shell's convention: 128 + the signal number.
    var exitCode: Int32 { 128 + signal }
    var description: String { "stopped by \(name)" }
}

extension Signals {
    /// Runs `body` until it returns or SIGTERM/SIGINT arrives. On a signal the task running
    /// `body` is cancelled: the statement in progress is cancelled on its server (`PQcancel`,
    /// `KILL QUERY`), every `with…` scope releases what it holds, and once `body` has unwound,
    /// `Interrupted` is thrown. Nothing is left running after this returns.
    static func cancelling<Result: Sendable>(_ body: @escaping @Sendable () async throws -> Result) async throws -> Result {
        let (signals, delivered) = AsyncStream.makeStream(of: Int32.self)
        var installed: [any DispatchSourceSignal] = []
        for number in [SIGTERM, SIGINT] {
            Glibc.signal(number, SIG_IGN)  // handled by the dispatch source instead
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { delivered.yield(number) }
            source.resume()
            installed.append(source)
        }
        defer {
            for source in installed { source.cancel() }
            delivered.finish()
        }
        return try await withThrowingTaskGroup(of: Result?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                for await number in signals { throw Interrupted(signal: number) }
                return nil
            }
            // The first to end decides; leaving the group cancels and awaits the other.
            while let next = try await group.next() {
                if let result = next {
                    delivered.finish()
                    return result
                }
            }
            throw CancellationError()
        }
    }
}

/// One JSON object per line on standard error: structured logs for the long-running workers.
enum LogLine {
    static func emit(_ event: String, _ fields: [(String, Any)] = [], level: String = "info") {
        var parts = ["\"ts\":\"\(timestamp())\"", "\"level\":\"\(level)\"", "\"event\":\"\(event)\""]
        for (key, value) in fields {
            switch value {
            case let number as Int: parts.append("\"\(key)\":\(number)")
            case let number as Int64: parts.append("\"\(key)\":\(number)")
            case let number as Double: parts.append("\"\(key)\":\(number)")
            case let flag as Bool: parts.append("\"\(key)\":\(flag)")
            default: parts.append("\"\(key)\":" + JSONText.quoted("\(value)"))
            }
        }
        Terminal.error("{" + parts.joined(separator: ",") + "}")
    }


    private static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = time_t(now.tv_sec)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let millis = Int(now.tv_nsec / 1_000_000)
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))."
            + String(repeating: "0", count: 3 - String(millis).count) + "\(millis)Z"
    }
}
