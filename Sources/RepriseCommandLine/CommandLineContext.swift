import CoreMetrics
import RepriseEngine
import Synchronization

/// Hooks into the commands that only executables of this package install: the
/// `reprise-fault-injection` test binary makes a rebuild or live worker crash at a chosen point.
/// The production `reprise` installs none, and reads no fault settings from the environment.
package struct CommandLineHooks: Sendable {
    /// The hooks of each rebuild (`reprise rebuild`).
    package var rebuild: RebuildHooks
    /// Called by the live worker after the MySQL commit of a batch, before its ack.
    package var liveBeforeAck: (@Sendable (Int) async -> Void)?
    /// Called by `reprise replay` after the broker confirmed a batch, before its position is saved.
    package var replayAfterConfirm: (@Sendable (Int) async throws -> Void)?

    package init(
        rebuild: RebuildHooks = RebuildHooks(), liveBeforeAck: (@Sendable (Int) async -> Void)? = nil,
        replayAfterConfirm: (@Sendable (Int) async throws -> Void)? = nil
    ) {
        self.rebuild = rebuild
        self.liveBeforeAck = liveBeforeAck
        self.replayAfterConfirm = replayAfterConfirm
    }
}

/// What `Reprise.main` was given, for the commands the argument parser creates: the Swift
/// projections registered beside the projection files, and the hooks.
enum CommandLineContext {
    private static let state = Mutex<(projections: [any Projection], hooks: CommandLineHooks, metricsFactories: [any MetricsFactory])>(
        ([], CommandLineHooks(), []))

    static func install(projections: [any Projection], hooks: CommandLineHooks, metricsFactories: [any MetricsFactory] = []) {
        state.withLock { $0 = (projections, hooks, metricsFactories) }
    }

    /// Metrics backends of a team's own executable, fed beside the Prometheus registry.
    static var metricsFactories: [any MetricsFactory] { state.withLock { $0.metricsFactories } }

    /// The hooks of a build run from the command line (`rebuild`, `migrate`): the installed ones,
    /// and a warning on standard error when a lost MySQL session was reopened, saying what it lost.
    static var buildHooks: RebuildHooks {
        var hooks = Self.hooks.rebuild
        hooks.connectionReopened = { chunk, reopened in
            Terminal.error("warning: \(reopened); " + (chunk.map { "redoing chunk \($0)" } ?? "took its named locks back"))
        }
        return hooks
    }

    /// The Swift projections registered with `Reprise.main(projections:)`.
    static var codeProjections: [any Projection] { state.withLock { $0.projections } }

    static var hooks: CommandLineHooks { state.withLock { $0.hooks } }
}
