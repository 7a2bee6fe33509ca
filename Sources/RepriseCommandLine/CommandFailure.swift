import ArgumentParser
import RepriseEngine
import RepriseAMQP
import RepriseMySQL
import ReprisePostgres

/// Runs a command body and turns any error into one clear line on standard error and an exit code.
package func reportingFailures(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ValidationError {
        throw error
    } catch let error as ExitCode {
        throw error
    } catch {
        Terminal.error("error: \(error)")
        throw ExitCode(isUnreachable(error) ? RepriseExitCode.unreachable : RepriseExitCode.failure)
    }
}

private func isUnreachable(_ error: any Error) -> Bool {
    switch error {
    case let error as PostgresError: [.connectionFailed, .connectionTimedOut, .invalidURL].contains(error.code)
    case let error as MySQLError: [.connectionFailed, .connectionTimedOut, .invalidURL].contains(error.code)
    case let error as AMQPError: [.connectionFailed, .connectionTimedOut, .authenticationFailed, .invalidURL].contains(error.code)
    default: false
    }
}

/// Runs an engine job behind a progress display; a held lock exits with 4, a failed check with 5.
func runningEngine<Result>(_ display: RebuildProgressDisplay, _ body: () async throws -> Result) async throws -> Result {
    do {
        let result = try await body()
        display.finish()
        return result
    } catch let error as EngineError where error.kind == .locked || error.kind == .checkFailed {
        display.finish()
        Terminal.error("error: \(error)")
        throw ExitCode(error.kind == .locked ? 4 : 5)
    } catch {
        display.finish()
        throw error
    }
}
