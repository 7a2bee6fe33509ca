import ArgumentParser
import Logging
import RepriseLogging

/// `--log-format` and `--log-level` of the long-running commands: the executable bootstraps
/// swift-log once (library code only logs through the `Logger` it is given).
struct LoggingOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Log lines as text, json (one object per line) or auto (text on a terminal, JSON lines otherwise).", valueName: "format"))
    var logFormat: RepriseLog.Format = .auto

    @Option(help: ArgumentHelp("Lowest level logged: trace, debug, info, notice, warning, error or critical.", valueName: "level"))
    var logLevel: Logger.Level = .info

    /// Bootstraps the handler (once per process) and returns a logger labelled `label`; the
    /// passwords of `urls` never appear in a line.
    func bootstrap(_ label: String, hidingPasswordsOf urls: [String] = []) -> Logger {
        RepriseLog.bootstrap(format: logFormat, level: logLevel)
        RepriseLog.addSecrets(fromURLs: urls)
        return Logger(label: label)
    }
}

extension RepriseLog.Format: ExpressibleByArgument {}
extension Logger.Level: @retroactive ExpressibleByArgument {}
