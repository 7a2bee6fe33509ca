#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import RepriseSupport

/// Writing to the terminal: progress lines on standard error, results on standard output.
package enum Terminal {
    static var standardErrorIsTerminal: Bool { isatty(STDERR_FILENO) == 1 }

    package static func error(_ text: String) {
        write(text + "\n", to: STDERR_FILENO)
    }

    package static func output(_ text: String) {
        write(text + "\n", to: STDOUT_FILENO)
    }

    /// Rewrites the current line of standard error (progress on a terminal).
    static func status(_ text: String) {
        write("\r\u{1B}[2K" + text, to: STDERR_FILENO)
    }

    static func endStatus() {
        write("\n", to: STDERR_FILENO)
    }

    /// Rows as left-aligned columns (the first row is the header), to standard output.
    static func table(_ rows: [[String]], indent: String = "") {
        guard let first = rows.first else { return }
        let widths = (0..<first.count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            output(indent + zip(row, widths).map { $0 + String(repeating: " ", count: $1 - $0.count) }.joined(separator: "  "))
        }
    }

    /// Unbuffered writes straight to the file descriptor: no shared C `FILE*` state.
    private static func write(_ text: String, to descriptor: Int32) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { buffer in
                systemWrite(descriptor, buffer.baseAddress.map { $0 + offset }, buffer.count - offset)
            }
            if written <= 0 { return }
            offset += written
        }
    }
}

private func systemWrite(_ descriptor: Int32, _ pointer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    write(descriptor, pointer, count)
}

/// Reports the progress of a counted job: a live line on a terminal, else a line every few seconds.
struct ProgressLine {
    let label: String
    let total: Int
    let start = ContinuousClock.now
    private var lastReport = ContinuousClock.now
    private let interactive = Terminal.standardErrorIsTerminal
    var quiet = false

    init(label: String, total: Int, quiet: Bool = false) {
        self.label = label
        self.total = total
        self.quiet = quiet
    }

    var elapsedSeconds: Double {
        let elapsed = ContinuousClock.now - start
        return elapsed.seconds
    }

    mutating func update(done: Int) {
        guard !quiet else { return }
        let now = ContinuousClock.now
        guard now - lastReport >= (interactive ? .milliseconds(200) : .seconds(5)) || done == total else { return }
        lastReport = now
        let seconds = max(elapsedSeconds, 0.001)
        let rate = Double(done) / seconds
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let width = 30
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        let line = "\(label) \(bar) \(done)/\(total) \(Self.percent(fraction)) \(Int(rate))/s ETA \(Self.duration(eta))"
        if interactive { Terminal.status(line) } else { Terminal.error(line) }
    }

    func finish() {
        if interactive && !quiet { Terminal.endStatus() }
    }

    static func percent(_ fraction: Double) -> String { "\(Int((fraction * 100).rounded()))%" }

    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        return total >= 3600 ? "\(total / 3600)h\(total / 60 % 60)m" : total >= 60 ? "\(total / 60)m\(total % 60)s" : "\(total)s"
    }
}
