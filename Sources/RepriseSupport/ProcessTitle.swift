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
            if let range = passwordRange(in: Array(bytes)) {
                for offset in range { bytes[offset] = UInt8(ascii: "x") }
            }
        }
    }

    /// The bytes of the password in `scheme://user:password@host...`, if there is one.
    public static func passwordRange(in text: [UInt8]) -> Range<Int>? {
        guard let scheme = text.indices.first(where: { text[$0...].starts(with: Array("://".utf8)) }) else { return nil }
        let authorityStart = scheme + 3
        // The authority ends at the first '/' after the last '@' (a password may contain '/' or '@' only percent-encoded,
        // but tolerate raw '@' the way ConnectionURL does: the last '@' before the path ends the credentials).
        let rest = text[authorityStart...]
        guard let at = rest.lastIndex(of: UInt8(ascii: "@")) else { return nil }
        guard let colon = text[authorityStart..<at].firstIndex(of: UInt8(ascii: ":")), colon + 1 < at else { return nil }
        return (colon + 1)..<at
    }
}
