/// Runs `body`, then `cleanup` whether `body` returned or threw, and awaits the cleanup before
/// returning: the shape of postgres-nio's `withConnection`/`withTransaction`. Nothing is released
/// "later" by a detached task, and releases happen in a defined order (innermost scope first).
///
/// A cleanup failure is thrown when `body` succeeded. When both failed, `body`'s error is thrown
/// (it is the cause; a release usually fails because the same session broke) and the cleanup's
/// goes to `cleanupFailed`.
///
/// ```swift
/// let rows = try await withCleanup {
///     try await connection.query("SELECT 1")
/// } cleanup: {
///     await connection.close()
/// }
/// ```
public func withCleanup<Result>(
    isolation: isolated (any Actor)? = #isolation,
    _ body: () async throws -> sending Result,
    cleanup: () async throws -> Void,
    cleanupFailed: (any Error) -> Void = { _ in }
) async throws -> sending Result {
    let result: Result
    do {
        result = try await body()
    } catch {
        do {
            try await cleanup()
        } catch let cleanupError {
            cleanupFailed(cleanupError)
        }
        throw error
    }
    try await cleanup()
    return result
}
