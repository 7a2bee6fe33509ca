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
