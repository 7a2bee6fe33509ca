import Logging
import RepriseSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A swift-log handler writing one line per entry to standard error, as text or JSON
/// (`RepriseLog.Format`), with secrets redacted from the message and every metadata value.
///
/// JSON lines: `{"ts":"…","level":"info","event":"live.applied","label":"reprise.live","projection":"order_summary",…}`
/// (the message is the `event`; metadata values are strings). Text lines:
/// `2026-11-30T05:00:00.123Z info  live.applied projection=order_summary events=10`.
public struct RepriseLogHandler: LogHandler {
    public let label: String
    public var metadata: Logger.Metadata = [:]
    /// Set by `Logger.logLevel`; nil follows `RepriseLog.bootstrap(level:)`.
    private var ownLevel: Logger.Level?
    private let write: @Sendable (String) -> Void

    public init(label: String, write: @escaping @Sendable (String) -> Void = RepriseLogHandler.standardError) {
        self.label = label
        self.write = write
    }

    public var logLevel: Logger.Level {
        get { ownLevel ?? RepriseLog.settings.withLock { $0.level } }
        set { ownLevel = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        write(Self.format(
            level: event.level, message: "\(event.message)", metadata: all, label: label,
            format: RepriseLog.resolvedFormat, redactor: RepriseLog.redactor, timestamp: Self.timestamp()))
    }

    /// One log line (without the newline). Pure, for tests.
    public static func format(
        level: Logger.Level, message: String, metadata: Logger.Metadata, label: String, format: RepriseLog.Format,
        redactor: SecretRedactor, timestamp: String
    ) -> String {
        let fields = metadata.sorted { $0.key < $1.key }.map { ($0.key, redactor.redact(flatten($0.value))) }
        let message = redactor.redact(message)
        switch format {
        case .json:
            var parts = ["\"ts\":\"\(timestamp)\"", "\"level\":\"\(level.rawValue)\"", "\"event\":" + JSONText.quoted(message), "\"label\":" + JSONText.quoted(label)]
            // Reserved keys stay the handler's; a metadata key that collides is prefixed.
            for (key, value) in fields {
                let name = ["ts", "level", "event", "label"].contains(key) ? "meta_" + key : key
                parts.append(JSONText.quoted(name) + ":" + JSONText.quoted(value))
            }
            return "{" + parts.joined(separator: ",") + "}"
        case .text, .auto:
            let paddedLevel = level.rawValue + String(repeating: " ", count: max(1, 9 - level.rawValue.count))
            let rendered = fields.map { key, value in
                value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" }) || value.isEmpty ? "\(key)=\(JSONText.quoted(value))" : "\(key)=\(value)"
            }
            // One entry, one line: line breaks inside a value (a server's error text) are escaped.
            return ([timestamp + " " + paddedLevel + message] + rendered).joined(separator: " ").replacing("\n", with: "\\n")
        }
    }

    private static func flatten(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let text): text
        case .stringConvertible(let convertible): convertible.description
        case .array(let values): "[" + values.map(flatten).joined(separator: ",") + "]"
        case .dictionary(let entries): "{" + entries.sorted { $0.key < $1.key }.map { "\($0.key)=\(flatten($0.value))" }.joined(separator: ",") + "}"
        }
    }

    /// Unbuffered write of one line to standard error: lines of concurrent tasks never interleave mid-line.
    public static let standardError: @Sendable (String) -> Void = { line in
        var bytes = Array((line + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return -1 }
                return RepriseLogHandler.systemWrite(STDERR_FILENO, base + offset, buffer.count - offset)
            }
            if written <= 0 { return }
            offset += written
        }
    }

    private static func systemWrite(_ descriptor: Int32, _ bytes: UnsafeMutableRawPointer, _ count: Int) -> Int {
        #if canImport(Glibc)
        Glibc.write(descriptor, bytes, count)
        #else
        Darwin.write(descriptor, bytes, count)
        #endif
    }

    /// UTC, milliseconds: 2026-11-30T05:00:00.123Z.
    static func timestamp() -> String {
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
