import Logging
import RepriseSupport
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How `reprise` writes its log lines: the swift-log handler the executable bootstraps.
///
/// Library code (the engine, the workers) only logs through a `Logger` it is given; this type is
/// for the executable (or a team's own one that wants Reprise's format). Every message and every
/// metadata value passes through a `SecretRedactor` holding the passwords of the URLs in use.
///
/// ```swift
/// RepriseLog.bootstrap(format: .auto, level: .info)
/// RepriseLog.addSecrets(fromURLs: [postgresURL, mysqlURL])
/// let logger = Logger(label: "reprise.live")
/// ```
public enum RepriseLog {
    /// `text`: one human-readable line per entry; `json`: one JSON object per line; `auto`: text
    /// when standard error is a terminal, JSON lines otherwise.
    public enum Format: String, Sendable, CaseIterable {
        case auto, text, json
    }

    struct Settings {
        var format: Format = .auto
        var level: Logger.Level = .info
        var secrets: [String] = []
    }

    static let settings = Mutex(Settings())
    private static let bootstrapped = Mutex(false)

    /// Installs the handler (once per process) and sets the format and level; a later call only
    /// changes the format and level (a job file's command may choose its own).
    public static func bootstrap(format: Format = .auto, level: Logger.Level = .info) {
        settings.withLock {
            $0.format = format
            $0.level = level
        }
        let first = bootstrapped.withLock { done in
            defer { done = true }
            return !done
        }
        if first { LoggingSystem.bootstrap { label in RepriseLogHandler(label: label) } }
    }

    /// Passwords of these URLs never reach a log line (URLs that do not parse add nothing).
    public static func addSecrets(fromURLs urls: [String]) {
        let passwords = urls.compactMap { try? ConnectionURL($0).password }
        settings.withLock { $0.secrets.append(contentsOf: passwords) }
    }

    /// The format in force (`auto` resolved against standard error).
    static var resolvedFormat: Format {
        let format = settings.withLock { $0.format }
        guard format == .auto else { return format }
        return isatty(STDERR_FILENO) == 1 ? .text : .json
    }

    static var redactor: SecretRedactor { SecretRedactor(secrets: settings.withLock { $0.secrets }) }
}
