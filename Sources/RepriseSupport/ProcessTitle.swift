/// Hides passwords given on the command line from the process title (`ps`, `/proc/PID/cmdline`).
///
/// Linux shows a process's arguments from the memory `argv` points to; overwriting a URL's
/// password there (as the MySQL client does for `-p`) hides it from other users of the machine.
/// Call after `CommandLine.arguments` was read: Swift keeps its own copy.
public enum ProcessTitle {
    public static func hidePasswords() {
        let argv = CommandLine.unsafeArgv
        for index in 1..<Int(CommandLine.argc) {
            guard let argument = argv[index] else { continue }
            var length = 0
            while argument[length] != 0 { length += 1 }
            let bytes = UnsafeMutableBufferPointer(start: UnsafeMutableRawPointer(argument).assumingMemoryBound(to: UInt8.self), count: length)
            for range in passwordRanges(in: Array(bytes)) {
                for offset in range { bytes[offset] = UInt8(ascii: "x") }
            }
        }
    }

    /// The bytes of the passwords of a URL (`scheme://user:password@host…`, `?password=`).
    public static func passwordRanges(in bytes: [UInt8]) -> [Range<Int>] {
        // Offsets are counted in the decoded text: an argument that is not valid UTF-8 would
        // decode to other lengths (U+FFFD), so it is left alone rather than written out of place.
        guard let text = String(validating: bytes, as: UTF8.self) else { return [] }
        return ConnectionURL.passwordRanges(in: text).map { range in
            let start = text.utf8.distance(from: text.startIndex, to: range.lowerBound)
            return start..<(start + text.utf8.distance(from: range.lowerBound, to: range.upperBound))
        }
    }
}
