import ArgumentParser
import Dispatch

#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM and SIGINT for one-shot commands (`rebuild`, `migrate`, `rollback`): the long-running workers
/// are services in a `ServiceGroup`, which handles their signals (see `Observability.run`).
enum Signals {}

/// A one-shot command stopped by SIGTERM or SIGINT before its work was done.
struct Interrupted: Error, CustomStringConvertible {
    var signal: Int32
    var name: String { signal == SIGINT ? "SIGINT" : "SIGTERM" }
    /// The shell's convention: 128 + the signal number.
    var exitCode: Int32 { 128 + signal }
    var description: String { "stopped by \(name)" }

    /// Says on standard error that the command stopped, having let go of what it held, and what
    /// running it again does (`rerun`); the exit code to end with.
    func reported(rerun: String) -> ExitCode {
        Terminal.error("\(self): the statement in progress was cancelled and the locks and connections released; \(rerun)")
        return ExitCode(exitCode)
    }
}

extension Signals {
    /// `cancelling`, for a command that shows no status line: a stop is reported on standard
    /// error with what a rerun does (`Interrupted.reported(rerun:)`), and its exit code thrown.
    static func cancelling<Result: Sendable>(rerun: String, _ body: @escaping @Sendable () async throws -> Result) async throws -> Result {
        do {
            return try await cancelling(body)
        } catch let interrupted as Interrupted {
            throw interrupted.reported(rerun: rerun)
        }
    }

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
